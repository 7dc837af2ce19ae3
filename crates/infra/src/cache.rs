//! Two-layer cache: in-process (moka) and Redis when configured.
//!
//! Reads look in the process first, then in Redis (and copy a Redis hit into the process
//! with the entry's remaining TTL); writes go to both. Redis is an accelerator, never a
//! dependency: when it errors or hangs the call is served from the process alone, the error
//! is counted and logged at most once per interval, and Redis is used again as soon as the
//! connection manager has reconnected.

use metrics::counter;
use moka::Expiry;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Tuning of a [`TieredCache`].
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Name used in metric labels and key prefixes (`ai`, `catalogue`...).
    pub name: &'static str,
    /// Most entries the in-process layer holds before it evicts.
    pub l1_capacity: u64,
    /// Longest a single Redis command may take before the call goes on without Redis.
    pub redis_op_timeout: Duration,
    /// At most one warning per this interval while Redis is failing.
    pub warn_interval: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            name: "default",
            l1_capacity: 10_000,
            redis_op_timeout: Duration::from_millis(250),
            warn_interval: Duration::from_secs(30),
        }
    }
}

/// Counters since the cache was built; also exported through `metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub l1_hits: u64,
    pub l2_hits: u64,
    pub misses: u64,
    /// Redis commands that failed or timed out (each one served without Redis).
    pub l2_errors: u64,
}

/// The process-local and optional Redis cache. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct TieredCache {
    inner: Arc<Inner>,
}

struct Inner {
    name: &'static str,
    l1: moka::future::Cache<String, L1Entry>,
    l2: Option<RedisLayer>,
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    l2_errors: AtomicU64,
}

#[derive(Clone)]
struct L1Entry {
    value: Arc<[u8]>,
    ttl: Duration,
}

/// Each entry lives for its own TTL, counted from its last write.
struct PerEntryTtl;

impl Expiry<String, L1Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, v: &L1Entry, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &L1Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

struct RedisLayer {
    conn: ConnectionManager,
    prefix: String,
    op_timeout: Duration,
    warn_interval: Duration,
    last_warn: Mutex<Option<Instant>>,
    degraded: AtomicBool,
}

impl TieredCache {
    /// A cache that lives in this process only (the embedded default).
    pub fn in_memory(cfg: CacheConfig) -> Self {
        Self::build(cfg, None)
    }

    /// A cache backed by Redis as well. `key_prefix` namespaces the keys in Redis so several
    /// deployments or tests can share one server.
    pub fn with_redis(cfg: CacheConfig, conn: ConnectionManager, key_prefix: &str) -> Self {
        let layer = RedisLayer {
            conn,
            prefix: format!("{key_prefix}{}:", cfg.name),
            op_timeout: cfg.redis_op_timeout,
            warn_interval: cfg.warn_interval,
            last_warn: Mutex::new(None),
            degraded: AtomicBool::new(false),
        };
        Self::build(cfg, Some(layer))
    }

    /// A connection manager that connects on first use, so a Redis that is down at start-up
    /// does not stop the process; the manager reconnects by itself afterwards.
    pub fn lazy_redis_connection(
        url: &str,
        op_timeout: Duration,
    ) -> redis::RedisResult<ConnectionManager> {
        let client = crate::redis_conn::client(url)?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        ConnectionManager::new_lazy_with_config(client, cfg)
    }

    fn build(cfg: CacheConfig, l2: Option<RedisLayer>) -> Self {
        let l1 = moka::future::Cache::builder()
            .max_capacity(cfg.l1_capacity)
            .expire_after(PerEntryTtl)
            .build();
        Self {
            inner: Arc::new(Inner {
                name: cfg.name,
                l1,
                l2,
                l1_hits: AtomicU64::new(0),
                l2_hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                l2_errors: AtomicU64::new(0),
            }),
        }
    }

    /// Whether a Redis layer is configured.
    pub fn has_redis(&self) -> bool {
        self.inner.l2.is_some()
    }

    /// False while the last Redis command failed (the cache is then process-local).
    pub fn redis_healthy(&self) -> bool {
        self.inner
            .l2
            .as_ref()
            .is_some_and(|l2| !l2.degraded.load(Ordering::Relaxed))
    }

    pub fn stats(&self) -> CacheStats {
        let i = &self.inner;
        CacheStats {
            l1_hits: i.l1_hits.load(Ordering::Relaxed),
            l2_hits: i.l2_hits.load(Ordering::Relaxed),
            misses: i.misses.load(Ordering::Relaxed),
            l2_errors: i.l2_errors.load(Ordering::Relaxed),
        }
    }

