//! The assistant through HTTP: an organisation's AI settings (budget, prompt storage, safety
//! profile, PII restoration; `ai.admin`), its safety reviews (escalated calls for a person
//! to follow up; `ai.admin`) and conversations with streamed answers (`ai.use`).
//!
//! Conversations belong to the organisation and to whoever started them: other members see
//! 404, like another organisation. `POST .../messages` answers with Server-Sent Events —
//! each `data:` a JSON object `{chunk_id, chunk_type, content}` with `chunk_type`
//! `metadata` (first: model, provider, offline, fallback), `content` (text in order, already
//! through output safety), then `complete` (usage, cost, safety, budget, stored message id)
//! or `error` (`error.code` is one of the `ai_*` codes) — or with one JSON document when the
//! body says `"stream": false`. Failures before the answer starts (limits, budget, a blocked
//! prompt) are plain JSON errors with their status. Both messages are stored once the answer
//! is complete: the question as the provider received it (redacted; a conversation is kept
//! whatever `store_prompts` says — that setting is about the audit log), the answer as the
//! client saw it, except that restored personal data is stored as its placeholder. Earlier
//! turns go back to the provider as stored and are not judged again.

use crate::ai::budget::{BudgetStatus, month_bounds};
use crate::ai::grounding::org_system_prompt;
use crate::ai::{AiApiError, AiCaller, PipelineAnswer, PipelineEvent, PipelineParams};
use crate::auth::{RequirePermission, perm};
use crate::cache_sync::Change;
use crate::error::ApiError;
use crate::json::{ValidJson, invalid_field, page_limit};
use crate::state::AppState;
use assay_ai::{ChatMessage, TaskKind};
use assay_core::OrgCtx;
use assay_safety::Profile;
use assay_store::repo::ai_conversations::{self as conversations, Message, NewMessage};
use assay_store::repo::ai_safety_reviews::{self as safety_reviews, Resolved, ReviewStatus};
use assay_store::repo::ai_settings::{self, AiSettings};
use assay_store::repo::{ai_usage, audit};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use garde::Validate;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Earlier messages sent with a new question, at most (the newest ones).
const HISTORY_MESSAGES: usize = 20;
/// Characters of earlier messages sent with a new question, at most.
const HISTORY_CHARS: usize = 24_000;

const BUDGET_USED: HeaderName = HeaderName::from_static("x-ai-budget-used");
const BUDGET_WARNING: HeaderName = HeaderName::from_static("x-ai-budget-warning");

/// `X-AI-Budget-Used` (and `X-AI-Budget-Warning: true` past the warning ratio) on every
/// answer, the assistant's and the OpenAI-compatible endpoint's alike.
pub(crate) fn with_budget_headers(mut res: Response, budget: &BudgetStatus) -> Response {
    if let Ok(v) = HeaderValue::from_str(&budget.header_value()) {
        res.headers_mut().insert(BUDGET_USED, v);
    }
    if budget.warning {
        res.headers_mut()
            .insert(BUDGET_WARNING, HeaderValue::from_static("true"));
    }
    res
}

// ---------------------------------------------------------------------------------------
// Settings

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AiSettingsBody {
    /// Monthly AI budget in USD; `null` uses the deployment default.
    #[garde(skip)]
    pub monthly_budget_usd: Option<f64>,
    /// Keep prompts (as sent to the provider, after redaction) in the audit log.
    #[garde(skip)]
    pub store_prompts: bool,
    /// `permissive`, `standard` or `strict`; roles may raise it (a viewer is always strict).
    #[garde(length(min = 1, max = 16))]
    pub safety_profile: String,
    /// Show callers their own personal data where a chat answer repeats its placeholder
    /// (`[EMAIL_1]`); the provider never sees the values, stored messages keep the
    /// placeholders, secrets are never restored. Default false.
    #[serde(default)]
    #[garde(skip)]
    pub restore_pii: bool,
}

