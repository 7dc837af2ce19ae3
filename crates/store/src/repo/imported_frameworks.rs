//! Framework packs imported from OSCAL, Prowler or YAML: org-private ones, owned by
//! the organisation that imported them, and platform-wide ones (`org_id` NULL) that a
//! platform admin imported for everyone. Only the pack text and its facts are stored here;
//! reading and checking packs is `assay_core::catalogue`'s job.
//!
//! The key rule lives here so no caller can skip it: a framework key is unique among what
//! one organisation sees — the built-in packs, the platform-wide imports and its own. The
//! unique indexes of m0005 cover "one per organisation" and "one platform-wide"; the rest is
//! checked inside the inserting transaction, after taking a per-key lock so that two imports
//! of one key (in different scopes) cannot both pass the check on PostgreSQL. On SQLite the
//! write transaction already holds the database's single write lock.

use crate::entities::{imported_framework as imported, org_framework as adopted};
use crate::error::StoreError;
use assay_core::{OrgCtx, OrgId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::ExprTrait;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set, Statement,
};
use uuid::Uuid;

/// An imported pack's facts, without the pack text (what lists show).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImportedFramework {
    pub id: Uuid,
    /// `None` for a platform-wide pack.
    pub org_id: Option<OrgId>,
    pub key: String,
    pub name: String,
    pub version: String,
    /// `oscal`, `prowler` or `yaml`: what the uploaded file was.
    pub source_format: String,
    pub original_filename: Option<String>,
    pub requirement_count: u32,
    /// Who imported it (`user:<id>`, `api_key:<id>`, `cli`).
    pub imported_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An imported pack with its stored text, for loading into a catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPack {
    pub record: ImportedFramework,
    /// The framework as an Assay YAML pack (`assay.framework.v1`).
    pub pack: String,
    /// Prowler check ids per requirement ref, as JSON; `None` for other formats.
    pub checks: Option<String>,
}

/// What to store for one import; the pack is already checked and serialised by the caller.
#[derive(Clone, Debug)]
pub struct NewImport<'a> {
    pub key: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub source_format: &'a str,
    pub original_filename: Option<&'a str>,
    pub pack: &'a str,
    pub checks: Option<&'a str>,
    pub requirement_count: u32,
    pub imported_by: Option<&'a str>,
}

fn record(m: &imported::Model) -> ImportedFramework {
    ImportedFramework {
        id: m.id,
        org_id: m.org_id.map(OrgId),
        key: m.key.clone(),
        name: m.name.clone(),
        version: m.version.clone(),
        source_format: m.source_format.clone(),
        original_filename: m.original_filename.clone(),
        requirement_count: u32::try_from(m.requirement_count).unwrap_or(0),
        imported_by: m.imported_by.clone(),
        created_at: m.created_at,
    }
}

fn stored(m: imported::Model) -> StoredPack {
    StoredPack {
        record: record(&m),
        pack: m.pack,
        checks: m.checks,
    }
}

/// Rows the organisation sees: its own and the platform-wide ones.
fn visible_to(ctx: &OrgCtx) -> sea_orm::sea_query::SimpleExpr {
    imported::Column::OrgId
        .eq(ctx.org_id().0)
        .or(imported::Column::OrgId.is_null())
}

fn key_taken() -> StoreError {
    StoreError::Conflict {
        field: "key".into(),
    }
}

/// Arbitrary constant naming framework-key locks among PostgreSQL advisory locks.
const KEY_LOCK_NAMESPACE: i32 = 0x0A55_0005;

/// Serialise writers of one framework key until the end of the transaction. PostgreSQL
/// only (a transaction-scoped advisory lock): SQLite's write transactions are already
/// serial (`BEGIN IMMEDIATE`). Called on a pool rather than a transaction it is a no-op
/// lock, so callers must pass the transaction they write in.
async fn lock_key(conn: &impl ConnectionTrait, key: &str) -> Result<(), StoreError> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            [KEY_LOCK_NAMESPACE.into(), key.into()],
        ))
        .await?;
    }
    Ok(())
}

