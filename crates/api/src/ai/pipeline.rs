//! The AI pipeline every AI endpoint goes through. Reach it with
//! `state.ai_pipeline()`.
//!
//! In order, for [`AiPipeline::complete`] and [`AiPipeline::stream`]:
//!
//! 0. **Switched off?** With `features.ai = false` every call is `ai_disabled` (403) before
//!    anything is counted, read or sent.
//! 1. **Rate limits** per caller (user or API key) and task class, plus prompt tokens per
//!    minute ([`super::limits`]) -> `ai_rate_limited` (429 + `Retry-After`); on
//!    `/v1/chat/completions` the key's general API limit is spent in the same step
//!    ([`AiCaller::api_limit`]) -> `rate_limited`. Refusals are audited (`Denied`).
//! 2. **Monthly organisation budget** ([`super::budget`]) -> `ai_budget_exceeded` (402);
//!    at 80 % (configurable) the answer carries `budget.warning` and `ai.budget.warning` is
//!    audited once a month.
//! 3. **Input safety** (`assay-safety`, the org's profile capped by the caller's role) on
//!    every caller-supplied message: BLOCK -> `ai_blocked` (422) with the rule ids, never the
//!    matched text, and nothing goes to a provider; MODIFY/ESCALATE -> the redacted text is
//!    what the provider receives. A conversation's stored turns were judged when they were
//!    written and go as stored ([`PipelineParams::history`]). Placeholders are numbered
//!    across the whole exchange (every message, and the answer after them), past any
//!    placeholder an earlier turn left in the history, so `[EMAIL_1]` means one value
//!    throughout.
//! 4. **Gateway** (`assay-ai`): cache, model selection, retries, breakers, offline fallback,
//!    usage ledger. A fresh answer is cached only if the output policy would let it through
//!    unchanged (`AiRequest::cache_only_if`), so no personal data or secret a model wrote
//!    is kept in the cache (or in Redis); hits are judged again like fresh answers.
//!    Failures -> `ai_unavailable` (503) or `ai_invalid_output` (502).
//! 5. **Output safety**: complete answers are assessed whole; streamed answers go through a
//!    `StreamScanner`, so PII split across chunks is redacted before any of it is sent.
//!    A blocked answer -> `ai_blocked` (direction `output`).
//!    **Escalations** (input or output): the call goes on, and a safety review is recorded
//!    for the organisation's AI admins (`ai_safety_reviews`, audited as
//!    `ai.safety.escalated` with the rule ids, never the text; metric
//!    `assay_ai_safety_escalations_total`). See `GET .../ai/safety-reviews`.
//! 6. Optional **output schema** check (a JSON Schema subset, see [`super::schema`]).
//! 7. **Audit**: one `ai.call` event per call (who, task, model, tokens, cost, safety
//!    decisions, cache hit, outcome), written off the request path. The prompt (as sent to
//!    the provider, i.e. after redaction: secrets are never stored) is included only when
//!    the organisation enabled prompt storage in its AI settings.
//!
//! **Who the caller is** ([`AiCaller`]): a person acts with their membership role in the
//! organisation. An API key (scope `ai`) acts with the fixed role `member` for safety and
//! prompt-grounding purposes — the organisation's safety profile, raised to at least
//! `standard` — whatever its other scopes: a key is a program, and the safety caps must not
//! depend on who happened to create it. Limits are per API key, like per user.
//!
//! **PII restoration** (the organisation's `restore_pii` setting, off by default): where a
//! chat answer repeats a placeholder of the caller's own personal data (`[EMAIL_1]`), the
//! client sees the value it wrote; the provider never does, secrets are never restored, and
//! stored conversation messages keep the placeholders (so the history a provider sees later
//! has none of the values either). Structured answers keep their placeholders. Off, the
//! client sees `[EMAIL_1]` where the model referred to a redacted value.

use super::audit_queue::AuditQueue;
use super::budget::{BudgetStatus, Budgets, Reservation, month_key};
use super::errors::{AiApiError, BlockedAt};
use super::limits::AiLimits;
use super::schema;
use crate::auth::{Caller, ClientFacts, OrgAccess};
use assay_ai::types::{ComplexityHints, GenerationParams, MessageRole};
use assay_ai::{AiRequest, AiStreamEvent, ChatMessage, Gateway, TaskKind, TokenUsage};
use assay_config::{AiLimitsConfig, Config};
use assay_core::{OrgCtx, OrgId, Role, UserId};
use assay_infra::refresh::RefreshingCache;
use assay_safety::{
    Action, Direction, Placeholders, Policy, Profile, RestorationMap, Scanner, StreamScanner,
};
use assay_store::Db;
use assay_store::repo::ai_safety_reviews::{self, NewReview};
use assay_store::repo::ai_settings::{self, AiSettings};
use assay_store::repo::audit::{Actor, AuditDetails, NewAuditEvent, Outcome};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::mpsc;

/// Who is asking, as the pipeline needs it: tenant, principal, role and request facts.
#[derive(Clone, Debug)]
pub struct AiCaller {
    pub org_id: OrgId,
    pub principal: Principal,
    /// The role safety caps are computed from (see the module docs for API keys).
    pub role: Role,
    /// IP, user agent and request id for the audit events.
    pub facts: ClientFacts,
    /// The request's general API limit, when the route left it to be spent with the AI
    /// limits in one step (`/v1/chat/completions`; see `crate::rate_limit`).
    pub api_limit: Option<crate::rate_limit::DeferredApiLimit>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    User(UserId),
    ApiKey(String),
}