async fn settings_view(state: &AppState, ctx: &OrgCtx) -> Result<Value, ApiError> {
    let stored = ai_settings::get(state.db().primary(), ctx).await?;
    let default = state.config().ai_limits.default_monthly_budget_usd;
    let limit = stored.monthly_budget_usd.unwrap_or(default);
    let now = chrono::Utc::now();
    let (_, next) = month_bounds(now);
    let spent = ai_usage::org_spend_in_month(state.db().primary(), ctx.org_id(), now).await?;
    Ok(json!({
        "monthly_budget_usd": limit,
        "budget_is_default": stored.monthly_budget_usd.is_none(),
        "store_prompts": stored.store_prompts,
        "safety_profile": stored.safety_profile,
        "restore_pii": stored.restore_pii,
        "spent_this_month_usd": spent,
        "used_ratio": if limit > 0.0 { spent / limit } else { 1.0 },
        "warning_ratio": state.config().ai_limits.budget_warning_ratio,
        "resets_at": next,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/ai/settings",
    operation_id = "get_ai_settings",
    tag = "ai",
    summary = "The organisation's AI budget, prompt storage and safety profile, with this month's spend (needs `ai.admin`)",
    params(crate::openapi::OrgIdParam),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Settings and spend"),
        (status = 403, description = "The caller lacks `ai.admin`", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn get_settings(
    State(state): State<AppState>,
    access: RequirePermission<perm::AiAdmin>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(settings_view(&state, &access.ctx).await?))
}

#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org_id}/ai/settings",
    operation_id = "put_ai_settings",
    tag = "ai",
    summary = "Set the AI budget, prompt storage and safety profile (needs `ai.admin`); audited",
    params(crate::openapi::OrgIdParam),
    request_body = AiSettingsBody,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Stored; the settings and spend"),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn put_settings(
    State(state): State<AppState>,
    access: RequirePermission<perm::AiAdmin>,
    ValidJson(body): ValidJson<AiSettingsBody>,
) -> Result<Json<Value>, ApiError> {
    if let Some(b) = body.monthly_budget_usd
        && !(b.is_finite() && (0.0..=10_000_000.0).contains(&b))
    {
        return Err(invalid_field(
            "monthly_budget_usd",
            "must be a number of USD between 0 and 10000000, or null for the default",
        ));
    }
    let profile: Profile = body.safety_profile.parse().map_err(|_| {
        invalid_field(
            "safety_profile",
            "must be one of permissive, standard, strict",
        )
    })?;
    let new = AiSettings {
        monthly_budget_usd: body.monthly_budget_usd,
        store_prompts: body.store_prompts,
        safety_profile: profile.as_str().to_owned(),
        restore_pii: body.restore_pii,
        budget_warned_month: None,
    };
    let access = access.access;
    let ctx = access.ctx;
    state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let before = ai_settings::get(txn, &access.ctx).await?;
                let after = ai_settings::put(txn, &access.ctx, &new).await?;
                let mut ev = access
                    .event("ai.settings.updated")
                    .resource("organisation", access.ctx.org_id());
                ev.details = json!({
                    "before": { "monthly_budget_usd": before.monthly_budget_usd, "store_prompts": before.store_prompts, "safety_profile": before.safety_profile, "restore_pii": before.restore_pii },
                    "after": { "monthly_budget_usd": after.monthly_budget_usd, "store_prompts": after.store_prompts, "safety_profile": after.safety_profile, "restore_pii": after.restore_pii },
                }).into();
                audit::append(txn, ev).await?;
                Ok(())
            })
        })
        .await?;
    state
        .changed(Change::AiSettings { org: ctx.org_id() })
        .await;
    Ok(Json(settings_view(&state, &ctx).await?))
}

