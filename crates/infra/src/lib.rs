//! assay-infra
