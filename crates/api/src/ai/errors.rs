//! Typed AI errors as the API shows them.
//! Policy: every failure of an AI call is one `AiApiError` with a stable code; the gateway's
//! and providers' own texts are logged, never returned; a block names its rule ids, never
//! the text that matched. `ApiError` gives the JSON envelope and the status:
//!
//! | code | status | notes |
//! |---|---|---|
//! | `ai_rate_limited` | 429 | `Retry-After`; `details.limit` is `requests` or `tokens` |
//! | `ai_budget_exceeded` | 402 | the organisation's monthly budget is spent; `details` has limit, spent and `resets_at`. 402 rather than 429: retrying soon does not help, raising the budget does |
//! | `ai_blocked` | 422 | `details.rules` (rule ids), `details.direction` (`input`, `output` or `provider`) |
//! | `ai_unavailable` | 503 | no model could answer (and no offline answer); `Retry-After` when known |
//! | `ai_invalid_output` | 502 | the model's answer failed validation |
//! | `ai_disabled` | 403 | the deployment switched AI off (`features.ai = false`): nothing is sent anywhere |

use crate::error::ApiError;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::time::Duration;

/// Which side of the exchange a block came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockedAt {
    /// Assay's safety check on the prompt: nothing was sent to a provider.
    Input,
    /// Assay's safety check on the answer: nothing (more) reached the client.
    Output,
    /// The provider's own content filter.
    Provider,
}

impl BlockedAt {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockedAt::Input => "input",
            BlockedAt::Output => "output",
            BlockedAt::Provider => "provider",
        }
    }
}

#[derive(Clone, Debug)]
pub enum AiApiError {
    /// Assay's per-caller AI limit (not the provider's).
    RateLimited {
        retry_after: Duration,
        /// `requests` (per task class) or `tokens`.
        limit: &'static str,
        task_class: &'static str,
    },
    BudgetExceeded {
        limit_usd: f64,
        spent_usd: f64,
        resets_at: DateTime<Utc>,
    },
    Blocked {
        rules: Vec<String>,
        at: BlockedAt,
    },
    Unavailable {
        retry_after: Option<Duration>,
    },
    /// `reason` is Assay's own description (a schema path), never model text.
    InvalidOutput {
        reason: String,
    },
    /// Anything else (bad input, the database): already an `ApiError`.
    Api(ApiError),
}

impl AiApiError {
    pub fn code(&self) -> &'static str {
        match self {
            AiApiError::RateLimited { .. } => "ai_rate_limited",
            AiApiError::BudgetExceeded { .. } => "ai_budget_exceeded",
            AiApiError::Blocked { .. } => "ai_blocked",
            AiApiError::Unavailable { .. } => "ai_unavailable",
            AiApiError::InvalidOutput { .. } => "ai_invalid_output",
            AiApiError::Api(e) => e.code,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AiApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AiApiError::BudgetExceeded { .. } => StatusCode::PAYMENT_REQUIRED,
            AiApiError::Blocked { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AiApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AiApiError::InvalidOutput { .. } => StatusCode::BAD_GATEWAY,
            AiApiError::Api(e) => e.status,
        }
    }

    /// How long to wait before retrying, when that is known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AiApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            AiApiError::Unavailable { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The gateway's error in API terms. Provider details stay in the log.
    pub fn from_gateway(e: assay_ai::AiError) -> Self {
        use assay_ai::AiError as E;
        tracing::warn!(code = e.code(), error = ?e, "AI call failed");
        match e {
            E::Blocked { reason } => AiApiError::Blocked {
                rules: vec![format!("provider.{}", provider_reason(&reason))],
                at: BlockedAt::Provider,
            },
            E::InvalidOutput { .. } => AiApiError::InvalidOutput {
                reason: "the model's answer could not be used".into(),
            },
            E::RateLimited { retry_after } => AiApiError::Unavailable { retry_after },
            _ => AiApiError::Unavailable { retry_after: None },
        }
    }

