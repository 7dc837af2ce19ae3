//! `[readiness]`: when readiness snapshots (the score history, R-27) are taken.
//!
//! A change to an organisation's posture marks it dirty; one snapshot is written once no
//! further change has arrived for `snapshot_quiet_ms` (so a bulk update of 50 controls
//! writes one snapshot), and at the latest `snapshot_max_delay_ms` after the first change
//! of a burst, so a steady stream of changes cannot postpone the snapshot for ever. Once a
//! day (UTC) every organisation with an adopted framework gets a daily snapshot; a starting
//! node takes today's where it is missing.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadinessConfig {
    /// Quiet period after the last change before the change snapshot is written.
    pub snapshot_quiet_ms: u64,
    /// Longest a change waits for its snapshot while changes keep arriving.
    pub snapshot_max_delay_ms: u64,
    /// Take a daily snapshot of every organisation with an adopted framework.
    pub daily_snapshots: bool,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            snapshot_quiet_ms: 2_000,
            snapshot_max_delay_ms: 30_000,
            daily_snapshots: true,
        }
    }
}
