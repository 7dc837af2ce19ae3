//! `[ai_limits]`: how much AI each caller may use.
//!
//! Request limits are token buckets per user (and per API key) per task class: a class
//! refills at `*_per_minute` and holds at most `burst` requests. A second bucket per caller
//! counts prompt tokens (`tokens_per_minute`). Organisations get a monthly budget in USD
//! (`default_monthly_budget_usd`, overridable per organisation through the API); at
//! `budget_warning_ratio` of it callers are warned, at 100 % AI calls stop.
//!
//! It is a top-level section rather than `[ai.limits]` because `[ai]` is the gateway's own
//! (`assay_ai::AiConfig`, which rejects unknown keys) and the gateway does not enforce limits.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiLimitsConfig {
    /// Requests per minute per caller for help on a requirement, control or question.
    pub help_per_minute: u32,
    /// Requests per minute per caller for assistant chat (conversations, `/v1/chat/completions`).
    pub chat_per_minute: u32,
    /// Requests per minute per caller for analysis, gap analysis, recommendations and
    /// policy drafting.
    pub analysis_per_minute: u32,
    /// Requests per minute per caller for evidence classification.
    pub classification_per_minute: u32,
    /// Requests a caller may make back to back in one class before the rate applies.
    pub burst: u32,
    /// Prompt tokens (estimated, 4 characters a token) per minute per caller, all classes.
    pub tokens_per_minute: u32,
    /// An organisation's monthly AI budget when it has not set its own.
    pub default_monthly_budget_usd: f64,
    /// Share of the budget at which callers are warned (and `ai.budget.warning` is audited).
    pub budget_warning_ratio: f64,
    /// The cost assumed for an answer's output when a request does not cap it, in tokens,
    /// for the in-flight estimate the budget check adds to the recorded spend.
    pub estimated_output_tokens: u32,
    /// How long an organisation's recorded monthly spend and AI settings are reused
    /// in-process before being read again (milliseconds; 0 reads them on every call).
    /// In-flight and just-finished calls are always counted on top.
    pub spend_cache_ms: u64,
}

impl Default for AiLimitsConfig {
    fn default() -> Self {
        Self {
            help_per_minute: 10,
            chat_per_minute: 5,
            analysis_per_minute: 3,
            classification_per_minute: 10,
            burst: 2,
            tokens_per_minute: 60_000,
            default_monthly_budget_usd: 50.0,
            budget_warning_ratio: 0.8,
            estimated_output_tokens: 1_024,
            spend_cache_ms: 1_000,
        }
    }
}

impl AiLimitsConfig {
    /// Every problem as (setting, reason).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (name, v) in [
            ("ai_limits.help_per_minute", self.help_per_minute),
            ("ai_limits.chat_per_minute", self.chat_per_minute),
            ("ai_limits.analysis_per_minute", self.analysis_per_minute),
            (
                "ai_limits.classification_per_minute",
                self.classification_per_minute,
            ),
            ("ai_limits.burst", self.burst),
            ("ai_limits.tokens_per_minute", self.tokens_per_minute),
        ] {
            if v == 0 {
                out.push((name, "must be at least 1".to_owned()));
            }
        }
        if !(self.default_monthly_budget_usd.is_finite() && self.default_monthly_budget_usd >= 0.0)
        {
            out.push((
                "ai_limits.default_monthly_budget_usd",
                "must be a number of USD, 0 or more".to_owned(),
            ));
        }
        if self.spend_cache_ms > 60_000 {
            out.push((
                "ai_limits.spend_cache_ms",
                "must be at most 60000 (a budget must not lag a minute behind)".to_owned(),
            ));
        }
        if !(self.budget_warning_ratio > 0.0 && self.budget_warning_ratio < 1.0) {
            out.push((
                "ai_limits.budget_warning_ratio",
                "must be between 0 and 1 (exclusive)".to_owned(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(AiLimitsConfig::default().problems().is_empty());
        let bad = AiLimitsConfig {
            burst: 0,
            budget_warning_ratio: 1.5,
            default_monthly_budget_usd: -1.0,
            ..Default::default()
        };
        let names: Vec<&str> = bad.problems().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "ai_limits.burst",
                "ai_limits.default_monthly_budget_usd",
                "ai_limits.budget_warning_ratio"
            ]
        );
    }
}
