//! Model selection: task + complexity -> tier -> an ordered chain across providers,
//! skipping models whose breaker is open or whose context is too small, ending with the
//! offline provider when enabled. A request that pins a model gets a chain of that model
//! alone (then the offline provider). The reason is kept for the response and the trace.

use crate::breaker::BreakerState;
use crate::registry::{ModelEntry, OFFLINE_MODEL_ID, Registry};
use crate::types::{AiRequest, ProviderKind, TaskKind, Tier};
use std::fmt::Write;
use std::sync::Arc;

pub struct Selection {
    pub complexity: u32,
    pub tier: Tier,
    pub chain: Vec<Arc<ModelEntry>>,
    pub reason: String,
}

/// A 0..=100 score from input size, framework size and organisation size.
pub fn complexity(req: &AiRequest) -> u32 {
    let chars: usize = req.messages.iter().map(|m| m.content.len()).sum();
    // ~1 point per 500 characters, up to 40: long inputs need more capable models.
    let input = (chars / 500).min(40) as u32;
    let framework = req
        .hints
        .framework_requirements
        .map_or(0, |n| (n / 10).min(30));
    let org = match req.hints.org_employees {
        None | Some(0..50) => 0,
        Some(50..250) => 10,
        Some(250..1000) => 20,
        Some(_) => 30,
    };
    (input + framework + org).min(100)
}

pub fn tier_for(task: TaskKind, score: u32) -> Tier {
    match task {
        TaskKind::Help | TaskKind::Classification => {
            if score >= 60 {
                Tier::Balanced
            } else {
                Tier::Fast
            }
        }
        TaskKind::Chat => {
            if score >= 40 {
                Tier::Balanced
            } else {
                Tier::Fast
            }
        }
        TaskKind::Recommendations | TaskKind::Analysis | TaskKind::PolicyDraft => {
            if score >= 60 {
                Tier::Deep
            } else {
                Tier::Balanced
            }
        }
        TaskKind::GapAnalysis => {
            if score >= 40 {
                Tier::Deep
            } else {
                Tier::Balanced
            }
        }
    }
}

/// Tiers to fall back to, nearest first: a stronger model before a weaker one.
fn tier_order(t: Tier) -> [Tier; 3] {
    match t {
        Tier::Fast => [Tier::Fast, Tier::Balanced, Tier::Deep],
        Tier::Balanced => [Tier::Balanced, Tier::Deep, Tier::Fast],
        Tier::Deep => [Tier::Deep, Tier::Balanced, Tier::Fast],
    }
}

/// The entry a pinned model id names: a configured model, or the offline provider.
fn pinned_entry<'a>(reg: &'a Registry, id: &str) -> Option<&'a Arc<ModelEntry>> {
    reg.models
        .iter()
        .find(|m| m.id == id)
        .or_else(|| (id == OFFLINE_MODEL_ID).then_some(&reg.offline))
}

