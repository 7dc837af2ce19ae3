//! The usage ledger: one record per gateway call, handed to a sink off the hot path.
//!
//! Calls enqueue on a bounded channel and never wait; a background task writes batches to
//! the sink (the store in production). A full queue or a failed write drops records, and
//! every dropped record is counted (`assay_ai_usage_dropped_total`) and logged.

use crate::types::{ProviderKind, TaskKind, Tier};
use assay_core::{OrgId, UserId};
use assay_infra::background::BatchQueue;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageOutcome {
    Ok,
    /// Answered, but by the offline provider after every model failed (or none existed).
    Fallback,
    /// Failed with this `AiError::code()`.
    Error(String),
    Cancelled,
}

impl UsageOutcome {
    pub fn as_str(&self) -> &str {
        match self {
            UsageOutcome::Ok => "ok",
            UsageOutcome::Fallback => "fallback",
            UsageOutcome::Error(code) => code,
            UsageOutcome::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub id: Uuid,
    pub org_id: OrgId,
    pub user_id: Option<UserId>,
    pub task: TaskKind,
    /// Registry id of the model that answered (or was last tried).
    pub model: String,
    /// Configured provider name.
    pub provider: String,
    pub provider_kind: ProviderKind,
    pub tier: Tier,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    /// Token counts were estimated because the provider reported none.
    pub estimated: bool,
    pub cost_usd: f64,
    pub latency_ms: f64,
    pub time_to_first_token_ms: Option<f64>,
    /// Time in the gateway itself (total minus provider waits), in microseconds.
    pub gateway_overhead_us: u64,
    pub cache_hit: bool,
    pub streamed: bool,
    pub outcome: UsageOutcome,
    pub at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
#[error("usage sink failed: {0}")]
pub struct UsageSinkError(pub String);

/// Where usage records go (the store-backed ledger in production).
pub trait UsageSink: Send + Sync + 'static {
    fn write_batch<'a>(
        &'a self,
        records: &'a [UsageRecord],
    ) -> BoxFuture<'a, Result<(), UsageSinkError>>;
}

/// Keeps records in memory: for tests and for a process without a store.
#[derive(Default)]
pub struct MemoryUsageSink {
    records: Mutex<Vec<UsageRecord>>,
    notify: tokio::sync::Notify,
}

impl MemoryUsageSink {
    pub fn records(&self) -> Vec<UsageRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait until at least `n` records have arrived (or `timeout` passes); returns them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<UsageRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            let now = self.records();
            if now.len() >= n {
                return now;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.records();
            }
        }
    }
}

impl UsageSink for MemoryUsageSink {
    fn write_batch<'a>(
        &'a self,
        records: &'a [UsageRecord],
    ) -> BoxFuture<'a, Result<(), UsageSinkError>> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(records);
        self.notify.notify_waiters();
        Box::pin(futures::future::ready(Ok(())))
    }
}

/// Totals for one (org, user, model, day).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UsageTotals {
    pub calls: u64,
    pub cache_hits: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cost_usd: f64,
}

pub type UsageKey = (OrgId, Option<UserId>, String, NaiveDate);

/// Aggregate records per org / user / model / UTC day.
pub fn aggregate(records: &[UsageRecord]) -> BTreeMap<UsageKey, UsageTotals> {
    let mut out: BTreeMap<UsageKey, UsageTotals> = BTreeMap::new();
    for r in records {
        let t = out
            .entry((r.org_id, r.user_id, r.model.clone(), r.at.date_naive()))
            .or_default();
        t.calls += 1;
        t.cache_hits += u64::from(r.cache_hit);
        t.input_tokens += r.input_tokens;
        t.output_tokens += r.output_tokens;
        t.cached_input_tokens += r.cached_input_tokens;
        t.cost_usd += r.cost_usd;
    }
    out
}

/// The bounded queue in front of a sink.
pub struct UsageLedger {
    queue: BatchQueue<UsageRecord>,
    dropped: Arc<AtomicU64>,
}

impl UsageLedger {
    /// Start the writer task on the current Tokio runtime. It ends when the ledger is
    /// dropped, after writing what is queued.
    pub fn start(sink: Arc<dyn UsageSink>, capacity: usize) -> Self {
        Self::start_on(&tokio::runtime::Handle::current(), sink, capacity)
    }

    /// Start the writer task on `runtime` (the sink's I/O must belong to that runtime).
    pub fn start_on(
        runtime: &tokio::runtime::Handle,
        sink: Arc<dyn UsageSink>,
        capacity: usize,
    ) -> Self {
        let dropped = Arc::new(AtomicU64::new(0));
        let d2 = dropped.clone();
        let queue = BatchQueue::start_bookkeeping("ai_usage", runtime, capacity, move |batch| {
            let (sink, dropped) = (sink.clone(), d2.clone());
            async move {
                if let Err(e) = sink.write_batch(&batch).await {
                    let n = batch.len() as u64;
                    dropped.fetch_add(n, Ordering::Relaxed);
                    metrics::counter!("assay_ai_usage_dropped_total", "reason" => "sink_error")
                        .increment(n);
                    tracing::error!(error = %e, records = n, "usage records lost: sink write failed");
                }
            }
        });
        Self { queue, dropped }
    }

