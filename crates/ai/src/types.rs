//! The gateway's request and response vocabulary: tasks, tiers, messages, usage, metadata.

use assay_core::{OrgCtx, OrgId, Role, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What the caller wants done; drives model tier, cache TTL and output validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Help,
    Chat,
    Analysis,
    GapAnalysis,
    Recommendations,
    PolicyDraft,
    Classification,
}

impl TaskKind {
    pub const ALL: [TaskKind; 7] = [
        TaskKind::Help,
        TaskKind::Chat,
        TaskKind::Analysis,
        TaskKind::GapAnalysis,
        TaskKind::Recommendations,
        TaskKind::PolicyDraft,
        TaskKind::Classification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Help => "help",
            TaskKind::Chat => "chat",
            TaskKind::Analysis => "analysis",
            TaskKind::GapAnalysis => "gap_analysis",
            TaskKind::Recommendations => "recommendations",
            TaskKind::PolicyDraft => "policy_draft",
            TaskKind::Classification => "classification",
        }
    }

    /// Tasks whose answer is JSON checked against a schema.
    pub fn is_structured(self) -> bool {
        matches!(
            self,
            TaskKind::PolicyDraft | TaskKind::Classification | TaskKind::GapAnalysis
        )
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How capable (and costly) a model must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Fast,
    Balanced,
    Deep,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Balanced => "balanced",
            Tier::Deep => "deep",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "fast" => Ok(Tier::Fast),
            "balanced" => Ok(Tier::Balanced),
            "deep" => Ok(Tier::Deep),
            _ => Err(()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: MessageRole,
    pub content: String,
}

impl ChatMessage {
    pub fn system(c: impl Into<String>) -> Self {
        Self {
            role: MessageRole::System,
            content: c.into(),
        }
    }
    pub fn user(c: impl Into<String>) -> Self {
        Self {
            role: MessageRole::User,
            content: c.into(),
        }
    }
    pub fn assistant(c: impl Into<String>) -> Self {
        Self {
            role: MessageRole::Assistant,
            content: c.into(),
        }
    }
}

/// What the caller knows about how hard the task is (all optional).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ComplexityHints {
    /// Requirements in the framework the task is about (a large framework is harder).
    pub framework_requirements: Option<u32>,
    /// People in the organisation.
    pub org_employees: Option<u32>,
}

/// Sampling parameters passed to the provider (and part of the cache key).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenerationParams {
    pub temperature: Option<f32>,
    pub max_output_tokens: Option<u32>,
}

/// Decides from an answer's text whether the cache may keep it ([`AiRequest::cache_only_if`]).
#[derive(Clone)]
pub struct CacheGate(pub std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for CacheGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheGate")
    }
}

/// One request to the gateway, with the caller's tenant context.
#[derive(Clone, Debug)]
pub struct AiRequest {
    pub org_id: OrgId,
    pub user_id: Option<UserId>,
    pub role: Role,
    pub task: TaskKind,
    pub messages: Vec<ChatMessage>,
    pub params: GenerationParams,
    pub hints: ComplexityHints,
    /// Skip the cache lookup (the fresh answer is still stored).
    pub bypass_cache: bool,
    /// A model the caller pinned (a registry id, or `offline`): the only AI model tried,
    /// with its retries; the offline fallback still answers if it fails. `None` lets the
    /// gateway choose by task and complexity.
    pub model: Option<String>,
    /// Keep a fresh answer in the cache only if this says yes to its text; `None` keeps
    /// every answer. The API's pipeline passes its output-safety check here, so the cache
    /// (in memory, and in Redis when shared) only ever holds answers the policy lets through
    /// unchanged — no personal data or secret a model produced sits in it (R-31: output
    /// safety, then cache).
    pub cache_only_if: Option<CacheGate>,
}

impl AiRequest {
    /// A request on behalf of the verified caller in `ctx`.
    pub fn new(ctx: &OrgCtx, task: TaskKind, messages: Vec<ChatMessage>) -> Self {
        Self {
            org_id: ctx.org_id(),
            user_id: ctx.user_id(),
            role: ctx.role(),
            task,
            messages,
            params: GenerationParams::default(),
            hints: ComplexityHints::default(),
            bypass_cache: false,
            model: None,
            cache_only_if: None,
        }
    }
}

/// Tokens of one call. `estimated` is set when the provider reported none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Part of `input_tokens` served from the provider's prompt cache.
    pub cached_input_tokens: u64,
    pub estimated: bool,
}

impl TokenUsage {
    /// A rough count (4 characters a token) for providers that report nothing.
    pub fn estimate(input_chars: usize, output_chars: usize) -> Self {
        Self {
            input_tokens: input_chars.div_ceil(4) as u64,
            output_tokens: output_chars.div_ceil(4) as u64,
            cached_input_tokens: 0,
            estimated: true,
        }
    }
}

/// Why generation stopped, normalised across providers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    /// Stopped by a provider's content filter; carries the provider's reason code.
    ContentFilter(String),
    ToolCalls,
    Other(String),
}

/// Which kind of provider answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    Gemini,
    Offline,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Offline => "offline",
        }
    }
}

/// Everything the caller (and the trace) should know about how an answer was produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResponseMeta {
    /// Registry id of the model that answered.
    pub model: String,
    /// Configured provider name (`offline` for the offline provider).
    pub provider: String,
    pub provider_kind: ProviderKind,
    pub tier: Tier,
    /// The answer came from the deterministic offline provider, not an AI model.
    pub offline: bool,
    pub cache_hit: bool,
    /// Why this model: task, complexity, tier, the chain and what was skipped.
    pub selection_reason: String,
    /// Models that were tried and failed before this one, with the error code.
    pub fallbacks: Vec<String>,
    pub attempts: u32,
    pub usage: TokenUsage,
    pub cost_usd: f64,
    pub finish_reason: Option<FinishReason>,
    #[serde(with = "duration_us")]
    pub latency: Duration,
    #[serde(with = "opt_duration_us")]
    pub time_to_first_token: Option<Duration>,
    /// Time spent in the gateway itself: total minus waiting on providers and backoffs.
    #[serde(with = "duration_us")]
    pub gateway_overhead: Duration,
}

/// A complete answer.
#[derive(Clone, Debug)]
pub struct AiResponse {
    pub text: String,
    /// The parsed, schema-checked JSON for structured tasks.
    pub json: Option<serde_json::Value>,
    pub meta: ResponseMeta,
}

/// What a streamed answer delivers, in order: `Started`, `Delta`*, then `Done` or `Error`.
#[derive(Clone, Debug)]
pub enum AiStreamEvent {
    /// The chosen model (before any text).
    Started {
        model: String,
        provider: String,
        offline: bool,
    },
    Delta(String),
    Done(Box<ResponseMeta>),
    /// The stream failed after text was sent; it is not retried (that would repeat text).
    Error(AiError),
}

use crate::AiError;

mod duration_us {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}

mod opt_duration_us {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_micros() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_micros))
    }
}
