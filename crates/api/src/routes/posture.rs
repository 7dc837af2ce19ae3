//! An organisation's business profile with its explained framework recommendations,
//! and readiness computed from its control states. The rules live in `assay-core`
//! (`profile`, `readiness`); this module loads, checks, stores and audits.

use crate::auth::{RequirePermission, perm};
use crate::error::ApiError;
use crate::json::{FieldError, ValidJson, invalid};
use crate::state::AppState;
use assay_core::profile::{BusinessProfile, recommend};
use assay_core::readiness::ReadinessModel;
use assay_store::repo::audit;
use assay_store::repo::posture;
use axum::Json;
use axum::extract::State;
use garde::Validate;
use serde::Deserialize;
use serde_json::{Value, json};

/// The request body: exactly a `BusinessProfile` (its own rules are checked after parsing).
#[derive(Deserialize, Validate)]
#[serde(transparent)]
pub struct ProfileBody(#[garde(skip)] pub BusinessProfile);

async fn stored_profile(
    state: &AppState,
    ctx: &assay_core::OrgCtx,
) -> Result<Option<(BusinessProfile, Value)>, ApiError> {
    let Some((value, updated_at)) = posture::profile(state.db().primary(), ctx).await? else {
        return Ok(None);
    };
    let profile: BusinessProfile = serde_json::from_value(value).map_err(ApiError::internal)?;
    Ok(Some((profile, json!(updated_at))))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/profile",
    operation_id = "get_profile",
    tag = "compliance",
    summary = "The organisation's business profile (needs `org.read`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The profile"),
        (status = 404, description = "No profile yet", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn get_profile(
    State(state): State<AppState>,
    access: RequirePermission<perm::OrgRead>,
) -> Result<Json<Value>, ApiError> {
    let (profile, updated_at) = stored_profile(&state, &access.ctx)
        .await?
        .ok_or_else(|| ApiError::not_found("business profile"))?;
    Ok(Json(
        json!({ "profile": profile, "updated_at": updated_at }),
    ))
}

#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org_id}/profile",
    operation_id = "put_profile",
    tag = "compliance",
    summary = "Set the business profile (needs `org.update`); every invalid field is named",
    params(crate::openapi::OrgIdParam),
    request_body(content = Object, description = "A business profile: industry, employee_count, revenue_band, country (ISO alpha-2), data_sensitivity, handles_personal_data, handles_payment_data, handles_health_data, critical_infrastructure, international_operations, serves_public_sector, cloud_providers, saas_tools, existing_frameworks, planned_frameworks"),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Stored"),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn put_profile(
    State(state): State<AppState>,
    access: RequirePermission<perm::OrgUpdate>,
    ValidJson(ProfileBody(profile)): ValidJson<ProfileBody>,
) -> Result<Json<Value>, ApiError> {
    let problems = profile.validate();
    if !problems.is_empty() {
        return Err(invalid(
            problems
                .into_iter()
                .map(|p| FieldError {
                    field: p.field,
                    reason: p.reason,
                })
                .collect(),
        ));
    }
    let value = serde_json::to_value(&profile).map_err(ApiError::internal)?;
    let access = access.access;
    let stored = value.clone();
    state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                posture::set_profile(txn, &access.ctx, &stored).await?;
                audit::append(
                    txn,
                    access
                        .event("profile.updated")
                        .resource("organisation", access.ctx.org_id()),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
    Ok(Json(json!({ "profile": value })))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/framework-recommendations",
    operation_id = "framework_recommendations",
    tag = "compliance",
    summary = "Every framework scored for this organisation, with the reasons (needs `org.read`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Recommendations, most important first"),
        (status = 404, description = "No business profile yet", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn recommendations(
    State(state): State<AppState>,
    access: RequirePermission<perm::OrgRead>,
) -> Result<Json<Value>, ApiError> {
    let (profile, _) = stored_profile(&state, &access.ctx).await?.ok_or_else(|| {
        ApiError::not_found("business profile (set it first with PUT .../profile)")
    })?;
    let catalogue = state.catalogues().for_org(&access.ctx).await?;
    Ok(Json(json!({ "items": recommend(&profile, &catalogue) })))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/readiness",
    operation_id = "get_readiness",
    tag = "compliance",
    summary = "Readiness per adopted framework and overall, computed from the control states (needs `frameworks.read`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses((status = 200, description = "Scores with their breakdown and top actions"))
)]
pub async fn readiness(
    State(state): State<AppState>,
    access: RequirePermission<perm::FrameworksRead>,
) -> Result<Json<Value>, ApiError> {
    let posture = state.posture().get(&access.ctx).await?;
    let catalogue = state.catalogues().for_org(&access.ctx).await?;
    let model = ReadinessModel::new(&catalogue, &posture.adopted_in(&catalogue))
        .map_err(ApiError::internal)?;
    let result = model.compute(&posture.readiness_states());
    Ok(Json(
        serde_json::to_value(&result).map_err(ApiError::internal)?,
    ))
}
