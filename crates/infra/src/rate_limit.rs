//! Rate limiting: in-process GCRA or Redis (atomic Lua script on the server clock).
//!
//! GCRA (the generic cell rate algorithm) keeps one number per key, the theoretical
//! arrival time (TAT) of the next request: a quota of `limit` per `period` lets a key burst
//! `limit` requests, then refills one every `period / limit`. With Redis the whole
//! read-decide-write step is one Lua script that reads the server's clock, so every API
//! node shares the limit and node clocks do not matter. If Redis fails, decisions come
//! from the in-process limiter (counted and logged, at most one warning per interval) and
//! Redis is tried again after a short pause: a request is never failed because Redis is
//! down.

use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) use redis_link::RedisLink;

/// How many requests (or units: tokens, bytes) a key may spend per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    limit: NonZeroU32,
    period: Duration,
}

impl Quota {
    /// `limit` units per `period`; a key may burst the whole `limit` at once. A zero
    /// period is raised to one microsecond.
    pub fn new(limit: NonZeroU32, period: Duration) -> Self {
        Self {
            limit,
            period: period.max(Duration::from_micros(1)),
        }
    }

    pub fn per_second(limit: NonZeroU32) -> Self {
        Self::new(limit, Duration::from_secs(1))
    }

    pub fn per_minute(limit: NonZeroU32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    pub fn per_hour(limit: NonZeroU32) -> Self {
        Self::new(limit, Duration::from_secs(3600))
    }

    pub fn limit(&self) -> u32 {
        self.limit.get()
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// (time one unit takes to refill, burst window = interval x limit), in `unit`s
    /// (1 = nanoseconds, 1000 = microseconds).
    fn cells(&self, unit_nanos: u128) -> (u64, u64) {
        let period = self.period.as_nanos() / unit_nanos;
        let interval = (period / u128::from(self.limit.get())).max(1);
        let window = interval * u128::from(self.limit.get());
        (
            u64::try_from(interval).unwrap_or(u64::MAX),
            u64::try_from(window).unwrap_or(u64::MAX),
        )
    }
}

/// The outcome of one check, with what the `X-RateLimit-*` and `Retry-After` headers need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// The quota's limit (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Units that could still be spent right now (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Time until the key is back to its full burst (`X-RateLimit-Reset`, in seconds).
    pub reset_after: Duration,
    /// When denied: how long until this request would be allowed (`Retry-After`).
    /// `None` when allowed, and also when the cost exceeds the limit (it never will be).
    pub retry_after: Option<Duration>,
}

impl RateDecision {
    /// The response headers, seconds rounded up so a client that waits that long succeeds.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("X-RateLimit-Limit", self.limit.to_string()),
            ("X-RateLimit-Remaining", self.remaining.to_string()),
            ("X-RateLimit-Reset", ceil_secs(self.reset_after).to_string()),
        ];
        if let Some(retry) = self.retry_after {
            h.push(("Retry-After", ceil_secs(retry).max(1).to_string()));
        }
        h
    }
}

/// One limit to spend in [`RateLimiter::check_all`]: `cost` units of `quota` for `key`.
#[derive(Clone, Copy, Debug)]
pub struct Spend<'a> {
    pub key: &'a str,
    pub quota: Quota,
    pub cost: u32,
}

/// Why [`RateLimiter::check_all`] spent nothing: the refusal at `index` of the spends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub index: usize,
    pub decision: RateDecision,
    /// Every spend's decision, in order (what each would have left had the set passed):
    /// what the `X-RateLimit-*` headers of a limit that was not the refusing one show.
    pub decisions: Vec<RateDecision>,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// GCRA on plain numbers, in any time unit. `tat` is the key's stored TAT (or `None`).
