//! Output validation for structured tasks: the JSON shape each task must return, the
//! instruction that asks for it, and a checker whose messages can be fed back to the model
//! for one repair attempt.
//!
//! Shapes check form only (types, ranges, required fields). Whether a control id a model
//! names really exists, or is in the organisation's scope, is the caller's business: it
//! knows the catalogue and the tenant, and drops what does not check out. Fields added
//! after the first release (`controls_covered`, `rationale`, `recommendations`) are
//! optional, so a reply in the older shape still validates; the instructions ask for them.

use crate::types::TaskKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

enum Shape {
    Str {
        non_empty: bool,
    },
    Num {
        min: f64,
        max: f64,
    },
    OneOf(&'static [&'static str]),
    Arr {
        item: &'static Shape,
        min: usize,
    },
    Obj(&'static [(&'static str, Shape)]),
    /// May be absent or `null`; checked against the inner shape when present.
    Opt(&'static Shape),
}

static STRING: Shape = Shape::Str { non_empty: true };
static STRINGS: Shape = Shape::Arr {
    item: &STRING,
    min: 0,
};
static ANY_STRING: Shape = Shape::Str { non_empty: false };
/// Severity of a gap and priority of a recommendation.
pub const SEVERITIES: &[&str] = &["low", "medium", "high"];
static SEVERITY: Shape = Shape::OneOf(SEVERITIES);
static SECTION: Shape = Shape::Obj(&[
    ("heading", Shape::Str { non_empty: true }),
    ("body", Shape::Str { non_empty: true }),
]);
static GAP: Shape = Shape::Obj(&[
    ("control_id", Shape::Str { non_empty: true }),
    ("finding", Shape::Str { non_empty: true }),
    ("severity", Shape::OneOf(SEVERITIES)),
]);
static RECOMMENDATION: Shape = Shape::Obj(&[
    ("action", Shape::Str { non_empty: true }),
    ("control_id", Shape::Opt(&STRING)),
    ("priority", Shape::Opt(&SEVERITY)),
]);
static RECOMMENDATIONS: Shape = Shape::Arr {
    item: &RECOMMENDATION,
    min: 0,
};

static CLASSIFICATION: Shape = Shape::Obj(&[
    ("evidence_type", Shape::Str { non_empty: true }),
    (
        "controls",
        Shape::Arr {
            item: &STRING,
            min: 0,
        },
    ),
    ("confidence", Shape::Num { min: 0.0, max: 1.0 }),
    ("rationale", Shape::Opt(&ANY_STRING)),
]);
static POLICY: Shape = Shape::Obj(&[
    ("title", Shape::Str { non_empty: true }),
    (
        "sections",
        Shape::Arr {
            item: &SECTION,
            min: 1,
        },
    ),
    ("controls_covered", Shape::Opt(&STRINGS)),
]);
static GAPS: Shape = Shape::Obj(&[
    ("summary", Shape::Str { non_empty: false }),
    ("gaps", Shape::Arr { item: &GAP, min: 0 }),
    ("recommendations", Shape::Opt(&RECOMMENDATIONS)),
]);

fn shape_for(task: TaskKind) -> Option<&'static Shape> {
    match task {
        TaskKind::Classification => Some(&CLASSIFICATION),
        TaskKind::PolicyDraft => Some(&POLICY),
        TaskKind::GapAnalysis => Some(&GAPS),
        _ => None,
    }
}

/// The system instruction describing the JSON a structured task must return.
pub fn instruction(task: TaskKind) -> Option<&'static str> {
    Some(match task {
        TaskKind::Classification => {
            r#"Reply with one JSON object only: {"evidence_type": string, "controls": [control id strings], "confidence": number between 0 and 1, "rationale": string}."#
        }
        TaskKind::PolicyDraft => {
            r#"Reply with one JSON object only: {"title": string, "sections": [{"heading": string, "body": string}, ...at least one], "controls_covered": [control id strings]}."#
        }
        TaskKind::GapAnalysis => {
            r#"Reply with one JSON object only: {"summary": string, "gaps": [{"control_id": string, "finding": string, "severity": "low" | "medium" | "high"}], "recommendations": [{"action": string, "control_id": string, "priority": "low" | "medium" | "high"}]}."#
        }
        _ => return None,
    })
}

