//! The catalogue and an organisation's posture: the built-in frameworks,
//! adopting them, and the state of the organisation's controls. Every change is audited
//! in the transaction that makes it.

use crate::auth::{Caller, RequirePermission, perm};
use crate::error::ApiError;
use crate::json::{FieldError, ValidJson, invalid, invalid_field};
use crate::state::AppState;
use assay_core::catalogue::{self, Catalogue, CommonControl, Framework};
use assay_core::{ControlStatus, OrgCtx, UserId};
use assay_store::repo::audit;
use assay_store::repo::imported_frameworks;
use assay_store::repo::memberships;
use assay_store::repo::posture::{self, ControlRecord, ControlUpdate};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use garde::Validate;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use std::collections::HashMap;
use uuid::Uuid;

fn framework_summary(fw: &Framework) -> Value {
    json!({
        "key": fw.key,
        "name": fw.name,
        "version": fw.version,
        "publisher": fw.publisher,
        "licence": fw.licence,
        "provenance": fw.provenance,
        "description": fw.description,
        "requirements": fw.requirements.len(),
        "assessable_requirements": fw.assessable().count(),
    })
}

fn find_framework<'c>(catalogue: &'c Catalogue, key: &str) -> Result<&'c Framework, ApiError> {
    catalogue
        .framework(key)
        .ok_or_else(|| ApiError::not_found("framework"))
}