/// Returns the decision and, when allowed, the new TAT to store.
fn gcra(
    now: u64,
    tat: Option<u64>,
    interval: u64,
    window: u64,
    limit: u32,
    cost: u32,
) -> (RateDecision, Option<u64>) {
    let tat = tat.unwrap_or(now).max(now);
    let to_units = |t: u64| Duration::from_nanos(t);
    let remaining_at = |tat: u64| -> u32 {
        let used = tat - now;
        u32::try_from(window.saturating_sub(used) / interval).unwrap_or(u32::MAX)
    };
    let increment = interval.saturating_mul(u64::from(cost));
    let new_tat = tat.saturating_add(increment);
    let denied = |retry_after: Option<u64>| RateDecision {
        allowed: false,
        limit,
        remaining: remaining_at(tat),
        reset_after: to_units(tat - now),
        retry_after: retry_after.map(to_units),
    };
    if cost > limit {
        return (denied(None), None);
    }
    if new_tat - now > window {
        return (denied(Some(new_tat - window - now)), None);
    }
    (
        RateDecision {
            allowed: true,
            limit,
            remaining: remaining_at(new_tat),
            reset_after: to_units(new_tat - now),
            retry_after: None,
        },
        Some(new_tat),
    )
}

/// A monotonic source of "now" for the in-process limiter, injectable for tests.
pub trait Clock: Send + Sync + 'static {
    /// Time since an arbitrary fixed start; never goes backwards.
    fn now(&self) -> Duration;
}

/// The real monotonic clock.
#[derive(Debug)]
pub struct MonotonicClock(Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that only moves when told to: for tests of time-dependent behaviour.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

/// Settings shared by both backends.
#[derive(Clone, Debug)]
pub struct RateLimiterConfig {
    /// Names the limiter in metrics and logs (`auth_ip`, `api`, `ai_tokens`...).
    pub name: &'static str,
    /// Most keys the in-process limiter remembers; beyond it, keys whose window has passed
    /// are dropped first, then the ones closest to having passed.
    pub max_keys: usize,
    /// A Redis call slower than this counts as a failure and falls back.
    pub redis_op_timeout: Duration,
    /// After a Redis failure, how long to use the in-process limiter before trying again.
    pub redis_retry_after: Duration,
    /// At most one warning per this interval while Redis is failing.
    pub warn_interval: Duration,
}

impl Default for RateLimiterConfig {
    fn default() -> Self {
        Self {
            name: "default",
            max_keys: 100_000,
            redis_op_timeout: Duration::from_millis(250),
            redis_retry_after: Duration::from_secs(1),
            warn_interval: Duration::from_secs(30),
        }
    }
}

/// A keyed rate limiter: in-process, or shared through Redis with in-process fallback.
/// Cheap to clone; clones share state.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    name: &'static str,
    memory: MemoryGcra,
    redis: Option<RedisGcra>,
}

struct RedisGcra {
    link: RedisLink,
    script: redis::Script,
    key_prefix: String,
}

impl RateLimiter {
    /// In-process only, on the real clock.
    pub fn in_memory(cfg: RateLimiterConfig) -> Self {
        Self::in_memory_with_clock(cfg, Arc::new(MonotonicClock::default()))
    }

