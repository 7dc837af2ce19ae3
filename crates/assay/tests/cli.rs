//! The `assay` binary as an operator uses it: started in an empty folder, pointed at
//! PostgreSQL with a SQLAlchemy-style URL, checked, migrated, stopped with SIGTERM.

use assay_core::OrgId;
use assay_store::repo::audit::{self, Actor, NewAuditEvent};
use assay_store::testing::{create_postgres_database, drop_postgres_database, service_url};
use assay_store::{DatabaseUrl, Db, DbSettings};
use sea_orm::ConnectionTrait;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_assay");

/// The binary with a clean environment (no stray DATABASE_URL etc.) in `dir`.
fn assay(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run assay")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running `assay serve`, killed if the test ends early.
struct Server(Child, u16);

impl Server {
    fn start(cmd: Command) -> Server {
        Self::start_with(cmd, &[])
    }

    fn start_with(mut cmd: Command, serve_args: &[&str]) -> Server {
        let port = free_port();
        let child = cmd
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(serve_args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn assay serve");
        Server(child, port)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.1, path)
    }

    /// Poll readiness until 200 (or fail with the server's log).
    async fn wait_ready(&mut self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = reqwest::get(self.url("/health/ready")).await
                && res.status() == 200
            {
                return res.json().await.unwrap();
            }
            if let Ok(Some(status)) = self.0.try_wait() {
                let mut log = String::new();
                std::io::Read::read_to_string(self.0.stderr.as_mut().unwrap(), &mut log).ok();
                panic!("assay exited with {status} before becoming ready:\n{log}");
            }
            assert!(Instant::now() < deadline, "assay did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "assay did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn version_is_printed() {
    let out = run(Command::new(BIN).arg("--version"));
    assert!(out.status.success());
    assert!(text(&out).starts_with("assay "));
}

#[tokio::test]
async fn serve_in_an_empty_folder_creates_sqlite_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(assay(dir.path()));
    let ready = server.wait_ready().await;
    assert_eq!(ready["checks"]["database"]["backend"], "sqlite");
    assert!(ready["checks"]["database"]["latency_ms"].as_f64().is_some());
    assert!(dir.path().join("data/assay.db").is_file());
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}

#[tokio::test]
async fn serve_accepts_sqlalchemy_style_postgres_urls_and_migrates() {
    let Some(admin) = service_url("ASSAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (settings, name) = create_postgres_database(&admin).await;
    let url = assay_store::testing::expose_for_tests(&settings.url).replacen(
        "postgres://",
        "postgresql+asyncpg://",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = assay(dir.path());
    cmd.env("DATABASE_URL", &url);
    let mut server = Server::start(cmd);
    let ready = server.wait_ready().await;
    assert_eq!(ready["checks"]["database"]["backend"], "postgres");
    assert_eq!(server.terminate().code(), Some(0));

    let status = run(assay(dir.path())
        .env("DATABASE_URL", &url)
        .args(["migrate", "status"]));
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        text(&status).contains("applied    m0001_identity_and_audit"),
        "{}",
        text(&status)
    );
    drop_postgres_database(&admin, &name).await;
}

#[test]
fn config_check_lists_every_production_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let ok = run(assay(dir.path()).args(["config", "check"]));
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));

    let out = run(assay(dir.path())
        .env("ASSAY_ENV", "production")
        .args(["config", "check"]));
    assert_eq!(out.status.code(), Some(2));
    let all = text(&out);
    for setting in ["auth.jwt_secret", "security.encryption_key", "tls.cert"] {
        assert!(all.contains(setting), "{setting} not reported:\n{all}");
    }
    assert!(
        all.contains("[redacted]"),
        "secrets are shown redacted:\n{all}"
    );
    assert!(
        !all.contains(assay_config_dev_secret()),
        "the development secret leaked:\n{all}"
    );
}

fn assay_config_dev_secret() -> &'static str {
    "assay-development-only-jwt-secret-change-me"
}

