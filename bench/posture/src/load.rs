//! Part 2: one page of the controls list against `GET /api/v1/me` under the same load.
//! Rounds alternate which endpoint goes first; each round of each endpoint is bounded by a
//! request count and a time limit, so the run stops by itself.

use crate::{Args, Session, loadavg};
use assay_bench_harness::{LatencyStats, ms};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TARGET_RATIO: f64 = 2.0;

/// What one bounded burst against one URL produced.
struct Burst {
    elapsed: Duration,
    samples: Vec<Duration>,
    failures: usize,
}

impl Burst {
    fn rps(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// `concurrency` keep-alive workers share one request budget until it or `max` runs out.
async fn burst(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    requests: usize,
    concurrency: usize,
    max: Duration,
) -> Burst {
    let budget = Arc::new(AtomicUsize::new(requests));
    let started = Instant::now();
    let deadline = started + max;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, token, budget) = (
                client.clone(),
                url.to_owned(),
                token.to_owned(),
                budget.clone(),
            );
            tokio::spawn(async move {
                let (mut samples, mut failures) = (Vec::new(), 0);
                while Instant::now() < deadline
                    && budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                {
                    let t = Instant::now();
                    let ok = match client.get(&url).bearer_auth(&token).send().await {
                        Ok(res) => res.status().is_success() && res.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        samples.push(t.elapsed());
                    } else {
                        failures += 1;
                    }
                }
                (samples, failures)
            })
        })
        .collect();
    let mut out = Burst {
        elapsed: Duration::ZERO,
        samples: Vec::new(),
        failures: 0,
    };
    for w in workers {
        let (samples, failures) = w.await.expect("load worker");
        out.samples.extend(samples);
        out.failures += failures;
    }
    out.elapsed = started.elapsed();
    out
}

/// One endpoint's results over every round.
struct Series {
    label: &'static str,
    url: String,
    samples: Vec<Duration>,
    done: usize,
    elapsed: Duration,
}

impl Series {
    fn new(label: &'static str, url: String) -> Self {
        Self {
            label,
            url,
            samples: Vec::new(),
            done: 0,
            elapsed: Duration::ZERO,
        }
    }

    fn add(&mut self, b: Burst) -> LatencyStats {
        let stats = LatencyStats::from_samples(&b.samples);
        self.done += b.samples.len();
        self.elapsed += b.elapsed;
        self.samples.extend(b.samples);
        stats
    }
}

fn ratio(list: &LatencyStats, me: &LatencyStats) -> f64 {
    ms(list.p99) / ms(me.p99).max(f64::EPSILON)
}

/// The measured page must be the real thing: 50 controls, a cursor to the next page, and
/// on both pages exactly the statuses the set-up stored (the list reads only the page's
/// rows, so a wrong narrowing would show here as `not_started`).
async fn check_pages(client: &reqwest::Client, first: &str, s: &Session) {
    let mut url = first.to_owned();
    for _ in 0..2 {
        let page: serde_json::Value = client
            .get(&url)
            .bearer_auth(&s.token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("list body");
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 50, "one page of 50 controls: {page}");
        for item in items {
            let key = item["key"].as_str().expect("key");
            let expected = s.statuses.get(key).map_or("not_started", String::as_str);
            assert_eq!(item["status"], expected, "status of {key}");
            if expected == "not_applicable" {
                assert!(
                    item["justification"].is_string(),
                    "{key} keeps its justification"
                );
            }
        }
        let cursor = page["next_cursor"].as_str().expect("a next page exists");
        url = format!("{first}&cursor={cursor}");
    }
}

/// Runs part 2 and prints its table; returns the number of failed requests.
pub async fn run(args: &Args, client: &reqwest::Client, base: &str, s: &Session) -> usize {
    let org = format!("{base}/api/v1/orgs/{}", s.org_id.0);
    let mut list = Series::new("list", format!("{org}/controls?limit=50"));
    let mut me = Series::new("me", format!("{base}/api/v1/me"));
    let mut probe = args
        .probe
        .then(|| Series::new("list?limit=1", format!("{org}/controls?limit=1")));

    check_pages(client, &list.url, s).await;
    let bytes = |url: String| {
        let token = s.token.clone();
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("get")
                .bytes()
                .await
                .map_or(0, |b| b.len())
        }
    };
    println!(
        "\n== load: concurrency {} requests/round {} rounds {} max {}s/round; body sizes: list {} B, me {} B",
        args.concurrency,
        args.requests,
        args.rounds,
        args.max_secs,
        bytes(list.url.clone()).await,
        bytes(me.url.clone()).await
    );

    let max = Duration::from_secs(args.max_secs);
    let c = args.concurrency;
    for series in [&list, &me] {
        burst(client, &series.url, &s.token, args.warmup, c, max).await;
    }
    let mut failures = 0;
    for round in 1..=args.rounds {
        let load_before = loadavg();
        let list_first = round % 2 == 1;
        let mut run_one = async |series: &mut Series| {
            let b = burst(client, &series.url, &s.token, args.requests, c, max).await;
            failures += b.failures;
            let rps = b.rps();
            (series.add(b), rps)
        };
        let (l, m) = if list_first {
            let l = run_one(&mut list).await;
            (l, run_one(&mut me).await)
        } else {
            let m = run_one(&mut me).await;
            (run_one(&mut list).await, m)
        };
        let p = match probe.as_mut() {
            Some(p) => Some(run_one(p).await),
            None => None,
        };
        println!(
            "round {round} (loadavg {load_before}): list p50 {:.2} p99 {:.2} ms {:.0} req/s | me p50 {:.2} p99 {:.2} ms {:.0} req/s | p99 ratio {:.2}{}",
            ms(l.0.p50),
            ms(l.0.p99),
            l.1,
            ms(m.0.p50),
            ms(m.0.p99),
            m.1,
            ratio(&l.0, &m.0),
            p.map_or(String::new(), |(ps, prps)| format!(
                " | limit=1 p50 {:.2} p99 {:.2} ms {prps:.0} req/s",
                ms(ps.p50),
                ms(ps.p99)
            ))
        );
    }
    let mut all = vec![&list, &me];
    all.extend(probe.as_ref());
    for series in &all {
        println!(
            "{}  {:.0} req/s",
            LatencyStats::from_samples(&series.samples).line(series.label),
            series.done as f64 / series.elapsed.as_secs_f64().max(f64::EPSILON)
        );
    }
    let r = ratio(
        &LatencyStats::from_samples(&list.samples),
        &LatencyStats::from_samples(&me.samples),
    );
    println!(
        "list p99 / me p99 over all rounds: {r:.2} (target <= {TARGET_RATIO}: {})",
        if r <= TARGET_RATIO { "met" } else { "NOT met" }
    );
    failures
}
