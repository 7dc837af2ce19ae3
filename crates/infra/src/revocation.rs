//! Token revocation store: in-process or Redis, so every API node sees a logout.
//!
//! Three kinds of revocation, each kept only as long as it can matter:
//! - one token (its `jti`) until the token's own expiry (logout of one access token);
//! - every token of a user issued at or before a cut-off (logout-all, deactivation, role
//!   removal), kept for the longest lifetime a token can have;
//! - a session family (a refresh-token chain and the access tokens minted from it), until
//!   the family's expiry (logout of a session, refresh-token reuse).
//!
//! Every revocation is written to the in-process store too, so the node that revoked
//! honours it even while Redis is down; Redis writes that failed are queued and replayed
//! when Redis is back. Checks ask Redis (so other nodes' revocations are seen) and fall
//! back to the in-process store when Redis fails.

use crate::rate_limit::RedisLink;
use assay_core::UserId;
use moka::Expiry;
use moka::future::Cache;
use redis::aio::ConnectionManager;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a check needs to know about a presented token.
#[derive(Clone, Copy, Debug)]
pub struct TokenRef<'a> {
    /// The token's unique id (`jti`).
    pub jti: &'a str,
    /// The user the token was issued to (`sub`).
    pub user: UserId,
    /// When it was issued, as precisely as known (millisecond precision is used).
    pub issued_at: SystemTime,
    /// The session family it belongs to (`sid`), when it has one.
    pub family: Option<&'a str>,
}

/// Settings for both backends.
#[derive(Clone, Debug)]
pub struct RevocationConfig {
    /// The longest lifetime any access token can have, plus clock leeway: a user cut-off
    /// must be remembered at least this long.
    pub max_token_lifetime: Duration,
    /// A Redis call slower than this counts as a failure and falls back.
    pub redis_op_timeout: Duration,
    /// After a Redis failure, how long to use the in-process store before trying again.
    pub redis_retry_after: Duration,
    /// At most one warning per this interval while Redis is failing.
    pub warn_interval: Duration,
    /// Most failed Redis writes kept for replay; older ones are dropped beyond it.
    pub max_pending_writes: usize,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self {
            max_token_lifetime: Duration::from_secs(60 * 60),
            redis_op_timeout: Duration::from_millis(250),
            redis_retry_after: Duration::from_secs(1),
            warn_interval: Duration::from_secs(30),
            max_pending_writes: 100_000,
        }
    }
}

/// Revoked tokens, users' cut-offs and session families. Cheap to clone; clones share.
#[derive(Clone)]
pub struct RevocationStore {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: RevocationConfig,
    local: Cache<String, Entry>,
    redis: Option<RedisRevocations>,
}

struct RedisRevocations {
    link: RedisLink,
    key_prefix: String,
    cutoff_script: redis::Script,
    pending: Mutex<Vec<Write>>,
}

/// One revocation, as stored: a value (1, or a cut-off in ms since the epoch) and an
/// absolute expiry.
#[derive(Clone, Debug)]
struct Entry {
    value: i64,
    expires_at: SystemTime,
}

#[derive(Clone, Debug)]
struct Write {
    key: String,
    entry: Entry,
    /// Keep the larger of the stored and the new value (cut-offs only move forward).
    max: bool,
}

struct UntilExpiry;

impl Expiry<String, Entry> for UntilExpiry {
    fn expire_after_create(&self, _: &String, v: &Entry, _: Instant) -> Option<Duration> {
        Some(remaining(v.expires_at))
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(v.expires_at))
    }
}

fn remaining(until: SystemTime) -> Duration {
    until
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

fn epoch_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Sets a key to the larger of its value and ARGV[1], with expiry ARGV[2] ms when it
/// changes. KEYS[1] key.
const MAX_LUA: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]))
local new = tonumber(ARGV[1])
if (not cur) or cur < new then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
";

