//! Who is calling, and what they may do: the seed's "Auth Middleware -> JWT Validation ->
//! User Context" as axum extractors.
//!
//! [`Caller`] checks, in order: the bearer's form (JWT or `assay_` API key); for a JWT the
//! signature with the pinned algorithm, exp/nbf, iss/aud and token type (`assay-auth`), then
//! revocation (token, session family, user cut-off) and that the account is active; for an
//! API key its hash in constant time, revocation and expiry. [`OrgAccess`] adds the
//! membership (role read from the store, never from the token) of the organisation in the
//! path and builds the `OrgCtx`; another organisation answers 404, never 403, so ids do not
//! leak. [`RequirePermission`] then checks one permission and audits a denial.

use crate::error::ApiError;
use crate::state::AppState;
use assay_auth::{ApiScope, ApiScopes, BearerCredential, PresentedApiKey, TokenError};
use assay_core::access::Permission;
use assay_core::{OrgCtx, OrgId, Role, UserId};
use assay_infra::revocation::TokenRef;
use assay_store::repo::api_keys;
use assay_store::repo::audit::{Actor, NewAuditEvent, Outcome};
use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::header;
use axum::http::request::Parts;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::SystemTime;
use uuid::Uuid;

/// Facts about the request kept with audit events.
#[derive(Clone, Debug, Default)]
pub struct ClientFacts {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl ClientFacts {
    fn from_parts(parts: &Parts, behind_proxy: bool) -> Self {
        let forwarded = behind_proxy
            .then(|| {
                parts
                    .headers
                    .get("x-forwarded-for")?
                    .to_str()
                    .ok()?
                    .split(',')
                    .next()
                    .map(|s| s.trim().to_owned())
            })
            .flatten();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Self {
            ip: forwarded.or(peer),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect()),
            request_id: parts
                .extensions
                .get::<crate::request_id::RequestId>()
                .map(|r| r.0.clone()),
        }
    }

    /// An audit event carrying these request facts.
    pub fn event(&self, org: Option<OrgId>, actor: Actor, action: &str) -> NewAuditEvent {
        let mut ev = NewAuditEvent::new(org, actor, action);
        ev.ip.clone_from(&self.ip);
        ev.user_agent.clone_from(&self.user_agent);
        ev.request_id.clone_from(&self.request_id);
        ev
    }

    /// Where a new session is opened from.
    pub fn client_info(&self) -> assay_store::repo::sessions::ClientInfo {
        assay_store::repo::sessions::ClientInfo {
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

impl FromRequestParts<AppState> for ClientFacts {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts, state.config().server.behind_proxy))
    }
}

/// An authenticated principal.
#[derive(Clone, Debug)]
pub enum Caller {
    User {
        user_id: UserId,
        /// The login session (refresh family) the token was minted from.
        session_id: Option<Uuid>,
        jti: Uuid,
        expires_at: SystemTime,
    },
    ApiKey {
        key_id: String,
        org_id: OrgId,
        scopes: ApiScopes,
    },
}

impl Caller {
    pub fn actor(&self) -> Actor {
        match self {
            Caller::User { user_id, .. } => Actor::User(*user_id),
            Caller::ApiKey { key_id, .. } => Actor::ApiKey(key_id.clone()),
        }
    }

    /// The person behind the request, or a 403 for API keys on person-only endpoints.
    pub fn user_id(&self) -> Result<UserId, ApiError> {
        match self {
            Caller::User { user_id, .. } => Ok(*user_id),
            Caller::ApiKey { .. } => Err(ApiError::forbidden(
                "this endpoint is for people, not API keys",
            )),
        }
    }
}