    /// The value under `key`, if present and not expired in either layer.
    pub async fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let i = &self.inner;
        if let Some(hit) = i.l1.get(key).await {
            i.l1_hits.fetch_add(1, Ordering::Relaxed);
            counter!("assay_cache_hits_total", "cache" => i.name, "layer" => "memory").increment(1);
            return Some(hit.value);
        }
        if let Some(l2) = &i.l2 {
            let mut pipe = redis::pipe();
            let full = l2.key(key);
            pipe.get(&full).cmd("PTTL").arg(&full);
            let res: Option<(Option<Vec<u8>>, i64)> = self.l2_call("get", pipe).await;
            if let Some((Some(bytes), pttl)) = res {
                // A key without expiry (-1) should not exist; keep it briefly rather than forever.
                let ttl = if pttl > 0 {
                    Duration::from_millis(pttl as u64)
                } else {
                    Duration::from_secs(1)
                };
                let value: Arc<[u8]> = bytes.into();
                i.l1.insert(
                    key.to_owned(),
                    L1Entry {
                        value: value.clone(),
                        ttl,
                    },
                )
                .await;
                i.l2_hits.fetch_add(1, Ordering::Relaxed);
                counter!("assay_cache_hits_total", "cache" => i.name, "layer" => "redis")
                    .increment(1);
                return Some(value);
            }
        }
        i.misses.fetch_add(1, Ordering::Relaxed);
        counter!("assay_cache_misses_total", "cache" => i.name).increment(1);
        None
    }

    /// Store `value` under `key` for `ttl` in both layers. Never fails: a Redis error leaves
    /// the entry in the process only.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let i = &self.inner;
        i.l1.insert(
            key.to_owned(),
            L1Entry {
                value: value.into(),
                ttl,
            },
        )
        .await;
        self.set_l2(key, value, ttl).await;
    }

    /// Like [`set`](Self::set), but the Redis write runs in the background: for callers on a
    /// latency-sensitive path that must not wait for a network round trip. The in-process
    /// layer is updated before this returns.
    pub async fn set_detached(&self, key: &str, value: &[u8], ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        self.inner
            .l1
            .insert(
                key.to_owned(),
                L1Entry {
                    value: value.into(),
                    ttl,
                },
            )
            .await;
        if self.inner.l2.is_some() {
            let (this, key, value) = (self.clone(), key.to_owned(), value.to_vec());
            tokio::spawn(async move { this.set_l2(&key, &value, ttl).await });
        }
    }

    async fn set_l2(&self, key: &str, value: &[u8], ttl: Duration) {
        if let Some(l2) = &self.inner.l2 {
            let mut pipe = redis::pipe();
            let ms = ttl.as_millis().max(1) as u64;
            pipe.cmd("SET")
                .arg(l2.key(key))
                .arg(value)
                .arg("PX")
                .arg(ms)
                .ignore();
            let _: Option<()> = self.l2_call("set", pipe).await;
        }
    }

    /// Remove `key` from both layers.
    pub async fn invalidate(&self, key: &str) {
        let i = &self.inner;
        i.l1.invalidate(key).await;
        if let Some(l2) = &i.l2 {
            let mut pipe = redis::pipe();
            pipe.del(l2.key(key)).ignore();
            let _: Option<()> = self.l2_call("invalidate", pipe).await;
        }
    }

    /// Run a pipeline on Redis with the operation timeout; `None` when Redis failed.
    async fn l2_call<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        pipe: redis::Pipeline,
    ) -> Option<T> {
        let l2 = self.inner.l2.as_ref()?;
        let mut conn = l2.conn.clone();
        let outcome = tokio::time::timeout(l2.op_timeout, pipe.query_async::<T>(&mut conn)).await;
        match outcome {
            Ok(Ok(v)) => {
                if l2.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(cache = self.inner.name, "redis cache layer recovered");
                }
                Some(v)
            }
            Ok(Err(e)) => {
                self.note_l2_error(l2, op, &e.to_string());
                None
            }
            Err(_) => {
                self.note_l2_error(l2, op, "timed out");
                None
            }
        }
    }

    fn note_l2_error(&self, l2: &RedisLayer, op: &'static str, err: &str) {
        let name = self.inner.name;
        self.inner.l2_errors.fetch_add(1, Ordering::Relaxed);
        counter!("assay_cache_redis_errors_total", "cache" => name, "op" => op).increment(1);
        l2.degraded.store(true, Ordering::Relaxed);
        let now = Instant::now();
        let mut last = l2.last_warn.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| now.duration_since(t) >= l2.warn_interval) {
            *last = Some(now);
            tracing::warn!(
                cache = name,
                op,
                error = err,
                "redis cache layer unavailable; serving from memory"
            );
        }
    }
}

impl RedisLayer {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::tests::redis_url;
    use assay_store::testing::CuttableProxy;