#[utoipa::path(
    get,
    path = "/api/v1/frameworks",
    operation_id = "list_frameworks",
    tag = "compliance",
    summary = "The built-in and platform-wide imported framework packs, with licence and provenance",
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses((status = 200, description = "The frameworks"))
)]
pub async fn list_frameworks(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let catalogue = state.catalogues().platform().await?;
    let items: Vec<Value> = catalogue
        .frameworks()
        .iter()
        .map(framework_summary)
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(
    get,
    path = "/api/v1/frameworks/{key}",
    operation_id = "get_framework",
    tag = "compliance",
    summary = "One framework with its requirements (hierarchical via `parent`)",
    params(("key" = String, Path, description = "Framework key, e.g. `nist-csf`")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The framework"),
        (status = 404, description = "No such framework", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn get_framework(
    State(state): State<AppState>,
    _caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let catalogue = state.catalogues().platform().await?;
    framework_detail(&catalogue, &key)
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/frameworks/{key}",
    operation_id = "get_org_framework",
    tag = "compliance",
    summary = "One framework the organisation can see, its own imports included, with its requirements (needs `frameworks.read`)",
    params(crate::openapi::OrgIdParam, ("key" = String, Path, description = "Framework key")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The framework"),
        (status = 404, description = "No such framework", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn get_org_framework(
    State(state): State<AppState>,
    access: RequirePermission<perm::FrameworksRead>,
    Path((_, key)): Path<(Uuid, String)>,
) -> Result<Json<Value>, ApiError> {
    let catalogue = state.catalogues().for_org(&access.ctx).await?;
    framework_detail(&catalogue, &key)
}

fn framework_detail(catalogue: &Catalogue, key: &str) -> Result<Json<Value>, ApiError> {
    let fw = find_framework(catalogue, key)?;
    let mut body = framework_summary(fw);
    body["items"] = serde_json::to_value(&fw.requirements).map_err(ApiError::internal)?;
    Ok(Json(body))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/frameworks",
    operation_id = "list_adopted_frameworks",
    tag = "compliance",
    summary = "Frameworks the organisation adopted (needs `frameworks.read`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses((status = 200, description = "Adopted frameworks"))
)]
pub async fn list_adopted(
    State(state): State<AppState>,
    access: RequirePermission<perm::FrameworksRead>,
) -> Result<Json<Value>, ApiError> {
    let adopted = posture::adopted(state.db().primary(), &access.ctx).await?;
    let catalogue = state.catalogues().for_org(&access.ctx).await?;
    let items: Vec<Value> = adopted
        .into_iter()
        .map(|a| {
            let mut v = catalogue
                .framework(&a.framework_key)
                .map(framework_summary)
                .unwrap_or_else(|| json!({ "key": a.framework_key }));
            v["adopted_at"] = json!(a.adopted_at);
            v["adopted_by"] = json!(a.adopted_by);
            v
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org_id}/frameworks/{key}",
    operation_id = "adopt_framework",
    tag = "compliance",
    summary = "Adopt a framework (needs `frameworks.adopt`); 201 when newly adopted, 200 when it already was",
    params(crate::openapi::OrgIdParam, ("key" = String, Path, description = "Framework key")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Adopted"),
        (status = 200, description = "Already adopted"),
        (status = 404, description = "No such framework", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn adopt(
    State(state): State<AppState>,
    access: RequirePermission<perm::FrameworksAdopt>,
    Path((_, key)): Path<(Uuid, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut catalogue = state.catalogues().for_org(&access.ctx).await?;
    if catalogue.framework(&key).is_none() {
        // Perhaps imported on another node since this node built the organisation's view.
        catalogue = state.catalogues().refreshed_for_org(&access.ctx).await?;
    }
    let fw = find_framework(&catalogue, &key)?;
    let access = access.access;
    let org = access.ctx.org_id();
    let fw_key = fw.key.clone();
    let imported = catalogue::builtin().framework(&fw_key).is_none();
    let new = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                // An imported pack must still exist when adopted (deleting it takes the same
                // lock and refuses while it is adopted).
                if imported && !imported_frameworks::lock_visible(txn, &access.ctx, &fw_key).await?
                {
                    return Err(assay_store::StoreError::not_found("framework"));
                }
                let new = posture::adopt(txn, &access.ctx, &fw_key).await?;
                if new {
                    audit::append(
                        txn,
                        access
                            .event("framework.adopted")
                            .resource("framework", &fw_key),
                    )
                    .await?;
                }
                Ok(new)
            })
        })
        .await?;
    if new {
        state.posture_changed(org).await;
    }
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "framework": fw.key, "adopted": true })),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/frameworks/{key}",
    operation_id = "unadopt_framework",
    tag = "compliance",
    summary = "Stop tracking a framework (needs `frameworks.adopt`); control states are kept",
    params(crate::openapi::OrgIdParam, ("key" = String, Path, description = "Framework key")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Dropped"),
        (status = 404, description = "Not adopted", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn unadopt(
    State(state): State<AppState>,
    access: RequirePermission<perm::FrameworksAdopt>,
    Path((_, key)): Path<(Uuid, String)>,
) -> Result<StatusCode, ApiError> {
    let access = access.access;
    let org = access.ctx.org_id();
    let dropped = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let dropped = posture::unadopt(txn, &access.ctx, &key).await?;
                if dropped {
                    audit::append(
                        txn,
                        access
                            .event("framework.unadopted")
                            .resource("framework", &key),
                    )
                    .await?;
                }
                Ok(dropped)
            })
        })
        .await?;
    if dropped {
        state.posture_changed(org).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("adopted framework"))
    }
}

/// The control library in key order (the order pages and exports use), sorted once.
pub(crate) fn controls_by_key() -> &'static [&'static CommonControl] {
    static SORTED: std::sync::LazyLock<Vec<&'static CommonControl>> =
        std::sync::LazyLock::new(|| {
            let mut controls: Vec<&CommonControl> =
                catalogue::builtin().controls().iter().collect();
            controls.sort_by(|a, b| a.key.cmp(&b.key));
            controls
        });
    &SORTED
}

/// The organisation's stored control states by control key (untouched controls have none),
/// read fresh from the primary: for planning a write. Read paths use `state.posture()`.
pub(crate) async fn states_by_key(
    state: &AppState,
    ctx: &OrgCtx,
) -> Result<HashMap<String, ControlRecord>, ApiError> {
    Ok(by_key(
        posture::control_states(state.db().primary(), ctx).await?,
    ))
}

fn by_key(records: Vec<ControlRecord>) -> HashMap<String, ControlRecord> {
    records
        .into_iter()
        .map(|r| (r.control_key.clone(), r))
        .collect()
}

/// A control of the library joined with the organisation's state of it: the shape of a
/// control everywhere in the API. Typed and borrowing the catalogue, so a page of the list
/// is written straight to the body without a `Value` tree (bench/posture measured that
/// tree costing as much as the page's database read).
#[derive(serde::Serialize)]
struct ControlView<'c> {
    key: &'c str,
    title: &'c str,
    domain: &'c str,
    description: &'c str,
    guidance: &'c str,
    questions: &'c [String],
    maps_to: Vec<String>,
    status: ControlStatus,
    justification: Option<&'c str>,
    owner_id: Option<UserId>,
    due_date: Option<chrono::NaiveDate>,
    notes: Option<&'c str>,
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl<'c> ControlView<'c> {
    fn new(c: &'c CommonControl, state: Option<&'c ControlRecord>) -> Self {
        Self {
            key: &c.key,
            title: &c.title,
            domain: &c.domain,
            description: &c.description,
            guidance: &c.guidance,
            questions: &c.questions,
            maps_to: c
                .maps_to
                .iter()
                .map(|r| format!("{}:{}", r.framework, r.ref_id))
                .collect(),
            status: state.map_or(ControlStatus::NotStarted, |s| s.status),
            justification: state.and_then(|s| s.justification.as_deref()),
            owner_id: state.and_then(|s| s.owner_id),
            due_date: state.and_then(|s| s.due_date),
            notes: state.and_then(|s| s.notes.as_deref()),
            updated_at: state.map(|s| s.updated_at),
        }
    }
}

fn control_view(c: &CommonControl, state: Option<&ControlRecord>) -> Value {
    json!(ControlView::new(c, state))
}

/// One page of the controls list.
#[derive(serde::Serialize)]
struct ControlPage<'c> {
    items: Vec<ControlView<'c>>,
    next_cursor: Option<&'c str>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ControlQuery {
    /// Only controls in this status (not_started, in_progress, implemented, not_applicable).
    #[param(value_type = Option<String>)]
    pub status: Option<ControlStatus>,
    /// Only controls mapped to this framework.
    pub framework: Option<String>,
    /// Only controls owned by this user.
    pub owner_id: Option<Uuid>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=200 (default 50).
    pub limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/controls",
    operation_id = "list_controls",
    tag = "compliance",
    summary = "The organisation's controls with their status (needs `controls.read`); filters and cursor pagination",
    params(crate::openapi::OrgIdParam, ControlQuery),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses((status = 200, description = "One page of controls"))
)]
pub async fn list_controls(
    State(state): State<AppState>,
    access: RequirePermission<perm::ControlsRead>,
    Query(q): Query<ControlQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(invalid_field("limit", "must be between 1 and 200"));
    }
    if let Some(fw) = &q.framework {
        let catalogue = state.catalogues().for_org(&access.ctx).await?;
        find_framework(&catalogue, fw)
            .map_err(|_| invalid_field("framework", "is not a known framework key"))?;
    }
    // From the per-node posture cache (bench/posture: one database read per page was
    // 4-8x the p99 of /me under load), and each page rendered once per posture.
    let posture = state.posture().get(&access.ctx).await?;
    let view = format!(
        "controls?status={:?}&framework={:?}&owner={:?}&cursor={:?}&limit={limit}",
        q.status, q.framework, q.owner_id, q.cursor
    );
    let body = posture.rendered(&view, |posture| {
        serde_json::to_vec(&control_page(&posture.records, &q, limit))
    });
    let body = body.map_err(ApiError::internal)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// The page of the control library `q` asks for, joined with the organisation's states.