/// The built-in packs own their keys; the database does not know them, the catalogue does.
fn builtin_key(key: &str) -> bool {
    assay_core::catalogue::builtin().framework(key).is_some()
}

async fn insert(
    conn: &impl ConnectionTrait,
    org_id: Option<OrgId>,
    new: &NewImport<'_>,
) -> Result<ImportedFramework, StoreError> {
    let model = imported::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(org_id.map(|o| o.0)),
        key: Set(new.key.to_owned()),
        name: Set(new.name.to_owned()),
        version: Set(new.version.to_owned()),
        source_format: Set(new.source_format.to_owned()),
        original_filename: Set(new.original_filename.map(str::to_owned)),
        pack: Set(new.pack.to_owned()),
        checks: Set(new.checks.map(str::to_owned)),
        requirement_count: Set(i32::try_from(new.requirement_count)
            .map_err(|_| StoreError::Invariant("a pack has too many requirements to store"))?),
        imported_by: Set(new.imported_by.map(str::to_owned)),
        created_at: Set(super::now()),
    };
    match model.insert(conn).await {
        Ok(m) => Ok(record(&m)),
        // The indexes only back up the check made before the insert; whichever index fired,
        // the field in conflict is the key.
        Err(e) => Err(match StoreError::from(e) {
            StoreError::Conflict { .. } => key_taken(),
            other => other,
        }),
    }
}

/// Store an org-private pack. `Conflict { field: "key" }` when the organisation already
/// sees a framework with this key (built-in, platform-wide or its own).
pub async fn insert_for_org(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    new: &NewImport<'_>,
) -> Result<ImportedFramework, StoreError> {
    if builtin_key(new.key) {
        return Err(key_taken());
    }
    lock_key(conn, new.key).await?;
    let visible = imported::Entity::find()
        .filter(imported::Column::Key.eq(new.key))
        .filter(visible_to(ctx))
        .count(conn)
        .await?;
    if visible > 0 {
        return Err(key_taken());
    }
    insert(conn, Some(ctx.org_id()), new).await
}

/// Store a platform-wide pack (the caller has checked that a platform admin asks). Its key
/// must be free everywhere: a platform pack is seen by every organisation, so an org-private
/// pack with the same key would become ambiguous for that organisation.
pub async fn insert_platform(
    conn: &impl ConnectionTrait,
    new: &NewImport<'_>,
) -> Result<ImportedFramework, StoreError> {
    if builtin_key(new.key) {
        return Err(key_taken());
    }
    lock_key(conn, new.key).await?;
    let anywhere = imported::Entity::find()
        .filter(imported::Column::Key.eq(new.key))
        .count(conn)
        .await?;
    if anywhere > 0 {
        return Err(key_taken());
    }
    insert(conn, None, new).await
}

/// The organisation's own imports, newest first.
pub async fn list_for_org(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
) -> Result<Vec<ImportedFramework>, StoreError> {
    Ok(imported::Entity::find()
        .filter(imported::Column::OrgId.eq(ctx.org_id().0))
        .order_by_desc(imported::Column::CreatedAt)
        .order_by_asc(imported::Column::Key)
        .all(conn)
        .await?
        .iter()
        .map(record)
        .collect())
}

/// Everything the organisation sees beyond the built-in packs: the platform-wide imports
/// and its own, in key order.
pub async fn list_visible(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
) -> Result<Vec<ImportedFramework>, StoreError> {
    Ok(imported::Entity::find()
        .filter(visible_to(ctx))
        .order_by_asc(imported::Column::Key)
        .all(conn)
        .await?
        .iter()
        .map(record)
        .collect())
}

/// Platform-wide imports, in key order.
pub async fn list_platform(
    conn: &impl ConnectionTrait,
) -> Result<Vec<ImportedFramework>, StoreError> {
    Ok(imported::Entity::find()
        .filter(imported::Column::OrgId.is_null())
        .order_by_asc(imported::Column::Key)
        .all(conn)
        .await?
        .iter()
        .map(record)
        .collect())
}