impl AiCaller {
    /// The caller of a request with verified access to an organisation.
    pub fn from_access(access: &OrgAccess) -> Self {
        let (principal, role) = match &access.caller {
            Caller::User { user_id, .. } => (Principal::User(*user_id), access.ctx.role()),
            Caller::ApiKey { key_id, .. } => (Principal::ApiKey(key_id.clone()), Role::Member),
        };
        Self {
            org_id: access.ctx.org_id(),
            principal,
            role,
            facts: access.facts.clone(),
            api_limit: None,
        }
    }

    /// `user:<uuid>` or `api_key:<id>`: the key of limits and of conversation ownership.
    pub fn key(&self) -> String {
        match &self.principal {
            Principal::User(u) => format!("user:{u}"),
            Principal::ApiKey(k) => format!("api_key:{k}"),
        }
    }

    pub fn ctx(&self) -> OrgCtx {
        match &self.principal {
            Principal::User(u) => OrgCtx::for_verified_member(self.org_id, *u, self.role),
            Principal::ApiKey(_) => OrgCtx::for_api_key(self.org_id, self.role),
        }
    }

    pub fn actor(&self) -> Actor {
        match &self.principal {
            Principal::User(u) => Actor::User(*u),
            Principal::ApiKey(k) => Actor::ApiKey(k.clone()),
        }
    }

    fn event(&self, action: &str) -> NewAuditEvent {
        self.facts.event(Some(self.org_id), self.actor(), action)
    }
}

/// Options of one call. Everything is optional.
#[derive(Clone, Debug, Default)]
pub struct PipelineParams {
    pub generation: GenerationParams,
    pub hints: ComplexityHints,
    /// A system prompt built by Assay from this organisation's own data (grounding). It is
    /// put first and is not safety-scanned as caller input; never put caller text here.
    pub system: Option<String>,
    /// A JSON Schema (subset: type, properties, required, items, enum, minItems, maxItems,
    /// minimum, maximum, minLength, maxLength) the answer must satisfy. The model is asked
    /// for one JSON object matching it; the parsed value is in [`PipelineAnswer::json`].
    pub output_schema: Option<Value>,
    /// Skip the cache lookup (the fresh answer is still cached).
    pub bypass_cache: bool,
    /// How many of the leading messages are turns Assay stored itself (a conversation's
    /// history): each was judged when it was written — a question as input, an answer as
    /// output — and is stored as it was forwarded, so it goes to the provider as stored
    /// and is not judged again (or one escalated answer would block, or re-escalate, every
    /// later turn; a stricter profile applies from the next new message). Caller-supplied
    /// messages (`/v1/chat/completions`) are never history.
    pub history: usize,
    /// What the call is about, for the audit event (`("conversation", id)`).
    pub resource: Option<(String, String)>,
    /// A model the caller pinned (registry id or `offline`); `None` lets the gateway choose.
    pub model: Option<String>,
}

/// How the answer was produced.
#[derive(Clone, Debug, Serialize)]
pub struct AnswerMeta {
    pub model: String,
    pub provider: String,
    /// Answered by the offline provider (the built-in catalogue), not an AI model.
    pub offline: bool,
    /// The answer is a fallback: the offline provider answered because every configured
    /// model failed or none is configured.
    pub fallback: bool,
    /// Models that failed before the one that answered, with their error codes.
    pub fallbacks: Vec<String>,
    pub cache_hit: bool,
    pub usage: TokenUsage,
    pub cost_usd: f64,
    pub latency_ms: f64,
    /// Why generation stopped, as the provider said (`None` when it did not say).
    pub finish_reason: Option<assay_ai::types::FinishReason>,
}

/// The safety decisions of one call.
#[derive(Clone, Debug, Serialize)]
pub struct SafetySummary {
    pub profile: Profile,
    pub input: Action,
    pub input_rules: Vec<String>,
    pub output: Action,
    pub output_rules: Vec<String>,
}

/// A complete answer, already through output safety.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineAnswer {
    /// The answer as the client may see it (redacted where the policy said so, with the
    /// caller's personal data restored where the organisation asked for that).
    pub text: String,
    /// The answer before personal data was restored, when any was: what to store, so
    /// stored messages never hold values the provider was not given.
    #[serde(skip)]
    pub unrestored: Option<String>,
    /// The parsed JSON for structured tasks and calls with an output schema.
    pub json: Option<Value>,
    pub meta: AnswerMeta,
    pub safety: SafetySummary,
    pub budget: BudgetStatus,
    /// The caller's last message as the provider received it (redacted where the input
    /// policy said so): what to store when the prompt is kept.
    pub prompt: Option<String>,
}

/// What a streamed answer delivers, in order: `Metadata`, `Content`*, then `Complete` or
/// `Error`. Content is released only once output safety cleared it.
#[derive(Clone, Debug)]
pub enum PipelineEvent {
    Metadata {
        model: String,
        provider: String,
        offline: bool,
        fallback: bool,
    },
    Content(String),
    /// The whole answer (its `text` is the concatenated content) with usage and cost.
    Complete(Box<PipelineAnswer>),
    Error(AiApiError),
}

