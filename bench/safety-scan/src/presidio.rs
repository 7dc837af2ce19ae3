//! Side by side with Microsoft Presidio's analyzer on the same labelled corpus, in the
//! same run: assay-safety scans every document here, `presidio_bench.py` runs Presidio's
//! pattern recognizers over the same JSONL file in a Python venv, and both are scored with
//! the same rule (same type and overlapping a not-yet-matched gold span).

use crate::corpus::{self, Doc, SHARED_TYPES};
use assay_safety::{Rule, Scanner};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The Presidio release measured; pinned so reruns compare like with like.
const PRESIDIO_VERSION: &str = "2.2.366";

#[derive(Clone, Copy, Default)]
struct Counts {
    tp: u64,
    fp: u64,
    fn_: u64,
}

impl Counts {
    fn recall(&self) -> Option<f64> {
        let d = self.tp + self.fn_;
        (d > 0).then(|| self.tp as f64 / d as f64)
    }

    fn precision(&self) -> Option<f64> {
        let d = self.tp + self.fp;
        (d > 0).then(|| self.tp as f64 / d as f64)
    }
}

/// Our rule for each shared Presidio type; rules of other kinds are not scored.
fn shared_type(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::PiiEmail => "EMAIL_ADDRESS",
        Rule::PiiPhone => "PHONE_NUMBER",
        Rule::PiiCard => "CREDIT_CARD",
        Rule::PiiIban => "IBAN_CODE",
        Rule::PiiUsSsn => "US_SSN",
        Rule::PiiIpv4 | Rule::PiiIpv6 => "IP_ADDRESS",
        Rule::PiiNhsNumber => "UK_NHS",
        _ => return None,
    })
}

/// Score predictions `(type, start, end)` in code points against the gold spans.
fn score(
    docs: &[Doc],
    predictions: &[Vec<(&'static str, usize, usize)>],
) -> BTreeMap<&'static str, Counts> {
    let mut counts: BTreeMap<&'static str, Counts> = SHARED_TYPES
        .iter()
        .map(|t| (*t, Counts::default()))
        .collect();
    for (doc, preds) in docs.iter().zip(predictions) {
        let mut matched = vec![false; doc.entities.len()];
        for &(kind, start, end) in preds {
            let hit =
                doc.entities.iter().enumerate().position(|(i, g)| {
                    !matched[i] && g.kind == kind && start < g.end && g.start < end
                });
            let c = counts.get_mut(kind).expect("shared type");
            match hit {
                Some(i) => {
                    matched[i] = true;
                    c.tp += 1;
                }
                None => c.fp += 1,
            }
        }
        for (g, m) in doc.entities.iter().zip(&matched) {
            if !m {
                counts.get_mut(g.kind).expect("shared type").fn_ += 1;
            }
        }
    }
    counts
}

/// Byte offset -> code point offset, for every char boundary of `text`.
fn char_index(text: &str) -> Vec<usize> {
    let mut idx = vec![0; text.len() + 1];
    let mut n = 0;
    for (i, c) in text.char_indices() {
        idx[i] = n;
        n += 1;
        for k in 1..c.len_utf8() {
            idx[i + k] = n;
        }
    }
    idx[text.len()] = n;
    idx
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// The venv's python, creating the venv and installing Presidio on first use.
fn presidio_python() -> Result<PathBuf, String> {
    let venv = target_dir().join("presidio-venv");
    let python = venv.join("bin/python");
    let installed = python.exists()
        && Command::new(&python)
            .args(["-c", "import presidio_analyzer"])
            .status()
            .is_ok_and(|s| s.success());
    if installed {
        return Ok(python);
    }
    eprintln!(
        "installing presidio-analyzer=={PRESIDIO_VERSION} into {} (first run only)",
        venv.display()
    );
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !ok.success() {
        return Err("python3 -m venv failed".into());
    }
    let ok = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            &format!("presidio-analyzer=={PRESIDIO_VERSION}"),
        ])
        .status()
        .map_err(|e| format!("pip: {e}"))?;
    if !ok.success() {
        return Err("pip install presidio-analyzer failed".into());
    }
    Ok(python)
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0))
}

