//! Who belongs to which organisation, in which role.

use crate::entities::{membership, organisation, user};
use crate::error::StoreError;
use assay_core::{OrgCtx, OrgId, Role, UserId};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub is_active: bool,
    pub joined_at: chrono::DateTime<chrono::Utc>,
}

pub(crate) fn parse_role(raw: &str) -> Result<Role, StoreError> {
    raw.parse()
        .map_err(|e: assay_core::access::UnknownRole| StoreError::Corrupt(e.to_string()))
}

/// The role `user` holds in `org`, if any. This is the lookup the auth layer does to build
/// an `OrgCtx`, so it is the one membership query that takes no `OrgCtx`.
pub async fn role_of(
    conn: &impl ConnectionTrait,
    org: OrgId,
    user: UserId,
) -> Result<Option<Role>, StoreError> {
    membership::Entity::find_by_id((org.0, user.0))
        .one(conn)
        .await?
        .map(|m| parse_role(&m.role))
        .transpose()
}

/// Members of the caller's organisation.
pub async fn list(conn: &impl ConnectionTrait, ctx: &OrgCtx) -> Result<Vec<Member>, StoreError> {
    let rows = membership::Entity::find()
        .filter(membership::Column::OrgId.eq(ctx.org_id().0))
        .order_by_asc(membership::Column::CreatedAt)
        .all(conn)
        .await?;
    let users = user::Entity::find()
        .filter(user::Column::Id.is_in(rows.iter().map(|m| m.user_id)))
        .all(conn)
        .await?;
    rows.into_iter()
        .filter_map(|m| {
            let u = users.iter().find(|u| u.id == m.user_id)?;
            Some(parse_role(&m.role).map(|role| Member {
                user_id: UserId(u.id),
                email: u.email.clone(),
                name: u.name.clone(),
                role,
                is_active: u.is_active,
                joined_at: m.created_at,
            }))
        })
        .collect()
}

/// Add `user` to the caller's organisation.
pub async fn add(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    user: UserId,
    role: Role,
) -> Result<(), StoreError> {
    let now = super::now();
    membership::ActiveModel {
        org_id: Set(ctx.org_id().0),
        user_id: Set(user.0),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Change a member's role. Refuses to leave the organisation without an owner.
pub async fn set_role(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    user: UserId,
    role: Role,
) -> Result<(), StoreError> {
    let Some(found) = membership::Entity::find_by_id((ctx.org_id().0, user.0))
        .one(conn)
        .await?
    else {
        return Err(StoreError::not_found("member"));
    };
    if parse_role(&found.role)? == Role::Owner && role != Role::Owner {
        ensure_another_owner(conn, ctx).await?;
    }
    let mut active: membership::ActiveModel = found.into();
    active.role = Set(role.as_str().to_owned());
    active.updated_at = Set(super::now());
    active.update(conn).await?;
    Ok(())
}

/// Remove a member. Refuses to remove the last owner.
pub async fn remove(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    user: UserId,
) -> Result<(), StoreError> {
    let Some(found) = membership::Entity::find_by_id((ctx.org_id().0, user.0))
        .one(conn)
        .await?
    else {
        return Err(StoreError::not_found("member"));
    };
    if parse_role(&found.role)? == Role::Owner {
        ensure_another_owner(conn, ctx).await?;
    }
    membership::Entity::delete_by_id((ctx.org_id().0, user.0))
        .exec(conn)
        .await?;
    Ok(())
}

async fn ensure_another_owner(conn: &impl ConnectionTrait, ctx: &OrgCtx) -> Result<(), StoreError> {
    // Touch the organisation row first: on PostgreSQL this takes its row lock, so two
    // concurrent demotions of the last two owners are serialised and the second one sees
    // only one owner left. (SQLite transactions from `Db::write` already hold the write lock.)
    organisation::Entity::update_many()
        .col_expr(
            organisation::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(super::now()),
        )
        .filter(organisation::Column::Id.eq(ctx.org_id().0))
        .exec(conn)
        .await?;
    let owners = membership::Entity::find()
        .filter(membership::Column::OrgId.eq(ctx.org_id().0))
        .filter(membership::Column::Role.eq(Role::Owner.as_str()))
        .count(conn)
        .await?;
    if owners <= 1 {
        return Err(StoreError::Invariant(
            "an organisation must keep at least one owner",
        ));
    }
    Ok(())
}
