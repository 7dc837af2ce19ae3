//! An organisation's compliance posture: which frameworks it adopted, the state of each of
//! its controls, and its business profile. The catalogue itself (frameworks, requirements,
//! the control library) is data in `assay_core::catalogue`; only the org's choices and
//! progress are stored here.

use crate::entities::{
    business_profile as profile, org_control as control, org_framework as adopted,
};
use crate::error::StoreError;
use assay_core::{ControlStatus, OrgCtx, UserId};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdoptedFramework {
    pub framework_key: String,
    pub adopted_at: DateTime<Utc>,
    pub adopted_by: Option<UserId>,
}

/// Adopt a framework; false when it already was.
pub async fn adopt(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    framework_key: &str,
) -> Result<bool, StoreError> {
    let n = adopted::Entity::insert(adopted::ActiveModel {
        org_id: Set(ctx.org_id().0),
        framework_key: Set(framework_key.to_owned()),
        adopted_at: Set(super::now()),
        adopted_by: Set(ctx.user_id().map(|u| u.0)),
    })
    .on_conflict(
        OnConflict::columns([adopted::Column::OrgId, adopted::Column::FrameworkKey])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(n == 1)
}

/// Drop a framework; false when it was not adopted. Control states are kept: they belong
/// to the controls, which may serve other frameworks.
pub async fn unadopt(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    framework_key: &str,
) -> Result<bool, StoreError> {
    let res = adopted::Entity::delete_many()
        .filter(adopted::Column::OrgId.eq(ctx.org_id().0))
        .filter(adopted::Column::FrameworkKey.eq(framework_key))
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}

pub async fn adopted(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
) -> Result<Vec<AdoptedFramework>, StoreError> {
    Ok(adopted::Entity::find()
        .filter(adopted::Column::OrgId.eq(ctx.org_id().0))
        .order_by_asc(adopted::Column::AdoptedAt)
        .all(conn)
        .await?
        .into_iter()
        .map(|m| AdoptedFramework {
            framework_key: m.framework_key,
            adopted_at: m.adopted_at,
            adopted_by: m.adopted_by.map(UserId),
        })
        .collect())
}

/// The stored state of one control (controls never touched have no row: not started).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ControlRecord {
    pub control_key: String,
    pub status: ControlStatus,
    pub justification: Option<String>,
    pub owner_id: Option<UserId>,
    pub due_date: Option<NaiveDate>,
    pub notes: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
}

fn record(m: control::Model) -> Result<ControlRecord, StoreError> {
    Ok(ControlRecord {
        status: m
            .status
            .parse()
            .map_err(|e: assay_core::control::UnknownStatus| StoreError::Corrupt(e.to_string()))?,
        control_key: m.control_key,
        justification: m.justification,
        owner_id: m.owner_id.map(UserId),
        due_date: m.due_date,
        notes: m.notes,
        updated_at: m.updated_at,
        updated_by: m.updated_by,
    })
}

/// Every stored control state of the caller's organisation, by key.
pub async fn control_states(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
) -> Result<Vec<ControlRecord>, StoreError> {
    control::Entity::find()
        .filter(control::Column::OrgId.eq(ctx.org_id().0))
        .order_by_asc(control::Column::ControlKey)
        .all(conn)
        .await?
        .into_iter()
        .map(record)
        .collect()
}

pub async fn control_state(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    key: &str,
) -> Result<Option<ControlRecord>, StoreError> {
    control::Entity::find_by_id((ctx.org_id().0, key.to_owned()))
        .one(conn)
        .await?
        .map(record)
        .transpose()
}

/// The full new state of a control (the API merges partial updates into this).
#[derive(Clone, Debug)]
pub struct ControlUpdate {
    pub status: ControlStatus,
    pub justification: Option<String>,
    pub owner_id: Option<UserId>,
    pub due_date: Option<NaiveDate>,
    pub notes: Option<String>,
}

/// Write a control's state; returns the stored record. `by` names the actor for display.
pub async fn set_control(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    key: &str,
    update: &ControlUpdate,
    by: &str,
) -> Result<ControlRecord, StoreError> {
    if update.status == ControlStatus::NotApplicable
        && update
            .justification
            .as_deref()
            .is_none_or(|j| j.trim().is_empty())
    {
        return Err(StoreError::Invariant(
            "a not_applicable control needs a justification",
        ));
    }
    let model = control::ActiveModel {
        org_id: Set(ctx.org_id().0),
        control_key: Set(key.to_owned()),
        status: Set(update.status.as_str().to_owned()),
        justification: Set(update.justification.clone()),
        owner_id: Set(update.owner_id.map(|u| u.0)),
        due_date: Set(update.due_date),
        notes: Set(update.notes.clone()),
        updated_at: Set(super::now()),
        updated_by: Set(Some(by.to_owned())),
    };
    control::Entity::insert(model)
        .on_conflict(
            OnConflict::columns([control::Column::OrgId, control::Column::ControlKey])
                .update_columns([
                    control::Column::Status,
                    control::Column::Justification,
                    control::Column::OwnerId,
                    control::Column::DueDate,
                    control::Column::Notes,
                    control::Column::UpdatedAt,
                    control::Column::UpdatedBy,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    control_state(conn, ctx, key)
        .await?
        .ok_or_else(|| StoreError::Corrupt("control state vanished after writing".into()))
}

/// The stored business profile (JSON), if any.
pub async fn profile(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
) -> Result<Option<(serde_json::Value, DateTime<Utc>)>, StoreError> {
    profile::Entity::find_by_id(ctx.org_id().0)
        .one(conn)
        .await?
        .map(|m| {
            serde_json::from_str(&m.profile)
                .map(|v| (v, m.updated_at))
                .map_err(|e| StoreError::Corrupt(format!("business profile: {e}")))
        })
        .transpose()
}

/// Replace the business profile (validated by the caller against `assay_core::profile`).
pub async fn set_profile(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    value: &serde_json::Value,
) -> Result<(), StoreError> {
    let now = super::now();
    match profile::Entity::find_by_id(ctx.org_id().0)
        .one(conn)
        .await?
    {
        Some(existing) => {
            let mut active: profile::ActiveModel = existing.into();
            active.profile = Set(value.to_string());
            active.updated_at = Set(now);
            active.update(conn).await?;
        }
        None => {
            profile::ActiveModel {
                org_id: Set(ctx.org_id().0),
                profile: Set(value.to_string()),
                updated_at: Set(now),
            }
            .insert(conn)
            .await?;
        }
    }
    Ok(())
}
