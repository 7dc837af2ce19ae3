//! What a call cost: registry prices (USD per million tokens) applied to reported usage.

use crate::types::TokenUsage;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
    /// Price of prompt tokens served from the provider's cache; when unset they cost as
    /// much as other input tokens.
    pub cached_input_per_million: Option<f64>,
}

impl Price {
    /// Cost in USD. Cached tokens are part of the input count, billed at the cached rate;
    /// the rest of the input at the input rate.
    pub fn cost_usd(&self, u: &TokenUsage) -> f64 {
        let cached = u.cached_input_tokens.min(u.input_tokens);
        let fresh = u.input_tokens - cached;
        let cached_rate = self
            .cached_input_per_million
            .unwrap_or(self.input_per_million);
        (fresh as f64 * self.input_per_million
            + cached as f64 * cached_rate
            + u.output_tokens as f64 * self.output_per_million)
            / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(i: u64, o: u64, c: u64) -> TokenUsage {
        TokenUsage {
            input_tokens: i,
            output_tokens: o,
            cached_input_tokens: c,
            estimated: false,
        }
    }

    const P: Price = Price {
        input_per_million: 2.0,
        output_per_million: 8.0,
        cached_input_per_million: Some(0.5),
    };

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn plain_input_and_output() {
        // 1M in at $2 + 500k out at $8 = $6
        assert!(close(P.cost_usd(&usage(1_000_000, 500_000, 0)), 6.0));
        assert!(close(P.cost_usd(&usage(1_200, 300, 0)), 0.0024 + 0.0024));
    }

    #[test]
    fn cached_input_tokens_are_billed_at_the_cached_rate() {
        // 1000 in of which 800 cached: 200*2 + 800*0.5 = 800 (per M) ; 100 out*8 = 800
        let c = P.cost_usd(&usage(1_000, 100, 800));
        assert!(
            close(c, (200.0 * 2.0 + 800.0 * 0.5 + 100.0 * 8.0) / 1e6),
            "{c}"
        );
        assert!(c < P.cost_usd(&usage(1_000, 100, 0)));
    }

    #[test]
    fn cached_without_a_cached_price_costs_like_input() {
        let p = Price {
            cached_input_per_million: None,
            ..P
        };
        assert!(close(
            p.cost_usd(&usage(1_000, 0, 600)),
            p.cost_usd(&usage(1_000, 0, 0))
        ));
    }

    #[test]
    fn a_cached_count_above_the_input_count_is_clamped() {
        assert!(close(P.cost_usd(&usage(100, 0, 1_000)), 100.0 * 0.5 / 1e6));
    }

    #[test]
    fn free_models_cost_nothing() {
        assert_eq!(Price::default().cost_usd(&usage(10_000, 10_000, 5)), 0.0);
    }
}
