//! Per-account login back-off: the first few failures are free, then each further failure
//! locks the account for twice as long as the one before, up to a cap.
//!
//! The state (consecutive failures, time of the last one) belongs with the account in the
//! store, so every API node sees it; this module is only the rule. A success resets the
//! count. The same answer and delay are given whether or not the account exists, so the
//! caller should keep this state for unknown e-mails too (or apply only the per-IP limit
//! to them) to avoid telling the two apart.

use std::time::Duration;

/// The back-off rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginBackoff {
    /// Failures allowed before the first lock.
    pub free_failures: u32,
    /// Lock after the first failure beyond the free ones; doubles with each further one.
    pub first_lock: Duration,
    /// Longest lock.
    pub max_lock: Duration,
}

impl Default for LoginBackoff {
    /// Lock after 5 failures: 30 s, 1 min, 2 min, 4 min, 8 min, then 15 min at most.
    fn default() -> Self {
        Self {
            free_failures: 4,
            first_lock: Duration::from_secs(30),
            max_lock: Duration::from_secs(15 * 60),
        }
    }
}

impl LoginBackoff {
    /// How long the account is locked after `consecutive_failures` failures (counted
    /// including the one just made); `None` when it is not locked.
    pub fn lock_after(&self, consecutive_failures: u32) -> Option<Duration> {
        let over = consecutive_failures.checked_sub(self.free_failures)?;
        let doublings = over.checked_sub(1)?;
        let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
        Some(self.first_lock.saturating_mul(factor).min(self.max_lock))
    }

    /// How long a login attempt must still wait, given the failures so far and the time
    /// elapsed since the last one; `None` when an attempt may be made now.
    pub fn retry_after(
        &self,
        consecutive_failures: u32,
        since_last_failure: Duration,
    ) -> Option<Duration> {
        let lock = self.lock_after(consecutive_failures)?;
        lock.checked_sub(since_last_failure)
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_five_failures_doubling_up_to_fifteen_minutes() {
        let b = LoginBackoff::default();
        for n in 0..=4 {
            assert_eq!(b.lock_after(n), None, "{n} failures");
        }
        let locks: Vec<u64> = (5..=12)
            .map(|n| b.lock_after(n).unwrap().as_secs())
            .collect();
        assert_eq!(locks, vec![30, 60, 120, 240, 480, 900, 900, 900]);
        assert_eq!(b.lock_after(u32::MAX), Some(Duration::from_secs(900)));
    }

    #[test]
    fn retry_after_counts_down_from_the_last_failure() {
        let b = LoginBackoff::default();
        assert_eq!(b.retry_after(3, Duration::ZERO), None);
        assert_eq!(
            b.retry_after(5, Duration::from_secs(10)),
            Some(Duration::from_secs(20))
        );
        assert_eq!(b.retry_after(5, Duration::from_secs(30)), None);
        assert_eq!(
            b.retry_after(6, Duration::from_secs(45)),
            Some(Duration::from_secs(15))
        );
    }
}
