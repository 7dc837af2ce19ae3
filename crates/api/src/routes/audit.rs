//! Reading and verifying an organisation's audit log.

use crate::auth::{RequirePermission, perm};
use crate::error::ApiError;
use crate::json::page_limit;
use crate::state::AppState;
use assay_store::repo::audit::{self, AuditFilter, Outcome};
use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    #[param(value_type = Option<crate::openapi::AuditOutcome>)]
    pub outcome: Option<Outcome>,
    /// Cursor: the `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Page size, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/audit",
    operation_id = "list_audit_events",
    tag = "audit",
    summary = "The organisation's audit events, newest first (needs `audit.read`)",
    params(crate::openapi::OrgIdParam, AuditQuery),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of events", body = crate::openapi::AuditPage),
        (status = 403, description = "The caller lacks `audit.read`", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation, or not the caller's", body = crate::openapi::ErrorResponse),
        (status = 422, description = "A filter is invalid (e.g. `limit`)", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    access: RequirePermission<perm::AuditRead>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 50, 500)?;
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

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/audit/verify",
    operation_id = "verify_audit_chain",
    tag = "audit",
    summary = "Recompute the organisation's hash chain and report the first broken link (needs `audit.read`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The chain report", body = crate::openapi::ChainReport),
        (status = 403, description = "The caller lacks `audit.read`", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation, or not the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    access: RequirePermission<perm::AuditRead>,
) -> Result<Json<audit::ChainReport>, ApiError> {
    Ok(Json(
        audit::verify_chain(state.db().primary(), Some(access.ctx.org_id())).await?,
    ))
}
