//! The AI usage ledger: one row per gateway call, for cost, quotas and reporting.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_ai_usage"
    }
}

#[derive(DeriveIden)]
enum AiUsage {
    Table,
    Id,
    OrgId,
    UserId,
    Day,
    Task,
    Model,
    Provider,
    ProviderKind,
    Tier,
    InputTokens,
    OutputTokens,
    CachedInputTokens,
    Estimated,
    CostUsd,
    LatencyMs,
    TimeToFirstTokenMs,
    GatewayOverheadUs,
    CacheHit,
    Streamed,
    Outcome,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // No foreign keys: the ledger is written off the request path in batches and must
        // keep its history (spend) even if an organisation is later deleted.
        m.create_table(
            Table::create()
                .table(AiUsage::Table)
                .col(uuid(AiUsage::Id).primary_key())
                .col(uuid(AiUsage::OrgId))
                .col(uuid_null(AiUsage::UserId))
                .col(string_len(AiUsage::Day, 10))
                .col(string_len(AiUsage::Task, 32))
                .col(string_len(AiUsage::Model, 128))
                .col(string_len(AiUsage::Provider, 64))
                .col(string_len(AiUsage::ProviderKind, 32))
                .col(string_len(AiUsage::Tier, 16))
                .col(big_integer(AiUsage::InputTokens))
                .col(big_integer(AiUsage::OutputTokens))
                .col(big_integer(AiUsage::CachedInputTokens))
                .col(boolean(AiUsage::Estimated))
                .col(double(AiUsage::CostUsd))
                .col(double(AiUsage::LatencyMs))
                .col(double_null(AiUsage::TimeToFirstTokenMs))
                .col(big_integer(AiUsage::GatewayOverheadUs))
                .col(boolean(AiUsage::CacheHit))
                .col(boolean(AiUsage::Streamed))
                .col(string_len(AiUsage::Outcome, 32))
                .col(timestamp_with_time_zone(AiUsage::At))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_ai_usage_org_at")
                .table(AiUsage::Table)
                .col(AiUsage::OrgId)
                .col(AiUsage::At)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_ai_usage_org_day")
                .table(AiUsage::Table)
                .col(AiUsage::OrgId)
                .col(AiUsage::Day)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AiUsage::Table).to_owned())
            .await
    }
}