// ---------------------------------------------------------------------------------------
// Safety reviews

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReviewListQuery {
    /// `open` (default), `resolved` or `all`.
    pub status: Option<String>,
    /// At most this many (1..=200, default 50), newest first.
    pub limit: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/ai/safety-reviews",
    operation_id = "list_ai_safety_reviews",
    tag = "ai",
    summary = "AI calls the safety policy escalated for a person to follow up, newest first (needs `ai.admin`)",
    description = "Each review names who made the call, the task, the direction (`input`: the \
        caller's prompt; `output`: the model's answer), the escalating rule ids (e.g. \
        `disallowed.self_harm`), what the call was about and its request id. The matched text \
        is never kept.",
    params(crate::openapi::OrgIdParam, ReviewListQuery),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The reviews"),
        (status = 403, description = "The caller lacks `ai.admin`", body = crate::openapi::ErrorResponse),
        (status = 422, description = "`status` or `limit` is invalid", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn list_safety_reviews(
    State(state): State<AppState>,
    access: RequirePermission<perm::AiAdmin>,
    Query(q): Query<ReviewListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match q.status.as_deref().unwrap_or("open") {
        "open" => Some(ReviewStatus::Open),
        "resolved" => Some(ReviewStatus::Resolved),
        "all" => None,
        _ => {
            return Err(invalid_field(
                "status",
                "must be one of open, resolved, all",
            ));
        }
    };
    let limit = page_limit(q.limit, 50, 200)?;
    let items = safety_reviews::list(state.db().primary(), &access.ctx, status, limit).await?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveReviewBody {
    /// What was done (who was contacted, why no action was needed): kept with the review
    /// and in the audit log.
    #[garde(length(chars, min = 1, max = 2000))]
    pub note: String,
}

/// The path's ids; a malformed review id is simply not found.
#[derive(Deserialize)]
pub struct ReviewPath {
    #[allow(dead_code)]
    org_id: String,
    review_id: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/ai/safety-reviews/{review_id}/resolve",
    operation_id = "resolve_ai_safety_review",
    tag = "ai",
    summary = "Resolve an open safety review with a note (needs `ai.admin`); audited",
    params(crate::openapi::OrgIdParam, ("review_id" = Uuid, Path, description = "Review id")),
    request_body = ResolveReviewBody,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Resolved; the review"),
        (status = 404, description = "No such review in this organisation", body = crate::openapi::ErrorResponse),
        (status = 409, description = "Already resolved (`already_resolved`; the review is in `details`)", body = crate::openapi::ErrorResponse),
        (status = 422, description = "`note` is missing or too long", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn resolve_safety_review(
    State(state): State<AppState>,
    access: RequirePermission<perm::AiAdmin>,
    Path(path): Path<ReviewPath>,
    ValidJson(body): ValidJson<ResolveReviewBody>,
) -> Result<Json<Value>, ApiError> {
    let id: Uuid = path
        .review_id
        .parse()
        .map_err(|_| ApiError::not_found("safety review"))?;
    let access = access.access;
    let note = body.note.trim().to_owned();
    if note.is_empty() {
        return Err(invalid_field("note", "must not be blank"));
    }
    let outcome = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let by = access.caller.actor();
                let outcome = safety_reviews::resolve(txn, &access.ctx, id, &by, &note).await?;
                if let Resolved::Now(review) = &outcome {
                    let mut ev = access
                        .event("ai.safety_review.resolved")
                        .resource("ai_safety_review", review.id);
                    ev.details = json!({ "rules": review.rules, "direction": review.direction, "note": note }).into();
                    audit::append(txn, ev).await?;
                }
                Ok(outcome)
            })
        })
        .await?;
    match outcome {
        Resolved::Now(review) => Ok(Json(json!({ "review": review }))),
        Resolved::Already(review) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_resolved",
            "this safety review was already resolved",
        )
        .with_details(json!({ "review": review }))),
        Resolved::NotFound => Err(ApiError::not_found("safety review")),
    }
}

