//! Integrity of the built-in catalogue (what auditors check: identifiers, counts, coverage,
//! licence on every requirement) and the reader's error reporting on bad documents.

use std::collections::HashSet;

use super::*;

fn framework(key: &str) -> &'static Framework {
    builtin()
        .framework(key)
        .unwrap_or_else(|| panic!("built-in framework {key} missing"))
}

/// Assessable requirements anywhere below `ref_id`.
fn assessable_under(f: &Framework, ref_id: &str) -> Vec<String> {
    f.descendants(ref_id)
        .into_iter()
        .filter(|r| r.assessable)
        .map(|r| r.ref_id.clone())
        .collect()
}

#[test]
fn every_builtin_document_loads_and_validates() {
    for (name, text) in BUILTIN_DOCUMENTS {
        if let Err(e) = parse_document(name, text) {
            panic!("{e}");
        }
    }
    if let Err(e) = Catalogue::from_documents(BUILTIN_DOCUMENTS.iter().copied()) {
        panic!("{e}");
    }
    let keys: Vec<_> = builtin()
        .frameworks()
        .iter()
        .map(|f| f.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "nist-csf",
            "iso27001",
            "cyber-essentials",
            "uk-gdpr",
            "soc2"
        ]
    );
}

#[test]
fn nist_csf_has_6_functions_22_categories_106_subcategories() {
    let csf = framework("nist-csf");
    let functions: Vec<_> = csf
        .children(None)
        .iter()
        .map(|r| r.ref_id.clone())
        .collect();
    assert_eq!(functions, ["GV", "ID", "PR", "DE", "RS", "RC"]);
    let categories: Vec<_> = functions
        .iter()
        .flat_map(|f| csf.children(Some(f)))
        .collect();
    assert_eq!(categories.len(), 22);
    let subcategories: Vec<_> = csf.assessable().collect();
    assert_eq!(subcategories.len(), 106);
    // Every subcategory sits under a category and is named after it (GV.OC-01 under GV.OC).
    for s in &subcategories {
        let parent = s.parent.as_deref().expect("subcategory has a parent");
        assert!(s.ref_id.starts_with(&format!("{parent}-")), "{}", s.ref_id);
    }
    let per_function: Vec<usize> = functions
        .iter()
        .map(|f| assessable_under(csf, f).len())
        .collect();
    assert_eq!(per_function, [31, 21, 22, 11, 13, 8]);
    for id in [
        "GV.OC-01", "GV.SC-10", "ID.AM-08", "PR.DS-11", "DE.AE-08", "RS.AN-08", "RC.CO-04",
    ] {
        assert!(csf.requirement(id).is_some_and(|r| r.assessable), "{id}");
    }
    // Withdrawn in 2.0: must not reappear.
    for id in ["ID.AM-06", "PR.DS-03", "DE.CM-04", "RS.CO-01"] {
        assert!(csf.requirement(id).is_none(), "{id}");
    }
}

#[test]
fn iso27001_has_clauses_4_to_10_and_93_annex_a_controls() {
    let iso = framework("iso27001");
    let clauses: Vec<_> = iso
        .children(None)
        .iter()
        .map(|r| r.ref_id.clone())
        .collect();
    assert_eq!(clauses, ["4", "5", "6", "7", "8", "9", "10", "A"]);
    let themes: Vec<_> = iso
        .children(Some("A"))
        .iter()
        .map(|r| r.ref_id.clone())
        .collect();
    assert_eq!(themes, ["A.5", "A.6", "A.7", "A.8"]);
    let counts: Vec<usize> = themes
        .iter()
        .map(|t| assessable_under(iso, t).len())
        .collect();
    assert_eq!(counts, [37, 8, 14, 34]);
    assert_eq!(assessable_under(iso, "A").len(), 93);
    for (theme, n) in themes.iter().zip(counts) {
        for i in 1..=n {
            let id = format!("{theme}.{i}");
            assert!(iso.requirement(&id).is_some_and(|r| r.assessable), "{id}");
        }
    }
    for id in [
        "4.1", "4.4", "5.3", "6.1.2", "6.1.3", "6.3", "7.5.3", "8.3", "9.2.2", "9.3.3", "10.2",
    ] {
        assert!(iso.requirement(id).is_some_and(|r| r.assessable), "{id}");
    }
}

