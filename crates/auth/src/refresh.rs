//! Refresh tokens: opaque 256-bit random strings, stored only as SHA-256 hex.
//!
//! Tokens of one login session form a family. Every use rotates the token: the store
//! marks the presented one used and saves its successor in the same family. Presenting a
//! token that was already rotated means it was stolen or replayed, so the store revokes
//! the whole family (and the revocation store the family's access tokens, via `sid`).
//! This module makes the tokens; the store keeps the chain.

use crate::random::{hash_presented_token, new_opaque_token};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use std::time::Duration;
use uuid::Uuid;

/// Default lifetime of one refresh token.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// A new refresh token, ready to be stored (by hash) and handed out (in clear, once).
#[derive(Debug)]
pub struct NewRefreshToken {
    /// The token for the client (`refresh_token`). Never stored or logged.
    pub token: SecretString,
    /// SHA-256 hex of the token: the store's lookup key.
    pub token_hash: String,
    /// The session this token belongs to; also the `sid` of access tokens minted from it.
    pub family_id: Uuid,
    /// Hash of the token this one replaces, `None` for the first of a family.
    pub parent_hash: Option<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl NewRefreshToken {
    /// The first token of a new session (login, register).
    pub fn new_family(ttl: Duration) -> Self {
        Self::make(Uuid::now_v7(), None, ttl)
    }

    /// The successor of a token being rotated: same family, linked to its parent.
    pub fn rotate(family_id: Uuid, parent_hash: &str, ttl: Duration) -> Self {
        Self::make(family_id, Some(parent_hash.to_owned()), ttl)
    }

    fn make(family_id: Uuid, parent_hash: Option<String>, ttl: Duration) -> Self {
        let (token, token_hash) = new_opaque_token();
        let issued_at = Utc::now();
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        Self {
            token,
            token_hash,
            family_id,
            parent_hash,
            issued_at,
            expires_at: issued_at
                .checked_add_signed(ttl)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

/// The store lookup key for a presented refresh token, or `None` when it cannot be one
/// (wrong length or alphabet): answer 401 without touching the database.
pub fn refresh_token_hash(presented: &str) -> Option<String> {
    hash_presented_token(presented)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_family_starts_and_rotates() {
        let first = NewRefreshToken::new_family(DEFAULT_REFRESH_TTL);
        assert_eq!(first.parent_hash, None);
        assert_eq!(
            first.expires_at - first.issued_at,
            chrono::Duration::days(7)
        );
        assert_eq!(
            refresh_token_hash(first.token.expose_secret()).as_deref(),
            Some(first.token_hash.as_str())
        );

        let next = NewRefreshToken::rotate(first.family_id, &first.token_hash, DEFAULT_REFRESH_TTL);
        assert_eq!(next.family_id, first.family_id);
        assert_eq!(next.parent_hash.as_deref(), Some(first.token_hash.as_str()));
        assert_ne!(next.token_hash, first.token_hash);
        assert_ne!(
            NewRefreshToken::new_family(DEFAULT_REFRESH_TTL).family_id,
            first.family_id
        );
    }

    #[test]
    fn presented_junk_has_no_hash_and_debug_hides_the_token() {
        assert_eq!(refresh_token_hash("eyJhbGciOiJIUzI1NiJ9.e30.sig"), None);
        let t = NewRefreshToken::new_family(DEFAULT_REFRESH_TTL);
        assert!(!format!("{t:?}").contains(t.token.expose_secret()));
    }
}
