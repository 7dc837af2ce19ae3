//! Metrics for gateway calls, named after the OpenTelemetry GenAI conventions where they
//! exist (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`,
//! `gen_ai.client.operation.time_to_first_chunk`), plus Assay's own cost, cache, overhead
//! and fallback series. Breaker state is published by the breaker itself.

use crate::types::{ResponseMeta, TaskKind};
use metrics::{Counter, Histogram, counter, histogram};
use std::sync::OnceLock;

/// Handles for one model's successful, uncached calls on one task. Built on first use
/// (after the exporter is installed) so the hot path records without building label sets.
struct CallMetrics {
    duration: Histogram,
    ttft: Histogram,
    tokens_in: Histogram,
    tokens_out: Histogram,
    cached_tokens: Counter,
    overhead: Histogram,
    cost_micros: Counter,
    cache_miss: Counter,
}

/// Per-model metric handles, one set per task.
#[derive(Default)]
pub struct ModelMetrics {
    per_task: [OnceLock<CallMetrics>; TaskKind::ALL.len()],
}

fn task_index(task: TaskKind) -> usize {
    TaskKind::ALL.iter().position(|t| *t == task).unwrap_or(0)
}

impl ModelMetrics {
    fn handles(&self, task: TaskKind, meta: &ResponseMeta) -> &CallMetrics {
        self.per_task[task_index(task)].get_or_init(|| {
            let provider = meta.provider_kind.as_str();
            let model = meta.model.clone();
            let labels = [
                ("gen_ai.operation.name", "chat".to_owned()),
                ("gen_ai.provider.name", provider.to_owned()),
                ("gen_ai.request.model", model.clone()),
                ("assay.task", task.as_str().to_owned()),
                ("assay.outcome", "ok".to_owned()),
            ];
            let tokens = |kind: &'static str| {
                histogram!("gen_ai.client.token.usage", "gen_ai.token.type" => kind, "gen_ai.provider.name" => provider, "gen_ai.request.model" => model.clone())
            };
            CallMetrics {
                duration: histogram!("gen_ai.client.operation.duration", &labels),
                ttft: histogram!("gen_ai.client.operation.time_to_first_chunk", &labels),
                tokens_in: tokens("input"),
                tokens_out: tokens("output"),
                cached_tokens: counter!("assay_ai_tokens_total", "type" => "cached_input", "model" => model.clone()),
                overhead: histogram!("assay_ai_gateway_overhead_seconds"),
                cost_micros: counter!("assay_ai_cost_usd_micros_total", "model" => model.clone(), "task" => task.as_str()),
                cache_miss: counter!("assay_ai_cache_requests_total", "task" => task.as_str(), "result" => "miss"),
            }
        })
    }
}

/// Record a finished call; `fast` carries the answering model's cached handles.
pub fn record_call(
    task: TaskKind,
    meta: &ResponseMeta,
    outcome: &str,
    fast: Option<&ModelMetrics>,
) {
    if let Some(mm) = fast
        && outcome == "ok"
        && !meta.cache_hit
    {
        let h = mm.handles(task, meta);
        h.duration.record(meta.latency.as_secs_f64());
        if let Some(t) = meta.time_to_first_token {
            h.ttft.record(t.as_secs_f64());
        }
        h.tokens_in.record(meta.usage.input_tokens as f64);
        h.tokens_out.record(meta.usage.output_tokens as f64);
        h.cached_tokens.increment(meta.usage.cached_input_tokens);
        h.overhead.record(meta.gateway_overhead.as_secs_f64());
        h.cost_micros
            .increment((meta.cost_usd * 1e6).round() as u64);
        h.cache_miss.increment(1);
        return;
    }
    record_call_slow(task, meta, outcome);
}

fn record_call_slow(task: TaskKind, meta: &ResponseMeta, outcome: &str) {
    let provider = meta.provider_kind.as_str();
    let model = meta.model.clone();
    let labels = [
        ("gen_ai.operation.name", "chat".to_owned()),
        ("gen_ai.provider.name", provider.to_owned()),
        ("gen_ai.request.model", model.clone()),
        ("assay.task", task.as_str().to_owned()),
        ("assay.outcome", outcome.to_owned()),
    ];
    histogram!("gen_ai.client.operation.duration", &labels).record(meta.latency.as_secs_f64());
    if let Some(t) = meta.time_to_first_token {
        histogram!("gen_ai.client.operation.time_to_first_chunk", &labels).record(t.as_secs_f64());
    }
    if !meta.cache_hit {
        for (kind, n) in [
            ("input", meta.usage.input_tokens),
            ("output", meta.usage.output_tokens),
        ] {
            histogram!("gen_ai.client.token.usage", "gen_ai.token.type" => kind, "gen_ai.provider.name" => provider, "gen_ai.request.model" => model.clone()).record(n as f64);
        }
        counter!("assay_ai_tokens_total", "type" => "cached_input", "model" => model.clone())
            .increment(meta.usage.cached_input_tokens);
    }
    histogram!("assay_ai_gateway_overhead_seconds").record(meta.gateway_overhead.as_secs_f64());
    counter!("assay_ai_cost_usd_micros_total", "model" => model.clone(), "task" => task.as_str())
        .increment((meta.cost_usd * 1e6).round() as u64);
    let cache = if meta.cache_hit { "hit" } else { "miss" };
    counter!("assay_ai_cache_requests_total", "task" => task.as_str(), "result" => cache)
        .increment(1);
}

pub fn record_fallback(from_model: &str, code: &str) {
    counter!("assay_ai_fallbacks_total", "from_model" => from_model.to_owned(), "error" => code.to_owned()).increment(1);
}

pub fn record_failure(task: TaskKind, code: &str) {
    counter!("assay_ai_failed_requests_total", "task" => task.as_str(), "error" => code.to_owned())
        .increment(1);
}