fn token_error(e: TokenError) -> ApiError {
    let message = match e {
        TokenError::Expired => "the access token has expired; refresh it",
        _ => "the access token is not valid",
    };
    ApiError::unauthenticated(e.code(), message)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthenticated(
                "unauthenticated",
                "send Authorization: Bearer <token>",
            ));
        };
        let header = header.to_str().map_err(|_| {
            ApiError::unauthenticated("invalid_token", "malformed Authorization header")
        })?;
        let credential = BearerCredential::from_authorization(header).map_err(|_| {
            ApiError::unauthenticated("invalid_token", "send Authorization: Bearer <token>")
        })?;
        let caller = match credential {
            BearerCredential::AccessToken(token) => verify_access_token(state, &token).await?,
            BearerCredential::ApiKey(key) => verify_api_key(state, &key).await?,
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

async fn verify_access_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let identity = state.identity();
    let claims = identity.tokens.verify(token).map_err(token_error)?;
    let jti = claims.jti.to_string();
    let family = claims.sid.map(|s| s.to_string());
    let revoked = identity
        .revocation
        .is_revoked(&TokenRef {
            jti: &jti,
            user: claims.sub,
            issued_at: claims.issued_at(),
            family: family.as_deref(),
        })
        .await;
    if revoked {
        return Err(ApiError::unauthenticated(
            "token_revoked",
            "the access token has been revoked",
        ));
    }
    if !identity.user_active(state.db(), claims.sub).await? {
        return Err(ApiError::unauthenticated(
            "account_inactive",
            "the account is deactivated",
        ));
    }
    Ok(Caller::User {
        user_id: claims.sub,
        session_id: claims.sid,
        jti: claims.jti,
        expires_at: claims.expires_at(),
    })
}

/// How stale an API key's `last_used_at` may be before a request refreshes it.
const LAST_USED_PRECISION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

async fn verify_api_key(state: &AppState, key: &PresentedApiKey) -> Result<Caller, ApiError> {
    let invalid = || ApiError::unauthenticated("invalid_api_key", "the API key is not valid");
    let Some(entry) = state.identity().api_key(state.db(), key.id()).await? else {
        return Err(invalid());
    };
    let cred = &entry.credential;
    if !key.matches(&cred.key_hash) {
        return Err(invalid());
    }
    if cred.key.revoked_at.is_some() {
        return Err(ApiError::unauthenticated(
            "api_key_revoked",
            "the API key has been revoked",
        ));
    }
    if cred.key.expires_at.is_some_and(|t| t <= chrono::Utc::now()) {
        return Err(ApiError::unauthenticated(
            "api_key_expired",
            "the API key has expired",
        ));
    }
    let scopes =
        ApiScopes::parse(cred.key.scopes.iter().map(String::as_str)).map_err(|_| invalid())?;
    // Recording use is bookkeeping: it must not slow or fail the request, and a key used
    // many times a second must not cost a database write per request (on SQLite, writes
    // serialise: one per call capped /v1/chat/completions near 1,000 req/s). Minute
    // precision is what "last used" needs.
    if entry.claim_use_record(chrono::Utc::now(), LAST_USED_PRECISION) {
        let (db, id) = (state.db().clone(), cred.key.id.clone());
        tokio::spawn(async move {
            if let Err(e) = api_keys::touch_last_used(db.primary(), &id).await {
                tracing::debug!(error = %e, "could not record API key use");
            }
        });
    }
    Ok(Caller::ApiKey {
        key_id: cred.key.id.clone(),
        org_id: cred.key.org_id,
        scopes,
    })
}

/// The role an API key acts with for `OrgCtx` purposes; permissions are checked against
/// its scopes.
pub(crate) fn role_for_scopes(scopes: ApiScopes) -> Role {
    if scopes.contains(ApiScope::Admin) {
        Role::Admin
    } else if scopes.contains(ApiScope::Write) {
        Role::Member
    } else {
        Role::Viewer
    }
}

/// A caller with verified access to the organisation named by `{org_id}` in the path.
#[derive(Clone, Debug)]
pub struct OrgAccess {
    pub ctx: OrgCtx,
    pub caller: Caller,
    pub facts: ClientFacts,
}

impl OrgAccess {
    /// Whether the caller holds `permission` here: by role for people, by scope for keys.
    pub fn can(&self, permission: Permission) -> bool {
        match &self.caller {
            Caller::User { .. } => self.ctx.role().can(permission),
            Caller::ApiKey { scopes, .. } => scopes.permits(permission),
        }
    }

