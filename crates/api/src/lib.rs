//! Assay's HTTP API (axum + tower-http).
//!
//! [`App::start`] opens the database (migrating it unless told not to), connects Redis when
//! configured and builds the router on an already-bound listener, so tests bind port 0.
//! [`App::run_until_stopped`] serves (HTTPS when `tls.cert`/`tls.key` are set) until the
//! shutdown future resolves, then drains: readiness turns 503, no new connections are
//! accepted, in-flight requests get up to `server.drain_timeout_secs` to finish.

pub mod ai;
mod ai_usage_sink;
pub mod auth;
pub mod bookkeeping;
pub mod cache_sync;
pub mod catalogues;
mod edge;
pub mod error;
pub mod identity;
pub mod json;
pub mod openapi;
pub mod posture_cache;
mod rate_limit;
pub mod readiness_snapshots;
pub mod request_id;
pub mod routes;
mod security_headers;
pub mod state;

use crate::bookkeeping::Bookkeeping;
use crate::error::ApiError;
use crate::state::AppState;
use assay_config::{Config, Problem};
use assay_store::{Db, StoreError};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post, put};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Why the server could not start. The binary prints these and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<Problem>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("redis.url: {0}")]
    Redis(String),
    #[error("AI gateway: {0}")]
    Ai(String),
    #[error("authentication: {0}")]
    Identity(String),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("listener: {0}")]
    Listener(std::io::Error),
    #[error("bookkeeping thread: {0}")]
    Background(std::io::Error),
}

/// Whether `App::start` applies pending migrations or only checks that none are pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationPolicy {
    Apply,
    RequireCurrent,
}

/// A started (bound, connected) application, ready to serve.
pub struct App {
    state: AppState,
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    extra_routes: Router<AppState>,
}

impl App {
    pub async fn start(
        config: Config,
        listener: std::net::TcpListener,
        migrations: MigrationPolicy,
    ) -> Result<App, StartupError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(StartupError::Config(problems));
        }
        let settings = config.db_settings().map_err(StartupError::Config)?;
        let db = Db::connect(&settings).await?;
        match migrations {
            MigrationPolicy::Apply => {
                db.migrate_up().await?;
            }
            MigrationPolicy::RequireCurrent => db.ensure_migrated().await?,
        }
        let redis = match &config.redis.url {
            Some(url) => Some(
                assay_infra::redis_conn::connect_lazy(url)
                    .map_err(|e| StartupError::Redis(e.to_string()))?,
            ),
            None => None,
        };
        let local_addr = listener.local_addr().map_err(StartupError::Listener)?;
        let identity = identity::Identity::from_config(&config, redis.as_ref())
            .map_err(|e| StartupError::Identity(e.to_string()))?;
        let bookkeeping =
            Bookkeeping::start(&db, &settings, config.server.background_priority).await?;
        let ai = build_ai_gateway(&config, &bookkeeping, redis.as_ref())?;
        let bus = invalidation_bus(&config, redis.as_ref())?;
        let state = AppState::new(db, identity, ai, redis, bus, Arc::new(config), bookkeeping);
        Ok(App {
            state,
            listener,
            local_addr,
            extra_routes: Router::new(),
        })
    }

    /// Serve additional routes behind the same middleware (embedders, and tests that need
    /// a route with particular behaviour, such as a slow one).
    pub fn with_routes(mut self, routes: Router<AppState>) -> Self {
        self.extra_routes = self.extra_routes.merge(routes);
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves, then drain and return. `Ok` means a clean stop.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let App {
            state,
            listener,
            local_addr,
            extra_routes,
        } = self;
        let cfg = state.config();
        let drain = Duration::from_secs(cfg.server.drain_timeout_secs);
        let delay = Duration::from_secs(cfg.server.shutdown_delay_secs);
        let tls = match (&cfg.tls.cert, &cfg.tls.key) {
            (Some(cert), Some(key)) => {
                // One crypto provider for the whole process; ignore "already installed".
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                Some(
                    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                        .await
                        .map_err(StartupError::Tls)?,
                )
            }
            _ => None,
        };
        let app = router_with(state.clone(), extra_routes)
            .into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        {
            let (handle, state) = (handle.clone(), state.clone());
            tokio::spawn(async move {
                shutdown.await;
                tracing::info!(
                    drain_secs = drain.as_secs(),
                    "shutdown requested: readiness off, draining"
                );
                state.begin_draining();
                // Give load balancers time to see readiness fail before connections stop.
                tokio::time::sleep(delay).await;
                handle.graceful_shutdown(Some(drain));
            });
        }
        tracing::info!(addr = %local_addr, tls = tls.is_some(), "assay listening");
        // Readiness snapshots (after changes, and daily) run while the server serves.
        let snapshots = state.readiness_snapshots().start(state.clone());
        // TCP_NODELAY on every accepted connection: a streamed answer is many small writes,
        // and with Nagle's algorithm each waits for the previous one's ACK, which the client
        // delays by ~40 ms (measured: a streamed answer took 44 ms instead of < 1 ms).
        use axum_server::accept::NoDelayAcceptor;
        let server = axum_server::from_tcp(listener)
            .map_err(StartupError::Listener)?
            .handle(handle);
        let served = match tls {
            Some(tls) => {
                let tls = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                    .acceptor(NoDelayAcceptor::new());
                server.acceptor(tls).serve(app).await
            }
            None => server.acceptor(NoDelayAcceptor::new()).serve(app).await,
        };
        if let Some(snapshots) = snapshots {
            snapshots.stop().await;
        }
        // What the answered calls left to write (audit events, usage), before the pools close.
        if tokio::time::timeout(drain, state.ai_pipeline().flush_bookkeeping())
            .await
            .is_err()
        {
            tracing::error!("audit and usage records not all written within the drain timeout");
        }
        state.db().close().await;
        tracing::info!("assay stopped");
        served.map_err(StartupError::Listener)
    }
}

