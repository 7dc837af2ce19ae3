//! Imported packs as they are kept: whatever format a framework arrived in (OSCAL, Prowler,
//! YAML), storage keeps it as an Assay YAML pack, so one reader reloads every stored pack and
//! an export of an imported framework is byte-for-byte what was stored. Format-specific extras
//! that a pack cannot express (Prowler's check ids) are kept beside it.
//!
//! [`prepare_pack`] is the one gate an upload passes through (CLI and API alike): read and
//! check the document, settle the framework key, serialise canonically and prove that the
//! serialisation reads back to the same framework before anything is written.

use std::collections::BTreeMap;

use super::error::{CatalogueError, Problem, ProblemKind};
use super::export::framework_to_yaml;
use super::import::{Format, ImportOptions, import_document};
use super::model::Framework;
use super::pack::parse_framework;
use super::prowler::ProwlerCheck;
use super::reader::is_valid_key;

/// Longest framework key that can be stored (adoption records keep keys in 64 characters).
pub const MAX_KEY_LEN: usize = 64;

/// Keys that cannot name a framework because they are path segments of their own in the
/// API (`/orgs/{org_id}/frameworks/imports` sits beside `/orgs/{org_id}/frameworks/{key}`).
pub const RESERVED_KEYS: &[&str] = &["imports", "import"];

/// A framework ready to be stored: checked, keyed, and serialised canonically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedPack {
    pub format: Format,
    pub framework: Framework,
    /// Prowler check ids per requirement ref (empty for other formats).
    pub checks: BTreeMap<String, Vec<ProwlerCheck>>,
    /// The framework as an `assay.framework.v1` document: what storage keeps.
    pub pack_yaml: String,
}

/// Read an uploaded document into a pack that can be stored. Every problem is reported with
/// its path in the document (`catalog.groups[2].controls[0].id`, `Requirements[3].Id`...);
/// problems with the key itself are reported at `key` when the caller chose it and at
/// `framework.key` otherwise.
///
/// `options.key` overrides the key for every format (the importers of OSCAL and Prowler
/// honour it themselves; a YAML pack's own key is replaced here). A key derived from free
/// text (an OSCAL title, a Prowler file name) that is too long is shortened at a `-`; a key
/// someone wrote is never changed behind their back and is refused instead.
pub fn prepare_pack(
    bytes: &[u8],
    format: Option<Format>,
    options: &ImportOptions,
) -> Result<PreparedPack, CatalogueError> {
    let document = options.document.as_str();
    if let Some(key) = &options.key
        && let Some(kind) = key_problem(key)
    {
        return Err(CatalogueError {
            problems: vec![Problem::new(document, "key", kind)],
        });
    }
    let imported = import_document(bytes, format, options)?;
    let mut framework = imported.framework;
    match &options.key {
        Some(key) => framework.key.clone_from(key),
        None if imported.format != Format::Yaml => framework.key = shorten(&framework.key),
        None => {}
    }
    if let Some(kind) = key_problem(&framework.key) {
        let path = if options.key.is_some() {
            "key"
        } else {
            "framework.key"
        };
        return Err(CatalogueError {
            problems: vec![Problem::new(document, path, kind)],
        });
    }
    let pack_yaml = framework_to_yaml(&framework);
    // The exporter promises an exact round trip; storing something that reloads differently
    // would silently change a customer's framework, so the promise is checked every time.
    match parse_framework(document, &pack_yaml) {
        Ok(reread) if reread == framework => {}
        Ok(_) | Err(_) => {
            return Err(CatalogueError {
                problems: vec![Problem::new(document, "", ProblemKind::NotStorable)],
            });
        }
    }
    Ok(PreparedPack {
        format: imported.format,
        framework,
        checks: imported.checks,
        pack_yaml,
    })
}

/// Reload a pack written by [`prepare_pack`]; `document` names it in problems.
pub fn read_stored_pack(document: &str, pack_yaml: &str) -> Result<Framework, CatalogueError> {
    parse_framework(document, pack_yaml)
}

fn key_problem(key: &str) -> Option<ProblemKind> {
    if !is_valid_key(key) {
        Some(ProblemKind::InvalidKey {
            value: key.to_owned(),
        })
    } else if key.len() > MAX_KEY_LEN {
        Some(ProblemKind::TooLong {
            max: MAX_KEY_LEN,
            found: key.len(),
        })
    } else if RESERVED_KEYS.contains(&key) {
        Some(ProblemKind::ReservedKey {
            value: key.to_owned(),
        })
    } else {
        None
    }
}