/// A streamed answer: a `Stream` of [`PipelineEvent`]s plus the budget standing known
/// before the first event (for response headers).
pub struct PipelineStream {
    pub budget: BudgetStatus,
    events: BoxStream<'static, PipelineEvent>,
}

impl Stream for PipelineStream {
    type Item = PipelineEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PipelineEvent>> {
        self.events.poll_next_unpin(cx)
    }
}

/// The pipeline. Cheap to clone.
#[derive(Clone)]
pub struct AiPipeline {
    inner: Arc<Inner>,
}

struct Inner {
    /// `features.ai`: false refuses every call with `ai_disabled`.
    enabled: bool,
    gateway: Gateway,
    db: Db,
    limits: AiLimits,
    budgets: Budgets,
    /// Organisations' AI settings, reused for `spend_cache_ms` (dropped on change here).
    settings: Option<RefreshingCache<OrgId, AiSettings>>,
    cfg: AiLimitsConfig,
    audit: AuditQueue,
    /// Organisations whose budget warning this node has seen given this month (`YYYY-MM`):
    /// spares a database write on every call past the threshold.
    warned: std::sync::Mutex<std::collections::HashMap<OrgId, String>>,
    /// The highest configured prices (USD per million tokens), for in-flight estimates.
    max_price: (f64, f64),
}

/// A call that passed limits, budget and input safety, ready for the gateway.
struct Prepared {
    request: AiRequest,
    policy: Policy,
    budget: BudgetStatus,
    reservation: Reservation,
    input: Action,
    input_rules: Vec<String>,
    /// Placeholder numbering after the input's, for the answer's own redactions.
    numbering: Placeholders,
    /// The caller's personal data behind the input's placeholders, when the organisation
    /// restores it in answers (and this task's answer is text).
    restore: Option<RestorationMap>,
    prompt: Option<Vec<ChatMessage>>,
    last_input: Option<String>,
    schema: Option<Value>,
    resource: Option<(String, String)>,
    started: Instant,
}

/// The `ai.call` audit event's details. Serialised straight to text, once per AI call:
/// no `Value` tree on the request path (see [`AuditDetails`]).
#[derive(Serialize)]
struct CallDetails<'a> {
    task: &'a str,
    outcome: &'a str,
    streamed: bool,
    latency_ms: f64,
    budget_used_ratio: f64,
    safety: CallSafety<'a>,
    /// Which model answered and what it cost; absent when no model answered.
    #[serde(flatten)]
    answer: Option<CallAnswer<'a>>,
    /// The prompt, only where the organisation keeps prompts.
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a [ChatMessage]>,
}

#[derive(Serialize)]
struct CallSafety<'a> {
    profile: Profile,
    input: Action,
    input_rules: &'a [String],
    output: Action,
    output_rules: &'a [String],
}

#[derive(Serialize)]
struct CallAnswer<'a> {
    model: &'a str,
    provider: &'a str,
    offline: bool,
    cache_hit: bool,
    fallbacks: &'a [String],
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
}

/// How a call ended, for its audit event.
struct Ending<'a> {
    outcome: &'a str,
    meta: Option<&'a AnswerMeta>,
    output: Action,
    output_rules: &'a [String],
    streamed: bool,
}

fn rule_ids(rules: impl IntoIterator<Item = assay_safety::Rule>) -> Vec<String> {
    rules.into_iter().map(|r| r.id().to_owned()).collect()
}

fn answer_meta(m: &assay_ai::ResponseMeta) -> AnswerMeta {
    AnswerMeta {
        model: m.model.clone(),
        provider: m.provider.clone(),
        offline: m.offline,
        fallback: m.offline,
        fallbacks: m.fallbacks.clone(),
        cache_hit: m.cache_hit,
        usage: m.usage,
        cost_usd: m.cost_usd,
        latency_ms: m.latency.as_secs_f64() * 1000.0,
        finish_reason: m.finish_reason.clone(),
    }
}

impl AiPipeline {
    pub fn new(
        gateway: Gateway,
        db: Db,
        config: &Config,
        limiter: assay_infra::rate_limit::RateLimiter,
        bookkeeping: &crate::bookkeeping::Bookkeeping,
    ) -> Self {
        let limits = AiLimits::new(config.ai_limits.clone(), limiter);
        let max_price = config.ai.models.iter().fold((0.0_f64, 0.0_f64), |acc, m| {
            (
                acc.0.max(m.price.input_per_million),
                acc.1.max(m.price.output_per_million),
            )
        });
        let reuse = std::time::Duration::from_millis(config.ai_limits.spend_cache_ms);
        Self {
            inner: Arc::new(Inner {
                enabled: config.features.ai,
                gateway,
                audit: AuditQueue::start(&bookkeeping.runtime, bookkeeping.db.clone(), 10_000),
                db,
                limits,
                budgets: Budgets::new(reuse),
                settings: (!reuse.is_zero())
                    .then(|| RefreshingCache::new("ai_org_settings", reuse, 100_000)),
                cfg: config.ai_limits.clone(),
                warned: Default::default(),
                max_price,
            }),
        }
    }

    /// Wait until the audit events and usage records of calls answered so far are written
    /// (at shutdown, and for tests that read them back).
    pub async fn flush_bookkeeping(&self) {
        self.inner.audit.flush().await;
        self.inner.gateway.flush_usage().await;
    }

    /// False when the deployment switched AI off (`features.ai = false`).
    pub fn enabled(&self) -> bool {
        self.inner.enabled
    }

