//! SeaORM entities: one module per table. Only the store crate sees these; other crates get
//! the domain records from `repo`.

pub mod audit_chain_head;
pub mod audit_event;
pub mod membership;
pub mod organisation;
pub mod user;
