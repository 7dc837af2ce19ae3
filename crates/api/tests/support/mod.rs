//! `TestApp`: the real application on 127.0.0.1:0 with a fresh database — a temporary
//! SQLite file, or a uniquely named PostgreSQL database when `ASSAY_TEST_POSTGRES_URL` is
//! set (created here, dropped when the `TestApp` is dropped).

#![allow(dead_code)] // each test file uses a different part of the helpers

use assay_api::state::AppState;
use assay_api::{App, MigrationPolicy};
use assay_config::Config;
use assay_store::testing::{
    create_postgres_database, drop_postgres_database_blocking, service_url,
};
use axum::Router;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TEST_JWT_SECRET: &str = "test-signing-secret-of-at-least-32-bytes!";
pub const PASSWORD: &str = "correct-horse-battery-staple-42";

/// A signed-in person: their tokens and ids.
#[derive(Clone, Debug)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
    pub org_id: String,
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The database URL this app uses (with its password: tests only).
    pub database_url: String,
    pub client: reqwest::Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), assay_api::StartupError>>>,
    cleanup: Cleanup,
}

enum Cleanup {
    None,
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

/// A change to the test configuration, applied before start.
type ConfigEdit = Box<dyn FnOnce(&mut Config)>;

#[derive(Default)]
pub struct TestAppBuilder {
    configure: Vec<ConfigEdit>,
    routes: Option<Router<AppState>>,
    force_sqlite: bool,
    shared_database: Option<String>,
}

impl TestAppBuilder {
    pub fn config(mut self, f: impl FnOnce(&mut Config) + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    pub fn routes(mut self, routes: Router<AppState>) -> Self {
        self.routes = Some(routes);
        self
    }

    pub fn sqlite(mut self) -> Self {
        self.force_sqlite = true;
        self
    }

    /// Use another TestApp's database (a second node of the same deployment).
    pub fn database_of(mut self, other: &TestApp) -> Self {
        self.shared_database = Some(other.database_url.clone());
        self
    }

    pub async fn spawn(self) -> TestApp {
        let mut config = Config::default();
        let pg = if self.force_sqlite || self.shared_database.is_some() {
            None
        } else {
            service_url("ASSAY_TEST_POSTGRES_URL")
        };
        let cleanup = match (pg, self.shared_database) {
            (_, Some(url)) => {
                config.database.url = url;
                Cleanup::None
            }
            (Some(admin_url), None) => {
                let (settings, name) = create_postgres_database(&admin_url).await;
                config.database.url = assay_store::testing::expose_for_tests(&settings.url);
                config.database.max_connections = 5;
                Cleanup::Postgres { admin_url, name }
            }
            (None, None) => {
                let dir = tempfile::tempdir().expect("temp dir");
                config.database.url = format!("sqlite://{}", dir.path().join("assay.db").display());
                Cleanup::Sqlite(dir)
            }
        };
        // A fixed signing secret, so several TestApps of one test accept each other's tokens.
        config.auth.jwt_secret = TEST_JWT_SECRET.into();
        config.server.addr = "127.0.0.1:0".into();
        for f in self.configure {
            f(&mut config);
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut app = App::start(config, listener, MigrationPolicy::Apply)
            .await
            .expect("app starts");
        if let Some(routes) = self.routes {
            app = app.with_routes(routes);
        }
        let addr = app.local_addr();
        let database_url = app.state().config().database.url.clone();
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            client: reqwest::Client::new(),
            state,
            database_url,
            shutdown: Some(tx),
            server: Some(server),
            cleanup,
        }
    }
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub fn with_token(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Register a new person with a new organisation.
    pub async fn signup(&self, email: &str, org: &str) -> Session {
        let res = self
            .post_json(
                "/api/v1/auth/register",
                serde_json::json!({ "email": email, "password": PASSWORD, "name": "Test Person", "org_name": org }),
            )
            .await;
        assert_eq!(
            res.status(),
            201,
            "register {email}: {}",
            res.text().await.unwrap_or_default()
        );
        let body: serde_json::Value = res.json().await.unwrap();
        Session {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
            user_id: body["user"]["id"].as_str().unwrap().to_owned(),
            org_id: body["org"]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// Trigger the same shutdown a SIGTERM does.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Wait for the server task to end after `begin_shutdown`.
    pub async fn stopped(&mut self) -> Result<(), assay_api::StartupError> {
        self.server
            .take()
            .expect("server running")
            .await
            .expect("server task")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.begin_shutdown();
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            drop_postgres_database_blocking(admin_url, name);
        }
    }
}

/// One authenticated request: the status and the JSON body (`null` when there is none).
pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = app.with_token(method, path, token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

/// A usage-ledger row of `cost` USD for organisation `org`, this month: spend inserted
/// behind the app's back, for budget tests.
pub fn spent(org: &str, cost: f64) -> assay_store::repo::ai_usage::NewAiUsage {
    assay_store::repo::ai_usage::NewAiUsage {
        id: uuid::Uuid::now_v7(),
        org_id: org.parse().unwrap(),
        user_id: None,
        task: "chat".into(),
        model: "openai/gpt-4o-mini".into(),
        provider: "openai".into(),
        provider_kind: "openai".into(),
        tier: "fast".into(),
        input_tokens: 1000,
        output_tokens: 1000,
        cached_input_tokens: 0,
        estimated: false,
        cost_usd: cost,
        latency_ms: 10.0,
        time_to_first_token_ms: None,
        gateway_overhead_us: 10,
        cache_hit: false,
        streamed: false,
        outcome: "ok".into(),
        at: chrono::Utc::now(),
    }
}
