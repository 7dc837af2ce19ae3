//! Assessment sessions: one row per session, one row per answered question. The
//! question bank and the scoring live in `assay_core::assessment`; this stores what people
//! answered and the result the core computed from it.
//!
//! The life cycle is `in_progress` -> `completed` -> `confirmed`, and each step is a
//! conditional update on the current status, so two people completing (or answering while
//! someone completes) cannot both succeed: the loser gets [`StoreError::Invariant`].

use crate::entities::{assessment as session, assessment_answer as answer};
use crate::error::StoreError;
use assay_core::OrgCtx;
use assay_core::assessment::Answer;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssessmentStatus {
    InProgress,
    Completed,
    Confirmed,
}

impl AssessmentStatus {
    pub const ALL: [AssessmentStatus; 3] = [
        AssessmentStatus::InProgress,
        AssessmentStatus::Completed,
        AssessmentStatus::Confirmed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AssessmentStatus::InProgress => "in_progress",
            AssessmentStatus::Completed => "completed",
            AssessmentStatus::Confirmed => "confirmed",
        }
    }
}

impl fmt::Display for AssessmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AssessmentStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("assessment status '{s}'")))
    }
}

/// One assessment session. `result` and `applied` are the JSON the API stored at
/// completion and confirmation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AssessmentRecord {
    pub id: Uuid,
    pub framework_key: String,
    pub status: AssessmentStatus,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub confirmed_by: Option<String>,
    pub result: Option<serde_json::Value>,
    pub applied: Option<serde_json::Value>,
}

fn json_column(text: Option<String>, what: &str) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("assessment {what}: {e}")))
    })
    .transpose()
}

fn record(m: session::Model) -> Result<AssessmentRecord, StoreError> {
    Ok(AssessmentRecord {
        id: m.id,
        status: m.status.parse()?,
        framework_key: m.framework_key,
        started_by: m.started_by,
        started_at: m.started_at,
        updated_at: m.updated_at,
        completed_at: m.completed_at,
        completed_by: m.completed_by,
        confirmed_at: m.confirmed_at,
        confirmed_by: m.confirmed_by,
        result: json_column(m.result, "result")?,
        applied: json_column(m.applied, "applied")?,
    })
}

/// A stored answer to one question.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredAnswer {
    pub question_id: String,
    pub answer: Answer,
    pub notes: Option<String>,
    pub answered_by: String,
    pub answered_at: DateTime<Utc>,
}

fn stored_answer(m: answer::Model) -> Result<StoredAnswer, StoreError> {
    Ok(StoredAnswer {
        answer: Answer::parse(&m.answer)
            .ok_or_else(|| StoreError::Corrupt(format!("assessment answer '{}'", m.answer)))?,
        question_id: m.question_id,
        notes: m.notes,
        answered_by: m.answered_by,
        answered_at: m.answered_at,
    })
}

/// Start a session. `Conflict { field: "framework" }` when one is already in progress for
/// this framework (the unique open-framework slot, so concurrent starts cannot both win).
pub async fn start(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    framework_key: &str,
    by: &str,
) -> Result<AssessmentRecord, StoreError> {
    let now = super::now();
    let id = Uuid::now_v7();
    let inserted = session::Entity::insert(session::ActiveModel {
        id: Set(id),
        org_id: Set(ctx.org_id().0),
        framework_key: Set(framework_key.to_owned()),
        status: Set(AssessmentStatus::InProgress.as_str().to_owned()),
        open_framework: Set(Some(framework_key.to_owned())),
        started_by: Set(by.to_owned()),
        started_at: Set(now),
        updated_at: Set(now),
        completed_at: Set(None),
        completed_by: Set(None),
        confirmed_at: Set(None),
        confirmed_by: Set(None),
        result: Set(None),
        applied: Set(None),
    })
    .exec_without_returning(conn)
    .await;
    match inserted.map_err(StoreError::from) {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(StoreError::Conflict {
                field: "framework".into(),
            });
        }
        Err(e) => return Err(e),
    }
    get(conn, ctx, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt("assessment vanished after writing".into()))
}

