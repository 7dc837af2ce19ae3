//! assay-safety