#[test]
fn malformed_settings_exit_2_naming_the_setting_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(assay(dir.path())
        .env("DATABASE_URL", "mysql://root:hunter2@db/assay")
        .args(["serve", "--addr", "127.0.0.1:99999"]));
    assert_eq!(out.status.code(), Some(2));
    let all = text(&out);
    assert!(
        all.contains("database.url") && all.contains("unknown scheme"),
        "{all}"
    );
    assert!(all.contains("server.addr"), "{all}");
    assert!(
        !all.contains("hunter2") && !all.contains("panicked"),
        "{all}"
    );

    let out = run(assay(dir.path())
        .env("ASSAY_SERVER__REQUEST_TIMEOUT_SECS", "soon")
        .args(["config", "check"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("server.request_timeout_secs"),
        "{}",
        text(&out)
    );
}

async fn sqlite_db(dir: &Path) -> Db {
    let db = Db::connect(&DbSettings::new(DatabaseUrl::SqliteFile(
        dir.join("data/assay.db"),
    )))
    .await
    .unwrap();
    db.migrate_up().await.unwrap();
    db
}

#[tokio::test]
async fn a_database_from_a_newer_release_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(dir.path()).await;
    db.primary()
        .execute_unprepared(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m0999_future', 0)",
        )
        .await
        .unwrap();
    db.close().await;
    let out =
        run(assay(dir.path()).args(["serve", "--addr", &format!("127.0.0.1:{}", free_port())]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("m0999_future") && text(&out).contains("newer Assay"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn migrate_up_then_status_and_no_migrate_start() {
    let dir = tempfile::tempdir().unwrap();
    // --no-migrate on a fresh database refuses: migrations are pending.
    let out = run(assay(dir.path()).args([
        "serve",
        "--no-migrate",
        "--addr",
        &format!("127.0.0.1:{}", free_port()),
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("pending migrations"), "{}", text(&out));

    let up = run(assay(dir.path()).args(["migrate", "up"]));
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains("applied m0001_identity_and_audit"));
    let again = run(assay(dir.path()).arg("migrate"));
    assert!(text(&again).contains("up to date"), "{}", text(&again));

    let mut server = Server::start_with(assay(dir.path()), &["--no-migrate"]);
    server.wait_ready().await;
    assert_eq!(server.terminate().code(), Some(0));
}

#[tokio::test]
async fn audit_verify_names_a_tampered_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(dir.path()).await;
    let org = OrgId::new();
    for i in 0..3 {
        audit::append(
            db.primary(),
            NewAuditEvent::new(Some(org), Actor::System, format!("step.{i}")),
        )
        .await
        .unwrap();
    }
    let ok = run(assay(dir.path()).args(["audit", "verify"]));
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("intact (3 events)"), "{}", text(&ok));

    db.primary()
        .execute_unprepared("UPDATE audit_events SET details = '{\"forged\":true}' WHERE seq = 2")
        .await
        .unwrap();
    db.close().await;
    let bad = run(assay(dir.path()).args(["audit", "verify", "--org", &org.to_string()]));
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("BROKEN at event 2"), "{}", text(&bad));
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let mut cmd = assay(dir.path());
    cmd.env(
        "ASSAY_SERVER__METRICS_ADDR",
        format!("127.0.0.1:{metrics_port}"),
    );
    let mut server = Server::start(cmd);
    server.wait_ready().await;
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("assay_db_up 1"), "{text}");
    // Not on the public port.
    assert_eq!(
        reqwest::get(server.url("/metrics")).await.unwrap().status(),
        404
    );
    assert_eq!(server.terminate().code(), Some(0));
}

/// A small framework pack in Assay's own YAML format (two requirements).
const ACME_PACK: &str = "format: assay.framework.v1
framework:
  key: acme-baseline
  name: ACME Baseline
  version: \"1.0\"
  publisher: ACME
  licence: { id: CC-BY-4.0, name: Creative Commons Attribution 4.0 }
  provenance: { source: ACME baseline v1 }
  description: A small baseline.
requirements:
  - { ref: AC, title: Access, description: Access control. }
  - { ref: AC-1, parent: AC, title: MFA, description: Every sign-in uses MFA. }
";

#[tokio::test]
async fn frameworks_import_and_list_use_the_configured_database() {
    use assay_store::repo::{imported_frameworks, organisations, users};
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(dir.path()).await;
    let org = db
        .write(|txn| {
            Box::pin(async move {
                let user = users::create(
                    txn,
                    users::NewUser {
                        email: "cli@example.com",
                        name: "CLI",
                        password_hash: None,
                    },
                )
                .await?;
                organisations::create_with_owner(txn, "Cli Org", "cli-org", user.id).await
            })
        })
        .await
        .unwrap();
    db.close().await;
    let pack = ACME_PACK;
    std::fs::write(dir.path().join("acme.yaml"), pack).unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        pack.replace("parent: AC,", "parent: NOPE,"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("example_1.0_aws.json"),
        include_str!("../../core/tests/fixtures/prowler-provider.json"),
    )
    .unwrap();

    // Platform-wide without --org.
    let out = run(assay(dir.path()).args(["frameworks", "import", "acme.yaml"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out)
            .contains("imported acme-baseline (ACME Baseline 1.0) platform-wide: 2 requirements"),
        "{}",
        text(&out)
    );
    // The same key again: refused, exit 1.
    let again = run(assay(dir.path()).args(["frameworks", "import", "acme.yaml"]));
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("already taken"), "{}", text(&again));
    // A bad file: every problem with its path, exit 1, nothing stored.
    let bad =
        run(assay(dir.path()).args(["frameworks", "import", "broken.yaml", "--key", "other"]));
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("requirements[1].parent")
            && text(&bad).contains("nothing was imported"),
        "{}",
        text(&bad)
    );
    // For one organisation, with the format named.
    let org_id = org.id.to_string();
    let prowler = run(assay(dir.path()).args([
        "frameworks",
        "import",
        "example_1.0_aws.json",
        "--format",
        "prowler",
        "--org",
        &org_id,
    ]));
    assert_eq!(prowler.status.code(), Some(0), "{}", text(&prowler));
    assert!(
        text(&prowler).contains("imported prowler-example_1.0_aws")
            && text(&prowler).contains(&format!("for organisation {org_id}")),
        "{}",
        text(&prowler)
    );

    let platform = run(assay(dir.path()).args(["frameworks", "list"]));
    assert_eq!(platform.status.code(), Some(0));
    let listed = text(&platform);
    assert!(
        listed.contains("nist-csf") && listed.contains("built-in"),
        "{listed}"
    );
    assert!(
        listed.contains("acme-baseline") && listed.contains("platform"),
        "{listed}"
    );
    assert!(!listed.contains("prowler-example"), "{listed}");
    let mine = run(assay(dir.path()).args(["frameworks", "list", "--org", &org_id]));
    assert!(
        text(&mine).contains("prowler-example_1.0_aws"),
        "{}",
        text(&mine)
    );

    let bad_org = run(assay(dir.path()).args(["frameworks", "list", "--org", "nope"]));
    assert_eq!(bad_org.status.code(), Some(2));
    let unknown_org = run(assay(dir.path()).args([
        "frameworks",
        "import",
        "acme.yaml",
        "--org",
        &OrgId::new().to_string(),
    ]));
    assert_eq!(unknown_org.status.code(), Some(1), "{}", text(&unknown_org));

    // Exactly the two good imports are stored, and both are in the intact audit chains.
    let db = sqlite_db(dir.path()).await;
    let ctx = assay_core::OrgCtx::for_system(org.id);
    assert_eq!(
        imported_frameworks::list_platform(db.primary())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        imported_frameworks::list_for_org(db.primary(), &ctx)
            .await
            .unwrap()
            .len(),
        1
    );
    db.close().await;
    let verify = run(assay(dir.path()).args(["audit", "verify"]));
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

/// With Redis configured, `frameworks import` announces the import: a running node drops
/// its cached catalogue view when the announcement arrives, instead of listing the old one
/// until it expires (30 s).
#[tokio::test]
async fn a_cli_import_reaches_a_running_node_through_redis() {
    let Some(redis) = service_url("ASSAY_TEST_REDIS_URL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("assay-test-cli-{}-{nanos}:", std::process::id());
    let with_redis = |mut cmd: Command| {
        cmd.env("ASSAY_REDIS__URL", &redis)
            .env("ASSAY_REDIS__KEY_PREFIX", &prefix);
        cmd
    };
    let mut server = Server::start(with_redis(assay(dir.path())));
    server.wait_ready().await;
    let client = reqwest::Client::new();
    let json_of = async |req: reqwest::RequestBuilder| -> serde_json::Value {
        req.send().await.unwrap().json().await.unwrap()
    };
    let registered = json_of(client.post(server.url("/api/v1/auth/register")).json(
        &serde_json::json!({
            "email": "cli-redis@example.com",
            "password": "correct-horse-battery-staple-42",
            "name": "CLI",
            "org_name": "Cli Redis",
        }),
    ))
    .await;
    let token = registered["access_token"].as_str().unwrap().to_owned();
    let listed = || async {
        let page = json_of(
            client
                .get(server.url("/api/v1/frameworks"))
                .bearer_auth(&token),
        )
        .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["key"] == "redis-baseline")
    };
    assert!(!listed().await); // the node now holds the platform view

    std::fs::write(
        dir.path().join("pack.yaml"),
        ACME_PACK.replace("acme-baseline", "redis-baseline"),
    )
    .unwrap();
    let out = run(with_redis(assay(dir.path())).args(["frameworks", "import", "pack.yaml"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Polled, as the announcement reaches the node a moment after the CLI exits; well
    // within the view's 30 s lifetime, which alone would not show the pack before then.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listed().await {
        assert!(
            Instant::now() < deadline,
            "the running node did not hear of the import"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.terminate().code(), Some(0));
}
