//! Assessment sessions with their answers, and readiness snapshots: the history of
//! an organisation's computed scores.
//!
//! Two nullable "slot" columns carry uniqueness rules that would otherwise need partial
//! indexes (not portable through the schema builder): `assessments.open_framework` holds the
//! framework key only while the session is in progress, so a unique (org, open_framework)
//! allows one open session per framework; `readiness_snapshots.daily_slot` holds the UTC day
//! only for daily snapshots, so a unique (org, daily_slot) allows one daily snapshot per day
//! even with several nodes. NULLs never collide on either engine.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_assessments_and_snapshots"
    }
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Assessments {
    Table,
    Id,
    OrgId,
    FrameworkKey,
    Status,
    OpenFramework,
    StartedBy,
    StartedAt,
    UpdatedAt,
    CompletedAt,
    CompletedBy,
    ConfirmedAt,
    ConfirmedBy,
    Result,
    Applied,
}

#[derive(DeriveIden)]
enum AssessmentAnswers {
    Table,
    AssessmentId,
    OrgId,
    QuestionId,
    Answer,
    Notes,
    AnsweredBy,
    AnsweredAt,
}

#[derive(DeriveIden)]
enum ReadinessSnapshots {
    Table,
    Id,
    OrgId,
    TakenAt,
    Trigger,
    DailySlot,
    OverallScore,
    OverallPercent,
    Frameworks,
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
                .table(Assessments::Table)
                .col(uuid(Assessments::Id).primary_key())
                .col(uuid(Assessments::OrgId))
                .col(string_len(Assessments::FrameworkKey, 64))
                .col(string_len(Assessments::Status, 16))
                .col(string_len_null(Assessments::OpenFramework, 64))
                .col(string_len(Assessments::StartedBy, 64))
                .col(timestamp_with_time_zone(Assessments::StartedAt))
                .col(timestamp_with_time_zone(Assessments::UpdatedAt))
                .col(timestamp_with_time_zone_null(Assessments::CompletedAt))
                .col(string_len_null(Assessments::CompletedBy, 64))
                .col(timestamp_with_time_zone_null(Assessments::ConfirmedAt))
                .col(string_len_null(Assessments::ConfirmedBy, 64))
                .col(text_null(Assessments::Result))
                .col(text_null(Assessments::Applied))
                .foreign_key(&mut org_fk(
                    "fk_assessments_org",
                    Assessments::Table,
                    Assessments::OrgId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_assessments_org_started")
                .table(Assessments::Table)
                .col(Assessments::OrgId)
                .col(Assessments::StartedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_assessments_open_framework")
                .table(Assessments::Table)
                .col(Assessments::OrgId)
                .col(Assessments::OpenFramework)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AssessmentAnswers::Table)
                .col(uuid(AssessmentAnswers::AssessmentId))
                .col(uuid(AssessmentAnswers::OrgId))
                .col(string_len(AssessmentAnswers::QuestionId, 96))
                .col(string_len(AssessmentAnswers::Answer, 16))
                .col(text_null(AssessmentAnswers::Notes))
                .col(string_len(AssessmentAnswers::AnsweredBy, 64))
                .col(timestamp_with_time_zone(AssessmentAnswers::AnsweredAt))
                .primary_key(
                    Index::create()
                        .col(AssessmentAnswers::AssessmentId)
                        .col(AssessmentAnswers::QuestionId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_assessment_answers_assessment")
                        .from(AssessmentAnswers::Table, AssessmentAnswers::AssessmentId)
                        .to(Assessments::Table, Assessments::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(&mut org_fk(
                    "fk_assessment_answers_org",
                    AssessmentAnswers::Table,
                    AssessmentAnswers::OrgId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ReadinessSnapshots::Table)
                .col(uuid(ReadinessSnapshots::Id).primary_key())
                .col(uuid(ReadinessSnapshots::OrgId))
                .col(timestamp_with_time_zone(ReadinessSnapshots::TakenAt))
                .col(string_len(ReadinessSnapshots::Trigger, 16))
                .col(string_len_null(ReadinessSnapshots::DailySlot, 10))
                .col(small_integer_null(ReadinessSnapshots::OverallScore))
                .col(double_null(ReadinessSnapshots::OverallPercent))
                .col(text(ReadinessSnapshots::Frameworks))
                .foreign_key(&mut org_fk(
                    "fk_readiness_snapshots_org",
                    ReadinessSnapshots::Table,
                    ReadinessSnapshots::OrgId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_readiness_snapshots_org_taken")
                .table(ReadinessSnapshots::Table)
                .col(ReadinessSnapshots::OrgId)
                .col(ReadinessSnapshots::TakenAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_readiness_snapshots_daily_slot")
                .table(ReadinessSnapshots::Table)
                .col(ReadinessSnapshots::OrgId)
                .col(ReadinessSnapshots::DailySlot)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ReadinessSnapshots::Table.into_iden(),
            AssessmentAnswers::Table.into_iden(),
            Assessments::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
