//! The gateway: cache, selection, resilient provider calls, validation, usage and metrics
//! around one request, for complete and for streamed answers.

use crate::AiError;
use crate::breaker::{BreakerPermit, BreakerState};
use crate::config::{AiConfig, CacheTtlConfig, RetryConfig};
use crate::knowledge::KnowledgeSource;
use crate::provider::{Completion, EventStream, ProviderRequest, StreamEvent};
use crate::registry::{ModelEntry, Registry};
use crate::select::select;
use crate::types::{
    AiRequest, AiResponse, AiStreamEvent, ChatMessage, FinishReason, MessageRole, ProviderKind,
    ResponseMeta, TaskKind, Tier, TokenUsage,
};
use crate::usage::{UsageLedger, UsageOutcome, UsageRecord, UsageSink};
use crate::{retry, telemetry, validate};
use assay_core::{OrgId, UserId};
use assay_infra::cache::TieredCache;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A streamed answer: `Started`, `Delta`*, then `Done` or `Error`.
pub type AiStream = BoxStream<'static, AiStreamEvent>;

/// The AI gateway. Cheap to clone; clones share models, breakers, cache and ledger.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    cache: TieredCache,
    ledger: UsageLedger,
    retry: RetryConfig,
    ttl: CacheTtlConfig,
    deadline: Duration,
    offline_fallback: bool,
}

/// What the cache keeps for an answer.
#[derive(Serialize, Deserialize)]
struct CachedAnswer {
    text: String,
    model: String,
    provider: String,
    provider_kind: ProviderKind,
    finish: Option<FinishReason>,
}

/// Who asked for what, for usage records.
#[derive(Clone, Copy)]
struct Facts {
    org_id: OrgId,
    user_id: Option<UserId>,
    task: TaskKind,
    streamed: bool,
}

/// Wall time of a call and the part of it spent waiting on providers or backoffs; the
/// rest is the gateway's own overhead.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    waited: Duration,
}

impl Clock {
    fn start() -> Self {
        Self {
            start: Instant::now(),
            waited: Duration::ZERO,
        }
    }
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
    fn overhead(&self) -> Duration {
        self.elapsed().saturating_sub(self.waited)
    }
}

/// Writes a `cancelled` usage record if the call's future is dropped before it finished.
struct CancelGuard {
    inner: Arc<Inner>,
    facts: Facts,
    tier: Tier,
    model: Option<Arc<ModelEntry>>,
    start: Instant,
    armed: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.armed {
            let r = self.inner.bare_record(
                self.facts,
                self.model.as_deref(),
                self.tier,
                self.start.elapsed(),
                UsageOutcome::Cancelled,
            );
            self.inner.ledger.record(r);
        }
    }
}

/// The tenant-scoped cache key: org, task, tier, the pinned model if any, normalised
/// messages and parameters.
pub fn cache_key(req: &AiRequest, tier: Tier) -> String {
    let mut h = Sha256::new();
    h.update(b"assay-ai-v1\0");
    h.update(req.org_id.0.as_bytes());
    h.update(req.task.as_str().as_bytes());
    h.update([0]);
    h.update(tier.as_str().as_bytes());
    // A pinned model's answer is not another model's (nor the gateway's own choice).
    if let Some(model) = &req.model {
        h.update(b"\0m\0");
        h.update(model.as_bytes());
    }
    for m in &req.messages {
        let role: &[u8] = match m.role {
            MessageRole::System => b"\0s\0",
            MessageRole::User => b"\0u\0",
            MessageRole::Assistant => b"\0a\0",
        };
        h.update(role);
        // Whitespace differences do not make a different question.
        for (i, w) in m.content.split_whitespace().enumerate() {
            if i > 0 {
                h.update(b" ");
            }
            h.update(w.as_bytes());
        }
    }
    h.update(b"\0p\0");
    h.update(
        req.params
            .temperature
            .map_or(u32::MAX, f32::to_bits)
            .to_le_bytes(),
    );
    h.update(
        req.params
            .max_output_tokens
            .map_or(u32::MAX, |n| n)
            .to_le_bytes(),
    );
    format!("ai:{}", hex::encode(h.finalize()))
}