    /// In-process only, on the given clock (tests use [`ManualClock`]).
    pub fn in_memory_with_clock(cfg: RateLimiterConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: cfg.name,
                memory: MemoryGcra::new(cfg.max_keys, clock),
                redis: None,
            }),
        }
    }

    /// Shared through Redis; keys are stored as `{key_prefix}rl:{name}:{key}`.
    pub fn with_redis(cfg: RateLimiterConfig, conn: ConnectionManager, key_prefix: &str) -> Self {
        let link = RedisLink::new(
            "rate_limit",
            conn,
            cfg.redis_op_timeout,
            cfg.redis_retry_after,
            cfg.warn_interval,
        );
        Self {
            inner: Arc::new(Inner {
                name: cfg.name,
                memory: MemoryGcra::new(cfg.max_keys, Arc::new(MonotonicClock::default())),
                redis: Some(RedisGcra {
                    link,
                    script: redis::Script::new(GCRA_LUA),
                    key_prefix: format!("{key_prefix}rl:{}:", cfg.name),
                }),
            }),
        }
    }

    /// Spend one unit of `quota` for `key`.
    pub async fn check(&self, key: &str, quota: Quota) -> RateDecision {
        self.check_n(key, quota, 1).await
    }

    /// Spend `cost` units (e.g. AI tokens) of `quota` for `key`. A denied check spends
    /// nothing.
    pub async fn check_n(&self, key: &str, quota: Quota, cost: u32) -> RateDecision {
        let spend = [Spend { key, quota, cost }];
        match self.check_all(&spend).await {
            Ok(mut each) => each.pop().expect("one decision per spend"),
            Err(refused) => refused.decision,
        }
    }

    /// Spend several limits at once, all or nothing: if every one allows its cost, all
    /// are spent; if any refuses, none is. One atomic step (one Redis script call however
    /// many limits: a request's limits cost one round trip, not one each). A key may
    /// appear more than once; later spends see the earlier ones.
    ///
    /// `Ok` holds a decision per spend, in order. `Err` names the refusal that decides
    /// when the whole set could pass: one that never can (cost above its limit), else the
    /// one with the longest wait.
    pub async fn check_all(&self, spends: &[Spend<'_>]) -> Result<Vec<RateDecision>, Refused> {
        let decisions = match &self.inner.redis {
            Some(redis) => match redis.check_all(spends).await {
                Some(d) => d,
                None => self.inner.memory.check_all(spends),
            },
            None => self.inner.memory.check_all(spends),
        };
        let refused = decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.allowed)
            .max_by_key(|(_, d)| d.retry_after.unwrap_or(Duration::MAX))
            .map(|(index, d)| (index, *d));
        metrics::counter!(
            "assay_rate_limit_decisions_total",
            "limiter" => self.inner.name,
            "outcome" => if refused.is_none() { "allowed" } else { "denied" }
        )
        .increment(1);
        match refused {
            None => Ok(decisions),
            Some((index, decision)) => Err(Refused {
                index,
                decision,
                decisions,
            }),
        }
    }

    /// Whether this limiter is configured with Redis.
    pub fn has_redis(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// False while Redis is failing and decisions come from the in-process fallback.
    pub fn redis_healthy(&self) -> bool {
        self.inner.redis.as_ref().is_some_and(|r| r.link.healthy())
    }
}

