//! Evidence classifications (m0008): one row per classification an organisation asked for,
//! applied or suggested, and a person's review of it (m0012: confirmed, possibly corrected,
//! or rejected — once). The model's answer is never changed; the evidence records of a
//! later release point at these rows. Every query is scoped by the caller's organisation.

use crate::entities::evidence_classification as row;
use crate::error::StoreError;
use crate::repo::audit::Actor;
use assay_core::OrgCtx;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

/// Whether a classification was applied to the evidence or only offered to a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassificationStatus {
    /// Confidence reached the threshold: the type and controls are taken as given.
    Applied,
    /// Below the threshold: a person should confirm or correct it.
    Suggested,
}

impl ClassificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClassificationStatus::Applied => "applied",
            ClassificationStatus::Suggested => "suggested",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "applied" => Ok(ClassificationStatus::Applied),
            "suggested" => Ok(ClassificationStatus::Suggested),
            other => Err(StoreError::Corrupt(format!(
                "evidence classification status '{other}'"
            ))),
        }
    }
}

/// A person's decision on a classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// The type and controls hold (as the model gave them, or as the reviewer corrected).
    Confirmed,
    /// The classification is wrong and must not be used.
    Rejected,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Confirmed => "confirmed",
            ReviewDecision::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "confirmed" => Ok(ReviewDecision::Confirmed),
            "rejected" => Ok(ReviewDecision::Rejected),
            other => Err(StoreError::Corrupt(format!(
                "evidence classification review '{other}'"
            ))),
        }
    }
}

/// A stored review.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassificationReview {
    pub decision: ReviewDecision,
    /// The type the reviewer settled on (confirmed only; the model's unless corrected).
    pub evidence_type: Option<String>,
    /// The controls the reviewer settled on (confirmed only).
    pub controls: Option<Vec<String>>,
    pub note: Option<String>,
    /// `user` or `api_key`, and its id.
    pub reviewer_type: String,
    pub reviewer_id: Option<String>,
    pub reviewed_at: DateTime<Utc>,
}

/// A review to record.
#[derive(Clone, Debug)]
pub struct NewReview<'a> {
    pub by: &'a Actor,
    pub decision: ReviewDecision,
    /// For a confirmation: the type and controls that hold (already checked by the caller).
    pub evidence_type: Option<&'a str>,
    pub controls: Option<&'a [String]>,
    pub note: Option<&'a str>,
}

/// What [`review`] did.
pub type Reviewed = super::Once<Classification>;

/// A classification to store. `input_text` is `Some` only when the organisation enabled
/// prompt storage; the hash and length are always kept.
#[derive(Clone, Debug)]
pub struct NewClassification<'a> {
    pub actor: &'a Actor,
    pub input_sha256: &'a str,
    pub input_chars: u64,
    pub input_text: Option<&'a str>,
    pub filename: Option<&'a str>,
    pub evidence_type: &'a str,
    /// Control keys, already checked against the catalogue (at most three).
    pub controls: &'a [String],
    pub confidence: f64,
    pub status: ClassificationStatus,
    pub reasoning: &'a str,
    pub model: &'a str,
    pub offline: bool,
}

/// A stored classification.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Classification {
    pub id: Uuid,
    /// `user` or `api_key`.
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub input_sha256: String,
    pub input_chars: u64,
    pub input_text: Option<String>,
    pub filename: Option<String>,
    pub evidence_type: String,
    pub controls: Vec<String>,
    pub confidence: f64,
    pub status: ClassificationStatus,
    pub reasoning: String,
    pub model: String,
    pub offline: bool,
    pub created_at: DateTime<Utc>,
    /// A person's review, once there is one.
    pub review: Option<ClassificationReview>,
}

fn control_list(json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("evidence classification controls: {e}")))
}

fn from_row(m: row::Model) -> Result<Classification, StoreError> {
    let controls = control_list(&m.controls)?;
    let review = match (m.review.as_deref(), m.reviewed_at) {
        (Some(decision), Some(at)) => Some(ClassificationReview {
            decision: ReviewDecision::parse(decision)?,
            evidence_type: m.reviewed_type,
            controls: m
                .reviewed_controls
                .as_deref()
                .map(control_list)
                .transpose()?,
            note: m.review_note,
            reviewer_type: m.reviewer_type.unwrap_or_default(),
            reviewer_id: m.reviewer_id,
            reviewed_at: at,
        }),
        _ => None,
    };
    Ok(Classification {
        id: m.id,
        actor_type: m.actor_type,
        actor_id: m.actor_id,
        input_sha256: m.input_sha256,
        input_chars: u64::try_from(m.input_chars).unwrap_or_default(),
        input_text: m.input_text,
        filename: m.filename,
        evidence_type: m.evidence_type,
        controls,
        confidence: m.confidence,
        status: ClassificationStatus::parse(&m.status)?,
        reasoning: m.reasoning,
        model: m.model,
        offline: m.offline,
        created_at: m.created_at,
        review,
    })
}

