//! Readiness history: snapshots of an organisation's computed scores, taken after
//! its posture changes and once a day.
//!
//! **After changes, coalesced.** Handlers that change what readiness is computed from
//! (adopting or dropping a framework, control updates, confirming an assessment) call
//! [`ReadinessSnapshots::notify`] after their transaction commits. That only marks the
//! organisation dirty; a background task writes one snapshot once the organisation has been
//! quiet for `readiness.snapshot_quiet_ms` (or `snapshot_max_delay_ms` after the first change
//! of a burst), so a bulk update of 50 controls gives one point in the history, not 50. A
//! snapshot whose scores equal the organisation's latest one is not written: the history
//! records movements. Coalescing is per node; with several nodes each writes its own.
//!
//! **Daily.** A second task takes a snapshot of every organisation with an adopted framework
//! once per UTC day — on start for today if it is missing, then after each midnight. The
//! database allows one daily snapshot per organisation and day, so several nodes (or
//! restarts) never double them.
//!
//! Scores are always computed here from the stored posture with
//! `assay_core::readiness::ReadinessModel`, never taken from a caller. Both tasks stop when
//! the server shuts down (pending change snapshots are written first).

use crate::auth::{RequirePermission, perm};
use crate::error::ApiError;
use crate::json::{invalid_field, page_limit};
use crate::state::AppState;
use assay_config::ReadinessConfig;
use assay_core::readiness::ReadinessModel;
use assay_core::{OrgCtx, OrgId};
use assay_store::StoreError;
use assay_store::repo::readiness_snapshots::{
    self as snapshots, FrameworkScore, NewSnapshot, Snapshot, SnapshotTrigger,
};
use chrono::{DateTime, Days, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Attempts at a change snapshot before it is given up (logged) when the database fails.
const MAX_ATTEMPTS: u32 = 5;
/// Pause before the daily task tries again after the database failed.
const DAILY_RETRY: Duration = Duration::from_secs(300);

/// The organisation's scores now, computed from its stored posture.
pub async fn compute(
    state: &AppState,
    ctx: &OrgCtx,
    trigger: SnapshotTrigger,
) -> Result<NewSnapshot, StoreError> {
    let catalogue = state.catalogues().for_org(ctx).await?;
    let posture = state.posture().get(ctx).await?;
    let model = ReadinessModel::new(&catalogue, &posture.adopted_in(&catalogue))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .with_action_limit(0);
    let readiness = model.compute(&posture.readiness_states());
    Ok(NewSnapshot {
        trigger,
        overall_score: readiness.overall.score,
        overall_percent: readiness.overall.percent,
        frameworks: readiness
            .frameworks
            .iter()
            .map(|f| FrameworkScore {
                framework: f.framework.to_owned(),
                score: f.score,
                percent: f.percent,
                met: f.breakdown.met,
                partial: f.breakdown.partial,
                missing: f.breakdown.missing,
                not_applicable: f.breakdown.not_applicable,
            })
            .collect(),
    })
}

/// Take a change snapshot of one organisation now, unless its scores equal the latest
/// snapshot's. Returns the stored snapshot, if one was written.
pub async fn take_change_snapshot(
    state: &AppState,
    org: OrgId,
) -> Result<Option<Snapshot>, StoreError> {
    let ctx = OrgCtx::for_system(org);
    let new = compute(state, &ctx, SnapshotTrigger::Change).await?;
    let db = state.db().primary();
    if let Some(latest) = snapshots::latest(db, &ctx).await?
        && new.same_scores_as(&latest)
    {
        return Ok(None);
    }
    snapshots::record(db, &ctx, &new, Utc::now()).await
}

/// Take the daily snapshot of `now`'s UTC day for every organisation with an adopted
/// framework that does not have it yet; returns how many were written. One organisation's
/// failure does not stop the others; the first error is returned after trying them all.
pub async fn take_daily(state: &AppState, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let day = snapshots::day_of(now);
    let due = snapshots::orgs_due_daily(state.db().primary(), &day).await?;
    let mut written = 0;
    let mut first_error = None;
    for org in due {
        let ctx = OrgCtx::for_system(org);
        let taken = match compute(state, &ctx, SnapshotTrigger::Daily).await {
            Ok(new) => snapshots::record(state.db().primary(), &ctx, &new, now).await,
            Err(e) => Err(e),
        };
        match taken {
            Ok(Some(_)) => written += 1,
            // Another node took it in between.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(org = %org, error = %e, "daily readiness snapshot failed");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(written),
    }
}

/// The coalescing scheduler's handle: cheap to clone, kept in `AppState`.
#[derive(Clone)]
pub struct ReadinessSnapshots {
    tx: mpsc::UnboundedSender<OrgId>,
    /// Taken by [`ReadinessSnapshots::start`]; changes notified before are kept in the
    /// channel until then.
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<OrgId>>>>,
    settings: ReadinessConfig,
}

/// The running tasks; [`Running::stop`] ends them.
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stop both tasks, writing pending change snapshots first; waits for them to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a readiness snapshot task failed");
            }
        }
    }
}

