//! `org_ai_settings.restore_pii`: put the caller's own personal data back into answers
//! where the model repeated a placeholder (`[EMAIL_1]` -> the address the caller wrote).
//! Off by default; the provider still never sees the values, and stored messages keep the
//! placeholders. A column with a default, so nodes of the previous release keep working.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0011_ai_restore_pii"
    }
}

#[derive(DeriveIden)]
enum OrgAiSettings {
    Table,
    RestorePii,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(OrgAiSettings::Table)
                .add_column(boolean(OrgAiSettings::RestorePii).default(false))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(OrgAiSettings::Table)
                .drop_column(OrgAiSettings::RestorePii)
                .to_owned(),
        )
        .await
    }
}