fn provider_request(req: &AiRequest) -> ProviderRequest {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(instr) = validate::instruction(req.task) {
        messages.push(ChatMessage::system(instr));
    }
    messages.extend(req.messages.iter().cloned());
    ProviderRequest {
        model: String::new(),
        messages,
        temperature: req.params.temperature,
        max_output_tokens: req.params.max_output_tokens,
        json_output: req.task.is_structured(),
        task: req.task,
    }
}

fn add_usage(a: Option<TokenUsage>, b: Option<TokenUsage>) -> Option<TokenUsage> {
    match (a, b) {
        (Some(a), Some(b)) => Some(TokenUsage {
            input_tokens: a.input_tokens + b.input_tokens,
            output_tokens: a.output_tokens + b.output_tokens,
            cached_input_tokens: a.cached_input_tokens + b.cached_input_tokens,
            estimated: a.estimated || b.estimated,
        }),
        (a, b) => a.or(b),
    }
}

fn estimate_usage(preq: &ProviderRequest, text: &str) -> TokenUsage {
    TokenUsage::estimate(
        preq.messages.iter().map(|m| m.content.len()).sum(),
        text.len(),
    )
}

fn single_stream(resp: AiResponse) -> AiStream {
    let m = &resp.meta;
    let events = vec![
        AiStreamEvent::Started {
            model: m.model.clone(),
            provider: m.provider.clone(),
            offline: m.offline,
        },
        AiStreamEvent::Delta(resp.text.clone()),
        AiStreamEvent::Done(Box::new(resp.meta)),
    ];
    futures::stream::iter(events).boxed()
}

/// A model's stream once its first token arrived.
struct OpenStream {
    events: EventStream,
    before_first: Vec<StreamEvent>,
    first: String,
    permit: BreakerPermit,
    ttft: Duration,
}

/// How a call started: answered from the cache, or to be answered by the chain.
enum Begun {
    Cached(AiResponse),
    Call(Call),
}

/// One call on its way down the chain of models.
struct Call {
    clock: Clock,
    facts: Facts,
    tier: Tier,
    reason: String,
    chain: Vec<Arc<ModelEntry>>,
    guard: CancelGuard,
    ttl: Duration,
    key: Option<String>,
    /// [`AiRequest::cache_only_if`].
    cache_gate: Option<crate::types::CacheGate>,
    base: ProviderRequest,
    fallbacks: Vec<String>,
    attempts: u32,
    last_err: Option<AiError>,
}

impl Call {
    /// Whether to try `m` now: past the deadline only the offline provider is worth it.
    fn may_try(&mut self, m: &Arc<ModelEntry>, deadline: Duration) -> bool {
        if m.kind != ProviderKind::Offline && self.clock.elapsed() >= deadline {
            return false;
        }
        self.guard.model = Some(m.clone());
        true
    }

    /// The metadata of an answer from `m` (the call is then no longer cancellable).
    fn answered(
        &mut self,
        m: &ModelEntry,
        usage: TokenUsage,
        finish: Option<FinishReason>,
        ttft: Duration,
    ) -> (ResponseMeta, UsageOutcome) {
        self.guard.armed = false;
        let offline = m.kind == ProviderKind::Offline;
        let outcome = if offline && !self.fallbacks.is_empty() {
            UsageOutcome::Fallback
        } else {
            UsageOutcome::Ok
        };
        let meta = ResponseMeta {
            model: m.id.clone(),
            provider: m.provider_name.clone(),
            provider_kind: m.kind,
            tier: self.tier,
            offline,
            cache_hit: false,
            selection_reason: std::mem::take(&mut self.reason),
            fallbacks: std::mem::take(&mut self.fallbacks),
            attempts: self.attempts,
            usage,
            cost_usd: m.price.cost_usd(&usage),
            finish_reason: finish,
            latency: self.clock.elapsed(),
            time_to_first_token: Some(ttft),
            gateway_overhead: self.clock.overhead(),
        };
        (meta, outcome)
    }
}