    pub fn limits(&self) -> &AiLimits {
        &self.inner.limits
    }

    /// Forget the cached AI settings of `org` on this node (use
    /// [`crate::state::AppState::changed`], which tells the other nodes too; they pick a
    /// lost announcement up within `spend_cache_ms`).
    pub async fn settings_changed(&self, org: OrgId) {
        if let Some(cache) = &self.inner.settings {
            cache.invalidate(&org).await;
        }
    }

    /// Forget every organisation's cached AI settings (changes may have been missed).
    pub fn forget_all_settings(&self) {
        if let Some(cache) = &self.inner.settings {
            cache.invalidate_all();
        }
    }

    /// Answer `messages` for `task` on behalf of `caller`, whole. See the module docs for
    /// the steps and the errors.
    pub async fn complete(
        &self,
        caller: &AiCaller,
        task: TaskKind,
        messages: Vec<ChatMessage>,
        params: PipelineParams,
    ) -> Result<PipelineAnswer, AiApiError> {
        let p = self.inner.prepare(caller, task, messages, params).await?;
        self.inner.complete_prepared(caller, p).await
    }

    /// Answer as a stream of events. Errors before any event (limits, budget, input
    /// safety, no model) are returned here; later ones arrive as `PipelineEvent::Error`.
    /// Structured tasks and calls with an output schema are validated whole, so their text
    /// arrives as one `Content` event. The call runs to its end (and is audited) even when
    /// the consumer stops reading; dropping the stream cancels the provider call.
    pub async fn stream(
        &self,
        caller: &AiCaller,
        task: TaskKind,
        messages: Vec<ChatMessage>,
        params: PipelineParams,
    ) -> Result<PipelineStream, AiApiError> {
        let inner = self.inner.clone();
        let p = inner.prepare(caller, task, messages, params).await?;
        let budget = p.budget;
        if task.is_structured() || p.schema.is_some() {
            let answer = inner.complete_prepared(caller, p).await?;
            let events = vec![
                PipelineEvent::Metadata {
                    model: answer.meta.model.clone(),
                    provider: answer.meta.provider.clone(),
                    offline: answer.meta.offline,
                    fallback: answer.meta.fallback,
                },
                PipelineEvent::Content(answer.text.clone()),
                PipelineEvent::Complete(Box::new(answer)),
            ];
            return Ok(PipelineStream {
                budget,
                events: futures::stream::iter(events).boxed(),
            });
        }
        let upstream = match inner.gateway.stream(p.request.clone()).await {
            Ok(s) => s,
            Err(e) => {
                let err = AiApiError::from_gateway(e);
                inner.audit_call(caller, &p, &inner.failed(&err, true));
                return Err(err);
            }
        };
        let (tx, rx) = mpsc::channel(32);
        tokio::spawn(inner.clone().forward(caller.clone(), p, upstream, tx));
        Ok(PipelineStream {
            budget,
            events: tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
        })
    }
}

impl Inner {
    fn estimate_usd(&self, prompt_tokens: u64, max_output: Option<u32>) -> f64 {
        let out = u64::from(max_output.unwrap_or(self.cfg.estimated_output_tokens));
        (prompt_tokens as f64 * self.max_price.0 + out as f64 * self.max_price.1) / 1_000_000.0
    }

    async fn prepare(
        &self,
        caller: &AiCaller,
        task: TaskKind,
        messages: Vec<ChatMessage>,
        params: PipelineParams,
    ) -> Result<Prepared, AiApiError> {
        if !self.enabled {
            return Err(AiApiError::disabled());
        }
        let started = Instant::now();
        // The bookkeeping thread runs below request handling; if the CPU has been saturated
        // long enough for its queues to fill half-way, calls wait here (and the CPU they leave
        // lets it catch up) rather than their audit events and usage rows being dropped.
        let audit_waited = self.audit.wait_for_room().await;
        if audit_waited | self.gateway.wait_for_usage_room().await {
            metrics::counter!("assay_ai_bookkeeping_waits_total").increment(1);
        }
        let chars: usize = messages.iter().map(|m| m.content.len()).sum::<usize>()
            + params.system.as_ref().map_or(0, String::len);
        let prompt_tokens = chars.div_ceil(4) as u64;
        let tokens = u32::try_from(prompt_tokens).unwrap_or(u32::MAX);
        let deferred = caller.api_limit.as_ref();
        if let Err(e) = self
            .limits
            .check(&caller.key(), task, tokens, deferred)
            .await
        {
            self.audit_refusal(caller, task, &e, params.resource.as_ref());
            return Err(e);
        }

        let ctx = caller.ctx();
        let settings = self.org_settings(&ctx).await?;
        let limit = settings
            .monthly_budget_usd
            .unwrap_or(self.cfg.default_monthly_budget_usd);
        let estimate = self.estimate_usd(prompt_tokens, params.generation.max_output_tokens);
        let (budget, reservation) = match self
            .budgets
            .reserve(
                &self.db,
                caller.org_id,
                limit,
                self.cfg.budget_warning_ratio,
                estimate,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.audit_refusal(caller, task, &e, params.resource.as_ref());
                return Err(e);
            }
        };
        if budget.warning {
            self.warn_budget_once(caller, &ctx, &budget).await;
        }

