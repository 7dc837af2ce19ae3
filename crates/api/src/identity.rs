//! The authentication service: token issuing and verification, password hashing,
//! revocation, request limits and the short-lived membership cache. Built once at start-up
//! from configuration and shared by every request.

use assay_auth::{
    AccessTokenConfig, AccessTokens, JwtKey, Keyring, PasswordHasher, PasswordHasherConfig,
};
use assay_config::{Config, DEV_JWT_SECRET};
use assay_core::{OrgId, Role, UserId};
use assay_infra::rate_limit::{RateLimiter, RateLimiterConfig};
use assay_infra::redis_conn::RedisConn;
use assay_infra::refresh::RefreshingCache;
use assay_infra::revocation::{RevocationConfig, RevocationStore};
use assay_store::repo::api_keys::{self, ApiKeyCredential};
use assay_store::repo::organisations::{self, Organisation};
use assay_store::repo::{memberships, users};
use assay_store::{Db, StoreError};
use chrono::{DateTime, Utc};
use moka::future::Cache;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a membership or account state may be served from memory. A role change or a
/// removal is seen at once on the node that made it (the entry is invalidated), and with
/// Redis on every other node as soon as the announcement arrives ([`crate::cache_sync`]);
/// this lifetime bounds it when an announcement is lost (or there is no Redis to carry
/// it). Past half of it a request reads the entry again in the background
/// ([`RefreshingCache`]), so requests do not wait for the store when an entry expires.
const MEMBERSHIP_CACHE_TTL: Duration = Duration::from_secs(5);

pub struct Identity {
    pub tokens: AccessTokens,
    pub hasher: PasswordHasher,
    pub revocation: RevocationStore,
    pub auth_limiter: RateLimiter,
    pub api_limiter: RateLimiter,
    pub refresh_ttl: Duration,
    pub invitation_ttl: Duration,
    roles: RefreshingCache<(OrgId, UserId), Option<Role>>,
    active: RefreshingCache<UserId, bool>,
    /// A person's rendered profile and memberships (`/me`), same lifetime and invalidation
    /// as the membership cache.
    profiles: Cache<UserId, axum::body::Bytes>,
    /// API key credentials by key id (`None`: no such key), same lifetime as the membership
    /// cache: a revocation applies at once on the node that made it, on the other nodes when
    /// its announcement arrives, and within [`MEMBERSHIP_CACHE_TTL`] in any case. Without
    /// it every API-key request read the store (on SQLite that capped
    /// `/v1/chat/completions` near 1,000 req/s).
    api_keys: RefreshingCache<String, Option<Arc<CachedApiKey>>>,
}

/// A stored API key credential, plus when this node last recorded its use.
pub struct CachedApiKey {
    pub credential: ApiKeyCredential,
    last_recorded: Mutex<Option<DateTime<Utc>>>,
}

impl CachedApiKey {
    /// Whether a use at `now` should be written to `last_used_at`: the last recorded use
    /// (stored, or written by this node) is at least `precision` old. Claims the write.
    pub fn claim_use_record(&self, now: DateTime<Utc>, precision: chrono::TimeDelta) -> bool {
        let mut last = self.last_recorded.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now - t < precision) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Why the identity service could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(String);

/// A key id derived from the secret, so tokens name the key that signed them and several
/// secrets can be accepted during a rotation without configuring ids.
fn kid_for(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..6])
}

