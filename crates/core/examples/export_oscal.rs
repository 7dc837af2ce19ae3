//! Write every built-in framework as an OSCAL catalog JSON file into the folder given as
//! the first argument (used by scripts/ci/oscal-trestle-check.sh to validate the export
//! with an independent OSCAL implementation, B-1).

use std::path::PathBuf;

use assay_core::catalogue::{builtin, framework_to_oscal_json};
use chrono::{TimeZone, Utc};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: export_oscal <output-dir>")?
        .into();
    std::fs::create_dir_all(&dir)?;
    // A fixed timestamp keeps the files byte-identical from run to run.
    let last_modified = Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .ok_or("date")?;
    for framework in builtin().frameworks() {
        let path = dir.join(format!("{}.oscal.json", framework.key));
        std::fs::write(&path, framework_to_oscal_json(framework, last_modified))?;
        println!(
            "{} ({} requirements) -> {}",
            framework.key,
            framework.requirements.len(),
            path.display()
        );
    }
    Ok(())
}
