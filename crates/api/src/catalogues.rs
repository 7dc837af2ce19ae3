//! Each organisation's view of the catalogue: the built-in packs, the packs a
//! platform admin imported for everyone, and the organisation's own imports — one
//! [`Catalogue`] per view, so every org-scoped route (adoption, controls, readiness,
//! recommendations, exports, assessments) treats an imported framework exactly like a
//! built-in one.
//!
//! Views are built from the stored packs on first use and kept in memory (moka). An import
//! or a deletion drops the affected views at once on this node and, with Redis, on the
//! other nodes of a deployment when its announcement arrives ([`crate::cache_sync`]; the
//! CLI's imports announce too); within [`VIEW_TTL`] in any case, and a key that is not
//! found is looked up again in the database before a 404 (see
//! [`Catalogues::refreshed_for_org`]). Organisations without
//! packs of their own share the platform view, so a view costs memory only where it differs.
//!
//! Importing and deleting packs also lives here, so the HTTP routes and the CLI run the same
//! code: check the document, store it with its audit record in one transaction, drop views.

use crate::cache_sync::{Announcer, Change};
use crate::error::ApiError;
use crate::json::{FieldError, invalid};
use assay_core::OrgCtx;
use assay_core::OrgId;
use assay_core::catalogue::{
    Catalogue, CatalogueError, Format, ImportOptions, PreparedPack, Problem, ProblemKind, builtin,
    prepare_pack, read_stored_pack,
};
use assay_store::repo::audit::{self, NewAuditEvent};
use assay_store::repo::imported_frameworks::{self, ImportedFramework, NewImport, StoredPack};
use assay_store::{Db, StoreError};
use axum::http::StatusCode;
use moka::future::Cache;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// How long a view may be served after another node changed it, when the change's
/// announcement did not arrive.
pub const VIEW_TTL: Duration = Duration::from_secs(30);

/// Upper bound on cached requirements across all views that hold their own copy (roughly
/// 1 KiB each): about 500 organisations with private packs beside the built-in ones.
const MAX_CACHED_REQUIREMENTS: u64 = 300_000;

/// The built-in catalogue as the shared base of every view.
static BASE: LazyLock<Arc<Catalogue>> = LazyLock::new(|| Arc::new(builtin().clone()));

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ViewKey {
    /// Built-in + platform-wide packs: what `/api/v1/frameworks` lists.
    Platform,
    Org(OrgId),
}

#[derive(Clone)]
struct View {
    catalogue: Arc<Catalogue>,
    /// Requirements this view holds that no other view shares (0 when it is the base or the
    /// platform view reused), for the cache's memory bound.
    own_requirements: u32,
}

/// Where an imported pack lives.
#[derive(Clone, Debug)]
pub enum PackScope {
    /// Seen by every organisation; imported by a platform admin (or the operator's CLI).
    Platform,
    /// Seen by this organisation only.
    Org(OrgCtx),
}

impl PackScope {
    pub fn org_id(&self) -> Option<OrgId> {
        match self {
            PackScope::Platform => None,
            PackScope::Org(ctx) => Some(ctx.org_id()),
        }
    }
}

/// A file to import, with what the uploader said about it.
#[derive(Clone, Debug, Default)]
pub struct Upload {
    pub bytes: Vec<u8>,
    /// `None`: detected from the content.
    pub format: Option<Format>,
    /// The uploaded file's name: names the document in problems and derives Prowler keys.
    pub filename: Option<String>,
    /// A framework key to use instead of the one the document carries or implies.
    pub key: Option<String>,
}

/// Why an import or a deletion did not happen. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The document has problems; each has its path in the document.
    #[error("{0}")]
    Invalid(CatalogueError),
    /// The organisation (or, for a platform pack, anyone) already sees this key.
    #[error(
        "framework key {0:?} is already taken (by a built-in pack, a platform-wide import or an import of this organisation)"
    )]
    KeyTaken(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for PackError {
    fn from(e: StoreError) -> Self {
        PackError::Store(e)
    }
}

impl From<PackError> for ApiError {
    fn from(e: PackError) -> Self {
        match e {
            PackError::Invalid(err) => invalid_pack(&err),
            PackError::KeyTaken(key) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                PackError::KeyTaken(key.clone()).to_string(),
            )
            .with_details(serde_json::json!({ "field": "key", "key": key })),
            PackError::Store(e) => e.into(),
        }
    }
}