impl RevocationStore {
    /// In-process only: right for a single node.
    pub fn in_memory(cfg: RevocationConfig) -> Self {
        Self::build(cfg, None)
    }

    /// Shared through Redis; keys are `{key_prefix}rev:{jti|user|fam}:{id}` with a TTL.
    pub fn with_redis(cfg: RevocationConfig, conn: ConnectionManager, key_prefix: &str) -> Self {
        let link = RedisLink::new(
            "revocation",
            conn,
            cfg.redis_op_timeout,
            cfg.redis_retry_after,
            cfg.warn_interval,
        );
        let redis = RedisRevocations {
            link,
            key_prefix: format!("{key_prefix}rev:"),
            cutoff_script: redis::Script::new(MAX_LUA),
            pending: Mutex::new(Vec::new()),
        };
        Self::build(cfg, Some(redis))
    }

    fn build(cfg: RevocationConfig, redis: Option<RedisRevocations>) -> Self {
        let local = Cache::builder().expire_after(UntilExpiry).build();
        Self {
            inner: Arc::new(Inner { cfg, local, redis }),
        }
    }

    /// Revokes one token until it expires on its own.
    pub async fn revoke_token(&self, jti: &str, expires_at: SystemTime) {
        self.record(format!("jti:{jti}"), 1, expires_at, false)
            .await;
    }

    /// Revokes every token of `user` issued at or before `cutoff` (logout-all,
    /// deactivation). A later cut-off replaces an earlier one, never the reverse.
    pub async fn revoke_user_tokens_issued_before(&self, user: UserId, cutoff: SystemTime) {
        let expires_at = SystemTime::now() + self.inner.cfg.max_token_lifetime;
        self.record(format!("user:{user}"), epoch_ms(cutoff), expires_at, true)
            .await;
    }

    /// Revokes a session family (every refresh and access token of one session) until
    /// `expires_at`, the latest expiry of any of its tokens.
    pub async fn revoke_family(&self, family: &str, expires_at: SystemTime) {
        self.record(format!("fam:{family}"), 1, expires_at, false)
            .await;
    }

    /// Whether the token has been revoked in any of the three ways.
    pub async fn is_revoked(&self, token: &TokenRef<'_>) -> bool {
        let keys = check_keys(token);
        let issued_ms = epoch_ms(token.issued_at);
        let local = self.check_local(&keys, issued_ms).await;
        if local {
            return true;
        }
        let Some(redis) = &self.inner.redis else {
            return false;
        };
        let full: Vec<String> = keys.iter().map(|k| redis.key(&k.name)).collect();
        let values: Option<Vec<Option<i64>>> = redis
            .link
            .run("check", |mut conn| async move {
                redis::cmd("MGET").arg(&full).query_async(&mut conn).await
            })
            .await;
        match values {
            Some(values) => {
                redis.replay_pending().await;
                revoked_by(&keys, &values, issued_ms)
            }
            // Redis is failing: the in-process answer is all there is.
            None => false,
        }
    }

    /// Whether this store is configured with Redis.
    pub fn has_redis(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// False while Redis is failing and the in-process store is used alone.
    pub fn redis_healthy(&self) -> bool {
        self.inner.redis.as_ref().is_some_and(|r| r.link.healthy())
    }

    async fn record(&self, key: String, value: i64, expires_at: SystemTime, max: bool) {
        if expires_at <= SystemTime::now() {
            return; // already expired: nothing to remember
        }
        let entry = Entry { value, expires_at };
        self.inner
            .local
            .entry(key.clone())
            .and_compute_with(|current| {
                let keep_current = max && current.is_some_and(|c| c.value().value >= value);
                std::future::ready(if keep_current {
                    moka::ops::compute::Op::Nop
                } else {
                    moka::ops::compute::Op::Put(entry.clone())
                })
            })
            .await;
        if let Some(redis) = &self.inner.redis {
            let write = Write { key, entry, max };
            if redis.write(&write).await {
                redis.replay_pending().await;
            } else {
                redis.queue(write, self.inner.cfg.max_pending_writes);
            }
        }
    }

    async fn check_local(&self, keys: &[CheckKey], issued_ms: i64) -> bool {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.inner.local.get(&key.name).await.map(|e| e.value));
        }
        revoked_by(keys, &values, issued_ms)
    }
}

