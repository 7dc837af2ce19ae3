//! AI rate limits per caller: a token bucket per user (or API key) per task class,
//! and one bucket of prompt tokens per caller across classes. GCRA from `assay-infra`,
//! in-process, or shared through Redis when it is configured (so every node counts the
//! same requests; if Redis fails, the in-process limiter decides meanwhile).
//!
//! A class's bucket holds `burst` requests and refills at `*_per_minute`: the GCRA quota is
//! `burst` units per `burst / rate` minutes, which is exactly that.

use super::errors::AiApiError;
use crate::error::ApiError;
use assay_ai::TaskKind;
use assay_config::AiLimitsConfig;
use assay_infra::rate_limit::{Quota, RateDecision, RateLimiter, RateLimiterConfig, Spend};
use assay_infra::redis_conn::RedisConn;
use axum::http::StatusCode;
use std::num::NonZeroU32;
use std::time::Duration;

/// Task classes that share a request limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskClass {
    Help,
    Chat,
    /// Analysis, gap analysis, recommendations and policy drafting.
    Analysis,
    Classification,
}

impl TaskClass {
    pub fn of(task: TaskKind) -> Self {
        match task {
            TaskKind::Help => TaskClass::Help,
            TaskKind::Chat => TaskClass::Chat,
            TaskKind::Analysis
            | TaskKind::GapAnalysis
            | TaskKind::Recommendations
            | TaskKind::PolicyDraft => TaskClass::Analysis,
            TaskKind::Classification => TaskClass::Classification,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskClass::Help => "help",
            TaskClass::Chat => "chat",
            TaskClass::Analysis => "analysis",
            TaskClass::Classification => "classification",
        }
    }
}

/// The AI limiter with its quotas.
#[derive(Clone)]
pub struct AiLimits {
    limiter: RateLimiter,
    cfg: AiLimitsConfig,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least 1")
}

impl AiLimits {
    pub fn new(cfg: AiLimitsConfig, redis: Option<(&RedisConn, &str)>) -> Self {
        let rl = RateLimiterConfig {
            name: "ai",
            ..Default::default()
        };
        let limiter = match redis {
            Some((conn, prefix)) => RateLimiter::with_redis(rl, conn.clone(), prefix),
            None => RateLimiter::in_memory(rl),
        };
        Self { limiter, cfg }
    }

    /// Requests of `class` per minute.
    pub fn per_minute(&self, class: TaskClass) -> u32 {
        match class {
            TaskClass::Help => self.cfg.help_per_minute,
            TaskClass::Chat => self.cfg.chat_per_minute,
            TaskClass::Analysis => self.cfg.analysis_per_minute,
            TaskClass::Classification => self.cfg.classification_per_minute,
        }
        .max(1)
    }

    /// `burst` requests that refill at `per_minute`.
    pub fn request_quota(&self, class: TaskClass) -> Quota {
        let burst = self.cfg.burst.max(1);
        let period = Duration::from_secs(60) * burst / self.per_minute(class);
        Quota::new(nz(burst), period)
    }

    /// Spend one request of the task's class and `prompt_tokens` tokens for `caller_key`
    /// (`user:<uuid>` or `api_key:<id>`), both or neither, in one step (one Redis round
    /// trip when shared). A refusal carries the wait until both would pass.
    pub async fn check(
        &self,
        caller_key: &str,
        task: TaskKind,
        prompt_tokens: u32,
    ) -> Result<RateDecision, AiApiError> {
        let class = TaskClass::of(task);
        let tokens_quota = Quota::per_minute(nz(self.cfg.tokens_per_minute));
        if prompt_tokens > tokens_quota.limit() {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ai_prompt_too_large",
                format!(
                    "the prompt (about {prompt_tokens} tokens) is larger than the {} tokens a caller may send per minute",
                    tokens_quota.limit()
                ),
            )
            .into());
        }
        let requests_key = format!("{}:{caller_key}", class.as_str());
        let tokens_key = format!("tokens:{caller_key}");
        let spends = [
            Spend {
                key: &requests_key,
                quota: self.request_quota(class),
                cost: 1,
            },
            Spend {
                key: &tokens_key,
                quota: tokens_quota,
                cost: prompt_tokens.max(1),
            },
        ];
        match self.limiter.check_all(&spends).await {
            Ok(each) => Ok(each[0]),
            Err(refused) => Err(AiApiError::RateLimited {
                retry_after: refused
                    .decision
                    .retry_after
                    .unwrap_or(Duration::from_secs(60)),
                limit: if refused.index == 0 {
                    "requests"
                } else {
                    "tokens"
                },
                task_class: class.as_str(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chat_allows_a_burst_of_two_then_refuses_with_the_refill_wait() {
        let limits = AiLimits::new(AiLimitsConfig::default(), None);
        assert!(limits.check("user:a", TaskKind::Chat, 10).await.is_ok());
        assert!(limits.check("user:a", TaskKind::Chat, 10).await.is_ok());
        match limits.check("user:a", TaskKind::Chat, 10).await {
            Err(AiApiError::RateLimited {
                retry_after,
                limit: "requests",
                task_class: "chat",
            }) => {
                // 5 a minute: one request every 12 s.
                assert!(
                    retry_after > Duration::from_secs(11) && retry_after <= Duration::from_secs(12),
                    "{retry_after:?}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Other classes and other callers have their own buckets.
        assert!(limits.check("user:a", TaskKind::Help, 10).await.is_ok());
        assert!(limits.check("user:b", TaskKind::Chat, 10).await.is_ok());
        // Policy drafting shares the analysis bucket with gap analysis.
        assert!(
            limits
                .check("user:a", TaskKind::PolicyDraft, 1)
                .await
                .is_ok()
        );
        assert!(
            limits
                .check("user:a", TaskKind::GapAnalysis, 1)
                .await
                .is_ok()
        );
        assert!(limits.check("user:a", TaskKind::Analysis, 1).await.is_err());
    }

    #[tokio::test]
    async fn prompt_tokens_are_limited_per_caller() {
        let cfg = AiLimitsConfig {
            tokens_per_minute: 100,
            help_per_minute: 1000,
            burst: 1000,
            ..Default::default()
        };
        let limits = AiLimits::new(cfg, None);
        assert!(limits.check("key:k", TaskKind::Help, 60).await.is_ok());
        assert!(matches!(
            limits.check("key:k", TaskKind::Help, 60).await,
            Err(AiApiError::RateLimited {
                limit: "tokens",
                ..
            })
        ));
        // A call refused for its tokens does not use up one of the caller's requests.
        let limits = AiLimits::new(
            AiLimitsConfig {
                tokens_per_minute: 100,
                ..Default::default()
            },
            None,
        );
        assert!(limits.check("user:c", TaskKind::Chat, 60).await.is_ok());
        assert!(limits.check("user:c", TaskKind::Chat, 60).await.is_err());
        assert!(limits.check("user:c", TaskKind::Chat, 40).await.is_ok());
        assert!(matches!(
            limits.check("user:c", TaskKind::Chat, 1).await,
            Err(AiApiError::RateLimited {
                limit: "requests",
                ..
            })
        ));
        assert_eq!(
            limits
                .check("key:other", TaskKind::Help, 101)
                .await
                .unwrap_err()
                .code(),
            "ai_prompt_too_large"
        );
    }
}