/// Generate the corpus, run both tools, print the comparison. Returns an error message
/// if Presidio could not be run (the Rust half is still printed).
pub fn run(docs_count: usize, passes: usize) -> Result<(), String> {
    let docs = corpus::generate(docs_count, 0x5AFE_5CA1);
    let dir = target_dir().join("safety-scan");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("corpus.jsonl");
    let mut jsonl = String::new();
    for d in &docs {
        jsonl.push_str(&serde_json::to_string(d).expect("serialisable"));
        jsonl.push('\n');
    }
    std::fs::write(&path, &jsonl).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    let gold = docs.iter().map(|d| d.entities.len()).sum::<usize>();
    println!(
        "## side by side with Presidio: {} documents, {:.1} KiB, {gold} planted entities ({})",
        docs.len(),
        bytes as f64 / 1024.0,
        path.display()
    );

    // Ours: the full scan (every detector, not only the shared types), one thread.
    let scanner = Scanner::new();
    let mut best = f64::MAX;
    let mut predictions = Vec::new();
    for _ in 0..passes.max(1) {
        let started = Instant::now();
        let found: Vec<_> = docs.iter().map(|d| scanner.scan(&d.text)).collect();
        best = best.min(started.elapsed().as_secs_f64());
        predictions = found;
    }
    let ours_pred: Vec<Vec<(&'static str, usize, usize)>> = docs
        .iter()
        .zip(&predictions)
        .map(|(d, found)| {
            let idx = char_index(&d.text);
            found
                .iter()
                .filter_map(|f| {
                    shared_type(f.rule).map(|t| (t, idx[f.span.start], idx[f.span.end]))
                })
                .collect()
        })
        .collect();
    let ours = score(&docs, &ours_pred);
    let ours_docs_s = docs.len() as f64 / best;
    let ours_mb_s = bytes as f64 / best / 1e6;

    let python = presidio_python()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("presidio_bench.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&path)
        .args(["--repeat", &passes.max(1).to_string()])
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "presidio_bench.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let theirs: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("presidio_bench.py output: {e}"))?;
    let their_docs_s = theirs["docs_per_s"].as_f64().unwrap_or(f64::NAN);
    let their_mb_s = theirs["mb_per_s"].as_f64().unwrap_or(f64::NAN);

    println!(
        "assay-safety {:>10.0} docs/s {:>8.2} MB/s (best of {passes} passes, all detectors)",
        ours_docs_s, ours_mb_s
    );
    println!(
        "presidio {:<8} {:>6.0} docs/s {:>8.2} MB/s (pattern recognizers of the 7 shared types)",
        theirs["version"].as_str().unwrap_or("?"),
        their_docs_s,
        their_mb_s
    );
    println!(
        "throughput ratio: {:.0}x (target >= 100x)",
        ours_docs_s / their_docs_s
    );
    println!(
        "\n| type | gold | assay recall | assay precision | presidio recall | presidio precision |"
    );
    println!("|---|---|---|---|---|---|");
    let mut recall_ok = true;
    for t in SHARED_TYPES {
        let o = ours[t];
        let p = &theirs["entities"][t];
        let p_recall = p["recall"].as_f64();
        let p_precision = p["precision"].as_f64();
        let gold = o.tp + o.fn_;
        if let (Some(a), Some(b)) = (o.recall(), p_recall) {
            recall_ok &= a >= b;
        }
        println!(
            "| {t} | {gold} | {} | {} | {} | {} |",
            pct(o.recall()),
            pct(o.precision()),
            pct(p_recall),
            pct(p_precision)
        );
    }
    println!(
        "\nrecall on every shared type >= Presidio's: {}",
        if recall_ok { "yes" } else { "NO" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_index_maps_bytes_to_code_points() {
        let idx = char_index("aé b");
        assert_eq!(idx[0], 0);
        assert_eq!(idx[1], 1);
        assert_eq!(idx[3], 2);
        assert_eq!(idx[5], 4);
    }

    #[test]
    fn scoring_counts_each_gold_span_once() {
        let docs = vec![Doc {
            id: 0,
            text: "x".repeat(40),
            entities: vec![corpus::Gold {
                kind: "US_SSN",
                start: 5,
                end: 16,
            }],
        }];
        let preds = vec![vec![
            ("US_SSN", 6, 16),
            ("US_SSN", 5, 16),
            ("UK_NHS", 5, 16),
        ]];
        let c = score(&docs, &preds);
        assert_eq!((c["US_SSN"].tp, c["US_SSN"].fp, c["US_SSN"].fn_), (1, 1, 0));
        assert_eq!((c["UK_NHS"].tp, c["UK_NHS"].fp), (0, 1));
    }
}
