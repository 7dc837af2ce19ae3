//! Cache invalidations sent between the nodes of a deployment, through Redis pub/sub.
//!
//! Each node keeps short-lived caches of what the request path reads (API keys, roles,
//! posture, catalogue views, AI settings). A change made on one node drops its own entries
//! at once; without this, the other nodes would serve the old value until it expired —
//! seconds in which a revoked API key or a removed member still gets in. With Redis
//! configured, the node that made a change also publishes it on one channel, and every
//! node subscribes and drops the same entries when a message arrives (milliseconds).
//!
//! Pub/sub delivers at most once and only to connected subscribers, so two rules keep the
//! caches correct when it does not: each cache still expires on its own (the bound when a
//! message is lost), and whenever a node (re)subscribes — at start, after Redis was down or
//! the connection was cut — it is told so ([`BusEvent::Resubscribed`]) and drops everything,
//! since it cannot know what it missed. A publish that fails is logged and counted; it does
//! not fail the change, which is already committed.
//!
//! The payload is opaque here (the API decides what a change is); a message carries the
//! sending node's id so a node skips its own announcements.

use crate::redis_conn::RedisConn;
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// Another node announced this change (the payload it published).
    Changed(String),
    /// The subscription was (re)established: announcements made before may have been
    /// missed, so every cached entry should be dropped.
    Resubscribed,
}

/// Timings of the bus; the defaults suit production.
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// A publish slower than this counts as failed (the change itself stands).
    pub publish_timeout: Duration,
    /// How long to wait before subscribing again after the subscription was lost.
    pub resubscribe_after: Duration,
    /// How often the subscription's connection is checked with a `PING`: a connection cut
    /// without a reset (a network partition) would otherwise look like a quiet channel.
    pub ping_every: Duration,
    /// At most one warning per this interval while Redis is failing.
    pub warn_interval: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            publish_timeout: Duration::from_millis(250),
            resubscribe_after: Duration::from_secs(1),
            ping_every: Duration::from_secs(10),
            warn_interval: Duration::from_secs(30),
        }
    }
}

/// Publishes this node's changes and hands other nodes' to a subscriber. Cheap to clone.
#[derive(Clone)]
pub struct InvalidationBus {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: BusConfig,
    /// This node's id (random per process): its own messages come back to it and are skipped.
    node: String,
    channel: String,
    /// Publishes go over the shared multiplexed connection.
    conn: RedisConn,
    /// A subscription needs a connection of its own (in subscribed mode it takes no
    /// ordinary commands).
    client: redis::Client,
    /// A subscription stands now.
    subscribed: AtomicBool,
    last_warn: Mutex<Option<Instant>>,
}

impl InvalidationBus {
    /// A bus on `{key_prefix}invalidate`: nodes sharing a key prefix share the channel.
    pub fn new(client: redis::Client, conn: RedisConn, key_prefix: &str, cfg: BusConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                cfg,
                node: format!("{:016x}", rand::random::<u64>()),
                channel: format!("{key_prefix}invalidate"),
                conn,
                client,
                subscribed: AtomicBool::new(false),
                last_warn: Mutex::new(None),
            }),
        }
    }

    /// Tell the other nodes about a change (already applied here). Returns whether Redis
    /// took the message; a failure is logged (at most once per `warn_interval`) and counted
    /// in `assay_cache_invalidations_total{direction="sent",outcome="failed"}`.
    pub async fn publish(&self, payload: &str) -> bool {
        let inner = &self.inner;
        let message = format!("{}\n{payload}", inner.node);
        let mut conn = inner.conn.clone();
        let sent = tokio::time::timeout(
            inner.cfg.publish_timeout,
            redis::cmd("PUBLISH")
                .arg(&inner.channel)
                .arg(&message)
                .query_async::<i64>(&mut conn),
        )
        .await;
        let error = match sent {
            Ok(Ok(_)) => {
                count("sent", "ok");
                return true;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("timed out after {:?}", inner.cfg.publish_timeout),
        };
        count("sent", "failed");
        self.warn(|| {
            tracing::warn!(
                error = %error,
                "could not announce a cache invalidation through redis; other nodes see the change when their entry expires"
            );
        });
        false
    }

    /// Start receiving the other nodes' changes: a task subscribes (and subscribes again
    /// whenever the subscription is lost) until the receiver is dropped. The first event
    /// is [`BusEvent::Resubscribed`] once the subscription stands.
    pub fn subscribe(&self) -> mpsc::Receiver<BusEvent> {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(self.clone().listen(tx));
        rx
    }

    /// Whether other nodes' changes are being received now (for readiness).
    pub fn is_subscribed(&self) -> bool {
        self.inner.subscribed.load(Ordering::SeqCst)
    }

    async fn listen(self, tx: mpsc::Sender<BusEvent>) {
        let cfg = &self.inner.cfg;
        loop {
            let lost = tokio::select! {
                lost = self.listen_once(&tx) => lost,
                _ = tx.closed() => Lost::ReceiverGone,
            };
            self.inner.subscribed.store(false, Ordering::SeqCst);
            match lost {
                Lost::ReceiverGone => return,
                Lost::Connection(error) => {
                    metrics::gauge!("assay_redis_up", "facility" => "invalidation").set(0.0);
                    self.warn(|| {
                        tracing::warn!(
                            error = %error,
                            "cache invalidations from other nodes not received; subscribing again"
                        );
                    });
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(cfg.resubscribe_after) => {}
                _ = tx.closed() => return,
            }
        }
    }

    /// One subscription, from connecting until it is lost.
    async fn listen_once(&self, tx: &mpsc::Sender<BusEvent>) -> Lost {
        let inner = &self.inner;
        let connect = async {
            let pubsub = inner.client.get_async_pubsub().await?;
            let (mut sink, stream) = pubsub.split();
            sink.subscribe(&inner.channel).await?;
            Ok::<_, redis::RedisError>((sink, stream))
        };
        // Connecting and subscribing get as long as a PING may take to be answered.
        let (mut sink, mut stream) = match tokio::time::timeout(inner.cfg.ping_every, connect).await
        {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => return Lost::Connection(e.to_string()),
            Err(_) => return Lost::Connection("subscribing timed out".into()),
        };
        metrics::gauge!("assay_redis_up", "facility" => "invalidation").set(1.0);
        inner.subscribed.store(true, Ordering::SeqCst);
        if tx.send(BusEvent::Resubscribed).await.is_err() {
            return Lost::ReceiverGone;
        }
        let mut ping = tokio::time::interval(inner.cfg.ping_every);
        ping.reset();
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else {
                        return Lost::Connection("the subscription's connection closed".into());
                    };
                    let Ok(text) = message.get_payload::<String>() else { continue };
                    let Some((node, payload)) = text.split_once('\n') else { continue };
                    if node == inner.node {
                        continue;
                    }
                    count("received", "ok");
                    if tx.send(BusEvent::Changed(payload.to_owned())).await.is_err() {
                        return Lost::ReceiverGone;
                    }
                }
                _ = ping.tick() => {
                    let answered = tokio::time::timeout(
                        inner.cfg.ping_every,
                        sink.ping::<redis::Value>(),
                    )
                    .await;
                    match answered {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Lost::Connection(e.to_string()),
                        Err(_) => return Lost::Connection("no answer to PING".into()),
                    }
                }
            }
        }
    }

    fn warn(&self, log: impl FnOnce()) {
        let now = Instant::now();
        let mut last = self
            .inner
            .last_warn
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| now.duration_since(t) >= self.inner.cfg.warn_interval) {
            *last = Some(now);
            log();
        }
    }
}

