//! What every handler can reach: the database, Redis (when configured), the configuration
//! and the process lifecycle (whether it is draining for shutdown).

use crate::ai::AiPipeline;
use crate::bookkeeping::Bookkeeping;
use crate::cache_sync::{Announcer, Change};
use crate::identity::Identity;
use assay_ai::Gateway;
use assay_config::Config;
use assay_infra::invalidation::{BusEvent, InvalidationBus};
use assay_infra::redis_conn::RedisConn;
use assay_store::Db;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

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
    /// Tells the other nodes about changes to what their caches hold.
    announcer: Announcer,
    /// Changes announced by other nodes and applied here.
    heard: AtomicU64,
    /// Times this node dropped every cached entry because it (re)subscribed.
    resyncs: AtomicU64,
    /// The task applying them, stopped with the state (which ends the subscription).
    follower: OnceLock<tokio::task::AbortHandle>,
    config: Arc<Config>,
    draining: AtomicBool,
    /// Keeps the bookkeeping thread running as long as the state lives.
    _bookkeeping: Bookkeeping,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(follower) = self.follower.get() {
            follower.abort();
        }
    }
}

impl AppState {
    pub fn new(
        db: Db,
        identity: Identity,
        ai: Gateway,
        redis: Option<RedisConn>,
        bus: Option<InvalidationBus>,
        config: Arc<Config>,
        bookkeeping: Bookkeeping,
    ) -> Self {
        let announcer = Announcer::new(bus);
        // The pipeline starts its audit writer task on the bookkeeping thread.
        // AI limits share the general API limiter (in-process or Redis), so a request's
        // general and AI limits can be spent in one step (`crate::rate_limit`).
        let ai_pipeline = AiPipeline::new(
            ai.clone(),
            db.clone(),
            &config,
            identity.api_limiter.clone(),
            &bookkeeping,
        );
        let catalogues = crate::catalogues::Catalogues::new(db.clone(), announcer.clone());
        let posture = crate::posture_cache::PostureCache::new(db.clone());
        let state = Self {
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
                announcer,
                heard: AtomicU64::new(0),
                resyncs: AtomicU64::new(0),
                follower: OnceLock::new(),
                config,
                draining: AtomicBool::new(false),
                _bookkeeping: bookkeeping,
            }),
        };
        state.follow_other_nodes();
        state
    }

    /// With Redis, apply the changes other nodes announce to this node's caches, until the
    /// state is dropped (the task holds it weakly).
    fn follow_other_nodes(&self) {
        let Some(bus) = self.inner.announcer.bus() else {
            return;
        };
        let mut events = bus.subscribe();
        let state: Weak<Inner> = Arc::downgrade(&self.inner);
        let follower = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Some(inner) = state.upgrade() else { return };
                let state = AppState { inner };
                match event {
                    BusEvent::Changed(payload) => {
                        if let Some(change) = crate::cache_sync::decode(&payload) {
                            state.forget(&change).await;
                            state.inner.heard.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    BusEvent::Resubscribed => {
                        state.forget_everything().await;
                        state.inner.resyncs.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        let _ = self.inner.follower.set(follower.abort_handle());
    }

    /// Something cached on the request path changed (call after the commit): drop it on
    /// this node and tell the other nodes to drop it too.
    pub async fn changed(&self, change: Change) {
        self.forget(&change).await;
        if let Change::Posture { org } = change {
            self.inner.readiness_snapshots.notify(org);
        }
        self.inner.announcer.announce(&change).await;
    }

    /// How many changes announced by other nodes this node has applied (diagnostics, tests).
    pub fn changes_heard(&self) -> u64 {
        self.inner.heard.load(Ordering::SeqCst)
    }

    /// How many times this node dropped every cached entry on (re)subscribing: once at
    /// start, then once per lost subscription (diagnostics, tests).
    pub fn cache_resyncs(&self) -> u64 {
        self.inner.resyncs.load(Ordering::SeqCst)
    }

    /// With Redis: whether this node receives the other nodes' changes now.
    pub fn follows_other_nodes(&self) -> Option<bool> {
        self.inner.announcer.bus().map(|bus| bus.is_subscribed())
    }

    /// Drop what `change` makes stale from this node's caches.
    async fn forget(&self, change: &Change) {
        let inner = &self.inner;
        match change {
            Change::ApiKey { id } => inner.identity.api_key_changed(id).await,
            Change::Membership { org, user } => {
                inner.identity.membership_changed(*org, *user).await;
            }
            Change::User { user } => inner.identity.user_changed(*user).await,
            Change::Organisation { .. } => inner.identity.organisation_changed(),
            Change::Posture { org } => inner.posture.invalidate(*org).await,
            Change::AiSettings { org } => inner.ai_pipeline.settings_changed(*org).await,
            Change::Catalogue { org } => inner.catalogues.invalidate(*org).await,
        }
    }

    /// Drop every cached entry of every kind: announcements may have been missed.
    async fn forget_everything(&self) {
        let inner = &self.inner;
        inner.identity.forget_everything();
        inner.posture.invalidate_all();
        inner.ai_pipeline.forget_all_settings();
        inner.catalogues.invalidate(None).await;
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
    /// posture on every node and schedule a readiness snapshot. Call after the commit.
    pub async fn posture_changed(&self, org: assay_core::OrgId) {
        self.changed(Change::Posture { org }).await;
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
