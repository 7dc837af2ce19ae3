//! Fresh, isolated databases for tests: a temporary SQLite file always, and a uniquely
//! named PostgreSQL database (created, migrated, dropped afterwards) when
//! `ASSAY_TEST_POSTGRES_URL` points at a server. With `ASSAY_TEST_REQUIRE_SERVICES=1`
//! (as in CI) a missing PostgreSQL fails the test instead of skipping it. Also
//! [`CuttableProxy`], to play an outage of a shared service for one test only.

use crate::{DatabaseUrl, Db, DbSettings};
use sea_orm::sqlx::{Connection, Executor, PgConnection};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The URL of a test service from `var`, or `None` to skip. Panics when services are
/// required (`ASSAY_TEST_REQUIRE_SERVICES=1`) and the variable is missing, so CI never
/// silently skips.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if std::env::var("ASSAY_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!(
                "{var} is not set but ASSAY_TEST_REQUIRE_SERVICES=1: this test needs that service"
            )
        }
        _ => {
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}

/// A migrated database that disappears when dropped.
pub struct TestDb {
    pub db: Db,
    pub settings: DbSettings,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteDir(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A new SQLite file in a temporary folder, migrated.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = DbSettings::new(DatabaseUrl::SqliteFile(dir.path().join("assay.db")));
        let db = Db::connect(&settings).await.expect("open test SQLite");
        db.migrate_up().await.expect("migrate test SQLite");
        TestDb {
            db,
            settings,
            cleanup: Cleanup::SqliteDir(dir),
        }
    }

    /// A new PostgreSQL database on the `ASSAY_TEST_POSTGRES_URL` server, migrated; `None`
    /// when no server is configured (and services are not required).
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = service_url("ASSAY_TEST_POSTGRES_URL")?;
        let (settings, name) = create_postgres_database(&admin_url).await;
        let db = Db::connect(&settings)
            .await
            .expect("open test PostgreSQL database");
        db.migrate_up()
            .await
            .expect("migrate test PostgreSQL database");
        Some(TestDb {
            db,
            settings,
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// Which engine this is, for test names and messages.
    pub fn label(&self) -> &'static str {
        self.settings.url.backend().as_str()
    }
}

/// Create an empty, uniquely named database on the server at `admin_url`; returns settings
/// that point at it and its name. The caller owns dropping it ([`drop_postgres_database`]).
pub async fn create_postgres_database(admin_url: &str) -> (DbSettings, String) {
    let admin =
        DatabaseUrl::parse(admin_url).expect("ASSAY_TEST_POSTGRES_URL is not a PostgreSQL URL");
    let name = format!("assay_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin.expose())
        .await
        .expect("connect to ASSAY_TEST_POSTGRES_URL");
    conn.execute(sea_orm::sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{name}\""
    )))
    .await
    .expect("create test database");
    let _ = conn.close().await;
    let url = admin.with_postgres_database(&name).expect("postgres url");
    let mut settings = DbSettings::new(url);
    settings.max_connections = 5;
    (settings, name)
}

/// Drop a database made by [`create_postgres_database`], even while connections remain.
pub async fn drop_postgres_database(admin_url: &str, name: &str) {
    let Ok(admin) = DatabaseUrl::parse(admin_url) else {
        return;
    };
    if let Ok(mut conn) = PgConnection::connect(&admin.expose()).await {
        let _ = conn
            .execute(sea_orm::sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .await;
        let _ = conn.close().await;
    }
}

/// [`drop_postgres_database`] from synchronous code such as `Drop`, which runs inside a
/// test's runtime and cannot block on it: a short-lived thread with its own runtime does the
/// network round trip.
pub fn drop_postgres_database_blocking(admin_url: &str, name: &str) {
    let (admin_url, name) = (admin_url.to_owned(), name.to_owned());
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(drop_postgres_database(&admin_url, &name));
    })
    .join();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            drop_postgres_database_blocking(admin_url, name);
        }
    }
}

/// The URL of a test database with its password, for tests that configure an app with it.
pub fn expose_for_tests(url: &DatabaseUrl) -> String {
    url.expose()
}

/// A TCP proxy in front of a shared service (PostgreSQL, Redis) that a test can cut —
/// closing every live connection and refusing new ones — and restore, so one app sees an
/// outage while the server other tests use keeps running.
pub struct CuttableProxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl CuttableProxy {
    /// A proxy to `upstream`, listening on a free port of 127.0.0.1.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (open2, links2) = (open.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !open2.load(Ordering::SeqCst) {
                    drop(client); // refused: the "server" is down
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Self { addr, open, links }
    }

    /// A proxy to the host and port of a service URL (`postgres://…`, `redis://…`).
    pub async fn to_url(url: &str) -> Self {
        let parsed = url::Url::parse(url).unwrap();
        let default_port = match parsed.scheme() {
            "redis" | "rediss" => 6379,
            _ => 5432,
        };
        let upstream = tokio::net::lookup_host((
            parsed.host_str().unwrap(),
            parsed.port().unwrap_or(default_port),
        ))
        .await
        .unwrap()
        .next()
        .unwrap();
        Self::start(upstream).await
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` (of the proxied service) with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let mut via = url::Url::parse(url).unwrap();
        via.set_host(Some("127.0.0.1")).unwrap();
        via.set_port(Some(self.addr.port())).unwrap();
        via.to_string()
    }

    /// Close every live connection and refuse new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Accept and relay connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}
