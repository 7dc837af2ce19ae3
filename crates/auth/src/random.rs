//! Random secrets and their storage hashes, shared by refresh, invitation and API keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// Bytes of entropy in every opaque token (256 bits).
pub const TOKEN_BYTES: usize = 32;
/// Length of an opaque token's text: 32 bytes in unpadded base64url.
pub const TOKEN_CHARS: usize = 43;

/// `N` bytes from the thread-local CSPRNG (ChaCha, seeded and reseeded from the OS).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Lower-case hex SHA-256 of `text`: what the store keeps instead of a token.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A new 256-bit random token (URL-safe text) and its SHA-256 hex.
pub(crate) fn new_opaque_token() -> (SecretString, String) {
    let text = URL_SAFE_NO_PAD.encode(random_bytes::<TOKEN_BYTES>());
    let hash = sha256_hex(&text);
    (SecretString::from(text), hash)
}

/// The storage hash of a presented opaque token, or `None` when it cannot be one of ours
/// (so junk never reaches the database).
pub(crate) fn hash_presented_token(presented: &str) -> Option<String> {
    let well_formed = presented.len() == TOKEN_CHARS
        && URL_SAFE_NO_PAD
            .decode(presented)
            .is_ok_and(|b| b.len() == TOKEN_BYTES);
    well_formed.then(|| sha256_hex(presented))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn tokens_are_unique_url_safe_and_hash_to_what_is_stored() {
        let (a, a_hash) = new_opaque_token();
        let (b, _) = new_opaque_token();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), TOKEN_CHARS);
        assert!(
            a.expose_secret()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(
            hash_presented_token(a.expose_secret()),
            Some(a_hash.clone())
        );
        assert_eq!(a_hash.len(), 64);
        assert_ne!(a_hash, a.expose_secret().to_owned());
    }

    #[test]
    fn junk_is_not_hashed() {
        assert_eq!(hash_presented_token(""), None);
        assert_eq!(hash_presented_token("short"), None);
        assert_eq!(hash_presented_token(&"!".repeat(TOKEN_CHARS)), None);
        assert_eq!(hash_presented_token(&"A".repeat(TOKEN_CHARS + 1)), None);
    }
}