impl ReadinessSnapshots {
    pub fn new(settings: ReadinessConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
            settings,
        }
    }

    /// The organisation's posture changed: schedule a snapshot. Never blocks or fails the
    /// caller; call it after the change has committed.
    pub fn notify(&self, org: OrgId) {
        // Only fails once the scheduler has stopped (shutdown), when there is nobody to tell.
        let _ = self.tx.send(org);
    }

    /// Start the coalescing task and (when configured) the daily task. Returns `None` if
    /// they were started already.
    pub fn start(&self, state: AppState) -> Option<Running> {
        let rx = self.rx.lock().ok()?.take()?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(coalesce(
            state.clone(),
            rx,
            self.settings.clone(),
            stopped.clone(),
        ))];
        if self.settings.daily_snapshots {
            tasks.push(tokio::spawn(daily(state, stopped)));
        }
        Some(Running { stop, tasks })
    }
}

/// An organisation waiting for its change snapshot.
struct Pending {
    first_change: Instant,
    due: Instant,
    attempts: u32,
}

async fn coalesce(
    state: AppState,
    mut rx: mpsc::UnboundedReceiver<OrgId>,
    settings: ReadinessConfig,
    mut stop: watch::Receiver<bool>,
) {
    let quiet = Duration::from_millis(settings.snapshot_quiet_ms);
    let max_delay = Duration::from_millis(settings.snapshot_max_delay_ms).max(quiet);
    let retry = quiet.max(Duration::from_secs(1));
    let mut pending: HashMap<OrgId, Pending> = HashMap::new();
    loop {
        let next_due = pending.values().map(|p| p.due).min();
        tokio::select! {
            _ = stop.changed() => break,
            received = rx.recv() => match received {
                Some(org) => {
                    let now = Instant::now();
                    let p = pending.entry(org).or_insert(Pending {
                        first_change: now,
                        due: now,
                        attempts: 0,
                    });
                    p.due = (now + quiet).min(p.first_change + max_delay);
                }
                None => break,
            },
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                let due: Vec<OrgId> = pending
                    .iter()
                    .filter(|(_, p)| p.due <= now)
                    .map(|(org, _)| *org)
                    .collect();
                for org in due {
                    let Some(mut p) = pending.remove(&org) else { continue };
                    if let Err(e) = take_change_snapshot(&state, org).await {
                        p.attempts += 1;
                        if p.attempts >= MAX_ATTEMPTS {
                            tracing::error!(org = %org, error = %e, "readiness snapshot given up");
                        } else {
                            tracing::warn!(org = %org, error = %e, "readiness snapshot failed; will retry");
                            p.due = Instant::now() + retry;
                            // A change that arrived meanwhile keeps its own (earlier) timing.
                            pending.entry(org).or_insert(p);
                        }
                    }
                }
            }
        }
    }
    // Shutting down: changes already made still get their point in the history.
    while let Ok(org) = rx.try_recv() {
        pending.entry(org).or_insert(Pending {
            first_change: Instant::now(),
            due: Instant::now(),
            attempts: 0,
        });
    }
    for org in pending.into_keys() {
        if let Err(e) = take_change_snapshot(&state, org).await {
            tracing::warn!(org = %org, error = %e, "readiness snapshot lost at shutdown");
        }
    }
}

