//! The gateway's metrics, read back from a recorder: OpenTelemetry GenAI names for tokens
//! and durations, plus cache, breaker, fallback and cost series, and the usage ledger's
//! bookkeeping series. Own test binary, because a global recorder can be installed once
//! per process.

use assay_ai::config::{ModelConfig, ModelTimeouts, ProviderConfig};
use assay_ai::cost::Price;
use assay_ai::{
    AiConfig, AiRequest, ChatMessage, Gateway, MemoryUsageSink, StaticKnowledge, TaskKind,
};
use assay_core::{OrgCtx, OrgId};
use assay_infra::cache::{CacheConfig, TieredCache};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use mock_llm::{Fault, MockConfig};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn calls_publish_genai_and_gateway_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("first recorder in this process");

    let (a, b) = (
        mock_llm::spawn(MockConfig::default()).await.unwrap(),
        mock_llm::spawn(MockConfig::default()).await.unwrap(),
    );
    let provider = |name: &str, m: &mock_llm::MockServer| ProviderConfig {
        name: name.into(),
        kind: "openai".into(),
        base_url: Some(format!("{}/v1", m.base_url())),
        api_key: Some("k".to_string().into()),
        ..ProviderConfig::default()
    };
    let model = |id: &str, p: &str| ModelConfig {
        id: id.into(),
        provider: p.into(),
        model: id.into(),
        tier: "fast".into(),
        context_window: 10_000,
        timeouts: ModelTimeouts::default(),
        price: Price {
            input_per_million: 1_000.0,
            output_per_million: 1_000.0,
            cached_input_per_million: None,
        },
    };
    let mut cfg = AiConfig {
        providers: vec![provider("pa", &a), provider("pb", &b)],
        models: vec![model("ma", "pa"), model("mb", "pb")],
        ..AiConfig::default()
    };
    cfg.retry.max_attempts = 1;
    cfg.breaker.failure_threshold = 1;
    let gw = Gateway::new(
        &cfg,
        TieredCache::in_memory(CacheConfig::default()),
        Arc::new(MemoryUsageSink::default()),
        Arc::new(StaticKnowledge::builtin()),
    )
    .unwrap();
    let ctx = OrgCtx::for_system(OrgId::new());

    a.control.push_faults([Fault::Status(500)]);
    let first = gw
        .complete(AiRequest::new(
            &ctx,
            TaskKind::Help,
            vec![ChatMessage::user("one two three")],
        ))
        .await
        .unwrap();
    assert_eq!(first.meta.model, "mb");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = gw
        .complete(AiRequest::new(
            &ctx,
            TaskKind::Help,
            vec![ChatMessage::user("one two three")],
        ))
        .await
        .unwrap();
    assert!(again.meta.cache_hit);
    gw.flush_usage().await;

    let snap = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snap.iter()
            .filter(|(k, ..)| {
                let key = k.key();
                key.name() == name
                    && labels
                        .iter()
                        .all(|(lk, lv)| key.labels().any(|l| l.key() == *lk && l.value() == *lv))
            })
            .map(|(_, _, _, v)| v)
            .collect::<Vec<&DebugValue>>()
    };
    let counter = |name: &str, labels: &[(&str, &str)]| -> u64 {
        find(name, labels)
            .iter()
            .map(|v| {
                if let DebugValue::Counter(n) = v {
                    *n
                } else {
                    0
                }
            })
            .sum()
    };

    let input = find(
        "gen_ai.client.token.usage",
        &[
            ("gen_ai.token.type", "input"),
            ("gen_ai.request.model", "mb"),
        ],
    );
    assert!(
        matches!(&input[..], [DebugValue::Histogram(h)] if h.len() == 1 && h[0].into_inner() == 3.0),
        "{input:?}"
    );
    assert_eq!(
        find(
            "gen_ai.client.operation.duration",
            &[("gen_ai.request.model", "mb"), ("assay.task", "help")]
        )
        .len(),
        1
    );
    assert_eq!(
        find(
            "gen_ai.client.operation.time_to_first_chunk",
            &[("gen_ai.request.model", "mb")]
        )
        .len(),
        1
    );
    assert_eq!(
        counter("assay_ai_cache_requests_total", &[("result", "hit")]),
        1
    );
    assert_eq!(
        counter("assay_ai_cache_requests_total", &[("result", "miss")]),
        1
    );
    assert_eq!(
        counter(
            "assay_ai_fallbacks_total",
            &[("from_model", "ma"), ("error", "ai_unavailable")]
        ),
        1
    );
    let cost_micros = (first.meta.cost_usd * 1e6).round() as u64;
    assert!(cost_micros > 0);
    assert_eq!(
        counter("assay_ai_cost_usd_micros_total", &[("model", "mb")]),
        cost_micros
    );
    let breaker = find("assay_ai_breaker_state", &[("model", "ma")]);
    assert!(
        matches!(&breaker[..], [DebugValue::Gauge(g)] if g.into_inner() == 2.0),
        "ma is open: {breaker:?}"
    );
    assert_eq!(find("assay_ai_gateway_overhead_seconds", &[]).len(), 1);
    // The usage ledger's bookkeeping queue times its writes and reports its backlog.
    let writes = find("assay_bookkeeping_write_seconds", &[("queue", "ai_usage")]);
    assert!(
        matches!(&writes[..], [DebugValue::Histogram(h)] if !h.is_empty()),
        "{writes:?}"
    );
    let backlog = find("assay_bookkeeping_backlog", &[("queue", "ai_usage")]);
    assert!(
        matches!(&backlog[..], [DebugValue::Gauge(g)] if g.into_inner() == 0.0),
        "{backlog:?}"
    );
}
