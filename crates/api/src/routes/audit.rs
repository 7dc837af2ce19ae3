//! Reading and verifying an organisation's audit log.

use crate::auth::{RequirePermission, perm};
use crate::error::ApiError;
use crate::json::invalid_field;
use crate::state::AppState;
use assay_store::repo::audit::{self, AuditFilter, Outcome};
use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// Cursor: the `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    pub limit: Option<u64>,
}

pub async fn list(
    State(state): State<AppState>,
    access: RequirePermission<perm::AuditRead>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(invalid_field("limit", "must be between 1 and 500"));
    }
    let filter = AuditFilter {
        action: q.action,
        actor_id: q.actor_id,
        outcome: q.outcome,
        before_seq: q.cursor,
    };
    let items = audit::list(state.db().primary(), &access.ctx, &filter, limit).await?;
    let next = (items.len() as u64 == limit)
        .then(|| items.last().map(|e| e.seq))
        .flatten();
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

pub async fn verify(
    State(state): State<AppState>,
    access: RequirePermission<perm::AuditRead>,
) -> Result<Json<audit::ChainReport>, ApiError> {
    Ok(Json(
        audit::verify_chain(state.db().primary(), Some(access.ctx.org_id())).await?,
    ))
}