impl Gateway {
    /// Build the gateway. Must run inside a Tokio runtime (the usage writer is a task).
    /// Fails only on configuration problems (the same list `AiConfig::problems` gives).
    pub fn new(
        cfg: &AiConfig,
        cache: TieredCache,
        usage: Arc<dyn UsageSink>,
        knowledge: Arc<dyn KnowledgeSource>,
    ) -> Result<Self, AiError> {
        let here = tokio::runtime::Handle::current();
        Self::with_ledger_on(&here, cfg, cache, usage, knowledge)
    }

    /// [`Gateway::new`] with the usage writer on `ledger_runtime` (a bookkeeping thread that
    /// owns the sink's database handle) instead of the current runtime.
    pub fn with_ledger_on(
        ledger_runtime: &tokio::runtime::Handle,
        cfg: &AiConfig,
        cache: TieredCache,
        usage: Arc<dyn UsageSink>,
        knowledge: Arc<dyn KnowledgeSource>,
    ) -> Result<Self, AiError> {
        let registry = Registry::build(cfg, knowledge)?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                cache,
                ledger: UsageLedger::start_on(ledger_runtime, usage, cfg.usage_queue_capacity),
                retry: cfg.retry,
                ttl: cfg.cache,
                deadline: Duration::from_millis(cfg.request_deadline_ms),
                offline_fallback: cfg.offline_fallback,
            }),
        })
    }

    /// Breaker state per configured model, for health endpoints.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.inner
            .registry
            .models
            .iter()
            .map(|m| (m.id.clone(), m.breaker.state()))
            .collect()
    }

    /// Admission control for callers that can wait: returns once the usage writer is not
    /// far behind (whether it had to wait).
    pub async fn wait_for_usage_room(&self) -> bool {
        self.inner.ledger.wait_for_room().await
    }

    /// Wait until the usage records of calls answered so far have been written.
    pub async fn flush_usage(&self) {
        self.inner.ledger.flush().await;
    }

    /// Usage records dropped so far (queue full or sink failures).
    pub fn usage_dropped(&self) -> u64 {
        self.inner.ledger.dropped()
    }

    /// A complete answer.
    pub async fn complete(&self, req: AiRequest) -> Result<AiResponse, AiError> {
        let inner = &self.inner;
        let mut call = match inner.begin(&req, false).await {
            Begun::Cached(resp) => return Ok(resp),
            Begun::Call(call) => call,
        };
        for m in std::mem::take(&mut call.chain) {
            if !call.may_try(&m, inner.deadline) {
                continue;
            }
            match inner
                .call_model(
                    &m,
                    &call.base,
                    req.task,
                    &mut call.clock,
                    &mut call.attempts,
                )
                .await
            {
                Ok((c, json, ttft)) => {
                    let usage = c
                        .usage
                        .unwrap_or_else(|| estimate_usage(&call.base, &c.text));
                    if let Some(k) = call.key.take()
                        && m.kind != ProviderKind::Offline
                        && call.cache_gate.as_ref().is_none_or(|g| (g.0)(&c.text))
                    {
                        inner.store(k, &m, &c, call.ttl).await;
                    }
                    let (meta, outcome) = call.answered(&m, usage, c.finish.clone(), ttft);
                    inner.finish(call.facts, Some(&m), &meta, outcome);
                    return Ok(AiResponse {
                        text: c.text,
                        json,
                        meta,
                    });
                }
                Err(e) => {
                    if let Some(e) = inner.model_failed(&mut call, &m, e) {
                        return Err(e);
                    }
                }
            }
        }
        Err(inner.exhausted(call))
    }

    /// A streamed answer. Errors before the first token are retried and fall back like
    /// `complete`; once text has been sent a failure ends the stream with `Error`.
    /// Structured tasks are validated whole, so they arrive as one chunk.
    pub async fn stream(&self, req: AiRequest) -> Result<AiStream, AiError> {
        if req.task.is_structured() {
            return self.complete(req).await.map(single_stream);
        }
        let inner = &self.inner;
        let mut call = match inner.begin(&req, true).await {
            Begun::Cached(resp) => return Ok(single_stream(resp)),
            Begun::Call(call) => call,
        };
        for m in std::mem::take(&mut call.chain) {
            if !call.may_try(&m, inner.deadline) {
                continue;
            }
            match inner
                .open_stream(&m, &call.base, &mut call.clock, &mut call.attempts)
                .await
            {
                Ok(open) => {
                    call.guard.armed = false;
                    let (tx, rx) = mpsc::channel(32);
                    let run = StreamRun {
                        inner: inner.clone(),
                        model: m,
                        call,
                    };
                    tokio::spawn(run.forward(open, tx));
                    return Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed());
                }
                Err(e) => {
                    if let Some(e) = inner.model_failed(&mut call, &m, e) {
                        return Err(e);
                    }
                }
            }
        }
        Err(inner.exhausted(call))
    }
}

