//! Cache-change announcements between nodes (`assay_infra::invalidation`): the time from
//! one node starting to announce a change until another node has it, next to the Redis
//! round trip every Redis-backed facility pays (`PING`), measured in the same run against
//! the same Redis. See README.md.

use assay_bench_harness::{LatencyStats, ms, print_added_latency};
use assay_infra::invalidation::{BusConfig, BusEvent, InvalidationBus};
use assay_infra::redis_conn;
use clap::Parser;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Announce-to-received latency of cache changes between two nodes via Redis")]
struct Args {
    /// Redis to use (both nodes and the baseline).
    #[arg(
        long,
        env = "ASSAY_REDIS__URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis: String,
    /// Announcements (and PINGs) measured, after as many unmeasured ones.
    #[arg(long, default_value_t = 5000)]
    samples: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let prefix = format!("assay-bench-{}:", std::process::id());
    let node = |url: &str| -> InvalidationBus {
        let client = redis_conn::client(url).expect("redis url");
        let conn = redis_conn::connect_lazy(url).expect("redis url");
        InvalidationBus::new(client, conn, &prefix, BusConfig::default())
    };
    let (announcing, receiving) = (node(&args.redis), node(&args.redis));
    let mut heard = receiving.subscribe();
    match tokio::time::timeout(Duration::from_secs(10), heard.recv()).await {
        Ok(Some(BusEvent::Resubscribed)) => {}
        _ => {
            eprintln!("could not subscribe on {}", args.redis);
            return std::process::ExitCode::FAILURE;
        }
    }

    // Baseline: one PING round trip on a connection of the kind every facility uses.
    let conn = redis_conn::connect_lazy(&args.redis).expect("redis url");
    let mut ping = Vec::with_capacity(args.samples);
    for i in 0..2 * args.samples {
        let took = redis_conn::ping(&conn, Duration::from_secs(5))
            .await
            .expect("PING");
        if i >= args.samples {
            ping.push(took);
        }
    }

    // Announced on one node until received on the other (the publish is awaited, as
    // `AppState::changed` awaits it, and the message is taken off the other node's queue).
    let mut delivered = Vec::with_capacity(args.samples);
    for i in 0..2 * args.samples {
        let payload = format!("{{\"kind\":\"api_key\",\"id\":\"k{i}\"}}");
        let started = Instant::now();
        assert!(announcing.publish(&payload).await, "PUBLISH failed");
        let got = tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .expect("an announcement within 5 s")
            .expect("the subscription runs");
        let took = started.elapsed();
        assert_eq!(
            got,
            BusEvent::Changed(payload),
            "announcements arrive in order"
        );
        if i >= args.samples {
            delivered.push(took);
        }
    }

    let ping = LatencyStats::from_samples(&ping);
    let delivered = LatencyStats::from_samples(&delivered);
    println!(
        "cache-change announcements through {} ({} samples each)",
        args.redis, args.samples
    );
    print_added_latency(
        "announce -> other node",
        &delivered,
        "redis PING round trip",
        &ping,
    );
    println!(
        "p99: {:.3} ms = {:.1}x a PING round trip (the cache lifetimes it replaces: 5,000-30,000 ms)",
        ms(delivered.p99),
        ms(delivered.p99) / ms(ping.p99).max(f64::EPSILON)
    );
    std::process::ExitCode::SUCCESS
}
