//! Importing framework packs: an organisation imports OSCAL catalogs and profiles,
//! Prowler compliance JSON or Assay YAML packs for itself; a platform admin imports them for
//! every organisation. The request body is the file itself. A bad file is refused with the
//! path of every problem in it and nothing is stored; a key the organisation already sees is
//! a 409. The work is in [`crate::catalogues`], shared with `assay frameworks import`.

use crate::auth::{Caller, ClientFacts, OrgAccess};
use crate::catalogues::{PackScope, Upload};
use crate::error::ApiError;
use crate::json::invalid_field;
use crate::state::AppState;
use assay_core::access::Permission;
use assay_core::catalogue::{Format, PreparedPack};
use assay_store::repo::audit::{self, Outcome};
use assay_store::repo::imported_frameworks::{self, ImportedFramework};
use assay_store::repo::users;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `oscal`, `prowler` or `yaml`; detected from the content when absent.
    pub format: Option<String>,
    /// The file's name: names the document in problems and gives Prowler packs their key
    /// (`prowler-<name without .json>`).
    pub filename: Option<String>,
    /// A framework key to use instead of the one the file carries or implies.
    pub key: Option<String>,
}

impl ImportQuery {
    fn into_upload(self, body: Bytes) -> Result<Upload, ApiError> {
        let format = match self.format.as_deref() {
            None => None,
            Some(f) => Some(
                Format::parse(f)
                    .ok_or_else(|| invalid_field("format", "must be oscal, prowler or yaml"))?,
            ),
        };
        if let Some(name) = &self.filename
            && (name.trim().is_empty() || name.chars().count() > 255)
        {
            return Err(invalid_field("filename", "must be 1 to 255 characters"));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(invalid_field(
                "body",
                "is empty: send the file itself as the body",
            ));
        }
        Ok(Upload {
            bytes: body.to_vec(),
            format,
            filename: self.filename.map(|n| n.trim().to_owned()),
            key: self.key,
        })
    }
}

fn actor_label(caller: &Caller) -> String {
    match caller {
        Caller::User { user_id, .. } => format!("user:{user_id}"),
        Caller::ApiKey { key_id, .. } => format!("api_key:{key_id}"),
    }
}

/// What an import answers: the stored record and what the framework holds.
fn imported_body(record: &ImportedFramework, pack: &PreparedPack) -> Value {
    let fw = &pack.framework;
    json!({
        "import": record_view(record),
        "framework": {
            "key": fw.key,
            "name": fw.name,
            "version": fw.version,
            "publisher": fw.publisher,
            "licence": fw.licence,
            "provenance": fw.provenance,
            "requirements": fw.requirements.len(),
            "assessable_requirements": fw.assessable().count(),
            "requirements_with_checks": pack.checks.len(),
        },
    })
}

