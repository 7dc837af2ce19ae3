//! Importing frameworks from documents other people wrote: OSCAL catalogs and profiles,
//! Prowler compliance JSON and Assay's own YAML. One entry point tells the formats apart so
//! the CLI and the API need not, and every importer reports all problems with their JSON
//! path, returning nothing until the whole document is clean.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{CatalogueError, Problem, ProblemKind};
use super::model::{Framework, Licence, Provenance};
use super::oscal::{self, ProfileResolver};
use super::pack::parse_framework;
use super::prowler::{self, ProwlerCheck};

/// The document formats a framework can be imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// An OSCAL catalog, or an OSCAL profile resolved through [`ImportOptions::resolver`].
    Oscal,
    /// A Prowler compliance file (provider-specific or multi-provider layout).
    Prowler,
    /// Assay's own `assay.framework.v1` pack.
    Yaml,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Oscal => "oscal",
            Format::Prowler => "prowler",
            Format::Yaml => "yaml",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Format::Oscal, Format::Prowler, Format::Yaml]
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(text))
    }
}

/// What the caller knows about a document that the document may not say itself.
#[derive(Clone, Default)]
pub struct ImportOptions<'a> {
    /// Names the document in problems and in fallback provenance (usually the file name).
    pub document: String,
    /// Framework key to use instead of the one the document carries or implies.
    pub key: Option<String>,
    /// Terms to record when the document states none (OSCAL has no licence field). Without
    /// one, imported requirements say plainly that the licence was not stated.
    pub licence: Option<Licence>,
    /// Where the content came from, when the document does not say.
    pub provenance: Option<Provenance>,
    /// Looks up the catalogs an OSCAL profile imports. Without it a profile cannot be read.
    pub resolver: Option<&'a ProfileResolver<'a>>,
}

impl ImportOptions<'_> {
    pub fn named(document: impl Into<String>) -> Self {
        Self {
            document: document.into(),
            ..Self::default()
        }
    }
}

/// A framework read from a document, with what the format carries beyond the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedFramework {
    pub format: Format,
    pub framework: Framework,
    /// Prowler check ids per requirement ref, kept for automated checks (empty for other
    /// formats; requirements without checks are left out).
    pub checks: BTreeMap<String, Vec<ProwlerCheck>>,
}

/// Read a framework from `bytes`, detecting the format when `format` is `None`: JSON with a
/// `catalog` or `profile` member is OSCAL, JSON with Prowler's `Requirements`/`requirements`
/// is Prowler, anything else is read as an Assay YAML pack.
pub fn import_document(
    bytes: &[u8],
    format: Option<Format>,
    options: &ImportOptions,
) -> Result<ImportedFramework, CatalogueError> {
    let fail = |path: &str, kind| CatalogueError {
        problems: vec![Problem::new(&options.document, path, kind)],
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        fail(
            "",
            ProblemKind::WrongType {
                expected: if e.valid_up_to() == 0 {
                    "UTF-8 text"
                } else {
                    "UTF-8 text throughout"
                },
            },
        )
    })?;
    let format = match format {
        Some(format) => format,
        None => detect(text).ok_or_else(|| {
            fail(
                "",
                ProblemKind::UnsupportedFormat {
                    found: "JSON without `catalog`, `profile` or `Requirements`".into(),
                    expected:
                        "an OSCAL catalog or profile, Prowler compliance JSON or an Assay YAML pack"
                            .into(),
                },
            )
        })?,
    };
    let plain = |framework| ImportedFramework {
        format,
        framework,
        checks: BTreeMap::new(),
    };
    match format {
        Format::Yaml => parse_framework(&options.document, text).map(plain),
        Format::Oscal => {
            let root = parse_json(&options.document, text)?;
            let is_profile = root.as_object().is_some_and(|o| o.contains_key("profile"));
            if is_profile {
                oscal::profile_from_value(&root, options).map(plain)
            } else {
                oscal::catalog_from_value(&root, options).map(plain)
            }
        }
        Format::Prowler => {
            let root = parse_json(&options.document, text)?;
            prowler::prowler_from_value(&root, options).map(|import| ImportedFramework {
                format,
                framework: import.framework,
                checks: import.checks,
            })
        }
    }
}

fn detect(text: &str) -> Option<Format> {
    if !text.trim_start().starts_with('{') {
        return Some(Format::Yaml);
    }
    // Invalid JSON is handed to the OSCAL reader, which reports the syntax error with its
    // position; guessing further from broken text would only produce a worse message.
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(text) else {
        return Some(Format::Oscal);
    };
    if root.contains_key("catalog") || root.contains_key("profile") {
        Some(Format::Oscal)
    } else if root.contains_key("Requirements") || root.contains_key("requirements") {
        Some(Format::Prowler)
    } else {
        None
    }
}

/// Parse JSON text, reporting a syntax error with its line and column.
pub(crate) fn parse_json(document: &str, text: &str) -> Result<Value, CatalogueError> {
    serde_json::from_str(text).map_err(|e| CatalogueError {
        problems: vec![Problem::new(
            document,
            "",
            ProblemKind::Syntax {
                message: format!("JSON: {e}"),
                line: Some(e.line()),
                column: Some(e.column()),
            },
        )],
    })
}

