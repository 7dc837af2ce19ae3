//! The OpenAPI 3.1 description of the HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! It is assembled from the `#[utoipa::path]` annotations on the handlers in `routes/*` and
//! the schemas below. It is also the API's route table ([`routes`]): the tests check that
//! every operation it lists is served by the router, that the router serves nothing it does
//! not list, and the authorisation matrix is generated from it.
//!
//! Response bodies that the handlers build as JSON values, and the store's types (which
//! know nothing of HTTP), are described here by schema-only mirror types; the tests compare
//! real responses with them.

use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::OnceLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use uuid::Uuid;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Assay API",
        description = "Assay's HTTP API: accounts and sessions, organisations, members, \
            invitations, API keys and the audit log. Every error has the body \
            `{\"error\":{\"code\",\"message\",\"details\",\"request_id\"}}` (`ErrorResponse`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::routes::health::live,
        crate::routes::health::ready,
        openapi_json,
        crate::routes::auth::register,
        crate::routes::auth::login,
        crate::routes::auth::refresh,
        crate::routes::auth::logout,
        crate::routes::auth::logout_all,
        crate::routes::auth::me,
        crate::routes::orgs::list_mine,
        crate::routes::orgs::create,
        crate::routes::orgs::get,
        crate::routes::orgs::rename,
        crate::routes::orgs::list_members,
        crate::routes::orgs::change_role,
        crate::routes::orgs::remove_member,
        crate::routes::orgs::invite,
        crate::routes::orgs::list_invitations,
        crate::routes::orgs::revoke_invitation,
        crate::routes::orgs::accept_invitation,
        crate::routes::api_keys::create,
        crate::routes::api_keys::list,
        crate::routes::api_keys::revoke,
        crate::routes::audit::list,
        crate::routes::audit::verify,
        crate::routes::compliance::list_frameworks,
        crate::routes::compliance::get_framework,
        crate::routes::compliance::list_adopted,
        crate::routes::compliance::get_org_framework,
        crate::routes::compliance::adopt,
        crate::routes::compliance::unadopt,
        crate::routes::compliance::list_controls,
        crate::routes::compliance::get_control,
        crate::routes::compliance::update_control,
        crate::routes::compliance::bulk_update,
        crate::routes::export::controls,
        crate::routes::export::framework,
        crate::routes::export::org_framework,
        crate::routes::imports::import_for_org,
        crate::routes::imports::list_for_org,
        crate::routes::imports::delete_for_org,
        crate::routes::imports::import_platform,
        crate::routes::posture::get_profile,
        crate::routes::posture::put_profile,
        crate::routes::posture::recommendations,
        crate::routes::posture::readiness,
        crate::routes::ai_tasks::help,
        crate::routes::ai_tasks::gap_analysis,
        crate::routes::ai_tasks::policy_draft,
        crate::routes::ai_tasks::classify_evidence,
        crate::routes::ai_tasks::list_classifications,
        crate::routes::ai_tasks::get_classification,
        crate::routes::ai_tasks::review_classification,
        crate::readiness_snapshots::history,
        crate::routes::assessments::start,
        crate::routes::assessments::list,
        crate::routes::assessments::get,
        crate::routes::assessments::answer,
        crate::routes::assessments::complete,
        crate::routes::assessments::confirm,
        crate::routes::assessments::delete,
        crate::routes::openai_compat::chat_completions,
        crate::routes::openai_compat::list_models,
        crate::routes::ai::get_settings,
        crate::routes::ai::put_settings,
        crate::routes::ai::list_safety_reviews,
        crate::routes::ai::resolve_safety_review,
        crate::routes::ai::create_conversation,
        crate::routes::ai::list_conversations,
        crate::routes::ai::get_conversation,
        crate::routes::ai::delete_conversation,
        crate::routes::ai::post_message,
    ),
    components(schemas(
        ErrorResponse,
        ErrorBody,
        FieldError,
        crate::routes::openai_compat::OpenAiErrorResponse,
        crate::routes::openai_compat::OpenAiErrorBody
    )),
    modifiers(&SecuritySchemes, &CommonErrors),
    tags(
        (name = "health", description = "Liveness and readiness probes"),
        (name = "meta", description = "This description"),
        (name = "auth", description = "Accounts and sessions"),
        (name = "orgs", description = "Organisations"),
        (name = "members", description = "Members of an organisation and their roles"),
        (name = "invitations", description = "Invitations to join an organisation"),
        (name = "api-keys", description = "Organisation API keys"),
        (name = "audit", description = "The organisation's hash-chained audit log"),
        (name = "assessments", description = "Assessment sessions: questions, structured answers, computed results, confirmation"),
        (name = "openai", description = "OpenAI-compatible AI endpoint (API keys with the ai scope; OpenAI's error shape)"),
    )
)]
pub struct ApiDoc;