/// Time until the next UTC midnight (plus a second, so the new day has begun).
fn until_next_day(now: DateTime<Utc>) -> Duration {
    let next = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 1))
        .map(|t| t.and_utc());
    next.and_then(|n| (n - now).to_std().ok())
        .unwrap_or(Duration::from_secs(3600))
}

async fn daily(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        let wait = match take_daily(&state, Utc::now()).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(snapshots = n, "daily readiness snapshots taken");
                }
                until_next_day(Utc::now())
            }
            Err(e) => {
                tracing::warn!(error = %e, "daily readiness snapshots incomplete; retrying");
                DAILY_RETRY.min(until_next_day(Utc::now()))
            }
        };
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

impl From<&Snapshot> for SnapshotPoint {
    fn from(s: &Snapshot) -> Self {
        SnapshotPoint {
            taken_at: s.taken_at,
            trigger: s.trigger,
            score: s.overall_score,
            percent: s.overall_percent,
            breakdown: None,
        }
    }
}

/// One point of a history: overall, or one framework's with its requirement counts.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SnapshotPoint {
    pub taken_at: DateTime<Utc>,
    pub trigger: SnapshotTrigger,
    pub score: Option<u8>,
    pub percent: Option<f64>,
    /// Per-framework points: the requirement counts; overall points: every framework's score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<serde_json::Value>,
}

/// The points of a history for the whole organisation (`framework` = `None`) or one
/// framework (snapshots taken while it was not adopted are left out).
pub fn points(history: &[Snapshot], framework: Option<&str>) -> Vec<SnapshotPoint> {
    history
        .iter()
        .filter_map(|s| match framework {
            None => {
                let mut p = SnapshotPoint::from(s);
                p.breakdown = Some(serde_json::json!({ "frameworks": s.frameworks }));
                Some(p)
            }
            Some(key) => s
                .frameworks
                .iter()
                .find(|f| f.framework == key)
                .map(|f| SnapshotPoint {
                    taken_at: s.taken_at,
                    trigger: s.trigger,
                    score: f.score,
                    percent: f.percent,
                    breakdown: Some(serde_json::json!({
                        "met": f.met,
                        "partial": f.partial,
                        "missing": f.missing,
                        "not_applicable": f.not_applicable,
                    })),
                }),
        })
        .collect()
}

/// How the score moved over the points: first and last scored point, and the change in
/// percentage points (exact, not rounded scores).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Trend {
    pub from: Option<f64>,
    pub to: Option<f64>,
    /// `to - from`, rounded to 0.01; `None` with fewer than two scored points.
    pub change: Option<f64>,
    /// `up`, `down`, `flat`, or `none` (not enough points).
    pub direction: &'static str,
}

