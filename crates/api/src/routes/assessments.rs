//! Assessment sessions through HTTP: start one for an adopted framework, answer its
//! questions (structured answers only), resume it, complete it — the result is computed by
//! `assay_core::assessment` and stored — and confirm it, which applies the implied control
//! statuses to the organisation's controls in one transaction. Every change is audited in
//! the transaction that makes it; another organisation's session is a 404.

use crate::auth::{RequirePermission, perm};
use crate::error::ApiError;
use crate::json::{FieldError, ValidJson, invalid, invalid_field, page_limit};
use crate::routes::compliance::{actor_label, states_by_key};
use crate::state::AppState;
use assay_core::access::Permission;
use assay_core::assessment::{Answer, AnswerRecord, Assessment};
use assay_core::catalogue::Catalogue;
use assay_core::{ControlStatus, OrgCtx};
use assay_store::StoreError;
use assay_store::repo::assessments::{
    self, AssessmentRecord, AssessmentStatus, ListFilter, StoredAnswer,
};
use assay_store::repo::audit;
use assay_store::repo::posture::{self, ControlRecord, ControlUpdate};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use garde::Validate;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", message)
}

/// The question bank of a session's framework in the organisation's catalogue.
fn bank(catalogue: &Catalogue, record: &AssessmentRecord) -> Result<Assessment, ApiError> {
    Assessment::new(catalogue, &record.framework_key).map_err(|_| {
        conflict(format!(
            "framework '{}' is no longer in this organisation's catalogue",
            record.framework_key
        ))
    })
}

async fn find(state: &AppState, ctx: &OrgCtx, id: Uuid) -> Result<AssessmentRecord, ApiError> {
    assessments::get(state.db().primary(), ctx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("assessment"))
}

/// `questions`, `answered` (answers other than unknown) and `remaining`.
fn progress(questions: usize, answered: u64) -> Value {
    let answered = usize::try_from(answered)
        .unwrap_or(usize::MAX)
        .min(questions);
    json!({ "questions": questions, "answered": answered, "remaining": questions - answered })
}

/// A session as the API shows it (without its questions).
fn summary(record: &AssessmentRecord, progress: Value) -> Value {
    json!({
        "id": record.id,
        "framework": record.framework_key,
        "status": record.status,
        "started_by": record.started_by,
        "started_at": record.started_at,
        "updated_at": record.updated_at,
        "completed_at": record.completed_at,
        "completed_by": record.completed_by,
        "confirmed_at": record.confirmed_at,
        "confirmed_by": record.confirmed_by,
        "progress": progress,
        "result": record.result,
        "applied": record.applied,
    })
}

/// The implied status of one control, as stored in a result.
#[derive(Deserialize)]
struct Implied {
    control: String,
    status: ControlStatus,
    justification: Option<String>,
}

fn implied_of(record: &AssessmentRecord) -> Result<Vec<Implied>, ApiError> {
    let implied = record
        .result
        .as_ref()
        .and_then(|r| r.get("implied"))
        .cloned()
        .ok_or_else(|| ApiError::internal("a completed assessment without a stored result"))?;
    serde_json::from_value(implied).map_err(ApiError::internal)
}