    /// An audit event in this organisation by this caller.
    pub fn event(&self, action: &str) -> NewAuditEvent {
        self.facts
            .event(Some(self.ctx.org_id()), self.caller.actor(), action)
    }

    /// 403 unless the caller holds `permission`; the denial is audited.
    pub async fn require(&self, state: &AppState, permission: Permission) -> Result<(), ApiError> {
        if self.can(permission) {
            return Ok(());
        }
        Err(self
            .deny(
                state,
                serde_json::json!({ "permission": permission.as_str() }),
                format!("this needs the {} permission", permission.as_str()),
            )
            .await)
    }

    /// A 403 for a rule beyond plain permissions (e.g. who may grant which role), audited
    /// like every denial.
    pub async fn deny(
        &self,
        state: &AppState,
        details: serde_json::Value,
        message: String,
    ) -> ApiError {
        let mut ev = self.event("permission.denied");
        ev.outcome = Outcome::Denied;
        ev.details = details.into();
        if let Err(e) = assay_store::repo::audit::append(state.db().primary(), ev).await {
            tracing::error!(error = %e, "could not audit a permission denial");
        }
        ApiError::forbidden(message)
    }
}

fn not_found_org() -> ApiError {
    ApiError::not_found("organisation")
}

impl FromRequestParts<AppState> for OrgAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found_org())?;
        let org_id: OrgId = params
            .get("org_id")
            .and_then(|s| s.parse().ok())
            .ok_or_else(not_found_org)?;
        let facts = ClientFacts::from_parts(parts, state.config().server.behind_proxy);
        let ctx = match &caller {
            Caller::User { user_id, .. } => {
                let role = state
                    .identity()
                    .role_of(state.db(), org_id, *user_id)
                    .await?
                    .ok_or_else(not_found_org)?;
                OrgCtx::for_verified_member(org_id, *user_id, role)
            }
            Caller::ApiKey {
                org_id: key_org,
                scopes,
                ..
            } => {
                if *key_org != org_id {
                    return Err(not_found_org());
                }
                OrgCtx::for_api_key(org_id, role_for_scopes(*scopes))
            }
        };
        Ok(OrgAccess { ctx, caller, facts })
    }
}

/// A permission a handler needs, as a type (see [`perm`]).
pub trait PermissionMarker {
    const PERMISSION: Permission;
}

/// Extractor: org access plus one permission; 403 (audited) without it.
pub struct RequirePermission<P: PermissionMarker> {
    pub access: OrgAccess,
    _permission: PhantomData<P>,
}

impl<P: PermissionMarker> std::ops::Deref for RequirePermission<P> {
    type Target = OrgAccess;
    fn deref(&self) -> &OrgAccess {
        &self.access
    }
}

impl<P: PermissionMarker + Send + Sync> FromRequestParts<AppState> for RequirePermission<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let access = OrgAccess::from_request_parts(parts, state).await?;
        access.require(state, P::PERMISSION).await?;
        Ok(RequirePermission {
            access,
            _permission: PhantomData,
        })
    }
}

/// Permission marker types for [`RequirePermission`].
pub mod perm {
    use super::{Permission, PermissionMarker};

    macro_rules! markers {
        ($($name:ident),* $(,)?) => {
            $(
                #[doc = concat!("Requires `Permission::", stringify!($name), "`.")]
                pub struct $name;
                impl PermissionMarker for $name {
                    const PERMISSION: Permission = Permission::$name;
                }
            )*
        };
    }

    markers!(
        OrgRead,
        OrgUpdate,
        MembersRead,
        MembersManage,
        InvitationsManage,
        ApiKeysManage,
        AuditRead,
        FrameworksRead,
        FrameworksAdopt,
        ControlsRead,
        ControlsWrite,
        EvidenceRead,
        EvidenceWrite,
        AssessmentsRead,
        AssessmentsWrite,
        ReportsExport,
        AiUse,
        AiAdmin
    );
}