        let profile = settings.safety_profile.parse().unwrap_or_default();
        let restore =
            settings.restore_pii && !task.is_structured() && params.output_schema.is_none();
        let policy = Policy::for_role(profile, caller.role).with_restore_pii(restore);
        let scanner = Scanner::shared();
        let mut input = Action::Allow;
        let mut input_rules: Vec<String> = Vec::new();
        let mut escalated: Vec<String> = Vec::new();
        let mut blocked: Vec<String> = Vec::new();
        let mut numbering =
            Placeholders::after_those_in(messages.iter().map(|m| m.content.as_str()));
        let mut restoration = restore.then(RestorationMap::default);
        let mut forwarded = Vec::with_capacity(messages.len() + 2);
        if let Some(system) = &params.system {
            forwarded.push(ChatMessage::system(system.clone()));
        }
        if let Some(schema) = &params.output_schema {
            forwarded.push(ChatMessage::system(schema::instruction(schema)));
        }
        for (i, m) in messages.into_iter().enumerate() {
            if i < params.history {
                forwarded.push(m);
                continue;
            }
            let a = scanner.assess_with(&m.content, &policy, Direction::Input, &mut numbering);
            let action = a.action();
            input = input.max(action);
            let rules = rule_ids(a.rules());
            if action == Action::Block {
                blocked.extend(rules);
                continue;
            }
            if action == Action::Escalate {
                escalated.extend(rules.iter().cloned());
            }
            if action != Action::Allow {
                input_rules.extend(rules);
            }
            if let (Some(all), Some(map)) = (restoration.as_mut(), a.restoration()) {
                all.merge(map);
            }
            let content = match a.forwarded(&m.content) {
                Some(t) => t.into_owned(),
                None => String::new(),
            };
            forwarded.push(ChatMessage {
                role: m.role,
                content,
            });
        }
        if !blocked.is_empty() {
            blocked.sort();
            blocked.dedup();
            let err = AiApiError::Blocked {
                rules: blocked.clone(),
                at: BlockedAt::Input,
            };
            let mut ev = caller.event("ai.call");
            ev.outcome = Outcome::Denied;
            ev.details = json!({
                "task": task.as_str(),
                "outcome": "ai_blocked",
                "safety": { "profile": policy.profile, "input": "block", "input_rules": blocked },
            })
            .into();
            if let Some((kind, id)) = &params.resource {
                ev = ev.resource(kind, id);
            }
            self.audit.record(ev);
            return Err(err);
        }
        input_rules.sort();
        input_rules.dedup();
        if !escalated.is_empty() {
            escalated.sort();
            escalated.dedup();
            self.escalate(
                caller,
                task,
                Direction::Input,
                &escalated,
                params.resource.as_ref(),
            )
            .await;
        }

