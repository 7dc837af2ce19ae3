//! Invitation tokens: one-time random tokens e-mailed to the invitee; the store keeps
//! only the SHA-256 hex and marks the invitation used on acceptance.

use crate::random::{hash_presented_token, new_opaque_token};
use secrecy::SecretString;

/// A new invitation token.
#[derive(Debug)]
pub struct NewInvitationToken {
    /// For the invitation link, shown once.
    pub token: SecretString,
    /// SHA-256 hex, to store and look up by.
    pub token_hash: String,
}

impl NewInvitationToken {
    pub fn generate() -> Self {
        let (token, token_hash) = new_opaque_token();
        Self { token, token_hash }
    }
}

/// The lookup hash of a presented invitation token, `None` when it cannot be one.
pub fn invitation_token_hash(presented: &str) -> Option<String> {
    hash_presented_token(presented)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generated_tokens_round_trip_to_their_hash() {
        let a = NewInvitationToken::generate();
        let b = NewInvitationToken::generate();
        assert_ne!(a.token_hash, b.token_hash);
        assert_eq!(
            invitation_token_hash(a.token.expose_secret()),
            Some(a.token_hash.clone())
        );
        assert_eq!(invitation_token_hash("not-a-token"), None);
        assert!(!format!("{a:?}").contains(a.token.expose_secret()));
    }
}
