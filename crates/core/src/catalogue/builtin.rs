//! The packs shipped inside the binary (B-5): the files in the repository's `frameworks/`
//! folder, embedded at compile time and read once on first use.

use std::sync::LazyLock;

use super::index::Catalogue;

/// `(file name, contents)` of every built-in document, frameworks first.
pub const BUILTIN_DOCUMENTS: &[(&str, &str)] = &[
    (
        "nist-csf-2.0.yaml",
        include_str!("../../../../frameworks/nist-csf-2.0.yaml"),
    ),
    (
        "iso-27001-2022.yaml",
        include_str!("../../../../frameworks/iso-27001-2022.yaml"),
    ),
    (
        "uk-cyber-essentials.yaml",
        include_str!("../../../../frameworks/uk-cyber-essentials.yaml"),
    ),
    (
        "uk-gdpr.yaml",
        include_str!("../../../../frameworks/uk-gdpr.yaml"),
    ),
    (
        "soc2-tsc.yaml",
        include_str!("../../../../frameworks/soc2-tsc.yaml"),
    ),
    (
        "controls.yaml",
        include_str!("../../../../frameworks/controls.yaml"),
    ),
    (
        "mappings.yaml",
        include_str!("../../../../frameworks/mappings.yaml"),
    ),
];

static BUILTIN: LazyLock<Catalogue> = LazyLock::new(|| {
    // The files are part of the source tree and checked by the test suite, so a failure
    // here is a build defect, not a runtime condition a caller could handle.
    Catalogue::from_documents(BUILTIN_DOCUMENTS.iter().copied())
        .unwrap_or_else(|e| panic!("built-in catalogue is invalid: {e}"))
});

/// The built-in catalogue: all shipped frameworks, the default control library and the
/// cross-framework mappings.
pub fn builtin() -> &'static Catalogue {
    &BUILTIN
}