pub fn select(reg: &Registry, req: &AiRequest, offline_fallback: bool) -> Selection {
    let score = complexity(req);
    let pinned = req.model.as_deref().map(|id| (id, pinned_entry(reg, id)));
    let tier = match pinned {
        Some((_, Some(m))) => m.tier,
        _ => tier_for(req.task, score),
    };
    let est_tokens: u64 = req
        .messages
        .iter()
        .map(|m| m.content.len() as u64)
        .sum::<u64>()
        / 4;
    let mut chain = Vec::new();
    let mut skipped = Vec::new();
    let mut consider = |m: &Arc<ModelEntry>| {
        if m.breaker.state() == BreakerState::Open {
            skipped.push(format!("{} (breaker open)", m.id));
        } else if u64::from(m.context_window) < est_tokens {
            skipped.push(format!("{} (context too small)", m.id));
        } else {
            chain.push(m.clone());
        }
    };
    match pinned {
        // The caller chose: no other AI model stands in for it.
        Some((_, Some(m))) => consider(m),
        Some((id, None)) => skipped.push(format!("{id} (not configured)")),
        None => {
            for t in tier_order(tier) {
                reg.models
                    .iter()
                    .filter(|m| m.tier == t)
                    .for_each(&mut consider);
            }
        }
    }
    // The offline provider ends the chain once, even if a model entry also names it.
    if offline_fallback && !chain.iter().any(|m| m.kind == ProviderKind::Offline) {
        chain.push(reg.offline.clone());
    }
    let mut reason = match pinned {
        Some((id, _)) => format!(
            "task={} complexity={score}; model={id} (pinned) -> tier={tier}; chain: ",
            req.task
        ),
        None => format!(
            "task={} complexity={score} -> tier={tier}; chain: ",
            req.task
        ),
    };
    let names: Vec<&str> = chain.iter().map(|m| m.id.as_str()).collect();
    reason.push_str(if names.is_empty() { "(none)" } else { "" });
    reason.push_str(&names.join(", "));
    if !skipped.is_empty() {
        let _ = write!(reason, "; skipped: {}", skipped.join(", "));
    }
    Selection {
        complexity: score,
        tier,
        chain,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ChatMessage, ComplexityHints};
    use assay_core::{OrgCtx, OrgId};

    fn req(task: TaskKind, chars: usize, hints: ComplexityHints) -> AiRequest {
        let mut r = AiRequest::new(
            &OrgCtx::for_system(OrgId::new()),
            task,
            vec![ChatMessage::user("x".repeat(chars))],
        );
        r.hints = hints;
        r
    }

    #[test]
    fn small_questions_go_to_fast_models_and_big_analyses_to_deep() {
        let h = ComplexityHints::default();
        assert_eq!(
            tier_for(TaskKind::Help, complexity(&req(TaskKind::Help, 100, h))),
            Tier::Fast
        );
        assert_eq!(
            tier_for(
                TaskKind::Classification,
                complexity(&req(TaskKind::Classification, 2_000, h))
            ),
            Tier::Fast
        );
        assert_eq!(
            tier_for(
                TaskKind::Analysis,
                complexity(&req(TaskKind::Analysis, 100, h))
            ),
            Tier::Balanced
        );
        let big = ComplexityHints {
            framework_requirements: Some(400),
            org_employees: Some(300),
        };
        let r = req(TaskKind::GapAnalysis, 5_000, big);
        assert_eq!(complexity(&r), 10 + 30 + 20);
        assert_eq!(tier_for(TaskKind::GapAnalysis, complexity(&r)), Tier::Deep);
        assert_eq!(complexity(&req(TaskKind::Chat, 1_000_000, big)), 90);
    }

    /// Three OpenAI-compatible models, one per tier (nothing is called: selection only).
    fn registry() -> Registry {
        use crate::config::{AiConfig, ModelConfig, ProviderConfig};
        let model = |name: &str, tier: &str| ModelConfig {
            provider: "p".into(),
            model: name.into(),
            tier: tier.into(),
            ..ModelConfig::default()
        };
        let cfg = AiConfig {
            providers: vec![ProviderConfig {
                name: "p".into(),
                base_url: Some("http://127.0.0.1:9/v1".into()),
                ..ProviderConfig::default()
            }],
            models: vec![
                model("small", "fast"),
                model("mid", "balanced"),
                model("big", "deep"),
            ],
            ..AiConfig::default()
        };
        Registry::build(
            &cfg,
            std::sync::Arc::new(crate::knowledge::StaticKnowledge::builtin()),
        )
        .unwrap()
    }

    fn ids(s: &Selection) -> Vec<&str> {
        s.chain.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn a_pinned_model_is_the_only_ai_model_in_the_chain_then_offline() {
        let reg = registry();
        let mut r = req(TaskKind::Chat, 100, ComplexityHints::default());
        let auto = select(&reg, &r, true);
        assert_eq!(ids(&auto), ["p/small", "p/mid", "p/big", "offline"]);

        r.model = Some("p/big".into());
        let pinned = select(&reg, &r, true);
        assert_eq!(ids(&pinned), ["p/big", "offline"]);
        assert_eq!(pinned.tier, Tier::Deep, "the pinned model's own tier");
        assert!(
            pinned.reason.contains("model=p/big (pinned)"),
            "{}",
            pinned.reason
        );
        assert_eq!(ids(&select(&reg, &r, false)), ["p/big"]);

        r.model = Some("offline".into());
        assert_eq!(ids(&select(&reg, &r, true)), ["offline"]);
        r.model = Some("p/unknown".into());
        let unknown = select(&reg, &r, true);
        assert_eq!(ids(&unknown), ["offline"]);
        assert!(
            unknown.reason.contains("p/unknown (not configured)"),
            "{}",
            unknown.reason
        );
    }

    #[test]
    fn a_pinned_model_with_an_open_breaker_leaves_only_the_offline_fallback() {
        let reg = registry();
        let big = reg.models.iter().find(|m| m.id == "p/big").unwrap();
        while big.breaker.state() != BreakerState::Open {
            big.breaker.try_acquire().unwrap().failure();
        }
        let mut r = req(TaskKind::Chat, 100, ComplexityHints::default());
        r.model = Some("p/big".into());
        let s = select(&reg, &r, true);
        assert_eq!(ids(&s), ["offline"], "no other AI model stands in");
        assert!(s.reason.contains("p/big (breaker open)"), "{}", s.reason);
        assert!(select(&reg, &r, false).chain.is_empty());
    }
}
