//! Evidence classifications: what the AI (or the offline rules) made of a piece of evidence
//! text — its type, up to three mapped controls, the confidence, and whether it was applied
//! (confidence at or above the deployment's threshold) or only suggested. Kept so the
//! evidence records of a later release can link to the classification that typed them.
//! The input itself is kept only as a SHA-256 and a length, unless the organisation enabled
//! prompt storage.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_evidence_classifications"
    }
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum EvidenceClassifications {
    Table,
    Id,
    OrgId,
    ActorType,
    ActorId,
    InputSha256,
    InputChars,
    InputText,
    Filename,
    EvidenceType,
    Controls,
    Confidence,
    Status,
    Reasoning,
    Model,
    Offline,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(EvidenceClassifications::Table)
                .col(uuid(EvidenceClassifications::Id).primary_key())
                .col(uuid(EvidenceClassifications::OrgId))
                // `user` or `api_key`, and its id (as in the audit log).
                .col(string_len(EvidenceClassifications::ActorType, 16))
                .col(string_len_null(EvidenceClassifications::ActorId, 64))
                .col(string_len(EvidenceClassifications::InputSha256, 64))
                .col(big_integer(EvidenceClassifications::InputChars))
                .col(text_null(EvidenceClassifications::InputText))
                .col(string_len_null(EvidenceClassifications::Filename, 255))
                .col(string_len(EvidenceClassifications::EvidenceType, 64))
                // A JSON array of control keys (at most three), in the model's order.
                .col(text(EvidenceClassifications::Controls))
                .col(double(EvidenceClassifications::Confidence))
                // `applied` or `suggested`.
                .col(string_len(EvidenceClassifications::Status, 16))
                .col(text(EvidenceClassifications::Reasoning))
                .col(string_len(EvidenceClassifications::Model, 128))
                .col(boolean(EvidenceClassifications::Offline))
                .col(timestamp_with_time_zone(EvidenceClassifications::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_evidence_classifications_org")
                        .from(
                            EvidenceClassifications::Table,
                            EvidenceClassifications::OrgId,
                        )
                        .to(Organisations::Table, Organisations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_evidence_classifications_org_created")
                .table(EvidenceClassifications::Table)
                .col(EvidenceClassifications::OrgId)
                .col(EvidenceClassifications::CreatedAt)
                .to_owned(),
        )
        .await?;
        // "Was this exact text classified before?" without keeping the text.
        m.create_index(
            Index::create()
                .name("ix_evidence_classifications_org_sha")
                .table(EvidenceClassifications::Table)
                .col(EvidenceClassifications::OrgId)
                .col(EvidenceClassifications::InputSha256)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(EvidenceClassifications::Table)
                .to_owned(),
        )
        .await
    }
}
