use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "evidence_classifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub input_sha256: String,
    pub input_chars: i64,
    pub input_text: Option<String>,
    pub filename: Option<String>,
    pub evidence_type: String,
    pub controls: String,
    pub confidence: f64,
    pub status: String,
    pub reasoning: String,
    pub model: String,
    pub offline: bool,
    pub created_at: DateTimeUtc,
    pub review: Option<String>,
    pub reviewed_type: Option<String>,
    pub reviewed_controls: Option<String>,
    pub review_note: Option<String>,
    pub reviewer_type: Option<String>,
    pub reviewer_id: Option<String>,
    pub reviewed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
