//! Request rate limits: a strict per-IP limit on the credential endpoints and a
//! general limit per API key (or per IP for everything else). Every limited response carries
//! `X-RateLimit-Limit/Remaining/Reset`; a refusal is a 429 with `Retry-After`. Backed by
//! `assay-infra` (in-process, or Redis so every node shares the count).
//!
//! `POST /v1/chat/completions` with an API key is the one hot route that spends AI limits
//! too: there the general limit is handed to the AI pipeline ([`DeferredApiLimit`]), which
//! spends it with the call's AI limits in one step — one Redis round trip per call instead
//! of two. A request that ends before the AI limits (bad body, unknown model, a key that is
//! not valid) spends the general limit here afterwards, so every request still counts.

use crate::auth::ClientFacts;
use crate::error::ApiError;
use crate::state::AppState;
use assay_infra::rate_limit::{Quota, RateDecision, RateLimiter, Spend};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

/// The general API limit of a request, left for the AI pipeline to spend together with the
/// call's AI limits (see the module docs). The pipeline records the decision; the
/// middleware sets the headers from it, or spends the limit itself when nothing did.
#[derive(Clone, Debug)]
pub struct DeferredApiLimit {
    key: Arc<str>,
    quota: Quota,
    decided: Arc<OnceLock<RateDecision>>,
}

impl DeferredApiLimit {
    pub(crate) fn new(key: &str, quota: Quota) -> Self {
        Self {
            key: key.into(),
            quota,
            decided: Arc::default(),
        }
    }

    /// How the limit was decided, if it was.
    pub fn decision(&self) -> Option<RateDecision> {
        self.decided.get().copied()
    }

    /// The spend to put first in the AI limits' `check_all`.
    pub fn spend(&self) -> Spend<'_> {
        Spend {
            key: &self.key,
            quota: self.quota,
            cost: 1,
        }
    }

    /// Record how the limit was decided (spent or refused with the AI limits).
    pub fn decided(&self, decision: RateDecision) {
        let _ = self.decided.set(decision);
    }
}

/// The route whose general limit is deferred to the AI pipeline.
const DEFERRING_ROUTE: &str = "/v1/chat/completions";

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
    let limiter = &state.identity().api_limiter;
    if key.starts_with("key:")
        && req.method() == axum::http::Method::POST
        && req.uri().path() == DEFERRING_ROUTE
    {
        return deferred(limiter, key, quota, req, next).await;
    }
    apply(limiter, key, quota, req, next).await
}

/// Run the request with its general limit deferred; spend it here if the handler did not.
async fn deferred(
    limiter: &RateLimiter,
    key: String,
    quota: Quota,
    mut req: Request,
    next: Next,
) -> Response {
    let limit = DeferredApiLimit::new(&key, quota);
    req.extensions_mut().insert(limit.clone());
    let mut res = next.run(req).await;
    let decision = match limit.decision() {
        Some(d) => d,
        None => {
            // Ended before the AI limits: counted now, and refused now if over the limit.
            let d = limiter.check(&limit.key, quota).await;
            if !d.allowed {
                let wait = d.retry_after.unwrap_or(std::time::Duration::from_secs(60));
                res = ApiError::rate_limited("rate_limited", wait).into_response();
            }
            d
        }
    };
    add_headers(&mut res, &decision);
    res
}
