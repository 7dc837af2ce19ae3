//! assay-ai
