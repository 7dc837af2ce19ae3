//! Readiness snapshots (R-27 history): the scores `assay_core::readiness` computed for an
//! organisation at a moment, kept so progress can be shown over time. Snapshots are taken
//! after changes (coalesced by the API) and once a day; the numbers in them always come
//! from a computation, never from a caller.

use crate::entities::{org_framework as adopted, readiness_snapshot as snapshot};
use crate::error::StoreError;
use assay_core::{OrgCtx, OrgId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Why a snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotTrigger {
    /// The posture changed (coalesced over a quiet period).
    Change,
    /// The daily snapshot.
    Daily,
}

impl SnapshotTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotTrigger::Change => "change",
            SnapshotTrigger::Daily => "daily",
        }
    }
}

impl fmt::Display for SnapshotTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SnapshotTrigger {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "change" => Ok(SnapshotTrigger::Change),
            "daily" => Ok(SnapshotTrigger::Daily),
            other => Err(StoreError::Corrupt(format!("snapshot trigger '{other}'"))),
        }
    }
}

/// One framework's score in a snapshot, with its requirement counts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameworkScore {
    pub framework: String,
    pub score: Option<u8>,
    pub percent: Option<f64>,
    pub met: u32,
    pub partial: u32,
    pub missing: u32,
    pub not_applicable: u32,
}

/// The scores to record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSnapshot {
    pub trigger: SnapshotTrigger,
    pub overall_score: Option<u8>,
    pub overall_percent: Option<f64>,
    pub frameworks: Vec<FrameworkScore>,
}

impl NewSnapshot {
    /// Whether the scores (not the trigger or time) equal a stored snapshot's.
    pub fn same_scores_as(&self, other: &Snapshot) -> bool {
        self.overall_score == other.overall_score
            && self.overall_percent == other.overall_percent
            && self.frameworks == other.frameworks
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Snapshot {
    pub id: Uuid,
    pub taken_at: DateTime<Utc>,
    pub trigger: SnapshotTrigger,
    pub overall_score: Option<u8>,
    pub overall_percent: Option<f64>,
    pub frameworks: Vec<FrameworkScore>,
}

fn stored(m: snapshot::Model) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        id: m.id,
        taken_at: m.taken_at,
        trigger: m.trigger.parse()?,
        overall_score: m
            .overall_score
            .map(|s| u8::try_from(s).map_err(|_| StoreError::Corrupt(format!("score {s}"))))
            .transpose()?,
        overall_percent: m.overall_percent,
        frameworks: serde_json::from_str(&m.frameworks)
            .map_err(|e| StoreError::Corrupt(format!("snapshot frameworks: {e}")))?,
    })
}

/// The UTC day a daily snapshot of `at` belongs to.
pub fn day_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// Store a snapshot taken at `taken_at`. A daily snapshot is stored at most once per
/// organisation and UTC day: `None` when that day already has one (another node took it).
pub async fn record(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    new: &NewSnapshot,
    taken_at: DateTime<Utc>,
) -> Result<Option<Snapshot>, StoreError> {
    let frameworks = serde_json::to_string(&new.frameworks)
        .map_err(|e| StoreError::Corrupt(format!("snapshot frameworks: {e}")))?;
    let model = snapshot::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(ctx.org_id().0),
        taken_at: Set(taken_at),
        trigger: Set(new.trigger.as_str().to_owned()),
        daily_slot: Set((new.trigger == SnapshotTrigger::Daily).then(|| day_of(taken_at))),
        overall_score: Set(new.overall_score.map(i16::from)),
        overall_percent: Set(new.overall_percent),
        frameworks: Set(frameworks),
    };
    let id = model.id.clone().unwrap();
    let n = snapshot::Entity::insert(model)
        .on_conflict(
            OnConflict::columns([snapshot::Column::OrgId, snapshot::Column::DailySlot])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    snapshot::Entity::find_by_id(id)
        .filter(snapshot::Column::OrgId.eq(ctx.org_id().0))
        .one(conn)
        .await?
        .map(stored)
        .transpose()
}

/// The most recent snapshot of the organisation.
pub async fn latest(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
) -> Result<Option<Snapshot>, StoreError> {
    snapshot::Entity::find()
        .filter(snapshot::Column::OrgId.eq(ctx.org_id().0))
        .order_by_desc(snapshot::Column::TakenAt)
        .order_by_desc(snapshot::Column::Id)
        .one(conn)
        .await?
        .map(stored)
        .transpose()
}

/// The most recent `limit` snapshots taken at or after `since`, oldest first.
pub async fn history(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    since: Option<DateTime<Utc>>,
    limit: u64,
) -> Result<Vec<Snapshot>, StoreError> {
    let mut q = snapshot::Entity::find().filter(snapshot::Column::OrgId.eq(ctx.org_id().0));
    if let Some(since) = since {
        q = q.filter(snapshot::Column::TakenAt.gte(since));
    }
    let mut rows = q
        .order_by_desc(snapshot::Column::TakenAt)
        .order_by_desc(snapshot::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(stored)
        .collect::<Result<Vec<_>, _>>()?;
    rows.reverse();
    Ok(rows)
}

/// Organisations that adopted at least one framework and have no daily snapshot for `day`.
/// The one cross-organisation query here: it is how the daily job finds its work, and it
/// returns ids only.
pub async fn orgs_due_daily(
    conn: &impl ConnectionTrait,
    day: &str,
) -> Result<Vec<OrgId>, StoreError> {
    let adopting: Vec<Uuid> = adopted::Entity::find()
        .select_only()
        .column(adopted::Column::OrgId)
        .distinct()
        .into_tuple()
        .all(conn)
        .await?;
    let done: HashSet<Uuid> = snapshot::Entity::find()
        .select_only()
        .column(snapshot::Column::OrgId)
        .filter(snapshot::Column::DailySlot.eq(day))
        .into_tuple::<Uuid>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    let mut due: Vec<OrgId> = adopting
        .into_iter()
        .filter(|o| !done.contains(o))
        .map(OrgId)
        .collect();
    due.sort();
    Ok(due)
}
