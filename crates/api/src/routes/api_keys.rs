//! Organisation API keys: the secret is shown once at creation; only its hash is kept.

use crate::auth::{RequirePermission, perm};
use crate::cache_sync::Change;
use crate::error::ApiError;
use crate::json::{ValidJson, invalid_field};
use crate::state::AppState;
use assay_auth::{ApiScopes, NewApiKey};
use assay_store::repo::api_keys;
use assay_store::repo::audit;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use garde::Validate;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    #[garde(length(chars, min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Any of `read`, `write`, `ai`, `admin`.
    #[garde(length(min = 1, max = 4))]
    #[schema(value_type = Vec<crate::openapi::ApiScope>, min_items = 1, max_items = 4)]
    pub scopes: Vec<String>,
    /// When the key stops working; must be in the future. None: it does not expire.
    #[garde(skip)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/api-keys",
    operation_id = "create_api_key",
    tag = "api-keys",
    summary = "Create an API key; the secret (`assay_<id>_<secret>`) is shown only in this response (needs `api_keys.manage`)",
    params(crate::openapi::OrgIdParam),
    request_body = CreateKeyRequest,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "The key and its one-time secret", body = crate::openapi::ApiKeyCreated),
        (status = 403, description = "The caller lacks `api_keys.manage`", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation, or not the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    access: RequirePermission<perm::ApiKeysManage>,
    ValidJson(req): ValidJson<CreateKeyRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let access = access.access;
    let scopes = ApiScopes::parse(req.scopes.iter().map(String::as_str)).map_err(|e| {
        invalid_field(
            "scopes",
            format!(
                "unknown scope '{}' (expected read, write, ai or admin)",
                e.0
            ),
        )
    })?;
    if req.expires_at.is_some_and(|t| t <= chrono::Utc::now()) {
        return Err(invalid_field("expires_at", "must be in the future"));
    }
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>();
    let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
    let key = NewApiKey::generate();
    let (id, hash) = (key.id.clone(), key.key_hash.clone());
    let created = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let scope_refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let row = api_keys::NewApiKeyRow {
                    id: &id,
                    name: &req.name,
                    key_hash: &hash,
                    scopes: &scope_refs,
                    expires_at: req.expires_at,
                };
                let created = api_keys::create(txn, &access.ctx, row).await?;
                let mut ev = access
                    .event("api_key.created")
                    .resource("api_key", &created.id);
                ev.details = json!({ "name": created.name, "scopes": created.scopes }).into();
                audit::append(txn, ev).await?;
                Ok(created)
            })
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "api_key": created, "key": key.key.expose_secret() })),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/api-keys",
    operation_id = "list_api_keys",
    tag = "api-keys",
    summary = "The organisation's API keys, without secrets (needs `api_keys.manage`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The keys", body = crate::openapi::ApiKeyList),
        (status = 403, description = "The caller lacks `api_keys.manage`", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation, or not the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    access: RequirePermission<perm::ApiKeysManage>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "items": api_keys::list(state.db().primary(), &access.ctx).await? }),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/api-keys/{key_id}",
    operation_id = "revoke_api_key",
    tag = "api-keys",
    summary = "Revoke an API key (needs `api_keys.manage`)",
    params(crate::openapi::ApiKeyPath),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "The caller lacks `api_keys.manage`", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation or key, or not the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    access: RequirePermission<perm::ApiKeysManage>,
    Path((_, key_id)): Path<(Uuid, String)>,
) -> Result<StatusCode, ApiError> {
    let access = access.access;
    let revoked = key_id.clone();
    state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                api_keys::revoke(txn, &access.ctx, &key_id).await?;
                audit::append(
                    txn,
                    access.event("api_key.revoked").resource("api_key", &key_id),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
    state.changed(Change::ApiKey { id: revoked }).await;
    Ok(StatusCode::NO_CONTENT)
}
