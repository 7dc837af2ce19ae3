//! Request rate limits: a strict per-IP limit on the credential endpoints and a
//! general limit per API key (or per IP for everything else). Every limited response carries
//! `X-RateLimit-Limit/Remaining/Reset`; a refusal is a 429 with `Retry-After`. Backed by
//! `assay-infra` (in-process, or Redis so every node shares the count).

use crate::auth::ClientFacts;
use crate::error::ApiError;
use crate::state::AppState;
use assay_infra::rate_limit::{Quota, RateDecision, RateLimiter};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::num::NonZeroU32;

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"))
}

async fn apply(
    limiter: &RateLimiter,
    key: String,
    quota: Quota,
    req: Request,
    next: Next,
) -> Response {
    let decision = limiter.check(&key, quota).await;
    let mut res = if decision.allowed {
        next.run(req).await
    } else {
        let wait = decision
            .retry_after
            .unwrap_or(std::time::Duration::from_secs(60));
        ApiError::rate_limited("rate_limited", wait).into_response()
    };
    add_headers(&mut res, &decision);
    res
}

/// Add the limit headers unless an inner (more specific) limiter already set them.
fn add_headers(res: &mut Response, decision: &RateDecision) {
    for (name, value) in decision.headers() {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            res.headers_mut().entry(n).or_insert(v);
        }
    }
}

async fn client_ip(state: &AppState, req: Request) -> (String, Request) {
    let (mut parts, body) = req.into_parts();
    let Ok(facts) = ClientFacts::from_request_parts(&mut parts, state).await;
    (
        facts.ip.unwrap_or_else(|| "unknown".into()),
        Request::from_parts(parts, body),
    )
}

/// Per-IP limit for login, registration and refresh.
pub async fn auth_endpoints(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (ip, req) = client_ip(&state, req).await;
    let quota = per_minute(state.config().rate_limits.auth_per_minute);
    apply(
        &state.identity().auth_limiter,
        format!("ip:{ip}"),
        quota,
        req,
        next,
    )
    .await
}

/// General API limit: per API key when one is presented, else per IP.
pub async fn api(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let key_id = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| t.strip_prefix(assay_auth::api_key::API_KEY_PREFIX))
        .and_then(|rest| rest.split('_').next())
        .map(|id| format!("key:{id}"));
    let (key, req) = match key_id {
        Some(k) => (k, req),
        None => {
            let (ip, req) = client_ip(&state, req).await;
            (format!("ip:{ip}"), req)
        }
    };
    let quota = per_minute(state.config().rate_limits.api_per_minute);
    apply(&state.identity().api_limiter, key, quota, req, next).await
}