fn control_page<'c>(
    states: &'c HashMap<String, ControlRecord>,
    q: &ControlQuery,
    limit: usize,
) -> ControlPage<'c> {
    let mut items: Vec<ControlView> = controls_by_key()
        .iter()
        .filter(|c| q.cursor.as_deref().is_none_or(|cur| c.key.as_str() > cur))
        .filter(|c| {
            q.framework
                .as_deref()
                .is_none_or(|fw| c.maps_to.iter().any(|r| r.framework == fw))
        })
        .filter(|c| {
            q.status.is_none_or(|s| {
                states
                    .get(&c.key)
                    .map_or(ControlStatus::NotStarted, |r| r.status)
                    == s
            })
        })
        .filter(|c| {
            q.owner_id
                .is_none_or(|o| states.get(&c.key).and_then(|r| r.owner_id) == Some(UserId(o)))
        })
        .take(limit + 1)
        .map(|c| ControlView::new(c, states.get(&c.key)))
        .collect();
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more {
        items.last().map(|v| v.key)
    } else {
        None
    };
    ControlPage { items, next_cursor }
}

fn find_control(key: &str) -> Result<&'static CommonControl, ApiError> {
    catalogue::builtin()
        .control(key)
        .ok_or_else(|| ApiError::not_found("control"))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/controls/{key}",
    operation_id = "get_control",
    tag = "compliance",
    summary = "One control, its state and the requirements it serves (needs `controls.read`)",
    params(crate::openapi::OrgIdParam, ("key" = String, Path, description = "Control key, e.g. `IAM-01`")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The control"),
        (status = 404, description = "No such control", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn get_control(
    State(state): State<AppState>,
    access: RequirePermission<perm::ControlsRead>,
    Path((_, key)): Path<(Uuid, String)>,
) -> Result<Json<Value>, ApiError> {
    let control = find_control(&key)?;
    let record = posture::control_state(state.db().primary(), &access.ctx, &control.key).await?;
    let mut body = control_view(control, record.as_ref());
    body["requirements"] =
        json!(catalogue::builtin()
        .requirements_for(&control.key)
        .into_iter()
        .map(|(fw, req)| json!({ "framework": fw.key, "ref_id": req.ref_id, "title": req.title }))
        .collect::<Vec<_>>());
    Ok(Json(body))
}

/// `Some(None)` for an explicit `null` (clear the field), `None` when absent (keep it).
fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A partial update: absent fields keep their value, `null` clears them.
#[derive(Clone, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlPatch {
    /// not_started, in_progress, implemented or not_applicable.
    #[garde(skip)]
    #[schema(value_type = Option<String>)]
    pub status: Option<ControlStatus>,
    #[garde(inner(inner(length(chars, max = 4000))))]
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<String>)]
    pub justification: Option<Option<String>>,
    #[garde(skip)]
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<Uuid>)]
    pub owner_id: Option<Option<Uuid>>,
    #[garde(skip)]
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<Option<chrono::NaiveDate>>,
    #[garde(inner(inner(length(chars, max = 10000))))]
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
}