    /// Enqueue without waiting; a full queue drops the record and counts it.
    pub fn record(&self, r: UsageRecord) {
        if self.queue.push(r).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("assay_ai_usage_dropped_total", "reason" => "queue_full")
                .increment(1);
            tracing::warn!("usage record dropped: ledger queue full");
        }
    }

    /// Wait while the writer is far behind (see `BatchQueue::wait_for_room`); whether it
    /// waited.
    pub async fn wait_for_room(&self) -> bool {
        self.queue.wait_for_room().await
    }

    /// Wait until every record enqueued before this call has been written (or dropped).
    pub async fn flush(&self) {
        self.queue.flush().await;
    }

    /// Records dropped so far (queue full or sink failure).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assay_infra::background::BOOKKEEPING_BATCH;

    pub(crate) fn sample(org: OrgId, model: &str, cost: f64) -> UsageRecord {
        UsageRecord {
            id: Uuid::now_v7(),
            org_id: org,
            user_id: None,
            task: TaskKind::Help,
            model: model.into(),
            provider: "p".into(),
            provider_kind: ProviderKind::Openai,
            tier: Tier::Fast,
            input_tokens: 10,
            output_tokens: 5,
            cached_input_tokens: 2,
            estimated: false,
            cost_usd: cost,
            latency_ms: 1.0,
            time_to_first_token_ms: None,
            gateway_overhead_us: 10,
            cache_hit: false,
            streamed: false,
            outcome: UsageOutcome::Ok,
            at: Utc::now(),
        }
    }

    /// A sink that never finishes a write, so the queue fills.
    struct StuckSink;
    impl UsageSink for StuckSink {
        fn write_batch<'a>(
            &'a self,
            _: &'a [UsageRecord],
        ) -> BoxFuture<'a, Result<(), UsageSinkError>> {
            Box::pin(futures::future::pending())
        }
    }

    struct FailingSink;
    impl UsageSink for FailingSink {
        fn write_batch<'a>(
            &'a self,
            _: &'a [UsageRecord],
        ) -> BoxFuture<'a, Result<(), UsageSinkError>> {
            Box::pin(futures::future::ready(Err(UsageSinkError(
                "db down".into(),
            ))))
        }
    }

    #[tokio::test]
    async fn records_reach_the_sink() {
        let sink = Arc::new(MemoryUsageSink::default());
        let ledger = UsageLedger::start(sink.clone(), 8);
        let org = OrgId::new();
        for i in 0..5 {
            ledger.record(sample(org, "m", i as f64));
        }
        assert_eq!(sink.wait_for(5, Duration::from_secs(5)).await.len(), 5);
        assert_eq!(ledger.dropped(), 0);
    }

    #[tokio::test]
    async fn flush_returns_once_earlier_records_are_written() {
        let sink = Arc::new(MemoryUsageSink::default());
        let ledger = UsageLedger::start(sink.clone(), 64);
        let org = OrgId::new();
        for i in 0..7 {
            ledger.record(sample(org, "m", i as f64));
        }
        ledger.flush().await;
        assert_eq!(sink.records().len(), 7);
    }

    #[tokio::test]
    async fn a_burst_larger_than_a_batch_is_written_whole() {
        let sink = Arc::new(MemoryUsageSink::default());
        let ledger = UsageLedger::start(sink.clone(), 4 * BOOKKEEPING_BATCH);
        let org = OrgId::new();
        for _ in 0..3 * BOOKKEEPING_BATCH + 7 {
            ledger.record(sample(org, "m", 0.0));
        }
        assert_eq!(
            sink.wait_for(3 * BOOKKEEPING_BATCH + 7, Duration::from_secs(5))
                .await
                .len(),
            3 * BOOKKEEPING_BATCH + 7
        );
        assert_eq!(ledger.dropped(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_blocking() {
        let ledger = UsageLedger::start(Arc::new(StuckSink), 4);
        let org = OrgId::new();
        for _ in 0..50 {
            ledger.record(sample(org, "m", 0.0));
        }
        // Single-threaded test runtime: the writer has not run yet, so the queue holds 4
        // and every other record is counted as dropped.
        assert_eq!(ledger.dropped(), 46);
    }

    #[tokio::test]
    async fn sink_failures_are_counted_as_drops() {
        let ledger = UsageLedger::start(Arc::new(FailingSink), 8);
        ledger.record(sample(OrgId::new(), "m", 0.0));
        for _ in 0..100 {
            if ledger.dropped() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("failed write was not counted");
    }

    #[test]
    fn aggregates_per_org_user_model_day() {
        let (a, b) = (OrgId::new(), OrgId::new());
        let recs = vec![
            sample(a, "m1", 0.5),
            sample(a, "m1", 0.25),
            sample(a, "m2", 1.0),
            sample(b, "m1", 2.0),
        ];
        let agg = aggregate(&recs);
        assert_eq!(agg.len(), 3);
        let day = recs[0].at.date_naive();
        let t = agg[&(a, None, "m1".to_string(), day)];
        assert_eq!((t.calls, t.input_tokens, t.cached_input_tokens), (2, 20, 4));
        assert!((t.cost_usd - 0.75).abs() < 1e-12);
    }
}
