//! Security headers and CORS from configuration.

use assay_config::{Config, CorsConfig};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Headers every response carries unless a handler set its own.
#[derive(Clone)]
pub struct SecurityHeaders(Arc<Vec<(HeaderName, HeaderValue)>>);

impl SecurityHeaders {
    pub fn from_config(cfg: &Config) -> Self {
        // HSTS only where HTTPS is certain: served by us, or by the trusted proxy in production.
        let hsts = if cfg.tls.enabled() || (cfg.is_production() && cfg.server.behind_proxy) {
            "max-age=31536000; includeSubDomains"
        } else {
            "max-age=0"
        };
        Self(Arc::new(vec![
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            ),
            (
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(hsts),
            ),
        ]))
    }

    /// Add the headers `res` does not already set (run by the outermost middleware,
    /// `crate::edge`, on every response: errors and caught panics included).
    pub fn add_to(&self, res: &mut Response) {
        let h = res.headers_mut();
        for (name, value) in self.0.iter() {
            h.entry(name).or_insert_with(|| value.clone());
        }
    }
}

/// The CORS layer, or none when no origin is allowed (same-origin only).
pub fn cors(cfg: &CorsConfig) -> Option<CorsLayer> {
    if cfg.allowed_origins.is_empty() {
        return None;
    }
    let origins = if cfg.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // Origins were validated by `Config::problems` before start.
        AllowOrigin::list(
            cfg.allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    let request_id = HeaderName::from_static("x-request-id");
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_credentials(cfg.allow_credentials)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                request_id.clone(),
            ])
            .expose_headers([request_id, header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