/// Merge a patch into the current state, checking the rules; field errors are prefixed.
async fn merged(
    state: &AppState,
    ctx: &OrgCtx,
    current: Option<&ControlRecord>,
    patch: &ControlPatch,
    prefix: &str,
) -> Result<ControlUpdate, Vec<FieldError>> {
    let mut errors = Vec::new();
    let pick = |p: &Option<Option<String>>, cur: Option<String>| match p {
        Some(v) => v.clone().filter(|s| !s.trim().is_empty()),
        None => cur,
    };
    let update = ControlUpdate {
        status: patch
            .status
            .unwrap_or(current.map_or(ControlStatus::NotStarted, |c| c.status)),
        justification: pick(
            &patch.justification,
            current.and_then(|c| c.justification.clone()),
        ),
        owner_id: match patch.owner_id {
            Some(v) => v.map(UserId),
            None => current.and_then(|c| c.owner_id),
        },
        due_date: match patch.due_date {
            Some(v) => v,
            None => current.and_then(|c| c.due_date),
        },
        notes: pick(&patch.notes, current.and_then(|c| c.notes.clone())),
    };
    if update.status == ControlStatus::NotApplicable && update.justification.is_none() {
        errors.push(FieldError {
            field: format!("{prefix}justification"),
            reason: "is required when the status is not_applicable".into(),
        });
    }
    if let Some(owner) = update.owner_id
        && patch.owner_id.is_some()
    {
        match memberships::role_of(state.db().primary(), ctx.org_id(), owner).await {
            Ok(Some(_)) => {}
            Ok(None) => errors.push(FieldError {
                field: format!("{prefix}owner_id"),
                reason: "is not a member of this organisation".into(),
            }),
            Err(e) => errors.push(FieldError {
                field: format!("{prefix}owner_id"),
                reason: format!("could not be checked: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(update)
    } else {
        Err(errors)
    }
}

pub(crate) fn actor_label(caller: &Caller) -> String {
    match caller {
        Caller::User { user_id, .. } => format!("user:{user_id}"),
        Caller::ApiKey { key_id, .. } => format!("api_key:{key_id}"),
    }
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org_id}/controls/{key}",
    operation_id = "update_control",
    tag = "compliance",
    summary = "Set a control's status, owner, due date or notes (needs `controls.write`); not_applicable needs a justification",
    params(crate::openapi::OrgIdParam, ("key" = String, Path, description = "Control key")),
    request_body = ControlPatch,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The updated control"),
        (status = 404, description = "No such control", body = crate::openapi::ErrorResponse),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn update_control(
    State(state): State<AppState>,
    access: RequirePermission<perm::ControlsWrite>,
    Path((_, key)): Path<(Uuid, String)>,
    ValidJson(patch): ValidJson<ControlPatch>,
) -> Result<Json<Value>, ApiError> {
    let control = find_control(&key)?;
    let access = access.access;
    let current = posture::control_state(state.db().primary(), &access.ctx, &control.key).await?;
    let update = merged(&state, &access.ctx, current.as_ref(), &patch, "")
        .await
        .map_err(invalid)?;
    let (key, by) = (control.key.clone(), actor_label(&access.caller));
    let org = access.ctx.org_id();
    let record = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let record = posture::set_control(txn, &access.ctx, &key, &update, &by).await?;
                let mut ev = access.event("control.updated").resource("control", &key);
                ev.details = json!({ "before": current, "after": record }).into();
                audit::append(txn, ev).await?;
                Ok(record)
            })
        })
        .await?;
    state.posture_changed(org).await;
    Ok(Json(control_view(control, Some(&record))))
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkControlUpdate {
    #[garde(length(min = 1, max = 200), dive)]
    pub updates: Vec<BulkItem>,
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkItem {
    #[garde(length(min = 1, max = 64))]
    pub key: String,
    #[serde(flatten)]
    #[garde(dive)]
    pub patch: ControlPatch,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/controls/bulk",
    operation_id = "bulk_update_controls",
    tag = "compliance",
    summary = "Update up to 200 controls at once, all or nothing (needs `controls.write`)",
    params(crate::openapi::OrgIdParam),
    request_body = BulkControlUpdate,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Every control was updated"),
        (status = 422, description = "A field is invalid; nothing was changed", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn bulk_update(
    State(state): State<AppState>,
    access: RequirePermission<perm::ControlsWrite>,
    ValidJson(req): ValidJson<BulkControlUpdate>,
) -> Result<Json<Value>, ApiError> {
    let access = access.access;
    let states = states_by_key(&state, &access.ctx).await?;
    let mut errors = Vec::new();
    let mut planned = Vec::new();
    for (i, item) in req.updates.iter().enumerate() {
        let prefix = format!("updates[{i}].");
        if catalogue::builtin().control(&item.key).is_none() {
            errors.push(FieldError {
                field: format!("{prefix}key"),
                reason: format!("'{}' is not a control", item.key),
            });
            continue;
        }
        if planned
            .iter()
            .any(|(k, _, _): &(String, _, _)| *k == item.key)
        {
            errors.push(FieldError {
                field: format!("{prefix}key"),
                reason: "appears twice".into(),
            });
            continue;
        }
        let current = states.get(&item.key).cloned();
        match merged(&state, &access.ctx, current.as_ref(), &item.patch, &prefix).await {
            Ok(update) => planned.push((item.key.clone(), current, update)),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let by = actor_label(&access.caller);
    let org = access.ctx.org_id();
    let updated = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let mut out = Vec::with_capacity(planned.len());
                for (key, before, update) in planned {
                    let record = posture::set_control(txn, &access.ctx, &key, &update, &by).await?;
                    let mut ev = access.event("control.updated").resource("control", &key);
                    ev.details = json!({ "before": before, "after": record, "bulk": true }).into();
                    audit::append(txn, ev).await?;
                    out.push(record);
                }
                Ok(out)
            })
        })
        .await?;
    state.posture_changed(org).await;
    Ok(Json(json!({ "updated": updated.len() })))
}
