//! Reading the `Authorization` header: a bearer credential is either an access token
//! (JWT) or an organisation API key (`assay_...`); the extractor verifies each its own way.

use crate::api_key::{PresentedApiKey, is_api_key};
use crate::error::ApiKeyError;

/// A credential presented as `Authorization: Bearer <credential>`.
#[derive(Debug)]
pub enum BearerCredential {
    /// A JWT, to check with [`crate::AccessTokens::verify`].
    AccessToken(String),
    /// A well-formed API key, to look up by id and compare by hash.
    ApiKey(PresentedApiKey),
}

/// Why the header could not be read as a bearer credential (401 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("authorization header is not a bearer credential")]
    NotBearer,
    #[error("bearer credential is empty")]
    Empty,
    #[error(transparent)]
    ApiKey(#[from] ApiKeyError),
}

impl BearerCredential {
    /// Parses an `Authorization` header value. The scheme is case-insensitive (RFC 9110).
    pub fn from_authorization(value: &str) -> Result<Self, BearerError> {
        let (scheme, credential) = value.trim().split_once(' ').ok_or(BearerError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(BearerError::NotBearer);
        }
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(BearerError::Empty);
        }
        if is_api_key(credential) {
            Ok(Self::ApiKey(PresentedApiKey::parse(credential)?))
        } else {
            Ok(Self::AccessToken(credential.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_key::NewApiKey;
    use secrecy::ExposeSecret;

    #[test]
    fn tells_api_keys_from_tokens() {
        let key = NewApiKey::generate();
        match BearerCredential::from_authorization(&format!("Bearer {}", key.key.expose_secret())) {
            Ok(BearerCredential::ApiKey(k)) => assert_eq!(k.id(), key.id),
            other => panic!("{other:?}"),
        }
        match BearerCredential::from_authorization("bearer  eyJ.abc.def ") {
            Ok(BearerCredential::AccessToken(t)) => assert_eq!(t, "eyJ.abc.def"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_other_schemes_and_bad_keys() {
        assert_eq!(
            BearerCredential::from_authorization("Basic dXNlcjpwYXNz").unwrap_err(),
            BearerError::NotBearer
        );
        assert_eq!(
            BearerCredential::from_authorization("Bearer").unwrap_err(),
            BearerError::NotBearer
        );
        assert_eq!(
            BearerCredential::from_authorization("Bearer   ").unwrap_err(),
            BearerError::NotBearer
        );
        assert_eq!(
            BearerCredential::from_authorization("Bearer assay_short_x").unwrap_err(),
            BearerError::ApiKey(ApiKeyError::BadId)
        );
    }
}
