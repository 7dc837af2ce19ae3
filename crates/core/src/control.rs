//! An organisation's implementation state of one common control.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an organisation stands on a control. `NotApplicable` needs a written justification
/// (enforced where the status is set) and takes the control's requirements out of scoring
/// only when every control covering them is not applicable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ControlStatus {
    #[default]
    NotStarted,
    InProgress,
    Implemented,
    NotApplicable,
}

impl ControlStatus {
    pub const ALL: [ControlStatus; 4] = [
        ControlStatus::NotStarted,
        ControlStatus::InProgress,
        ControlStatus::Implemented,
        ControlStatus::NotApplicable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ControlStatus::NotStarted => "not_started",
            ControlStatus::InProgress => "in_progress",
            ControlStatus::Implemented => "implemented",
            ControlStatus::NotApplicable => "not_applicable",
        }
    }
}

impl fmt::Display for ControlStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown control status '{0}' (expected not_started, in_progress, implemented or not_applicable)"
)]
pub struct UnknownStatus(pub String);

impl FromStr for ControlStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ControlStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}
