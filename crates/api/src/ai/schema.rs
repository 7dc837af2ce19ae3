//! Structured answers checked against a caller's JSON Schema: the subset AI task endpoints
//! need (`type`, `properties`, `required`, `additionalProperties: false`, `items`, `enum`,
//! `minItems`, `maxItems`, `minimum`, `maximum`, `minLength`, `maxLength`). Errors name the
//! JSON path, never quote the model's text.

use serde_json::Value;

/// The system instruction asking for an answer matching `schema`.
pub fn instruction(schema: &Value) -> String {
    format!(
        "Reply with one JSON object only, no prose and no code fence, matching this JSON Schema: {schema}"
    )
}

/// Parse the model's answer as JSON, accepting a Markdown code fence around it.
pub fn parse_answer(text: &str) -> Result<Value, String> {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|r| r.strip_suffix("```"))
        .unwrap_or(t)
        .trim();
    serde_json::from_str(t).map_err(|_| "the answer is not a JSON document".to_owned())
}

/// Check `value` against `schema`; the first problem, with its path.
pub fn check(schema: &Value, value: &Value) -> Result<(), String> {
    walk(schema, value, "$")
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn walk(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return Ok(());
    };
    match s.get("type") {
        Some(Value::String(ty)) if !type_ok(ty, v) => {
            return Err(format!("{path}: expected {ty}"));
        }
        Some(Value::Array(types))
            if !types
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_ok(t, v)) =>
        {
            return Err(format!("{path}: has none of the allowed types"));
        }
        _ => {}
    }
    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.contains(v)
    {
        return Err(format!("{path}: not one of the allowed values"));
    }
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    if let Some(x) = v.as_f64() {
        if num("minimum").is_some_and(|m| x < m) {
            return Err(format!("{path}: below the minimum"));
        }
        if num("maximum").is_some_and(|m| x > m) {
            return Err(format!("{path}: above the maximum"));
        }
    }
    if let Some(text) = v.as_str() {
        let n = text.chars().count() as f64;
        if num("minLength").is_some_and(|m| n < m) {
            return Err(format!("{path}: shorter than minLength"));
        }
        if num("maxLength").is_some_and(|m| n > m) {
            return Err(format!("{path}: longer than maxLength"));
        }
    }
    if let Some(items) = v.as_array() {
        let n = items.len() as f64;
        if num("minItems").is_some_and(|m| n < m) {
            return Err(format!("{path}: fewer items than minItems"));
        }
        if num("maxItems").is_some_and(|m| n > m) {
            return Err(format!("{path}: more items than maxItems"));
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                walk(item_schema, item, &format!("{path}[{i}]"))?;
            }
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(Value::Array(required)) = s.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(key) {
                    return Err(format!("{path}.{key}: missing"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(props) = props {
            for (key, sub) in props {
                if let Some(child) = obj.get(key) {
                    walk(sub, child, &format!("{path}.{key}"))?;
                }
            }
        }
        if s.get("additionalProperties") == Some(&Value::Bool(false)) {
            for key in obj.keys() {
                if !props.is_some_and(|p| p.contains_key(key)) {
                    return Err(format!("{path}.{key}: not allowed"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy_schema() -> Value {
        json!({
            "type": "object",
            "required": ["title", "sections", "controls_covered"],
            "properties": {
                "title": {"type": "string", "minLength": 1},
                "sections": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["heading", "body"],
                    "properties": {"heading": {"type": "string"}, "body": {"type": "string"}}
                }},
                "controls_covered": {"type": "array", "items": {"type": "string"}},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1}
            }
        })
    }

    #[test]
    fn accepts_a_matching_answer_and_names_the_first_problem() {
        let s = policy_schema();
        let ok = parse_answer("```json\n{\"title\":\"Access\",\"sections\":[{\"heading\":\"Scope\",\"body\":\"All staff\"}],\"controls_covered\":[\"AC-1\"]}\n```").unwrap();
        assert_eq!(check(&s, &ok), Ok(()));
        let missing = json!({"title": "x", "sections": [], "controls_covered": []});
        assert_eq!(
            check(&s, &missing),
            Err("$.sections: fewer items than minItems".into())
        );
        let bad_item = json!({"title": "x", "sections": [{"heading": 1, "body": "b"}], "controls_covered": []});
        assert_eq!(
            check(&s, &bad_item),
            Err("$.sections[0].heading: expected string".into())
        );
        let range = json!({"title": "x", "sections": [{"heading": "h", "body": "b"}], "controls_covered": [], "confidence": 1.5});
        assert_eq!(
            check(&s, &range),
            Err("$.confidence: above the maximum".into())
        );
        assert_eq!(
            check(&s, &json!({"title": "x"})),
            Err("$.sections: missing".into())
        );
        assert!(parse_answer("Sure! Here it is").is_err());
    }
}
