//! The AI gateway's usage ledger, stored: maps `assay_ai::UsageRecord`s to the store's
//! `ai_usage` rows. The gateway batches records off the request path; a failed write is
//! reported back to it (and counted there), never to the caller.

use assay_ai::usage::UsageSinkError;
use assay_ai::{UsageRecord, UsageSink};
use assay_store::Db;
use assay_store::repo::ai_usage::{self, NewAiUsage};
use futures::future::BoxFuture;

pub struct StoreUsageSink {
    db: Db,
}

impl StoreUsageSink {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

fn row(r: &UsageRecord) -> NewAiUsage {
    NewAiUsage {
        id: r.id,
        org_id: r.org_id,
        user_id: r.user_id,
        task: r.task.as_str().to_owned(),
        model: r.model.clone(),
        provider: r.provider.clone(),
        provider_kind: r.provider_kind.as_str().to_owned(),
        tier: r.tier.as_str().to_owned(),
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        cached_input_tokens: r.cached_input_tokens,
        estimated: r.estimated,
        cost_usd: r.cost_usd,
        latency_ms: r.latency_ms,
        time_to_first_token_ms: r.time_to_first_token_ms,
        gateway_overhead_us: r.gateway_overhead_us,
        cache_hit: r.cache_hit,
        streamed: r.streamed,
        outcome: r.outcome.as_str().to_owned(),
        at: r.at,
    }
}

impl UsageSink for StoreUsageSink {
    fn write_batch<'a>(
        &'a self,
        records: &'a [UsageRecord],
    ) -> BoxFuture<'a, Result<(), UsageSinkError>> {
        Box::pin(async move {
            let rows: Vec<NewAiUsage> = records.iter().map(row).collect();
            // One transaction: the rows and the monthly totals they add to agree.
            self.db
                .write(move |txn| Box::pin(async move { ai_usage::insert_batch(txn, &rows).await }))
                .await
                .map(|_| ())
                .map_err(|e| UsageSinkError(e.to_string()))
        })
    }
}
