//! HTTP routes, one module per area.

pub mod ai;
pub mod ai_tasks;
pub mod api_keys;
pub mod assessments;
pub mod audit;
pub mod auth;
pub mod compliance;
pub mod export;
pub mod health;
pub mod imports;
pub mod openai_compat;
pub mod orgs;
pub mod posture;
