//! Monthly AI spend per organisation, kept up to date by every usage-ledger batch (in the
//! same transaction as its rows), so a budget check reads one row instead of summing the
//! month's ledger — which grows with every call and, read once a second per organisation,
//! was the largest periodic stall on a busy node. Backfilled from the existing ledger.
//!
//! Rolling upgrade note: nodes still on the previous release insert ledger rows without
//! updating this table, so until every node runs this release a month's total can trail
//! the ledger by their calls (`ai_usage::org_spend_since` still sums the ledger itself).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_ai_spend_months"
    }
}

#[derive(DeriveIden)]
enum AiSpendMonths {
    Table,
    OrgId,
    /// `YYYY-MM` (UTC), the first seven characters of the ledger's `day`.
    Month,
    CostUsd,
    Calls,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AiSpendMonths::Table)
                .col(uuid(AiSpendMonths::OrgId))
                .col(string_len(AiSpendMonths::Month, 7))
                .col(double(AiSpendMonths::CostUsd))
                .col(big_integer(AiSpendMonths::Calls))
                .primary_key(
                    Index::create()
                        .col(AiSpendMonths::OrgId)
                        .col(AiSpendMonths::Month),
                )
                .to_owned(),
        )
        .await?;
        // The same statement on both engines: `day` is `YYYY-MM-DD` text.
        m.get_connection()
            .execute_unprepared(
                "INSERT INTO ai_spend_months (org_id, month, cost_usd, calls) \
                 SELECT org_id, substr(day, 1, 7), SUM(cost_usd), COUNT(*) \
                 FROM ai_usage GROUP BY org_id, substr(day, 1, 7)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AiSpendMonths::Table).to_owned())
            .await
    }
}
