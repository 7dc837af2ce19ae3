//! Credentials without a database: Argon2id password hashing, JWT access tokens with a
//! rotating keyring, refresh-token families, organisation API keys and invitation tokens.
//!
//! The store keeps what these produce (hashes, families, key ids); the API's auth
//! extractor calls [`AccessTokens::verify`] or [`PresentedApiKey::parse`], then the
//! revocation store (`assay_infra::revocation`), then the store for user and membership.

pub mod access_token;
pub mod api_key;
pub mod bearer;
pub mod error;
pub mod invitation;
pub mod password;
pub mod random;
pub mod refresh;
pub mod throttle;

pub use access_token::{
    AccessClaims, AccessTokenConfig, AccessTokens, IssuedAccessToken, JwtKey, Keyring,
};
pub use api_key::{ApiScope, ApiScopes, NewApiKey, PresentedApiKey, is_api_key};
pub use bearer::{BearerCredential, BearerError};
pub use error::{ApiKeyError, KeyError, PasswordHashError, TokenError, UnknownScope};
pub use invitation::{NewInvitationToken, invitation_token_hash};
pub use password::{Argon2Params, PasswordHasher, PasswordHasherConfig};
pub use refresh::{DEFAULT_REFRESH_TTL, NewRefreshToken, refresh_token_hash};
pub use throttle::LoginBackoff;