        let mut request = AiRequest::new(&ctx, task, forwarded);
        request.params = params.generation;
        request.hints = params.hints;
        request.bypass_cache = params.bypass_cache;
        // Only answers the output policy lets through unchanged are cached.
        request.cache_only_if = Some(assay_ai::CacheGate(Arc::new(move |text: &str| {
            Scanner::shared()
                .assess(text, &policy, Direction::Output)
                .action()
                == Action::Allow
        })));
        request.model = params.model;
        let last_input = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role != MessageRole::System)
            .map(|m| m.content.clone());
        let prompt = settings.store_prompts.then(|| {
            request
                .messages
                .iter()
                .filter(|m| m.role != MessageRole::System)
                .cloned()
                .collect()
        });
        Ok(Prepared {
            request,
            policy,
            budget,
            reservation,
            input,
            input_rules,
            numbering,
            restore: restoration.filter(|m| !m.is_empty()),
            prompt,
            last_input,
            schema: params.output_schema,
            resource: params.resource,
            started,
        })
    }

    /// Audit a call refused before anything was sent (AI limits, prompt too large, budget):
    /// every call is audited, refusals as `Denied` with their code. Off the request path,
    /// like every `ai.call` event; the general API limit bounds how many a caller can cause.
    fn audit_refusal(
        &self,
        caller: &AiCaller,
        task: TaskKind,
        err: &AiApiError,
        resource: Option<&(String, String)>,
    ) {
        let mut ev = caller.event("ai.call");
        ev.outcome = Outcome::Denied;
        let limit = match err {
            AiApiError::RateLimited { limit, .. } => Some(*limit),
            _ => None,
        };
        ev.details = json!({ "task": task.as_str(), "outcome": err.code(), "limit": limit }).into();
        if let Some((kind, id)) = resource {
            ev = ev.resource(kind, id);
        }
        self.audit.record(ev);
    }

    /// Record a safety review for an escalated call (and audit it, in one transaction). A
    /// failure to record is logged and counted, never the caller's error: an escalation is
    /// exactly when the person should get an answer.
    async fn escalate(
        &self,
        caller: &AiCaller,
        task: TaskKind,
        direction: Direction,
        rules: &[String],
        resource: Option<&(String, String)>,
    ) {
        let direction = match direction {
            Direction::Input => "input",
            Direction::Output => "output",
        };
        let ctx = caller.ctx();
        let actor = caller.actor();
        let request_id = caller.facts.request_id.clone();
        let rules = rules.to_vec();
        let resource = resource.cloned();
        let mut ev = caller.event("ai.safety.escalated");
        let res = self
            .db
            .write(move |txn| {
                Box::pin(async move {
                    let review = ai_safety_reviews::insert(
                        txn,
                        &ctx,
                        &NewReview {
                            actor: &actor,
                            task: task.as_str(),
                            direction,
                            rules: &rules,
                            resource: resource.as_ref().map(|(k, id)| (k.as_str(), id.as_str())),
                            request_id: request_id.as_deref(),
                        },
                    )
                    .await?;
                    ev = ev.resource("ai_safety_review", review.id);
                    ev.details = json!({
                        "task": task.as_str(),
                        "direction": direction,
                        "rules": rules,
                        "about": resource.as_ref().map(|(k, id)| json!({ "type": k, "id": id })),
                    })
                    .into();
                    assay_store::repo::audit::append(txn, ev).await?;
                    Ok(())
                })
            })
            .await;
        let outcome = if res.is_ok() { "recorded" } else { "failed" };
        metrics::counter!("assay_ai_safety_escalations_total", "direction" => direction, "outcome" => outcome)
            .increment(1);
        if let Err(e) = res {
            tracing::error!(error = %e, direction, "could not record an AI safety escalation for review");
        }
    }

    async fn org_settings(&self, ctx: &OrgCtx) -> Result<AiSettings, AiApiError> {
        match &self.settings {
            Some(cache) => {
                let read = || {
                    let (db, ctx) = (self.db.clone(), *ctx);
                    move || async move { ai_settings::get(db.primary(), &ctx).await }
                };
                Ok(cache
                    .get(&ctx.org_id(), read)
                    .await
                    .map_err(|e| AiApiError::Api(super::budget::shared_store_error(&e)))?)
            }
            None => Ok(ai_settings::get(self.db.primary(), ctx).await?),
        }
    }

    /// Audit `ai.budget.warning` the first time this month the threshold is crossed.
    async fn warn_budget_once(&self, caller: &AiCaller, ctx: &OrgCtx, budget: &BudgetStatus) {
        let month = month_key(chrono::Utc::now());
        let seen = |w: &std::collections::HashMap<OrgId, String>| {
            w.get(&caller.org_id).is_some_and(|m| *m == month)
        };
        if seen(&self.warned.lock().unwrap_or_else(|p| p.into_inner())) {
            return;
        }
        let mut ev = caller.event("ai.budget.warning");
        ev.details = json!({
            "month": month,
            "limit_usd": budget.limit_usd,
            "spent_usd": budget.spent_usd,
            "used_ratio": budget.used_ratio,
            "threshold": self.cfg.budget_warning_ratio,
        })
        .into();
        let ctx = *ctx;
        let claimed_month = month.clone();
        let res = self
            .db
            .write(move |txn| {
                Box::pin(async move {
                    let claimed = ai_settings::claim_budget_warning(txn, &ctx, &month).await?;
                    if claimed {
                        assay_store::repo::audit::append(txn, ev).await?;
                    }
                    Ok(claimed)
                })
            })
            .await;
        match res {
            // Given now or by another node before: either way, done for this month.
            Ok(claimed) => {
                if claimed {
                    // Once per organisation and month across the nodes: something to alert on.
                    metrics::counter!("assay_ai_budget_warnings_total").increment(1);
                }
                self.warned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(caller.org_id, claimed_month);
            }
            Err(e) => tracing::error!(error = %e, "could not record the AI budget warning"),
        }
    }

    async fn complete_prepared(
        &self,
        caller: &AiCaller,
        p: Prepared,
    ) -> Result<PipelineAnswer, AiApiError> {
        let resp = match self.gateway.complete(p.request.clone()).await {
            Ok(r) => r,
            Err(e) => {
                let err = AiApiError::from_gateway(e);
                self.audit_call(caller, &p, &self.failed(&err, false));
                return Err(err);
            }
        };
        let meta = answer_meta(&resp.meta);
        let scanner = Scanner::shared();
        let mut numbering = p.numbering.clone();
        let assessed =
            scanner.assess_with(&resp.text, &p.policy, Direction::Output, &mut numbering);
        let output = assessed.action();
        let output_rules = rule_ids(assessed.rules());
        if output == Action::Block {
            let err = AiApiError::Blocked {
                rules: output_rules.clone(),
                at: BlockedAt::Output,
            };
            self.end(
                caller,
                p,
                "ai_blocked",
                Some(&meta),
                output,
                &output_rules,
                false,
            );
            return Err(err);
        }
        let text = assessed
            .forwarded(&resp.text)
            .map(|t| t.into_owned())
            .unwrap_or_default();
        if output == Action::Escalate {
            self.escalate(
                caller,
                p.request.task,
                Direction::Output,
                &output_rules,
                p.resource.as_ref(),
            )
            .await;
        }
        // Structured answers: redact inside the parsed value so it stays valid JSON.
        let mut json = resp.json;
        if let Some(schema_value) = &p.schema {
            let parsed = match schema::parse_answer(&resp.text) {
                Ok(v) => v,
                Err(reason) => {
                    let err = AiApiError::InvalidOutput { reason };
                    self.end(
                        caller,
                        p,
                        "ai_invalid_output",
                        Some(&meta),
                        output,
                        &output_rules,
                        false,
                    );
                    return Err(err);
                }
            };
            if let Err(reason) = schema::check(schema_value, &parsed) {
                let err = AiApiError::InvalidOutput { reason };
                self.end(
                    caller,
                    p,
                    "ai_invalid_output",
                    Some(&meta),
                    output,
                    &output_rules,
                    false,
                );
                return Err(err);
            }
            json = Some(parsed);
        }
        if output != Action::Allow
            && let Some(v) = json.as_mut()
        {
            redact_json(v, &p.policy);
        }
        let safety = SafetySummary {
            profile: p.policy.profile,
            input: p.input,
            input_rules: p.input_rules.clone(),
            output,
            output_rules: output_rules.clone(),
        };
        let budget = p.budget;
        let prompt = p.last_input.clone();
        let (text, unrestored) = match &p.restore {
            Some(map) => {
                let restored = map.restore(&text);
                if restored == text {
                    (text, None)
                } else {
                    (restored, Some(text))
                }
            }
            None => (text, None),
        };
        self.end(caller, p, "ok", Some(&meta), output, &output_rules, false);
        Ok(PipelineAnswer {
            text,
            unrestored,
            json,
            meta,
            safety,
            budget,
            prompt,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn end(
        &self,
        caller: &AiCaller,
        p: Prepared,
        outcome: &str,
        meta: Option<&AnswerMeta>,
        output: Action,
        output_rules: &[String],
        streamed: bool,
    ) {
        self.audit_call(
            caller,
            &p,
            &Ending {
                outcome,
                meta,
                output,
                output_rules,
                streamed,
            },
        );
        p.reservation.settle(meta.map_or(0.0, |m| m.cost_usd));
    }

    fn failed<'a>(&self, err: &'a AiApiError, streamed: bool) -> Ending<'a> {
        Ending {
            outcome: err.code(),
            meta: None,
            output: Action::Allow,
            output_rules: &[],
            streamed,
        }
    }

    fn audit_call(&self, caller: &AiCaller, p: &Prepared, end: &Ending<'_>) {
        let mut ev = caller.event("ai.call");
        ev.outcome = match end.outcome {
            "ok" => Outcome::Success,
            "ai_blocked" => Outcome::Denied,
            _ => Outcome::Failure,
        };
        let details = CallDetails {
            task: p.request.task.as_str(),
            outcome: end.outcome,
            streamed: end.streamed,
            latency_ms: p.started.elapsed().as_secs_f64() * 1000.0,
            budget_used_ratio: p.budget.used_ratio,
            safety: CallSafety {
                profile: p.policy.profile,
                input: p.input,
                input_rules: &p.input_rules,
                output: end.output,
                output_rules: end.output_rules,
            },
            answer: end.meta.map(|m| CallAnswer {
                model: &m.model,
                provider: &m.provider,
                offline: m.offline,
                cache_hit: m.cache_hit,
                fallbacks: &m.fallbacks,
                input_tokens: m.usage.input_tokens,
                output_tokens: m.usage.output_tokens,
                cost_usd: m.cost_usd,
            }),
            prompt: p.prompt.as_deref(),
        };
        ev.details = AuditDetails::of(&details);
        if let Some((kind, id)) = &p.resource {
            ev = ev.resource(kind, id);
        }
        self.audit.record(ev);
    }

    /// Drive a gateway stream through the output scanner into `tx`.
    async fn forward(
        self: Arc<Self>,
        caller: AiCaller,
        p: Prepared,
        mut upstream: assay_ai::AiStream,
        tx: mpsc::Sender<PipelineEvent>,
    ) {
        let mut scanner = StreamScanner::new(Scanner::shared(), p.policy, Direction::Output)
            .with_placeholders(p.numbering.clone());
        // The answer as released by the scanner (what is stored) and, when the caller's
        // personal data is restored, as the client sees it.
        let mut text = String::new();
        let mut restorer = p.restore.clone().map(RestorationMap::into_stream);
        let mut shown = String::new();
        // Send, or notice the consumer is gone (the call is then cancelled and audited).
        async fn send(tx: &mpsc::Sender<PipelineEvent>, ev: PipelineEvent) -> bool {
            tx.send(ev).await.is_ok()
        }
        let mut offline = false;
        while let Some(ev) = upstream.next().await {
            match ev {
                AiStreamEvent::Started {
                    model,
                    provider,
                    offline: off,
                } => {
                    offline = off;
                    let md = PipelineEvent::Metadata {
                        model,
                        provider,
                        offline: off,
                        fallback: off,
                    };
                    if !send(&tx, md).await {
                        return self.end(&caller, p, "cancelled", None, Action::Allow, &[], true);
                    }
                }
                AiStreamEvent::Delta(delta) => {
                    let chunk = scanner.push(&delta);
                    if chunk.blocked {
                        let end = scanner.finish();
                        let rules = rule_ids(end.rules);
                        let err = AiApiError::Blocked {
                            rules: rules.clone(),
                            at: BlockedAt::Output,
                        };
                        let _ = send(&tx, PipelineEvent::Error(err)).await;
                        return self.end(
                            &caller,
                            p,
                            "ai_blocked",
                            None,
                            Action::Block,
                            &rules,
                            true,
                        );
                    }
                    if !chunk.text.is_empty() {
                        text.push_str(&chunk.text);
                        let out = match restorer.as_mut() {
                            Some(r) => r.push(&chunk.text),
                            None => chunk.text,
                        };
                        shown.push_str(&out);
                        if !out.is_empty() && !send(&tx, PipelineEvent::Content(out)).await {
                            return self.end(
                                &caller,
                                p,
                                "cancelled",
                                None,
                                Action::Allow,
                                &[],
                                true,
                            );
                        }
                    }
                }
                AiStreamEvent::Done(meta) => {
                    let end = scanner.finish();
                    let rules = rule_ids(end.rules);
                    let meta = answer_meta(&meta);
                    if end.chunk.blocked || end.action == Action::Block {
                        let err = AiApiError::Blocked {
                            rules: rules.clone(),
                            at: BlockedAt::Output,
                        };
                        let _ = send(&tx, PipelineEvent::Error(err)).await;
                        return self.end(
                            &caller,
                            p,
                            "ai_blocked",
                            Some(&meta),
                            Action::Block,
                            &rules,
                            true,
                        );
                    }
                    text.push_str(&end.chunk.text);
                    let last = match restorer.take() {
                        Some(mut r) => {
                            let mut out = r.push(&end.chunk.text);
                            out.push_str(&r.finish());
                            out
                        }
                        None => end.chunk.text,
                    };
                    shown.push_str(&last);
                    if !last.is_empty() {
                        let _ = send(&tx, PipelineEvent::Content(last)).await;
                    }
                    if end.action == Action::Escalate {
                        self.escalate(
                            &caller,
                            p.request.task,
                            Direction::Output,
                            &rules,
                            p.resource.as_ref(),
                        )
                        .await;
                    }
                    let unrestored = (shown != text).then(|| std::mem::take(&mut text));
                    let answer = PipelineAnswer {
                        text: std::mem::take(&mut shown),
                        unrestored,
                        json: None,
                        meta: meta.clone(),
                        safety: SafetySummary {
                            profile: p.policy.profile,
                            input: p.input,
                            input_rules: p.input_rules.clone(),
                            output: end.action,
                            output_rules: rules.clone(),
                        },
                        budget: p.budget,
                        prompt: p.last_input.clone(),
                    };
                    let _ = send(&tx, PipelineEvent::Complete(Box::new(answer))).await;
                    return self.end(&caller, p, "ok", Some(&meta), end.action, &rules, true);
                }
                AiStreamEvent::Error(e) => {
                    let err = AiApiError::from_gateway(e);
                    let code = err.code();
                    let _ = send(&tx, PipelineEvent::Error(err)).await;
                    return self.end(&caller, p, code, None, Action::Allow, &[], true);
                }
            }
        }
        // The gateway always ends with Done or Error; a stream that just stops is a failure.
        tracing::warn!(offline, "AI stream ended without a final event");
        let err = AiApiError::Unavailable { retry_after: None };
        let _ = send(&tx, PipelineEvent::Error(err)).await;
        self.end(&caller, p, "ai_unavailable", None, Action::Allow, &[], true);
    }
}

