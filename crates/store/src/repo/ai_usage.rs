//! The AI usage ledger: written in batches by the gateway's usage writer, read for
//! per-org spend (budgets) and per day / model / user reports.

use crate::entities::ai_usage as usage;
use crate::error::StoreError;
use assay_core::{OrgCtx, OrgId, UserId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// One gateway call to record. (The store does not depend on the AI crate; the gateway's
/// store-backed sink maps its records into this.)
#[derive(Clone, Debug)]
pub struct NewAiUsage {
    pub id: Uuid,
    pub org_id: OrgId,
    pub user_id: Option<UserId>,
    pub task: String,
    pub model: String,
    pub provider: String,
    pub provider_kind: String,
    pub tier: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub estimated: bool,
    pub cost_usd: f64,
    pub latency_ms: f64,
    pub time_to_first_token_ms: Option<f64>,
    pub gateway_overhead_us: u64,
    pub cache_hit: bool,
    pub streamed: bool,
    pub outcome: String,
    pub at: DateTime<Utc>,
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Rows per INSERT (and ids per lookup): a bookkeeping batch holds up to 2,048 records of 21
/// columns, more bound values than SQLite takes in one statement (32,766) — one INSERT for
/// the whole batch failed, and lost it, above ~1,560 records. 256 rows are 5,376 values.
const INSERT_CHUNK: usize = 256;

/// Insert a batch (a statement per `INSERT_CHUNK` rows, one per organisation and month
/// for the monthly totals); run it in a transaction so rows and totals agree. Re-inserting
/// a record already stored (same id: a retried batch) is ignored and not added to the
/// totals, so a retry never double-counts spend. Returns how many records were new.
pub async fn insert_batch(
    conn: &impl ConnectionTrait,
    records: &[NewAiUsage],
) -> Result<u64, StoreError> {
    if records.is_empty() {
        return Ok(0);
    }
    let mut stored: HashSet<Uuid> = HashSet::new();
    for chunk in records.chunks(INSERT_CHUNK) {
        stored.extend(
            usage::Entity::find()
                .select_only()
                .column(usage::Column::Id)
                .filter(usage::Column::Id.is_in(chunk.iter().map(|r| r.id)))
                .into_tuple::<Uuid>()
                .all(conn)
                .await?,
        );
    }
    let mut seen = HashSet::with_capacity(records.len());
    let new: Vec<&NewAiUsage> = records
        .iter()
        .filter(|r| !stored.contains(&r.id) && seen.insert(r.id))
        .collect();
    if new.is_empty() {
        return Ok(0);
    }
    let row = |r: &&NewAiUsage| usage::ActiveModel {
        id: Set(r.id),
        org_id: Set(r.org_id.0),
        user_id: Set(r.user_id.map(|u| u.0)),
        day: Set(r.at.format("%Y-%m-%d").to_string()),
        task: Set(r.task.clone()),
        model: Set(r.model.clone()),
        provider: Set(r.provider.clone()),
        provider_kind: Set(r.provider_kind.clone()),
        tier: Set(r.tier.clone()),
        input_tokens: Set(i64_of(r.input_tokens)),
        output_tokens: Set(i64_of(r.output_tokens)),
        cached_input_tokens: Set(i64_of(r.cached_input_tokens)),
        estimated: Set(r.estimated),
        cost_usd: Set(r.cost_usd),
        latency_ms: Set(r.latency_ms),
        time_to_first_token_ms: Set(r.time_to_first_token_ms),
        gateway_overhead_us: Set(i64_of(r.gateway_overhead_us)),
        cache_hit: Set(r.cache_hit),
        streamed: Set(r.streamed),
        outcome: Set(r.outcome.clone()),
        at: Set(r.at),
    };
    let mut res = 0;
    for chunk in new.chunks(INSERT_CHUNK) {
        res += usage::Entity::insert_many(chunk.iter().map(row))
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(usage::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    add_to_months(conn, &new).await?;
    Ok(res)
}

/// `YYYY-MM` (UTC) of a ledger instant: the key of `ai_spend_months`.
fn month_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m").to_string()
}

#[derive(sea_orm::DeriveIden)]
enum AiSpendMonths {
    Table,
    OrgId,
    Month,
    CostUsd,
    Calls,
}

/// Add newly stored records to their organisations' monthly totals.
async fn add_to_months(conn: &impl ConnectionTrait, new: &[&NewAiUsage]) -> Result<(), StoreError> {
    let mut sums: BTreeMap<(Uuid, String), (f64, i64)> = BTreeMap::new();
    for r in new {
        let s = sums.entry((r.org_id.0, month_of(r.at))).or_default();
        s.0 += r.cost_usd;
        s.1 += 1;
    }
    let excluded = |c: AiSpendMonths| Expr::col((Alias::new("excluded"), c));
    let mut insert = Query::insert();
    insert
        .into_table(AiSpendMonths::Table)
        .columns([
            AiSpendMonths::OrgId,
            AiSpendMonths::Month,
            AiSpendMonths::CostUsd,
            AiSpendMonths::Calls,
        ])
        .on_conflict(
            OnConflict::columns([AiSpendMonths::OrgId, AiSpendMonths::Month])
                .value(
                    AiSpendMonths::CostUsd,
                    Expr::col((AiSpendMonths::Table, AiSpendMonths::CostUsd))
                        .add(excluded(AiSpendMonths::CostUsd)),
                )
                .value(
                    AiSpendMonths::Calls,
                    Expr::col((AiSpendMonths::Table, AiSpendMonths::Calls))
                        .add(excluded(AiSpendMonths::Calls)),
                )
                .to_owned(),
        );
    for ((org, month), (cost, calls)) in sums {
        insert.values_panic([org.into(), month.into(), cost.into(), calls.into()]);
    }
    conn.execute(&insert).await?;
    Ok(())
}

/// What an organisation spent on AI in the UTC month holding `at`, in USD: one row of the
/// monthly totals the ledger batches keep (see `insert_batch`), however many calls.
pub async fn org_spend_in_month(
    conn: &impl ConnectionTrait,
    org: OrgId,
    at: DateTime<Utc>,
) -> Result<f64, StoreError> {
    let mut q = Query::select();
    q.column(AiSpendMonths::CostUsd)
        .from(AiSpendMonths::Table)
        .and_where(Expr::col(AiSpendMonths::OrgId).eq(org.0))
        .and_where(Expr::col(AiSpendMonths::Month).eq(month_of(at)));
    let row = conn.query_one(&q).await?;
    Ok(match row {
        Some(r) => r.try_get_by_index::<f64>(0)?,
        None => 0.0,
    })
}

/// What an organisation spent on AI since `since` (e.g. the start of the month), in USD.
pub async fn org_spend_since(
    conn: &impl ConnectionTrait,
    org: OrgId,
    since: DateTime<Utc>,
) -> Result<f64, StoreError> {
    #[derive(FromQueryResult)]
    struct Sum {
        total: Option<f64>,
    }
    let row = usage::Entity::find()
        .select_only()
        .column_as(Expr::col(usage::Column::CostUsd).sum(), "total")
        .filter(usage::Column::OrgId.eq(org.0))
        .filter(usage::Column::At.gte(since))
        .into_model::<Sum>()
        .one(conn)
        .await?;
    Ok(row.and_then(|r| r.total).unwrap_or(0.0))
}

/// `CAST(SUM(x) AS BIGINT)`: PostgreSQL sums BIGINT into NUMERIC; the cast gives both
/// engines the same integer type.
fn bigint_sum(e: Expr) -> Expr {
    e.sum().cast_as("BIGINT")
}

/// Totals for one (day, model, user) group.
#[derive(Clone, Debug, PartialEq, serde::Serialize, FromQueryResult)]
pub struct UsageTotals {
    pub day: String,
    pub model: String,
    pub user_id: Option<Uuid>,
    pub requests: i64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub cache_hits: Option<i64>,
}

/// The caller's organisation's usage per day, model and user between two days (inclusive,
/// `YYYY-MM-DD`), newest day first.
pub async fn totals(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    from_day: &str,
    to_day: &str,
) -> Result<Vec<UsageTotals>, StoreError> {
    let cache_hit_as_int = Expr::case(usage::Column::CacheHit.eq(true), 1).finally(0);
    Ok(usage::Entity::find()
        .select_only()
        .column(usage::Column::Day)
        .column(usage::Column::Model)
        .column(usage::Column::UserId)
        .column_as(Expr::col(usage::Column::Id).count(), "requests")
        .column_as(
            bigint_sum(Expr::col(usage::Column::InputTokens)),
            "input_tokens",
        )
        .column_as(
            bigint_sum(Expr::col(usage::Column::OutputTokens)),
            "output_tokens",
        )
        .column_as(
            bigint_sum(Expr::col(usage::Column::CachedInputTokens)),
            "cached_input_tokens",
        )
        .column_as(Expr::col(usage::Column::CostUsd).sum(), "cost_usd")
        .column_as(bigint_sum(Expr::expr(cache_hit_as_int)), "cache_hits")
        .filter(usage::Column::OrgId.eq(ctx.org_id().0))
        .filter(usage::Column::Day.gte(from_day))
        .filter(usage::Column::Day.lte(to_day))
        .group_by(usage::Column::Day)
        .group_by(usage::Column::Model)
        .group_by(usage::Column::UserId)
        .order_by_desc(usage::Column::Day)
        .order_by_asc(usage::Column::Model)
        .into_model::<UsageTotals>()
        .all(conn)
        .await?)
}