/// 422 naming every problem by its path in the uploaded document (`field`), as the other
/// 422s of the API do, plus the line and column of a syntax error.
fn invalid_pack(err: &CatalogueError) -> ApiError {
    let fields = err
        .problems
        .iter()
        .map(|p| FieldError {
            field: if p.path.is_empty() {
                "body".to_owned()
            } else {
                p.path.clone()
            },
            reason: p.kind.to_string(),
        })
        .collect();
    let mut e = invalid(fields);
    let positions: Vec<_> = err
        .problems
        .iter()
        .filter_map(|p| match &p.kind {
            ProblemKind::Syntax { line, column, .. } => {
                Some(serde_json::json!({ "line": line, "column": column }))
            }
            _ => None,
        })
        .collect();
    if let (Some(details), Some(position)) = (e.details.as_mut(), positions.first()) {
        details["position"] = position.clone();
    }
    e.message = format!("the file is not a valid framework: {}", e.message);
    e
}

/// The per-organisation catalogue views and the import service. Cheap to clone.
#[derive(Clone)]
pub struct Catalogues {
    db: Db,
    views: Cache<ViewKey, View>,
    /// Tells the other nodes (and, from the CLI, the running ones) about imports and deletions.
    announcer: Announcer,
}

impl Catalogues {
    pub fn new(db: Db, announcer: Announcer) -> Self {
        let views = Cache::builder()
            .max_capacity(MAX_CACHED_REQUIREMENTS)
            .weigher(|_: &ViewKey, v: &View| v.own_requirements.max(1))
            .time_to_live(VIEW_TTL)
            .build();
        Self {
            db,
            views,
            announcer,
        }
    }

    /// Built-in + platform-wide frameworks (no organisation's private packs).
    pub async fn platform(&self) -> Result<Arc<Catalogue>, StoreError> {
        let db = self.db.clone();
        self.views
            .try_get_with(ViewKey::Platform, async move {
                let packs = imported_frameworks::platform_packs(db.primary()).await?;
                Ok::<_, StoreError>(extend(&BASE, &packs))
            })
            .await
            .map(|v| v.catalogue)
            .map_err(unshare)
    }

    /// What this organisation sees: built-in, platform-wide and its own frameworks.
    pub async fn for_org(&self, ctx: &OrgCtx) -> Result<Arc<Catalogue>, StoreError> {
        let platform = self.platform().await?;
        let (db, ctx) = (self.db.clone(), *ctx);
        self.views
            .try_get_with(ViewKey::Org(ctx.org_id()), async move {
                let own = imported_frameworks::org_packs(db.primary(), &ctx).await?;
                Ok::<_, StoreError>(extend(&platform, &own))
            })
            .await
            .map(|v| v.catalogue)
            .map_err(unshare)
    }

    /// The organisation's view rebuilt from the database, for when a key it should know is
    /// missing: the pack may have been imported on another node within [`VIEW_TTL`].
    pub async fn refreshed_for_org(&self, ctx: &OrgCtx) -> Result<Arc<Catalogue>, StoreError> {
        self.views.invalidate(&ViewKey::Platform).await;
        self.views.invalidate(&ViewKey::Org(ctx.org_id())).await;
        self.for_org(ctx).await
    }

    /// Drop the views a change in `scope` affects on this node (a platform pack is in
    /// every view).
    pub async fn invalidate(&self, scope: Option<OrgId>) {
        match scope {
            Some(org) => self.views.invalidate(&ViewKey::Org(org)).await,
            None => self.views.invalidate_all(),
        }
    }

    /// The packs of `scope` changed: drop the views here and tell the other nodes.
    async fn changed(&self, scope: Option<OrgId>) {
        self.invalidate(scope).await;
        self.announcer
            .announce(&Change::Catalogue { org: scope })
            .await;
    }

