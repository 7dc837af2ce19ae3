//! Importers and the OSCAL exporter (R-21, B-1): round trips over every built-in pack,
//! small fixtures of each format, bad files reported by JSON path, and importers that never
//! panic whatever JSON they are given.

use assay_core::catalogue::{
    CatalogueError, Format, ImportOptions, ProfileSource, ProwlerCheck, builtin,
    framework_to_oscal, framework_to_oscal_json, framework_to_yaml, import_document,
    parse_oscal_catalog, parse_oscal_profile, parse_prowler,
};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

const SMALL_CATALOG: &str = include_str!("fixtures/oscal-catalog-small.json");
const PROWLER_PROVIDER: &str = include_str!("fixtures/prowler-provider.json");
const PROWLER_MULTI: &str = include_str!("fixtures/prowler-multi-provider.json");

fn when() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
}

fn paths(e: &CatalogueError) -> Vec<&str> {
    e.problems.iter().map(|p| p.path.as_str()).collect()
}

#[test]
fn every_builtin_pack_round_trips_through_oscal() {
    for framework in builtin().frameworks() {
        let text = framework_to_oscal_json(framework, when());
        let back = parse_oscal_catalog(&text, &ImportOptions::named("export.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", framework.key));
        assert_eq!(
            &back, framework,
            "{} changed in the round trip",
            framework.key
        );
        // And again through YAML, so both exports agree about the same framework.
        let yaml = framework_to_yaml(&back);
        let again = assay_core::catalogue::parse_framework("again.yaml", &yaml).unwrap();
        assert_eq!(&again, framework);
    }
}

#[test]
fn oscal_export_is_deterministic_and_shaped_like_oscal() {
    let framework = builtin().framework("iso27001").unwrap();
    let one = framework_to_oscal_json(framework, when());
    assert_eq!(one, framework_to_oscal_json(framework, when()));
    let value = framework_to_oscal(framework, when());
    let catalog = &value["catalog"];
    assert_eq!(catalog["metadata"]["oscal-version"], "1.1.2");
    assert_eq!(catalog["metadata"]["last-modified"], "2025-01-02T03:04:05Z");
    assert_eq!(catalog["metadata"]["version"], "2022");
    let uuid = catalog["uuid"].as_str().unwrap();
    assert_eq!(uuid.as_bytes()[14], b'5', "uuid v5: {uuid}");
    // Clause 4 is a group (not assessable); 4.1 a control whose id is an OSCAL token.
    let clause4 = &catalog["groups"][0];
    assert_eq!(clause4["title"], "Context of the organization");
    let control = &clause4["controls"][0];
    assert_eq!(control["id"], "id-4.1");
    assert_eq!(
        control["props"][0],
        json!({"name": "label", "value": "4.1"})
    );
    assert_eq!(control["parts"][0]["name"], "statement");
}

#[test]
fn oscal_catalog_import_reads_groups_controls_enhancements_parts_and_params() {
    let options = ImportOptions::named("small.json");
    let f = parse_oscal_catalog(SMALL_CATALOG, &options).unwrap();
    assert_eq!(f.key, "example-control-catalog");
    assert_eq!(f.name, "Example Control Catalog");
    assert_eq!(f.version, "2.1");
    assert_eq!(f.publisher, "Example Standards Office");
    assert_eq!(f.licence.id, "LicenseRef-not-stated");
    assert_eq!(
        f.provenance.url.as_deref(),
        Some("https://example.org/catalog")
    );
    let refs: Vec<&str> = f.requirements.iter().map(|r| r.ref_id.as_str()).collect();
    // The withdrawn AC-2(2) is left out.
    assert_eq!(refs, ["ac", "AC-1", "AC-2", "AC-2(1)", "au", "AU-2"]);
    let ac = f.requirement("ac").unwrap();
    assert!(!ac.assessable);
    assert_eq!(ac.description, "Access Control");
    let ac1 = f.requirement("AC-1").unwrap();
    assert!(ac1.assessable);
    assert_eq!(ac1.parent.as_deref(), Some("ac"));
    assert_eq!(
        ac1.description,
        "a. Give a written access policy to [Assignment: organization-defined personnel or roles] \
         at the [Selection (one or more): organization-level; system-level] level;\n\
         b. Review it annually.\n\nGuidance: Keep the policy short."
    );
    let enhancement = f.requirement("AC-2(1)").unwrap();
    assert_eq!(enhancement.parent.as_deref(), Some("AC-2"));
    assert!(enhancement.assessable && f.requirement("AC-2").unwrap().assessable);
    assert_eq!(enhancement.order, 1);
    assert_eq!(
        f.requirement("au").unwrap().description,
        "Logging and review."
    );
    // A control without prose falls back to its title.
    assert_eq!(f.requirement("AU-2").unwrap().description, "Event Logging");
}