/// Name of the security scheme for access tokens (JWT from login, register or refresh).
pub const BEARER_JWT: &str = "bearer_jwt";
/// Name of the security scheme for organisation API keys.
pub const API_KEY: &str = "api_key";
/// The schema every error response refers to.
pub const ERROR_SCHEMA: &str = "ErrorResponse";

/// The description, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// Every `(method, path)` the API serves, in the spec's path-template form
/// (`/api/v1/orgs/{org_id}`), read from the description.
pub fn routes() -> Vec<(Method, String)> {
    let spec = serde_json::to_value(document()).expect("the description serialises");
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (key, _) in item.as_object().into_iter().flatten() {
            if let Ok(method) = Method::from_bytes(key.to_ascii_uppercase().as_bytes())
                && OPERATION_KEYS.contains(&key.as_str())
            {
                out.push((method, path.clone()));
            }
        }
    }
    out
}

const OPERATION_KEYS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// This description as JSON.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    summary = "This API's OpenAPI 3.1 description",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> Response {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    let body = JSON.get_or_init(|| serde_json::to_vec(document()).unwrap_or_default());
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.as_slice(),
    )
        .into_response()
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut jwt = Http::new(HttpAuthScheme::Bearer);
        jwt.bearer_format = Some("JWT".into());
        jwt.description =
            Some("An access token from register, login or refresh (HS256 JWT, 15 minutes).".into());
        components.add_security_scheme(BEARER_JWT, SecurityScheme::Http(jwt));
        let mut key = Http::new(HttpAuthScheme::Bearer);
        key.bearer_format = Some("assay_<id>_<secret>".into());
        key.description =
            Some("An organisation API key, limited to its scopes (read, write, ai, admin).".into());
        components.add_security_scheme(API_KEY, SecurityScheme::Http(key));
    }
}

/// Adds the error responses that any operation can give because of the middleware and the
/// extractors (not the handler), all with the shared [`ErrorResponse`] body: 401 where a
/// credential is required, 400/413/415/422 where there is a JSON body, 429 under the rate
/// limits, 500 everywhere and 503 where the database is used.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let static_doc = path == "/health/live" || path == "/api/v1/openapi.json";
            let limited = path.starts_with("/api/v1/") && !static_doc;
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description));
                };
                if secured {
                    add(
                        "401",
                        "No credential, or an invalid, expired or revoked one; the account is deactivated",
                    );
                }
                if has_body {
                    add("400", "The body is not valid JSON");
                    add("413", "The body is larger than the server accepts");
                    add("415", "The body is not `application/json`");
                    add(
                        "422",
                        "A field is missing, unknown or invalid; `details.fields` names each",
                    );
                }
                if limited {
                    add("429", "Rate limited; see `Retry-After` and `X-RateLimit-*`");
                }
                add("500", "Internal error (logged; no detail is returned)");
                if !static_doc && path != "/health/ready" {
                    add("503", "The database is temporarily unavailable");
                }
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ERROR_SCHEMA)))
                .build(),
        )
        .build()
        .into()
}

// ---- Shared error shape -------------------------------------------------------------------

/// Every error response: `{"error":{"code","message","details","request_id"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable reason, e.g. `not_found`, `forbidden`, `invalid_input`,
    /// `token_expired`, `rate_limited`.
    #[schema(example = "not_found")]
    pub code: String,
    /// For people; may change.
    pub message: String,
    /// Structured detail when there is any, e.g. `{"fields":[{"field","reason"}]}` on 422 or
    /// `{"field"}` on a 409 conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    /// The `X-Request-Id` of this request, for support and logs.
    pub request_id: Option<String>,
}

