//! Two-layer cache: in-process (moka) and Redis when configured.