/// GCRA for one or more keys in one atomic step on the Redis server's clock, in
/// microseconds, all or nothing: the new TATs are written only if every key allows its
/// cost. Numbers are written with `%.0f`: Lua's default number formatting keeps only 14
/// digits. (Several keys in one script need one Redis server, or one cluster slot; Assay
/// talks to a single server.)
/// KEYS the keys; ARGV interval, window, cost, limit for each key in turn.
/// Returns, per key, allowed, remaining, reset_after_us, retry_after_us (-1: never).
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local out = {}
local all = true
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 4
  local interval = tonumber(ARGV[a + 1])
  local window = tonumber(ARGV[a + 2])
  local cost = tonumber(ARGV[a + 3])
  local limit = tonumber(ARGV[a + 4])
  local tat = tats[key] or tonumber(redis.call('GET', key))
  if (not tat) or tat < now then tat = now end
  local function remaining(at)
    local r = math.floor((window - (at - now)) / interval)
    if r < 0 then r = 0 end
    return r
  end
  local new_tat = tat + interval * cost
  local d
  if cost > limit then
    d = {0, remaining(tat), tat - now, -1}
  elseif new_tat - now > window then
    d = {0, remaining(tat), tat - now, new_tat - window - now}
  else
    tats[key] = new_tat
    d = {1, remaining(new_tat), new_tat - now, 0}
  end
  if d[1] == 0 then all = false end
  for _, v in ipairs(d) do out[#out + 1] = v end
end
if all then
  for key, tat in pairs(tats) do
    local ttl_ms = math.ceil((tat - now) / 1000)
    if ttl_ms < 1 then ttl_ms = 1 end
    redis.call('SET', key, string.format('%.0f', tat), 'PX', string.format('%.0f', ttl_ms))
  end
end
return out
";

impl RedisGcra {
    async fn check_all(&self, spends: &[Spend<'_>]) -> Option<Vec<RateDecision>> {
        let mut invocation = self.script.prepare_invoke();
        for spend in spends {
            let (interval, window) = spend.quota.cells(1_000);
            invocation
                .key(format!("{}{}", self.key_prefix, spend.key))
                .arg(interval)
                .arg(window)
                .arg(spend.cost)
                .arg(spend.quota.limit());
        }
        let replies: Vec<i64> = self
            .link
            .run("gcra", |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        if replies.len() != spends.len() * 4 {
            tracing::warn!(
                replies = replies.len(),
                spends = spends.len(),
                "unexpected reply from the rate-limit script; deciding in-process"
            );
            return None;
        }
        let micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        Some(
            spends
                .iter()
                .zip(replies.chunks_exact(4))
                .map(|(spend, r)| {
                    let (allowed, remaining, reset_us, retry_us) = (r[0], r[1], r[2], r[3]);
                    RateDecision {
                        allowed: allowed == 1,
                        limit: spend.quota.limit(),
                        remaining: u32::try_from(remaining).unwrap_or(0),
                        reset_after: micros(reset_us),
                        retry_after: (allowed != 1 && retry_us >= 0).then(|| micros(retry_us)),
                    }
                })
                .collect(),
        )
    }
}

/// The in-process backend: a sharded map of key -> TAT (nanoseconds on `clock`).
struct MemoryGcra {
    shards: Box<[Mutex<HashMap<String, u64>>]>,
    per_shard_cap: usize,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
}

const SHARDS: usize = 16;

impl MemoryGcra {
    fn new(max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard_cap: max_keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            clock,
        }
    }

    fn check(&self, key: &str, quota: Quota, cost: u32) -> RateDecision {
        let now = u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX);
        let (interval, window) = quota.cells(1);
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        // A poisoned lock only means another check panicked mid-update; the map is still
        // a valid map of numbers.
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let (decision, new_tat) = gcra(
            now,
            map.get(key).copied(),
            interval,
            window,
            quota.limit(),
            cost,
        );
        if let Some(new_tat) = new_tat {
            self.store(&mut map, key, new_tat, now);
        }
        decision
    }

    /// Sets `key`'s TAT, making room first if the shard is full.
    fn store(&self, map: &mut HashMap<String, u64>, key: &str, new_tat: u64, now: u64) {
        if let Some(tat) = map.get_mut(key) {
            *tat = new_tat;
        } else {
            if map.len() >= self.per_shard_cap {
                make_room(map, now);
            }
            map.insert(key.to_owned(), new_tat);
        }
    }

    /// [`RateLimiter::check_all`] in-process: the keys' shards are locked together (in
    /// shard order, so two checks cannot deadlock) and the new TATs stored only if every
    /// spend is allowed.
    fn check_all(&self, spends: &[Spend<'_>]) -> Vec<RateDecision> {
        if let [one] = spends {
            return vec![self.check(one.key, one.quota, one.cost)];
        }
        let now = u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX);
        let shard_of: Vec<usize> = spends
            .iter()
            .map(|s| (self.hasher.hash_one(s.key) as usize) % SHARDS)
            .collect();
        let mut order = shard_of.clone();
        order.sort_unstable();
        order.dedup();
        let mut maps: Vec<_> = order
            .iter()
            .map(|&i| self.shards[i].lock().unwrap_or_else(|p| p.into_inner()))
            .collect();
        let slot = |shard: usize| order.binary_search(&shard).expect("locked above");
        // New TATs, in spend order: a key spent twice sees its first spend.
        let mut spent: Vec<(usize, &str, u64)> = Vec::with_capacity(spends.len());
        let mut decisions = Vec::with_capacity(spends.len());
        for (spend, &shard) in spends.iter().zip(&shard_of) {
            let tat = spent
                .iter()
                .rev()
                .find(|(_, key, _)| *key == spend.key)
                .map(|&(_, _, tat)| tat)
                .or_else(|| maps[slot(shard)].get(spend.key).copied());
            let (interval, window) = spend.quota.cells(1);
            let (decision, new_tat) =
                gcra(now, tat, interval, window, spend.quota.limit(), spend.cost);
            if let Some(new_tat) = new_tat {
                spent.push((shard, spend.key, new_tat));
            }
            decisions.push(decision);
        }
        if decisions.iter().all(|d| d.allowed) {
            for (shard, key, new_tat) in spent {
                self.store(&mut maps[slot(shard)], key, new_tat, now);
            }
        }
        decisions
    }
}

/// Drops keys whose TAT has passed (they are back to a full burst, so forgetting them
/// changes nothing); if none has, drops the one closest to it.
fn make_room(map: &mut HashMap<String, u64>, now: u64) {
    let before = map.len();
    map.retain(|_, tat| *tat > now);
    if map.len() == before
        && let Some(oldest) = map
            .iter()
            .min_by_key(|(_, tat)| **tat)
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
        metrics::counter!("assay_rate_limit_evictions_total").increment(1);
    }
}

