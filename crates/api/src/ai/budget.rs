//! Organisation monthly AI budgets: spend this UTC month from the usage ledger, plus
//! what calls running in this process are estimated to cost, against the organisation's
//! budget (its own setting, or the deployment default). At `budget_warning_ratio` the answer
//! says so and `ai.budget.warning` is audited once a month; at 100 % calls stop with
//! `ai_budget_exceeded`.
//!
//! The recorded spend is the ledger's monthly total for the organisation (one row, kept by
//! the ledger's batches), reused for `ai_limits.spend_cache_ms` (one read per organisation
//! per interval, not per call, made in the background once the value is half that old, so
//! calls do not wait for it). The ledger is written in batches shortly after each call, so
//! a finished call's real cost stays counted in-process until a fresh read surely includes
//! its row (cache lifetime + 2 s): counted twice for a moment, never zero times. In-flight
//! estimates are per process: several nodes can together overshoot by at most the calls
//! they have in flight at the moment the budget runs out.

use super::errors::AiApiError;
use assay_core::OrgId;
use assay_infra::refresh::RefreshingCache;
use assay_store::Db;
use assay_store::repo::ai_usage;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after a call the ledger surely has its row (batched writes, a slow database).
const LEDGER_LAG: Duration = Duration::from_secs(2);

/// Where an organisation stands against its budget, as answers report it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BudgetStatus {
    pub limit_usd: f64,
    /// Recorded spend this month plus in-flight estimates, before this call.
    pub spent_usd: f64,
    /// `spent / limit` (1.0 when the limit is 0).
    pub used_ratio: f64,
    /// At or past the warning threshold.
    pub warning: bool,
}

impl BudgetStatus {
    /// `X-AI-Budget-Used` header value: the used share with two decimals.
    pub fn header_value(&self) -> String {
        format!("{:.2}", self.used_ratio)
    }
}

/// Start of the current UTC month, and of the next (when the budget resets).
pub fn month_bounds(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let next = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    (start, next)
}

/// `YYYY-MM` of `now`, the key of the once-a-month warning.
pub fn month_key(now: DateTime<Utc>) -> String {
    now.format("%Y-%m").to_string()
}

/// In-process amounts per organisation not yet in the ledger, and recent ledger reads.
#[derive(Clone)]
pub struct Budgets {
    pending: Arc<Mutex<HashMap<OrgId, f64>>>,
    /// Finished calls' costs still counted in `pending`, oldest first, with when to stop
    /// counting them: dropped lazily on the next read (no timer task per call).
    expiring: Arc<Mutex<VecDeque<(Instant, OrgId, f64)>>>,
    recorded: Option<RefreshingCache<OrgId, f64>>,
    /// How long a finished call's cost stays counted in-process.
    hold: Duration,
}

impl Default for Budgets {
    fn default() -> Self {
        Self::new(Duration::ZERO)
    }
}

/// An estimate held for a running call; released when settled or dropped.
pub struct Reservation {
    budgets: Budgets,
    org: OrgId,
    estimate: f64,
    settled: bool,
}

impl Reservation {
    /// The call finished and cost `actual_usd`: drop the estimate now and keep the real
    /// cost counted until the ledger surely has it.
    pub fn settle(mut self, actual_usd: f64) {
        self.settled = true;
        self.budgets.add(self.org, actual_usd - self.estimate);
        if actual_usd > 0.0 {
            let until = Instant::now() + self.budgets.hold;
            self.budgets
                .expiring
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_back((until, self.org, actual_usd));
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.budgets.add(self.org, -self.estimate);
        }
    }
}

impl Budgets {
    /// Reuse an organisation's recorded spend for `cache` (zero: read it every time).
    pub fn new(cache: Duration) -> Self {
        Self {
            pending: Arc::default(),
            expiring: Arc::default(),
            recorded: (!cache.is_zero())
                .then(|| RefreshingCache::new("ai_recorded_spend", cache, 100_000)),
            hold: cache + LEDGER_LAG,
        }
    }

