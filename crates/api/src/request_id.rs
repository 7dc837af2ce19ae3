//! Request ids: a caller's `x-request-id` is kept when it is sane (so a trace spans systems),
//! otherwise a UUID v7 is generated; the id is echoed on the response, recorded on the
//! request's tracing span (so every log line carries it) and stored with audit events.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request id as an extension, for handlers and the audit log.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn acceptable(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The id assigned to this request (after `assign` has run).
pub fn of(req: &Request) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

/// Accept the caller's id or assign one: set on the request (header and [`RequestId`]
/// extension); the returned value is what the response echoes.
pub fn accept_or_assign(req: &mut Request) -> HeaderValue {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let value =
        HeaderValue::from_str(&id).expect("checked or generated ids are valid header values");
    req.headers_mut().insert(HEADER.clone(), value.clone());
    req.extensions_mut().insert(RequestId(id));
    value
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_sane_ids_are_kept() {
        assert!(super::acceptable("abc-123_x.y:z"));
        assert!(!super::acceptable(""));
        assert!(!super::acceptable("has space"));
        assert!(!super::acceptable(&"x".repeat(129)));
        assert!(!super::acceptable("new\nline"));
    }
}
