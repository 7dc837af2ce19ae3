//! Invitations to join an organisation: a one-time token (stored hashed) for an e-mail
//! address and a role.

use crate::entities::invitation;
use crate::error::StoreError;
use assay_core::{OrgCtx, OrgId, Role, UserId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Invitation {
    pub id: Uuid,
    pub org_id: OrgId,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Invitation {
    /// Still usable: not accepted, not revoked, not expired.
    pub fn is_pending(&self, now: DateTime<Utc>) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

fn from_model(m: invitation::Model) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: m.id,
        org_id: OrgId(m.org_id),
        email: m.email,
        role: super::memberships::parse_role(&m.role)?,
        invited_by: m.invited_by.map(UserId),
        created_at: m.created_at,
        expires_at: m.expires_at,
        accepted_at: m.accepted_at,
        revoked_at: m.revoked_at,
    })
}

pub async fn create(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    email: &str,
    role: Role,
    token_hash: &str,
    expires_at: DateTime<Utc>,
) -> Result<Invitation, StoreError> {
    from_model(
        invitation::ActiveModel {
            id: Set(Uuid::now_v7()),
            org_id: Set(ctx.org_id().0),
            email: Set(super::users::normalise_email(email)),
            role: Set(role.as_str().to_owned()),
            token_hash: Set(token_hash.to_owned()),
            invited_by: Set(ctx.user_id().map(|u| u.0)),
            created_at: Set(super::now()),
            expires_at: Set(expires_at),
            accepted_at: Set(None),
            accepted_by: Set(None),
            revoked_at: Set(None),
        }
        .insert(conn)
        .await?,
    )
}

/// The caller's organisation's invitations, newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
) -> Result<Vec<Invitation>, StoreError> {
    invitation::Entity::find()
        .filter(invitation::Column::OrgId.eq(ctx.org_id().0))
        .order_by_desc(invitation::Column::CreatedAt)
        .all(conn)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

/// Revoke a pending invitation of the caller's organisation.
pub async fn revoke(conn: &impl ConnectionTrait, ctx: &OrgCtx, id: Uuid) -> Result<(), StoreError> {
    let res = invitation::Entity::update_many()
        .col_expr(invitation::Column::RevokedAt, Expr::value(super::now()))
        .filter(invitation::Column::Id.eq(id))
        .filter(invitation::Column::OrgId.eq(ctx.org_id().0))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    if res.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::not_found("invitation"))
    }
}

/// The invitation a presented token belongs to (any organisation: the token is the proof).
pub async fn find_by_token_hash(
    conn: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<Invitation>, StoreError> {
    invitation::Entity::find()
        .filter(invitation::Column::TokenHash.eq(token_hash))
        .one(conn)
        .await?
        .map(from_model)
        .transpose()
}

/// Mark an invitation used, once: false when it was already used or revoked meanwhile.
pub async fn mark_accepted(
    conn: &impl ConnectionTrait,
    id: Uuid,
    by: UserId,
) -> Result<bool, StoreError> {
    let res = invitation::Entity::update_many()
        .col_expr(invitation::Column::AcceptedAt, Expr::value(super::now()))
        .col_expr(invitation::Column::AcceptedBy, Expr::value(by.0))
        .filter(invitation::Column::Id.eq(id))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}