/// Store a classification in the caller's organisation; returns it as stored.
pub async fn insert(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    new: &NewClassification<'_>,
) -> Result<Classification, StoreError> {
    let (actor_type, actor_id) = new.actor.parts();
    let model = row::Model {
        id: Uuid::now_v7(),
        org_id: ctx.org_id().0,
        actor_type: actor_type.to_owned(),
        actor_id,
        input_sha256: new.input_sha256.to_owned(),
        input_chars: i64::try_from(new.input_chars).unwrap_or(i64::MAX),
        input_text: new.input_text.map(str::to_owned),
        filename: new.filename.map(str::to_owned),
        evidence_type: new.evidence_type.to_owned(),
        controls: serde_json::to_string(new.controls)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        confidence: new.confidence,
        status: new.status.as_str().to_owned(),
        reasoning: new.reasoning.to_owned(),
        model: new.model.to_owned(),
        offline: new.offline,
        created_at: super::now(),
        review: None,
        reviewed_type: None,
        reviewed_controls: None,
        review_note: None,
        reviewer_type: None,
        reviewer_id: None,
        reviewed_at: None,
    };
    row::Entity::insert(row::ActiveModel {
        id: Set(model.id),
        org_id: Set(model.org_id),
        actor_type: Set(model.actor_type.clone()),
        actor_id: Set(model.actor_id.clone()),
        input_sha256: Set(model.input_sha256.clone()),
        input_chars: Set(model.input_chars),
        input_text: Set(model.input_text.clone()),
        filename: Set(model.filename.clone()),
        evidence_type: Set(model.evidence_type.clone()),
        controls: Set(model.controls.clone()),
        confidence: Set(model.confidence),
        status: Set(model.status.clone()),
        reasoning: Set(model.reasoning.clone()),
        model: Set(model.model.clone()),
        offline: Set(model.offline),
        created_at: Set(model.created_at),
        review: Set(None),
        reviewed_type: Set(None),
        reviewed_controls: Set(None),
        review_note: Set(None),
        reviewer_type: Set(None),
        reviewer_id: Set(None),
        reviewed_at: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    from_row(model)
}

/// One classification of the caller's organisation (another organisation's id is not found).
pub async fn get(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    id: Uuid,
) -> Result<Option<Classification>, StoreError> {
    row::Entity::find_by_id(id)
        .filter(row::Column::OrgId.eq(ctx.org_id().0))
        .one(conn)
        .await?
        .map(from_row)
        .transpose()
}

/// The organisation's most recent classifications, newest first; with `awaiting_review`,
/// only suggestions no one has reviewed yet.
pub async fn recent(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    awaiting_review: bool,
    limit: u64,
) -> Result<Vec<Classification>, StoreError> {
    let mut q = row::Entity::find().filter(row::Column::OrgId.eq(ctx.org_id().0));
    if awaiting_review {
        q = q
            .filter(row::Column::Status.eq(ClassificationStatus::Suggested.as_str()))
            .filter(row::Column::Review.is_null());
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

/// Earlier classifications of exactly this input (by SHA-256) in the organisation.
pub async fn by_input(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    input_sha256: &str,
) -> Result<Vec<Classification>, StoreError> {
    row::Entity::find()
        .filter(row::Column::OrgId.eq(ctx.org_id().0))
        .filter(row::Column::InputSha256.eq(input_sha256))
        .order_by_desc(row::Column::CreatedAt)
        .all(conn)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Record a person's review of a classification, once: the conditional update decides, so
/// two reviewers at once cannot both succeed.
pub async fn review(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    id: Uuid,
    new: &NewReview<'_>,
) -> Result<Reviewed, StoreError> {
    let (reviewer_type, reviewer_id) = new.by.parts();
    let controls = new
        .controls
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let res = row::Entity::update_many()
        .col_expr(row::Column::Review, Expr::value(new.decision.as_str()))
        .col_expr(row::Column::ReviewedType, Expr::value(new.evidence_type))
        .col_expr(row::Column::ReviewedControls, Expr::value(controls))
        .col_expr(row::Column::ReviewNote, Expr::value(new.note))
        .col_expr(row::Column::ReviewerType, Expr::value(reviewer_type))
        .col_expr(row::Column::ReviewerId, Expr::value(reviewer_id))
        .col_expr(row::Column::ReviewedAt, Expr::value(super::now()))
        .filter(row::Column::Id.eq(id))
        .filter(row::Column::OrgId.eq(ctx.org_id().0))
        .filter(row::Column::Review.is_null())
        .exec(conn)
        .await?;
    Ok(Reviewed::of(res.rows_affected, get(conn, ctx, id).await?))
}
