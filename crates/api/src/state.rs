//! What every handler can reach: the database, Redis (when configured), the configuration
//! and the process lifecycle (whether it is draining for shutdown).

use crate::ai::AiPipeline;
use crate::bookkeeping::Bookkeeping;
use crate::identity::Identity;
use assay_ai::Gateway;
use assay_config::Config;
use assay_infra::redis_conn::RedisConn;
use assay_store::Db;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    identity: Identity,
    ai: Gateway,
    ai_pipeline: AiPipeline,
    readiness_snapshots: crate::readiness_snapshots::ReadinessSnapshots,
    catalogues: crate::catalogues::Catalogues,
    posture: crate::posture_cache::PostureCache,
    redis: Option<RedisConn>,
    config: Arc<Config>,
    draining: AtomicBool,
    /// Keeps the bookkeeping thread running as long as the state lives.
    _bookkeeping: Bookkeeping,
}

impl AppState {
    pub fn new(
        db: Db,
        identity: Identity,
        ai: Gateway,
        redis: Option<RedisConn>,
        config: Arc<Config>,
        bookkeeping: Bookkeeping,
    ) -> Self {
        // The pipeline starts its audit writer task on the bookkeeping thread.
        let ai_pipeline = AiPipeline::new(
            ai.clone(),
            db.clone(),
            &config,
            redis.as_ref(),
            &bookkeeping,
        );
        let catalogues = crate::catalogues::Catalogues::new(db.clone());
        let posture = crate::posture_cache::PostureCache::new(db.clone());
        Self {
            inner: Arc::new(Inner {
                db,
                identity,
                ai,
                ai_pipeline,
                readiness_snapshots: crate::readiness_snapshots::ReadinessSnapshots::new(
                    config.readiness.clone(),
                ),
                catalogues,
                posture,
                redis,
                config,
                draining: AtomicBool::new(false),
                _bookkeeping: bookkeeping,
            }),
        }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The AI gateway (offline-only when no provider is configured).
    pub fn ai(&self) -> &Gateway {
        &self.inner.ai
    }

    /// The AI pipeline every AI endpoint uses: limits, budget, safety, gateway, audit.
    pub fn ai_pipeline(&self) -> &AiPipeline {
        &self.inner.ai_pipeline
    }

    /// Each organisation's catalogue view (built-in + platform-wide + its own imports).
    pub fn catalogues(&self) -> &crate::catalogues::Catalogues {
        &self.inner.catalogues
    }

    /// Each organisation's adopted frameworks and control records, cached per node.
    pub fn posture(&self) -> &crate::posture_cache::PostureCache {
        &self.inner.posture
    }

    /// An organisation's posture changed (adoption, control states): forget its cached
    /// posture on this node and schedule a readiness snapshot. Call after the commit.
    pub async fn posture_changed(&self, org: assay_core::OrgId) {
        self.inner.posture.invalidate(org).await;
        self.inner.readiness_snapshots.notify(org);
    }

    /// The readiness snapshot scheduler (use [`AppState::posture_changed`] after a change).
    pub fn readiness_snapshots(&self) -> &crate::readiness_snapshots::ReadinessSnapshots {
        &self.inner.readiness_snapshots
    }

    pub fn redis(&self) -> Option<&RedisConn> {
        self.inner.redis.as_ref()
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Shutdown has begun: readiness answers 503 so load balancers stop sending traffic.
    pub fn begin_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }
}
