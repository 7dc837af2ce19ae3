//! Problems found while reading or checking catalogue documents.
//! Policy: a reader never stops at the first problem; it collects every one, each with the
//! document and the path inside it (`requirements[3].parent`), so an author fixes a file in one pass.
//! Callers get the whole list as [`CatalogueError`]; nothing is loaded while the list is non-empty.

use std::fmt;

/// One thing wrong with one document, located by a path such as `requirements[3].parent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Problem {
    /// The document's name (file name for built-in packs, whatever the importer passes).
    pub document: String,
    /// Where in the document; empty for the document as a whole.
    pub path: String,
    pub kind: ProblemKind,
}

impl Problem {
    pub fn new(document: &str, path: impl Into<String>, kind: ProblemKind) -> Self {
        Self {
            document: document.to_owned(),
            path: path.into(),
            kind,
        }
    }

    fn describe(&self) -> String {
        if self.path.is_empty() {
            format!("{}: {}", self.document, self.kind)
        } else {
            format!("{}: {}: {}", self.document, self.path, self.kind)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    #[error("not valid YAML: {message}")]
    Syntax {
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    #[error("unsupported document format {found:?} (expected {expected})")]
    UnsupportedFormat { found: String, expected: String },
    #[error("required field is missing")]
    Missing,
    #[error("must not be empty")]
    Empty,
    #[error("expected {expected}")]
    WrongType { expected: &'static str },
    #[error("unknown field (a typo?)")]
    UnknownField,
    #[error("{value:?} is not a valid key (lower-case letters, digits, '.', '-', '_')")]
    InvalidKey { value: String },
    #[error("{value:?} is not a valid reference (expected framework:ref)")]
    InvalidReference { value: String },
    #[error("{value:?} is not a relationship (equal, subset, superset, intersect)")]
    InvalidRelationship { value: String },
    #[error("duplicate {what} {value:?} (first at {first})")]
    Duplicate {
        what: &'static str,
        value: String,
        first: String,
    },
    #[error("parent {parent:?} is not a requirement of this framework")]
    UnknownParent { parent: String },
    #[error("parent chain loops back on itself: {chain}")]
    Cycle { chain: String },
    #[error("framework {framework:?} is not in the catalogue")]
    UnknownFramework { framework: String },
    #[error("requirement {reference} does not exist")]
    UnknownRequirement { reference: String },
    #[error("a mapping must join two different requirements")]
    SelfMapping,
    #[error("is {found} characters long; at most {max} are allowed")]
    TooLong { max: usize, found: usize },
    #[error("{value:?} is reserved and cannot name a framework")]
    ReservedKey { value: String },
    #[error("cannot be stored: it does not read back unchanged as an Assay pack")]
    NotStorable,
    #[error("must have {min} to {max} entries, has {found}")]
    Count {
        min: usize,
        max: usize,
        found: usize,
    },
}

/// Every problem found, in document order. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CatalogueError {
    pub problems: Vec<Problem>,
}

impl CatalogueError {
    /// True when some problem sits exactly at `path` in any document (handy in tests and UIs).
    pub fn has_path(&self, path: &str) -> bool {
        self.problems.iter().any(|p| p.path == path)
    }
}

impl fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{n} problem{} in the catalogue",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// Turn a collected list into a result: `Ok(value)` only when nothing went wrong.
pub(crate) fn finish<T>(value: T, problems: Vec<Problem>) -> Result<T, CatalogueError> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(CatalogueError { problems })
    }
}
