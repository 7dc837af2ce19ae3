//! Benchmark (issue 4): the cost of an organisation's posture for one that adopted every
//! built-in pack. One real Assay server on loopback (PostgreSQL when
//! `ASSAY_BENCH_POSTGRES_URL` or `ASSAY_TEST_POSTGRES_URL` is set, else SQLite); the org is
//! built through the API (register, adopt every pack, a bulk update giving a realistic
//! mix of control statuses). Then:
//!
//! 1. `recompute`: the full readiness recompute as `GET .../readiness` does it, timed in
//!    process against the same database, next to the bare DB read it starts with, a
//!    `SELECT 1` and the in-memory part alone; then the endpoint end to end over HTTP.
//!    Target: ≤ 10 ms per full recompute.
//! 2. `load`: `GET .../controls?limit=50` and `GET /api/v1/me` at the same concurrency in
//!    alternating bounded rounds. Target: list p99 ≤ 2 × me p99 in the same run.

mod load;
mod recompute;

use assay_api::{App, MigrationPolicy};
use assay_config::Config;
use assay_core::catalogue::builtin;
use assay_core::{OrgCtx, OrgId, Role, UserId};
use assay_store::testing::{create_postgres_database, drop_postgres_database, expose_for_tests};
use clap::Parser;
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Parser, Clone)]
struct Args {
    /// In-process recompute iterations (each times every variant once, interleaved).
    #[arg(long, default_value_t = 2_000)]
    iterations: usize,
    /// Sequential HTTP requests per endpoint for the end-to-end readiness timing.
    #[arg(long, default_value_t = 500)]
    http_iterations: usize,
    /// Requests per endpoint per load round.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Concurrent connections under load.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Load rounds (each runs the list and /me once, alternating which goes first).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// A load round stops after this many seconds even if not all requests were sent.
    #[arg(long, default_value_t = 15)]
    max_secs: u64,
    /// Unmeasured requests per endpoint before the first load round.
    #[arg(long, default_value_t = 1_000)]
    warmup: usize,
    /// Also drive `controls?limit=1` (same auth and query, almost no body) in every round,
    /// to tell the list's database and auth cost from its rendering cost.
    #[arg(long)]
    probe: bool,
}

/// The signed-up owner of the benchmark organisation.
pub struct Session {
    pub token: String,
    pub user_id: UserId,
    pub org_id: OrgId,
    /// The status the bulk update gave each control (absent: never touched).
    pub statuses: HashMap<String, String>,
}

impl Session {
    pub fn ctx(&self) -> OrgCtx {
        OrgCtx::for_verified_member(self.org_id, self.user_id, Role::Owner)
    }
}

/// The machine's load average (1, 5, 15 min) from /proc/loadavg, for the results table.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn uuid_at(v: &Value, what: &str) -> uuid::Uuid {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what} is not a UUID: {v}"))
}

async fn expect_ok(res: reqwest::Response, what: &str) -> Value {
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    assert!(status.is_success(), "{what}: {status} {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// A plausible mid-programme posture over the whole library: 40% implemented, 20% in
/// progress (owned, with a due date), 10% not applicable with a justification, 10%
/// explicitly not started with a note, 20% never touched (no row).
fn status_mix(user: UserId) -> Value {
    let updates: Vec<Value> = builtin()
        .controls()
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let update = match i % 10 {
                0..=3 => json!({ "key": c.key, "status": "implemented", "owner_id": user.0,
                    "notes": "Evidence linked in the quarterly review." }),
                4 | 5 => json!({ "key": c.key, "status": "in_progress", "owner_id": user.0,
                    "due_date": "2027-03-31" }),
                6 => json!({ "key": c.key, "status": "not_applicable",
                    "justification": "Out of scope: the organisation runs no such systems." }),
                7 => json!({ "key": c.key, "status": "not_started",
                    "notes": "Planned for next year." }),
                _ => return None,
            };
            Some(update)
        })
        .collect();
    json!({ "updates": updates })
}

/// Register an owner, adopt every built-in pack and set the status mix, all through the API.
async fn build_org(client: &reqwest::Client, base: &str) -> Session {
    let registered = expect_ok(
        client
            .post(format!("{base}/api/v1/auth/register"))
            .json(&json!({
                "email": "posture-bench@example.com",
                "password": "a-long-benchmark-password-42",
                "name": "Bench",
                "org_name": "Posture Bench Org",
            }))
            .send()
            .await
            .expect("register"),
        "register",
    )
    .await;
    let mut session = Session {
        statuses: HashMap::new(),
        token: registered["access_token"]
            .as_str()
            .expect("access token")
            .to_owned(),
        user_id: UserId(uuid_at(&registered["user"]["id"], "user id")),
        org_id: OrgId(uuid_at(&registered["org"]["id"], "org id")),
    };
    let org = format!("{base}/api/v1/orgs/{}", session.org_id.0);
    for fw in builtin().frameworks() {
        let res = client
            .put(format!("{org}/frameworks/{}", fw.key))
            .bearer_auth(&session.token)
            .send()
            .await
            .expect("adopt");
        expect_ok(res, &format!("adopt {}", fw.key)).await;
    }
    let mix = status_mix(session.user_id);
    session.statuses = mix["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|u| {
            (
                u["key"].as_str().unwrap_or_default().to_owned(),
                u["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let res = client
        .post(format!("{org}/controls/bulk"))
        .bearer_auth(&session.token)
        .json(&mix)
        .send()
        .await
        .expect("bulk update");
    let updated = expect_ok(res, "bulk update").await;
    println!(
        "org: {} frameworks adopted, {} of {} controls given a status",
        builtin().frameworks().len(),
        updated["updated"],
        builtin().controls().len()
    );
    session
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
    let db = assay_api::db_of(&app).clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .expect("client");

    println!(
        "posture bench: backend={backend} loadavg at start {}",
        loadavg()
    );
    let session = build_org(&client, &base).await;
    let mut failures = recompute::run(&args, &db, &client, &base, &session).await;
    failures += load::run(&args, &client, &base, &session).await;
    println!("loadavg at end {}", loadavg());

    let _ = stop_tx.send(());
    let _ = server.await;
    if let Some((admin, name)) = pg_db {
        drop_postgres_database(&admin, &name).await;
    }
    if failures > 0 {
        println!("failed requests: {failures}");
        std::process::exit(1);
    }
}
