//! AI rate limits per caller: a token bucket per user (or API key) per task class,
//! and one bucket of prompt tokens per caller across classes. GCRA from `assay-infra`,
//! in-process, or shared through Redis when it is configured (so every node counts the
//! same requests; if Redis fails, the in-process limiter decides meanwhile).
//!
//! The buckets live in the general API limiter (keys under `ai:`), so a request whose
//! general limit was deferred to here (`crate::rate_limit::DeferredApiLimit`) spends it
//! with its AI limits in one step: one Redis script call per `/v1/chat/completions` request.
//!
//! A class's bucket holds `burst` requests and refills at `*_per_minute`: the GCRA quota is
//! `burst` units per `burst / rate` minutes, which is exactly that.

use super::errors::AiApiError;
use crate::error::ApiError;
use crate::rate_limit::DeferredApiLimit;
use assay_ai::TaskKind;
use assay_config::AiLimitsConfig;
use assay_infra::rate_limit::{Quota, RateDecision, RateLimiter, Spend};
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

/// The AI limits with their quotas, kept in the general API limiter.
#[derive(Clone)]
pub struct AiLimits {
    limiter: RateLimiter,
    cfg: AiLimitsConfig,
}

/// The namespace of AI buckets in the shared limiter.
const KEY_PREFIX: &str = "ai:";

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least 1")
}

