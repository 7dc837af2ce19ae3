//! Organisations (tenants).

use crate::entities::{membership, organisation};
use crate::error::StoreError;
use assay_core::{OrgCtx, OrgId, Role, UserId};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Organisation {
    pub id: OrgId,
    pub name: String,
    pub slug: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<organisation::Model> for Organisation {
    fn from(m: organisation::Model) -> Self {
        Self {
            id: OrgId(m.id),
            name: m.name,
            slug: m.slug,
            created_at: m.created_at,
        }
    }
}

/// Create an organisation with `owner` as its first owner. Call inside `Db::write` so the
/// organisation never exists without an owner.
pub async fn create_with_owner(
    conn: &impl ConnectionTrait,
    name: &str,
    slug: &str,
    owner: UserId,
) -> Result<Organisation, StoreError> {
    let now = super::now();
    let id = OrgId::new();
    let org = organisation::ActiveModel {
        id: Set(id.0),
        name: Set(name.to_owned()),
        slug: Set(slug.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?;
    membership::ActiveModel {
        org_id: Set(id.0),
        user_id: Set(owner.0),
        role: Set(Role::Owner.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(org.into())
}

/// The organisation the caller is acting in.
pub async fn get(conn: &impl ConnectionTrait, ctx: &OrgCtx) -> Result<Organisation, StoreError> {
    organisation::Entity::find_by_id(ctx.org_id().0)
        .one(conn)
        .await?
        .map(Into::into)
        .ok_or_else(|| StoreError::not_found("organisation"))
}

/// Rename the caller's organisation.
pub async fn rename(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    name: &str,
) -> Result<Organisation, StoreError> {
    let Some(found) = organisation::Entity::find_by_id(ctx.org_id().0)
        .one(conn)
        .await?
    else {
        return Err(StoreError::not_found("organisation"));
    };
    let mut active: organisation::ActiveModel = found.into();
    active.name = Set(name.to_owned());
    active.updated_at = Set(super::now());
    Ok(active.update(conn).await?.into())
}

/// Organisations `user` belongs to, with the role held in each, oldest membership first.
/// One query (memberships joined to organisations): `/me` and the auth layer call it often.
pub async fn list_for_user(
    conn: &impl ConnectionTrait,
    user: UserId,
) -> Result<Vec<(Organisation, Role)>, StoreError> {
    membership::Entity::find()
        .filter(membership::Column::UserId.eq(user.0))
        .order_by_asc(membership::Column::CreatedAt)
        .limit(1000)
        .find_also_related(organisation::Entity)
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|(m, org)| {
            let org = org?;
            Some(super::memberships::parse_role(&m.role).map(|role| (org.into(), role)))
        })
        .collect()
}