    fn cfg(name: &'static str) -> CacheConfig {
        CacheConfig {
            name,
            redis_op_timeout: Duration::from_millis(300),
            warn_interval: Duration::from_millis(50),
            ..CacheConfig::default()
        }
    }

    fn unique_prefix(test: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("assay-test:{test}:{}:{nanos}:", std::process::id())
    }

    #[tokio::test]
    async fn memory_hit_miss_and_invalidate() {
        let c = TieredCache::in_memory(cfg("t1"));
        assert!(c.get("k").await.is_none());
        c.set("k", b"v1", Duration::from_secs(60)).await;
        assert_eq!(&*c.get("k").await.unwrap(), b"v1");
        c.set("k", b"v2", Duration::from_secs(60)).await;
        assert_eq!(&*c.get("k").await.unwrap(), b"v2");
        c.invalidate("k").await;
        assert!(c.get("k").await.is_none());
        let s = c.stats();
        assert_eq!((s.l1_hits, s.misses, s.l2_errors), (2, 2, 0));
        assert!(!c.has_redis());
    }

    #[tokio::test]
    async fn memory_entries_expire_after_their_own_ttl() {
        let c = TieredCache::in_memory(cfg("t2"));
        c.set("short", b"a", Duration::from_millis(100)).await;
        c.set("long", b"b", Duration::from_secs(60)).await;
        c.set("never", b"c", Duration::ZERO).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(c.get("short").await.is_none());
        assert!(c.get("long").await.is_some());
        assert!(c.get("never").await.is_none());
    }

    #[tokio::test]
    async fn redis_layer_is_shared_between_nodes_and_keeps_ttl() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_prefix("shared");
        let node = |n| {
            let conn =
                TieredCache::lazy_redis_connection(&url, Duration::from_millis(500)).unwrap();
            TieredCache::with_redis(cfg(n), conn, &prefix)
        };
        let (a, b) = (node("shared"), node("shared"));
        a.set("answer", b"42", Duration::from_millis(400)).await;
        assert_eq!(
            &*b.get("answer").await.expect("node b sees node a's entry"),
            b"42"
        );
        assert_eq!(b.stats().l2_hits, 1);
        // Now in b's memory too: the next read does not need Redis.
        assert!(b.get("answer").await.is_some());
        assert_eq!(b.stats().l1_hits, 1);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(
            a.get("answer").await.is_none(),
            "expired in memory and in Redis"
        );
        assert!(
            b.get("answer").await.is_none(),
            "copied entry kept the remaining TTL"
        );
        a.set("gone", b"x", Duration::from_secs(30)).await;
        b.invalidate("gone").await;
        let fresh = node("shared");
        assert!(
            fresh.get("gone").await.is_none(),
            "invalidate removed it from Redis"
        );
        assert_eq!(a.stats().l2_errors + b.stats().l2_errors, 0);
    }

    #[tokio::test]
    async fn redis_outage_serves_from_memory_and_recovers() {
        let Some(url) = redis_url() else { return };
        let relay = CuttableProxy::to_url(&url).await;
        let relay_url = relay.url(&url);
        let prefix = unique_prefix("outage");
        let conn =
            TieredCache::lazy_redis_connection(&relay_url, Duration::from_millis(300)).unwrap();
        let cache = TieredCache::with_redis(cfg("outage"), conn, &prefix);

        cache.set("before", b"1", Duration::from_secs(30)).await;
        assert!(cache.redis_healthy());
        assert_eq!(cache.stats().l2_errors, 0);

        relay.cut();
        // Writes and reads still succeed, from memory.
        cache.set("during", b"2", Duration::from_secs(30)).await;
        assert_eq!(&*cache.get("during").await.unwrap(), b"2");
        assert!(cache.get("absent").await.is_none(), "a miss, not an error");
        assert!(cache.stats().l2_errors >= 1, "the outage was counted");
        assert!(!cache.redis_healthy());

        relay.restore();
        // The connection manager reconnects on its own; allow it a few attempts.
        let mut recovered = false;
        for _ in 0..50 {
            cache.set("after", b"3", Duration::from_secs(30)).await;
            if cache.redis_healthy() {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recovered, "redis layer came back after the outage");
        // Proven through a separate node that only has Redis in common.
        let direct = TieredCache::lazy_redis_connection(&url, Duration::from_millis(500)).unwrap();
        let other = TieredCache::with_redis(cfg("outage"), direct, &prefix);
        assert_eq!(
            &*other
                .get("after")
                .await
                .expect("written to redis after recovery"),
            b"3"
        );
        assert!(
            other.get("during").await.is_none(),
            "written while redis was down"
        );
    }
}
