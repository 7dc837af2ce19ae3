//! Consecutive failed logins per account (by e-mail, also for e-mails with no account, so
//! throttling does not reveal which addresses exist).

use crate::entities::login_failure as lf;
use crate::error::StoreError;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

/// Failures so far and when the last one happened.
pub async fn get(
    conn: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<(u32, DateTime<Utc>)>, StoreError> {
    Ok(lf::Entity::find_by_id(super::users::normalise_email(email))
        .one(conn)
        .await?
        .map(|m| (u32::try_from(m.failures).unwrap_or(0), m.last_failure_at)))
}

/// Count one more failure; returns the new count.
pub async fn record_failure(conn: &impl ConnectionTrait, email: &str) -> Result<u32, StoreError> {
    let email = super::users::normalise_email(email);
    let now = super::now();
    lf::Entity::insert(lf::ActiveModel {
        email: Set(email.clone()),
        failures: Set(0),
        last_failure_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(lf::Column::Email)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    lf::Entity::update_many()
        .col_expr(lf::Column::Failures, Expr::col(lf::Column::Failures).add(1))
        .col_expr(lf::Column::LastFailureAt, Expr::value(now))
        .filter(lf::Column::Email.eq(&email))
        .exec(conn)
        .await?;
    Ok(get(conn, &email).await?.map_or(1, |(n, _)| n))
}

/// Forget failures after a successful login.
pub async fn clear(conn: &impl ConnectionTrait, email: &str) -> Result<(), StoreError> {
    lf::Entity::delete_by_id(super::users::normalise_email(email))
        .exec(conn)
        .await?;
    Ok(())
}