pub fn trend(points: &[SnapshotPoint]) -> Trend {
    let mut scored = points.iter().filter_map(|p| p.percent);
    let from = scored.next();
    let to = scored.next_back();
    let change = match (from, to) {
        (Some(a), Some(b)) => Some(((b - a) * 100.0).round() / 100.0),
        _ => None,
    };
    let direction = match change {
        None => "none",
        Some(c) if c > 0.0 => "up",
        Some(c) if c < 0.0 => "down",
        Some(_) => "flat",
    };
    Trend {
        from,
        to: to.or(from),
        change,
        direction,
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only this framework's score (its snapshots while adopted); overall when absent.
    pub framework: Option<String>,
    /// Only snapshots taken at or after this time (RFC 3339, or a `YYYY-MM-DD` UTC day).
    pub since: Option<String>,
    /// At most this many points, the most recent (1..=1000, default 100).
    pub limit: Option<u64>,
}

fn parse_since(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/readiness/history",
    operation_id = "readiness_history",
    tag = "compliance",
    summary = "Readiness snapshots over time, overall or for one framework, with the trend over the window (needs `frameworks.read`)",
    params(crate::openapi::OrgIdParam, HistoryQuery),
    security(("bearer_jwt" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Points oldest first (`taken_at`, `trigger`, `score`, `percent`, `breakdown`) and `trend` (`from`, `to`, `change`, `direction`)"),
        (status = 422, description = "A query parameter is invalid", body = crate::openapi::ErrorResponse),
    )
)]
pub async fn history(
    axum::extract::State(state): axum::extract::State<AppState>,
    access: RequirePermission<perm::FrameworksRead>,
    axum::extract::Query(q): axum::extract::Query<HistoryQuery>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    let since = match q.since.as_deref() {
        Some(text) => Some(parse_since(text).ok_or_else(|| {
            invalid_field("since", "must be an RFC 3339 time or a YYYY-MM-DD day")
        })?),
        None => None,
    };
    let history = snapshots::history(state.db().primary(), &access.ctx, since, limit).await?;
    if let Some(key) = &q.framework {
        // A framework whose pack has since been deleted still has its past points.
        let in_history = history
            .iter()
            .any(|s| s.frameworks.iter().any(|f| f.framework == *key));
        if !in_history
            && state
                .catalogues()
                .for_org(&access.ctx)
                .await?
                .framework(key)
                .is_none()
        {
            return Err(invalid_field("framework", "is not a known framework key"));
        }
    }
    let points = points(&history, q.framework.as_deref());
    let trend = trend(&points);
    Ok(axum::Json(serde_json::json!({
        "framework": q.framework,
        "since": since,
        "points": points,
        "trend": trend,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn snap(percent: Option<f64>, fw: &[(&str, f64)]) -> Snapshot {
        Snapshot {
            id: uuid::Uuid::now_v7(),
            taken_at: Utc::now(),
            trigger: SnapshotTrigger::Change,
            overall_score: percent.map(|p| p as u8),
            overall_percent: percent,
            frameworks: fw
                .iter()
                .map(|(k, p)| FrameworkScore {
                    framework: (*k).to_owned(),
                    score: Some(*p as u8),
                    percent: Some(*p),
                    met: 1,
                    partial: 0,
                    missing: 1,
                    not_applicable: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn the_trend_is_the_change_between_the_first_and_last_scored_points() {
        let history = [
            snap(None, &[]),
            snap(Some(10.0), &[("ce", 10.0)]),
            snap(Some(25.5), &[("ce", 20.0), ("soc2", 31.0)]),
            snap(Some(12.25), &[("soc2", 24.5)]),
        ];
        let overall = points(&history, None);
        assert_eq!(overall.len(), 4);
        let t = trend(&overall);
        assert_eq!(
            (t.from, t.to, t.change, t.direction),
            (Some(10.0), Some(12.25), Some(2.25), "up")
        );
        // A framework's history has only the snapshots taken while it was adopted.
        let soc2 = points(&history, Some("soc2"));
        assert_eq!(soc2.len(), 2);
        assert_eq!(soc2[0].breakdown.as_ref().unwrap()["met"], 1);
        let t = trend(&soc2);
        assert_eq!((t.change, t.direction), (Some(-6.5), "down"));
        let one = trend(&points(&history[..2], None));
        assert_eq!(
            (one.from, one.to, one.change, one.direction),
            (Some(10.0), Some(10.0), None, "none")
        );
        assert_eq!(
            trend(&points(&history[1..3], Some("ce"))).change,
            Some(10.0)
        );
        assert!(points(&history, Some("gdpr")).is_empty());
    }

    #[test]
    fn the_daily_task_wakes_just_after_utc_midnight() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 23, 59, 0).unwrap();
        assert_eq!(until_next_day(now), Duration::from_secs(61));
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 1).unwrap();
        assert_eq!(until_next_day(now), Duration::from_secs(86_400));
    }
}
