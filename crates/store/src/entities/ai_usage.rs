use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_usage")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Option<Uuid>,
    /// UTC date `YYYY-MM-DD`, so daily aggregation is one portable GROUP BY.
    pub day: String,
    pub task: String,
    pub model: String,
    pub provider: String,
    pub provider_kind: String,
    pub tier: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub estimated: bool,
    pub cost_usd: f64,
    pub latency_ms: f64,
    pub time_to_first_token_ms: Option<f64>,
    pub gateway_overhead_us: i64,
    pub cache_hit: bool,
    pub streamed: bool,
    pub outcome: String,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
