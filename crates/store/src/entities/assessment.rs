use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "assessments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub framework_key: String,
    /// `in_progress`, `completed` or `confirmed`.
    pub status: String,
    /// The framework key while in progress, NULL after: one open session per framework.
    pub open_framework: Option<String>,
    pub started_by: String,
    pub started_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    pub completed_by: Option<String>,
    pub confirmed_at: Option<DateTimeUtc>,
    pub confirmed_by: Option<String>,
    /// The computed result (JSON) once completed.
    pub result: Option<String>,
    /// What confirmation applied (JSON) once confirmed.
    pub applied: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
