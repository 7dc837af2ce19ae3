//! HTTP routes, one module per area.

pub mod health;
