//! Real data no one here wrote: every compliance file of a Prowler release imports, and
//! each framework has exactly as many assessable requirements as the file lists.
//! Run by scripts/ci/prowler-import-check.sh, which downloads Prowler and sets
//! ASSAY_PROWLER_COMPLIANCE_DIR to its `compliance/` folder.

use std::path::{Path, PathBuf};

use assay_core::catalogue::{
    Format, ImportOptions, framework_to_oscal_json, import_document, parse_oscal_catalog,
};
use chrono::{TimeZone, Utc};
use serde_json::Value;

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[test]
#[ignore = "needs a downloaded Prowler release; run scripts/ci/prowler-import-check.sh"]
fn every_prowler_compliance_file_imports_with_matching_counts() {
    let dir = std::env::var("ASSAY_PROWLER_COMPLIANCE_DIR")
        .expect("set ASSAY_PROWLER_COMPLIANCE_DIR to Prowler's compliance/ folder");
    let mut files = Vec::new();
    json_files(Path::new(&dir), &mut files);
    assert!(!files.is_empty(), "no JSON files under {dir}");
    let mut failures = Vec::new();
    let (mut requirements, mut checks) = (0, 0);
    for path in &files {
        let name = path
            .strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string();
        let bytes = std::fs::read(path).unwrap();
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        let expected = raw
            .get("Requirements")
            .or_else(|| raw.get("requirements"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        match import_document(&bytes, None, &ImportOptions::named(name.clone())) {
            Err(e) => failures.push(format!("{name}: {e}")),
            Ok(imported) if imported.format != Format::Prowler => {
                failures.push(format!("{name}: detected as {:?}", imported.format))
            }
            Ok(imported) => {
                let found = imported.framework.assessable().count();
                let groups = imported.framework.requirements.len() - found;
                let mapped: usize = imported.checks.values().map(Vec::len).sum();
                println!(
                    "ok {name}: {found} requirements (file lists {expected}), {groups} groups, {mapped} check links"
                );
                // Real text (long, multi-line) also survives an OSCAL round trip.
                let when = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
                let oscal = framework_to_oscal_json(&imported.framework, when);
                match parse_oscal_catalog(&oscal, &ImportOptions::named("export.json")) {
                    Ok(back) if back == imported.framework => {}
                    Ok(_) => failures.push(format!("{name}: changed in the OSCAL round trip")),
                    Err(e) => {
                        failures.push(format!("{name}: OSCAL export does not re-import: {e}"))
                    }
                }
                if found != expected {
                    failures.push(format!(
                        "{name}: {found} requirements imported, file lists {expected}"
                    ));
                }
                requirements += found;
                checks += mapped;
            }
        }
    }
    println!(
        "{} Prowler compliance files, {requirements} requirements, {checks} check links",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