/// The organisation's own packs with their text, in key order (for its catalogue).
pub async fn org_packs(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
) -> Result<Vec<StoredPack>, StoreError> {
    Ok(imported::Entity::find()
        .filter(imported::Column::OrgId.eq(ctx.org_id().0))
        .order_by_asc(imported::Column::Key)
        .all(conn)
        .await?
        .into_iter()
        .map(stored)
        .collect())
}

/// Platform-wide packs with their text, in key order.
pub async fn platform_packs(conn: &impl ConnectionTrait) -> Result<Vec<StoredPack>, StoreError> {
    Ok(imported::Entity::find()
        .filter(imported::Column::OrgId.is_null())
        .order_by_asc(imported::Column::Key)
        .all(conn)
        .await?
        .into_iter()
        .map(stored)
        .collect())
}

/// One of the organisation's own imports with its text. Platform-wide packs are not
/// returned: they are not the organisation's to manage.
pub async fn get(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    key: &str,
) -> Result<Option<StoredPack>, StoreError> {
    Ok(imported::Entity::find()
        .filter(imported::Column::OrgId.eq(ctx.org_id().0))
        .filter(imported::Column::Key.eq(key))
        .one(conn)
        .await?
        .map(stored))
}

/// Whether the organisation sees an imported framework with this key, holding the key's
/// lock until the transaction ends: adoption calls this in its transaction so that a pack
/// cannot be deleted between the check and the adoption record.
pub async fn lock_visible(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    key: &str,
) -> Result<bool, StoreError> {
    lock_key(conn, key).await?;
    let n = imported::Entity::find()
        .filter(imported::Column::Key.eq(key))
        .filter(visible_to(ctx))
        .count(conn)
        .await?;
    Ok(n > 0)
}

/// Delete one of the organisation's own imports; returns what was deleted. `NotFound` when
/// it has none with this key; `Invariant` (409) while the organisation has it adopted, so
/// that readiness never refers to a framework that is gone.
pub async fn delete_for_org(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    key: &str,
) -> Result<ImportedFramework, StoreError> {
    lock_key(conn, key).await?;
    let Some(found) = imported::Entity::find()
        .filter(imported::Column::OrgId.eq(ctx.org_id().0))
        .filter(imported::Column::Key.eq(key))
        .one(conn)
        .await?
    else {
        return Err(StoreError::not_found("imported framework"));
    };
    let adoptions = adopted::Entity::find()
        .filter(adopted::Column::OrgId.eq(ctx.org_id().0))
        .filter(adopted::Column::FrameworkKey.eq(key))
        .count(conn)
        .await?;
    if adoptions > 0 {
        return Err(StoreError::Invariant(
            "the framework is adopted by this organisation; unadopt it before deleting it",
        ));
    }
    imported::Entity::delete_by_id(found.id).exec(conn).await?;
    Ok(record(&found))
}

/// Delete a platform-wide import; refused while any organisation has it adopted.
pub async fn delete_platform(
    conn: &impl ConnectionTrait,
    key: &str,
) -> Result<ImportedFramework, StoreError> {
    lock_key(conn, key).await?;
    let Some(found) = imported::Entity::find()
        .filter(imported::Column::OrgId.is_null())
        .filter(imported::Column::Key.eq(key))
        .one(conn)
        .await?
    else {
        return Err(StoreError::not_found("imported framework"));
    };
    // Org-private packs cannot share a platform pack's key, so an adoption of this key
    // anywhere is an adoption of this pack.
    let adoptions = adopted::Entity::find()
        .filter(adopted::Column::FrameworkKey.eq(key))
        .count(conn)
        .await?;
    if adoptions > 0 {
        return Err(StoreError::Invariant(
            "the framework is adopted by at least one organisation; it cannot be deleted",
        ));
    }
    imported::Entity::delete_by_id(found.id).exec(conn).await?;
    Ok(record(&found))
}