    /// The error as the API's one JSON shape.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            AiApiError::RateLimited {
                retry_after,
                limit,
                task_class,
            } => {
                let mut e = ApiError::rate_limited("ai_rate_limited", *retry_after);
                e.message = format!(
                    "AI {limit} limit reached for {task_class}; {}",
                    e.message.trim_start_matches("too many attempts; ")
                );
                e.with_details(json!({ "limit": limit, "task_class": task_class }))
            }
            AiApiError::BudgetExceeded {
                limit_usd,
                spent_usd,
                resets_at,
            } => ApiError::new(
                self.status(),
                "ai_budget_exceeded",
                "the organisation's monthly AI budget is spent; an AI admin can raise it",
            )
            .with_details(json!({
                "limit_usd": limit_usd,
                "spent_usd": round_cents(*spent_usd),
                "resets_at": resets_at,
            })),
            AiApiError::Blocked { rules, at } => ApiError::new(
                self.status(),
                "ai_blocked",
                match at {
                    BlockedAt::Input => "the request was blocked by the safety policy",
                    BlockedAt::Output => "the answer was blocked by the safety policy",
                    BlockedAt::Provider => "the AI provider refused the request",
                },
            )
            .with_details(json!({ "rules": rules, "direction": at.as_str() })),
            AiApiError::Unavailable { retry_after } => {
                let e = ApiError::new(
                    self.status(),
                    "ai_unavailable",
                    "the AI service is temporarily unavailable",
                );
                match retry_after {
                    Some(d) => e.with_header(header::RETRY_AFTER, d.as_secs().max(1)),
                    None => e,
                }
            }
            AiApiError::InvalidOutput { reason } => ApiError::new(
                self.status(),
                "ai_invalid_output",
                "the AI model returned an answer that failed validation",
            )
            .with_details(json!({ "reason": reason })),
            AiApiError::Api(e) => e.clone(),
        }
    }

    /// The deployment has AI switched off (`features.ai = false`).
    pub fn disabled() -> Self {
        AiApiError::Api(ApiError::new(
            StatusCode::FORBIDDEN,
            "ai_disabled",
            "AI features are switched off in this deployment (features.ai = false)",
        ))
    }

    /// The JSON the SSE `error` event carries: code, message and details, no internals.
    pub fn event_body(&self) -> serde_json::Value {
        let e = self.to_api_error();
        json!({ "code": e.code, "message": e.message, "details": e.details })
    }
}

/// Only a short, code-like reason from a provider is shown (`SAFETY`, `content_filter`).
fn provider_reason(reason: &str) -> String {
    let clean: String = reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect::<String>()
        .to_ascii_lowercase();
    if clean.is_empty() {
        "content_filter".into()
    } else {
        clean
    }
}

fn round_cents(usd: f64) -> f64 {
    (usd * 10_000.0).round() / 10_000.0
}

impl From<ApiError> for AiApiError {
    fn from(e: ApiError) -> Self {
        AiApiError::Api(e)
    }
}

impl From<assay_store::StoreError> for AiApiError {
    fn from(e: assay_store::StoreError) -> Self {
        AiApiError::Api(e.into())
    }
}

impl From<AiApiError> for ApiError {
    fn from(e: AiApiError) -> Self {
        e.to_api_error()
    }
}

impl IntoResponse for AiApiError {
    fn into_response(self) -> Response {
        self.to_api_error().into_response()
    }
}

impl std::fmt::Display for AiApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_stable() {
        let cases = [
            (
                AiApiError::RateLimited {
                    retry_after: Duration::from_millis(1500),
                    limit: "requests",
                    task_class: "chat",
                },
                429,
                "ai_rate_limited",
            ),
            (
                AiApiError::BudgetExceeded {
                    limit_usd: 1.0,
                    spent_usd: 1.2,
                    resets_at: Utc::now(),
                },
                402,
                "ai_budget_exceeded",
            ),
            (
                AiApiError::Blocked {
                    rules: vec!["injection.instruction_override".into()],
                    at: BlockedAt::Input,
                },
                422,
                "ai_blocked",
            ),
            (
                AiApiError::Unavailable { retry_after: None },
                503,
                "ai_unavailable",
            ),
            (
                AiApiError::InvalidOutput { reason: "x".into() },
                502,
                "ai_invalid_output",
            ),
        ];
        for (e, status, code) in cases {
            let api = e.to_api_error();
            assert_eq!((api.status.as_u16(), api.code), (status, code));
        }
        let limited = AiApiError::RateLimited {
            retry_after: Duration::from_millis(1500),
            limit: "requests",
            task_class: "chat",
        }
        .to_api_error();
        let retry = limited
            .headers
            .iter()
            .find(|(n, _)| n == header::RETRY_AFTER)
            .map(|(_, v)| v.to_str().unwrap().to_owned());
        assert_eq!(retry.as_deref(), Some("2"));
    }

    #[test]
    fn provider_text_never_reaches_the_client() {
        let e = AiApiError::from_gateway(assay_ai::AiError::Unavailable {
            detail: "upstream said: secret internals at 10.0.0.7".into(),
        });
        let body = e.event_body().to_string();
        assert!(
            !body.contains("10.0.0.7") && !body.contains("internals"),
            "{body}"
        );
        let blocked = AiApiError::from_gateway(assay_ai::AiError::Blocked {
            reason: "SAFETY <script>".into(),
        });
        assert_eq!(
            blocked.event_body()["details"]["rules"][0],
            "provider.safetyscript"
        );
    }
}