impl Inner {
    /// Select the chain and answer from the cache when possible.
    async fn begin(self: &Arc<Self>, req: &AiRequest, streamed: bool) -> Begun {
        let clock = Clock::start();
        let facts = Facts {
            org_id: req.org_id,
            user_id: req.user_id,
            task: req.task,
            streamed,
        };
        let sel = select(&self.registry, req, self.offline_fallback);
        tracing::debug!(task = %req.task, tier = %sel.tier, complexity = sel.complexity, reason = %sel.reason, "ai model selection");
        let mut guard = CancelGuard {
            inner: self.clone(),
            facts,
            tier: sel.tier,
            model: None,
            start: clock.start,
            armed: true,
        };
        let ttl = self.ttl.ttl(req.task);
        let key = (!ttl.is_zero()).then(|| cache_key(req, sel.tier));
        if let Some(k) = &key
            && !req.bypass_cache
            && let Some(resp) = self
                .cached(k, req.task, sel.tier, &sel.reason, &clock)
                .await
        {
            guard.armed = false;
            self.finish(facts, None, &resp.meta, UsageOutcome::Ok);
            return Begun::Cached(resp);
        }
        Begun::Call(Call {
            clock,
            facts,
            tier: sel.tier,
            reason: sel.reason,
            chain: sel.chain,
            guard,
            ttl,
            key,
            cache_gate: req.cache_only_if.clone(),
            base: provider_request(req),
            fallbacks: Vec::new(),
            attempts: 0,
            last_err: None,
        })
    }

    /// `m` failed: a provider's block ends the call (falling back would route around it);
    /// anything else is noted and the chain goes on.
    fn model_failed(&self, call: &mut Call, m: &ModelEntry, e: AiError) -> Option<AiError> {
        if matches!(e, AiError::Blocked { .. }) {
            call.guard.armed = false;
            self.fail(call.facts, Some(m), call.tier, &call.clock, &e);
            return Some(e);
        }
        tracing::warn!(model = %m.id, error = ?e, "model failed; trying the next in the chain");
        telemetry::record_fallback(&m.id, e.code());
        call.fallbacks.push(format!("{}: {}", m.id, e.code()));
        call.last_err = Some(e);
        None
    }

    /// Every model failed (or none could be tried).
    fn exhausted(&self, mut call: Call) -> AiError {
        let e = call.last_err.take().unwrap_or(AiError::NoModel);
        call.guard.armed = false;
        self.fail(
            call.facts,
            call.guard.model.as_deref(),
            call.tier,
            &call.clock,
            &e,
        );
        e
    }

    /// Settle the breaker for a failed attempt; when the same model deserves another try,
    /// wait the backoff (or the provider's Retry-After) and return true.
    async fn retry_after_failure(
        &self,
        m: &ModelEntry,
        permit: BreakerPermit,
        e: &AiError,
        attempt: u32,
        clock: &mut Clock,
    ) -> bool {
        if e.counts_against_breaker() {
            permit.failure();
        } else {
            drop(permit);
        }
        if e.is_retryable()
            && let Some(wait) = retry::backoff(&self.retry, attempt, e.retry_after())
            && wait < self.remaining(clock)
        {
            tracing::debug!(model = %m.id, ?wait, code = e.code(), "retrying");
            tokio::time::sleep(wait).await;
            clock.waited += wait;
            return true;
        }
        false
    }
    fn remaining(&self, clock: &Clock) -> Duration {
        self.deadline.saturating_sub(clock.elapsed())
    }

