//! `ValidJson<T>`: the request-body extractor. Malformed JSON is a 400; a body that is JSON
//! but not the expected shape (missing field, wrong type, unknown field) or that fails the
//! type's `garde` rules is a 422 naming every offending field:
//! `{"error":{"code":"invalid_input","details":{"fields":[{"field","reason"}]}}}`.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::json;

/// A field-level problem in a request body.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// 422 with these fields.
pub fn invalid(fields: Vec<FieldError>) -> ApiError {
    let summary = fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.reason))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", summary)
        .with_details(json!({ "fields": fields }))
}

/// 422 for one field.
pub fn invalid_field(field: &str, reason: impl Into<String>) -> ApiError {
    invalid(vec![FieldError {
        field: field.to_owned(),
        reason: reason.into(),
    }])
}

/// A list endpoint's `limit` query parameter: `default` when absent, else 1..=`max`
/// (422 naming `limit` otherwise).
pub fn page_limit(limit: Option<u64>, default: u64, max: u64) -> Result<u64, ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(invalid_field(
            "limit",
            format!("must be between 1 and {max}"),
        ))
    }
}

/// A JSON body deserialised into `T` and validated with its `garde` rules.
pub struct ValidJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + garde::Validate<Context = ()>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.starts_with("application/json")
                    || (v.starts_with("application/") && v.contains("+json"))
            });
        if !is_json {
            return Err(ApiError::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::from_status(status)
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the request body could not be read",
                )
            }
        })?;
        let value: T = parse(&bytes)?;
        if let Err(report) = value.validate() {
            return Err(invalid(
                report
                    .iter()
                    .map(|(path, err)| FieldError {
                        field: path.to_string(),
                        reason: err.message().to_string(),
                    })
                    .collect(),
            ));
        }
        Ok(ValidJson(value))
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde_json calls a value of the wrong kind where an enum is expected (`true` for
        // `"yes"`) a syntax error; when the body is well-formed JSON it is the field's fault.
        if inner.is_syntax() && path != "." && serde_json::from_slice::<IgnoredAny>(bytes).is_ok() {
            return invalid_field(
                &path,
                "has the wrong type: expected one of the allowed string values",
            );
        }
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body is not valid JSON: {inner}"),
            );
        }
        // serde's message ("unknown field `x`, expected ...") names the field itself at the
        // top level; the path says where it is nested.
        let field = if path == "." {
            unknown_field_name(&inner.to_string()).unwrap_or_else(|| "body".into())
        } else {
            path
        };
        invalid_field(&field, strip_position(&inner.to_string()))
    })
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next().map(str::to_owned)
}

/// Drop serde_json's " at line 1 column 12" suffix: the field name says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Answer {
        Yes,
        No,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // read by the deserializer only
    struct Body {
        answer: Answer,
    }

    fn status_and_field(body: &str) -> (StatusCode, String) {
        let err = parse::<Body>(body.as_bytes()).unwrap_err();
        let field = err
            .details
            .as_ref()
            .and_then(|d| d["fields"][0]["field"].as_str())
            .unwrap_or_default()
            .to_owned();
        (err.status, field)
    }

    #[test]
    fn a_wrong_kind_of_value_for_an_enum_is_the_fields_fault() {
        assert_eq!(
            status_and_field(r#"{"answer": true}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, "answer".to_owned())
        );
        assert_eq!(
            status_and_field(r#"{"answer": "maybe"}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, "answer".to_owned())
        );
        assert!(parse::<Body>(br#"{"answer": "no"}"#).is_ok());
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert_eq!(
            status_and_field(r#"{"answer": "#).0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_and_field(r#"{"answer" true}"#).0,
            StatusCode::BAD_REQUEST
        );
    }
}
