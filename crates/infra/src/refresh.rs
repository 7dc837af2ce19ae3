//! A read-through cache for what the request path reads from the database and may reuse for
//! a bounded time (an organisation's recorded AI spend and AI settings; API keys, roles and
//! active-user state): a value is never served longer than `max_age` after it was stored,
//! and once it is half that old the next request starts a refresh in the background and is
//! answered from the cache meanwhile. Requests therefore wait for the database only on a
//! key's first read, or when a refresh has not finished within the second half of `max_age`
//! — not every `max_age` for every request in flight. With a plain time-to-live every
//! expiry put one database round trip into the latency of the requests of that key arriving
//! during it — once a second per organisation on the AI path — so a read slowed by busy
//! storage or a busy CPU reached the tail of a busy node. (An A/B on one noisy VM could not
//! tell the two apart: bench/RESULTS.md, 2026-12-07, session 10.)
//!
//! Written here because moka (which stores the values) has no refresh-ahead: its
//! `try_get_with` coalesces loads but makes every caller wait for them.

use moka::future::Cache;
use moka::ops::compute::Op;
use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// See the module documentation. Cheap to clone (clones share the entries).
#[derive(Clone)]
pub struct RefreshingCache<K, V> {
    entries: Cache<K, Arc<Slot<V>>>,
    max_age: Duration,
    /// Named in the warning a failed background refresh logs.
    name: &'static str,
}

struct Slot<V> {
    value: V,
    /// When the read that produced `value` began.
    read_at: Instant,
    /// A background refresh of this slot is running.
    refreshing: AtomicBool,
}

impl<V> Slot<V> {
    fn new(value: V, read_at: Instant) -> Arc<Self> {
        Arc::new(Self {
            value,
            read_at,
            refreshing: AtomicBool::new(false),
        })
    }
}