#[test]
fn caller_fallbacks_apply_only_where_the_document_is_silent() {
    let licence = assay_core::catalogue::Licence {
        id: "CC0-1.0".into(),
        name: "Public domain".into(),
        url: None,
        note: None,
    };
    let options = ImportOptions {
        key: Some("example".into()),
        licence: Some(licence.clone()),
        ..ImportOptions::named("small.json")
    };
    let f = parse_oscal_catalog(SMALL_CATALOG, &options).unwrap();
    assert_eq!(f.key, "example");
    assert!(f.requirements.iter().all(|r| r.licence == licence));
    // An exported pack states its own licence, which wins over the fallback.
    let iso = builtin().framework("iso27001").unwrap();
    let text = framework_to_oscal_json(iso, when());
    let back = parse_oscal_catalog(
        &text,
        &ImportOptions {
            key: None,
            ..options
        },
    )
    .unwrap();
    assert_eq!(back.licence, iso.licence);
}

#[test]
fn a_bad_catalog_reports_every_problem_by_json_path_and_returns_nothing() {
    let mut doc: Value = serde_json::from_str(SMALL_CATALOG).unwrap();
    let groups = &mut doc["catalog"]["groups"];
    groups[0]["controls"][1]["controls"][0]
        .as_object_mut()
        .unwrap()
        .remove("id");
    groups[0]["controls"][0]["title"] = json!(42);
    groups[1].as_object_mut().unwrap().remove("title");
    groups[1]["controls"][0]["id"] = json!("ac-1");
    groups[1]["controls"][0]["props"] = json!([{"name": "label"}]);
    doc["catalog"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("version");
    let e = parse_oscal_catalog(&doc.to_string(), &ImportOptions::named("bad.json")).unwrap_err();
    let expected = [
        "catalog.metadata.version",
        "catalog.groups[0].controls[0].title",
        "catalog.groups[0].controls[1].controls[0].id",
        "catalog.groups[1].title",
        "catalog.groups[1].controls[0].id",
        "catalog.groups[1].controls[0].props[0].value",
    ];
    for path in expected {
        assert!(e.has_path(path), "no problem at {path}: {e}");
    }
    assert_eq!(e.problems.len(), expected.len(), "{e}");
    assert!(e.problems.iter().all(|p| p.document == "bad.json"));
}

#[test]
fn duplicate_labels_are_reported_at_the_label_that_repeats() {
    let mut doc: Value = serde_json::from_str(SMALL_CATALOG).unwrap();
    doc["catalog"]["groups"][1]["controls"][0]["props"][0]["value"] = json!("AC-1");
    let e = parse_oscal_catalog(&doc.to_string(), &ImportOptions::named("dup.json")).unwrap_err();
    assert_eq!(
        paths(&e),
        ["catalog.groups[1].controls[0].props[0].value"],
        "{e}"
    );
    assert!(
        e.to_string().contains("catalog.groups[0].controls[0]"),
        "{e}"
    );
}

#[test]
fn json_syntax_errors_give_line_and_column() {
    let e = import_document(
        b"{\n \"catalog\": [,]\n}",
        Some(Format::Oscal),
        &ImportOptions::named("x.json"),
    )
    .unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(matches!(
        e.problems[0].kind,
        assay_core::catalogue::ProblemKind::Syntax { line: Some(2), .. }
    ));
}

fn profile(imports: Value) -> String {
    json!({"profile": {
        "uuid": "0b0b0b0b-0000-4000-8000-000000000001",
        "metadata": {"title": "Example Low Baseline", "last-modified": "2024-01-01T00:00:00Z",
                     "version": "1.0", "oscal-version": "1.1.2"},
        "imports": imports
    }})
    .to_string()
}

#[test]
fn a_profile_selects_controls_from_the_catalog_it_imports() {
    let resolve = |href: &str| {
        (href == "catalog.json").then(|| ProfileSource::CatalogJson(SMALL_CATALOG.to_owned()))
    };
    let options = ImportOptions {
        resolver: Some(&resolve),
        ..ImportOptions::named("low.json")
    };
    let text = profile(json!([{"href": "catalog.json",
        "include-controls": [{"with-ids": ["ac-2"], "with-child-controls": "yes"}, {"with-ids": ["au-2"]}]}]));
    let f = parse_oscal_profile(&text, &options).unwrap();
    let refs: Vec<&str> = f.requirements.iter().map(|r| r.ref_id.as_str()).collect();
    assert_eq!(refs, ["ac", "AC-2", "AC-2(1)", "au", "AU-2"]);
    assert_eq!(f.key, "example-low-baseline");
    assert_eq!(f.publisher, "Example Standards Office");
    assert_eq!(
        f.requirement("AC-2").unwrap().order,
        1,
        "renumbered among kept siblings"
    );
    assert_eq!(f.assessable().count(), 3);

    // include-all minus an exclusion, through the format-detecting entry point.
    let text = profile(json!([{"href": "catalog.json", "include-all": {},
        "exclude-controls": [{"with-ids": ["ac-1"]}]}]));
    let imported = import_document(text.as_bytes(), None, &options).unwrap();
    assert_eq!(imported.format, Format::Oscal);
    assert!(imported.framework.requirement("AC-1").is_none());
    assert_eq!(imported.framework.assessable().count(), 3);
}

#[test]
fn a_profile_can_select_from_a_framework_already_in_the_catalogue() {
    let resolve = |href: &str| {
        builtin()
            .framework(href.trim_start_matches('#'))
            .map(|f| ProfileSource::Framework(Box::new(f.clone())))
    };
    let options = ImportOptions {
        resolver: Some(&resolve),
        ..ImportOptions::named("csf-subset.json")
    };
    let text = profile(json!([{"href": "#nist-csf",
        "include-controls": [{"with-ids": ["GV.OC-01", "pr.aa-03"]}]}]));
    let f = parse_oscal_profile(&text, &options).unwrap();
    let assessable: Vec<&str> = f.assessable().map(|r| r.ref_id.as_str()).collect();
    assert_eq!(assessable, ["GV.OC-01", "PR.AA-03"]);
    let csf = builtin().framework("nist-csf").unwrap();
    assert_eq!(
        f.licence, csf.licence,
        "a profile keeps the terms of what it selects"
    );
}

#[test]
fn profile_problems_name_the_import_and_the_id() {
    let resolve = |href: &str| {
        (href == "catalog.json").then(|| ProfileSource::CatalogJson(SMALL_CATALOG.to_owned()))
    };
    let options = ImportOptions {
        resolver: Some(&resolve),
        ..ImportOptions::named("bad-profile.json")
    };
    let text = profile(json!([
        {"href": "catalog.json", "include-controls": [{"with-ids": ["ac-1", "zz-9"]}]},
        {"href": "https://example.org/missing.json", "include-all": {}},
        {"href": "catalog.json"}
    ]));
    let e = parse_oscal_profile(&text, &options).unwrap_err();
    assert_eq!(
        paths(&e),
        [
            "profile.imports[0].include-controls[0].with-ids[1]",
            "profile.imports[1].href",
            "profile.imports[2].include-controls",
        ],
        "{e}"
    );
    // Without a resolver nothing can be imported, and the error says which href.
    let e = parse_oscal_profile(&text, &ImportOptions::named("p.json")).unwrap_err();
    assert!(e.has_path("profile.imports[0].href"), "{e}");
}

#[test]
fn prowler_provider_files_keep_sections_checks_and_repeated_ids() {
    let import = parse_prowler(
        PROWLER_PROVIDER,
        &ImportOptions::named("compliance/aws/example_1.0_aws.json"),
    )
    .unwrap();
    let f = &import.framework;
    assert_eq!(f.key, "prowler-example_1.0_aws");
    assert_eq!(f.version, "1.0");
    assert_eq!(f.licence.id, "Apache-2.0");
    assert!(
        f.provenance.source.contains("example_1.0_aws.json"),
        "{}",
        f.provenance.source
    );
    let tree: Vec<(&str, Option<&str>, bool)> = f
        .requirements
        .iter()
        .map(|r| (r.ref_id.as_str(), r.parent.as_deref(), r.assessable))
        .collect();
    assert_eq!(
        tree,
        [
            ("1 Identity", None, false),
            ("1.1", Some("1 Identity"), true),
            ("1.A Root user", Some("1 Identity"), false),
            ("1.2", Some("1.A Root user"), true),
            ("2 Storage", None, false),
            ("2.1", Some("2 Storage"), true),
            ("2.1#2", Some("2 Storage"), true),
            // Attributes that disagree (MITRE-style) give no place in the tree.
            ("3.1", None, true),
        ]
    );
    let r11 = f.requirement("1.1").unwrap();
    assert_eq!(r11.title, "Keep contact details current");
    assert_eq!(
        r11.description,
        "Contact details reach more than one person."
    );
    assert_eq!(f.requirement("2.1#2").unwrap().title, "Encrypt snapshots");
    assert_eq!(
        import.checks["1.2"],
        [
            ProwlerCheck {
                provider: "aws".into(),
                check: "iam_root_mfa_enabled".into()
            },
            ProwlerCheck {
                provider: "aws".into(),
                check: "iam_root_hardware_mfa_enabled".into()
            },
        ]
    );
    assert!(!import.checks.contains_key("2.1"), "no checks, no entry");
    assert_eq!(import.checks["2.1#2"].len(), 1);
}

#[test]
fn prowler_multi_provider_files_group_by_their_declared_field() {
    let imported = import_document(
        PROWLER_MULTI.as_bytes(),
        None,
        &ImportOptions::named("example_2.0.json"),
    )
    .unwrap();
    assert_eq!(imported.format, Format::Prowler);
    let f = &imported.framework;
    let refs: Vec<&str> = f.requirements.iter().map(|r| r.ref_id.as_str()).collect();
    assert_eq!(refs, ["Firewalls", "EX-1", "Updates", "EX-2"]);
    let providers: Vec<&str> = imported.checks["EX-1"]
        .iter()
        .map(|c| c.provider.as_str())
        .collect();
    assert_eq!(providers, ["aws", "azure"]);
    assert!(!imported.checks.contains_key("EX-2"));
}

#[test]
fn a_bad_prowler_file_reports_every_problem_by_json_path() {
    let mut doc: Value = serde_json::from_str(PROWLER_PROVIDER).unwrap();
    let requirements = &mut doc["Requirements"];
    requirements[0].as_object_mut().unwrap().remove("Id");
    requirements[1]["Checks"][1] = json!(7);
    requirements[2]["Attributes"] = json!("Section 2");
    requirements[3]["Id"] = json!("  ");
    doc.as_object_mut().unwrap().remove("Provider");
    let e = parse_prowler(&doc.to_string(), &ImportOptions::named("bad.json")).unwrap_err();
    assert_eq!(
        paths(&e),
        [
            "Provider",
            "Requirements[0].Id",
            "Requirements[1].Checks[1]",
            "Requirements[2].Attributes",
            "Requirements[3].Id",
        ],
        "{e}"
    );
}

#[test]
fn import_document_detects_each_format() {
    let options = ImportOptions::named("doc");
    let (_, yaml) = assay_core::catalogue::BUILTIN_DOCUMENTS[0];
    let imported = import_document(yaml.as_bytes(), None, &options).unwrap();
    assert_eq!(imported.format, Format::Yaml);
    assert_eq!(
        &imported.framework,
        builtin().framework("nist-csf").unwrap()
    );
    let imported = import_document(SMALL_CATALOG.as_bytes(), None, &options).unwrap();
    assert_eq!(imported.format, Format::Oscal);
    let imported = import_document(PROWLER_PROVIDER.as_bytes(), None, &options).unwrap();
    assert_eq!(imported.format, Format::Prowler);
    assert_eq!(imported.checks.len(), 4);

    let e = import_document(br#"{"hello": 1}"#, None, &options).unwrap_err();
    assert_eq!(paths(&e), [""]);
    // A format forced by the caller is honoured: a Prowler file is no OSCAL catalog.
    let e =
        import_document(PROWLER_PROVIDER.as_bytes(), Some(Format::Oscal), &options).unwrap_err();
    assert_eq!(paths(&e), ["catalog"]);
    let e = import_document(&[0xff, 0xfe], None, &options).unwrap_err();
    assert_eq!(paths(&e), [""]);
    assert_eq!(Format::parse("OSCAL"), Some(Format::Oscal));
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            "[a-z0-9 ._-]{0,8}",
            Just("withdrawn".to_owned()),
            Just("label".to_owned()),
            Just("{{ insert: param, p }}".to_owned()),
        ]
        .prop_map(Value::String),
    ];
    let keys = prop_oneof![
        Just("catalog"),
        Just("profile"),
        Just("metadata"),
        Just("title"),
        Just("version"),
        Just("groups"),
        Just("controls"),
        Just("id"),
        Just("props"),
        Just("name"),
        Just("value"),
        Just("parts"),
        Just("prose"),
        Just("params"),
        Just("imports"),
        Just("href"),
        Just("include-all"),
        Just("include-controls"),
        Just("with-ids"),
        Just("Requirements"),
        Just("requirements"),
        Just("Id"),
        Just("Checks"),
        Just("Attributes"),
        Just("Section"),
        Just("Framework"),
        Just("Provider"),
        Just("checks"),
        Just("attributes"),
        Just("ns"),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone().prop_map(str::to_owned), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn importers_never_panic_on_arbitrary_json(value in arbitrary_json()) {
        let text = value.to_string();
        let resolve = |_: &str| Some(ProfileSource::CatalogJson(text.clone()));
        let options = ImportOptions { resolver: Some(&resolve), ..ImportOptions::named("fuzz.json") };
        for format in [None, Some(Format::Oscal), Some(Format::Prowler), Some(Format::Yaml)] {
            // Ok or Err are both fine; an error must say something.
            if let Err(e) = import_document(text.as_bytes(), format, &options) {
                prop_assert!(!e.problems.is_empty());
            }
        }
        for wrapper in ["catalog", "profile"] {
            let wrapped = json!({ wrapper: value.clone() }).to_string();
            let _ = import_document(wrapped.as_bytes(), Some(Format::Oscal), &options);
        }
    }
}