/// The session, if it belongs to the caller's organisation.
pub async fn get(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    id: Uuid,
) -> Result<Option<AssessmentRecord>, StoreError> {
    session::Entity::find_by_id(id)
        .filter(session::Column::OrgId.eq(ctx.org_id().0))
        .one(conn)
        .await?
        .map(record)
        .transpose()
}

/// The session in progress for a framework, if any.
pub async fn open_for(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    framework_key: &str,
) -> Result<Option<AssessmentRecord>, StoreError> {
    session::Entity::find()
        .filter(session::Column::OrgId.eq(ctx.org_id().0))
        .filter(session::Column::OpenFramework.eq(framework_key))
        .one(conn)
        .await?
        .map(record)
        .transpose()
}

/// Filters and page for [`list`]; newest first, `before` is the last id of the previous page.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub framework_key: Option<String>,
    pub status: Option<AssessmentStatus>,
    pub before: Option<Uuid>,
    pub limit: u64,
}

/// Sessions newest first (ids are UUID v7, so id order is start order).
pub async fn list(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    filter: &ListFilter,
) -> Result<Vec<AssessmentRecord>, StoreError> {
    let mut q = session::Entity::find().filter(session::Column::OrgId.eq(ctx.org_id().0));
    if let Some(fw) = &filter.framework_key {
        q = q.filter(session::Column::FrameworkKey.eq(fw.as_str()));
    }
    if let Some(status) = filter.status {
        q = q.filter(session::Column::Status.eq(status.as_str()));
    }
    if let Some(before) = filter.before {
        q = q.filter(session::Column::Id.lt(before));
    }
    q.order_by_desc(session::Column::Id)
        .limit(filter.limit)
        .all(conn)
        .await?
        .into_iter()
        .map(record)
        .collect()
}

/// Every answer of a session of the caller's organisation, by question id.
pub async fn answers(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    assessment_id: Uuid,
) -> Result<Vec<StoredAnswer>, StoreError> {
    answer::Entity::find()
        .filter(answer::Column::OrgId.eq(ctx.org_id().0))
        .filter(answer::Column::AssessmentId.eq(assessment_id))
        .order_by_asc(answer::Column::QuestionId)
        .all(conn)
        .await?
        .into_iter()
        .map(stored_answer)
        .collect()
}

#[derive(FromQueryResult)]
struct AnswerCount {
    assessment_id: Uuid,
    n: i64,
}

/// How many questions of each session have an answer other than `unknown`.
pub async fn answered_counts(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, u64>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = answer::Entity::find()
        .select_only()
        .column(answer::Column::AssessmentId)
        .column_as(answer::Column::QuestionId.count(), "n")
        .filter(answer::Column::OrgId.eq(ctx.org_id().0))
        .filter(answer::Column::AssessmentId.is_in(ids.iter().copied()))
        .filter(answer::Column::Answer.ne(Answer::Unknown.as_str()))
        .group_by(answer::Column::AssessmentId)
        .into_model::<AnswerCount>()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.assessment_id, r.n.max(0) as u64))
        .collect())
}

/// Move a session from `from` to a later status (and touch `updated_at`) only if it is in
/// `from` now; NotFound for another organisation's or a missing session, Invariant when it
/// is in another status.
async fn transition(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    id: Uuid,
    from: AssessmentStatus,
    changes: Vec<(session::Column, Expr)>,
    refusal: &'static str,
) -> Result<(), StoreError> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::UpdatedAt, Expr::value(super::now()))
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::OrgId.eq(ctx.org_id().0))
        .filter(session::Column::Status.eq(from.as_str()));
    for (col, value) in changes {
        update = update.col_expr(col, value);
    }
    if update.exec(conn).await?.rows_affected == 1 {
        return Ok(());
    }
    match get(conn, ctx, id).await? {
        None => Err(StoreError::not_found("assessment")),
        Some(_) => Err(StoreError::Invariant(refusal)),
    }
}

