//! Store errors.
//! Policy: repositories return `StoreError` in domain terms (not found, conflict on a named
//! field, database unavailable); raw `DbErr` text is kept for logs and never shown to clients.
//! Unique-constraint violations become `Conflict` naming the field, so the API can answer 409.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} not found")]
    NotFound { entity: &'static str },

    #[error("{field} is already taken")]
    Conflict { field: String },

    /// A business rule refused the change (e.g. removing the last owner).
    #[error("{0}")]
    Invariant(&'static str),

    #[error("the database cannot be reached: {0}")]
    Unavailable(String),

    #[error(
        "the database has migrations this binary does not know ({}): it was migrated by a newer Assay; upgrade this binary or restore a matching backup",
        .0.join(", ")
    )]
    UnknownMigrations(Vec<String>),

    #[error("the database has pending migrations ({}); run `assay migrate up` or start without --no-migrate", .0.join(", "))]
    PendingMigrations(Vec<String>),

    #[error("stored data is invalid: {0}")]
    Corrupt(String),

    #[error("database error: {0}")]
    Db(DbErr),
}

impl StoreError {
    pub fn not_found(entity: &'static str) -> Self {
        StoreError::NotFound { entity }
    }

    /// The error as a value of its own again, from the copy the callers of one coalesced
    /// read share (a cache's load): every variant keeps its meaning; a raw database error
    /// keeps its text.
    pub fn from_shared(e: std::sync::Arc<StoreError>) -> Self {
        std::sync::Arc::try_unwrap(e).unwrap_or_else(|e| match &*e {
            StoreError::NotFound { entity } => StoreError::NotFound { entity },
            StoreError::Conflict { field } => StoreError::Conflict {
                field: field.clone(),
            },
            StoreError::Invariant(m) => StoreError::Invariant(m),
            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
            StoreError::UnknownMigrations(v) => StoreError::UnknownMigrations(v.clone()),
            StoreError::PendingMigrations(v) => StoreError::PendingMigrations(v.clone()),
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::Db(d) => StoreError::Db(DbErr::Custom(d.to_string())),
        })
    }

    /// True when the error means "cannot talk to the database" rather than "the query was wrong".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(detail)) = err.sql_err() {
            return StoreError::Conflict {
                field: conflicting_field(&detail),
            };
        }
        if is_connection_error(&err) {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Db(err)
        }
    }
}

/// "Could not talk to the server" (as opposed to "the statement failed").
pub(crate) fn is_connection_error(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => matches!(
            e.as_ref(),
            sea_orm::SqlxError::Io(_)
                | sea_orm::SqlxError::PoolTimedOut
                | sea_orm::SqlxError::PoolClosed
        ),
        _ => false,
    }
}

/// Best effort at the column behind a unique violation, from either engine's message:
/// SQLite: `UNIQUE constraint failed: users.email`;
/// PostgreSQL: `duplicate key value violates unique constraint "users_email_key"` / our index
/// names `ux_<table>_<column>`.
fn conflicting_field(detail: &str) -> String {
    if let Some(rest) = detail.split("UNIQUE constraint failed: ").nth(1) {
        let first = rest.split(',').next().unwrap_or(rest).trim();
        return first.rsplit('.').next().unwrap_or(first).to_owned();
    }
    if let Some(name) = detail.split('"').nth(1) {
        if let Some(col) = name
            .strip_prefix("ux_")
            .and_then(|n| n.split_once('_'))
            .map(|(_, c)| c)
        {
            return col.to_owned();
        }
        return name
            .trim_end_matches("_key")
            .rsplit('_')
            .next()
            .unwrap_or(name)
            .to_owned();
    }
    "value".to_owned()
}

#[cfg(test)]
mod tests {
    use super::conflicting_field;

    #[test]
    fn field_names_from_both_engines() {
        assert_eq!(
            conflicting_field("UNIQUE constraint failed: users.email"),
            "email"
        );
        assert_eq!(
            conflicting_field(
                "duplicate key value violates unique constraint \"ux_organisations_slug\""
            ),
            "slug"
        );
    }
}
