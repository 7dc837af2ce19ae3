use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "imported_frameworks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// NULL for a platform-wide pack.
    pub org_id: Option<Uuid>,
    pub key: String,
    pub name: String,
    pub version: String,
    pub source_format: String,
    pub original_filename: Option<String>,
    pub pack: String,
    pub checks: Option<String>,
    pub requirement_count: i32,
    pub imported_by: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