impl AiLimits {
    /// AI limits kept in `limiter` (the general API limiter: in-process, or on Redis).
    pub fn new(cfg: AiLimitsConfig, limiter: RateLimiter) -> Self {
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
    /// (`user:<uuid>` or `api_key:<id>`) — and the request's deferred general API limit,
    /// when there is one — all or none, in one step (one Redis round trip when shared).
    /// A refusal carries the wait until all would pass; the deferred limit learns its
    /// decision either way (for its headers).
    pub async fn check(
        &self,
        caller_key: &str,
        task: TaskKind,
        prompt_tokens: u32,
        api: Option<&DeferredApiLimit>,
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
        let requests_key = format!("{KEY_PREFIX}{}:{caller_key}", class.as_str());
        let tokens_key = format!("{KEY_PREFIX}tokens:{caller_key}");
        let mut spends = Vec::with_capacity(3);
        spends.extend(api.map(DeferredApiLimit::spend));
        let first_ai = spends.len();
        spends.push(Spend {
            key: &requests_key,
            quota: self.request_quota(class),
            cost: 1,
        });
        spends.push(Spend {
            key: &tokens_key,
            quota: tokens_quota,
            cost: prompt_tokens.max(1),
        });
        let (decisions, refused) = match self.limiter.check_all(&spends).await {
            Ok(each) => (each, None),
            Err(r) => (r.decisions.clone(), Some(r)),
        };
        if let Some(api) = api {
            api.decided(decisions[0]);
        }
        let Some(refused) = refused else {
            return Ok(decisions[first_ai]);
        };
        let retry_after = refused
            .decision
            .retry_after
            .unwrap_or(Duration::from_secs(60));
        Err(match refused.index.checked_sub(first_ai) {
            // The general API limit: the same refusal the middleware gives elsewhere.
            None => ApiError::rate_limited("rate_limited", retry_after).into(),
            Some(i) => AiApiError::RateLimited {
                retry_after,
                limit: if i == 0 { "requests" } else { "tokens" },
                task_class: class.as_str(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assay_infra::rate_limit::RateLimiterConfig;

    fn in_memory(cfg: AiLimitsConfig) -> AiLimits {
        AiLimits::new(cfg, RateLimiter::in_memory(RateLimiterConfig::default()))
    }

    #[tokio::test]
    async fn chat_allows_a_burst_of_two_then_refuses_with_the_refill_wait() {
        let limits = in_memory(AiLimitsConfig::default());
        assert!(
            limits
                .check("user:a", TaskKind::Chat, 10, None)
                .await
                .is_ok()
        );
        assert!(
            limits
                .check("user:a", TaskKind::Chat, 10, None)
                .await
                .is_ok()
        );
        match limits.check("user:a", TaskKind::Chat, 10, None).await {
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
        assert!(
            limits
                .check("user:a", TaskKind::Help, 10, None)
                .await
                .is_ok()
        );
        assert!(
            limits
                .check("user:b", TaskKind::Chat, 10, None)
                .await
                .is_ok()
        );
        // Policy drafting shares the analysis bucket with gap analysis.
        assert!(
            limits
                .check("user:a", TaskKind::PolicyDraft, 1, None)
                .await
                .is_ok()
        );
        assert!(
            limits
                .check("user:a", TaskKind::GapAnalysis, 1, None)
                .await
                .is_ok()
        );
        assert!(
            limits
                .check("user:a", TaskKind::Analysis, 1, None)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn prompt_tokens_are_limited_per_caller() {
        let cfg = AiLimitsConfig {
            tokens_per_minute: 100,
            help_per_minute: 1000,
            burst: 1000,
            ..Default::default()
        };
        let limits = in_memory(cfg);
        assert!(
            limits
                .check("key:k", TaskKind::Help, 60, None)
                .await
                .is_ok()
        );
        assert!(matches!(
            limits.check("key:k", TaskKind::Help, 60, None).await,
            Err(AiApiError::RateLimited {
                limit: "tokens",
                ..
            })
        ));
        // A call refused for its tokens does not use up one of the caller's requests.
        let limits = in_memory(AiLimitsConfig {
            tokens_per_minute: 100,
            ..Default::default()
        });
        assert!(
            limits
                .check("user:c", TaskKind::Chat, 60, None)
                .await
                .is_ok()
        );
        assert!(
            limits
                .check("user:c", TaskKind::Chat, 60, None)
                .await
                .is_err()
        );
        assert!(
            limits
                .check("user:c", TaskKind::Chat, 40, None)
                .await
                .is_ok()
        );
        assert!(matches!(
            limits.check("user:c", TaskKind::Chat, 1, None).await,
            Err(AiApiError::RateLimited {
                limit: "requests",
                ..
            })
        ));
        assert_eq!(
            limits
                .check("key:other", TaskKind::Help, 101, None)
                .await
                .unwrap_err()
                .code(),
            "ai_prompt_too_large"
        );
    }

    #[tokio::test]
    async fn a_deferred_api_limit_is_spent_with_the_ai_limits_all_or_nothing() {
        let cfg = AiLimitsConfig {
            chat_per_minute: 5,
            burst: 2,
            ..Default::default()
        };
        let limits = in_memory(cfg);
        let api_quota = Quota::per_minute(nz(3));
        let deferred = || DeferredApiLimit::new("key:k1", api_quota);
        // Spent together: the API limit's decision is recorded for the headers.
        for remaining in [2, 1] {
            let api = deferred();
            assert!(
                limits
                    .check("api_key:k1", TaskKind::Chat, 10, Some(&api))
                    .await
                    .is_ok()
            );
            assert_eq!(api.decision().unwrap().remaining, remaining);
        }
        // The AI limit refuses: nothing is spent, the API limit included.
        let api = deferred();
        let refused = limits
            .check("api_key:k1", TaskKind::Chat, 10, Some(&api))
            .await;
        assert_eq!(refused.unwrap_err().code(), "ai_rate_limited");
        assert!(
            api.decision().unwrap().allowed,
            "the API limit would have passed"
        );
        // So the API limit still has its last unit: another task class passes with it...
        let api = deferred();
        assert!(
            limits
                .check("api_key:k1", TaskKind::Help, 10, Some(&api))
                .await
                .is_ok()
        );
        assert_eq!(api.decision().unwrap().remaining, 0);
        // ...and then the API limit refuses, with the general code and its own wait.
        let api = deferred();
        let err = limits
            .check("api_key:k1", TaskKind::Help, 10, Some(&api))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "rate_limited");
        assert!(!api.decision().unwrap().allowed);
    }
}
