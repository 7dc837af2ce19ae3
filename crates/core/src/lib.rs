//! Assay's domain: identifiers, tenancy scope, roles and permissions, the compliance
//! catalogue model and the rules that score it. Pure code: no I/O, no async, so every rule
//! here is unit-testable and shared by the API, the workers and the CLI.

pub mod access;
pub mod assessment;
pub mod catalogue;
pub mod control;
pub mod ids;
pub mod password;
pub mod profile;
pub mod readiness;
pub mod tenancy;

pub use access::Role;
pub use control::ControlStatus;
pub use ids::{OrgId, UserId};
pub use tenancy::OrgCtx;