#[test]
fn soc2_has_33_common_criteria_and_the_other_categories() {
    let soc2 = framework("soc2");
    let common = assessable_under(soc2, "CC");
    assert_eq!(common.len(), 33);
    let expected: Vec<String> = [
        (1, 5),
        (2, 3),
        (3, 4),
        (4, 2),
        (5, 3),
        (6, 8),
        (7, 5),
        (8, 1),
        (9, 2),
    ]
    .iter()
    .flat_map(|&(series, n)| (1..=n).map(move |i| format!("CC{series}.{i}")))
    .collect();
    assert_eq!(common, expected);
    assert_eq!(assessable_under(soc2, "A"), ["A1.1", "A1.2", "A1.3"]);
    assert_eq!(assessable_under(soc2, "C"), ["C1.1", "C1.2"]);
    assert_eq!(assessable_under(soc2, "PI").len(), 5);
    assert_eq!(assessable_under(soc2, "P").len(), 18);
    assert!(
        soc2.licence
            .note
            .as_deref()
            .is_some_and(|n| n.contains("AICPA"))
    );
}

#[test]
fn cyber_essentials_has_the_five_control_themes() {
    let ce = framework("cyber-essentials");
    let themes: Vec<_> = ce.children(None).iter().map(|r| r.title.clone()).collect();
    assert_eq!(
        themes,
        [
            "Firewalls",
            "Secure configuration",
            "Security update management",
            "User access control",
            "Malware protection"
        ]
    );
    for theme in ce.children(None) {
        assert!(
            !assessable_under(ce, &theme.ref_id).is_empty(),
            "{}",
            theme.ref_id
        );
    }
    assert_eq!(ce.licence.id, "OGL-UK-3.0");
}

#[test]
fn uk_gdpr_covers_the_controller_and_processor_obligations() {
    let gdpr = framework("uk-gdpr");
    for article in [
        5, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24, 25, 28, 30, 32, 33, 34, 35, 37,
        38, 39, 44, 45, 46, 47, 48, 49,
    ] {
        let id = format!("Art.{article}");
        assert!(gdpr.requirement(&id).is_some(), "{id}");
    }
    let principles = assessable_under(gdpr, "Art.5");
    assert_eq!(principles.len(), 7, "{principles:?}");
    assert_eq!(gdpr.licence.id, "OGL-UK-3.0");
}

#[test]
fn every_requirement_carries_licence_and_provenance() {
    for f in builtin().frameworks() {
        assert!(!f.requirements.is_empty());
        for r in &f.requirements {
            let at = format!("{}:{}", f.key, r.ref_id);
            assert!(
                !r.licence.id.is_empty() && !r.licence.name.is_empty(),
                "{at}"
            );
            assert!(!r.provenance.source.is_empty(), "{at}");
            assert!(!r.title.is_empty() && !r.description.is_empty(), "{at}");
        }
    }
}