/// A Redis connection with a timeout per call, a pause after failures, and rate-limited
/// warnings: the failover logic the rate limiter and the revocation store share.
mod redis_link {
    use redis::RedisResult;
    use redis::aio::ConnectionManager;
    use std::future::Future;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    pub(crate) struct RedisLink {
        facility: &'static str,
        conn: ConnectionManager,
        op_timeout: Duration,
        retry_after: Duration,
        warn_interval: Duration,
        healthy: AtomicBool,
        state: Mutex<State>,
    }

    #[derive(Default)]
    struct State {
        paused_until: Option<Instant>,
        last_warn: Option<Instant>,
    }

    impl RedisLink {
        pub(crate) fn new(
            facility: &'static str,
            conn: ConnectionManager,
            op_timeout: Duration,
            retry_after: Duration,
            warn_interval: Duration,
        ) -> Self {
            Self {
                facility,
                conn,
                op_timeout,
                retry_after,
                warn_interval,
                healthy: AtomicBool::new(true),
                state: Mutex::new(State::default()),
            }
        }

        pub(crate) fn healthy(&self) -> bool {
            self.healthy.load(Ordering::SeqCst)
        }

        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// Runs `op` on Redis; `None` when Redis failed, timed out, or is in its pause
        /// after a failure (the caller then uses its in-process fallback).
        pub(crate) async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
        where
            F: FnOnce(ConnectionManager) -> Fut,
            Fut: Future<Output = RedisResult<T>>,
        {
            let paused = self
                .state()
                .paused_until
                .is_some_and(|until| Instant::now() < until);
            if paused {
                self.count_fallback(op);
                return None;
            }
            let error = match tokio::time::timeout(self.op_timeout, f(self.conn.clone())).await {
                Ok(Ok(value)) => {
                    if !self.healthy.swap(true, Ordering::SeqCst) {
                        tracing::info!(facility = self.facility, "redis reachable again; using it");
                        metrics::gauge!("assay_redis_up", "facility" => self.facility).set(1.0);
                    }
                    self.state().paused_until = None;
                    return Some(value);
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("timed out after {:?}", self.op_timeout),
            };
            self.healthy.store(false, Ordering::SeqCst);
            metrics::gauge!("assay_redis_up", "facility" => self.facility).set(0.0);
            self.count_fallback(op);
            let now = Instant::now();
            let mut state = self.state();
            state.paused_until = Some(now + self.retry_after);
            if state
                .last_warn
                .is_none_or(|t| now.duration_since(t) >= self.warn_interval)
            {
                state.last_warn = Some(now);
                tracing::warn!(
                    facility = self.facility,
                    op,
                    error = %error,
                    "redis unavailable; falling back to in-process state"
                );
            }
            None
        }

        fn count_fallback(&self, op: &'static str) {
            metrics::counter!(
                "assay_redis_fallback_total",
                "facility" => self.facility,
                "op" => op
            )
            .increment(1);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use assay_store::testing::CuttableProxy;

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap()
    }

    fn manual() -> (RateLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        let limiter = RateLimiter::in_memory_with_clock(
            RateLimiterConfig {
                name: "test",
                ..Default::default()
            },
            clock.clone(),
        );
        (limiter, clock)
    }

    #[tokio::test]
    async fn burst_then_deny_with_retry_after_then_refill() {
        let (limiter, clock) = manual();
        let quota = Quota::per_minute(n(10)); // one unit every 6 s
        for i in 0..10 {
            let d = limiter.check("ip:1", quota).await;
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 9 - i);
            assert_eq!(d.limit, 10);
        }
        let denied = limiter.check("ip:1", quota).await;
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        assert_eq!(denied.retry_after, Some(Duration::from_secs(6)));
        assert_eq!(denied.reset_after, Duration::from_secs(60));
        let headers = denied.headers();
        assert!(headers.contains(&("Retry-After", "6".to_owned())));
        assert!(headers.contains(&("X-RateLimit-Remaining", "0".to_owned())));
        assert!(headers.contains(&("X-RateLimit-Reset", "60".to_owned())));

        // Another key is independent.
        assert!(limiter.check("ip:2", quota).await.allowed);

        clock.advance(Duration::from_secs(5));
        let still = limiter.check("ip:1", quota).await;
        assert!(!still.allowed);
        assert_eq!(still.retry_after, Some(Duration::from_secs(1)));

        clock.advance(Duration::from_secs(1));
        let one = limiter.check("ip:1", quota).await;
        assert!(one.allowed, "one unit refilled after 6 s");
        assert_eq!(one.remaining, 0);
        assert!(!limiter.check("ip:1", quota).await.allowed);

        clock.advance(Duration::from_secs(60));
        let full = limiter.check("ip:1", quota).await;
        assert!(full.allowed);
        assert_eq!(
            full.remaining, 9,
            "a full burst is back after a whole period"
        );
    }