/// The channel this node announces cache changes on and follows the other nodes' changes
/// from (`None` without Redis: one node, nothing to tell).
pub(crate) fn invalidation_bus(
    config: &Config,
    redis: Option<&assay_infra::redis_conn::RedisConn>,
) -> Result<Option<assay_infra::invalidation::InvalidationBus>, StartupError> {
    let (Some(url), Some(conn)) = (&config.redis.url, redis) else {
        return Ok(None);
    };
    let client =
        assay_infra::redis_conn::client(url).map_err(|e| StartupError::Redis(e.to_string()))?;
    Ok(Some(assay_infra::invalidation::InvalidationBus::new(
        client,
        conn.clone(),
        &config.redis.key_prefix,
        Default::default(),
    )))
}

/// The AI gateway: configured providers (or none: offline answers from the built-in
/// catalogue), a cache shared through Redis when configured, and the stored usage ledger.
fn build_ai_gateway(
    config: &Config,
    bookkeeping: &Bookkeeping,
    redis: Option<&assay_infra::redis_conn::RedisConn>,
) -> Result<assay_ai::Gateway, StartupError> {
    let cache_cfg = assay_infra::cache::CacheConfig {
        name: "ai",
        ..Default::default()
    };
    let cache = match redis {
        Some(conn) => assay_infra::cache::TieredCache::with_redis(
            cache_cfg,
            conn.clone(),
            &config.redis.key_prefix,
        ),
        None => assay_infra::cache::TieredCache::in_memory(cache_cfg),
    };
    // The usage ledger is written on the bookkeeping thread, with its database handle.
    let usage = Arc::new(ai_usage_sink::StoreUsageSink::new(bookkeeping.db.clone()));
    let knowledge = Arc::new(assay_ai::knowledge::CatalogueKnowledge::builtin());
    assay_ai::Gateway::with_ledger_on(
        bookkeeping.runtime.handle(),
        &config.ai,
        cache,
        usage,
        knowledge,
    )
    .map_err(|e| StartupError::Ai(e.to_string()))
}

