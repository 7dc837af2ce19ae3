//! Organisations, their members and invitations. Every mutation and its audit
//! event commit in one transaction.

use crate::auth::{Caller, ClientFacts, RequirePermission, perm};
use crate::cache_sync::Change;
use crate::error::ApiError;
use crate::json::{ValidJson, invalid_field};
use crate::state::AppState;
use assay_auth::{NewInvitationToken, invitation_token_hash};
use assay_core::{OrgCtx, Role, UserId};
use assay_store::repo::audit::{self, Actor};
use assay_store::repo::{invitations, memberships, organisations, users};
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
pub struct OrgNameRequest {
    #[garde(length(chars, min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs",
    operation_id = "list_my_orgs",
    tag = "orgs",
    summary = "The organisations the caller belongs to, with the role in each",
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The organisations", body = crate::openapi::MyOrgList),
    )
)]
pub async fn list_mine(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let orgs: Vec<Value> = match &caller {
        Caller::User { user_id, .. } => {
            organisations::list_for_user(state.db().primary(), *user_id)
                .await?
                .into_iter()
                .map(|(org, role)| json!({ "org": org, "role": role }))
                .collect()
        }
        Caller::ApiKey { org_id, .. } => {
            let ctx = OrgCtx::for_api_key(*org_id, Role::Viewer);
            vec![json!({ "org": organisations::get(state.db().primary(), &ctx).await? })]
        }
    };
    Ok(Json(json!({ "items": orgs })))
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs",
    operation_id = "create_org",
    tag = "orgs",
    summary = "Create an organisation; the caller becomes its owner",
    request_body = OrgNameRequest,
    security(("bearer_jwt" = [])),
    responses(
        (status = 201, description = "Created", body = crate::openapi::Organisation),
        (status = 403, description = "API keys cannot create organisations", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    facts: ClientFacts,
    ValidJson(req): ValidJson<OrgNameRequest>,
) -> Result<(StatusCode, Json<organisations::Organisation>), ApiError> {
    let user = caller.user_id()?;
    let org = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let org = organisations::create_with_owner(
                    txn,
                    &req.name,
                    &super::auth::slug_for(&req.name),
                    user,
                )
                .await?;
                audit::append(
                    txn,
                    facts
                        .event(Some(org.id), Actor::User(user), "org.created")
                        .resource("organisation", org.id),
                )
                .await?;
                Ok(org)
            })
        })
        .await?;
    state
        .changed(Change::Membership { org: org.id, user })
        .await;
    Ok((StatusCode::CREATED, Json(org)))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}",
    operation_id = "get_org",
    tag = "orgs",
    summary = "One organisation (needs `org.read`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The organisation", body = crate::openapi::Organisation),
        (status = 403, description = "The caller lacks `org.read`", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation, or not the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    access: RequirePermission<perm::OrgRead>,
) -> Result<Json<organisations::Organisation>, ApiError> {
    Ok(Json(
        organisations::get(state.db().primary(), &access.ctx).await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org_id}",
    operation_id = "rename_org",
    tag = "orgs",
    summary = "Rename the organisation (needs `org.update`)",
    params(crate::openapi::OrgIdParam),
    request_body = OrgNameRequest,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Renamed", body = crate::openapi::Organisation),
        (status = 403, description = "The caller lacks `org.update`", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation, or not the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn rename(
    State(state): State<AppState>,
    access: RequirePermission<perm::OrgUpdate>,
    ValidJson(req): ValidJson<OrgNameRequest>,
) -> Result<Json<organisations::Organisation>, ApiError> {
    let access = access.access;
    let org = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let before = organisations::get(txn, &access.ctx).await?;
                let org = organisations::rename(txn, &access.ctx, &req.name).await?;
                let mut ev = access.event("org.renamed").resource("organisation", org.id);
                ev.details = json!({ "from": before.name, "to": org.name }).into();
                audit::append(txn, ev).await?;
                Ok(org)
            })
        })
        .await?;
    state.changed(Change::Organisation { org: org.id }).await;
    Ok(Json(org))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/members",
    operation_id = "list_members",
    tag = "members",
    summary = "Members and their roles (needs `members.read`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The members", body = crate::openapi::MemberList),
        (status = 403, description = "The caller lacks `members.read`", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation, or not the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn list_members(
    State(state): State<AppState>,
    access: RequirePermission<perm::MembersRead>,
) -> Result<Json<Value>, ApiError> {
    let members = memberships::list(state.db().primary(), &access.ctx).await?;
    Ok(Json(json!({ "items": members })))
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    #[garde(skip)]
    #[schema(value_type = crate::openapi::Role)]
    pub role: Role,
}

/// The target's current role, or 404 when they are not a member of this organisation.
async fn member_role(state: &AppState, ctx: &OrgCtx, user: UserId) -> Result<Role, ApiError> {
    memberships::role_of(state.db().primary(), ctx.org_id(), user)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org_id}/members/{user_id}",
    operation_id = "change_member_role",
    tag = "members",
    summary = "Change a member's role (needs `members.manage` and the right to grant both roles)",
    params(crate::openapi::MemberPath),
    request_body = RoleRequest,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Changed", body = crate::openapi::RoleChanged),
        (status = 403, description = "The caller lacks `members.manage`, or may not grant one of the roles", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation or member, or not the caller's", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The last owner cannot be demoted", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn change_role(
    State(state): State<AppState>,
    access: RequirePermission<perm::MembersManage>,
    Path((_, user_id)): Path<(Uuid, Uuid)>,
    ValidJson(req): ValidJson<RoleRequest>,
) -> Result<Json<Value>, ApiError> {
    let access = access.access;
    let target = UserId(user_id);
    let current = member_role(&state, &access.ctx, target).await?;
    if !access.ctx.role().can_change_role(current, req.role) {
        let message = format!(
            "a {} cannot change a {} into a {}",
            access.ctx.role(),
            current,
            req.role
        );
        let details =
            json!({ "rule": "grant_role", "target": target, "from": current, "to": req.role });
        return Err(access.deny(&state, details, message).await);
    }
    let ctx = access.ctx;
    state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                memberships::set_role(txn, &ctx, target, req.role).await?;
                let mut ev = access.event("member.role_changed").resource("user", target);
                ev.details = json!({ "from": current, "to": req.role }).into();
                audit::append(txn, ev).await?;
                Ok(())
            })
        })
        .await?;
    state
        .changed(Change::Membership {
            org: ctx.org_id(),
            user: target,
        })
        .await;
    Ok(Json(json!({ "user_id": target, "role": req.role })))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/members/{user_id}",
    operation_id = "remove_member",
    tag = "members",
    summary = "Remove a member; their sessions lose access to the organisation (needs `members.manage`)",
    params(crate::openapi::MemberPath),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "The caller lacks `members.manage`, or may not manage the member's role", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation or member, or not the caller's", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The last owner cannot be removed", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn remove_member(
    State(state): State<AppState>,
    access: RequirePermission<perm::MembersManage>,
    Path((_, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let access = access.access;
    let target = UserId(user_id);
    let current = member_role(&state, &access.ctx, target).await?;
    if !access.ctx.role().can_manage_member(current) {
        let message = format!("a {} cannot remove a {}", access.ctx.role(), current);
        let details = json!({ "rule": "remove_member", "target": target, "role": current });
        return Err(access.deny(&state, details, message).await);
    }
    let ctx = access.ctx;
    state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                memberships::remove(txn, &ctx, target).await?;
                let mut ev = access.event("member.removed").resource("user", target);
                ev.details = json!({ "role": current }).into();
                audit::append(txn, ev).await?;
                Ok(())
            })
        })
        .await?;
    state
        .changed(Change::Membership {
            org: ctx.org_id(),
            user: target,
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    #[garde(email, length(max = 320))]
    #[schema(format = Email, max_length = 320)]
    pub email: String,
    #[garde(skip)]
    #[schema(value_type = crate::openapi::Role)]
    pub role: Role,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/invitations",
    operation_id = "create_invitation",
    tag = "invitations",
    summary = "Invite someone by e-mail with a role; the one-time token is shown only in this response (needs `invitations.manage`)",
    params(crate::openapi::OrgIdParam),
    request_body = InviteRequest,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "The invitation and its one-time token", body = crate::openapi::InvitationCreated),
        (status = 403, description = "The caller lacks `invitations.manage`, or may not grant the role", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation, or not the caller's", body = crate::openapi::ErrorResponse),
        (status = 409, description = "A pending invitation for this e-mail exists", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn invite(
    State(state): State<AppState>,
    access: RequirePermission<perm::InvitationsManage>,
    ValidJson(req): ValidJson<InviteRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let access = access.access;
    if !access.ctx.role().can_grant(req.role) {
        let message = format!("a {} cannot invite a {}", access.ctx.role(), req.role);
        let details = json!({ "rule": "grant_role", "to": req.role });
        return Err(access.deny(&state, details, message).await);
    }
    let token = NewInvitationToken::generate();
    let expires = chrono::Utc::now()
        + chrono::Duration::from_std(state.identity().invitation_ttl).unwrap_or_default();
    let hash = token.token_hash.clone();
    let inv = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let inv =
                    invitations::create(txn, &access.ctx, &req.email, req.role, &hash, expires)
                        .await?;
                let mut ev = access
                    .event("invitation.created")
                    .resource("invitation", inv.id);
                ev.details = json!({ "email": inv.email, "role": inv.role }).into();
                audit::append(txn, ev).await?;
                Ok(inv)
            })
        })
        .await?;
    // The token is shown once, here; only its hash is stored.
    Ok((
        StatusCode::CREATED,
        Json(json!({ "invitation": inv, "token": token.token.expose_secret() })),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/invitations",
    operation_id = "list_invitations",
    tag = "invitations",
    summary = "The organisation's invitations (needs `invitations.manage`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The invitations", body = crate::openapi::InvitationList),
        (status = 403, description = "The caller lacks `invitations.manage`", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation, or not the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn list_invitations(
    State(state): State<AppState>,
    access: RequirePermission<perm::InvitationsManage>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "items": invitations::list(state.db().primary(), &access.ctx).await? }),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/invitations/{invitation_id}",
    operation_id = "revoke_invitation",
    tag = "invitations",
    summary = "Revoke a pending invitation (needs `invitations.manage`)",
    params(crate::openapi::InvitationPath),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "The caller lacks `invitations.manage`", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such organisation or invitation, or not the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    access: RequirePermission<perm::InvitationsManage>,
    Path((_, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let access = access.access;
    state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                invitations::revoke(txn, &access.ctx, id).await?;
                audit::append(
                    txn,
                    access
                        .event("invitation.revoked")
                        .resource("invitation", id),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Make `user` a member as `inv` says and use the invitation up, with the audit event, in
/// the caller's transaction (accepting as an existing user, or registering with it).
pub(crate) async fn join_by_invitation(
    txn: &impl assay_store::ConnectionTrait,
    inv: &invitations::Invitation,
    user: UserId,
    facts: &crate::auth::ClientFacts,
) -> Result<OrgCtx, assay_store::StoreError> {
    let ctx = OrgCtx::for_verified_member(inv.org_id, user, inv.role);
    memberships::add(txn, &ctx, user, inv.role).await?;
    if !invitations::mark_accepted(txn, inv.id, user).await? {
        return Err(assay_store::StoreError::Invariant(
            "the invitation was used or revoked meanwhile",
        ));
    }
    let mut ev = facts
        .event(Some(inv.org_id), Actor::User(user), "member.joined")
        .resource("user", user);
    ev.details = json!({ "role": inv.role, "invitation_id": inv.id }).into();
    audit::append(txn, ev).await?;
    Ok(ctx)
}

/// An existing user accepts an invitation sent to their e-mail address.
#[utoipa::path(
    post,
    path = "/api/v1/invitations/{token}/accept",
    operation_id = "accept_invitation",
    tag = "invitations",
    summary = "Join the inviting organisation as the signed-in person the invitation was sent to",
    params(crate::openapi::InvitationTokenPath),
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "Joined", body = crate::openapi::InvitationAccepted),
        (status = 403, description = "API keys cannot accept invitations", body = crate::openapi::ErrorResponse),
        (status = 404, description = "Unknown, used, revoked or expired invitation", body = crate::openapi::ErrorResponse),
        (status = 409, description = "Already a member, or the invitation was used meanwhile", body = crate::openapi::ErrorResponse),
        (status = 422, description = "The invitation was sent to another e-mail address", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn accept_invitation(
    State(state): State<AppState>,
    caller: Caller,
    facts: ClientFacts,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user_id = caller.user_id()?;
    let not_valid = || ApiError::not_found("invitation");
    let hash = invitation_token_hash(&token).ok_or_else(not_valid)?;
    let inv = invitations::find_by_token_hash(state.db().primary(), &hash)
        .await?
        .filter(|i| i.is_pending(chrono::Utc::now()))
        .ok_or_else(not_valid)?;
    let user = users::get(state.db().primary(), user_id).await?;
    if user.email != inv.email {
        return Err(invalid_field(
            "token",
            "this invitation was sent to another e-mail address",
        ));
    }
    let (org_id, role) = (inv.org_id, inv.role);
    state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                join_by_invitation(txn, &inv, user_id, &facts).await?;
                Ok(())
            })
        })
        .await?;
    state
        .changed(Change::Membership {
            org: org_id,
            user: user_id,
        })
        .await;
    Ok(Json(json!({ "org_id": org_id, "role": role })))
}
