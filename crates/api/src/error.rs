//! The API's one error shape.
//! Policy: handlers return `ApiError`, which says what the client did wrong (or that the
//! service is unavailable) in a stable `code`; internal errors are logged with context and
//! answered with a bare 500. Every error response — including the router's own 404/405 and
//! the middleware's 408/413 — leaves as
//! `{"error":{"code","message","details","request_id"}}` (see `render_errors`).

use assay_store::StoreError;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`, `X-RateLimit-*`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: impl ToString) -> Self {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((name, v));
        }
        self
    }

    /// 401 with the reason in `code` and the `WWW-Authenticate` challenge.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
            .with_header(header::WWW_AUTHENTICATE, "Bearer")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 429 with `Retry-After` in whole seconds (at least 1).
    pub fn rate_limited(code: &'static str, retry_after: std::time::Duration) -> Self {
        let secs = (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            code,
            format!("too many attempts; retry in {secs} s"),
        )
        .with_header(header::RETRY_AFTER, secs)
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// A failure the client cannot fix: logged here with its cause, answered as a bare 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }

    /// The default error for a bare status produced outside a handler.
    pub fn from_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => ("bad_request", "the request is malformed"),
            StatusCode::UNAUTHORIZED => ("unauthenticated", "authentication is required"),
            StatusCode::FORBIDDEN => ("forbidden", "you do not have permission to do this"),
            StatusCode::NOT_FOUND => ("not_found", "no such resource"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this method is not allowed on this resource",
            ),
            StatusCode::REQUEST_TIMEOUT => (
                "request_timeout",
                "the request took too long and was stopped",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "payload_too_large",
                "the request body is larger than the server accepts",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send the body as application/json",
            ),
            StatusCode::UNPROCESSABLE_ENTITY => ("invalid_input", "the request body is not valid"),
            StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests; retry later"),
            StatusCode::SERVICE_UNAVAILABLE => {
                ("unavailable", "the service is temporarily unavailable")
            }
            s if s.is_server_error() => ("internal", "internal server error"),
            _ => ("error", "the request failed"),
        };
        Self::new(status, code, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { entity } => ApiError::not_found(entity),
            StoreError::Conflict { field } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{field} is already taken"),
            )
            .with_details(serde_json::json!({ "field": field })),
            StoreError::Invariant(rule) => ApiError::new(StatusCode::CONFLICT, "conflict", rule),
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::unavailable("the database is temporarily unavailable")
            }
            other => ApiError::internal(other),
        }
    }
}

/// The JSON body, rendered by `render_errors` once the request id is known.
#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
    request_id: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        for (name, value) in &self.headers {
            res.headers_mut().insert(name.clone(), value.clone());
        }
        res.extensions_mut().insert(self);
        res
    }
}

/// Give every error response the one JSON shape with the request id, whether it came from a
/// handler (`ApiError` extension) or from the router or a tower layer (a bare status, maybe
/// with a text body). Run on every response by the outermost middleware (`crate::edge`).
pub async fn render_errors(res: Response, request_id: Option<&str>) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    if let Some(err) = res.extensions().get::<ApiError>().cloned() {
        return render(res, &err, request_id);
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let mut err = ApiError::from_status(status);
    // Extractor rejections (400/415/422) describe the client's own input; keep their text.
    if matches!(status.as_u16(), 400 | 413 | 415 | 422) {
        let (parts, body) = res.into_parts();
        if let Ok(bytes) = axum::body::to_bytes(body, 4096).await {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            if !text.is_empty() {
                err.message = text;
            }
        }
        return render(
            Response::from_parts(parts, axum::body::Body::empty()),
            &err,
            request_id,
        );
    }
    render(res, &err, request_id)
}

fn render(res: Response, err: &ApiError, request_id: Option<&str>) -> Response {
    let body = serde_json::to_vec(&Envelope {
        error: Body {
            code: err.code,
            message: &err.message,
            details: err.details.as_ref(),
            request_id,
        },
    })
    .unwrap_or_default();
    let (mut parts, _) = res.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