// ---------------------------------------------------------------------------------------
// Conversations

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationBody {
    /// A title; defaults to "New conversation".
    #[garde(inner(length(chars, min = 1, max = 200)))]
    pub title: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/ai/conversations",
    operation_id = "create_ai_conversation",
    tag = "ai",
    summary = "Start an assistant conversation (needs `ai.use`)",
    params(crate::openapi::OrgIdParam),
    request_body = CreateConversationBody,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "The conversation"),
        (status = 403, description = "The caller lacks `ai.use`", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn create_conversation(
    State(state): State<AppState>,
    access: RequirePermission<perm::AiUse>,
    ValidJson(body): ValidJson<CreateConversationBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let access = access.access;
    let owner = AiCaller::from_access(&access).key();
    let title = body
        .title
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "New conversation".to_owned());
    let created = state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let c = conversations::create(txn, &access.ctx, &owner, &title).await?;
                audit::append(
                    txn,
                    access
                        .event("ai.conversation.created")
                        .resource("ai_conversation", c.id),
                )
                .await?;
                Ok(c)
            })
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "conversation": created })),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// At most this many (1..=200, default 50), most recently active first.
    pub limit: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/ai/conversations",
    operation_id = "list_ai_conversations",
    tag = "ai",
    summary = "The caller's conversations, most recently active first (needs `ai.use`)",
    params(crate::openapi::OrgIdParam, ListQuery),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses((status = 200, description = "The conversations"))
)]
pub async fn list_conversations(
    State(state): State<AppState>,
    access: RequirePermission<perm::AiUse>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 50, 200)?;
    let owner = AiCaller::from_access(&access).key();
    let items = conversations::list(state.db().primary(), &access.ctx, &owner, limit).await?;
    Ok(Json(json!({ "items": items })))
}

/// The path's ids; a malformed conversation id is simply not found.
#[derive(Deserialize)]
pub struct ConversationPath {
    #[allow(dead_code)]
    org_id: String,
    conversation_id: String,
}