/// Record (or replace) the answer to one question of a session in progress; returns the
/// previous answer, if any, and the stored one. The caller checks that the question is
/// part of the session's bank.
pub async fn set_answer(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    assessment_id: Uuid,
    question_id: &str,
    value: Answer,
    notes: Option<&str>,
    by: &str,
) -> Result<(Option<StoredAnswer>, StoredAnswer), StoreError> {
    transition(
        conn,
        ctx,
        assessment_id,
        AssessmentStatus::InProgress,
        Vec::new(),
        "the assessment is no longer in progress: answers cannot change",
    )
    .await?;
    let before = find_answer(conn, ctx, assessment_id, question_id).await?;
    answer::Entity::insert(answer::ActiveModel {
        assessment_id: Set(assessment_id),
        question_id: Set(question_id.to_owned()),
        org_id: Set(ctx.org_id().0),
        answer: Set(value.as_str().to_owned()),
        notes: Set(notes.map(str::to_owned)),
        answered_by: Set(by.to_owned()),
        answered_at: Set(super::now()),
    })
    .on_conflict(
        OnConflict::columns([answer::Column::AssessmentId, answer::Column::QuestionId])
            .update_columns([
                answer::Column::Answer,
                answer::Column::Notes,
                answer::Column::AnsweredBy,
                answer::Column::AnsweredAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    let after = find_answer(conn, ctx, assessment_id, question_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt("answer vanished after writing".into()))?;
    Ok((before, after))
}

async fn find_answer(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    assessment_id: Uuid,
    question_id: &str,
) -> Result<Option<StoredAnswer>, StoreError> {
    answer::Entity::find_by_id((assessment_id, question_id.to_owned()))
        .filter(answer::Column::OrgId.eq(ctx.org_id().0))
        .one(conn)
        .await?
        .map(stored_answer)
        .transpose()
}

/// in_progress -> completed, storing the computed result; frees the framework for a new
/// session.
pub async fn complete(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    id: Uuid,
    result: &serde_json::Value,
    by: &str,
) -> Result<AssessmentRecord, StoreError> {
    transition(
        conn,
        ctx,
        id,
        AssessmentStatus::InProgress,
        vec![
            (
                session::Column::Status,
                Expr::value(AssessmentStatus::Completed.as_str()),
            ),
            (
                session::Column::OpenFramework,
                Expr::value(Option::<String>::None),
            ),
            (session::Column::CompletedAt, Expr::value(super::now())),
            (session::Column::CompletedBy, Expr::value(by)),
            (session::Column::Result, Expr::value(result.to_string())),
        ],
        "the assessment is already completed",
    )
    .await?;
    get(conn, ctx, id)
        .await?
        .ok_or_else(|| StoreError::not_found("assessment"))
}

/// completed -> confirmed, storing what was applied to the organisation's controls.
pub async fn confirm(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    id: Uuid,
    applied: &serde_json::Value,
    by: &str,
) -> Result<AssessmentRecord, StoreError> {
    transition(
        conn,
        ctx,
        id,
        AssessmentStatus::Completed,
        vec![
            (
                session::Column::Status,
                Expr::value(AssessmentStatus::Confirmed.as_str()),
            ),
            (session::Column::ConfirmedAt, Expr::value(super::now())),
            (session::Column::ConfirmedBy, Expr::value(by)),
            (session::Column::Applied, Expr::value(applied.to_string())),
        ],
        "only a completed (and not yet confirmed) assessment can be confirmed",
    )
    .await?;
    get(conn, ctx, id)
        .await?
        .ok_or_else(|| StoreError::not_found("assessment"))
}

/// Delete a session that was not confirmed, with its answers; returns what was deleted.
/// Confirmed sessions stay: they are the record of changes made to the controls.
pub async fn delete(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    id: Uuid,
) -> Result<AssessmentRecord, StoreError> {
    let existing = get(conn, ctx, id)
        .await?
        .ok_or_else(|| StoreError::not_found("assessment"))?;
    if existing.status == AssessmentStatus::Confirmed {
        return Err(StoreError::Invariant(
            "a confirmed assessment is kept as the record of the changes it applied",
        ));
    }
    answer::Entity::delete_many()
        .filter(answer::Column::OrgId.eq(ctx.org_id().0))
        .filter(answer::Column::AssessmentId.eq(id))
        .exec(conn)
        .await?;
    let gone = session::Entity::delete_many()
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::OrgId.eq(ctx.org_id().0))
        .filter(session::Column::Status.ne(AssessmentStatus::Confirmed.as_str()))
        .exec(conn)
        .await?;
    if gone.rows_affected != 1 {
        return Err(StoreError::Invariant(
            "the assessment changed while it was being deleted",
        ));
    }
    Ok(existing)
}
