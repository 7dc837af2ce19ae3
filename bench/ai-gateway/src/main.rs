//! Benchmark: a gateway call (cache miss, every stage on) against a direct reqwest call to
//! the same mock-llm, interleaved in one run, at concurrency 1 and under a bounded load.
//! Prints both latency distributions and the added latency at p50/p99, plus the overhead
//! the gateway measures itself (total minus time waiting on the provider).

use assay_ai::config::{ModelConfig, ModelTimeouts, ProviderConfig};
use assay_ai::cost::Price;
use assay_ai::{
    AiConfig, AiRequest, ChatMessage, Gateway, MemoryUsageSink, StaticKnowledge, TaskKind,
};
use assay_bench_harness::{LatencyStats, ms, print_added_latency};
use assay_core::{OrgCtx, OrgId, Role, UserId};
use assay_infra::cache::{CacheConfig, TieredCache};
use clap::Parser;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Clone)]
struct Args {
    /// Measured calls per side (gateway and baseline) per scenario.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Concurrent callers in the load scenario.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Warm-up calls per side before measuring.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Use a running mock-llm (e.g. http://127.0.0.1:8089) instead of one in this process.
    #[arg(long)]
    mock_url: Option<String>,
}

fn body(q: &str) -> serde_json::Value {
    serde_json::json!({
        "model": "bench-model",
        "messages": [{"role": "user", "content": q}],
        "stream": false,
    })
}

/// The baseline: what any client would do to get the same answer.
async fn direct(http: &reqwest::Client, url: &str, q: &str) -> Duration {
    let t = Instant::now();
    let resp = http
        .post(url)
        .bearer_auth("bench-key")
        .json(&body(q))
        .send()
        .await
        .expect("mock reachable");
    assert!(resp.status().is_success());
    let v: serde_json::Value = resp.json().await.expect("json body");
    assert!(v["choices"][0]["message"]["content"].as_str().is_some());
    t.elapsed()
}

/// The candidate: the full gateway path, with a question never asked before (cache miss).
async fn via_gateway(gw: &Gateway, ctx: &OrgCtx, q: &str) -> (Duration, Duration) {
    let t = Instant::now();
    let resp = gw
        .complete(AiRequest::new(
            ctx,
            TaskKind::Help,
            vec![ChatMessage::user(q)],
        ))
        .await
        .expect("gateway answers");
    let took = t.elapsed();
    assert!(
        !resp.meta.cache_hit && !resp.meta.offline,
        "benchmark must measure provider calls: {:?}",
        resp.meta
    );
    (took, resp.meta.gateway_overhead)
}

struct Samples {
    gateway: Vec<Duration>,
    baseline: Vec<Duration>,
    overhead: Vec<Duration>,
}

/// `workers` callers, each alternating baseline and gateway calls so drift in the machine's
/// load hits both sides alike.
async fn run(
    gw: &Gateway,
    http: &reqwest::Client,
    url: &str,
    per_side: usize,
    workers: usize,
    tag: &str,
) -> Samples {
    let per_worker = per_side.div_ceil(workers);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (gw, http, url, tag) = (gw.clone(), http.clone(), url.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let ctx = OrgCtx::for_verified_member(OrgId::new(), UserId::new(), Role::Member);
            let mut s = Samples {
                gateway: Vec::new(),
                baseline: Vec::new(),
                overhead: Vec::new(),
            };
            for i in 0..per_worker {
                let q = format!(
                    "{tag} worker {w} question {i}: what evidence shows admin accounts use MFA?"
                );
                if i % 2 == 0 {
                    s.baseline.push(direct(&http, &url, &q).await);
                    let (g, o) = via_gateway(&gw, &ctx, &q).await;
                    s.gateway.push(g);
                    s.overhead.push(o);
                } else {
                    let (g, o) = via_gateway(&gw, &ctx, &q).await;
                    s.gateway.push(g);
                    s.overhead.push(o);
                    s.baseline.push(direct(&http, &url, &q).await);
                }
            }
            s
        }));
    }
    let mut all = Samples {
        gateway: Vec::new(),
        baseline: Vec::new(),
        overhead: Vec::new(),
    };
    for t in tasks {
        let s = t.await.expect("worker finished");
        all.gateway.extend(s.gateway);
        all.baseline.extend(s.baseline);
        all.overhead.extend(s.overhead);
    }
    all
}

fn report(title: &str, s: &Samples) {
    println!("\n== {title} ==");
    let g = LatencyStats::from_samples(&s.gateway);
    let b = LatencyStats::from_samples(&s.baseline);
    print_added_latency("gateway (cache miss)", &g, "direct reqwest", &b);
    let o = LatencyStats::from_samples(&s.overhead);
    println!("{}", o.line("gateway self-measured overhead"));
    let pass = ms(g.p50) - ms(b.p50) <= 0.25 && ms(g.p99) - ms(b.p99) <= 0.5;
    println!(
        "target added p50 <= 0.250ms, p99 <= 0.500ms: {}",
        if pass { "met" } else { "NOT met" }
    );
}

fn main() {
    let args = Args::parse();
    // The mock gets its own runtime thread so it does not compete for the client's workers.
    let mock_url = match &args.mock_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    tx.send(listener.local_addr().expect("addr"))
                        .expect("send addr");
                    mock_llm::serve(listener, mock_llm::MockConfig::default())
                        .await
                        .expect("serve");
                });
            });
            format!("http://{}", rx.recv().expect("mock started"))
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        // Metrics recorded for real, as in production (no exporter listener needed).
        let _prom = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("recorder");
        let cfg = AiConfig {
            providers: vec![ProviderConfig {
                name: "mock".into(),
                kind: "openai".into(),
                base_url: Some(format!("{mock_url}/v1")),
                api_key: Some("bench-key".to_string().into()),
                ..ProviderConfig::default()
            }],
            models: vec![ModelConfig {
                id: "mock/bench".into(),
                provider: "mock".into(),
                model: "bench-model".into(),
                tier: "fast".into(),
                context_window: 128_000,
                timeouts: ModelTimeouts::default(),
                price: Price {
                    input_per_million: 0.4,
                    output_per_million: 1.6,
                    cached_input_per_million: Some(0.1),
                },
            }],
            ..AiConfig::default()
        };
        let sink = Arc::new(MemoryUsageSink::default());
        let cache = TieredCache::in_memory(CacheConfig {
            name: "ai",
            ..CacheConfig::default()
        });
        let gw = Gateway::new(
            &cfg,
            cache,
            sink.clone(),
            Arc::new(StaticKnowledge::builtin()),
        )
        .expect("gateway");
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .expect("client");
        let url = format!("{mock_url}/v1/chat/completions");

        println!(
            "assay AI gateway benchmark: {} calls per side per scenario, mock at {mock_url}",
            args.requests
        );
        run(&gw, &http, &url, args.warmup, 1, "warmup").await;
        let c1 = run(&gw, &http, &url, args.requests, 1, "c1").await;
        report("concurrency 1", &c1);
        run(
            &gw,
            &http,
            &url,
            args.warmup,
            args.concurrency,
            "warmup-load",
        )
        .await;
        let load = run(&gw, &http, &url, args.requests, args.concurrency, "load").await;
        report(
            &format!("concurrency {} (bounded load)", args.concurrency),
            &load,
        );
        let expected = 2 * args.warmup
            + args.requests.div_ceil(1)
            + args.requests.div_ceil(args.concurrency) * args.concurrency;
        let recorded = sink.wait_for(expected, Duration::from_secs(10)).await.len();
        println!(
            "\nusage records written: {recorded} (dropped: {})",
            gw.usage_dropped()
        );
    });
}
