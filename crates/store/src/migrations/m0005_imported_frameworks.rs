//! Framework packs imported by an organisation (org-private) or by a platform admin
//! (platform-wide, `org_id` NULL). The pack is kept canonically as an Assay YAML pack, so
//! every stored framework reloads through one reader whatever format it arrived in.
//!
//! A key must be unique among what one organisation sees (built-in + platform-wide + its
//! own). The two indexes below enforce what an index can: one key per organisation, and one
//! platform-wide pack per key (a partial index, which both engines support). That an
//! org-private key does not shadow a platform-wide one (and the built-in keys, which the
//! database does not know) is checked in the importing transaction, see
//! `repo::imported_frameworks`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_imported_frameworks"
    }
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ImportedFrameworks {
    Table,
    Id,
    OrgId,
    Key,
    Name,
    Version,
    SourceFormat,
    OriginalFilename,
    Pack,
    Checks,
    RequirementCount,
    ImportedBy,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ImportedFrameworks::Table)
                .col(uuid(ImportedFrameworks::Id).primary_key())
                .col(uuid_null(ImportedFrameworks::OrgId))
                // 64 like `org_frameworks.framework_key`, which adoption copies it into.
                .col(string_len(ImportedFrameworks::Key, 64))
                .col(text(ImportedFrameworks::Name))
                .col(text(ImportedFrameworks::Version))
                .col(string_len(ImportedFrameworks::SourceFormat, 16))
                .col(text_null(ImportedFrameworks::OriginalFilename))
                .col(text(ImportedFrameworks::Pack))
                // Prowler check ids per requirement ref (JSON); NULL for other formats.
                .col(text_null(ImportedFrameworks::Checks))
                .col(integer(ImportedFrameworks::RequirementCount))
                .col(string_len_null(ImportedFrameworks::ImportedBy, 128))
                .col(timestamp_with_time_zone(ImportedFrameworks::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_imported_frameworks_org")
                        .from(ImportedFrameworks::Table, ImportedFrameworks::OrgId)
                        .to(Organisations::Table, Organisations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // NULLs are distinct in a unique index on both engines, so this one only constrains
        // org-private rows; platform-wide rows get the partial index below.
        m.create_index(
            Index::create()
                .name("ux_imported_frameworks_org_key")
                .table(ImportedFrameworks::Table)
                .col(ImportedFrameworks::OrgId)
                .col(ImportedFrameworks::Key)
                .unique()
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_imported_frameworks_platform_key \
                 ON imported_frameworks (key) WHERE org_id IS NULL",
            )
            .await?;
        // Looking a key up across every scope (the collision check) and listing by key.
        m.create_index(
            Index::create()
                .name("ix_imported_frameworks_key")
                .table(ImportedFrameworks::Table)
                .col(ImportedFrameworks::Key)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ImportedFrameworks::Table).to_owned())
            .await
    }
}
