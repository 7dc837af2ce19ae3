//! Organisation API keys: stored as SHA-256 hashes, scoped, optionally expiring.

use crate::entities::api_key;
use crate::error::StoreError;
use assay_core::{OrgCtx, OrgId, UserId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, Set,
};

/// An API key as listed (never with its secret or hash).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ApiKey {
    pub id: String,
    pub org_id: OrgId,
    pub name: String,
    /// Scope names, as granted.
    pub scopes: Vec<String>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key record for authentication: with its hash.
#[derive(Clone, Debug)]
pub struct ApiKeyCredential {
    pub key: ApiKey,
    pub key_hash: String,
}

fn from_model(m: api_key::Model) -> ApiKeyCredential {
    ApiKeyCredential {
        key_hash: m.key_hash,
        key: ApiKey {
            id: m.id,
            org_id: OrgId(m.org_id),
            name: m.name,
            scopes: m
                .scopes
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            created_by: m.created_by.map(UserId),
            created_at: m.created_at,
            expires_at: m.expires_at,
            last_used_at: m.last_used_at,
            revoked_at: m.revoked_at,
        },
    }
}

pub struct NewApiKeyRow<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a [&'a str],
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn create(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    new: NewApiKeyRow<'_>,
) -> Result<ApiKey, StoreError> {
    Ok(from_model(
        api_key::ActiveModel {
            id: Set(new.id.to_owned()),
            org_id: Set(ctx.org_id().0),
            name: Set(new.name.to_owned()),
            key_hash: Set(new.key_hash.to_owned()),
            scopes: Set(new.scopes.join(",")),
            created_by: Set(ctx.user_id().map(|u| u.0)),
            created_at: Set(super::now()),
            expires_at: Set(new.expires_at),
            last_used_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(conn)
        .await?,
    )
    .key)
}

pub async fn list(conn: &impl ConnectionTrait, ctx: &OrgCtx) -> Result<Vec<ApiKey>, StoreError> {
    Ok(api_key::Entity::find()
        .filter(api_key::Column::OrgId.eq(ctx.org_id().0))
        .order_by_desc(api_key::Column::CreatedAt)
        .all(conn)
        .await?
        .into_iter()
        .map(|m| from_model(m).key)
        .collect())
}

pub async fn revoke(conn: &impl ConnectionTrait, ctx: &OrgCtx, id: &str) -> Result<(), StoreError> {
    let res = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(super::now()))
        .filter(api_key::Column::Id.eq(id))
        .filter(api_key::Column::OrgId.eq(ctx.org_id().0))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    if res.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::not_found("api key"))
    }
}

/// Look a key up by its public id, for authentication (the secret is checked by the caller
/// against `key_hash` in constant time).
pub async fn find_for_auth(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<ApiKeyCredential>, StoreError> {
    Ok(api_key::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?
        .map(from_model))
}

/// Record use, at most once a minute per key so authentication does not write every time.
pub async fn touch_last_used(conn: &impl ConnectionTrait, id: &str) -> Result<(), StoreError> {
    let now = super::now();
    api_key::Entity::update_many()
        .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(id))
        .filter(
            Condition::any()
                .add(api_key::Column::LastUsedAt.is_null())
                .add(api_key::Column::LastUsedAt.lt(now - chrono::Duration::seconds(60))),
        )
        .exec(conn)
        .await?;
    Ok(())
}
