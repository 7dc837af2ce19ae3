//! An organisation's compliance posture: adopted frameworks, the state of its controls,
//! its business profile, and framework packs it imported.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_compliance_posture"
    }
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OrgFrameworks {
    Table,
    OrgId,
    FrameworkKey,
    AdoptedAt,
    AdoptedBy,
}

#[derive(DeriveIden)]
enum OrgControls {
    Table,
    OrgId,
    ControlKey,
    Status,
    Justification,
    OwnerId,
    DueDate,
    Notes,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum BusinessProfiles {
    Table,
    OrgId,
    Profile,
    UpdatedAt,
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
                .table(OrgFrameworks::Table)
                .col(uuid(OrgFrameworks::OrgId))
                .col(string_len(OrgFrameworks::FrameworkKey, 64))
                .col(timestamp_with_time_zone(OrgFrameworks::AdoptedAt))
                .col(uuid_null(OrgFrameworks::AdoptedBy))
                .primary_key(
                    Index::create()
                        .col(OrgFrameworks::OrgId)
                        .col(OrgFrameworks::FrameworkKey),
                )
                .foreign_key(&mut org_fk(
                    "fk_org_frameworks_org",
                    OrgFrameworks::Table,
                    OrgFrameworks::OrgId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(OrgControls::Table)
                .col(uuid(OrgControls::OrgId))
                .col(string_len(OrgControls::ControlKey, 64))
                .col(string_len(OrgControls::Status, 32))
                .col(text_null(OrgControls::Justification))
                .col(uuid_null(OrgControls::OwnerId))
                .col(date_null(OrgControls::DueDate))
                .col(text_null(OrgControls::Notes))
                .col(timestamp_with_time_zone(OrgControls::UpdatedAt))
                .col(string_len_null(OrgControls::UpdatedBy, 64))
                .primary_key(
                    Index::create()
                        .col(OrgControls::OrgId)
                        .col(OrgControls::ControlKey),
                )
                .foreign_key(&mut org_fk(
                    "fk_org_controls_org",
                    OrgControls::Table,
                    OrgControls::OrgId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(BusinessProfiles::Table)
                .col(uuid(BusinessProfiles::OrgId).primary_key())
                .col(text(BusinessProfiles::Profile))
                .col(timestamp_with_time_zone(BusinessProfiles::UpdatedAt))
                .foreign_key(&mut org_fk(
                    "fk_business_profiles_org",
                    BusinessProfiles::Table,
                    BusinessProfiles::OrgId,
                ))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            BusinessProfiles::Table.into_iden(),
            OrgControls::Table.into_iden(),
            OrgFrameworks::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