impl Identity {
    pub fn from_config(cfg: &Config, redis: Option<&RedisConn>) -> Result<Self, IdentityError> {
        let err = |e: &dyn std::fmt::Display| IdentityError(e.to_string());
        let configured = cfg.auth.jwt_secret.expose_secret();
        // The development default is public; rather than sign with it, a bare `assay serve`
        // signs with a random per-process key (sessions end at restart). Production refuses
        // the default before this point.
        let secret: Vec<u8> = if configured == DEV_JWT_SECRET {
            tracing::warn!(
                "auth.jwt_secret is not set: using a random signing key; sessions will not survive a restart"
            );
            rand::random::<[u8; 32]>().to_vec()
        } else {
            configured.as_bytes().to_vec()
        };
        let current = JwtKey::hs256(kid_for(&secret), &secret).map_err(|e| err(&e))?;
        let previous = cfg
            .auth
            .previous_jwt_secrets
            .iter()
            .map(|s| {
                JwtKey::hs256(
                    kid_for(s.expose_secret().as_bytes()),
                    s.expose_secret().as_bytes(),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(&e))?;
        let keyring = Keyring::new(current, previous).map_err(|e| err(&e))?;
        let mut token_cfg =
            AccessTokenConfig::new(cfg.auth.issuer.clone(), cfg.auth.audience.clone());
        token_cfg.ttl = Duration::from_secs(cfg.auth.access_token_ttl_secs);
        let tokens = AccessTokens::new(token_cfg, keyring);

        let mut hasher_cfg = PasswordHasherConfig::default();
        if cfg.auth.password_hash_concurrency > 0 {
            hasher_cfg.max_concurrent = cfg.auth.password_hash_concurrency;
        }
        let hasher = PasswordHasher::new(hasher_cfg).map_err(|e| err(&e))?;

        let revocation_cfg = RevocationConfig {
            max_token_lifetime: Duration::from_secs(cfg.auth.access_token_ttl_secs + 120),
            ..RevocationConfig::default()
        };
        let auth_cfg = RateLimiterConfig {
            name: "auth_ip",
            ..RateLimiterConfig::default()
        };
        let api_cfg = RateLimiterConfig {
            name: "api",
            ..RateLimiterConfig::default()
        };
        let prefix = cfg.redis.key_prefix.as_str();
        let (revocation, auth_limiter, api_limiter) = match redis {
            Some(conn) => (
                RevocationStore::with_redis(revocation_cfg, conn.clone(), prefix),
                RateLimiter::with_redis(auth_cfg, conn.clone(), prefix),
                RateLimiter::with_redis(api_cfg, conn.clone(), prefix),
            ),
            None => (
                RevocationStore::in_memory(revocation_cfg),
                RateLimiter::in_memory(auth_cfg),
                RateLimiter::in_memory(api_cfg),
            ),
        };
        Ok(Self {
            tokens,
            hasher,
            revocation,
            auth_limiter,
            api_limiter,
            refresh_ttl: Duration::from_secs(cfg.auth.refresh_token_ttl_secs),
            invitation_ttl: Duration::from_secs(cfg.auth.invitation_ttl_secs),
            roles: RefreshingCache::new("roles", MEMBERSHIP_CACHE_TTL, 100_000),
            profiles: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(MEMBERSHIP_CACHE_TTL)
                .build(),
            active: RefreshingCache::new("active_users", MEMBERSHIP_CACHE_TTL, 100_000),
            api_keys: RefreshingCache::new("api_keys", MEMBERSHIP_CACHE_TTL, 100_000),
        })
    }

    /// The caller's role in `org`, from the store (briefly cached). `None`: not a member.
    pub async fn role_of(
        &self,
        db: &Db,
        org: OrgId,
        user: UserId,
    ) -> Result<Option<Role>, assay_store::StoreError> {
        let read = || {
            let db = db.clone();
            move || async move { memberships::role_of(db.primary(), org, user).await }
        };
        self.roles
            .get(&(org, user), read)
            .await
            .map_err(StoreError::from_shared)
    }

    /// Whether the account may act (exists and is not deactivated), briefly cached.
    pub async fn user_active(
        &self,
        db: &Db,
        user: UserId,
    ) -> Result<bool, assay_store::StoreError> {
        let read = || {
            let db = db.clone();
            move || async move {
                match users::get(db.primary(), user).await {
                    Ok(u) => Ok(u.is_active),
                    Err(StoreError::NotFound { .. }) => Ok(false),
                    Err(e) => Err(e),
                }
            }
        };
        self.active
            .get(&user, read)
            .await
            .map_err(StoreError::from_shared)
    }

    /// The person's profile and memberships rendered by `render`, from the store at most
    /// once per cache lifetime.
    pub async fn profile_of(
        &self,
        db: &Db,
        user: UserId,
        render: impl FnOnce(users::User, Vec<(Organisation, Role)>) -> serde_json::Value,
    ) -> Result<axum::body::Bytes, assay_store::StoreError> {
        if let Some(hit) = self.profiles.get(&user).await {
            return Ok(hit);
        }
        let person = users::get(db.primary(), user).await?;
        let orgs = organisations::list_for_user(db.primary(), user).await?;
        // Kept serialised: a hit is then a reference-counted copy, not a JSON encode.
        let rendered = axum::body::Bytes::from(render(person, orgs).to_string());
        self.profiles.insert(user, rendered.clone()).await;
        Ok(rendered)
    }

    /// The credential of API key `id` (briefly cached, misses included). `None`: no such key.
    pub async fn api_key(
        &self,
        db: &Db,
        id: &str,
    ) -> Result<Option<Arc<CachedApiKey>>, assay_store::StoreError> {
        let read = || {
            let (db, key) = (db.clone(), id.to_owned());
            move || async move {
                let found = api_keys::find_for_auth(db.primary(), &key).await?;
                Ok::<_, StoreError>(found.map(|credential| {
                    Arc::new(CachedApiKey {
                        last_recorded: Mutex::new(credential.key.last_used_at),
                        credential,
                    })
                }))
            }
        };
        self.api_keys
            .get(id, read)
            .await
            .map_err(StoreError::from_shared)
    }

    /// Forget a cached API key after it was revoked (or otherwise changed) here.
    pub async fn api_key_changed(&self, id: &str) {
        self.api_keys.invalidate(id).await;
    }

    /// Forget a cached membership after it changed here.
    pub async fn membership_changed(&self, org: OrgId, user: UserId) {
        self.roles.invalidate(&(org, user)).await;
        self.profiles.invalidate(&user).await;
    }

    /// Forget a cached account state after it changed here.
    pub async fn user_changed(&self, user: UserId) {
        self.active.invalidate(&user).await;
        self.profiles.invalidate(&user).await;
    }

    /// Forget the cached profiles after an organisation's details changed: they list it
    /// under each member, and profiles are kept per person, so all are dropped (renames
    /// are rare; the next `/me` of each person reads the store once).
    pub fn organisation_changed(&self) {
        self.profiles.invalidate_all();
    }

    /// Forget every cached credential, membership and account state (changes made on
    /// other nodes may have been missed).
    pub fn forget_everything(&self) {
        self.api_keys.invalidate_all();
        self.roles.invalidate_all();
        self.active.invalidate_all();
        self.profiles.invalidate_all();
    }
}