/// One field-level problem in `details.fields` of a 422.
#[derive(Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

// ---- Path parameters ----------------------------------------------------------------------

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrgIdParam {
    /// The organisation.
    pub org_id: Uuid,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// The organisation.
    pub org_id: Uuid,
    /// The member (a user id).
    pub user_id: Uuid,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InvitationPath {
    /// The organisation.
    pub org_id: Uuid,
    /// The invitation.
    pub invitation_id: Uuid,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ApiKeyPath {
    /// The organisation.
    pub org_id: Uuid,
    /// The key's public id (the `<id>` in `assay_<id>_<secret>`).
    pub key_id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InvitationTokenPath {
    /// The one-time token from the invitation.
    pub token: String,
}

// ---- Response bodies ----------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct Liveness {
    #[schema(example = "ok")]
    pub status: String,
    pub version: String,
}

/// Readiness: `ready`, `unavailable` or `draining`, with the dependency checks.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: String,
    /// `database` (and `redis` when configured): status, latency, pool; under `redis`,
    /// `invalidations`: whether this node receives the other nodes' cache changes now, how
    /// many it applied, and how often it dropped its caches on (re)subscribing.
    #[schema(value_type = Option<Object>)]
    pub checks: Option<serde_json::Value>,
}

/// A role in an organisation (see docs/permissions.md).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    ComplianceManager,
    Auditor,
    Member,
    Viewer,
}

/// An API key scope.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiScope {
    Read,
    Write,
    Ai,
    Admin,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    Failure,
    Denied,
}

#[derive(Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    #[schema(format = Email)]
    pub email: String,
    pub name: String,
    pub is_active: bool,
    pub is_platform_admin: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct Organisation {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A membership as the member sees it, with the permissions the role grants.
#[derive(Serialize, ToSchema)]
pub struct Membership {
    pub org: Organisation,
    pub role: Role,
    /// Permission names, e.g. `org.read`, `audit.read`.
    pub permissions: Vec<String>,
}

/// The API key behind a request.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyCaller {
    pub id: String,
    pub org_id: Uuid,
    pub scopes: Vec<ApiScope>,
}

/// `kind` is `user` (with `user` and `memberships`) or `api_key` (with `api_key`).
#[derive(Serialize, ToSchema)]
pub struct Me {
    #[schema(example = "user")]
    pub kind: String,
    pub user: Option<User>,
    pub memberships: Option<Vec<Membership>>,
    pub api_key: Option<ApiKeyCaller>,
}

#[derive(Serialize, ToSchema)]
pub struct LogoutAll {
    pub sessions_revoked: u64,
}

/// An organisation in the caller's list; `role` is absent for an API key.
#[derive(Serialize, ToSchema)]
pub struct MyOrg {
    pub org: Organisation,
    pub role: Option<Role>,
}

#[derive(Serialize, ToSchema)]
pub struct MyOrgList {
    pub items: Vec<MyOrg>,
}

#[derive(Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub is_active: bool,
    pub joined_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<Member>,
}

#[derive(Serialize, ToSchema)]
pub struct RoleChanged {
    pub user_id: Uuid,
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub accepted_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationCreated {
    pub invitation: Invitation,
    /// The one-time token to send to the invitee; not retrievable later.
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationList {
    pub items: Vec<Invitation>,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationAccepted {
    pub org_id: Uuid,
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub org_id: Uuid,
    pub name: String,
    pub scopes: Vec<ApiScope>,
    pub created_by: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyCreated {
    pub api_key: ApiKey,
    /// The full key, `assay_<id>_<secret>`; shown only here.
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKey>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    /// Position in the organisation's chain.
    pub seq: i64,
    pub org_id: Option<Uuid>,
    /// `user`, `api_key`, `system` or `anonymous`.
    pub actor_type: String,
    pub actor_id: Option<String>,
    #[schema(example = "member.role_changed")]
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: AuditOutcome,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// SHA-256 over the canonical encoding, linking to the previous event.
    pub hash: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct BrokenLink {
    pub seq: i64,
    pub event_id: Option<Uuid>,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChainReport {
    pub chain: String,
    pub events_checked: u64,
    /// The first event that does not link correctly; absent when the chain is intact.
    pub first_broken: Option<BrokenLink>,
}
