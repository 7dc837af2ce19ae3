//! Assay's AI gateway: one call in, a validated, costed, cached answer out.
//!
//! Pipeline below the HTTP layer: cache lookup (tenant-scoped) -> model selection (task +
//! complexity -> tier -> chain, skipping open breakers) -> provider call with per-phase
//! timeouts and retries -> response validation (schemas for structured tasks, one repair) ->
//! cache update -> usage ledger and metrics. When every model fails, or none is configured,
//! the offline provider answers from the catalogue, and the metadata says so.
//! Rate limits and safety scanning sit in front of this crate and are not done here.

pub mod breaker;
pub mod config;
pub mod cost;
pub mod error;
pub mod gateway;
pub mod http;
pub mod knowledge;
pub mod provider;
pub mod registry;
pub mod retry;
pub mod select;
pub mod sse;
pub mod telemetry;
pub mod types;
pub mod usage;
pub mod validate;

pub use config::AiConfig;
pub use error::{AiError, TimeoutPhase};
pub use gateway::{AiStream, Gateway};
pub use knowledge::{KnowledgeEntry, KnowledgeSource, StaticKnowledge};
pub use types::{
    AiRequest, AiResponse, AiStreamEvent, CacheGate, ChatMessage, ResponseMeta, TaskKind, Tier,
    TokenUsage,
};
pub use usage::{MemoryUsageSink, UsageOutcome, UsageRecord, UsageSink};
