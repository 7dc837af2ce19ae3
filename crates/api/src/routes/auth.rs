//! Accounts and sessions: register, login, refresh, logout, logout everywhere, and `/me`.
//!
//! Login throttling does not reveal which e-mails have accounts: failures are counted per
//! e-mail whether or not it exists, an unknown e-mail is checked against a dummy Argon2
//! hash (same cost), and both failures give the same 401.

use crate::auth::{Caller, ClientFacts};
use crate::error::ApiError;
use crate::json::{ValidJson, invalid_field};
use crate::state::AppState;
use assay_auth::{LoginBackoff, NewRefreshToken, invitation_token_hash, refresh_token_hash};
use assay_core::{OrgId, Role, UserId, password};
use assay_store::repo::audit::{self, Actor, Outcome};
use assay_store::repo::sessions::{self, Rotation, TokenRow};
use assay_store::repo::{invitations, login_failures, organisations, users};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use garde::Validate;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[garde(email, length(max = 320))]
    #[schema(format = Email, max_length = 320)]
    pub email: String,
    /// 12..128 characters, not containing the e-mail's local part, not a common password.
    #[garde(skip)]
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 128)]
    pub password: SecretString,
    #[garde(length(chars, min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Name of the new organisation (not needed with `invite_token`).
    #[garde(inner(length(chars, min = 1, max = 200)))]
    pub org_name: Option<String>,
    /// Join the inviting organisation instead of creating one.
    #[garde(inner(length(min = 1, max = 200)))]
    pub invite_token: Option<String>,
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[garde(length(min = 1, max = 320))]
    #[schema(max_length = 320)]
    pub email: String,
    #[garde(skip)]
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[garde(skip)]
    #[schema(value_type = String)]
    pub refresh_token: SecretString,
}

/// Tokens for a new or refreshed session.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque; rotated on every use.
    pub refresh_token: String,
    #[schema(value_type = String, example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// On register and login.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::User>)]
    pub user: Option<users::User>,
    /// On register and login: the organisation joined, created or first in the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::Organisation>)]
    pub org: Option<organisations::Organisation>,
}

fn token_row(t: &NewRefreshToken) -> TokenRow {
    TokenRow {
        token_hash: t.token_hash.clone(),
        issued_at: t.issued_at,
        expires_at: t.expires_at,
    }
}

fn issue(
    state: &AppState,
    user: UserId,
    org: Option<OrgId>,
    refresh: &NewRefreshToken,
    session: uuid::Uuid,
) -> Result<TokenResponse, ApiError> {
    let access = state
        .identity()
        .tokens
        .issue(user, org, Some(session))
        .map_err(ApiError::internal)?;
    Ok(TokenResponse {
        access_token: access.token.expose_secret().to_owned(),
        refresh_token: refresh.token.expose_secret().to_owned(),
        token_type: "Bearer",
        expires_in: access.expires_in.as_secs(),
        user: None,
        org: None,
    })
}

