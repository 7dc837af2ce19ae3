//! The database handle shared by the API and the workers: a primary pool, optional read
//! replica pools with fallback to the primary, health probes and the transaction helper.
//!
//! This is the one place that knows which engine it talks to; repositories go through
//! SeaORM's `ConnectionTrait` and are written once for both.

use crate::error::StoreError;
use crate::settings::DbSettings;
use crate::url::{Backend, DatabaseUrl};
use futures::future::BoxFuture;
use sea_orm::sqlx::pool::PoolOptions;
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode,
    SqlxPostgresConnector, SqlxSqliteConnector, TransactionOptions, TransactionTrait,
};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counter of reads that a replica could not serve and the primary did.
pub const REPLICA_FALLBACKS_METRIC: &str = "assay_db_replica_fallbacks_total";

/// Handle to the primary database and its read replicas. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    primary: DatabaseConnection,
    replicas: Arc<Vec<DatabaseConnection>>,
    next_replica: Arc<AtomicUsize>,
    backend: Backend,
}

/// Pool occupancy, for readiness and metrics.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct PoolStatus {
    pub size: u32,
    pub idle: usize,
    pub max: u32,
}

impl Db {
    /// Open the pools. For SQLite the file and its folder are created when missing, WAL and
    /// foreign keys are switched on. Replicas connect lazily, so a replica that is down
    /// does not stop start-up (its reads fall back to the primary).
    pub async fn connect(settings: &DbSettings) -> Result<Self, StoreError> {
        let primary = open(&settings.url, settings, false).await?;
        let mut replicas = Vec::with_capacity(settings.read_urls.len());
        for url in &settings.read_urls {
            replicas.push(open(url, settings, true).await?);
        }
        Ok(Self {
            primary,
            replicas: Arc::new(replicas),
            next_replica: Arc::new(AtomicUsize::new(0)),
            backend: settings.url.backend(),
        })
    }

