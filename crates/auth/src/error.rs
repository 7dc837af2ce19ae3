//! Error policy: every error says what went wrong with a credential in this crate's terms.
//! The API maps them to 401 (token and key errors, without telling which check failed)
//! or 500 (hashing infrastructure); secrets and token contents never appear in messages.

/// Why an access token was rejected. The extractor answers 401 for all of them; the
/// variant goes to logs, metrics and the audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token uses an algorithm this key does not allow")]
    WrongAlgorithm,
    #[error("token was issued by someone else")]
    WrongIssuer,
    #[error("token is meant for another audience")]
    WrongAudience,
    #[error("token is not an access token")]
    WrongType,
    #[error("token names a signing key that is not known")]
    UnknownKey,
    #[error("token is malformed")]
    Malformed,
}

impl TokenError {
    /// A stable code for logs, metrics and audit records.
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::BadSignature => "bad_signature",
            TokenError::WrongAlgorithm => "wrong_algorithm",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::WrongType => "wrong_type",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Malformed => "malformed",
        }
    }
}

/// A signing key or keyring could not be built from configuration.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("HMAC key '{kid}' is {len} bytes; at least {min} are required")]
    HmacKeyTooShort { kid: String, len: usize, min: usize },
    #[error("key id must be 1..=64 characters of [A-Za-z0-9._-], got '{0}'")]
    InvalidKid(String),
    #[error("key '{kid}' could not be read: {reason}")]
    InvalidKey { kid: String, reason: String },
    #[error("key id '{0}' appears more than once in the keyring")]
    DuplicateKid(String),
    #[error("the current key '{0}' can only verify; it needs its private part to sign")]
    CannotSign(String),
}

/// Hashing or verifying a password failed for a reason other than a wrong password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("the stored password hash is not a valid PHC string")]
    InvalidStoredHash,
    #[error("the password hashing task did not complete")]
    TaskFailed,
}

/// A presented API key is not of the form `assay_<id>_<secret>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API key does not start with 'assay_'")]
    MissingPrefix,
    #[error("API key id is malformed")]
    BadId,
    #[error("API key secret is malformed")]
    BadSecret,
}

/// An API key scope name was not one of read, write, ai, admin.
#[derive(Debug, thiserror::Error)]
#[error("unknown API key scope '{0}' (expected read, write, ai or admin)")]
pub struct UnknownScope(pub String);
