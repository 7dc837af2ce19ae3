//! Part 1: the full readiness recompute, timed in process against the server's own
//! database, next to its baselines, then the endpoint end to end over HTTP.
//!
//! `full` repeats what `routes::posture::readiness` does, step for step (keep the two in
//! step when the handler changes): adopted keys and control states from the primary,
//! `ReadinessModel::new` for the adopted packs, `compute`, serialise to the response body.
//! Every variant runs once per iteration, interleaved, so machine load hits them alike.

use crate::{Args, Session, loadavg};
use assay_bench_harness::{LatencyStats, ms};
use assay_core::OrgCtx;
use assay_core::catalogue::builtin;
use assay_core::readiness::{ControlState, ReadinessModel};
use assay_store::Db;
use assay_store::repo::posture;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

const TARGET: Duration = Duration::from_millis(10);

/// What the handler reads: the adopted framework keys and the control states by key.
async fn read_posture(db: &Db, ctx: &OrgCtx) -> (Vec<String>, HashMap<String, ControlState>) {
    let conn = db.primary();
    let adopted = posture::adopted(conn, ctx)
        .await
        .expect("adopted frameworks")
        .into_iter()
        .map(|a| a.framework_key)
        .collect();
    let states = posture::control_states(conn, ctx)
        .await
        .expect("control states")
        .into_iter()
        .map(|r| {
            let mut s = ControlState::new(r.status);
            s.justification = r.justification;
            (r.control_key, s)
        })
        .collect();
    (adopted, states)
}

/// Model for the adopted packs, compute, and the response body, as the handler builds it.
fn score_and_render(adopted: &[String], states: &HashMap<String, ControlState>) -> Vec<u8> {
    let known: Vec<&String> = adopted
        .iter()
        .filter(|k| builtin().framework(k).is_some())
        .collect();
    let model = ReadinessModel::new(builtin(), &known).expect("readiness model");
    let result = model.compute(states);
    let value = serde_json::to_value(&result).expect("serialise readiness");
    serde_json::to_vec(&value).expect("render readiness")
}

fn time<T>(samples: &mut Vec<Duration>, started: Instant, out: T) -> T {
    samples.push(started.elapsed());
    black_box(out)
}

/// Runs part 1 and prints its table; returns the number of failed HTTP requests.
pub async fn run(args: &Args, db: &Db, client: &reqwest::Client, base: &str, s: &Session) -> usize {
    let ctx = s.ctx();
    let (adopted, states) = read_posture(db, &ctx).await;
    assert_eq!(
        adopted.len(),
        builtin().frameworks().len(),
        "every pack adopted"
    );
    let body = score_and_render(&adopted, &states);
    let model = ReadinessModel::new(builtin(), &adopted).expect("model");
    let requirements: usize = model
        .compute(&states)
        .frameworks
        .iter()
        .map(|f| f.requirements.len())
        .sum();
    println!(
        "\n== recompute: {} frameworks, {requirements} assessable requirements, {} controls ({} with a stored state), body {} bytes; {} iterations; loadavg {}",
        adopted.len(),
        builtin().controls().len(),
        states.len(),
        body.len(),
        args.iterations,
        loadavg()
    );

    let (mut full, mut read, mut ping, mut in_memory, mut compute_only) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.iterations {
        let t = Instant::now();
        let (a, st) = read_posture(db, &ctx).await;
        time(&mut full, t, score_and_render(&a, &st));

        let t = Instant::now();
        let r = read_posture(db, &ctx).await;
        time(&mut read, t, r);

        let t = Instant::now();
        let p = db.ping(Duration::from_secs(5)).await.expect("SELECT 1");
        time(&mut ping, t, p);

        let t = Instant::now();
        time(&mut in_memory, t, score_and_render(&adopted, &states));

        let t = Instant::now();
        time(&mut compute_only, t, model.compute(&states).overall.score);
    }
    let full = LatencyStats::from_samples(&full);
    let read = LatencyStats::from_samples(&read);
    let ping = LatencyStats::from_samples(&ping);
    let in_memory = LatencyStats::from_samples(&in_memory);
    let compute_only = LatencyStats::from_samples(&compute_only);
    println!("{}", ping.line("SELECT 1 (round trip)"));
    println!("{}", read.line("DB read (adopted+states)"));
    println!("{}", full.line("full recompute"));
    println!("{}", in_memory.line("  in memory: model+compute+json"));
    println!("{}", compute_only.line("  compute only (model built)"));
    println!(
        "full / DB read: p50 {:.2}x  p99 {:.2}x;  full / SELECT 1: p50 {:.2}x;  in-memory share of full (mean) {:.0}%",
        ms(full.p50) / ms(read.p50).max(f64::EPSILON),
        ms(full.p99) / ms(read.p99).max(f64::EPSILON),
        ms(full.p50) / ms(ping.p50).max(f64::EPSILON),
        100.0 * ms(in_memory.mean) / ms(full.mean).max(f64::EPSILON)
    );
    let verdict = |d: Duration| if d <= TARGET { "met" } else { "NOT met" };
    println!(
        "target full recompute <= 10 ms: p50 {:.3} ms {}, p99 {:.3} ms {}",
        ms(full.p50),
        verdict(full.p50),
        ms(full.p99),
        verdict(full.p99)
    );

    // The endpoint end to end (auth, the same reads, compute, response) against /me on the
    // same connection, one request at a time, interleaved.
    let readiness_url = format!("{base}/api/v1/orgs/{}/readiness", s.org_id.0);
    let me_url = format!("{base}/api/v1/me");
    let (mut http_readiness, mut http_me, mut failures) = (Vec::new(), Vec::new(), 0);
    for _ in 0..args.http_iterations {
        for (url, samples) in [
            (&readiness_url, &mut http_readiness),
            (&me_url, &mut http_me),
        ] {
            let t = Instant::now();
            match client.get(url).bearer_auth(&s.token).send().await {
                Ok(res) if res.status().is_success() => {
                    let _ = res.bytes().await;
                    samples.push(t.elapsed());
                }
                _ => failures += 1,
            }
        }
    }
    let http_readiness = LatencyStats::from_samples(&http_readiness);
    let http_me = LatencyStats::from_samples(&http_me);
    println!("{}", http_me.line("HTTP GET /api/v1/me"));
    println!("{}", http_readiness.line("HTTP GET .../readiness"));
    println!(
        "HTTP readiness / me: p50 {:.2}x  p99 {:.2}x",
        ms(http_readiness.p50) / ms(http_me.p50).max(f64::EPSILON),
        ms(http_readiness.p99) / ms(http_me.p99).max(f64::EPSILON)
    );
    failures
}
