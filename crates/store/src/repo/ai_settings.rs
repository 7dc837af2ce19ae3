//! An organisation's AI settings: its monthly budget (or the deployment default), whether
//! prompts may be kept in the audit log, its safety profile, whether the caller's personal
//! data is put back into answers, and the month its budget warning was last given. An organisation without a row has the defaults.

use crate::entities::org_ai_settings as settings;
use crate::error::StoreError;
use assay_core::OrgCtx;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, Set};

/// The stored settings; `None` budget means the deployment default applies.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AiSettings {
    pub monthly_budget_usd: Option<f64>,
    pub store_prompts: bool,
    /// `permissive`, `standard` or `strict` (checked by the API, which knows the profiles).
    pub safety_profile: String,
    /// Put the caller's own personal data back where the answer repeats its placeholder.
    pub restore_pii: bool,
    pub budget_warned_month: Option<String>,
}

impl Default for AiSettings {
    fn default() -> Self {
        Self {
            monthly_budget_usd: None,
            store_prompts: false,
            safety_profile: "standard".into(),
            restore_pii: false,
            budget_warned_month: None,
        }
    }
}

fn from_model(m: settings::Model) -> AiSettings {
    AiSettings {
        monthly_budget_usd: m.monthly_budget_usd,
        store_prompts: m.store_prompts,
        safety_profile: m.safety_profile,
        restore_pii: m.restore_pii,
        budget_warned_month: m.budget_warned_month,
    }
}

/// The organisation's settings, or the defaults when it never set any.
pub async fn get(conn: &impl ConnectionTrait, ctx: &OrgCtx) -> Result<AiSettings, StoreError> {
    Ok(settings::Entity::find_by_id(ctx.org_id().0)
        .one(conn)
        .await?
        .map(from_model)
        .unwrap_or_default())
}

/// Store budget, prompt storage, safety profile and PII restoration (the warning month is
/// kept).
pub async fn put(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    new: &AiSettings,
) -> Result<AiSettings, StoreError> {
    settings::Entity::insert(settings::ActiveModel {
        org_id: Set(ctx.org_id().0),
        monthly_budget_usd: Set(new.monthly_budget_usd),
        store_prompts: Set(new.store_prompts),
        safety_profile: Set(new.safety_profile.clone()),
        restore_pii: Set(new.restore_pii),
        budget_warned_month: Set(None),
        updated_at: Set(super::now()),
    })
    .on_conflict(
        OnConflict::column(settings::Column::OrgId)
            .update_columns([
                settings::Column::MonthlyBudgetUsd,
                settings::Column::StorePrompts,
                settings::Column::SafetyProfile,
                settings::Column::RestorePii,
                settings::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    get(conn, ctx).await
}

/// Record that the budget warning for `month` (`YYYY-MM`) is being given. True only for the
/// first caller of the month, so the warning is audited once even when many requests cross
/// the threshold at the same time (the conditional update decides, not a read).
pub async fn claim_budget_warning(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    month: &str,
) -> Result<bool, StoreError> {
    settings::Entity::insert(settings::ActiveModel {
        org_id: Set(ctx.org_id().0),
        monthly_budget_usd: Set(None),
        store_prompts: Set(false),
        safety_profile: Set("standard".into()),
        restore_pii: Set(false),
        budget_warned_month: Set(None),
        updated_at: Set(super::now()),
    })
    .on_conflict(
        OnConflict::column(settings::Column::OrgId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    let res = settings::Entity::update_many()
        .col_expr(settings::Column::BudgetWarnedMonth, Expr::value(month))
        .filter(settings::Column::OrgId.eq(ctx.org_id().0))
        .filter(
            Condition::any()
                .add(settings::Column::BudgetWarnedMonth.is_null())
                .add(settings::Column::BudgetWarnedMonth.ne(month)),
        )
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}