fn conversation_id(p: &ConversationPath) -> Result<Uuid, ApiError> {
    p.conversation_id
        .parse()
        .map_err(|_| ApiError::not_found("conversation"))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/ai/conversations/{conversation_id}",
    operation_id = "get_ai_conversation",
    tag = "ai",
    summary = "A conversation with its messages (needs `ai.use`; only its owner sees it)",
    params(crate::openapi::OrgIdParam, ("conversation_id" = Uuid, Path, description = "Conversation id")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The conversation and its messages in order"),
        (status = 404, description = "No such conversation of the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn get_conversation(
    State(state): State<AppState>,
    access: RequirePermission<perm::AiUse>,
    Path(path): Path<ConversationPath>,
) -> Result<Json<Value>, ApiError> {
    let id = conversation_id(&path)?;
    let owner = AiCaller::from_access(&access).key();
    let db = state.db().primary();
    let conv = conversations::get(db, &access.ctx, &owner, id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    let messages = conversations::messages(db, &access.ctx, id).await?;
    Ok(Json(json!({ "conversation": conv, "messages": messages })))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/ai/conversations/{conversation_id}",
    operation_id = "delete_ai_conversation",
    tag = "ai",
    summary = "Delete a conversation and its messages (needs `ai.use`; its owner only); audited",
    params(crate::openapi::OrgIdParam, ("conversation_id" = Uuid, Path, description = "Conversation id")),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such conversation of the caller's", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn delete_conversation(
    State(state): State<AppState>,
    access: RequirePermission<perm::AiUse>,
    Path(path): Path<ConversationPath>,
) -> Result<StatusCode, ApiError> {
    let id = conversation_id(&path)?;
    let access = access.access;
    let owner = AiCaller::from_access(&access).key();
    state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                if !conversations::delete(txn, &access.ctx, &owner, id).await? {
                    return Err(assay_store::StoreError::not_found("conversation"));
                }
                audit::append(
                    txn,
                    access
                        .event("ai.conversation.deleted")
                        .resource("ai_conversation", id),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessageBody {
    /// The question (1..=16000 characters).
    #[garde(length(chars, min = 1, max = 16000))]
    pub content: String,
    /// Stream the answer as Server-Sent Events (default) or answer with one JSON document.
    #[garde(skip)]
    #[serde(default = "default_true")]
    pub stream: bool,
}

fn default_true() -> bool {
    true
}

/// Earlier messages, newest last, within the history limits.
fn history(messages: &[Message]) -> Vec<ChatMessage> {
    let mut out = Vec::new();
    let mut chars = 0;
    for m in messages.iter().rev().take(HISTORY_MESSAGES) {
        chars += m.content.len();
        if chars > HISTORY_CHARS {
            break;
        }
        out.push(match m.role.as_str() {
            "assistant" => ChatMessage::assistant(m.content.clone()),
            _ => ChatMessage::user(m.content.clone()),
        });
    }
    out.reverse();
    out
}

/// Store the question and the answer together, once the answer is complete.
async fn store_exchange(
    state: &AppState,
    ctx: &OrgCtx,
    conversation: Uuid,
    question: String,
    answer: &PipelineAnswer,
) -> Result<(Message, Message), ApiError> {
    let ctx = *ctx;
    let user = NewMessage {
        role: "user".into(),
        content: answer.prompt.clone().unwrap_or(question),
        safety_action: Some(answer.safety.input.as_str().into()),
        safety_rules: answer.safety.input_rules.clone(),
        ..NewMessage::default()
    };
    let assistant = NewMessage {
        role: "assistant".into(),
        // With placeholders, where the client saw its own personal data restored.
        content: answer
            .unrestored
            .clone()
            .unwrap_or_else(|| answer.text.clone()),
        model: Some(answer.meta.model.clone()),
        provider: Some(answer.meta.provider.clone()),
        offline: answer.meta.offline,
        safety_action: Some(answer.safety.output.as_str().into()),
        safety_rules: answer.safety.output_rules.clone(),
        input_tokens: i64::try_from(answer.meta.usage.input_tokens).ok(),
        output_tokens: i64::try_from(answer.meta.usage.output_tokens).ok(),
        cost_usd: Some(answer.meta.cost_usd),
    };
    Ok(state
        .db()
        .write(move |txn| {
            Box::pin(async move {
                let q = conversations::append(txn, &ctx, conversation, user).await?;
                let a = conversations::append(txn, &ctx, conversation, assistant).await?;
                Ok((q, a))
            })
        })
        .await?)
}

fn complete_body(answer: &PipelineAnswer, stored: Option<&(Message, Message)>) -> Value {
    json!({
        "message_id": stored.map(|(_, a)| a.id),
        "model": answer.meta.model,
        "provider": answer.meta.provider,
        "offline": answer.meta.offline,
        "fallback": answer.meta.fallback,
        "fallbacks": answer.meta.fallbacks,
        "cache_hit": answer.meta.cache_hit,
        "usage": {
            "input_tokens": answer.meta.usage.input_tokens,
            "output_tokens": answer.meta.usage.output_tokens,
            "estimated": answer.meta.usage.estimated,
        },
        "cost_usd": answer.meta.cost_usd,
        "safety": answer.safety,
        "budget": answer.budget,
    })
}

/// One event: `{chunk_id, chunk_type, content}` plus, for the non-content types, one more
/// member named by the type (`metadata`, `complete`, `error`). Serialised straight from its
/// parts: content events come one per token or so.
fn sse_event(id: u64, chunk_type: &str, content: &str, extra: Option<Value>) -> Event {
    struct Data<'a> {
        id: u64,
        chunk_type: &'a str,
        content: &'a str,
        extra: Option<Value>,
    }
    impl serde::Serialize for Data<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(None)?;
            m.serialize_entry("chunk_id", &self.id)?;
            m.serialize_entry("chunk_type", self.chunk_type)?;
            m.serialize_entry("content", self.content)?;
            if let Some(extra) = &self.extra {
                m.serialize_entry(self.chunk_type, extra)?;
            }
            m.end()
        }
    }
    let data = Data {
        id,
        chunk_type,
        content,
        extra,
    };
    Event::default()
        .id(id.to_string())
        .event(chunk_type)
        // A map of strings, numbers and JSON values: serialising cannot fail.
        .data(serde_json::to_string(&data).unwrap_or_default())
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/ai/conversations/{conversation_id}/messages",
    operation_id = "post_ai_message",
    tag = "ai",
    summary = "Ask in a conversation (needs `ai.use`): Server-Sent Events `{chunk_id, chunk_type: metadata|content|complete|error, content}`, or JSON with `\"stream\": false`",
    params(crate::openapi::OrgIdParam, ("conversation_id" = Uuid, Path, description = "Conversation id")),
    request_body = PostMessageBody,
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The answer: an SSE stream (text/event-stream) or, with `stream: false`, JSON"),
        (status = 402, description = "`ai_budget_exceeded`: the monthly AI budget is spent", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such conversation of the caller's", body = crate::openapi::ErrorResponse),
        (status = 422, description = "`ai_blocked` (rule ids in details) or an invalid body", body = crate::openapi::ErrorResponse),
        (status = 429, description = "`ai_rate_limited`, with Retry-After", body = crate::openapi::ErrorResponse),
        (status = 502, description = "`ai_invalid_output`", body = crate::openapi::ErrorResponse),
        (status = 503, description = "`ai_unavailable`", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn post_message(
    State(state): State<AppState>,
    access: RequirePermission<perm::AiUse>,
    Path(path): Path<ConversationPath>,
    ValidJson(body): ValidJson<PostMessageBody>,
) -> Result<Response, AiApiError> {
    let id = conversation_id(&path)?;
    let caller = AiCaller::from_access(&access);
    let ctx = access.ctx;
    let db = state.db().primary();
    conversations::get(db, &ctx, &caller.key(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    let earlier = conversations::messages(db, &ctx, id).await?;
    let mut messages = history(&earlier);
    let stored_turns = messages.len();
    messages.push(ChatMessage::user(body.content.clone()));
    let params = PipelineParams {
        system: Some(org_system_prompt(&state, &ctx).await?),
        resource: Some(("ai_conversation".into(), id.to_string())),
        history: stored_turns,
        ..PipelineParams::default()
    };
    let pipeline = state.ai_pipeline();

    if !body.stream {
        let answer = pipeline
            .complete(&caller, TaskKind::Chat, messages, params)
            .await?;
        let stored = store_exchange(&state, &ctx, id, body.content, &answer).await?;
        // The stored answer keeps its placeholders; the client sees its own data restored.
        let mut message = json!(stored.1);
        if answer.unrestored.is_some() {
            message["content"] = json!(answer.text);
        }
        let res = Json(json!({
            "conversation_id": id,
            "message": message,
            "question": stored.0,
            "complete": complete_body(&answer, Some(&stored)),
        }))
        .into_response();
        return Ok(with_budget_headers(res, &answer.budget));
    }

    let mut events = pipeline
        .stream(&caller, TaskKind::Chat, messages, params)
        .await?;
    let budget = events.budget;
    // The answer is driven here, not by the client: it is stored (and audited) even when
    // the client goes away half-way.
    let (tx, rx) = mpsc::channel::<Event>(64);
    let question = body.content;
    tokio::spawn(async move {
        let mut n: u64 = 0;
        let mut client_gone = false;
        let mut emit = async |ev: Event| {
            if !client_gone && tx.send(ev).await.is_err() {
                client_gone = true;
            }
        };
        while let Some(ev) = events.next().await {
            let event = match ev {
                PipelineEvent::Metadata {
                    model,
                    provider,
                    offline,
                    fallback,
                } => sse_event(
                    n,
                    "metadata",
                    "",
                    Some(
                        json!({ "conversation_id": id, "model": model, "provider": provider, "offline": offline, "fallback": fallback }),
                    ),
                ),
                PipelineEvent::Content(text) => sse_event(n, "content", &text, None),
                PipelineEvent::Complete(answer) => {
                    match store_exchange(&state, &ctx, id, question.clone(), &answer).await {
                        Ok(stored) => sse_event(
                            n,
                            "complete",
                            "",
                            Some(complete_body(&answer, Some(&stored))),
                        ),
                        Err(e) => {
                            tracing::error!(
                                code = e.code,
                                "could not store the conversation messages"
                            );
                            sse_event(n, "error", "", Some(AiApiError::Api(e).event_body()))
                        }
                    }
                }
                PipelineEvent::Error(e) => sse_event(n, "error", "", Some(e.event_body())),
            };
            emit(event).await;
            n += 1;
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<Event, Infallible>);
    let res = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    Ok(with_budget_headers(res, &budget))
}
