use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "readiness_snapshots")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub taken_at: DateTimeUtc,
    /// `change` or `daily`.
    pub trigger: String,
    /// The UTC day (`YYYY-MM-DD`) for daily snapshots, NULL otherwise: one daily per day.
    pub daily_slot: Option<String>,
    pub overall_score: Option<i16>,
    pub overall_percent: Option<f64>,
    /// Per-framework scores and breakdowns (JSON array).
    pub frameworks: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
