//! Token revocation store: in-process or Redis, so every API node sees a logout.
