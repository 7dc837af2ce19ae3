//! AI safety reviews (m0010): an AI call the safety policy escalated — allowed, redacted as
//! usual, and flagged for a person. Written by the AI pipeline, listed and resolved by an AI
//! admin. No matched text is stored: rule ids, who, when, which call and what about.
//! Every query is scoped by the caller's organisation.

use crate::entities::ai_safety_review as row;
use crate::error::StoreError;
use crate::repo::audit::Actor;
use assay_core::OrgCtx;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

/// Whether a person has dealt with the review yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    Open,
    Resolved,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::Resolved => "resolved",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "open" => Ok(ReviewStatus::Open),
            "resolved" => Ok(ReviewStatus::Resolved),
            other => Err(StoreError::Corrupt(format!(
                "AI safety review status '{other}'"
            ))),
        }
    }
}

/// An escalated call to record.
#[derive(Clone, Debug)]
pub struct NewReview<'a> {
    pub actor: &'a Actor,
    /// The AI task (`chat`, `help`, ...).
    pub task: &'a str,
    /// `input` (the caller's prompt) or `output` (the model's answer).
    pub direction: &'a str,
    /// The rule ids that escalated (never the matched text).
    pub rules: &'a [String],
    /// What the call was about, e.g. `("conversation", id)`.
    pub resource: Option<(&'a str, &'a str)>,
    /// The HTTP request id, to find the call's audit event and logs.
    pub request_id: Option<&'a str>,
}

/// A stored review.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Review {
    pub id: Uuid,
    /// `user` or `api_key`: whose call was escalated.
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub task: String,
    pub direction: String,
    pub rules: Vec<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub request_id: Option<String>,
    pub status: ReviewStatus,
    pub resolver_type: Option<String>,
    pub resolver_id: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The resolver's note.
    pub resolution: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn from_row(m: row::Model) -> Result<Review, StoreError> {
    let rules: Vec<String> = serde_json::from_str(&m.rules)
        .map_err(|e| StoreError::Corrupt(format!("AI safety review rules: {e}")))?;
    Ok(Review {
        id: m.id,
        actor_type: m.actor_type,
        actor_id: m.actor_id,
        task: m.task,
        direction: m.direction,
        rules,
        resource_type: m.resource_type,
        resource_id: m.resource_id,
        request_id: m.request_id,
        status: ReviewStatus::parse(&m.status)?,
        resolver_type: m.resolver_type,
        resolver_id: m.resolver_id,
        resolved_at: m.resolved_at,
        resolution: m.resolution,
        created_at: m.created_at,
    })
}

/// Record an escalated call in the caller's organisation; returns it as stored.
pub async fn insert(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    new: &NewReview<'_>,
) -> Result<Review, StoreError> {
    let (actor_type, actor_id) = new.actor.parts();
    let model = row::Model {
        id: Uuid::now_v7(),
        org_id: ctx.org_id().0,
        actor_type: actor_type.to_owned(),
        actor_id,
        task: new.task.to_owned(),
        direction: new.direction.to_owned(),
        rules: serde_json::to_string(new.rules).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        resource_type: new.resource.map(|(t, _)| t.to_owned()),
        resource_id: new.resource.map(|(_, id)| id.to_owned()),
        request_id: new.request_id.map(str::to_owned),
        status: ReviewStatus::Open.as_str().to_owned(),
        resolver_type: None,
        resolver_id: None,
        resolved_at: None,
        resolution: None,
        created_at: super::now(),
    };
    row::Entity::insert(row::ActiveModel {
        id: Set(model.id),
        org_id: Set(model.org_id),
        actor_type: Set(model.actor_type.clone()),
        actor_id: Set(model.actor_id.clone()),
        task: Set(model.task.clone()),
        direction: Set(model.direction.clone()),
        rules: Set(model.rules.clone()),
        resource_type: Set(model.resource_type.clone()),
        resource_id: Set(model.resource_id.clone()),
        request_id: Set(model.request_id.clone()),
        status: Set(model.status.clone()),
        resolver_type: Set(None),
        resolver_id: Set(None),
        resolved_at: Set(None),
        resolution: Set(None),
        created_at: Set(model.created_at),
    })
    .exec_without_returning(conn)
    .await?;
    from_row(model)
}

/// One review of the caller's organisation (another organisation's id is not found).
pub async fn get(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    id: Uuid,
) -> Result<Option<Review>, StoreError> {
    row::Entity::find_by_id(id)
        .filter(row::Column::OrgId.eq(ctx.org_id().0))
        .one(conn)
        .await?
        .map(from_row)
        .transpose()
}

/// The organisation's reviews, newest first; only those in `status` when given.
pub async fn list(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    status: Option<ReviewStatus>,
    limit: u64,
) -> Result<Vec<Review>, StoreError> {
    let mut q = row::Entity::find().filter(row::Column::OrgId.eq(ctx.org_id().0));
    if let Some(s) = status {
        q = q.filter(row::Column::Status.eq(s.as_str()));
    }
    q.order_by_desc(row::Column::CreatedAt)
        .order_by_desc(row::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// What [`resolve`] did.
pub type Resolved = super::Once<Review>;

/// Resolve an open review with `note`. The conditional update decides, so two people
/// resolving at once cannot both succeed.
pub async fn resolve(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    id: Uuid,
    by: &Actor,
    note: &str,
) -> Result<Resolved, StoreError> {
    let (resolver_type, resolver_id) = by.parts();
    let res = row::Entity::update_many()
        .col_expr(
            row::Column::Status,
            Expr::value(ReviewStatus::Resolved.as_str()),
        )
        .col_expr(row::Column::ResolverType, Expr::value(resolver_type))
        .col_expr(row::Column::ResolverId, Expr::value(resolver_id))
        .col_expr(row::Column::ResolvedAt, Expr::value(super::now()))
        .col_expr(row::Column::Resolution, Expr::value(note))
        .filter(row::Column::Id.eq(id))
        .filter(row::Column::OrgId.eq(ctx.org_id().0))
        .filter(row::Column::Status.eq(ReviewStatus::Open.as_str()))
        .exec(conn)
        .await?;
    Ok(Resolved::of(res.rows_affected, get(conn, ctx, id).await?))
}
