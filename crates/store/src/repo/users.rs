//! User accounts. E-mail addresses are stored lower-cased so lookups are case-insensitive
//! on both engines without collation tricks.

use crate::entities::user;
use crate::error::StoreError;
use assay_core::UserId;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub is_active: bool,
    pub is_platform_admin: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<user::Model> for User {
    fn from(m: user::Model) -> Self {
        Self {
            id: UserId(m.id),
            email: m.email,
            name: m.name,
            is_active: m.is_active,
            is_platform_admin: m.is_platform_admin,
            created_at: m.created_at,
        }
    }
}

/// What it takes to create an account. The password arrives already hashed.
pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: Option<&'a str>,
}

pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub async fn create(conn: &impl ConnectionTrait, new: NewUser<'_>) -> Result<User, StoreError> {
    let now = super::now();
    Ok(user::ActiveModel {
        id: Set(UserId::new().0),
        email: Set(normalise_email(new.email)),
        name: Set(new.name.to_owned()),
        password_hash: Set(new.password_hash.map(str::to_owned)),
        is_active: Set(true),
        is_platform_admin: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        deactivated_at: Set(None),
    }
    .insert(conn)
    .await?
    .into())
}

pub async fn get(conn: &impl ConnectionTrait, id: UserId) -> Result<User, StoreError> {
    user::Entity::find_by_id(id.0)
        .one(conn)
        .await?
        .map(Into::into)
        .ok_or_else(|| StoreError::not_found("user"))
}

/// The account and its password hash, for login only.
pub async fn find_for_login(
    conn: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<(User, Option<String>)>, StoreError> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(normalise_email(email)))
        .one(conn)
        .await?
        .map(|m| {
            let hash = m.password_hash.clone();
            (m.into(), hash)
        }))
}

/// Deactivate an account: it can no longer log in or use its tokens.
pub async fn deactivate(conn: &impl ConnectionTrait, id: UserId) -> Result<User, StoreError> {
    let Some(found) = user::Entity::find_by_id(id.0).one(conn).await? else {
        return Err(StoreError::not_found("user"));
    };
    let now = super::now();
    let mut active: user::ActiveModel = found.into();
    active.is_active = Set(false);
    active.deactivated_at = Set(Some(now));
    active.updated_at = Set(now);
    Ok(active.update(conn).await?.into())
}
