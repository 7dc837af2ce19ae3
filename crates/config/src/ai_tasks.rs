//! `[ai_tasks]`: how the AI task endpoints (help, gap analysis, policy drafts, evidence
//! classification) treat what a model says.
//!
//! `classification_threshold`: a classification whose confidence is at least this is applied
//! to the evidence; below it, it is only suggested for a person to confirm. Env:
//! `ASSAY_AI_TASKS__CLASSIFICATION_THRESHOLD`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiTasksConfig {
    /// Confidence (0..=1) from which an evidence classification is applied.
    pub classification_threshold: f64,
}

impl Default for AiTasksConfig {
    fn default() -> Self {
        Self {
            classification_threshold: 0.7,
        }
    }
}

impl AiTasksConfig {
    /// Every problem as (setting, reason).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(0.0..=1.0).contains(&self.classification_threshold) {
            out.push((
                "ai_tasks.classification_threshold",
                "must be a confidence between 0 and 1".to_owned(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_a_confidence() {
        assert!(AiTasksConfig::default().problems().is_empty());
        for bad in [-0.1, 1.01, f64::NAN] {
            let c = AiTasksConfig {
                classification_threshold: bad,
            };
            assert_eq!(
                c.problems()[0].0,
                "ai_tasks.classification_threshold",
                "{bad}"
            );
        }
    }
}