/// The session with every question, its current answer, and where to resume; a completed
/// session also lists what confirming it would change in the controls as they are now.
async fn full_view(
    state: &AppState,
    ctx: &OrgCtx,
    record: &AssessmentRecord,
) -> Result<Value, ApiError> {
    let catalogue = state.catalogues().for_org(ctx).await?;
    let bank = bank(&catalogue, record)?;
    let answers: HashMap<String, StoredAnswer> =
        assessments::answers(state.db().primary(), ctx, record.id)
            .await?
            .into_iter()
            .map(|a| (a.question_id.clone(), a))
            .collect();
    let questions: Vec<Value> = bank
        .questions()
        .iter()
        .map(|q| {
            let a = answers.get(&q.id);
            json!({
                "id": q.id,
                "control": q.control,
                "control_title": q.control_title,
                "domain": q.domain,
                "text": q.text,
                "answer": a.map(|a| a.answer),
                "notes": a.and_then(|a| a.notes.clone()),
                "answered_by": a.map(|a| &a.answered_by),
                "answered_at": a.map(|a| a.answered_at),
            })
        })
        .collect();
    let open = |id: &str| answers.get(id).is_none_or(|a| a.answer == Answer::Unknown);
    let answered = bank.questions().iter().filter(|q| !open(&q.id)).count() as u64;
    let mut view = summary(record, progress(bank.questions().len(), answered));
    view["next_question"] = json!(bank.questions().iter().find(|q| open(&q.id)).map(|q| &q.id));
    view["questions"] = json!(questions);
    if record.status == AssessmentStatus::Completed {
        let posture = state.posture().get(ctx).await?;
        let states = &posture.records;
        let changes: Vec<Value> = implied_of(record)?
            .iter()
            .filter_map(|i| {
                let current = states.get(&i.control);
                let from = current.map_or(ControlStatus::NotStarted, |c| c.status);
                (from != i.status)
                    .then(|| json!({ "control": i.control, "from": from, "to": i.status }))
            })
            .collect();
        view["proposed_changes"] = json!(changes);
    }
    Ok(view)
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartAssessment {
    /// An adopted framework's key, e.g. `cyber-essentials`.
    #[garde(length(min = 1, max = 64))]
    pub framework: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/assessments",
    operation_id = "start_assessment",
    tag = "assessments",
    summary = "Start an assessment of an adopted framework (needs `assessments.write`); one in progress per framework",
    params(crate::openapi::OrgIdParam),
    request_body = StartAssessment,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Started: the session with its questions"),
        (status = 409, description = "An assessment of this framework is already in progress (`details.assessment_id`)", body = crate::openapi::ErrorResponse),
        (status = 422, description = "Unknown or not adopted framework", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    access: RequirePermission<perm::AssessmentsWrite>,
    ValidJson(body): ValidJson<StartAssessment>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let access = access.access;
    let mut catalogue = state.catalogues().for_org(&access.ctx).await?;
    if catalogue.framework(&body.framework).is_none() {
        // Perhaps imported on another node since this node built the organisation's view.
        catalogue = state.catalogues().refreshed_for_org(&access.ctx).await?;
    }
    let Some(framework) = catalogue.framework(&body.framework) else {
        return Err(invalid_field("framework", "is not a known framework key"));
    };
    let adopted = posture::adopted(state.db().primary(), &access.ctx).await?;
    if !adopted.iter().any(|a| a.framework_key == framework.key) {
        return Err(invalid_field(
            "framework",
            "is not adopted by this organisation; adopt it first",
        ));
    }
    let (key, by, ctx) = (
        framework.key.clone(),
        actor_label(&access.caller),
        access.ctx,
    );
    let event = access.event("assessment.started");
    let started = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let record = assessments::start(txn, &ctx, &key, &by).await?;
                let mut ev = event.resource("assessment", record.id);
                ev.details = json!({ "framework": key }).into();
                audit::append(txn, ev).await?;
                Ok(record)
            })
        })
        .await;
    let record = match started {
        Ok(record) => record,
        Err(StoreError::Conflict { .. }) => {
            let open = assessments::open_for(state.db().primary(), &access.ctx, &framework.key)
                .await?
                .map(|a| a.id);
            return Err(conflict(format!(
                "an assessment of {} is already in progress: resume or delete it",
                framework.key
            ))
            .with_details(json!({ "field": "framework", "assessment_id": open })));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((
        StatusCode::CREATED,
        Json(full_view(&state, &access.ctx, &record).await?),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only assessments of this framework.
    pub framework: Option<String>,
    /// Only assessments in this status: in_progress, completed or confirmed.
    pub status: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=200 (default 50).
    pub limit: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/assessments",
    operation_id = "list_assessments",
    tag = "assessments",
    summary = "The organisation's assessments, newest first, with their progress (needs `assessments.read`)",
    params(crate::openapi::OrgIdParam, ListQuery),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One page of assessments"),
        (status = 422, description = "A query parameter is invalid", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    access: RequirePermission<perm::AssessmentsRead>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 50, 200)?;
    let status = match q.status.as_deref() {
        Some(s) => Some(
            AssessmentStatus::ALL
                .into_iter()
                .find(|x| x.as_str() == s)
                .ok_or_else(|| {
                    invalid_field("status", "must be in_progress, completed or confirmed")
                })?,
        ),
        None => None,
    };
    let before = match q.cursor.as_deref() {
        Some(c) => Some(
            Uuid::parse_str(c)
                .map_err(|_| invalid_field("cursor", "is not a cursor this API gave out"))?,
        ),
        None => None,
    };
    let db = state.db().primary();
    let filter = ListFilter {
        framework_key: q.framework.clone(),
        status,
        before,
        limit: limit + 1,
    };
    let mut page = assessments::list(db, &access.ctx, &filter).await?;
    let more = page.len() as u64 > limit;
    page.truncate(limit as usize);
    let ids: Vec<Uuid> = page.iter().map(|a| a.id).collect();
    let counts = assessments::answered_counts(db, &access.ctx, &ids).await?;
    let catalogue = state.catalogues().for_org(&access.ctx).await?;
    let mut bank_sizes: HashMap<String, usize> = HashMap::new();
    let items: Vec<Value> = page
        .iter()
        .map(|a| {
            let size = *bank_sizes
                .entry(a.framework_key.clone())
                .or_insert_with(|| {
                    Assessment::new(&catalogue, &a.framework_key).map_or(0, |b| b.questions().len())
                });
            let mut v = summary(a, progress(size, counts.get(&a.id).copied().unwrap_or(0)));
            // The list stays light: the result's score, not the whole result.
            v["score"] = a
                .result
                .as_ref()
                .map_or(Value::Null, |r| r["score"].clone());
            if let Some(o) = v.as_object_mut() {
                o.remove("result");
            }
            v
        })
        .collect();
    let next = if more { ids.last().copied() } else { None };
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/assessments/{assessment_id}",
    operation_id = "get_assessment",
    tag = "assessments",
    summary = "One assessment with every question, its current answer and where to resume (needs `assessments.read`)",
    params(crate::openapi::OrgIdParam, ("assessment_id" = Uuid, Path, description = "Assessment id")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The assessment: progress, `next_question`, `questions`, and once completed its `result` and `proposed_changes`"),
        (status = 404, description = "No such assessment in this organisation", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    access: RequirePermission<perm::AssessmentsRead>,
    Path((_, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &access.ctx, id).await?;
    Ok(Json(full_view(&state, &access.ctx, &record).await?))
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// yes, partial, no, not_applicable or unknown — nothing else is accepted.
    #[garde(skip)]
    #[schema(value_type = String)]
    pub answer: Answer,
    /// Kept with the answer and never interpreted; for not_applicable answers it becomes the
    /// control's justification.
    #[garde(inner(length(chars, max = 4000)))]
    pub notes: Option<String>,
}

#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org_id}/assessments/{assessment_id}/answers/{question_id}",
    operation_id = "answer_assessment_question",
    tag = "assessments",
    summary = "Answer (or change the answer to) one question of an assessment in progress (needs `assessments.write`)",
    params(
        crate::openapi::OrgIdParam,
        ("assessment_id" = Uuid, Path, description = "Assessment id"),
        ("question_id" = String, Path, description = "Question id, e.g. `IAM-01.q1`"),
    ),
    request_body = AnswerBody,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The stored answer and the assessment's progress"),
        (status = 404, description = "No such assessment, or the question is not part of it", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The assessment is no longer in progress", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn answer(
    State(state): State<AppState>,
    access: RequirePermission<perm::AssessmentsWrite>,
    Path((_, id, question_id)): Path<(Uuid, Uuid, String)>,
    ValidJson(body): ValidJson<AnswerBody>,
) -> Result<Json<Value>, ApiError> {
    let access = access.access;
    let record = find(&state, &access.ctx, id).await?;
    let catalogue = state.catalogues().for_org(&access.ctx).await?;
    let bank = bank(&catalogue, &record)?;
    if bank.question(&question_id).is_none() {
        return Err(ApiError::not_found("question"));
    }
    if record.status != AssessmentStatus::InProgress {
        return Err(conflict(format!(
            "the assessment is {}: answers can no longer change",
            record.status
        )));
    }
    let notes = body
        .notes
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let (by, ctx, qid) = (actor_label(&access.caller), access.ctx, question_id.clone());
    let event = access.event("assessment.answered");
    let value = body.answer;
    let stored = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let (before, after) =
                    assessments::set_answer(txn, &ctx, id, &qid, value, notes.as_deref(), &by)
                        .await?;
                let mut ev = event.resource("assessment", id);
                ev.details = json!({
                    "question": qid,
                    "answer": after.answer,
                    "before": before.map(|b| b.answer),
                    "notes": after.notes.is_some(),
                })
                .into();
                audit::append(txn, ev).await?;
                Ok(after)
            })
        })
        .await?;
    let answered = assessments::answered_counts(state.db().primary(), &access.ctx, &[id])
        .await?
        .get(&id)
        .copied()
        .unwrap_or(0);
    Ok(Json(json!({
        "question_id": stored.question_id,
        "answer": stored.answer,
        "notes": stored.notes,
        "answered_by": stored.answered_by,
        "answered_at": stored.answered_at,
        "progress": progress(bank.questions().len(), answered),
    })))
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/assessments/{assessment_id}/complete",
    operation_id = "complete_assessment",
    tag = "assessments",
    summary = "Complete an assessment: compute and store its result — score, gaps by impact, next steps, implied control statuses (applied only on confirmation) (needs `assessments.write`)",
    params(crate::openapi::OrgIdParam, ("assessment_id" = Uuid, Path, description = "Assessment id")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The completed assessment with its `result` and `proposed_changes`"),
        (status = 404, description = "No such assessment", body = crate::openapi::ErrorResponse),
        (status = 409, description = "Already completed", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    access: RequirePermission<perm::AssessmentsWrite>,
    Path((_, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Value>, ApiError> {
    let access = access.access;
    let record = find(&state, &access.ctx, id).await?;
    if record.status != AssessmentStatus::InProgress {
        return Err(conflict(format!(
            "the assessment is already {}",
            record.status
        )));
    }
    let catalogue = state.catalogues().for_org(&access.ctx).await?;
    let bank = bank(&catalogue, &record)?;
    // Answers to questions that left the bank (a re-imported pack) no longer count.
    let answers: HashMap<String, AnswerRecord> =
        assessments::answers(state.db().primary(), &access.ctx, id)
            .await?
            .into_iter()
            .filter(|a| bank.question(&a.question_id).is_some())
            .map(|a| {
                (
                    a.question_id,
                    AnswerRecord {
                        answer: a.answer,
                        notes: a.notes,
                    },
                )
            })
            .collect();
    let result = bank.evaluate(&answers).map_err(ApiError::internal)?;
    let result = serde_json::to_value(&result).map_err(ApiError::internal)?;
    let (by, ctx) = (actor_label(&access.caller), access.ctx);
    let event = access.event("assessment.completed");
    let completed = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let record = assessments::complete(txn, &ctx, id, &result, &by).await?;
                let mut ev = event.resource("assessment", id);
                ev.details = json!({
                    "framework": record.framework_key,
                    "score": result["score"],
                    "answered": result["answered"],
                    "questions": result["questions"],
                })
                .into();
                audit::append(txn, ev).await?;
                Ok(record)
            })
        })
        .await?;
    Ok(Json(full_view(&state, &access.ctx, &completed).await?))
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmAssessment {
    /// Apply only these controls' implied statuses; every assessed control when absent.
    #[garde(inner(length(min = 1, max = 500), inner(length(min = 1, max = 64))))]
    pub controls: Option<Vec<String>>,
}

/// One control's planned change on confirmation.
struct Planned {
    key: String,
    before: Option<ControlRecord>,
    update: ControlUpdate,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/assessments/{assessment_id}/confirm",
    operation_id = "confirm_assessment",
    tag = "assessments",
    summary = "Apply a completed assessment's implied control statuses (all, or the listed controls) in one transaction, each change audited (needs `assessments.write` and `controls.write`); send `{}` for all",
    params(crate::openapi::OrgIdParam, ("assessment_id" = Uuid, Path, description = "Assessment id")),
    request_body = ConfirmAssessment,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "What was applied (`applied`: control, from, to), left as it was (`unchanged`) and skipped with the reason (`skipped`)"),
        (status = 403, description = "The caller may not change controls", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such assessment", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The assessment is not completed, or already confirmed", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    access: RequirePermission<perm::AssessmentsWrite>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    ValidJson(body): ValidJson<ConfirmAssessment>,
) -> Result<Json<Value>, ApiError> {
    let access = access.access;
    access.require(&state, Permission::ControlsWrite).await?;
    let record = find(&state, &access.ctx, id).await?;
    match record.status {
        AssessmentStatus::Completed => {}
        AssessmentStatus::InProgress => {
            return Err(conflict("complete the assessment before confirming it"));
        }
        AssessmentStatus::Confirmed => {
            return Err(conflict("the assessment is already confirmed"));
        }
    }
    let implied = implied_of(&record)?;
    let by_key: HashMap<&str, &Implied> = implied.iter().map(|i| (i.control.as_str(), i)).collect();
    let explicit = body.controls.is_some();
    let selected: Vec<&Implied> = match &body.controls {
        None => implied.iter().collect(),
        Some(keys) => {
            let mut errors = Vec::new();
            let mut seen = HashSet::new();
            let mut picked = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let field = format!("controls[{i}]");
                match by_key.get(key.as_str()) {
                    None => errors.push(FieldError {
                        field,
                        reason: format!("'{key}' is not a control this assessment covers"),
                    }),
                    Some(_) if !seen.insert(key.as_str()) => errors.push(FieldError {
                        field,
                        reason: "appears twice".into(),
                    }),
                    Some(implied) => picked.push(*implied),
                }
            }
            if !errors.is_empty() {
                return Err(invalid(errors));
            }
            picked
        }
    };
    let states = states_by_key(&state, &access.ctx).await?;
    let mut planned = Vec::new();
    let mut unchanged = Vec::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    for (i, imp) in selected.iter().enumerate() {
        let current = states.get(&imp.control);
        let justification = if imp.status == ControlStatus::NotApplicable {
            if imp.justification.is_none() {
                // Scoring ignores an unexplained N/A, and the control store refuses one.
                let reason = "was answered not applicable without notes: answer it again with notes saying why";
                if explicit {
                    errors.push(FieldError {
                        field: format!("controls[{i}]"),
                        reason: reason.into(),
                    });
                } else {
                    skipped.push(json!({ "control": imp.control, "reason": reason }));
                }
                continue;
            }
            imp.justification.clone()
        } else {
            current.and_then(|c| c.justification.clone())
        };
        let from = current.map_or(ControlStatus::NotStarted, |c| c.status);
        if from == imp.status
            && (imp.status != ControlStatus::NotApplicable
                || current.and_then(|c| c.justification.as_deref()) == justification.as_deref())
        {
            unchanged.push(imp.control.clone());
            continue;
        }
        planned.push(Planned {
            key: imp.control.clone(),
            before: current.cloned(),
            update: ControlUpdate {
                status: imp.status,
                justification,
                owner_id: current.and_then(|c| c.owner_id),
                due_date: current.and_then(|c| c.due_date),
                notes: current.and_then(|c| c.notes.clone()),
            },
        });
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let applied: Vec<Value> = planned
        .iter()
        .map(|p| {
            json!({
                "control": p.key,
                "from": p.before.as_ref().map_or(ControlStatus::NotStarted, |b| b.status),
                "to": p.update.status,
            })
        })
        .collect();
    let outcome = json!({ "applied": applied, "unchanged": unchanged, "skipped": skipped });
    let changed = !planned.is_empty();
    let (by, ctx, stored) = (actor_label(&access.caller), access.ctx, outcome.clone());
    let events = (
        access.event("control.updated"),
        access.event("assessment.confirmed"),
    );
    state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                // First, so a second confirmation racing this one fails before any change.
                let record = assessments::confirm(txn, &ctx, id, &stored, &by).await?;
                for p in planned {
                    let after = posture::set_control(txn, &ctx, &p.key, &p.update, &by).await?;
                    let mut ev = events.0.clone().resource("control", &p.key);
                    ev.details =
                        json!({ "before": p.before, "after": after, "assessment": id }).into();
                    audit::append(txn, ev).await?;
                }
                let mut ev = events.1.resource("assessment", id);
                ev.details = json!({
                    "framework": record.framework_key,
                    "applied": stored["applied"].as_array().map_or(0, Vec::len),
                    "unchanged": stored["unchanged"].as_array().map_or(0, Vec::len),
                    "skipped": stored["skipped"].as_array().map_or(0, Vec::len),
                })
                .into();
                audit::append(txn, ev).await?;
                Ok(())
            })
        })
        .await?;
    if changed {
        state.posture_changed(access.ctx.org_id()).await;
    }
    let mut body = outcome;
    body["assessment_id"] = json!(id);
    body["status"] = json!(AssessmentStatus::Confirmed);
    Ok(Json(body))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/assessments/{assessment_id}",
    operation_id = "delete_assessment",
    tag = "assessments",
    summary = "Abandon an assessment that was not confirmed, with its answers (needs `assessments.write`)",
    params(crate::openapi::OrgIdParam, ("assessment_id" = Uuid, Path, description = "Assessment id")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such assessment", body = crate::openapi::ErrorResponse),
        (status = 409, description = "A confirmed assessment is kept", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    access: RequirePermission<perm::AssessmentsWrite>,
    Path((_, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let access = access.access;
    let (ctx, event) = (access.ctx, access.event("assessment.deleted"));
    state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let gone = assessments::delete(txn, &ctx, id).await?;
                let mut ev = event.resource("assessment", id);
                ev.details =
                    json!({ "framework": gone.framework_key, "status": gone.status }).into();
                audit::append(txn, ev).await?;
                Ok(())
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