    #[tokio::test]
    async fn weighted_costs_and_impossible_costs() {
        let (limiter, clock) = manual();
        let quota = Quota::per_minute(n(1000)); // tokens per minute
        let d = limiter.check_n("user:ai", quota, 600).await;
        assert!(d.allowed);
        assert_eq!(d.remaining, 400);
        let d = limiter.check_n("user:ai", quota, 500).await;
        assert!(!d.allowed, "only 400 left");
        assert_eq!(d.remaining, 400, "a denied check spends nothing");
        assert_eq!(d.retry_after, Some(Duration::from_secs(6))); // 100 tokens at 60 ms
        clock.advance(Duration::from_secs(6));
        assert!(limiter.check_n("user:ai", quota, 500).await.allowed);

        let never = limiter.check_n("user:other", quota, 1001).await;
        assert!(!never.allowed);
        assert_eq!(never.retry_after, None, "more than the limit never fits");
    }

    /// A request limit and a token limit spent together, as the AI pipeline does: every
    /// limit or none. Long periods, so the refill during a test is far below one unit and
    /// the same steps hold on the in-process clock and on Redis's.
    async fn spends_all_or_nothing(limiter: &RateLimiter) {
        let requests = Quota::per_hour(n(2));
        let tokens = Quota::per_hour(n(100));
        let both = |tokens_cost| {
            [
                Spend {
                    key: "requests:u",
                    quota: requests,
                    cost: 1,
                },
                Spend {
                    key: "tokens:u",
                    quota: tokens,
                    cost: tokens_cost,
                },
            ]
        };
        let each = limiter.check_all(&both(60)).await.unwrap();
        assert_eq!((each[0].remaining, each[1].remaining), (1, 40));

        // The tokens refuse, so the request is not spent either.
        let refused = limiter.check_all(&both(60)).await.unwrap_err();
        assert_eq!(refused.index, 1);
        assert_eq!(refused.decision.remaining, 40);
        let wait = refused.decision.retry_after.unwrap(); // 20 tokens at 36 s each
        assert!(wait > Duration::from_secs(710) && wait <= Duration::from_secs(720));
        let each = limiter.check_all(&both(40)).await.unwrap();
        assert_eq!((each[0].remaining, each[1].remaining), (0, 0));

        // Both refuse: the longer wait (the request's half hour) is the one to report.
        let refused = limiter.check_all(&both(10)).await.unwrap_err();
        assert_eq!(refused.index, 0);
        assert!(refused.decision.retry_after.unwrap() > Duration::from_secs(1790));
        // A cost that can never fit wins over any wait.
        let refused = limiter.check_all(&both(101)).await.unwrap_err();
        assert_eq!((refused.index, refused.decision.retry_after), (1, None));

        // The same key twice: the second spend sees the first; a refusal spends neither.
        let twice = |key| {
            [
                Spend {
                    key,
                    quota: requests,
                    cost: 1,
                },
                Spend {
                    key,
                    quota: requests,
                    cost: 1,
                },
            ]
        };
        let each = limiter.check_all(&twice("k")).await.unwrap();
        assert_eq!((each[0].remaining, each[1].remaining), (1, 0));
        assert!(limiter.check("fresh", requests).await.allowed);
        assert_eq!(
            limiter.check_all(&twice("fresh")).await.unwrap_err().index,
            1
        );
        assert_eq!(limiter.check("fresh", requests).await.remaining, 0);
    }

