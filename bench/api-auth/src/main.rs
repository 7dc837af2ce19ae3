//! Benchmark: how much throughput authentication costs. One real Assay server (the full
//! middleware stack, on PostgreSQL when `ASSAY_BENCH_POSTGRES_URL` or
//! `ASSAY_TEST_POSTGRES_URL` is set, else SQLite) on loopback; the same load generator
//! drives `GET /health/live` (no auth, no database) and `GET /api/v1/me` with a bearer
//! access token (JWT verification, revocation check, account check, rate limit, the
//! profile and memberships read) in alternating rounds, each bounded by a request count and
//! a time limit. Prints both throughputs, latency lines and the ratio me / live.

use assay_api::{App, MigrationPolicy};
use assay_bench_harness::LatencyStats;
use assay_config::Config;
use assay_store::testing::{create_postgres_database, drop_postgres_database, expose_for_tests};
use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Clone)]
struct Args {
    /// Requests per endpoint per round.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// A round stops after this many seconds even if not all requests were sent.
    #[arg(long, default_value_t = 15)]
    max_secs: u64,
    /// Rounds per endpoint (alternating live, me, live, me, ...).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Unmeasured requests per endpoint before the first round.
    #[arg(long, default_value_t = 1_000)]
    warmup: usize,
}

/// One bounded round: completed requests, elapsed time, latencies, failures.
struct Round {
    done: usize,
    elapsed: Duration,
    samples: Vec<Duration>,
    failures: usize,
}

async fn drive(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    requests: usize,
    concurrency: usize,
    max: Duration,
) -> Round {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + max;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, next) = (client.clone(), url.to_owned(), next.clone());
        let token = token.map(str::to_owned);
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut failures = 0;
            while next.fetch_add(1, Ordering::Relaxed) < requests && Instant::now() < deadline {
                let mut req = client.get(&url);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let t0 = Instant::now();
                match req.send().await {
                    Ok(res) => {
                        let ok = res.status().is_success();
                        let _ = res.bytes().await;
                        if ok {
                            samples.push(t0.elapsed());
                        } else {
                            failures += 1;
                        }
                    }
                    Err(_) => failures += 1,
                }
            }
            (samples, failures)
        }));
    }
    let mut round = Round {
        done: 0,
        elapsed: Duration::ZERO,
        samples: Vec::new(),
        failures: 0,
    };
    for w in workers {
        let (samples, failures) = w.await.expect("worker");
        round.samples.extend(samples);
        round.failures += failures;
    }
    round.elapsed = start.elapsed();
    round.done = round.samples.len();
    round
}

fn rps(done: usize, elapsed: Duration) -> f64 {
    done as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let pg_admin = ["ASSAY_BENCH_POSTGRES_URL", "ASSAY_TEST_POSTGRES_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()));
    let mut config = Config::default();
    let _sqlite_dir;
    let pg_db = match &pg_admin {
        Some(admin) => {
            let (settings, name) = create_postgres_database(admin).await;
            config.database.url = expose_for_tests(&settings.url);
            Some((admin.clone(), name))
        }
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            config.database.url = format!("sqlite://{}", dir.path().join("assay.db").display());
            _sqlite_dir = dir;
            None
        }
    };
    let backend = if pg_db.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    config.auth.jwt_secret = "bench-signing-secret-of-at-least-32-bytes!".into();
    config.server.addr = "127.0.0.1:0".into();
    // Every request comes from 127.0.0.1: the per-IP limits would measure themselves.
    config.rate_limits.api_per_minute = u32::MAX / 2;
    config.rate_limits.auth_per_minute = 1_000;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let app = App::start(config, listener, MigrationPolicy::Apply)
        .await
        .expect("app starts");
    let base = format!("http://{}", app.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .expect("client");
    let registered: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&serde_json::json!({
            "email": "loadtest@example.com",
            "password": "a-long-benchmark-password-42",
            "name": "Bench",
            "org_name": "Bench Org",
        }))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("register body");
    let token = registered["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {registered}"))
        .to_owned();

    let live_url = format!("{base}/health/live");
    let me_url = format!("{base}/api/v1/me");
    let max = Duration::from_secs(args.max_secs);
    println!(
        "api-auth: backend={backend} requests/round={} concurrency={} rounds={} max {}s/round",
        args.requests, args.concurrency, args.rounds, args.max_secs
    );
    drive(&client, &live_url, None, args.warmup, args.concurrency, max).await;
    drive(
        &client,
        &me_url,
        Some(&token),
        args.warmup,
        args.concurrency,
        max,
    )
    .await;

    let (mut live_all, mut me_all) = (Vec::new(), Vec::new());
    let (mut live_done, mut live_time, mut me_done, mut me_time) =
        (0, Duration::ZERO, 0, Duration::ZERO);
    let mut failures = 0;
    for round in 1..=args.rounds {
        let live = drive(
            &client,
            &live_url,
            None,
            args.requests,
            args.concurrency,
            max,
        )
        .await;
        let me = drive(
            &client,
            &me_url,
            Some(&token),
            args.requests,
            args.concurrency,
            max,
        )
        .await;
        println!(
            "round {round}: live {:>9.0} req/s ({} in {:.2}s)  me {:>9.0} req/s ({} in {:.2}s)  ratio {:.3}",
            rps(live.done, live.elapsed),
            live.done,
            live.elapsed.as_secs_f64(),
            rps(me.done, me.elapsed),
            me.done,
            me.elapsed.as_secs_f64(),
            rps(me.done, me.elapsed) / rps(live.done, live.elapsed).max(f64::EPSILON)
        );
        failures += live.failures + me.failures;
        live_done += live.done;
        live_time += live.elapsed;
        me_done += me.done;
        me_time += me.elapsed;
        live_all.extend(live.samples);
        me_all.extend(me.samples);
    }
    let (live_rps, me_rps) = (rps(live_done, live_time), rps(me_done, me_time));
    println!(
        "{}",
        LatencyStats::from_samples(&live_all).line("GET /health/live")
    );
    println!(
        "{}",
        LatencyStats::from_samples(&me_all).line("GET /api/v1/me (bearer JWT)")
    );
    println!("throughput: /health/live {live_rps:.0} req/s, /api/v1/me {me_rps:.0} req/s");
    let ratio = me_rps / live_rps.max(f64::EPSILON);
    println!(
        "ratio me/live: {ratio:.3} (target >= 0.60 on PostgreSQL: {})",
        if ratio >= 0.60 { "met" } else { "NOT met" }
    );
    if failures > 0 {
        println!("failed requests: {failures}");
    }

    let _ = stop_tx.send(());
    let _ = server.await;
    if let Some((admin, name)) = pg_db {
        drop_postgres_database(&admin, &name).await;
    }
    if failures > 0 {
        std::process::exit(1);
    }
}