    /// The month's recorded spend: one row of the ledger's monthly totals.
    async fn recorded(&self, db: &Db, org: OrgId, now: DateTime<Utc>) -> Result<f64, AiApiError> {
        match &self.recorded {
            Some(cache) => {
                let read = || {
                    let db = db.clone();
                    move || async move {
                        ai_usage::org_spend_in_month(db.primary(), org, Utc::now()).await
                    }
                };
                Ok(cache
                    .get(&org, read)
                    .await
                    .map_err(|e| AiApiError::Api(shared_store_error(&e)))?)
            }
            None => Ok(ai_usage::org_spend_in_month(db.primary(), org, now).await?),
        }
    }

    fn add(&self, org: OrgId, delta: f64) {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let v = map.entry(org).or_insert(0.0);
        *v += delta;
        if v.abs() < 1e-12 {
            map.remove(&org);
        }
    }

    /// Stop counting finished calls whose cost the ledger surely has by now.
    fn drop_expired(&self) {
        let now = Instant::now();
        let mut expiring = self.expiring.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(&(until, org, usd)) = expiring.front() {
            if until > now {
                break;
            }
            expiring.pop_front();
            self.add(org, -usd);
        }
    }

    fn pending(&self, org: OrgId) -> f64 {
        self.drop_expired();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&org)
            .copied()
            .unwrap_or(0.0)
            .max(0.0)
    }

    /// Check the budget and hold `estimate_usd` for the call. Refuses once recorded spend
    /// plus in-flight estimates reach the limit.
    pub async fn reserve(
        &self,
        db: &Db,
        org: OrgId,
        limit_usd: f64,
        warning_ratio: f64,
        estimate_usd: f64,
    ) -> Result<(BudgetStatus, Reservation), AiApiError> {
        let now = Utc::now();
        let (_, next) = month_bounds(now);
        let recorded = self.recorded(db, org, now).await?;
        let spent = recorded + self.pending(org);
        if spent >= limit_usd {
            return Err(AiApiError::BudgetExceeded {
                limit_usd,
                spent_usd: spent,
                resets_at: next,
            });
        }
        let used_ratio = if limit_usd > 0.0 {
            spent / limit_usd
        } else {
            1.0
        };
        let estimate = estimate_usd.max(0.0);
        self.add(org, estimate);
        Ok((
            BudgetStatus {
                limit_usd,
                spent_usd: spent,
                used_ratio,
                warning: (spent + estimate) / limit_usd >= warning_ratio,
            },
            Reservation {
                budgets: self.clone(),
                org,
                estimate,
                settled: false,
            },
        ))
    }
}

/// A store error shared by the callers of one cache load, as the API shows it.
pub(crate) fn shared_store_error(e: &assay_store::StoreError) -> crate::error::ApiError {
    if e.is_unavailable() {
        crate::error::ApiError::unavailable("the database is temporarily unavailable")
    } else {
        crate::error::ApiError::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds_roll_over_the_year() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 0).unwrap();
        let (s, n) = month_bounds(t);
        assert_eq!(s, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(n, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(month_key(t), "2026-12");
    }

    #[tokio::test]
    async fn reservations_count_until_settled_or_dropped() {
        let b = Budgets::default();
        let org = OrgId::new();
        b.add(org, 0.5);
        assert!((b.pending(org) - 0.5).abs() < 1e-12);
        let r = Reservation {
            budgets: b.clone(),
            org,
            estimate: 0.25,
            settled: false,
        };
        b.add(org, 0.25);
        drop(r);
        assert!((b.pending(org) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_settled_cost_counts_until_the_ledger_surely_has_it() {
        let b = Budgets {
            hold: Duration::from_millis(50),
            ..Budgets::default()
        };
        let org = OrgId::new();
        b.add(org, 0.1);
        let r = Reservation {
            budgets: b.clone(),
            org,
            estimate: 0.1,
            settled: false,
        };
        r.settle(0.3);
        assert!((b.pending(org) - 0.3).abs() < 1e-12);
        std::thread::sleep(Duration::from_millis(80));
        assert!(b.pending(org).abs() < 1e-12, "{}", b.pending(org));
    }
}
