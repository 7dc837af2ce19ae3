//! Assay's data access. One code path for SQLite (the embedded default) and PostgreSQL:
//! SeaORM over sqlx, with the few engine differences in `backend_specific`.
//!
//! - [`Db`]: pools (primary + read replicas with fallback), health, the transaction helper.
//! - [`migrations`]: versioned schema, applied by `assay migrate` and at start-up.
//! - [`repo`]: repositories; org-owned ones take an `OrgCtx` first.
//! - [`testing`]: fresh databases for tests (a temp SQLite file or a throwaway PostgreSQL DB).

mod backend_specific;
pub mod db;
mod entities;
pub mod error;
pub mod migrations;
pub mod repo;
pub mod settings;
pub mod testing;
pub mod url;

pub use db::{Db, PoolStatus};
pub use error::StoreError;
/// Repositories take any of these: the pool, or a transaction from [`Db::write`].
pub use sea_orm::{ConnectionTrait, DatabaseTransaction};
pub use settings::DbSettings;
pub use url::{Backend, DatabaseUrl, UrlError};