/// A key to look up and how to read its value.
struct CheckKey {
    name: String,
    cutoff: bool,
}

fn check_keys(token: &TokenRef<'_>) -> Vec<CheckKey> {
    let mut keys = vec![
        CheckKey {
            name: format!("jti:{}", token.jti),
            cutoff: false,
        },
        CheckKey {
            name: format!("user:{}", token.user),
            cutoff: true,
        },
    ];
    if let Some(family) = token.family {
        keys.push(CheckKey {
            name: format!("fam:{family}"),
            cutoff: false,
        });
    }
    keys
}

fn revoked_by(keys: &[CheckKey], values: &[Option<i64>], issued_ms: i64) -> bool {
    keys.iter().zip(values).any(|(key, value)| match value {
        Some(cutoff) if key.cutoff => issued_ms <= *cutoff,
        Some(_) => true,
        None => false,
    })
}

impl RedisRevocations {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// Writes one revocation; false when Redis failed.
    async fn write(&self, write: &Write) -> bool {
        let ttl_ms = remaining(write.entry.expires_at).as_millis().max(1);
        let ttl_ms = u64::try_from(ttl_ms).unwrap_or(u64::MAX);
        let key = self.key(&write.key);
        let value = write.entry.value;
        let done: Option<()> = if write.max {
            self.link
                .run("revoke", |mut conn| async move {
                    self.cutoff_script
                        .key(&key)
                        .arg(value)
                        .arg(ttl_ms)
                        .invoke_async(&mut conn)
                        .await
                })
                .await
        } else {
            self.link
                .run("revoke", |mut conn| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(value)
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut conn)
                        .await
                })
                .await
        };
        done.is_some()
    }

    fn queue(&self, write: Write, cap: usize) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= cap {
            pending.remove(0);
            metrics::counter!("assay_revocation_pending_dropped_total").increment(1);
        }
        pending.push(write);
    }

    /// Replays revocations that could not be written while Redis was down, so other nodes
    /// learn about them. Entries that have expired meanwhile are skipped.
    async fn replay_pending(&self) {
        let batch: Vec<Write> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.is_empty() {
                return;
            }
            std::mem::take(&mut *pending)
        };
        let now = SystemTime::now();
        let mut failed = Vec::new();
        for write in batch.into_iter().filter(|w| w.entry.expires_at > now) {
            if !failed.is_empty() || !self.write(&write).await {
                failed.push(write);
            }
        }
        if failed.is_empty() {
            tracing::info!("replayed revocations made while redis was down");
        } else {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            failed.append(&mut pending);
            *pending = failed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::tests::{connect, pttl, redis_url, unique_prefix};
    use assay_store::testing::CuttableProxy;

    fn token<'a>(
        jti: &'a str,
        user: UserId,
        issued_at: SystemTime,
        family: Option<&'a str>,
    ) -> TokenRef<'a> {
        TokenRef {
            jti,
            user,
            issued_at,
            family,
        }
    }

    fn later(secs: u64) -> SystemTime {
        SystemTime::now() + Duration::from_secs(secs)
    }

    /// The behaviour both backends must have.
    async fn exercise(a: &RevocationStore, b: &RevocationStore) {
        let user = UserId::new();
        let now = SystemTime::now();
        let t1 = token("jti-1", user, now - Duration::from_secs(5), Some("fam-1"));
        let t2 = token("jti-2", user, now - Duration::from_secs(5), Some("fam-2"));
        assert!(!b.is_revoked(&t1).await);

        a.revoke_token("jti-1", later(900)).await;
        assert!(a.is_revoked(&t1).await);
        assert!(b.is_revoked(&t1).await, "seen by the other node");
        assert!(!b.is_revoked(&t2).await, "other tokens unaffected");

        a.revoke_family("fam-2", later(3600)).await;
        assert!(b.is_revoked(&t2).await);
        let other_user_same_jti = token("jti-3", UserId::new(), now, None);
        assert!(!b.is_revoked(&other_user_same_jti).await);

        // Logout-all: older tokens die, tokens issued after the cut-off live.
        let cutoff = SystemTime::now();
        let old = token("jti-4", user, cutoff - Duration::from_millis(10), None);
        let new = token("jti-5", user, cutoff + Duration::from_millis(10), None);
        assert!(!b.is_revoked(&old).await);
        a.revoke_user_tokens_issued_before(user, cutoff).await;
        assert!(b.is_revoked(&old).await);
        assert!(!b.is_revoked(&new).await);
        // An earlier cut-off arriving late does not undo the later one.
        b.revoke_user_tokens_issued_before(user, cutoff - Duration::from_secs(60))
            .await;
        assert!(a.is_revoked(&old).await);
        assert!(b.is_revoked(&old).await);
    }

    #[tokio::test]
    async fn in_memory_revocations() {
        let store = RevocationStore::in_memory(RevocationConfig::default());
        exercise(&store, &store).await;
    }

    #[tokio::test]
    async fn in_memory_entries_expire_with_the_token() {
        let store = RevocationStore::in_memory(RevocationConfig::default());
        let t = token("short", UserId::new(), SystemTime::now(), None);
        store.revoke_token("short", SystemTime::now()).await;
        assert!(
            !store.is_revoked(&t).await,
            "an already expired token is not stored"
        );
        store
            .revoke_token("short", SystemTime::now() + Duration::from_millis(200))
            .await;
        assert!(store.is_revoked(&t).await);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            store.inner.local.get("jti:short").await.is_none(),
            "forgotten after the token's expiry"
        );
    }

    fn cfg() -> RevocationConfig {
        RevocationConfig {
            redis_op_timeout: Duration::from_millis(500),
            redis_retry_after: Duration::from_millis(100),
            warn_interval: Duration::from_millis(50),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn two_nodes_on_one_redis_see_each_others_revocations() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_prefix("revocation");
        let a = RevocationStore::with_redis(cfg(), connect(&url).await, &prefix);
        let b = RevocationStore::with_redis(cfg(), connect(&url).await, &prefix);
        exercise(&a, &b).await;
        assert!(a.redis_healthy() && b.redis_healthy());
        // Stored with a TTL, not forever.
        let ttl = pttl(&url, &format!("{prefix}rev:jti:jti-1")).await;
        assert!(ttl > 0 && ttl <= 900_000, "ttl {ttl}");
    }

    #[tokio::test]
    async fn redis_outage_keeps_local_revocations_and_replays_them() {
        let Some(url) = redis_url() else { return };
        let relay = CuttableProxy::to_url(&url).await;
        let prefix = unique_prefix("revocation-outage");
        let a = RevocationStore::with_redis(cfg(), connect(&relay.url(&url)).await, &prefix);
        let b = RevocationStore::with_redis(cfg(), connect(&url).await, &prefix);
        let user = UserId::new();
        let t = token("during-outage", user, SystemTime::now(), None);
        assert!(!a.is_revoked(&t).await);

        relay.cut();
        a.revoke_token("during-outage", later(900)).await;
        assert!(
            a.is_revoked(&t).await,
            "the revoking node honours it at once"
        );
        assert!(!a.redis_healthy());
        assert!(!b.is_revoked(&t).await, "not yet in Redis");

        relay.restore();
        let mut replayed = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let _ = a
                .is_revoked(&token("probe", user, SystemTime::now(), None))
                .await;
            if a.redis_healthy() && b.is_revoked(&t).await {
                replayed = true;
                break;
            }
        }
        assert!(replayed, "the revocation reached Redis once it was back");
    }
}
