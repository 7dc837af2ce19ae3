//! A path-tracking walker over parsed YAML. Packs are read from an untyped YAML tree rather
//! than straight into serde structs because serde stops at the first error and does not say
//! where in the tree it was; authors need every problem with its path in one pass.

use serde_norway::{Mapping, Value};

use super::error::{CatalogueError, Problem, ProblemKind};

/// Parse `text` as YAML, reporting a syntax error with its line and column.
pub(crate) fn parse_yaml(document: &str, text: &str) -> Result<Value, CatalogueError> {
    serde_norway::from_str::<Value>(text).map_err(|e| {
        let location = e.location();
        CatalogueError {
            problems: vec![Problem::new(
                document,
                "",
                ProblemKind::Syntax {
                    message: e.to_string(),
                    line: location.as_ref().map(|l| l.line()),
                    column: location.as_ref().map(|l| l.column()),
                },
            )],
        }
    })
}

/// Collects problems for one document while its tree is walked.
pub(crate) struct Reader<'d> {
    pub document: &'d str,
    pub problems: Vec<Problem>,
}

/// A YAML mapping together with the path that leads to it.
pub(crate) struct Obj<'v> {
    map: &'v Mapping,
    pub path: String,
}

impl<'v> Obj<'v> {
    pub fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn field_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl<'d> Reader<'d> {
    pub fn new(document: &'d str) -> Self {
        Self {
            document,
            problems: Vec::new(),
        }
    }

    pub fn report(&mut self, path: impl Into<String>, kind: ProblemKind) {
        self.problems.push(Problem::new(self.document, path, kind));
    }

    /// `value` as a mapping whose keys are all in `allowed`; unknown keys are reported
    /// because a misspelt optional field would otherwise be silently ignored.
    pub fn object<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<Obj<'v>> {
        let Some(map) = value.as_mapping() else {
            self.report(
                path,
                ProblemKind::WrongType {
                    expected: "a mapping",
                },
            );
            return None;
        };
        let obj = Obj {
            map,
            path: path.to_owned(),
        };
        for (key, _) in map {
            match key.as_str() {
                Some(k) if allowed.contains(&k) => {}
                Some(k) => self.report(obj.field_path(k), ProblemKind::UnknownField),
                None => self.report(
                    path,
                    ProblemKind::WrongType {
                        expected: "string keys",
                    },
                ),
            }
        }
        Some(obj)
    }

    /// A required object field.
    pub fn object_field<'v>(
        &mut self,
        obj: &Obj<'v>,
        key: &str,
        allowed: &[&str],
    ) -> Option<Obj<'v>> {
        let path = obj.field_path(key);
        match obj.get(key) {
            Some(v) => self.object(v, &path, allowed),
            None => {
                self.report(path, ProblemKind::Missing);
                None
            }
        }
    }

    /// An optional object field.
    pub fn opt_object_field<'v>(
        &mut self,
        obj: &Obj<'v>,
        key: &str,
        allowed: &[&str],
    ) -> Option<Obj<'v>> {
        let value = obj.get(key)?;
        self.object(value, &obj.field_path(key), allowed)
    }

    pub fn string_at(&mut self, value: &Value, path: &str) -> Option<String> {
        match value.as_str() {
            Some(s) if s.trim().is_empty() => {
                self.report(path, ProblemKind::Empty);
                None
            }
            Some(s) => Some(s.trim().to_owned()),
            None => {
                // Numbers are refused rather than converted: `4.10` would silently become "4.1".
                self.report(
                    path,
                    ProblemKind::WrongType {
                        expected: "a string (quote numbers such as \"4.1\")",
                    },
                );
                None
            }
        }
    }

    pub fn string(&mut self, obj: &Obj, key: &str) -> Option<String> {
        match obj.get(key) {
            Some(v) => self.string_at(v, &obj.field_path(key)),
            None => {
                self.report(obj.field_path(key), ProblemKind::Missing);
                None
            }
        }
    }

    pub fn opt_string(&mut self, obj: &Obj, key: &str) -> Option<String> {
        let value = obj.get(key)?;
        self.string_at(value, &obj.field_path(key))
    }

    pub fn opt_bool(&mut self, obj: &Obj, key: &str) -> Option<bool> {
        let value = obj.get(key)?;
        let parsed = value.as_bool();
        if parsed.is_none() {
            self.report(
                obj.field_path(key),
                ProblemKind::WrongType {
                    expected: "true or false",
                },
            );
        }
        parsed
    }

    pub fn opt_u32(&mut self, obj: &Obj, key: &str) -> Option<u32> {
        let value = obj.get(key)?;
        let parsed = value.as_u64().and_then(|n| u32::try_from(n).ok());
        if parsed.is_none() {
            self.report(
                obj.field_path(key),
                ProblemKind::WrongType {
                    expected: "a whole number",
                },
            );
        }
        parsed
    }

    /// A sequence field with each item's path (`requirements[3]`). Missing counts as a
    /// problem only when `required`.
    pub fn list<'v>(
        &mut self,
        obj: &Obj<'v>,
        key: &str,
        required: bool,
    ) -> Vec<(&'v Value, String)> {
        let path = obj.field_path(key);
        match obj.get(key) {
            None if required => {
                self.report(path, ProblemKind::Missing);
                Vec::new()
            }
            None => Vec::new(),
            Some(value) => match value.as_sequence() {
                Some(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v, format!("{path}[{i}]")))
                    .collect(),
                None => {
                    self.report(path, ProblemKind::WrongType { expected: "a list" });
                    Vec::new()
                }
            },
        }
    }

    /// A stable machine key: lower-case ASCII letters, digits and `.-_`.
    pub fn key(&mut self, obj: &Obj, field: &str) -> Option<String> {
        let key = self.string(obj, field)?;
        if is_valid_key(&key) {
            Some(key)
        } else {
            self.report(
                obj.field_path(field),
                ProblemKind::InvalidKey { value: key },
            );
            None
        }
    }
}

pub(crate) fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// Check the top-level `format` field before reading anything else, so a file of the wrong
/// kind gets one clear message instead of a cascade of unknown-field problems.
pub(crate) fn check_format(reader: &mut Reader, root: &Value, expected: &str) -> bool {
    let found = root
        .as_mapping()
        .and_then(|m| m.get("format"))
        .and_then(Value::as_str);
    match found {
        Some(f) if f == expected => true,
        Some(f) => {
            reader.report(
                "format",
                ProblemKind::UnsupportedFormat {
                    found: f.to_owned(),
                    expected: expected.to_owned(),
                },
            );
            false
        }
        None if root.as_mapping().is_none() => {
            reader.report(
                "",
                ProblemKind::WrongType {
                    expected: "a mapping at the top level",
                },
            );
            false
        }
        None => {
            reader.report("format", ProblemKind::Missing);
            false
        }
    }
}