#[test]
fn every_assessable_requirement_is_covered_by_a_common_control() {
    let uncovered = builtin().uncovered_requirements();
    assert!(
        uncovered.is_empty(),
        "{} uncovered: {}",
        uncovered.len(),
        uncovered
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
}

#[test]
fn every_mapping_points_at_a_real_requirement() {
    let catalogue = builtin();
    for m in catalogue.control_mappings() {
        assert!(
            catalogue.requirement_by_ref(&m.requirement).is_some(),
            "{m:?}"
        );
    }
    assert!(catalogue.requirement_mappings().len() >= 30);
    for m in catalogue.requirement_mappings() {
        assert!(catalogue.requirement_by_ref(&m.from).is_some(), "{m:?}");
        assert!(catalogue.requirement_by_ref(&m.to).is_some(), "{m:?}");
        assert_ne!(m.from.framework, m.to.framework, "{m:?}");
    }
}

#[test]
fn control_library_is_complete_and_well_formed() {
    let controls = builtin().controls();
    assert!((80..=120).contains(&controls.len()), "{}", controls.len());
    let mut keys = HashSet::new();
    for c in controls {
        assert!(keys.insert(c.key.as_str()), "duplicate {}", c.key);
        assert!(!c.guidance.is_empty(), "{}", c.key);
        assert!(!c.description.is_empty(), "{}", c.key);
        assert!((1..=2).contains(&c.questions.len()), "{}", c.key);
        assert!(!c.maps_to.is_empty(), "{} maps to nothing", c.key);
        assert!(!c.licence.id.is_empty(), "{}", c.key);
    }
}

#[test]
fn lookups_connect_requirements_and_controls() {
    let catalogue = builtin();
    let mfa = catalogue
        .requirement("nist-csf", "PR.AA-03")
        .expect("PR.AA-03");
    assert_eq!(mfa.parent.as_deref(), Some("PR.AA"));
    assert!(catalogue.requirement("nist-csf", "PR.AA-99").is_none());
    assert!(catalogue.requirement("no-such", "PR.AA-03").is_none());

    let covering = catalogue.controls_for("iso27001", "A.8.5");
    assert!(!covering.is_empty());
    for control in covering {
        let targets = catalogue.requirements_for(&control.key);
        assert!(
            targets
                .iter()
                .any(|(f, r)| f.key == "iso27001" && r.ref_id == "A.8.5")
        );
    }
    assert!(catalogue.requirements_for("NOPE-01").is_empty());
}

#[test]
fn related_reads_mappings_from_both_ends() {
    let catalogue = builtin();
    let m = catalogue.requirement_mappings()[0].clone();
    let forward = catalogue.related(&m.from.framework, &m.from.ref_id);
    assert!(forward.contains(&(m.to.clone(), m.relationship)));
    let backward = catalogue.related(&m.to.framework, &m.to.ref_id);
    assert!(backward.contains(&(m.from.clone(), m.relationship.inverse())));
}

#[test]
fn defaults_make_groups_unassessable_and_order_by_position() {
    let csf = framework("nist-csf");
    let gv = csf.requirement("GV").unwrap();
    assert!(!gv.assessable);
    assert_eq!(gv.order, 1);
    assert_eq!(csf.requirement("RC").unwrap().order, 6);
    assert_eq!(csf.requirement("GV.OC-03").unwrap().order, 3);
    // Inherited from the pack where the requirement does not override it.
    assert_eq!(csf.requirement("GV.OC-03").unwrap().licence, csf.licence);
}

// ------------------------------------------------------------------ bad documents

const HEAD: &str = "format: assay.framework.v1
framework:
  key: demo
  name: Demo
  version: \"1\"
  publisher: Us
  licence: {id: CC0-1.0, name: Creative Commons Zero}
  provenance: {source: Written for tests}
  description: A demo.
";

fn pack(requirements: &str) -> String {
    format!("{HEAD}requirements:\n{requirements}")
}

fn problems(result: Result<impl std::fmt::Debug, CatalogueError>) -> CatalogueError {
    result.expect_err("document should be rejected")
}

#[test]
fn a_valid_small_pack_loads_with_inherited_licence() {
    let text = pack(
        "  - {ref: A, title: Group, description: G.}
  - {ref: A.1, parent: A, title: One, description: D.}
  - {ref: A.2, parent: A, title: Two, description: D., order: 9, licence: {id: MIT, name: MIT}}
",
    );
    let f = parse_framework("demo.yaml", &text).unwrap();
    assert_eq!(f.requirements.len(), 3);
    assert!(!f.requirements[0].assessable);
    assert!(f.requirements[1].assessable);
    assert_eq!(f.requirements[1].licence.id, "CC0-1.0");
    assert_eq!(f.requirements[2].licence.id, "MIT");
    assert_eq!(f.requirements[2].order, 9);
}

#[test]
fn syntax_errors_report_line_and_column() {
    let err = problems(parse_framework("bad.yaml", "format: [unclosed\n"));
    assert_eq!(err.problems.len(), 1);
    let p = &err.problems[0];
    assert_eq!(p.document, "bad.yaml");
    assert!(
        matches!(p.kind, ProblemKind::Syntax { line: Some(_), .. }),
        "{p:?}"
    );
}

#[test]
fn every_structural_problem_is_reported_with_its_path() {
    let text = pack(
        "  - {ref: A, title: Group, description: G.}
  - {ref: A.1, parent: A, title: One, description: D.}
  - {ref: A.1, parent: A, title: Again, description: D.}
  - {ref: B.1, parent: B, title: Orphan, description: D.}
  - {ref: C, parent: D, title: Loop, description: D.}
  - {ref: D, parent: C, title: Loop, description: D.}
  - {ref: E, title: No description}
  - {ref: 4.1, title: Number, description: D.}
  - {ref: F, title: Typo, description: D., assesable: true}
",
    );
    let err = problems(parse_framework("demo.yaml", &text));
    let found: Vec<(&str, &ProblemKind)> = err
        .problems
        .iter()
        .map(|p| (p.path.as_str(), &p.kind))
        .collect();
    assert!(err.has_path("requirements[2].ref"), "{err}");
    assert!(matches!(
        found
            .iter()
            .find(|(p, _)| *p == "requirements[2].ref")
            .unwrap()
            .1,
        ProblemKind::Duplicate { .. }
    ));
    assert!(matches!(
        found
            .iter()
            .find(|(p, _)| *p == "requirements[3].parent")
            .unwrap()
            .1,
        ProblemKind::UnknownParent { .. }
    ));
    let cycles: Vec<_> = err
        .problems
        .iter()
        .filter(|p| matches!(p.kind, ProblemKind::Cycle { .. }))
        .collect();
    assert_eq!(cycles.len(), 1, "{err}");
    assert_eq!(cycles[0].path, "requirements[4].parent");
    assert!(matches!(
        found
            .iter()
            .find(|(p, _)| *p == "requirements[6].description")
            .unwrap()
            .1,
        ProblemKind::Missing
    ));
    assert!(matches!(
        found
            .iter()
            .find(|(p, _)| *p == "requirements[7].ref")
            .unwrap()
            .1,
        ProblemKind::WrongType { .. }
    ));
    assert!(matches!(
        found
            .iter()
            .find(|(p, _)| *p == "requirements[8].assesable")
            .unwrap()
            .1,
        ProblemKind::UnknownField
    ));
    assert_eq!(err.problems.len(), 6, "{err}");
    // The message names document and path so an author can go straight to it.
    assert!(
        err.to_string()
            .contains("demo.yaml: requirements[3].parent: parent \"B\""),
        "{err}"
    );
}

#[test]
fn missing_licence_and_provenance_are_reported() {
    let text = "format: assay.framework.v1
framework: {key: demo, name: Demo, version: '1', publisher: Us, description: D.}
requirements:
  - {ref: A, title: T, description: D., licence: {id: MIT}}
";
    let err = problems(parse_framework("demo.yaml", text));
    for path in [
        "framework.licence",
        "framework.provenance",
        "requirements[0].licence.name",
    ] {
        assert!(err.has_path(path), "{path}: {err}");
    }
}

#[test]
fn wrong_format_and_bad_keys_are_reported() {
    let err = problems(parse_framework("x.yaml", "format: something-else\n"));
    assert!(matches!(
        err.problems[0].kind,
        ProblemKind::UnsupportedFormat { .. }
    ));
    let err = problems(parse_framework(
        "x.yaml",
        &HEAD.replace("key: demo", "key: Demo Pack"),
    ));
    assert!(err.has_path("framework.key"), "{err}");
    assert!(err.has_path("requirements"), "{err}");
}

#[test]
fn control_and_mapping_references_are_checked_against_the_catalogue() {
    let framework = pack("  - {ref: A.1, title: One, description: D.}\n");
    let controls = "format: assay.controls.v1
library: {key: lib, name: Lib, version: '1', licence: {id: CC0-1.0, name: CC0}, provenance: {source: Tests}}
controls:
  - key: X-01
    title: T
    domain: D
    description: D.
    guidance: G.
    questions: [Q?]
    maps: {demo: [A.1, A.2], other: [Z]}
  - key: X-02
    title: T
    domain: D
    description: D.
    guidance: G.
    questions: [Q1?, Q2?, Q3?]
    maps: {demo: [A.1]}
  - {key: X-01, title: T, domain: D, description: D., guidance: G., questions: [Q?]}
";
    let mappings = "format: assay.mappings.v1
set: {key: m, name: M, licence: {id: CC0-1.0, name: CC0}, provenance: {source: Tests}}
mappings:
  - {from: 'demo:A.1', to: 'demo:A.9', relationship: equal}
  - {from: 'demo:A.1', to: 'demo:A.1', relationship: equal}
  - {from: 'demo:A.1', to: 'nowhere', relationship: similar}
";
    let err = problems(Catalogue::from_documents([
        ("demo.yaml", framework.as_str()),
        ("controls.yaml", controls),
        ("mappings.yaml", mappings),
    ]));
    let at = |document: &str, path: &str| {
        err.problems
            .iter()
            .find(|p| p.document == document && p.path == path)
            .map(|p| p.kind.clone())
            .unwrap_or_else(|| panic!("no problem at {document} {path}: {err}"))
    };
    assert!(matches!(
        at("controls.yaml", "controls[0].maps.demo[1]"),
        ProblemKind::UnknownRequirement { .. }
    ));
    assert!(matches!(
        at("controls.yaml", "controls[0].maps.other[0]"),
        ProblemKind::UnknownFramework { .. }
    ));
    assert!(matches!(
        at("controls.yaml", "controls[1].questions"),
        ProblemKind::Count { found: 3, .. }
    ));
    assert!(matches!(
        at("controls.yaml", "controls[2].key"),
        ProblemKind::Duplicate { .. }
    ));
    assert!(matches!(
        at("mappings.yaml", "mappings[0].to"),
        ProblemKind::UnknownRequirement { .. }
    ));
    assert!(matches!(
        at("mappings.yaml", "mappings[1]"),
        ProblemKind::SelfMapping
    ));
    assert!(matches!(
        at("mappings.yaml", "mappings[2].to"),
        ProblemKind::InvalidReference { .. }
    ));
    assert!(matches!(
        at("mappings.yaml", "mappings[2].relationship"),
        ProblemKind::InvalidRelationship { .. }
    ));
}

#[test]
fn frameworks_built_in_code_are_checked_too() {
    let mut f = framework("nist-csf").clone();
    f.requirements[5].parent = Some("NOPE".into());
    f.requirements[7].licence.id.clear();
    let err = problems(Catalogue::build(vec![f], vec![], vec![]));
    assert!(err.has_path("requirements[5].parent"), "{err}");
    assert!(err.has_path("requirements[7].licence"), "{err}");
}

#[test]
fn exported_frameworks_read_back_identically() {
    for f in builtin().frameworks() {
        let yaml = framework_to_yaml(f);
        let back = parse_framework("export.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&back, f, "{}", f.key);
    }
    // Overrides survive the round trip too.
    let mut f = framework("nist-csf").clone();
    f.requirements[3].order = 42;
    f.requirements[4].assessable = false;
    f.requirements[5].licence.id = "MIT".into();
    let back = parse_framework("export.yaml", &framework_to_yaml(&f)).unwrap();
    assert_eq!(back, f);
}

#[test]
fn descriptions_are_not_copied_between_requirements() {
    // A repeated description is almost always a copy-paste placeholder left in a pack.
    for f in builtin().frameworks() {
        let mut seen = HashSet::new();
        for r in &f.requirements {
            assert!(
                seen.insert(&r.description),
                "{}:{} repeats a description",
                f.key,
                r.ref_id
            );
        }
    }
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    proptest! {
        // The reader faces files from users: whatever it is given, it answers with a value
        // or a list of problems, never a panic.
        #[test]
        fn reader_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
            let _ = parse_document("fuzz.yaml", &text);
        }

        #[test]
        fn reader_never_panics_on_mangled_packs(cut in 0usize..2000, insert in "[ :\\-\\[\\]{}'\"#\\n]{0,5}") {
            let (_, original) = BUILTIN_DOCUMENTS[2];
            let cut = original.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(original.len());
            let mangled = format!("{}{}{}", &original[..cut], insert, &original[cut..]);
            if let Err(e) = parse_document("mangled.yaml", &mangled) {
                prop_assert!(!e.problems.is_empty());
            }
        }
    }
}