/// Redact every string inside a structured answer under `policy` (output direction).
fn redact_json(v: &mut Value, policy: &Policy) {
    match v {
        Value::String(s) => {
            let a = Scanner::shared().assess(s, policy, Direction::Output);
            if let Some(t) = a.forwarded(s) {
                let t = t.into_owned();
                *s = t;
            } else {
                *s = "[BLOCKED]".into();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact_json(i, policy)),
        Value::Object(map) => map.values_mut().for_each(|i| redact_json(i, policy)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `ai.call` event's details as stored: the same object the API has always shown
    /// (read back as a tree), with the answer's fields only when a model answered.
    #[test]
    fn call_details_serialise_to_the_audit_shape() {
        let rules = vec!["pii.email".to_owned()];
        let fallbacks = vec!["openai:gpt-x:ai_unavailable".to_owned()];
        let prompt = vec![ChatMessage::user("hi")];
        let details = |answer, prompt| CallDetails {
            task: "chat",
            outcome: "ok",
            streamed: true,
            latency_ms: 1.5,
            budget_used_ratio: 0.25,
            safety: CallSafety {
                profile: Profile::Standard,
                input: Action::Modify,
                input_rules: &rules,
                output: Action::Allow,
                output_rules: &[],
            },
            answer,
            prompt,
        };
        let read = |d: &CallDetails<'_>| -> Value {
            serde_json::from_str(AuditDetails::of(d).as_str()).unwrap()
        };
        let safety = json!({
            "profile": "standard", "input": "modify", "input_rules": ["pii.email"],
            "output": "allow", "output_rules": [],
        });
        assert_eq!(
            read(&details(None, None)),
            json!({
                "task": "chat", "outcome": "ok", "streamed": true, "latency_ms": 1.5,
                "budget_used_ratio": 0.25, "safety": safety,
            })
        );
        let answer = CallAnswer {
            model: "gpt-x",
            provider: "openai",
            offline: false,
            cache_hit: true,
            fallbacks: &fallbacks,
            input_tokens: 12,
            output_tokens: 34,
            cost_usd: 0.5,
        };
        assert_eq!(
            read(&details(Some(answer), Some(&prompt))),
            json!({
                "task": "chat", "outcome": "ok", "streamed": true, "latency_ms": 1.5,
                "budget_used_ratio": 0.25, "safety": safety,
                "model": "gpt-x", "provider": "openai", "offline": false, "cache_hit": true,
                "fallbacks": ["openai:gpt-x:ai_unavailable"], "input_tokens": 12,
                "output_tokens": 34, "cost_usd": 0.5, "prompt": prompt,
            })
        );
    }
}
