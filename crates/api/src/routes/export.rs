//! Posture exports: the organisation's controls with their state and the
//! requirements each serves, as CSV or XLSX, for spreadsheets and auditors.

use crate::auth::{RequirePermission, perm};
use crate::error::ApiError;
use crate::json::invalid_field;
use crate::state::AppState;
use assay_core::ControlStatus;
use assay_core::catalogue;
use assay_store::repo::audit;
use assay_store::repo::posture::ControlRecord;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `csv` (default) or `xlsx`.
    pub format: Option<String>,
}

const HEADER: [&str; 10] = [
    "control",
    "title",
    "domain",
    "status",
    "justification",
    "owner_id",
    "due_date",
    "notes",
    "updated_at",
    "requirements",
];

/// One row per control of the library, in key order.
fn rows(states: &HashMap<String, ControlRecord>) -> Vec<[String; 10]> {
    super::compliance::controls_by_key()
        .iter()
        .map(|c| {
            let s = states.get(&c.key);
            [
                c.key.clone(),
                c.title.clone(),
                c.domain.clone(),
                s.map_or(ControlStatus::NotStarted, |s| s.status)
                    .to_string(),
                s.and_then(|s| s.justification.clone()).unwrap_or_default(),
                s.and_then(|s| s.owner_id)
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
                s.and_then(|s| s.due_date)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                s.and_then(|s| s.notes.clone()).unwrap_or_default(),
                s.map(|s| s.updated_at.to_rfc3339()).unwrap_or_default(),
                c.maps_to
                    .iter()
                    .map(|r| format!("{}:{}", r.framework, r.ref_id))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect()
}

fn csv_bytes(rows: &[[String; 10]]) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER).map_err(ApiError::internal)?;
    for r in rows {
        w.write_record(r).map_err(ApiError::internal)?;
    }
    w.into_inner().map_err(ApiError::internal)
}

fn xlsx_bytes(rows: &[[String; 10]]) -> Result<Vec<u8>, ApiError> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Controls").map_err(ApiError::internal)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (col, name) in HEADER.iter().enumerate() {
        sheet
            .write_string_with_format(0, col as u16, *name, &bold)
            .map_err(ApiError::internal)?;
    }
    for (i, r) in rows.iter().enumerate() {
        for (col, value) in r.iter().enumerate() {
            sheet
                .write_string(i as u32 + 1, col as u16, value)
                .map_err(ApiError::internal)?;
        }
    }
    sheet.set_freeze_panes(1, 0).map_err(ApiError::internal)?;
    book.save_to_buffer().map_err(ApiError::internal)
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/controls/export",
    operation_id = "export_controls",
    tag = "compliance",
    summary = "The organisation's controls and their state as CSV or XLSX (needs `reports.export`)",
    params(crate::openapi::OrgIdParam, ExportQuery),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The export file", content_type = "text/csv"),
        (status = 422, description = "Unknown format", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn controls(
    State(state): State<AppState>,
    access: RequirePermission<perm::ReportsExport>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = q.format.as_deref().unwrap_or("csv");
    if !matches!(format, "csv" | "xlsx") {
        return Err(invalid_field("format", "must be csv or xlsx"));
    }
    let posture = state.posture().get(&access.ctx).await?;
    let rows = rows(&posture.records);
    let (bytes, content_type) = match format {
        "xlsx" => (
            xlsx_bytes(&rows)?,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        _ => (csv_bytes(&rows)?, "text/csv; charset=utf-8"),
    };
    let mut ev = access.event("export.controls");
    ev.details = serde_json::json!({ "format": format, "rows": rows.len() }).into();
    audit::append(state.db().primary(), ev).await?;
    let filename = format!("assay-controls-{}.{format}", access.ctx.org_id());
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FrameworkExportQuery {
    /// `oscal` (OSCAL 1.1.2 catalog JSON, the default) or `yaml` (Assay's pack format).
    pub format: Option<String>,
}

/// When the built-in packs last changed: the build's own version date is not known, so
/// the export is stamped with a fixed date and stays byte-for-byte reproducible.
const BUILTIN_PACKS_DATE: &str = "2026-11-27T00:00:00Z";

#[utoipa::path(
    get,
    path = "/api/v1/frameworks/{key}/export",
    operation_id = "export_framework",
    tag = "compliance",
    summary = "A framework as an OSCAL catalog (JSON) or as an Assay YAML pack",
    params(("key" = String, Path, description = "Framework key"), FrameworkExportQuery),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The framework document", content_type = "application/json"),
        (status = 404, description = "No such framework", body = crate::openapi::ErrorResponse),
        (status = 422, description = "Unknown format", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn framework(
    State(state): State<AppState>,
    _caller: crate::auth::Caller,
    axum::extract::Path(key): axum::extract::Path<String>,
    Query(q): Query<FrameworkExportQuery>,
) -> Result<Response, ApiError> {
    let catalogue = state.catalogues().platform().await?;
    framework_document(&catalogue, &key, &q)
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/frameworks/{key}/export",
    operation_id = "export_org_framework",
    tag = "compliance",
    summary = "A framework the organisation can see, its own imports included, as an OSCAL catalog or an Assay YAML pack (needs `frameworks.read`)",
    params(crate::openapi::OrgIdParam, ("key" = String, Path, description = "Framework key"), FrameworkExportQuery),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The framework document", content_type = "application/json"),
        (status = 404, description = "No such framework", body = crate::openapi::ErrorResponse),
        (status = 422, description = "Unknown format", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn org_framework(
    State(state): State<AppState>,
    access: RequirePermission<perm::FrameworksRead>,
    axum::extract::Path((_, key)): axum::extract::Path<(uuid::Uuid, String)>,
    Query(q): Query<FrameworkExportQuery>,
) -> Result<Response, ApiError> {
    let catalogue = state.catalogues().for_org(&access.ctx).await?;
    framework_document(&catalogue, &key, &q)
}

/// One framework of `catalogue` as the document `q.format` asks for, as a download.
fn framework_document(
    catalogue: &catalogue::Catalogue,
    key: &str,
    q: &FrameworkExportQuery,
) -> Result<Response, ApiError> {
    let fw = catalogue
        .framework(key)
        .ok_or_else(|| ApiError::not_found("framework"))?;
    let (body, content_type, ext) = match q.format.as_deref().unwrap_or("oscal") {
        "oscal" => {
            let stamp = chrono::DateTime::parse_from_rfc3339(BUILTIN_PACKS_DATE)
                .map_err(ApiError::internal)?
                .to_utc();
            (
                catalogue::framework_to_oscal_json(fw, stamp),
                "application/json",
                "oscal.json",
            )
        }
        "yaml" => (catalogue::framework_to_yaml(fw), "application/yaml", "yaml"),
        _ => return Err(invalid_field("format", "must be oscal or yaml")),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.{ext}\"", fw.key),
            ),
        ],
        body,
    )
        .into_response())
}
