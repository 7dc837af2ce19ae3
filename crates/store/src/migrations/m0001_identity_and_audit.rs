//! Organisations, users, memberships and the hash-chained audit log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_identity_and_audit"
    }
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
    Name,
    Slug,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    IsActive,
    IsPlatformAdmin,
    CreatedAt,
    UpdatedAt,
    DeactivatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    OrgId,
    UserId,
    Role,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    Chain,
    Seq,
    OrgId,
    ActorType,
    ActorId,
    Action,
    ResourceType,
    ResourceId,
    Outcome,
    Ip,
    UserAgent,
    RequestId,
    Details,
    CreatedAt,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditChainHeads {
    Table,
    Chain,
    Seq,
    Hash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Organisations::Table)
                .col(uuid(Organisations::Id).primary_key())
                .col(string_len(Organisations::Name, 200))
                .col(string_len(Organisations::Slug, 100))
                .col(timestamp_with_time_zone(Organisations::CreatedAt))
                .col(timestamp_with_time_zone(Organisations::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_organisations_slug")
                .table(Organisations::Table)
                .col(Organisations::Slug)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(uuid(Users::Id).primary_key())
                .col(string_len(Users::Email, 320))
                .col(string_len(Users::Name, 200))
                .col(text_null(Users::PasswordHash))
                .col(boolean(Users::IsActive).default(true))
                .col(boolean(Users::IsPlatformAdmin).default(false))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone(Users::UpdatedAt))
                .col(timestamp_with_time_zone_null(Users::DeactivatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_users_email")
                .table(Users::Table)
                .col(Users::Email)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Memberships::Table)
                .col(uuid(Memberships::OrgId))
                .col(uuid(Memberships::UserId))
                .col(string_len(Memberships::Role, 32))
                .col(timestamp_with_time_zone(Memberships::CreatedAt))
                .col(timestamp_with_time_zone(Memberships::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(Memberships::OrgId)
                        .col(Memberships::UserId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_memberships_org")
                        .from(Memberships::Table, Memberships::OrgId)
                        .to(Organisations::Table, Organisations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_memberships_user")
                        .from(Memberships::Table, Memberships::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_memberships_user")
                .table(Memberships::Table)
                .col(Memberships::UserId)
                .to_owned(),
        )
        .await?;

        // The audit log is append-only and deliberately has no foreign keys: an event must
        // outlive the organisation or user it describes.
        m.create_table(
            Table::create()
                .table(AuditEvents::Table)
                .col(uuid(AuditEvents::Id).primary_key())
                .col(string_len(AuditEvents::Chain, 64))
                .col(big_integer(AuditEvents::Seq))
                .col(uuid_null(AuditEvents::OrgId))
                .col(string_len(AuditEvents::ActorType, 16))
                .col(string_len_null(AuditEvents::ActorId, 64))
                .col(string_len(AuditEvents::Action, 100))
                .col(string_len_null(AuditEvents::ResourceType, 64))
                .col(string_len_null(AuditEvents::ResourceId, 128))
                .col(string_len(AuditEvents::Outcome, 16))
                .col(string_len_null(AuditEvents::Ip, 64))
                .col(text_null(AuditEvents::UserAgent))
                .col(string_len_null(AuditEvents::RequestId, 128))
                .col(text(AuditEvents::Details))
                .col(timestamp_with_time_zone(AuditEvents::CreatedAt))
                .col(string_len(AuditEvents::PrevHash, 64))
                .col(string_len(AuditEvents::Hash, 64))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_audit_events_chain_seq")
                .table(AuditEvents::Table)
                .col(AuditEvents::Chain)
                .col(AuditEvents::Seq)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_audit_events_org_created")
                .table(AuditEvents::Table)
                .col(AuditEvents::OrgId)
                .col(AuditEvents::CreatedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditChainHeads::Table)
                .col(string_len(AuditChainHeads::Chain, 64).primary_key())
                .col(big_integer(AuditChainHeads::Seq))
                .col(string_len(AuditChainHeads::Hash, 64))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            AuditChainHeads::Table.into_iden(),
            AuditEvents::Table.into_iden(),
            Memberships::Table.into_iden(),
            Users::Table.into_iden(),
            Organisations::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