/// A URL-friendly, collision-resistant organisation slug.
pub(crate) fn slug_for(name: &str) -> String {
    let mut base: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    base.truncate(60);
    if base.is_empty() {
        base.push_str("org");
    }
    format!("{base}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    operation_id = "register",
    tag = "auth",
    summary = "Create an account and an organisation (owner), or join one with `invite_token`",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in", body = TokenResponse),
        (status = 403, description = "Registration is by invitation only", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The e-mail is taken", body = crate::openapi::ErrorResponse),
        (status = 422, description = "A field is invalid (weak password, bad invitation, ...)", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    facts: ClientFacts,
    ValidJson(req): ValidJson<RegisterRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    if let Err(weak) = password::check_password(req.password.expose_secret(), &req.email) {
        let reasons: Vec<String> = weak.violations().iter().map(ToString::to_string).collect();
        return Err(invalid_field("password", reasons.join("; ")));
    }
    let invitation = match &req.invite_token {
        Some(token) => {
            let hash = invitation_token_hash(token)
                .ok_or_else(|| invalid_field("invite_token", "is not a valid invitation"))?;
            let inv = invitations::find_by_token_hash(state.db().primary(), &hash)
                .await?
                .filter(|i| i.is_pending(chrono::Utc::now()))
                .ok_or_else(|| {
                    invalid_field(
                        "invite_token",
                        "is not a valid invitation (unknown, used, revoked or expired)",
                    )
                })?;
            if inv.email != users::normalise_email(&req.email) {
                return Err(invalid_field("email", "does not match the invitation"));
            }
            Some(inv)
        }
        None => {
            if req.org_name.is_none() {
                return Err(invalid_field(
                    "org_name",
                    "is required unless invite_token is given",
                ));
            }
            if !state.config().features.open_registration {
                return Err(ApiError::forbidden("registration is by invitation only"));
            }
            None
        }
    };
    let password_hash = state
        .identity()
        .hasher
        .hash(req.password)
        .await
        .map_err(ApiError::internal)?;
    let refresh = NewRefreshToken::new_family(state.identity().refresh_ttl);
    let session_id = refresh.family_id;
    let row = token_row(&refresh);
    let client = facts.client_info();
    let (user, org) = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let user = users::create(
                    txn,
                    users::NewUser {
                        email: &req.email,
                        name: &req.name,
                        password_hash: Some(&password_hash),
                    },
                )
                .await?;
                let org = match invitation {
                    Some(inv) => {
                        let ctx =
                            super::orgs::join_by_invitation(txn, &inv, user.id, &facts).await?;
                        organisations::get(txn, &ctx).await?
                    }
                    None => {
                        let name = req.org_name.as_deref().unwrap_or_default();
                        let org =
                            organisations::create_with_owner(txn, name, &slug_for(name), user.id)
                                .await?;
                        audit::append(
                            txn,
                            facts
                                .event(Some(org.id), Actor::User(user.id), "org.created")
                                .resource("organisation", org.id),
                        )
                        .await?;
                        org
                    }
                };
                audit::append(
                    txn,
                    facts
                        .event(None, Actor::User(user.id), "auth.registered")
                        .resource("user", user.id),
                )
                .await?;
                sessions::open(txn, session_id, user.id, &row, &client).await?;
                Ok((user, org))
            })
        })
        .await?;
    let mut body = issue(&state, user.id, Some(org.id), &refresh, session_id)?;
    body.user = Some(user);
    body.org = Some(org);
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    operation_id = "login",
    tag = "auth",
    summary = "Sign in with e-mail and password",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Wrong e-mail or password (the same answer for both)", body = crate::openapi::ErrorResponse),
        (status = 429, description = "Too many failures for this account or IP; see `Retry-After`", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    facts: ClientFacts,
    ValidJson(req): ValidJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let db = state.db();
    let backoff = LoginBackoff::default();
    if let Some((failures, last)) = login_failures::get(db.primary(), &req.email).await? {
        let since = (chrono::Utc::now() - last).to_std().unwrap_or_default();
        if let Some(wait) = backoff.retry_after(failures, since) {
            return Err(ApiError::rate_limited("login_locked", wait));
        }
    }
    let found = users::find_for_login(db.primary(), &req.email).await?;
    let (user, stored_hash) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, None),
    };
    // Always run one Argon2 verification (a dummy one for unknown e-mails): same cost.
    let password_ok = state
        .identity()
        .hasher
        .verify(req.password, stored_hash)
        .await
        .map_err(ApiError::internal)?;
    let user = match user {
        Some(u) if password_ok && u.is_active => u,
        other => {
            let failures = login_failures::record_failure(db.primary(), &req.email).await?;
            let mut ev = facts.event(None, Actor::Anonymous, "auth.login_failed");
            ev.outcome = Outcome::Failure;
            ev.details =
                json!({ "known_account": other.is_some(), "consecutive_failures": failures })
                    .into();
            if let Some(u) = &other {
                ev = ev.resource("user", u.id);
            }
            audit::append(db.primary(), ev).await?;
            if let Some(lock) = backoff.lock_after(failures) {
                return Err(ApiError::rate_limited("login_locked", lock));
            }
            return Err(ApiError::unauthenticated(
                "invalid_credentials",
                "the e-mail or password is wrong",
            ));
        }
    };
    let refresh = NewRefreshToken::new_family(state.identity().refresh_ttl);
    let session_id = refresh.family_id;
    let row = token_row(&refresh);
    let (email, client, user_id) = (req.email.clone(), facts.client_info(), user.id);
    let first_org = db
        .write(move |txn| {
            Box::pin(async move {
                login_failures::clear(txn, &email).await?;
                sessions::open(txn, session_id, user_id, &row, &client).await?;
                audit::append(
                    txn,
                    facts
                        .event(None, Actor::User(user_id), "auth.login")
                        .resource("user", user_id),
                )
                .await?;
                Ok(organisations::list_for_user(txn, user_id)
                    .await?
                    .into_iter()
                    .next()
                    .map(|(o, _)| o))
            })
        })
        .await?;
    let mut body = issue(
        &state,
        user.id,
        first_org.as_ref().map(|o| o.id),
        &refresh,
        session_id,
    )?;
    body.user = Some(user);
    body.org = first_org;
    Ok(Json(body))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    operation_id = "refresh",
    tag = "auth",
    summary = "Trade a refresh token for new tokens; replaying a rotated token ends the whole session",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or replayed refresh token", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    facts: ClientFacts,
    ValidJson(req): ValidJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let invalid =
        || ApiError::unauthenticated("invalid_refresh_token", "the refresh token is not valid");
    let presented = refresh_token_hash(req.refresh_token.expose_secret()).ok_or_else(invalid)?;
    let next = NewRefreshToken::new_family(state.identity().refresh_ttl);
    let row = token_row(&next);
    let outcome = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let outcome = sessions::rotate(txn, &presented, &row).await?;
                match &outcome {
                    Rotation::Rotated { session_id, user } => {
                        let ev = facts
                            .event(None, Actor::User(*user), "auth.refresh")
                            .resource("session", session_id);
                        audit::append(txn, ev).await?;
                    }
                    Rotation::ReuseDetected { session_id, user } => {
                        let mut ev = facts
                            .event(None, Actor::User(*user), "auth.refresh_reuse_detected")
                            .resource("session", session_id);
                        ev.outcome = Outcome::Denied;
                        audit::append(txn, ev).await?;
                    }
                    Rotation::Invalid => {}
                }
                Ok(outcome)
            })
        })
        .await?;
    match outcome {
        Rotation::Rotated { session_id, user } => {
            if !state.identity().user_active(state.db(), user).await? {
                return Err(invalid());
            }
            Ok(Json(issue(&state, user, None, &next, session_id)?))
        }
        Rotation::ReuseDetected { session_id, .. } => {
            // Access tokens minted from this family die too, on every node.
            let until = SystemTime::now() + state.identity().refresh_ttl;
            state
                .identity()
                .revocation
                .revoke_family(&session_id.to_string(), until)
                .await;
            tracing::warn!(session = %session_id, "refresh token reuse detected; session revoked");
            Err(invalid())
        }
        Rotation::Invalid => Err(invalid()),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    operation_id = "logout",
    tag = "auth",
    summary = "End this session: its access token and refresh family stop working",
    security(("bearer_jwt" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 403, description = "API keys have no session", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    facts: ClientFacts,
) -> Result<StatusCode, ApiError> {
    let Caller::User {
        user_id,
        session_id,
        jti,
        expires_at,
    } = caller
    else {
        return Err(ApiError::forbidden(
            "API keys have no session to log out of",
        ));
    };
    let identity = state.identity();
    identity
        .revocation
        .revoke_token(&jti.to_string(), expires_at)
        .await;
    if let Some(sid) = session_id {
        identity
            .revocation
            .revoke_family(&sid.to_string(), SystemTime::now() + identity.refresh_ttl)
            .await;
        state
            .db()
            .write(move |txn| {
                Box::pin(async move {
                    sessions::revoke_own(txn, user_id, sid, "logout").await?;
                    audit::append(
                        txn,
                        facts
                            .event(None, Actor::User(user_id), "auth.logout")
                            .resource("session", sid),
                    )
                    .await?;
                    Ok(())
                })
            })
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout-all",
    operation_id = "logout_all",
    tag = "auth",
    summary = "End every session of the caller",
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "Signed out everywhere", body = crate::openapi::LogoutAll),
        (status = 403, description = "API keys have no session", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn logout_all(
    State(state): State<AppState>,
    caller: Caller,
    facts: ClientFacts,
) -> Result<Json<Value>, ApiError> {
    let user_id = caller.user_id()?;
    // Cut off every access token issued up to now (a tick later, so this one is included).
    state
        .identity()
        .revocation
        .revoke_user_tokens_issued_before(user_id, SystemTime::now() + Duration::from_millis(1))
        .await;
    let revoked = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let n = sessions::revoke_all(txn, user_id, "logout_all").await?;
                let mut ev = facts
                    .event(None, Actor::User(user_id), "auth.logout_all")
                    .resource("user", user_id);
                ev.details = json!({ "sessions_revoked": n }).into();
                audit::append(txn, ev).await?;
                Ok(n)
            })
        })
        .await?;
    Ok(Json(json!({ "sessions_revoked": revoked })))
}

#[derive(Serialize)]
struct MembershipView {
    org: organisations::Organisation,
    role: Role,
    permissions: assay_core::access::PermissionSet,
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "me",
    tag = "auth",
    summary = "The caller: a person with their memberships, roles and permissions, or an API key with its scopes",
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The caller", body = crate::openapi::Me),
    )
)]
pub async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::response::Response, ApiError> {
    match caller {
        Caller::User { user_id, .. } => {
            let body = state
                .identity()
                .profile_of(state.db(), user_id, |user, orgs| {
                    let memberships: Vec<MembershipView> = orgs
                        .into_iter()
                        .map(|(org, role)| MembershipView {
                            org,
                            role,
                            permissions: role.permissions(),
                        })
                        .collect();
                    json!({ "kind": "user", "user": user, "memberships": memberships })
                });
            let bytes = body.await?;
            Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response())
        }
        Caller::ApiKey {
            key_id,
            org_id,
            scopes,
        } => Ok(Json(json!({
            "kind": "api_key",
            "api_key": { "id": key_id, "org_id": org_id, "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>() }
        }))
        .into_response()),
    }
}
