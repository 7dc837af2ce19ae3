//! SeaORM entities: one module per table. Only the store crate sees these; other crates get
//! the domain records from `repo`.

pub mod ai_conversation;
pub mod ai_message;
pub mod ai_safety_review;
pub mod ai_usage;
pub mod api_key;
pub mod assessment;
pub mod assessment_answer;
pub mod audit_chain_head;
pub mod audit_event;
pub mod auth_session;
pub mod business_profile;
pub mod evidence_classification;
pub mod imported_framework;
pub mod invitation;
pub mod login_failure;
pub mod membership;
pub mod org_ai_settings;
pub mod org_control;
pub mod org_framework;
pub mod organisation;
pub mod readiness_snapshot;
pub mod refresh_token;
pub mod user;
