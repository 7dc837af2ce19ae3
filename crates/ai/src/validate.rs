//! Output validation for structured tasks: the JSON shape each task must return, the
//! instruction that asks for it, and a checker whose messages can be fed back to the model
//! for one repair attempt.

use crate::types::TaskKind;
use serde_json::Value;

enum Shape {
    Str { non_empty: bool },
    Num { min: f64, max: f64 },
    OneOf(&'static [&'static str]),
    Arr { item: &'static Shape, min: usize },
    Obj(&'static [(&'static str, Shape)]),
}

static STRING: Shape = Shape::Str { non_empty: true };
static SECTION: Shape = Shape::Obj(&[
    ("heading", Shape::Str { non_empty: true }),
    ("body", Shape::Str { non_empty: true }),
]);
static GAP: Shape = Shape::Obj(&[
    ("control_id", Shape::Str { non_empty: true }),
    ("finding", Shape::Str { non_empty: true }),
    ("severity", Shape::OneOf(&["low", "medium", "high"])),
]);

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
]);
static GAPS: Shape = Shape::Obj(&[
    ("summary", Shape::Str { non_empty: false }),
    ("gaps", Shape::Arr { item: &GAP, min: 0 }),
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
            r#"Reply with one JSON object only: {"title": string, "sections": [{"heading": string, "body": string}, ...at least one]}."#
        }
        TaskKind::GapAnalysis => {
            r#"Reply with one JSON object only: {"summary": string, "gaps": [{"control_id": string, "finding": string, "severity": "low" | "medium" | "high"}]}."#
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
                let x = o
                    .get(*name)
                    .ok_or_else(|| format!("{at}.{name}: missing"))?;
                walk(s, x, &format!("{at}.{name}"))?;
            }
            Ok(())
        }
    }
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
}