/// Parse and check a structured answer. A Markdown code fence around the JSON is accepted
/// (models add one often); anything else is an error message naming the JSON path.
pub fn check(task: TaskKind, text: &str) -> Result<Value, String> {
    let Some(shape) = shape_for(task) else {
        return Err(format!("{task} has no output schema"));
    };
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|s| s.strip_suffix("```"))
        .map(str::trim)
        .unwrap_or(t);
    let v: Value = serde_json::from_str(t).map_err(|e| format!("not valid JSON: {e}"))?;
    walk(shape, &v, "$")?;
    Ok(v)
}

fn walk(shape: &Shape, v: &Value, at: &str) -> Result<(), String> {
    match shape {
        Shape::Str { non_empty } => match v.as_str() {
            Some(s) if !*non_empty || !s.trim().is_empty() => Ok(()),
            Some(_) => Err(format!("{at}: must not be empty")),
            None => Err(format!("{at}: expected a string")),
        },
        Shape::Num { min, max } => match v.as_f64() {
            Some(n) if n >= *min && n <= *max => Ok(()),
            Some(n) => Err(format!("{at}: {n} is outside {min}..={max}")),
            None => Err(format!("{at}: expected a number")),
        },
        Shape::OneOf(options) => match v.as_str() {
            Some(s) if options.contains(&s) => Ok(()),
            _ => Err(format!("{at}: expected one of {}", options.join(", "))),
        },
        Shape::Arr { item, min } => {
            let a = v
                .as_array()
                .ok_or_else(|| format!("{at}: expected an array"))?;
            if a.len() < *min {
                return Err(format!("{at}: expected at least {min} item(s)"));
            }
            a.iter()
                .enumerate()
                .try_for_each(|(i, x)| walk(item, x, &format!("{at}[{i}]")))
        }
        Shape::Obj(fields) => {
            let o = v
                .as_object()
                .ok_or_else(|| format!("{at}: expected an object"))?;
            for (name, s) in fields.iter() {
                match (o.get(*name), s) {
                    (None | Some(Value::Null), Shape::Opt(_)) => {}
                    (Some(x), s) => walk(s, x, &format!("{at}.{name}"))?,
                    (None, _) => return Err(format!("{at}.{name}: missing")),
                }
            }
            Ok(())
        }
        Shape::Opt(inner) => match v {
            Value::Null => Ok(()),
            v => walk(inner, v, at),
        },
    }
}

/// A checked classification answer, typed. Build with `serde_json::from_value` on the value
/// [`check`] returned: the shape guarantees it deserialises.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ClassificationAnswer {
    pub evidence_type: String,
    pub controls: Vec<String>,
    pub confidence: f64,
    #[serde(default)]
    pub rationale: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct PolicySection {
    pub heading: String,
    pub body: String,
}

/// A checked policy draft answer, typed.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct PolicyDraftAnswer {
    pub title: String,
    pub sections: Vec<PolicySection>,
    #[serde(default)]
    pub controls_covered: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Gap {
    pub control_id: String,
    pub finding: String,
    pub severity: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Recommendation {
    pub action: String,
    #[serde(default)]
    pub control_id: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
}

/// A checked gap analysis answer, typed.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct GapAnalysisAnswer {
    pub summary: String,
    pub gaps: Vec<Gap>,
    #[serde(default)]
    pub recommendations: Option<Vec<Recommendation>>,
}

