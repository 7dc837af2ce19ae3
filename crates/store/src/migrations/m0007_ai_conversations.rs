//! The AI assistant's stored state: per-organisation AI settings (budget, prompt storage,
//! safety profile, the month the budget warning was last given), conversations and their
//! messages. Every row carries its `org_id`, so each query filters by tenant directly.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_ai_conversations"
    }
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OrgAiSettings {
    Table,
    OrgId,
    MonthlyBudgetUsd,
    StorePrompts,
    SafetyProfile,
    BudgetWarnedMonth,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AiConversations {
    Table,
    Id,
    OrgId,
    Owner,
    Title,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AiMessages {
    Table,
    Id,
    OrgId,
    ConversationId,
    Seq,
    Role,
    Content,
    Model,
    Provider,
    Offline,
    SafetyAction,
    SafetyRules,
    InputTokens,
    OutputTokens,
    CostUsd,
    CreatedAt,
}

fn org_fk(name: &str, table: impl IntoIden, col: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, col)
        .to(Organisations::Table, Organisations::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OrgAiSettings::Table)
                .col(uuid(OrgAiSettings::OrgId).primary_key())
                // NULL: the deployment's default budget applies.
                .col(double_null(OrgAiSettings::MonthlyBudgetUsd))
                .col(boolean(OrgAiSettings::StorePrompts).default(false))
                .col(string_len(OrgAiSettings::SafetyProfile, 16).default("standard"))
                // `YYYY-MM` of the last `ai.budget.warning`, so it is given once a month.
                .col(string_len_null(OrgAiSettings::BudgetWarnedMonth, 7))
                .col(timestamp_with_time_zone(OrgAiSettings::UpdatedAt))
                .foreign_key(&mut org_fk(
                    "fk_org_ai_settings_org",
                    OrgAiSettings::Table,
                    OrgAiSettings::OrgId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AiConversations::Table)
                .col(uuid(AiConversations::Id).primary_key())
                .col(uuid(AiConversations::OrgId))
                // `user:<uuid>` or `api_key:<id>`: conversations are their owner's.
                .col(string_len(AiConversations::Owner, 80))
                .col(string_len(AiConversations::Title, 200))
                .col(timestamp_with_time_zone(AiConversations::CreatedAt))
                .col(timestamp_with_time_zone(AiConversations::UpdatedAt))
                .foreign_key(&mut org_fk(
                    "fk_ai_conversations_org",
                    AiConversations::Table,
                    AiConversations::OrgId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_ai_conversations_org_owner_updated")
                .table(AiConversations::Table)
                .col(AiConversations::OrgId)
                .col(AiConversations::Owner)
                .col(AiConversations::UpdatedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AiMessages::Table)
                .col(uuid(AiMessages::Id).primary_key())
                .col(uuid(AiMessages::OrgId))
                .col(uuid(AiMessages::ConversationId))
                .col(integer(AiMessages::Seq))
                .col(string_len(AiMessages::Role, 16))
                .col(text(AiMessages::Content))
                .col(string_len_null(AiMessages::Model, 200))
                .col(string_len_null(AiMessages::Provider, 100))
                .col(boolean(AiMessages::Offline).default(false))
                .col(string_len_null(AiMessages::SafetyAction, 16))
                // JSON array of rule ids.
                .col(text_null(AiMessages::SafetyRules))
                .col(big_integer_null(AiMessages::InputTokens))
                .col(big_integer_null(AiMessages::OutputTokens))
                .col(double_null(AiMessages::CostUsd))
                .col(timestamp_with_time_zone(AiMessages::CreatedAt))
                .foreign_key(&mut org_fk(
                    "fk_ai_messages_org",
                    AiMessages::Table,
                    AiMessages::OrgId,
                ))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_ai_messages_conversation")
                        .from(AiMessages::Table, AiMessages::ConversationId)
                        .to(AiConversations::Table, AiConversations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_ai_messages_conversation_seq")
                .table(AiMessages::Table)
                .col(AiMessages::ConversationId)
                .col(AiMessages::Seq)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            AiMessages::Table.into_iden(),
            AiConversations::Table.into_iden(),
            OrgAiSettings::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