/// `path.key`, or `key` at the root.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Collects problems while a JSON tree is walked. Unknown members are not reported: OSCAL
/// and Prowler documents carry much that a catalogue has no use for.
pub(crate) struct JsonReader<'d> {
    pub document: &'d str,
    pub problems: Vec<Problem>,
}

impl<'d> JsonReader<'d> {
    pub fn new(document: &'d str) -> Self {
        Self {
            document,
            problems: Vec::new(),
        }
    }

    pub fn report(&mut self, path: impl Into<String>, kind: ProblemKind) {
        self.problems.push(Problem::new(self.document, path, kind));
    }

    pub fn object<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        let object = value.as_object();
        if object.is_none() {
            self.report(
                path,
                ProblemKind::WrongType {
                    expected: "an object",
                },
            );
        }
        object
    }

    pub fn required_object<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'v Map<String, Value>> {
        match present(obj, key) {
            Some(value) => self.object(value, &join(path, key)),
            None => {
                self.report(join(path, key), ProblemKind::Missing);
                None
            }
        }
    }

    /// A string member, trimmed; blank counts as missing when `required`.
    pub fn string(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<String> {
        let path = join(path, key);
        match present(obj, key) {
            None if required => {
                self.report(path, ProblemKind::Missing);
                None
            }
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => {
                if required {
                    self.report(path, ProblemKind::Empty);
                }
                None
            }
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(_) => {
                self.report(
                    path,
                    ProblemKind::WrongType {
                        expected: "a string",
                    },
                );
                None
            }
        }
    }

    /// An array member with each item's path; absent is an empty list.
    pub fn array<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Vec<(&'v Value, String)> {
        let path = join(path, key);
        match present(obj, key) {
            None => {
                if required {
                    self.report(path, ProblemKind::Missing);
                }
                Vec::new()
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (v, format!("{path}[{i}]")))
                .collect(),
            Some(_) => {
                self.report(
                    path,
                    ProblemKind::WrongType {
                        expected: "an array",
                    },
                );
                Vec::new()
            }
        }
    }

    /// An array of strings; wrong items are reported and skipped.
    pub fn strings(&mut self, obj: &Map<String, Value>, path: &str, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (value, item_path) in self.array(obj, path, key, false) {
            match value.as_str() {
                Some(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
                Some(_) => self.report(item_path, ProblemKind::Empty),
                None => self.report(
                    item_path,
                    ProblemKind::WrongType {
                        expected: "a string",
                    },
                ),
            }
        }
        out
    }
}

/// A member that is there and not `null` (generators write `null` for "not set").
pub(crate) fn present<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A framework key made from free text: lower-case ASCII letters and digits, other runs of
/// characters become one `-`.
pub(crate) fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.' || c == '_');
    if out.is_empty() {
        "imported".to_owned()
    } else {
        out.to_owned()
    }
}

/// The licence recorded when neither the document nor the caller states one, so that the
/// gap is visible on every requirement instead of a licence being guessed (B-5).
pub(crate) fn unstated_licence() -> Licence {
    Licence {
        id: "LicenseRef-not-stated".into(),
        name: "Licence not stated by the imported document".into(),
        url: None,
        note: Some("Check the terms of the source before sharing this framework.".into()),
    }
}

/// Where each requirement of an imported framework came from in its source document.
pub(crate) struct SourcePaths {
    /// The object the requirement was read from, per requirement index.
    pub nodes: Vec<String>,
    /// The member its ref id was read from, per requirement index.
    pub refs: Vec<String>,
    /// The object the framework's own fields were read from.
    pub head: String,
}

impl SourcePaths {
    /// Rewrite problems that [`super::framework_problems`] reports against `requirements[i]`
    /// and `framework.*` so they point into the source document instead.
    pub fn relocate(&self, problems: Vec<Problem>) -> Vec<Problem> {
        problems
            .into_iter()
            .map(|mut problem| {
                problem.path = self.relocate_path(&problem.path);
                if let ProblemKind::Duplicate { first, .. } = &mut problem.kind {
                    *first = self.relocate_path(first);
                }
                problem
            })
            .collect()
    }

    fn relocate_path(&self, path: &str) -> String {
        if let Some(rest) = path.strip_prefix("framework.") {
            return join(&self.head, rest);
        }
        let Some(rest) = path.strip_prefix("requirements[") else {
            return path.to_owned();
        };
        let Some((index, tail)) = rest.split_once(']') else {
            return path.to_owned();
        };
        let Ok(i) = index.parse::<usize>() else {
            return path.to_owned();
        };
        match (tail, self.nodes.get(i), self.refs.get(i)) {
            (".ref", _, Some(ref_path)) => ref_path.clone(),
            (_, Some(node), _) => format!("{node}{tail}"),
            _ => path.to_owned(),
        }
    }
}