    #[tokio::test]
    async fn several_limits_are_spent_all_or_nothing() {
        let (limiter, _) = manual();
        spends_all_or_nothing(&limiter).await;
    }

    #[tokio::test]
    async fn memory_stays_bounded_and_forgets_idle_keys_first() {
        let clock = Arc::new(ManualClock::default());
        let limiter = RateLimiter::in_memory_with_clock(
            RateLimiterConfig {
                name: "bounded",
                max_keys: 32,
                ..Default::default()
            },
            clock.clone(),
        );
        let quota = Quota::per_second(n(1));
        for i in 0..1000 {
            limiter.check(&format!("k{i}"), quota).await;
        }
        let total: usize = limiter
            .inner
            .memory
            .shards
            .iter()
            .map(|s| s.lock().unwrap().len())
            .sum();
        assert!(total <= 32, "{total} keys kept");

        // A key that is still limited survives while idle keys come and go.
        let hot = Quota::per_hour(n(1));
        assert!(limiter.check("hot", hot).await.allowed);
        for i in 0..200 {
            limiter.check(&format!("idle{i}"), quota).await;
            clock.advance(Duration::from_secs(2));
        }
        assert!(
            !limiter.check("hot", hot).await.allowed,
            "the limited key was not forgotten"
        );
    }

    #[test]
    fn gcra_matches_in_units_of_micros_and_nanos() {
        // The same quota gives the same decisions whatever the time unit.
        let quota = Quota::per_second(n(3));
        for unit in [1u128, 1_000] {
            let (interval, window) = quota.cells(unit);
            let mut tat = None;
            let mut allowed = 0;
            for _ in 0..5 {
                let (d, new) = gcra(0, tat, interval, window, 3, 1);
                if let Some(t) = new {
                    tat = Some(t);
                    allowed += 1;
                }
                assert!(d.remaining <= 3);
            }
            assert_eq!(allowed, 3);
        }
    }

    /// The Redis URL for tests, or `None` (test skipped) unless services are required.
    pub(crate) fn redis_url() -> Option<String> {
        assay_store::testing::service_url("ASSAY_TEST_REDIS_URL")
    }

    pub(crate) fn unique_prefix(test: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("assay-test:{test}:{}:{nanos}:", std::process::id())
    }

    pub(crate) async fn connect(url: &str) -> ConnectionManager {
        let client = redis::Client::open(url).unwrap();
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        ConnectionManager::new_lazy_with_config(client, cfg).unwrap()
    }

    /// A key's remaining time to live in milliseconds (Redis `PTTL`: -1 none, -2 no key).
    pub(crate) async fn pttl(url: &str, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut connect(url).await)
            .await
            .unwrap()
    }

