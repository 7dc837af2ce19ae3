//! Liveness and readiness probes.
//!
//! `/health/live`: the process is up and serving (never touches dependencies, so a database
//! outage does not get the process restarted). `/health/ready`: this node should receive
//! traffic — the database answers a round trip in time and the node is not draining.
//! Redis is reported but does not fail readiness: without it Assay degrades to in-process
//! limits and cache.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// How long readiness waits for the database before calling it down.
const DB_PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
const REDIS_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

#[utoipa::path(
    get,
    path = "/health/live",
    operation_id = "health_live",
    tag = "health",
    summary = "Liveness: the process is up (never touches dependencies)",
    responses((status = 200, description = "The process is serving", body = crate::openapi::Liveness))
)]
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[utoipa::path(
    get,
    path = "/health/ready",
    operation_id = "health_ready",
    tag = "health",
    summary = "Readiness: the database answers and the node is not draining",
    responses(
        (status = 200, description = "Ready for traffic", body = crate::openapi::Readiness),
        (status = 503, description = "Draining, or the database is down (a probe answer, not an error object)", body = crate::openapi::Readiness),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        )
            .into_response();
    }
    let db = state.db();
    let (db_ok, database) = match db.ping(DB_PROBE_TIMEOUT).await {
        Ok(latency) => (
            true,
            json!({
                "status": "up",
                "backend": db.backend().as_str(),
                "latency_ms": latency.as_secs_f64() * 1000.0,
                "pool": db.pool_status(),
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            (
                false,
                json!({ "status": "down", "backend": db.backend().as_str(), "error": "the database did not answer" }),
            )
        }
    };
    metrics::gauge!("assay_db_up").set(if db_ok { 1.0 } else { 0.0 });
    let mut checks = json!({ "database": database });
    if let Some(redis) = state.redis() {
        checks["redis"] = match assay_infra::redis_conn::ping(redis, REDIS_PROBE_TIMEOUT).await {
            Ok(latency) => json!({ "status": "up", "latency_ms": latency.as_secs_f64() * 1000.0 }),
            Err(_) => {
                json!({ "status": "degraded", "note": "Redis is unreachable; limits and cache are in-process until it returns" })
            }
        };
        if let Some(following) = state.follows_other_nodes() {
            // Not subscribed: other nodes' changes reach this node's caches only when the
            // entries expire (seconds) until the subscription is back.
            checks["redis"]["invalidations"] = json!({
                "subscribed": following,
                "heard": state.changes_heard(),
                "resyncs": state.cache_resyncs(),
            });
        }
    }
    checks["ai"] = ai_check(&state);
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if db_ok { "ready" } else { "unavailable" }, "checks": checks });
    (status, Json(body)).into_response()
}

/// AI providers: each model's circuit breaker. An open breaker does not fail readiness:
/// the gateway falls back along the chain and, last, to offline answers.
fn ai_check(state: &AppState) -> serde_json::Value {
    let models: serde_json::Map<String, serde_json::Value> = state
        .ai()
        .breaker_states()
        .into_iter()
        .map(|(model, breaker)| {
            (
                model,
                json!({ "breaker": format!("{breaker:?}").to_lowercase() }),
            )
        })
        .collect();
    let any_closed = models.values().any(|m| m["breaker"] == "closed");
    let status = match (models.is_empty(), any_closed) {
        (true, _) => "offline_only",
        (false, true) => "up",
        (false, false) => "degraded",
    };
    json!({ "status": status, "models": models })
}