    async fn cached(
        &self,
        key: &str,
        task: TaskKind,
        tier: Tier,
        reason: &str,
        clock: &Clock,
    ) -> Option<AiResponse> {
        let bytes = self.cache.get(key).await?;
        let hit: CachedAnswer = serde_json::from_slice(&bytes).ok()?;
        let json = if task.is_structured() {
            Some(validate::check(task, &hit.text).ok()?)
        } else {
            None
        };
        let meta = ResponseMeta {
            model: hit.model,
            provider: hit.provider,
            provider_kind: hit.provider_kind,
            tier,
            offline: false,
            cache_hit: true,
            selection_reason: format!("{reason}; answered from cache"),
            fallbacks: Vec::new(),
            attempts: 0,
            usage: TokenUsage::default(),
            cost_usd: 0.0,
            finish_reason: hit.finish,
            latency: clock.elapsed(),
            time_to_first_token: Some(clock.elapsed()),
            gateway_overhead: clock.elapsed(),
        };
        Some(AiResponse {
            text: hit.text,
            json,
            meta,
        })
    }

    /// Store in memory now and in Redis in the background: the caller never waits for Redis.
    async fn store(&self, key: String, m: &ModelEntry, c: &Completion, ttl: Duration) {
        let entry = CachedAnswer {
            text: c.text.clone(),
            model: m.id.clone(),
            provider: m.provider_name.clone(),
            provider_kind: m.kind,
            finish: c.finish.clone(),
        };
        let Ok(bytes) = serde_json::to_vec(&entry) else {
            return;
        };
        self.cache.set_detached(&key, &bytes, ttl).await;
    }

    fn finish(
        &self,
        facts: Facts,
        m: Option<&ModelEntry>,
        meta: &ResponseMeta,
        outcome: UsageOutcome,
    ) {
        telemetry::record_call(facts.task, meta, outcome.as_str(), m.map(|m| &m.metrics));
        self.ledger.record(UsageRecord {
            id: uuid::Uuid::now_v7(),
            org_id: facts.org_id,
            user_id: facts.user_id,
            task: facts.task,
            model: meta.model.clone(),
            provider: meta.provider.clone(),
            provider_kind: meta.provider_kind,
            tier: meta.tier,
            input_tokens: meta.usage.input_tokens,
            output_tokens: meta.usage.output_tokens,
            cached_input_tokens: meta.usage.cached_input_tokens,
            estimated: meta.usage.estimated,
            cost_usd: meta.cost_usd,
            latency_ms: meta.latency.as_secs_f64() * 1e3,
            time_to_first_token_ms: meta.time_to_first_token.map(|d| d.as_secs_f64() * 1e3),
            gateway_overhead_us: meta.gateway_overhead.as_micros() as u64,
            cache_hit: meta.cache_hit,
            streamed: facts.streamed,
            outcome,
            at: chrono::Utc::now(),
        });
    }

    fn bare_record(
        &self,
        facts: Facts,
        model: Option<&ModelEntry>,
        tier: Tier,
        latency: Duration,
        outcome: UsageOutcome,
    ) -> UsageRecord {
        UsageRecord {
            id: uuid::Uuid::now_v7(),
            org_id: facts.org_id,
            user_id: facts.user_id,
            task: facts.task,
            model: model.map_or_else(String::new, |m| m.id.clone()),
            provider: model.map_or_else(String::new, |m| m.provider_name.clone()),
            provider_kind: model.map_or(ProviderKind::Offline, |m| m.kind),
            tier,
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: 0,
            estimated: false,
            cost_usd: 0.0,
            latency_ms: latency.as_secs_f64() * 1e3,
            time_to_first_token_ms: None,
            gateway_overhead_us: 0,
            cache_hit: false,
            streamed: facts.streamed,
            outcome,
            at: chrono::Utc::now(),
        }
    }