impl<K, V> RefreshingCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Values are served at most `max_age` after they were stored; up to `capacity` keys.
    pub fn new(name: &'static str, max_age: Duration, capacity: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(max_age)
                .build(),
            max_age,
            name,
        }
    }

    /// The value of `key`: from the cache when it holds one (starting a background refresh
    /// once it is half `max_age` old), otherwise from a load, which concurrent callers of
    /// the same key share. A failed first load is every waiting caller's error.
    ///
    /// `loader` is called only when a load is needed and returns the load itself, which
    /// owns what it uses (it may run in a task of its own): a hit clones nothing.
    pub async fn get<Q, M, F, Fut, E>(&self, key: &Q, loader: M) -> Result<V, Arc<E>>
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
        M: FnOnce() -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: std::fmt::Display + Send + Sync + 'static,
    {
        if let Some(slot) = self.entries.get(key).await {
            if slot.read_at.elapsed() >= self.max_age / 2
                && !slot.refreshing.swap(true, Ordering::AcqRel)
            {
                self.refresh(key.to_owned(), slot.clone(), loader());
            }
            return Ok(slot.value.clone());
        }
        let load = loader();
        let slot = self
            .entries
            .try_get_with_by_ref(key, async move {
                let read_at = Instant::now();
                load().await.map(|v| Slot::new(v, read_at))
            })
            .await?;
        Ok(slot.value.clone())
    }

    /// Read `key` again in a task of its own and store the result in place of `old` — only
    /// if `old` is still the stored slot: when it was invalidated meanwhile (a change made
    /// on this node), this read may have begun before the change and is dropped.
    fn refresh<F, Fut, E>(&self, key: K, old: Arc<Slot<V>>, load: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: std::fmt::Display + Send + Sync + 'static,
    {
        let (entries, name) = (self.entries.clone(), self.name);
        tokio::spawn(async move {
            let read_at = Instant::now();
            match load().await {
                Ok(value) => {
                    let fresh = Slot::new(value, read_at);
                    entries
                        .entry(key)
                        .and_compute_with(|current| {
                            std::future::ready(match current {
                                Some(e) if Arc::ptr_eq(e.value(), &old) => Op::Put(fresh),
                                _ => Op::Nop,
                            })
                        })
                        .await;
                }
                Err(e) => {
                    // The next request past half-life tries again; the value expires as usual.
                    old.refreshing.store(false, Ordering::Release);
                    tracing::warn!(cache = name, error = %e, "background refresh failed");
                }
            }
        });
    }

    /// Forget `key` (it changed here): the next read loads it, and a refresh already
    /// running for it does not store its result.
    pub async fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.invalidate(key).await;
    }

    /// Forget every key (changes may have been missed); refreshes running do not store.
    pub fn invalidate_all(&self) {
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// A loader returning how many loads (counting this one) have been made.
    fn counting(
        loads: &Arc<AtomicU32>,
    ) -> impl FnOnce() -> std::future::Ready<Result<u32, String>> + use<> {
        let loads = loads.clone();
        move || std::future::ready(Ok(loads.fetch_add(1, Ordering::SeqCst) + 1))
    }

    async fn until_loads(loads: &AtomicU32, n: u32) {
        while loads.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // Real time (moka keeps its own clock): lifetimes of seconds leave wide margins.
    const AGE: Duration = Duration::from_secs(4);

    #[tokio::test]
    async fn a_fresh_value_is_reused_without_a_load() {
        let (cache, loads) = (
            RefreshingCache::new("test", AGE, 10),
            Arc::new(AtomicU32::new(0)),
        );
        assert_eq!(cache.get(&1, || counting(&loads)).await.unwrap(), 1);
        assert_eq!(cache.get(&1, || counting(&loads)).await.unwrap(), 1);
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // Another key has its own value.
        assert_eq!(cache.get(&2, || counting(&loads)).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn past_half_its_age_a_value_is_served_while_it_is_read_again() {
        let (cache, loads) = (
            RefreshingCache::new("test", AGE, 10),
            Arc::new(AtomicU32::new(0)),
        );
        assert_eq!(cache.get(&1, || counting(&loads)).await.unwrap(), 1);
        tokio::time::sleep(AGE / 2 + Duration::from_millis(100)).await;
        // Answered from the cache; one refresh starts, not one per caller.
        assert_eq!(cache.get(&1, || counting(&loads)).await.unwrap(), 1);
        assert_eq!(cache.get(&1, || counting(&loads)).await.unwrap(), 1);
        until_loads(&loads, 2).await;
        // The refreshed value replaces it (stored just after the load returns).
        let mut seen = 1;
        while seen == 1 {
            seen = cache.get(&1, || counting(&loads)).await.unwrap();
            tokio::task::yield_now().await;
        }
        assert_eq!(seen, 2);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_value_and_is_retried() {
        let cache = RefreshingCache::new("test", AGE, 10);
        assert_eq!(
            cache
                .get(&1, || || std::future::ready(Ok::<_, String>(10)))
                .await
                .unwrap(),
            10
        );
        tokio::time::sleep(AGE / 2 + Duration::from_millis(100)).await;
        let failed = Arc::new(AtomicU32::new(0));
        let f = failed.clone();
        let failing = move || {
            f.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err::<u32, _>("database down".to_owned()))
        };
        assert_eq!(cache.get(&1, || failing).await.unwrap(), 10);
        until_loads(&failed, 1).await;
        // The flag is cleared after the failure: a later caller starts another refresh.
        let loads = Arc::new(AtomicU32::new(0));
        loop {
            let v = cache.get(&1, || counting(&loads)).await.unwrap();
            assert!(v == 10 || v == 1, "{v}");
            if loads.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_refresh_does_not_bring_back_what_was_invalidated() {
        let cache = RefreshingCache::new("test", AGE, 10);
        cache
            .get(&1, || || std::future::ready(Ok::<_, String>(10)))
            .await
            .unwrap();
        tokio::time::sleep(AGE / 2 + Duration::from_millis(100)).await;
        // A refresh whose read is held until after the key is invalidated.
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let slow = move || async move {
            let _ = held.await;
            Ok::<_, String>(20)
        };
        assert_eq!(cache.get(&1, || slow).await.unwrap(), 10);
        cache.invalidate(&1).await;
        release.send(()).unwrap();
        // The stale read is dropped: the next caller loads afresh.
        let loads = Arc::new(AtomicU32::new(0));
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let v = cache.get(&1, || counting(&loads)).await.unwrap();
            assert_eq!(v, 1, "never the value read before the invalidation");
        }
    }

    #[tokio::test]
    async fn a_failed_first_load_is_an_error_and_not_cached() {
        let cache = RefreshingCache::<u32, u32>::new("test", AGE, 10);
        let err = cache
            .get(&1, || {
                || std::future::ready(Err::<u32, _>("down".to_owned()))
            })
            .await
            .unwrap_err();
        assert_eq!(err.as_str(), "down");
        let loads = Arc::new(AtomicU32::new(0));
        assert_eq!(cache.get(&1, || counting(&loads)).await.unwrap(), 1);
    }
}
