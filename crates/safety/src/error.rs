//! Errors of the safety crate.
//!
//! Policy: scanning itself never fails (any `&str` is scannable); errors only come from
//! configuration (bad names or sizes) and are reported in the crate's own terms.

/// What went wrong while configuring the safety manager.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetyError {
    #[error("unknown safety rule id '{0}'")]
    UnknownRule(String),
    #[error("unknown safety profile '{0}' (expected permissive, standard or strict)")]
    UnknownProfile(String),
    #[error("stream window must be between {min} and {max} bytes, got {got}")]
    InvalidWindow { got: usize, min: usize, max: usize },
}