enum Lost {
    ReceiverGone,
    Connection(String),
}

fn count(direction: &'static str, outcome: &'static str) {
    metrics::counter!(
        "assay_cache_invalidations_total",
        "direction" => direction,
        "outcome" => outcome
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::tests::{connect, redis_url, unique_prefix};
    use assay_store::testing::CuttableProxy;

    fn quick() -> BusConfig {
        BusConfig {
            resubscribe_after: Duration::from_millis(50),
            ..BusConfig::default()
        }
    }

    async fn bus(url: &str, prefix: &str) -> InvalidationBus {
        let client = crate::redis_conn::client(url).unwrap();
        InvalidationBus::new(client, connect(url).await, prefix, quick())
    }

    /// The next event, failing the test (rather than hanging) if none comes for a minute.
    async fn next(rx: &mut mpsc::Receiver<BusEvent>) -> BusEvent {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("an event")
            .expect("the bus is running")
    }

    #[tokio::test]
    async fn another_nodes_change_arrives_and_a_nodes_own_does_not() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_prefix("bus");
        let (a, b) = (bus(&url, &prefix).await, bus(&url, &prefix).await);
        let other_deployment = bus(&url, &unique_prefix("bus-other")).await;
        let (mut rx_a, mut rx_b) = (a.subscribe(), b.subscribe());
        let mut rx_other = other_deployment.subscribe();
        for rx in [&mut rx_a, &mut rx_b, &mut rx_other] {
            assert_eq!(next(rx).await, BusEvent::Resubscribed);
        }

        assert!(a.publish("api_key:one").await);
        assert!(b.publish("org:two\nwith a second line").await);
        assert!(other_deployment.publish("elsewhere").await);
        assert_eq!(
            next(&mut rx_b).await,
            BusEvent::Changed("api_key:one".into())
        );
        // a skips its own message: the first it hears is b's (one channel keeps its order).
        assert_eq!(
            next(&mut rx_a).await,
            BusEvent::Changed("org:two\nwith a second line".into())
        );
        // Another key prefix is another deployment: its channel is its own.
        assert!(a.publish("after").await);
        assert_eq!(next(&mut rx_b).await, BusEvent::Changed("after".into()));
        assert!(rx_other.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_lost_subscription_comes_back_and_says_so() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_prefix("bus-cut");
        let relay = CuttableProxy::to_url(&url).await;
        let publisher = bus(&url, &prefix).await;
        let through_relay = bus(&relay.url(&url), &prefix).await;
        assert!(!through_relay.is_subscribed());
        let mut rx = through_relay.subscribe();
        assert_eq!(next(&mut rx).await, BusEvent::Resubscribed);
        assert!(through_relay.is_subscribed());

        relay.cut();
        // Published while the subscriber is cut off: it cannot arrive...
        assert!(publisher.publish("missed").await);
        // ...and a node cut off from Redis cannot announce its own changes either.
        assert!(!through_relay.publish("unannounced").await);
        while through_relay.is_subscribed() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        relay.restore();
        // Instead the subscriber is told it subscribed again (and drops everything), then
        // hears what comes next.
        assert_eq!(next(&mut rx).await, BusEvent::Resubscribed);
        assert!(publisher.publish("after").await);
        assert_eq!(next(&mut rx).await, BusEvent::Changed("after".into()));
    }

    #[tokio::test]
    async fn the_subscription_ends_with_its_receiver() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_prefix("bus-end");
        let node = bus(&url, &prefix).await;
        let mut rx = node.subscribe();
        assert_eq!(next(&mut rx).await, BusEvent::Resubscribed);
        let channel = format!("{prefix}invalidate");
        let subscribers = || async {
            let mut conn = connect(&url).await;
            let (_, count): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query_async(&mut conn)
                .await
                .unwrap();
            count
        };
        assert_eq!(subscribers().await, 1);
        drop(rx);
        while subscribers().await != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
