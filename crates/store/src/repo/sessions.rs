//! Login sessions and their rotating refresh tokens.
//!
//! A session is one refresh-token family. Each refresh hands out a new token and marks the
//! presented one used; presenting a used token again means it was stolen (or replayed), so
//! the whole family is revoked. Tokens are stored only as SHA-256 hashes.

use crate::entities::{auth_session as session, refresh_token as token};
use crate::error::StoreError;
use assay_core::UserId;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

/// A refresh token to store: its hash and lifetime (the clear token never reaches the store).
#[derive(Clone, Debug)]
pub struct TokenRow {
    pub token_hash: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Where a session was opened from, for the user's session list and the audit log.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Open a session for `user` with its first refresh token; returns the session id.
pub async fn open(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    user: UserId,
    first: &TokenRow,
    client: &ClientInfo,
) -> Result<Uuid, StoreError> {
    let now = super::now();
    session::ActiveModel {
        id: Set(session_id),
        user_id: Set(user.0),
        created_at: Set(now),
        last_used_at: Set(now),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        ip: Set(client.ip.clone()),
        user_agent: Set(client.user_agent.clone()),
    }
    .insert(conn)
    .await?;
    insert_token(conn, session_id, None, first).await?;
    Ok(session_id)
}

async fn insert_token(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    parent: Option<&str>,
    row: &TokenRow,
) -> Result<(), StoreError> {
    token::ActiveModel {
        token_hash: Set(row.token_hash.clone()),
        session_id: Set(session_id),
        parent_hash: Set(parent.map(str::to_owned)),
        issued_at: Set(row.issued_at),
        expires_at: Set(row.expires_at),
        used_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// What presenting a refresh token led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Valid: it is now used and `next` replaces it.
    Rotated { session_id: Uuid, user: UserId },
    /// It had already been used: the session is now revoked.
    ReuseDetected { session_id: Uuid, user: UserId },
    /// Unknown, expired, or its session was revoked.
    Invalid,
}

/// Rotate the token whose hash is `presented_hash`, storing `next` as its successor.
/// Run inside `Db::write`, so the check and the rotation are one step.
pub async fn rotate(
    conn: &impl ConnectionTrait,
    presented_hash: &str,
    next: &TokenRow,
) -> Result<Rotation, StoreError> {
    let Some(found) = token::Entity::find_by_id(presented_hash.to_owned())
        .one(conn)
        .await?
    else {
        return Ok(Rotation::Invalid);
    };
    let Some(sess) = session::Entity::find_by_id(found.session_id)
        .one(conn)
        .await?
    else {
        return Ok(Rotation::Invalid);
    };
    let user = UserId(sess.user_id);
    if sess.revoked_at.is_some() {
        return Ok(Rotation::Invalid);
    }
    let now = super::now();
    if found.used_at.is_some() {
        revoke(conn, sess.id, "refresh_reuse").await?;
        return Ok(Rotation::ReuseDetected {
            session_id: sess.id,
            user,
        });
    }
    if found.expires_at <= now {
        return Ok(Rotation::Invalid);
    }
    // Conditional update: of two concurrent refreshes with the same token, one wins and
    // the other is treated as reuse.
    let marked = token::Entity::update_many()
        .col_expr(token::Column::UsedAt, Expr::value(now))
        .filter(token::Column::TokenHash.eq(presented_hash))
        .filter(token::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    if marked.rows_affected != 1 {
        revoke(conn, sess.id, "refresh_reuse").await?;
        return Ok(Rotation::ReuseDetected {
            session_id: sess.id,
            user,
        });
    }
    insert_token(conn, sess.id, Some(presented_hash), next).await?;
    session::Entity::update_many()
        .col_expr(session::Column::LastUsedAt, Expr::value(now))
        .filter(session::Column::Id.eq(sess.id))
        .exec(conn)
        .await?;
    Ok(Rotation::Rotated {
        session_id: sess.id,
        user,
    })
}

/// Revoke one session (logout). Returns false when it was already revoked or unknown.
pub async fn revoke(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    reason: &str,
) -> Result<bool, StoreError> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(super::now()))
        .col_expr(session::Column::RevokedReason, Expr::value(reason))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Revoke one of `user`'s sessions; a session of someone else is left alone.
pub async fn revoke_own(
    conn: &impl ConnectionTrait,
    user: UserId,
    session_id: Uuid,
    reason: &str,
) -> Result<bool, StoreError> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(super::now()))
        .col_expr(session::Column::RevokedReason, Expr::value(reason))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::UserId.eq(user.0))
        .filter(session::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Revoke every open session of `user` (logout everywhere, deactivation); returns how many.
pub async fn revoke_all(
    conn: &impl ConnectionTrait,
    user: UserId,
    reason: &str,
) -> Result<u64, StoreError> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(super::now()))
        .col_expr(session::Column::RevokedReason, Expr::value(reason))
        .filter(session::Column::UserId.eq(user.0))
        .filter(session::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(res.rows_affected)
}

/// Whether a session is still open (access tokens carry their session id).
pub async fn is_open(conn: &impl ConnectionTrait, session_id: Uuid) -> Result<bool, StoreError> {
    Ok(session::Entity::find_by_id(session_id)
        .one(conn)
        .await?
        .is_some_and(|s| s.revoked_at.is_none()))
}
