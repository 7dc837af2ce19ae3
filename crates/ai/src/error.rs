//! The gateway's error type.
//!
//! Policy: every failure is one `AiError` variant named in the gateway's terms, never a
//! provider's own text. Provider details ride along in `detail` fields for logs only; their
//! `Display` (what an API may show) stays generic. Retryability lives here, in one place.

use std::time::Duration;

/// Which timeout fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Connecting or waiting for the first token (or, non-streaming, the whole answer).
    FirstToken,
    /// Too long between two streamed chunks.
    Idle,
    /// The whole call took longer than its budget.
    Total,
}

impl std::fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutPhase::FirstToken => "first token",
            TimeoutPhase::Idle => "between chunks",
            TimeoutPhase::Total => "total",
        })
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AiError {
    #[error("the AI provider is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the AI provider's quota is exhausted")]
    QuotaExhausted,
    /// `reason` is a provider's short code (`SAFETY`, `content_filter`...), safe to show.
    #[error("blocked by the AI provider ({reason})")]
    Blocked { reason: String },
    #[error("the AI provider timed out ({phase})")]
    Timeout { phase: TimeoutPhase },
    /// 5xx, 408, connection failures, a stream cut short.
    #[error("the AI provider is unavailable")]
    Unavailable { detail: String },
    /// Unparseable wire data, or structured output that failed its schema.
    #[error("the AI provider returned invalid output")]
    InvalidOutput { detail: String },
    /// The provider refused the request itself (bad key, unknown model, bad argument).
    #[error("the AI provider rejected the request")]
    Rejected { status: u16, detail: String },
    #[error("the AI request was cancelled")]
    Cancelled,
    #[error("no AI model is available for this request")]
    NoModel,
    #[error("invalid AI configuration: {0}")]
    Config(String),
}

impl AiError {
    /// A stable code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AiError::RateLimited { .. } => "ai_rate_limited",
            AiError::QuotaExhausted => "ai_quota_exhausted",
            AiError::Blocked { .. } => "ai_blocked",
            AiError::Timeout { .. } => "ai_timeout",
            AiError::Unavailable { .. } => "ai_unavailable",
            AiError::InvalidOutput { .. } => "ai_invalid_output",
            AiError::Rejected { .. } => "ai_rejected",
            AiError::Cancelled => "ai_cancelled",
            AiError::NoModel => "ai_no_model",
            AiError::Config(_) => "ai_config",
        }
    }

    /// Worth another attempt on the same model (after a backoff).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AiError::RateLimited { .. }
                | AiError::Unavailable { .. }
                | AiError::Timeout {
                    phase: TimeoutPhase::FirstToken
                }
        )
    }

    /// Says something about the model's health, so its breaker should count it. A blocked
    /// prompt or a cancelled call says nothing about the provider.
    pub fn counts_against_breaker(&self) -> bool {
        match self {
            AiError::Blocked { .. }
            | AiError::Cancelled
            | AiError::NoModel
            | AiError::Config(_) => false,
            // A malformed request is our fault, not the provider's.
            AiError::Rejected { status, .. } => *status != 400 && *status != 413,
            _ => true,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AiError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}