/// [`check`], then the typed answer.
pub fn parse<T: serde::de::DeserializeOwned>(task: TaskKind, text: &str) -> Result<T, String> {
    let v = check(task, text)?;
    serde_json::from_value(v).map_err(|e| format!("$: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_shape() {
        let ok = r#"{"evidence_type":"mfa_config","controls":["CE-UAC"],"confidence":0.8}"#;
        assert!(check(TaskKind::Classification, ok).is_ok());
        assert!(check(TaskKind::Classification, &format!("```json\n{ok}\n```")).is_ok());
        assert_eq!(
            check(
                TaskKind::Classification,
                r#"{"evidence_type":"x","controls":[],"confidence":1.5}"#
            )
            .unwrap_err(),
            "$.confidence: 1.5 is outside 0..=1"
        );
        assert_eq!(
            check(
                TaskKind::Classification,
                r#"{"evidence_type":"x","controls":[3],"confidence":1}"#
            )
            .unwrap_err(),
            "$.controls[0]: expected a string"
        );
        assert!(
            check(TaskKind::Classification, "Sure! Here you go")
                .unwrap_err()
                .starts_with("not valid JSON")
        );
    }

    #[test]
    fn policy_and_gap_shapes() {
        assert!(
            check(
                TaskKind::PolicyDraft,
                r#"{"title":"Access","sections":[{"heading":"Purpose","body":"..."}]}"#
            )
            .is_ok()
        );
        assert_eq!(
            check(TaskKind::PolicyDraft, r#"{"title":"Access","sections":[]}"#).unwrap_err(),
            "$.sections: expected at least 1 item(s)"
        );
        assert_eq!(
            check(
                TaskKind::GapAnalysis,
                r#"{"summary":"","gaps":[{"control_id":"A","finding":"f","severity":"severe"}]}"#
            )
            .unwrap_err(),
            "$.gaps[0].severity: expected one of low, medium, high"
        );
        assert!(check(TaskKind::Help, "{}").is_err());
    }

    #[test]
    fn optional_fields_may_be_absent_or_null_but_are_checked_when_present() {
        let base = r#"{"title":"T","sections":[{"heading":"H","body":"B"}]"#;
        assert!(check(TaskKind::PolicyDraft, &format!("{base}}}")).is_ok());
        assert!(
            check(
                TaskKind::PolicyDraft,
                &format!(r#"{base},"controls_covered":null}}"#)
            )
            .is_ok()
        );
        assert_eq!(
            check(
                TaskKind::PolicyDraft,
                &format!(r#"{base},"controls_covered":"IAM-01"}}"#)
            )
            .unwrap_err(),
            "$.controls_covered: expected an array"
        );
        assert_eq!(
            check(
                TaskKind::PolicyDraft,
                &format!(r#"{base},"controls_covered":["IAM-01",""]}}"#)
            )
            .unwrap_err(),
            "$.controls_covered[1]: must not be empty"
        );
        let gaps = r#"{"summary":"s","gaps":[],"recommendations":[{"action":"Turn on MFA","priority":"urgent"}]}"#;
        assert_eq!(
            check(TaskKind::GapAnalysis, gaps).unwrap_err(),
            "$.recommendations[0].priority: expected one of low, medium, high"
        );
        assert_eq!(
            check(
                TaskKind::GapAnalysis,
                r#"{"summary":"s","gaps":[],"recommendations":[{"control_id":"IAM-01"}]}"#
            )
            .unwrap_err(),
            "$.recommendations[0].action: missing"
        );
    }

    #[test]
    fn typed_answers() {
        let c: ClassificationAnswer = parse(
            TaskKind::Classification,
            r#"{"evidence_type":"mfa_config","controls":["IAM-02"],"confidence":0.9,"rationale":"MFA screenshot"}"#,
        )
        .unwrap();
        assert_eq!(c.controls, vec!["IAM-02"]);
        assert_eq!(c.rationale.as_deref(), Some("MFA screenshot"));
        let g: GapAnalysisAnswer = parse(
            TaskKind::GapAnalysis,
            r#"{"summary":"s","gaps":[{"control_id":"IAM-01","finding":"f","severity":"high"}],"recommendations":[{"action":"a","control_id":"IAM-01"}]}"#,
        )
        .unwrap();
        assert_eq!(g.gaps[0].severity, "high");
        assert_eq!(g.recommendations.unwrap()[0].priority, None);
        let p: PolicyDraftAnswer = parse(
            TaskKind::PolicyDraft,
            r#"{"title":"T","sections":[{"heading":"H","body":"B"}]}"#,
        )
        .unwrap();
        assert_eq!(p.controls_covered, None);
        assert!(parse::<PolicyDraftAnswer>(TaskKind::PolicyDraft, "{}").is_err());
    }
}
