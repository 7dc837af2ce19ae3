//! Each organisation's stored posture — the frameworks it adopted and its control records —
//! as every read path uses it: the controls list and export, readiness, snapshots, the AI
//! grounding and the AI tasks.
//!
//! Reads are served from memory (moka) for [`POSTURE_TTL`]; every write path calls
//! [`crate::state::AppState::posture_changed`], which drops the org's entry on this node
//! (and schedules a readiness snapshot), so a caller always reads its own writes. With Redis
//! the other nodes drop it too when the change's announcement arrives
//! ([`crate::cache_sync`]); the TTL bounds a lost announcement, as for the membership and
//! role caches (`identity.rs`). Why: the controls list was ~4-8x slower than `/me` under load
//! (bench/posture) because each request read ~40 rows from PostgreSQL.

use assay_core::catalogue::Catalogue;
use assay_core::readiness::ControlState;
use assay_core::{OrgCtx, OrgId};
use assay_store::StoreError;
use assay_store::repo::posture::{self, ControlRecord};
use assay_store::{ConnectionTrait, Db};
use axum::body::Bytes;
use moka::future::Cache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long another node may serve a posture that changed elsewhere when the change's
/// announcement did not reach it (or there is no Redis to carry one).
pub const POSTURE_TTL: Duration = Duration::from_secs(5);

/// Rendered responses kept per posture, at most (a new one past this is not kept).
const MAX_RENDERED: usize = 64;

/// One organisation's stored posture, read in one go.
#[derive(Debug, Default)]
pub struct Posture {
    /// Keys of the adopted frameworks, as stored (a pack that disappeared may be listed).
    pub adopted: Vec<String>,
    /// Control records by control key; a control without a record is `not_started`.
    pub records: HashMap<String, ControlRecord>,
    /// Response bodies rendered from this posture (e.g. a page of the controls list) by a
    /// key naming the view; they live and die with the posture, so they are never stale
    /// on this node. Rendering 50 controls (~37 KB) was the list's remaining cost.
    rendered: Mutex<HashMap<String, Bytes>>,
}

impl Posture {
    /// Read from the database (the primary: a write just made must be visible).
    pub async fn load(conn: &impl ConnectionTrait, ctx: &OrgCtx) -> Result<Self, StoreError> {
        let adopted = posture::adopted(conn, ctx)
            .await?
            .into_iter()
            .map(|a| a.framework_key)
            .collect();
        let records = posture::control_states(conn, ctx)
            .await?
            .into_iter()
            .map(|r| (r.control_key.clone(), r))
            .collect();
        Ok(Self {
            adopted,
            records,
            rendered: Mutex::default(),
        })
    }

    /// The body `render` produces for the view `key`, rendered once per posture.
    pub fn rendered<E>(
        &self,
        key: &str,
        render: impl FnOnce(&Self) -> Result<Vec<u8>, E>,
    ) -> Result<Bytes, E> {
        if let Some(body) = self.lock_rendered().get(key) {
            return Ok(body.clone());
        }
        let body = Bytes::from(render(self)?);
        let mut kept = self.lock_rendered();
        if kept.len() < MAX_RENDERED {
            kept.insert(key.to_owned(), body.clone());
        }
        Ok(body)
    }

    fn lock_rendered(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bytes>> {
        // A panic while holding the lock leaves only a memo behind: keep using it.
        self.rendered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The adopted frameworks `catalogue` knows. Frameworks adopted before their pack was
    /// removed (from this build, or an import that can no longer be read) are skipped.
    pub fn adopted_in(&self, catalogue: &Catalogue) -> Vec<String> {
        self.adopted
            .iter()
            .filter(|k| catalogue.framework(k).is_some())
            .cloned()
            .collect()
    }

    /// The control states readiness is computed from.
    pub fn readiness_states(&self) -> HashMap<String, ControlState> {
        self.records
            .iter()
            .map(|(key, r)| {
                let mut s = ControlState::new(r.status);
                s.justification = r.justification.clone();
                (key.clone(), s)
            })
            .collect()
    }
}

/// The per-node cache of [`Posture`]s.
pub struct PostureCache {
    db: Db,
    cache: Cache<OrgId, Arc<Posture>>,
    /// Bumped by every invalidation: a load that overlapped one is returned but not kept,
    /// so a read that began before a write cannot re-insert the old posture after it.
    generation: AtomicU64,
}

impl PostureCache {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            cache: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(POSTURE_TTL)
                .build(),
            generation: AtomicU64::new(0),
        }
    }

    /// The organisation's posture, from memory when fresh.
    pub async fn get(&self, ctx: &OrgCtx) -> Result<Arc<Posture>, StoreError> {
        let org = ctx.org_id();
        if let Some(hit) = self.cache.get(&org).await {
            return Ok(hit);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = Arc::new(Posture::load(self.db.primary(), ctx).await?);
        if self.generation.load(Ordering::Acquire) == generation {
            self.cache.insert(org, loaded.clone()).await;
        }
        Ok(loaded)
    }

    /// Forget the organisation's posture on this node (call after the write committed).
    pub async fn invalidate(&self, org: OrgId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(&org).await;
    }

    /// Forget every organisation's posture on this node (changes may have been missed).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }
}