/// A derived key cut to [`MAX_KEY_LEN`], at the last `-` that keeps it meaningful.
fn shorten(key: &str) -> String {
    if key.len() <= MAX_KEY_LEN {
        return key.to_owned();
    }
    // Keys are ASCII (checked by the importers), so byte positions are character positions.
    let head = &key[..MAX_KEY_LEN];
    let cut = head.rfind('-').filter(|&i| i >= MAX_KEY_LEN / 2);
    head[..cut.unwrap_or(MAX_KEY_LEN)]
        .trim_end_matches(['-', '.', '_'])
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACK: &str = r#"
format: assay.framework.v1
framework:
  key: acme-baseline
  name: ACME Baseline
  version: "1.0"
  publisher: ACME
  licence: { id: CC-BY-4.0, name: Creative Commons Attribution 4.0 }
  provenance: { source: ACME baseline v1 }
  description: A small baseline.
requirements:
  - { ref: AC, title: Access, description: Access control. }
  - { ref: AC-1, parent: AC, title: MFA, description: Every sign-in uses MFA. }
"#;

    #[test]
    fn a_yaml_pack_is_stored_canonically_and_reloads_identically() {
        let pack = prepare_pack(PACK.as_bytes(), None, &ImportOptions::named("acme.yaml")).unwrap();
        assert_eq!(pack.format, Format::Yaml);
        assert_eq!(pack.framework.key, "acme-baseline");
        let reloaded = read_stored_pack("stored", &pack.pack_yaml).unwrap();
        assert_eq!(reloaded, pack.framework);
    }

    #[test]
    fn the_callers_key_replaces_the_packs_own() {
        let options = ImportOptions {
            key: Some("acme-v2".into()),
            ..ImportOptions::named("acme.yaml")
        };
        let pack = prepare_pack(PACK.as_bytes(), None, &options).unwrap();
        assert_eq!(pack.framework.key, "acme-v2");
        assert!(pack.pack_yaml.contains("key: acme-v2"));
    }

    #[test]
    fn bad_or_reserved_keys_are_refused_at_their_path() {
        for (key, path) in [("Not A Key", "key"), ("imports", "key")] {
            let options = ImportOptions {
                key: Some(key.into()),
                ..ImportOptions::named("acme.yaml")
            };
            let err = prepare_pack(PACK.as_bytes(), None, &options).unwrap_err();
            assert!(err.has_path(path), "{key}: {err}");
        }
        let long = PACK.replace("acme-baseline", &"a".repeat(MAX_KEY_LEN + 1));
        let err = prepare_pack(long.as_bytes(), None, &ImportOptions::named("x")).unwrap_err();
        assert!(err.has_path("framework.key"), "{err}");
    }

    #[test]
    fn derived_keys_are_shortened_at_a_word_boundary() {
        let long = "nist-special-publication-800-53-revision-5-security-and-privacy-controls-for-information-systems";
        let short = shorten(long);
        assert!(short.len() <= MAX_KEY_LEN, "{short}");
        assert!(long.starts_with(&short) && !short.ends_with('-'), "{short}");
        assert_eq!(shorten("short-key"), "short-key");
    }

    #[test]
    fn imported_frameworks_extend_a_catalogue_without_replacing_anything() {
        let base = crate::catalogue::builtin();
        let acme = prepare_pack(PACK.as_bytes(), None, &ImportOptions::named("a.yaml"))
            .unwrap()
            .framework;
        let mut clash = acme.clone();
        clash.key = "nist-csf".into();
        let mut broken = acme.clone();
        broken.key = "broken".into();
        broken.requirements[1].parent = Some("NOPE".into());
        let extended = base.with_frameworks([acme.clone(), clash, broken, acme.clone()]);
        let keys: Vec<&str> = extended
            .catalogue
            .frameworks()
            .iter()
            .map(|f| f.key.as_str())
            .collect();
        assert_eq!(keys.len(), base.frameworks().len() + 1, "{keys:?}");
        assert_eq!(extended.catalogue.framework("acme-baseline"), Some(&acme));
        assert!(
            extended
                .catalogue
                .requirement("acme-baseline", "AC-1")
                .is_some()
        );
        // The built-in CSF is untouched; the clash, the broken pack and the repeat are skipped.
        assert_eq!(
            extended.catalogue.framework("nist-csf"),
            base.framework("nist-csf")
        );
        assert_eq!(extended.catalogue.controls().len(), base.controls().len());
        let skipped: Vec<&str> = extended
            .skipped
            .iter()
            .map(|p| p.document.as_str())
            .collect();
        assert!(skipped.contains(&"framework nist-csf"), "{skipped:?}");
        assert!(skipped.contains(&"framework broken"), "{skipped:?}");
        assert!(skipped.contains(&"framework acme-baseline"), "{skipped:?}");
        assert!(base.framework("acme-baseline").is_none());
    }

    #[test]
    fn invalid_documents_report_their_paths_and_yield_nothing() {
        let broken = PACK.replace("parent: AC,", "parent: NOPE,");
        let err =
            prepare_pack(broken.as_bytes(), None, &ImportOptions::named("a.yaml")).unwrap_err();
        assert!(err.has_path("requirements[1].parent"), "{err}");
    }
}
