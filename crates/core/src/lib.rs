//! assay-core