/// The full router with its middleware stack.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

fn router_with(state: AppState, extra_routes: Router<AppState>) -> Router {
    let cfg = state.config();
    let body_limit = cfg.server.body_limit_bytes;
    let timeout = Duration::from_secs(cfg.server.request_timeout_secs);
    let cors = security_headers::cors(&cfg.cors);
    let headers = security_headers::SecurityHeaders::from_config(cfg);

    let auth_routes = Router::new()
        .route("/api/v1/auth/register", post(routes::auth::register))
        .route("/api/v1/auth/login", post(routes::auth::login))
        .route("/api/v1/auth/refresh", post(routes::auth::refresh))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::auth_endpoints,
        ));
    let api_routes = Router::new()
        .route("/api/v1/auth/logout", post(routes::auth::logout))
        .route("/api/v1/auth/logout-all", post(routes::auth::logout_all))
        .route("/api/v1/me", get(routes::auth::me))
        .route(
            "/api/v1/orgs",
            get(routes::orgs::list_mine).post(routes::orgs::create),
        )
        .route(
            "/api/v1/orgs/{org_id}",
            get(routes::orgs::get).patch(routes::orgs::rename),
        )
        .route(
            "/api/v1/orgs/{org_id}/members",
            get(routes::orgs::list_members),
        )
        .route(
            "/api/v1/orgs/{org_id}/members/{user_id}",
            patch(routes::orgs::change_role).delete(routes::orgs::remove_member),
        )
        .route(
            "/api/v1/orgs/{org_id}/invitations",
            get(routes::orgs::list_invitations).post(routes::orgs::invite),
        )
        .route(
            "/api/v1/orgs/{org_id}/invitations/{invitation_id}",
            delete(routes::orgs::revoke_invitation),
        )
        .route(
            "/api/v1/invitations/{token}/accept",
            post(routes::orgs::accept_invitation),
        )
        .route(
            "/api/v1/orgs/{org_id}/api-keys",
            get(routes::api_keys::list).post(routes::api_keys::create),
        )
        .route(
            "/api/v1/orgs/{org_id}/api-keys/{key_id}",
            delete(routes::api_keys::revoke),
        )
        .route("/api/v1/orgs/{org_id}/audit", get(routes::audit::list))
        .route(
            "/api/v1/orgs/{org_id}/audit/verify",
            get(routes::audit::verify),
        )
        .route(
            "/api/v1/frameworks",
            get(routes::compliance::list_frameworks),
        )
        .route(
            "/api/v1/frameworks/{key}",
            get(routes::compliance::get_framework),
        )
        .route(
            "/api/v1/frameworks/{key}/export",
            get(routes::export::framework),
        )
        .route(
            "/api/v1/orgs/{org_id}/frameworks",
            get(routes::compliance::list_adopted),
        )
        .route(
            "/api/v1/orgs/{org_id}/frameworks/import",
            post(routes::imports::import_for_org),
        )
        .route(
            "/api/v1/orgs/{org_id}/frameworks/imports",
            get(routes::imports::list_for_org),
        )
        .route(
            "/api/v1/orgs/{org_id}/frameworks/imports/{key}",
            delete(routes::imports::delete_for_org),
        )
        .route(
            "/api/v1/frameworks/import",
            post(routes::imports::import_platform),
        )
        .route(
            "/api/v1/orgs/{org_id}/frameworks/{key}",
            get(routes::compliance::get_org_framework)
                .put(routes::compliance::adopt)
                .delete(routes::compliance::unadopt),
        )
        .route(
            "/api/v1/orgs/{org_id}/frameworks/{key}/export",
            get(routes::export::org_framework),
        )
        .route(
            "/api/v1/orgs/{org_id}/controls",
            get(routes::compliance::list_controls),
        )
        .route(
            "/api/v1/orgs/{org_id}/controls/bulk",
            post(routes::compliance::bulk_update),
        )
        .route(
            "/api/v1/orgs/{org_id}/controls/export",
            get(routes::export::controls),
        )
        .route(
            "/api/v1/orgs/{org_id}/profile",
            get(routes::posture::get_profile).put(routes::posture::put_profile),
        )
        .route(
            "/api/v1/orgs/{org_id}/framework-recommendations",
            get(routes::posture::recommendations),
        )
        .route(
            "/api/v1/orgs/{org_id}/readiness",
            get(routes::posture::readiness),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/help",
            post(routes::ai_tasks::help),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/gap-analysis",
            post(routes::ai_tasks::gap_analysis),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/policy-draft",
            post(routes::ai_tasks::policy_draft),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/classify-evidence",
            post(routes::ai_tasks::classify_evidence),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/classifications",
            get(routes::ai_tasks::list_classifications),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/classifications/{classification_id}",
            get(routes::ai_tasks::get_classification),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/classifications/{classification_id}/review",
            post(routes::ai_tasks::review_classification),
        )
        .route(
            "/api/v1/orgs/{org_id}/readiness/history",
            get(readiness_snapshots::history),
        )
        .route(
            "/api/v1/orgs/{org_id}/assessments",
            get(routes::assessments::list).post(routes::assessments::start),
        )
        .route(
            "/api/v1/orgs/{org_id}/assessments/{assessment_id}",
            get(routes::assessments::get).delete(routes::assessments::delete),
        )
        .route(
            "/api/v1/orgs/{org_id}/assessments/{assessment_id}/answers/{question_id}",
            put(routes::assessments::answer),
        )
        .route(
            "/api/v1/orgs/{org_id}/assessments/{assessment_id}/complete",
            post(routes::assessments::complete),
        )
        .route(
            "/api/v1/orgs/{org_id}/assessments/{assessment_id}/confirm",
            post(routes::assessments::confirm),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/settings",
            get(routes::ai::get_settings).put(routes::ai::put_settings),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/safety-reviews",
            get(routes::ai::list_safety_reviews),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/safety-reviews/{review_id}/resolve",
            post(routes::ai::resolve_safety_review),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/conversations",
            get(routes::ai::list_conversations).post(routes::ai::create_conversation),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/conversations/{conversation_id}",
            get(routes::ai::get_conversation).delete(routes::ai::delete_conversation),
        )
        .route(
            "/api/v1/orgs/{org_id}/ai/conversations/{conversation_id}/messages",
            post(routes::ai::post_message),
        )
        .route(
            "/api/v1/orgs/{org_id}/controls/{key}",
            get(routes::compliance::get_control).patch(routes::compliance::update_control),
        )
        .merge(auth_routes)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::api,
        ));

    // The OpenAI-compatible endpoint (B-4): organisation API keys with the `ai` scope, the
    // same per-key API limit, and every error in OpenAI's shape (the outer route layer).
    let openai_routes = Router::new()
        .route(
            "/v1/chat/completions",
            post(routes::openai_compat::chat_completions),
        )
        .route("/v1/models", get(routes::openai_compat::list_models))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::api,
        ))
        .route_layer(axum::middleware::from_fn(
            routes::openai_compat::openai_errors,
        ));

    let api = Router::new()
        .route("/health/live", get(routes::health::live))
        .route("/health/ready", get(routes::health::ready))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .merge(api_routes)
        .merge(openai_routes)
        .merge(extra_routes)
        .fallback(|| async { ApiError::from_status(StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(|| async {
            ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        .with_state(state);

    // Outermost first: the request id exists before anything logs or fails, and errors
    // from every inner layer (a caught panic's included) are rendered in the one JSON shape
    // and carry the security headers (edge.rs).
    let stack = ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(headers, edge::edge))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get(&request_id::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("a handler panicked").into_response()))
        .option_layer(cors)
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(DefaultBodyLimit::max(body_limit));
    api.layer(stack)
}

/// The database behind a started app (tests and the CLI use it directly).
pub fn db_of(app: &App) -> &Db {
    app.state.db()
}