    /// Check `upload`, then store it with `event` (completed with the import's facts) in
    /// one transaction. Nothing is stored when the file has any problem or the key is taken.
    pub async fn import(
        &self,
        scope: PackScope,
        upload: Upload,
        imported_by: Option<String>,
        event: NewAuditEvent,
    ) -> Result<(ImportedFramework, PreparedPack), PackError> {
        let document = upload
            .filename
            .clone()
            .unwrap_or_else(|| "uploaded file".to_owned());
        // Parsing is CPU work on possibly megabytes of JSON: keep it off the async workers.
        let (bytes, format, key) = (upload.bytes, upload.format, upload.key.clone());
        let pack = tokio::task::spawn_blocking(move || {
            let options = ImportOptions {
                key,
                ..ImportOptions::named(document)
            };
            prepare_pack(&bytes, format, &options)
        })
        .await
        .map_err(|e| PackError::Store(StoreError::Corrupt(format!("import task: {e}"))))?
        .map_err(PackError::Invalid)?;
        let checks = if pack.checks.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&pack.checks)
                    .map_err(|e| PackError::Store(StoreError::Corrupt(e.to_string())))?,
            )
        };
        let requirement_count =
            u32::try_from(pack.framework.requirements.len()).unwrap_or(u32::MAX);
        let stored = {
            let (pack, scope) = (pack.clone(), scope.clone());
            let filename = upload.filename.clone();
            self.db
                .write(move |txn| {
                    Box::pin(async move {
                        let new = NewImport {
                            key: &pack.framework.key,
                            name: &pack.framework.name,
                            version: &pack.framework.version,
                            source_format: pack.format.as_str(),
                            original_filename: filename.as_deref(),
                            pack: &pack.pack_yaml,
                            checks: checks.as_deref(),
                            requirement_count,
                            imported_by: imported_by.as_deref(),
                        };
                        let record = match &scope {
                            PackScope::Platform => {
                                imported_frameworks::insert_platform(txn, &new).await?
                            }
                            PackScope::Org(ctx) => {
                                imported_frameworks::insert_for_org(txn, ctx, &new).await?
                            }
                        };
                        let mut ev = event.resource("framework", &record.key);
                        ev.details = serde_json::json!({
                            "key": record.key,
                            "name": record.name,
                            "version": record.version,
                            "format": record.source_format,
                            "filename": record.original_filename,
                            "requirements": record.requirement_count,
                            "scope": if record.org_id.is_some() { "org" } else { "platform" },
                        })
                        .into();
                        audit::append(txn, ev).await?;
                        Ok(record)
                    })
                })
                .await
        };
        let record = match stored {
            Ok(record) => record,
            Err(StoreError::Conflict { .. }) => {
                return Err(PackError::KeyTaken(pack.framework.key.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        self.changed(scope.org_id()).await;
        Ok((record, pack))
    }

    /// Delete one of the organisation's own imports with `event`, in one transaction.
    /// Refused (409) while the organisation has the framework adopted.
    pub async fn delete_org_pack(
        &self,
        ctx: &OrgCtx,
        key: &str,
        event: NewAuditEvent,
    ) -> Result<ImportedFramework, PackError> {
        let (ctx2, key2) = (*ctx, key.to_owned());
        let record = self
            .db
            .write(move |txn| {
                Box::pin(async move {
                    let record = imported_frameworks::delete_for_org(txn, &ctx2, &key2).await?;
                    let mut ev = event.resource("framework", &record.key);
                    ev.details = serde_json::json!({
                        "key": record.key,
                        "name": record.name,
                        "format": record.source_format,
                        "scope": "org",
                    })
                    .into();
                    audit::append(txn, ev).await?;
                    Ok(record)
                })
            })
            .await?;
        self.changed(Some(ctx.org_id())).await;
        Ok(record)
    }
}

/// `base` plus the frameworks of `packs`. A stored pack that no longer loads (or whose key
/// a newer build's built-in pack now uses) is left out and logged, never fatal: one bad row
/// must not hide every other framework from an organisation.
fn extend(base: &Arc<Catalogue>, packs: &[StoredPack]) -> View {
    if packs.is_empty() {
        return View {
            catalogue: base.clone(),
            own_requirements: 0,
        };
    }
    let mut frameworks = Vec::with_capacity(packs.len());
    let mut problems: Vec<Problem> = Vec::new();
    for p in packs {
        let document = format!("imported framework {} ({})", p.record.key, p.record.id);
        match read_stored_pack(&document, &p.pack) {
            Ok(f) if f.key == p.record.key => frameworks.push(f),
            Ok(f) => problems.push(Problem::new(
                &document,
                "framework.key",
                ProblemKind::InvalidKey { value: f.key },
            )),
            Err(e) => problems.extend(e.problems),
        }
    }
    let extended = base.with_frameworks(frameworks);
    problems.extend(extended.skipped);
    for problem in &problems {
        tracing::error!(%problem, "a stored framework pack was left out of the catalogue");
    }
    let own = extended
        .catalogue
        .frameworks()
        .iter()
        .map(|f| f.requirements.len())
        .sum::<usize>();
    View {
        catalogue: Arc::new(extended.catalogue),
        own_requirements: u32::try_from(own).unwrap_or(u32::MAX),
    }
}

/// moka shares one loader error between all waiters; the store error is re-made from it.
fn unshare(e: Arc<StoreError>) -> StoreError {
    match &*e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::NotFound { entity } => StoreError::NotFound { entity },
        other => StoreError::Corrupt(other.to_string()),
    }
}
