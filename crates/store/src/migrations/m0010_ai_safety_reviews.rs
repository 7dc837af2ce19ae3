//! AI safety reviews: one row each time the safety policy *escalated* an AI call (allowed
//! it, redacted as usual, and flagged it for a person — self-harm at every profile,
//! injection-like answers under `standard`, ...). An AI admin lists the open ones and
//! resolves each with a note. The matched text is never kept: the rule ids, who, when,
//! which call (request id) and what it was about (a conversation) are what a reviewer needs
//! to follow up, and the audit log holds the prompt where the organisation keeps prompts.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_ai_safety_reviews"
    }
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AiSafetyReviews {
    Table,
    Id,
    OrgId,
    ActorType,
    ActorId,
    Task,
    Direction,
    Rules,
    ResourceType,
    ResourceId,
    RequestId,
    Status,
    ResolverType,
    ResolverId,
    ResolvedAt,
    Resolution,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AiSafetyReviews::Table)
                .col(uuid(AiSafetyReviews::Id).primary_key())
                .col(uuid(AiSafetyReviews::OrgId))
                // `user` or `api_key`, and its id (as in the audit log).
                .col(string_len(AiSafetyReviews::ActorType, 16))
                .col(string_len_null(AiSafetyReviews::ActorId, 64))
                .col(string_len(AiSafetyReviews::Task, 32))
                // `input` (the caller's prompt) or `output` (the model's answer).
                .col(string_len(AiSafetyReviews::Direction, 8))
                // A JSON array of the escalating rule ids.
                .col(text(AiSafetyReviews::Rules))
                .col(string_len_null(AiSafetyReviews::ResourceType, 64))
                .col(string_len_null(AiSafetyReviews::ResourceId, 128))
                .col(string_len_null(AiSafetyReviews::RequestId, 128))
                // `open` or `resolved`.
                .col(string_len(AiSafetyReviews::Status, 16))
                // Who resolved it, like the actor: `user` or `api_key`, and its id.
                .col(string_len_null(AiSafetyReviews::ResolverType, 16))
                .col(string_len_null(AiSafetyReviews::ResolverId, 64))
                .col(timestamp_with_time_zone_null(AiSafetyReviews::ResolvedAt))
                .col(text_null(AiSafetyReviews::Resolution))
                .col(timestamp_with_time_zone(AiSafetyReviews::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_ai_safety_reviews_org")
                        .from(AiSafetyReviews::Table, AiSafetyReviews::OrgId)
                        .to(Organisations::Table, Organisations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // "The open reviews, newest first" per organisation.
        m.create_index(
            Index::create()
                .name("ix_ai_safety_reviews_org_status_created")
                .table(AiSafetyReviews::Table)
                .col(AiSafetyReviews::OrgId)
                .col(AiSafetyReviews::Status)
                .col(AiSafetyReviews::CreatedAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AiSafetyReviews::Table).to_owned())
            .await
    }
}
