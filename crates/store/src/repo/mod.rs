//! Repositories: the only code that queries tables. Functions take any SeaORM connection
//! (the pool, or a transaction from `Db::write`), so services compose them inside one
//! transaction. Functions over org-owned data take the `OrgCtx` first: the tenant filter is
//! part of every such query, never left to the caller.

pub mod ai_conversations;
pub mod ai_safety_reviews;
pub mod ai_settings;
pub mod ai_usage;
pub mod api_keys;
pub mod assessments;
pub mod audit;
pub mod evidence_classifications;
pub mod imported_frameworks;
pub mod invitations;
pub mod login_failures;
pub mod memberships;
pub mod organisations;
pub mod posture;
pub mod readiness_snapshots;
pub mod sessions;
pub mod users;

use chrono::{DateTime, SubsecRound, Utc};

/// Now, truncated to microseconds: the precision PostgreSQL keeps, so a value reads back
/// exactly as written on both engines (the audit hash depends on it).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// What an update that may happen only once did (a safety review resolved, a
/// classification reviewed): the conditional update decides, so two people acting at once
/// cannot both succeed.
#[derive(Clone, Debug, PartialEq)]
pub enum Once<T> {
    /// Done now; the record as stored.
    Now(T),
    /// Done before (the record is unchanged).
    Already(T),
    /// No such record in this organisation.
    NotFound,
}

impl<T> Once<T> {
    /// From the conditional update's row count and the record read after it.
    pub(crate) fn of(rows_affected: u64, after: Option<T>) -> Self {
        match (rows_affected, after) {
            (_, None) => Once::NotFound,
            (1, Some(r)) => Once::Now(r),
            (_, Some(r)) => Once::Already(r),
        }
    }
}