    fn fail(
        &self,
        facts: Facts,
        model: Option<&ModelEntry>,
        tier: Tier,
        clock: &Clock,
        e: &AiError,
    ) {
        telemetry::record_failure(facts.task, e.code());
        let mut r = self.bare_record(
            facts,
            model,
            tier,
            clock.elapsed(),
            UsageOutcome::Error(e.code().to_owned()),
        );
        r.gateway_overhead_us = clock.overhead().as_micros() as u64;
        self.ledger.record(r);
    }

    /// One model, non-streaming: retries on retryable errors, one repair for invalid JSON.
    async fn call_model(
        &self,
        m: &ModelEntry,
        base: &ProviderRequest,
        task: TaskKind,
        clock: &mut Clock,
        attempts: &mut u32,
    ) -> Result<(Completion, Option<serde_json::Value>, Duration), AiError> {
        let mut preq = base.clone();
        preq.model = m.model.clone();
        let mut attempt = 0u32;
        let mut repaired = false;
        let mut spent: Option<TokenUsage> = None;
        loop {
            attempt += 1;
            let Some(permit) = m.breaker.try_acquire() else {
                return Err(AiError::Unavailable {
                    detail: "circuit breaker open".into(),
                });
            };
            *attempts += 1;
            let budget = m.timeouts.total().min(self.remaining(clock));
            let t = Instant::now();
            let r = match tokio::time::timeout(budget, m.provider.complete(&preq)).await {
                Ok(r) => r,
                Err(_) => Err(AiError::Timeout {
                    phase: crate::TimeoutPhase::Total,
                }),
            };
            let took = t.elapsed();
            clock.waited += took;
            match r {
                Ok(mut c) => {
                    permit.success();
                    let ttft = clock.elapsed();
                    if !task.is_structured() {
                        return Ok((c, None, ttft));
                    }
                    c.usage = add_usage(spent, c.usage);
                    match validate::check(task, &c.text) {
                        Ok(v) => return Ok((c, Some(v), ttft)),
                        Err(problem) if !repaired => {
                            tracing::info!(model = %m.id, %problem, "structured output invalid; asking for a repair");
                            repaired = true;
                            spent = c.usage;
                            attempt -= 1; // a repair is not a retry
                            preq.messages.push(ChatMessage::assistant(c.text));
                            preq.messages.push(ChatMessage::user(format!(
                                "Your reply was not valid: {problem}. {} Reply with the corrected JSON object only.",
                                validate::instruction(task).unwrap_or("")
                            )));
                        }
                        Err(problem) => return Err(AiError::InvalidOutput { detail: problem }),
                    }
                }
                Err(e) => {
                    if self
                        .retry_after_failure(m, permit, &e, attempt, clock)
                        .await
                    {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// One model, streaming, up to its first token: retries and timeouts as `call_model`.
    async fn open_stream(
        &self,
        m: &ModelEntry,
        base: &ProviderRequest,
        clock: &mut Clock,
        attempts: &mut u32,
    ) -> Result<OpenStream, AiError> {
        let mut preq = base.clone();
        preq.model = m.model.clone();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let Some(permit) = m.breaker.try_acquire() else {
                return Err(AiError::Unavailable {
                    detail: "circuit breaker open".into(),
                });
            };
            *attempts += 1;
            let budget = m.timeouts.first_token().min(self.remaining(clock));
            let t = Instant::now();
            let opened = tokio::time::timeout(budget, async {
                let mut s = m.provider.stream(&preq).await?;
                let mut before = Vec::new();
                while let Some(ev) = s.next().await {
                    match ev? {
                        StreamEvent::Delta(text) => return Ok((s, before, Some(text))),
                        other => before.push(other),
                    }
                }
                Ok::<_, AiError>((s, before, None))
            })
            .await;
            let took = t.elapsed();
            clock.waited += took;
            let e: AiError = match opened {
                Ok(Ok((events, before, Some(first)))) => {
                    return Ok(OpenStream {
                        events,
                        before_first: before,
                        first,
                        permit,
                        ttft: clock.elapsed(),
                    });
                }
                Ok(Ok((events, before, None))) => match before.iter().find_map(|e| match e {
                    StreamEvent::Finish(FinishReason::ContentFilter(r)) => Some(r.clone()),
                    _ => None,
                }) {
                    Some(reason) => AiError::Blocked { reason },
                    // An empty answer: still an answer.
                    None => {
                        return Ok(OpenStream {
                            events,
                            before_first: before,
                            first: String::new(),
                            permit,
                            ttft: clock.elapsed(),
                        });
                    }
                },
                Ok(Err(e)) => e,
                Err(_) => AiError::Timeout {
                    phase: crate::TimeoutPhase::FirstToken,
                },
            };
            if self
                .retry_after_failure(m, permit, &e, attempt, clock)
                .await
            {
                continue;
            }
            return Err(e);
        }
    }
}

/// The rest of a streamed call, run as a task after the first token.
struct StreamRun {
    inner: Arc<Inner>,
    model: Arc<ModelEntry>,
    call: Call,
}

enum End {
    Complete,
    Failed(AiError),
    Cancelled,
}

impl StreamRun {
    async fn send(&mut self, tx: &mpsc::Sender<AiStreamEvent>, ev: AiStreamEvent) -> bool {
        // Waiting on a slow client is not gateway overhead.
        let t = Instant::now();
        let ok = tx.send(ev).await.is_ok();
        self.call.clock.waited += t.elapsed();
        ok
    }

    async fn forward(mut self, open: OpenStream, tx: mpsc::Sender<AiStreamEvent>) {
        let OpenStream {
            mut events,
            before_first,
            first,
            permit,
            ttft,
        } = open;
        let m = self.model.clone();
        let offline = m.kind == ProviderKind::Offline;
        let mut text = String::new();
        let mut usage: Option<TokenUsage> = None;
        let mut finish: Option<FinishReason> = None;
        for ev in before_first {
            match ev {
                StreamEvent::Usage(u) => usage = Some(u),
                StreamEvent::Finish(f) => finish = Some(f),
                StreamEvent::Delta(_) => {}
            }
        }
        let started = AiStreamEvent::Started {
            model: m.id.clone(),
            provider: m.provider_name.clone(),
            offline,
        };
        let mut end = if self.send(&tx, started).await {
            End::Complete
        } else {
            End::Cancelled
        };
        if matches!(end, End::Complete) && !first.is_empty() {
            text.push_str(&first);
            if !self.send(&tx, AiStreamEvent::Delta(first)).await {
                end = End::Cancelled;
            }
        }
        let stream_deadline = Instant::now()
            + m.timeouts
                .total()
                .min(self.inner.remaining(&self.call.clock));
        while matches!(end, End::Complete) {
            let left = stream_deadline.saturating_duration_since(Instant::now());
            let (wait, phase) = if m.timeouts.idle() < left {
                (m.timeouts.idle(), crate::TimeoutPhase::Idle)
            } else {
                (left, crate::TimeoutPhase::Total)
            };
            let t = Instant::now();
            let next = tokio::select! {
                biased;
                _ = tx.closed() => None,
                r = tokio::time::timeout(wait, events.next()) => Some(r),
            };
            self.call.clock.waited += t.elapsed();
            match next {
                None => end = End::Cancelled,
                Some(Err(_)) => end = End::Failed(AiError::Timeout { phase }),
                Some(Ok(None)) => break,
                Some(Ok(Some(Err(e)))) => end = End::Failed(e),
                Some(Ok(Some(Ok(ev)))) => match ev {
                    StreamEvent::Delta(d) => {
                        text.push_str(&d);
                        if !self.send(&tx, AiStreamEvent::Delta(d)).await {
                            end = End::Cancelled;
                        }
                    }
                    StreamEvent::Usage(u) => usage = Some(u),
                    StreamEvent::Finish(f) => finish = Some(f),
                },
            }
        }
        drop(events);
        let inner = self.inner.clone();
        match end {
            End::Cancelled => {
                drop(permit); // neither success nor failure
                let r = inner.bare_record(
                    self.call.facts,
                    Some(&m),
                    self.call.tier,
                    self.call.clock.elapsed(),
                    UsageOutcome::Cancelled,
                );
                inner.ledger.record(r);
            }
            End::Failed(e) => {
                if e.counts_against_breaker() {
                    permit.failure();
                } else {
                    drop(permit);
                }
                tracing::warn!(model = %m.id, error = ?e, "stream failed after its first token; not retried");
                inner.fail(
                    self.call.facts,
                    Some(&m),
                    self.call.tier,
                    &self.call.clock,
                    &e,
                );
                let _ = tx.send(AiStreamEvent::Error(e)).await;
            }
            End::Complete => {
                permit.success();
                let usage = usage.unwrap_or_else(|| estimate_usage(&self.call.base, &text));
                let filtered = matches!(finish, Some(FinishReason::ContentFilter(_)));
                if let Some(k) = self.call.key.take()
                    && !offline
                    && !filtered
                    && self.call.cache_gate.as_ref().is_none_or(|g| (g.0)(&text))
                {
                    let c = Completion {
                        text,
                        usage: Some(usage),
                        finish: finish.clone(),
                    };
                    inner.store(k, &m, &c, self.call.ttl).await;
                }
                let (meta, outcome) = self.call.answered(&m, usage, finish, ttft);
                inner.finish(self.call.facts, Some(&m), &meta, outcome);
                let _ = tx.send(AiStreamEvent::Done(Box::new(meta))).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::GenerationParams;
    use assay_core::{OrgCtx, Role};
    use proptest::prelude::*;

    fn req(org: OrgId, task: TaskKind, text: &str) -> AiRequest {
        AiRequest::new(
            &OrgCtx::for_verified_member(org, UserId::new(), Role::Member),
            task,
            vec![ChatMessage::user(text)],
        )
    }

    #[test]
    fn gateway_futures_can_cross_threads() {
        // An axum handler must be able to hold these futures.
        fn is_send<T: Send>(_: &T) {}
        fn check(gw: &Gateway, r: AiRequest) {
            is_send(&gw.complete(r.clone()));
            is_send(&gw.stream(r));
        }
        let _ = check;
    }

    proptest! {
        #[test]
        fn cache_keys_separate_orgs_tasks_and_params_but_not_whitespace(
            words in proptest::collection::vec("[a-zA-Z0-9?]{1,8}", 1..12),
            seps in proptest::collection::vec(prop_oneof![Just(" "), Just("  "), Just("\n"), Just("\t ")], 12),
        ) {
            let (acme, globex) = (OrgId::new(), OrgId::new());
            let plain = words.join(" ");
            let spaced: String = words.iter().zip(seps.iter().cycle()).map(|(w, s)| format!("{s}{w}")).collect();
            let k = cache_key(&req(acme, TaskKind::Help, &plain), Tier::Fast);
            prop_assert_eq!(&k, &cache_key(&req(acme, TaskKind::Help, &spaced), Tier::Fast));
            prop_assert_ne!(&k, &cache_key(&req(globex, TaskKind::Help, &plain), Tier::Fast));
            prop_assert_ne!(&k, &cache_key(&req(acme, TaskKind::Analysis, &plain), Tier::Fast));
            prop_assert_ne!(&k, &cache_key(&req(acme, TaskKind::Help, &plain), Tier::Deep));
            let mut hot = req(acme, TaskKind::Help, &plain);
            hot.params = GenerationParams { temperature: Some(0.9), max_output_tokens: None };
            prop_assert_ne!(&k, &cache_key(&hot, Tier::Fast));
            let mut pinned = req(acme, TaskKind::Help, &plain);
            pinned.model = Some("openai/gpt-4.1".into());
            let pk = cache_key(&pinned, Tier::Fast);
            prop_assert_ne!(&k, &pk);
            pinned.model = Some("openai/gpt-4.1-mini".into());
            prop_assert_ne!(&pk, &cache_key(&pinned, Tier::Fast));
        }
    }
}
