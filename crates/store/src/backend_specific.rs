//! The few things that must differ between SQLite and PostgreSQL, kept in one place.

use crate::db::Db;
use crate::error::StoreError;
use crate::url::Backend;
use sea_orm::sqlx::{self, Postgres};

/// Arbitrary constant naming Assay's migration lock among PostgreSQL advisory locks.
const MIGRATION_LOCK_KEY: i64 = 0x000A_55A7_0001;

/// Serialises migrations across nodes. PostgreSQL: a session advisory lock held on one
/// dedicated connection. SQLite: nothing needed — a single file has a single writer.
pub(crate) struct MigrationLock {
    conn: Option<sqlx::pool::PoolConnection<Postgres>>,
}

impl MigrationLock {
    pub(crate) async fn acquire(db: &Db) -> Result<Self, StoreError> {
        if db.backend() != Backend::Postgres {
            return Ok(Self { conn: None });
        }
        let pool = db.primary().get_postgres_connection_pool();
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self { conn: Some(conn) })
    }
}

impl Drop for MigrationLock {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Unlock on the same session; if this fails the session ends with the connection
            // (detached below), which releases the lock anyway.
            tokio::spawn(async move {
                if sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .execute(&mut *conn)
                    .await
                    .is_err()
                {
                    drop(conn.detach());
                }
            });
        }
    }
}
