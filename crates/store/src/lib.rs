//! assay-store