    fn redis_cfg(name: &'static str) -> RateLimiterConfig {
        RateLimiterConfig {
            name,
            redis_op_timeout: Duration::from_millis(500),
            redis_retry_after: Duration::from_millis(100),
            warn_interval: Duration::from_millis(50),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn redis_limit_is_shared_by_two_nodes() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_prefix("rl-shared");
        let a = RateLimiter::with_redis(redis_cfg("auth_ip"), connect(&url).await, &prefix);
        let b = RateLimiter::with_redis(redis_cfg("auth_ip"), connect(&url).await, &prefix);
        // A long period so the refill during the test is far below one unit.
        let quota = Quota::per_hour(n(4));
        let mut allowed = 0;
        for i in 0..4 {
            let node = if i % 2 == 0 { &a } else { &b };
            let d = node.check("ip:203.0.113.9", quota).await;
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 3 - i);
            allowed += 1;
        }
        assert_eq!(allowed, 4);
        for node in [&a, &b] {
            let d = node.check("ip:203.0.113.9", quota).await;
            assert!(!d.allowed, "the limit is shared");
            let retry = d.retry_after.unwrap();
            assert!(retry > Duration::from_secs(800) && retry <= Duration::from_secs(900));
        }
        assert!(a.redis_healthy() && b.redis_healthy());
        // The key lives in Redis with a TTL, not forever.
        let ttl = pttl(&url, &format!("{prefix}rl:auth_ip:ip:203.0.113.9")).await;
        assert!(ttl > 0 && ttl <= 3_600_000, "ttl {ttl}");
    }

    #[tokio::test]
    async fn redis_weighted_and_impossible_costs() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_prefix("rl-cost");
        let limiter = RateLimiter::with_redis(redis_cfg("ai"), connect(&url).await, &prefix);
        let quota = Quota::per_hour(n(1000));
        let d = limiter.check_n("u", quota, 600).await;
        assert!(d.allowed);
        assert_eq!(d.remaining, 400);
        let d = limiter.check_n("u", quota, 500).await;
        assert!(!d.allowed);
        assert_eq!(d.remaining, 400, "a denied check spends nothing");
        let never = limiter.check_n("v", quota, 1001).await;
        assert!(!never.allowed);
        assert_eq!(never.retry_after, None);
        assert!(limiter.redis_healthy());
    }

    #[tokio::test]
    async fn redis_spends_several_limits_all_or_nothing_in_one_step() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_prefix("rl-all");
        let limiter = RateLimiter::with_redis(redis_cfg("ai"), connect(&url).await, &prefix);
        spends_all_or_nothing(&limiter).await;
        assert!(
            limiter.redis_healthy(),
            "decided by Redis, not the fallback"
        );
        // Both keys were written, each with its TTL.
        for key in ["requests:u", "tokens:u"] {
            let ttl = pttl(&url, &format!("{prefix}rl:ai:{key}")).await;
            assert!(ttl > 0 && ttl <= 3_600_000, "{key}: ttl {ttl}");
        }
    }

    #[tokio::test]
    async fn redis_outage_falls_back_in_process_and_recovers() {
        let Some(url) = redis_url() else { return };
        let relay = CuttableProxy::to_url(&url).await;
        let prefix = unique_prefix("rl-outage");
        let limiter = RateLimiter::with_redis(
            redis_cfg("outage"),
            connect(&relay.url(&url)).await,
            &prefix,
        );
        let quota = Quota::per_hour(n(3));
        assert!(limiter.check("k", quota).await.allowed);
        assert!(limiter.redis_healthy());

        relay.cut();
        // Requests are decided in-process: never an error, and still limited.
        let mut allowed = 0;
        for _ in 0..5 {
            if limiter.check("k", quota).await.allowed {
                allowed += 1;
            }
        }
        assert!(!limiter.redis_healthy(), "the outage was noticed");
        assert_eq!(allowed, 3, "the in-process fallback still limits");

        relay.restore();
        let mut recovered = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            limiter.check("after", quota).await;
            if limiter.redis_healthy() {
                recovered = true;
                break;
            }
        }
        assert!(recovered, "went back to Redis");
        // Redis state from before the outage is used again: 1 spent before + now 2 more.
        let direct = RateLimiter::with_redis(redis_cfg("outage"), connect(&url).await, &prefix);
        assert!(direct.check("k", quota).await.allowed);
        assert!(direct.check("k", quota).await.allowed);
        assert!(!direct.check("k", quota).await.allowed);
    }
}