    /// A small handle of its own on the same primary, for writers that run on another
    /// runtime (the bookkeeping thread, `assay_infra::background`): call this on that
    /// runtime, so its connections — and on SQLite the engine threads — belong to it and
    /// never make request tasks wait for it. No replicas; one connection on SQLite (there is
    /// one writer at a time anyway), two on PostgreSQL. An in-memory SQLite database lives
    /// in its one connection, so for it this is the same handle.
    pub async fn connect_for_background(&self, settings: &DbSettings) -> Result<Self, StoreError> {
        if matches!(settings.url, DatabaseUrl::SqliteMemory) {
            return Ok(self.clone());
        }
        let own = DbSettings {
            max_connections: match self.backend {
                Backend::Sqlite => 1,
                Backend::Postgres => 2,
            },
            min_connections: 0,
            read_urls: Vec::new(),
            ..settings.clone()
        };
        Ok(Self {
            primary: open(&own.url, &own, false).await?,
            replicas: Arc::new(Vec::new()),
            next_replica: Arc::new(AtomicUsize::new(0)),
            backend: self.backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The primary connection pool: all writes, and reads that must see the latest data.
    pub fn primary(&self) -> &DatabaseConnection {
        &self.primary
    }

    /// One round trip to the primary, with its latency. Bounded by `timeout` so a dead
    /// server makes readiness fail fast instead of hanging on the pool.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, StoreError> {
        let started = Instant::now();
        match tokio::time::timeout(timeout, self.primary.execute_unprepared("SELECT 1")).await {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(StoreError::Unavailable(e.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// Occupancy of the primary pool.
    pub fn pool_status(&self) -> PoolStatus {
        match self.backend {
            Backend::Sqlite => {
                let p = self.primary.get_sqlite_connection_pool();
                PoolStatus {
                    size: p.size(),
                    idle: p.num_idle(),
                    max: p.options().get_max_connections(),
                }
            }
            Backend::Postgres => {
                let p = self.primary.get_postgres_connection_pool();
                PoolStatus {
                    size: p.size(),
                    idle: p.num_idle(),
                    max: p.options().get_max_connections(),
                }
            }
        }
    }

    /// Run a read that tolerates replication lag on a replica (round robin); if the replica
    /// cannot be reached, run it on the primary and count the fallback.
    pub async fn read<T, F, Fut>(&self, query: F) -> Result<T, StoreError>
    where
        F: Fn(DatabaseConnection) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        if !self.replicas.is_empty() {
            let i = self.next_replica.fetch_add(1, Ordering::Relaxed) % self.replicas.len();
            match query(self.replicas[i].clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_unavailable() => {
                    metrics::counter!(REPLICA_FALLBACKS_METRIC).increment(1);
                    tracing::warn!(replica = i, error = %e, "read replica unavailable; reading from the primary");
                }
                Err(e) => return Err(e),
            }
        }
        query(self.primary.clone()).await
    }

    /// Run `work` in one transaction on the primary: committed when it returns `Ok`, rolled
    /// back when it returns `Err` or panics. Every multi-row change (and its audit record)
    /// goes through here. On SQLite the transaction takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a read-then-write transaction cannot fail half-way with
    /// SQLITE_BUSY when another writer commits in between.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> BoxFuture<'c, Result<T, StoreError>> + Send,
    {
        let txn = self
            .primary
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        let out = work(&txn).await?;
        txn.commit().await?;
        Ok(out)
    }

    /// Close every pool (at shutdown, after in-flight requests have drained).
    pub async fn close(&self) {
        let _ = self.primary.clone().close().await;
        for r in self.replicas.iter() {
            let _ = r.clone().close().await;
        }
    }
}

async fn open(
    url: &DatabaseUrl,
    s: &DbSettings,
    lazy: bool,
) -> Result<DatabaseConnection, StoreError> {
    match url {
        DatabaseUrl::SqliteFile(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true);
            let pool = PoolOptions::new()
                .max_connections(s.max_connections)
                .min_connections(s.min_connections)
                .acquire_timeout(s.acquire_timeout)
                .idle_timeout(Some(s.idle_timeout))
                .connect_with(sqlite_options(opts, s))
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
        }
        DatabaseUrl::SqliteMemory => {
            // Every connection to :memory: is its own database, so the pool holds exactly one
            // connection for its whole life.
            let opts = SqliteConnectOptions::from_str("sqlite::memory:")
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let pool = PoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(s.acquire_timeout)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(sqlite_options(opts, s))
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
        }
        DatabaseUrl::Postgres(_) => {
            let opts = PgConnectOptions::from_str(&url.expose())
                .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?
                .application_name("assay");
            let pool_opts = PoolOptions::new()
                .max_connections(s.max_connections)
                .min_connections(s.min_connections)
                .acquire_timeout(s.acquire_timeout)
                .idle_timeout(Some(s.idle_timeout));
            let pool = if lazy {
                pool_opts.connect_lazy_with(opts)
            } else {
                pool_opts
                    .connect_with(opts)
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?
            };
            Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
        }
    }
}

/// Page size of new SQLite databases (an existing one keeps its own: in WAL mode SQLite
/// ignores the setting). The default 4 KiB holds only three or four audit events (~1 KiB
/// each with their hashes and details), and every page a commit changes is written to the
/// WAL and later copied by the checkpoint, one system call each: with 16 KiB pages the AI
/// bookkeeping makes 1.3–1.5 file reads and writes per call instead of 2.4–3.2
/// (bench/RESULTS.md, 2026-12-07) — it counts on virtual machines where every call traps.
const SQLITE_PAGE_SIZE: u32 = 16 * 1024;

fn sqlite_options(opts: SqliteConnectOptions, s: &DbSettings) -> SqliteConnectOptions {
    // sqlx sets page_size before journal_mode, as a new WAL database needs.
    opts.page_size(SQLITE_PAGE_SIZE)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(s.sqlite_busy_timeout)
}
