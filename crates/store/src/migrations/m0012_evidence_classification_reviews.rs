//! A person's review of an evidence classification: `confirmed` (with the type and controls
//! they settled on, which may correct the model's) or `rejected`, by whom, when, and why.
//! A suggested classification waits for one; an applied one can still be overruled. The
//! model's own answer stays as it was, so the record shows what the AI said and what a
//! person decided. Nullable columns only (rolling upgrades).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0012_evidence_classification_reviews"
    }
}

#[derive(DeriveIden)]
enum EvidenceClassifications {
    Table,
    Review,
    ReviewedType,
    ReviewedControls,
    ReviewNote,
    ReviewerType,
    ReviewerId,
    ReviewedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE statement.
        let columns = [
            // `confirmed` or `rejected`; null while no one has reviewed it.
            string_len_null(EvidenceClassifications::Review, 16),
            string_len_null(EvidenceClassifications::ReviewedType, 64),
            // A JSON array of control keys (at most three).
            text_null(EvidenceClassifications::ReviewedControls),
            text_null(EvidenceClassifications::ReviewNote),
            string_len_null(EvidenceClassifications::ReviewerType, 16),
            string_len_null(EvidenceClassifications::ReviewerId, 64),
            timestamp_with_time_zone_null(EvidenceClassifications::ReviewedAt),
        ];
        for mut column in columns {
            m.alter_table(
                Table::alter()
                    .table(EvidenceClassifications::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            EvidenceClassifications::Review,
            EvidenceClassifications::ReviewedType,
            EvidenceClassifications::ReviewedControls,
            EvidenceClassifications::ReviewNote,
            EvidenceClassifications::ReviewerType,
            EvidenceClassifications::ReviewerId,
            EvidenceClassifications::ReviewedAt,
        ] {
            m.alter_table(
                Table::alter()
                    .table(EvidenceClassifications::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
