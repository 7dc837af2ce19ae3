//! Organisation API keys: the secret is shown once at creation; only its hash is kept.

use crate::auth::{RequirePermission, perm};
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

#[derive(Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    #[garde(length(chars, min = 1, max = 200))]
    pub name: String,
    #[garde(length(min = 1, max = 4))]
    pub scopes: Vec<String>,
    #[garde(skip)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

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
                ev.details = json!({ "name": created.name, "scopes": created.scopes });
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

pub async fn list(
    State(state): State<AppState>,
    access: RequirePermission<perm::ApiKeysManage>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "items": api_keys::list(state.db().primary(), &access.ctx).await? }),
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    access: RequirePermission<perm::ApiKeysManage>,
    Path((_, key_id)): Path<(Uuid, String)>,
) -> Result<StatusCode, ApiError> {
    let access = access.access;
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
    Ok(StatusCode::NO_CONTENT)
}