fn record_view(r: &ImportedFramework) -> Value {
    json!({
        "id": r.id,
        "key": r.key,
        "name": r.name,
        "version": r.version,
        "scope": if r.org_id.is_some() { "org" } else { "platform" },
        "source_format": r.source_format,
        "original_filename": r.original_filename,
        "requirement_count": r.requirement_count,
        "imported_by": r.imported_by,
        "created_at": r.created_at,
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/frameworks/import",
    operation_id = "import_org_framework",
    tag = "compliance",
    summary = "Import a framework for this organisation only (needs `frameworks.import`); the body is the file",
    description = "The body is an OSCAL catalog or profile (JSON), a Prowler compliance file (JSON) or an Assay \
        YAML pack (docs/pack-format.md). The format is detected unless `format` says it. A file with problems is \
        refused with 422 naming each by its path in the file (`details.fields[].field`) and nothing is stored; a \
        key the organisation already sees (built-in, platform-wide or its own) is a 409.",
    params(crate::openapi::OrgIdParam, ImportQuery),
    request_body(content = String, description = "The file: JSON (OSCAL, Prowler) or YAML (an Assay pack, sent as application/yaml or text/plain)", content_type = "application/json"),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Imported"),
        (status = 409, description = "The key is taken", body = crate::openapi::ErrorResponse),
        (status = 413, description = "The file is larger than the server accepts", body = crate::openapi::ErrorResponse),
        (status = 422, description = "The file has problems; nothing was stored", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn import_for_org(
    State(state): State<AppState>,
    access: OrgAccess,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    access.require(&state, Permission::FrameworksImport).await?;
    let upload = q.into_upload(body)?;
    let (record, pack) = state
        .catalogues()
        .import(
            PackScope::Org(access.ctx),
            upload,
            Some(actor_label(&access.caller)),
            access.event("framework.imported"),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(imported_body(&record, &pack))))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/frameworks/imports",
    operation_id = "list_org_framework_imports",
    tag = "compliance",
    summary = "Imported frameworks this organisation sees: its own and the platform-wide ones (needs `frameworks.read`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses((status = 200, description = "The imports, in key order; `scope` is `org` or `platform`"))
)]
pub async fn list_for_org(
    State(state): State<AppState>,
    access: OrgAccess,
) -> Result<Json<Value>, ApiError> {
    access.require(&state, Permission::FrameworksRead).await?;
    let items: Vec<Value> = imported_frameworks::list_visible(state.db().primary(), &access.ctx)
        .await?
        .iter()
        .map(record_view)
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/frameworks/imports/{key}",
    operation_id = "delete_org_framework_import",
    tag = "compliance",
    summary = "Delete one of this organisation's imported frameworks (needs `frameworks.import`); refused while it is adopted",
    params(crate::openapi::OrgIdParam, ("key" = String, Path, description = "Framework key")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "The organisation imported no framework with this key", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The framework is adopted; unadopt it first", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn delete_for_org(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_, key)): Path<(Uuid, String)>,
) -> Result<StatusCode, ApiError> {
    access.require(&state, Permission::FrameworksImport).await?;
    state
        .catalogues()
        .delete_org_pack(&access.ctx, &key, access.event("framework.import_deleted"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/frameworks/import",
    operation_id = "import_platform_framework",
    tag = "compliance",
    summary = "Import a framework for every organisation (platform admins only); the body is the file",
    description = "Like the organisation import, but the framework is seen by every organisation and its key \
        must be free everywhere. Only people whose account is a platform admin may call it (403 otherwise, \
        audited); API keys belong to one organisation and cannot.",
    params(ImportQuery),
    request_body(content = String, description = "The file: JSON (OSCAL, Prowler) or YAML (an Assay pack, sent as application/yaml or text/plain)", content_type = "application/json"),
    security(("bearer_jwt" = [])),
    responses(
        (status = 201, description = "Imported"),
        (status = 403, description = "Not a platform admin", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The key is taken", body = crate::openapi::ErrorResponse),
        (status = 422, description = "The file has problems; nothing was stored", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn import_platform(
    State(state): State<AppState>,
    caller: Caller,
    facts: ClientFacts,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let is_admin = match &caller {
        Caller::User { user_id, .. } => {
            users::get(state.db().primary(), *user_id)
                .await?
                .is_platform_admin
        }
        Caller::ApiKey { .. } => false,
    };
    if !is_admin {
        let mut ev = facts.event(None, caller.actor(), "permission.denied");
        ev.outcome = Outcome::Denied;
        ev.details = json!({ "permission": "platform.admin", "action": "framework.import" }).into();
        if let Err(e) = audit::append(state.db().primary(), ev).await {
            tracing::error!(error = %e, "could not audit a permission denial");
        }
        return Err(ApiError::forbidden(
            "importing a framework for every organisation needs a platform admin",
        ));
    }
    let upload = q.into_upload(body)?;
    let (record, pack) = state
        .catalogues()
        .import(
            PackScope::Platform,
            upload,
            Some(actor_label(&caller)),
            facts.event(None, caller.actor(), "framework.imported"),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(imported_body(&record, &pack))))
}
