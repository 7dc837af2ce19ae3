//! assay-api
