//! Assay's own YAML documents (docs/pack-format.md): framework packs, common-control
//! libraries and requirement-mapping sets. Reading a document checks everything that can be
//! checked inside it; references to other documents are checked when a catalogue is built.

use std::collections::{HashMap, HashSet};

use super::error::{CatalogueError, Problem, ProblemKind, finish};
use super::model::{
    CommonControl, ControlLibrary, Framework, Licence, MappingSet, Provenance, Relationship,
    Requirement, RequirementMapping, RequirementRef,
};
use super::reader::{Obj, Reader, check_format, parse_yaml};

pub const FRAMEWORK_FORMAT: &str = "assay.framework.v1";
pub const CONTROLS_FORMAT: &str = "assay.controls.v1";
pub const MAPPINGS_FORMAT: &str = "assay.mappings.v1";

const LICENCE_FIELDS: &[&str] = &["id", "name", "url", "note"];
const PROVENANCE_FIELDS: &[&str] = &["source", "url", "note"];

/// Any of the three document kinds, told apart by their `format` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    Framework(Framework),
    Controls(ControlLibrary),
    Mappings(MappingSet),
}

/// Read a document of any kind; `document` names it in problems (usually the file name).
pub fn parse_document(document: &str, text: &str) -> Result<Document, CatalogueError> {
    read_document(document, text).finish()
}

pub(crate) fn read_document(document: &str, text: &str) -> Reading<Document> {
    let root = match parse_yaml(document, text) {
        Ok(root) => root,
        Err(e) => return Reading::failed(e),
    };
    let format = root
        .as_mapping()
        .and_then(|m| m.get("format"))
        .and_then(|v| v.as_str());
    fn wrap<T>(reading: Reading<T>, kind: fn(T) -> Document) -> Reading<Document> {
        Reading {
            value: reading.value.map(kind),
            problems: reading.problems,
        }
    }
    match format {
        Some(CONTROLS_FORMAT) => wrap(read_controls(document, text), Document::Controls),
        Some(MAPPINGS_FORMAT) => wrap(read_mappings(document, text), Document::Mappings),
        // Anything else is reported against the framework format, the most common kind.
        _ => wrap(read_framework(document, text), Document::Framework),
    }
}

/// Read and check a framework pack.
pub fn parse_framework(document: &str, text: &str) -> Result<Framework, CatalogueError> {
    read_framework(document, text).finish()
}

/// What reading one document produced: the value as far as it could be read (none when the
/// text is not YAML or not this kind of document) and every problem found. Partial values
/// let a catalogue check cross-references even in documents that have other problems.
pub(crate) struct Reading<T> {
    pub value: Option<T>,
    pub problems: Vec<Problem>,
}

impl<T> Reading<T> {
    fn failed(e: CatalogueError) -> Self {
        Self {
            value: None,
            problems: e.problems,
        }
    }

    pub fn finish(self) -> Result<T, CatalogueError> {
        match self.value {
            Some(value) => finish(value, self.problems),
            None => Err(CatalogueError {
                problems: self.problems,
            }),
        }
    }
}

pub(crate) fn read_framework(document: &str, text: &str) -> Reading<Framework> {
    let root = match parse_yaml(document, text) {
        Ok(root) => root,
        Err(e) => return Reading::failed(e),
    };
    let mut r = Reader::new(document);
    if !check_format(&mut r, &root, FRAMEWORK_FORMAT) {
        return Reading {
            value: None,
            problems: r.problems,
        };
    }
    let root = r
        .object(&root, "", &["format", "framework", "requirements"])
        .expect("check_format saw a mapping");

    let head = r.object_field(
        &root,
        "framework",
        &[
            "key",
            "name",
            "version",
            "publisher",
            "licence",
            "provenance",
            "description",
        ],
    );
    let mut framework = blank_framework();
    if let Some(head) = &head {
        framework.key = r.key(head, "key").unwrap_or_default();
        framework.name = r.string(head, "name").unwrap_or_default();
        framework.version = r.string(head, "version").unwrap_or_default();
        framework.publisher = r.string(head, "publisher").unwrap_or_default();
        framework.description = r.string(head, "description").unwrap_or_default();
        framework.licence = read_licence(&mut r, head, true).unwrap_or_else(blank_licence);
        framework.provenance = read_provenance(&mut r, head, true).unwrap_or_else(blank_provenance);
    }

    // What the author wrote explicitly; the rest is defaulted once the tree is known.
    let mut explicit: Vec<(Option<u32>, Option<bool>)> = Vec::new();
    for (value, path) in r.list(&root, "requirements", true) {
        let Some(item) = r.object(
            value,
            &path,
            &[
                "ref",
                "title",
                "description",
                "parent",
                "assessable",
                "order",
                "licence",
                "provenance",
            ],
        ) else {
            // Keep indices aligned with the file so later paths stay right.
            framework.requirements.push(blank_requirement(&framework));
            explicit.push((None, None));
            continue;
        };
        explicit.push((r.opt_u32(&item, "order"), r.opt_bool(&item, "assessable")));
        framework.requirements.push(Requirement {
            ref_id: r.string(&item, "ref").unwrap_or_default(),
            title: r.string(&item, "title").unwrap_or_default(),
            description: r.string(&item, "description").unwrap_or_default(),
            parent: r.opt_string(&item, "parent"),
            assessable: false,
            order: 0,
            licence: read_licence(&mut r, &item, false)
                .unwrap_or_else(|| framework.licence.clone()),
            provenance: read_provenance(&mut r, &item, false)
                .unwrap_or_else(|| framework.provenance.clone()),
        });
    }
    apply_defaults(&mut framework, &explicit);

    let mut problems = r.problems;
    problems.extend(framework_problems(document, &framework));
    Reading {
        value: Some(framework),
        problems,
    }
}

/// Defaults that keep packs short: `order` is the position among siblings in file order,
/// and a requirement is assessable unless it has children (grouping nodes are not).
fn apply_defaults(framework: &mut Framework, explicit: &[(Option<u32>, Option<bool>)]) {
    let parents: HashSet<String> = framework
        .requirements
        .iter()
        .filter_map(|r| r.parent.clone())
        .collect();
    let mut next_position: HashMap<Option<String>, u32> = HashMap::new();
    for (requirement, (order, assessable)) in framework.requirements.iter_mut().zip(explicit) {
        requirement.assessable = assessable.unwrap_or(!parents.contains(&requirement.ref_id));
        let position = next_position.entry(requirement.parent.clone()).or_insert(0);
        *position += 1;
        requirement.order = order.unwrap_or(*position);
    }
}

/// Structural checks of one framework, whatever it was read from (YAML here, OSCAL or
/// Prowler in importers): paths are `requirements[i].field` in the framework's own order.
pub fn framework_problems(document: &str, framework: &Framework) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut report = |path: String, kind| problems.push(Problem::new(document, path, kind));

    if !super::reader::is_valid_key(&framework.key) && !framework.key.is_empty() {
        report(
            "framework.key".into(),
            ProblemKind::InvalidKey {
                value: framework.key.clone(),
            },
        );
    }
    for (field, value) in [
        ("framework.licence.id", &framework.licence.id),
        ("framework.licence.name", &framework.licence.name),
        ("framework.provenance.source", &framework.provenance.source),
    ] {
        if value.trim().is_empty() {
            report(field.into(), ProblemKind::Missing);
        }
    }
    if framework.requirements.is_empty() {
        report("requirements".into(), ProblemKind::Empty);
    }
    let framework_has_licence =
        !framework.licence.id.trim().is_empty() && !framework.licence.name.trim().is_empty();
    let framework_has_provenance = !framework.provenance.source.trim().is_empty();

    let mut first_index: HashMap<&str, usize> = HashMap::new();
    for (i, req) in framework.requirements.iter().enumerate() {
        if req.ref_id.is_empty() {
            continue; // already reported as missing by the reader
        }
        if let Some(first) = first_index.get(req.ref_id.as_str()) {
            report(
                format!("requirements[{i}].ref"),
                ProblemKind::Duplicate {
                    what: "requirement ref",
                    value: req.ref_id.clone(),
                    first: format!("requirements[{first}]"),
                },
            );
        } else {
            first_index.insert(&req.ref_id, i);
        }
        // A requirement inherits from the framework, so a blank framework licence is
        // reported once above rather than once per requirement.
        if framework_has_licence
            && (req.licence.id.trim().is_empty() || req.licence.name.trim().is_empty())
        {
            report(format!("requirements[{i}].licence"), ProblemKind::Missing);
        }
        if framework_has_provenance && req.provenance.source.trim().is_empty() {
            report(
                format!("requirements[{i}].provenance"),
                ProblemKind::Missing,
            );
        }
    }

    for (i, req) in framework.requirements.iter().enumerate() {
        let Some(parent) = &req.parent else { continue };
        if !first_index.contains_key(parent.as_str()) {
            report(
                format!("requirements[{i}].parent"),
                ProblemKind::UnknownParent {
                    parent: parent.clone(),
                },
            );
            continue;
        }
        // Walk up from `req`. Coming back to it means it sits on a loop; the loop is reported
        // once, at whichever member comes first in the file.
        let mut chain = vec![i];
        let mut current = first_index.get(parent.as_str()).copied();
        while let Some(j) = current {
            if j == i {
                if chain.iter().all(|&member| member >= i) {
                    let names: Vec<&str> = chain
                        .iter()
                        .chain(std::iter::once(&i))
                        .map(|&m| framework.requirements[m].ref_id.as_str())
                        .collect();
                    report(
                        format!("requirements[{i}].parent"),
                        ProblemKind::Cycle {
                            chain: names.join(" -> "),
                        },
                    );
                }
                break;
            }
            if chain.contains(&j) {
                break; // a loop further up, reported from one of its own members
            }
            chain.push(j);
            current = framework.requirements[j]
                .parent
                .as_deref()
                .and_then(|p| first_index.get(p).copied());
        }
    }
    problems
}

/// Read and check a common-control library (framework references are checked later).
pub fn parse_controls(document: &str, text: &str) -> Result<ControlLibrary, CatalogueError> {
    read_controls(document, text).finish()
}

pub(crate) fn read_controls(document: &str, text: &str) -> Reading<ControlLibrary> {
    let root = match parse_yaml(document, text) {
        Ok(root) => root,
        Err(e) => return Reading::failed(e),
    };
    let mut r = Reader::new(document);
    let mut library = ControlLibrary {
        key: String::new(),
        name: String::new(),
        version: String::new(),
        licence: blank_licence(),
        provenance: blank_provenance(),
        controls: Vec::new(),
    };
    if !check_format(&mut r, &root, CONTROLS_FORMAT) {
        return Reading {
            value: None,
            problems: r.problems,
        };
    }
    let root = r
        .object(&root, "", &["format", "library", "controls"])
        .expect("check_format saw a mapping");
    if let Some(head) = r.object_field(
        &root,
        "library",
        &["key", "name", "version", "licence", "provenance"],
    ) {
        library.key = r.key(&head, "key").unwrap_or_default();
        library.name = r.string(&head, "name").unwrap_or_default();
        library.version = r.string(&head, "version").unwrap_or_default();
        library.licence = read_licence(&mut r, &head, true).unwrap_or_else(blank_licence);
        library.provenance = read_provenance(&mut r, &head, true).unwrap_or_else(blank_provenance);
    }

    let mut first_key: HashMap<String, String> = HashMap::new();
    for (value, path) in r.list(&root, "controls", true) {
        let Some(item) = r.object(
            value,
            &path,
            &[
                "key",
                "title",
                "domain",
                "description",
                "guidance",
                "questions",
                "maps",
            ],
        ) else {
            continue;
        };
        let key = r.string(&item, "key").unwrap_or_default();
        if !key.is_empty() {
            if let Some(first) = first_key.get(&key) {
                r.report(
                    item.field_path("key"),
                    ProblemKind::Duplicate {
                        what: "control key",
                        value: key.clone(),
                        first: first.clone(),
                    },
                );
            } else {
                first_key.insert(key.clone(), path.clone());
            }
        }
        let questions: Vec<String> = r
            .list(&item, "questions", true)
            .into_iter()
            .filter_map(|(v, p)| r.string_at(v, &p))
            .collect();
        if item.get("questions").is_some() && !(1..=2).contains(&questions.len()) {
            r.report(
                item.field_path("questions"),
                ProblemKind::Count {
                    min: 1,
                    max: 2,
                    found: questions.len(),
                },
            );
        }
        let maps_to = read_control_maps(&mut r, &item);
        library.controls.push(CommonControl {
            key,
            title: r.string(&item, "title").unwrap_or_default(),
            domain: r.string(&item, "domain").unwrap_or_default(),
            description: r.string(&item, "description").unwrap_or_default(),
            guidance: r.string(&item, "guidance").unwrap_or_default(),
            questions,
            maps_to,
            licence: library.licence.clone(),
            provenance: library.provenance.clone(),
        });
    }
    Reading {
        value: Some(library),
        problems: r.problems,
    }
}

/// `maps: { framework-key: [ref, ...] }`, flattened in file order.
fn read_control_maps(r: &mut Reader, item: &Obj) -> Vec<RequirementRef> {
    let mut refs = Vec::new();
    let Some(maps) = item.get("maps") else {
        return refs;
    };
    let path = item.field_path("maps");
    // Keys here are framework keys, checked against the catalogue when it is built.
    let Some(maps) = maps.as_mapping() else {
        r.report(
            path,
            ProblemKind::WrongType {
                expected: "a mapping of framework key to refs",
            },
        );
        return refs;
    };
    let mut seen = HashSet::new();
    for (framework, value) in maps {
        let Some(framework) = framework.as_str() else {
            r.report(
                path.clone(),
                ProblemKind::WrongType {
                    expected: "framework keys",
                },
            );
            continue;
        };
        let list_path = format!("{path}.{framework}");
        let Some(items) = value.as_sequence() else {
            r.report(
                list_path,
                ProblemKind::WrongType {
                    expected: "a list of requirement refs",
                },
            );
            continue;
        };
        for (i, v) in items.iter().enumerate() {
            let item_path = format!("{list_path}[{i}]");
            let Some(ref_id) = r.string_at(v, &item_path) else {
                continue;
            };
            let reference = RequirementRef::new(framework, ref_id);
            if !seen.insert(reference.clone()) {
                r.report(
                    item_path,
                    ProblemKind::Duplicate {
                        what: "mapping",
                        value: reference.to_string(),
                        first: list_path.clone(),
                    },
                );
                continue;
            }
            refs.push(reference);
        }
    }
    refs
}

/// Read and check a requirement-mapping set (requirement references are checked later).
pub fn parse_mappings(document: &str, text: &str) -> Result<MappingSet, CatalogueError> {
    read_mappings(document, text).finish()
}

pub(crate) fn read_mappings(document: &str, text: &str) -> Reading<MappingSet> {
    let root = match parse_yaml(document, text) {
        Ok(root) => root,
        Err(e) => return Reading::failed(e),
    };
    let mut r = Reader::new(document);
    let mut set = MappingSet {
        key: String::new(),
        name: String::new(),
        licence: blank_licence(),
        provenance: blank_provenance(),
        mappings: Vec::new(),
    };
    if !check_format(&mut r, &root, MAPPINGS_FORMAT) {
        return Reading {
            value: None,
            problems: r.problems,
        };
    }
    let root = r
        .object(&root, "", &["format", "set", "mappings"])
        .expect("check_format saw a mapping");
    if let Some(head) = r.object_field(&root, "set", &["key", "name", "licence", "provenance"]) {
        set.key = r.key(&head, "key").unwrap_or_default();
        set.name = r.string(&head, "name").unwrap_or_default();
        set.licence = read_licence(&mut r, &head, true).unwrap_or_else(blank_licence);
        set.provenance = read_provenance(&mut r, &head, true).unwrap_or_else(blank_provenance);
    }
    let mut seen: HashMap<(RequirementRef, RequirementRef), String> = HashMap::new();
    for (value, path) in r.list(&root, "mappings", true) {
        let Some(item) = r.object(value, &path, &["from", "to", "relationship", "note"]) else {
            continue;
        };
        let from = read_reference(&mut r, &item, "from");
        let to = read_reference(&mut r, &item, "to");
        let relationship = r.string(&item, "relationship").and_then(|text| {
            let parsed = Relationship::parse(&text);
            if parsed.is_none() {
                r.report(
                    item.field_path("relationship"),
                    ProblemKind::InvalidRelationship { value: text },
                );
            }
            parsed
        });
        let note = r.opt_string(&item, "note");
        let (Some(from), Some(to), Some(relationship)) = (from, to, relationship) else {
            continue;
        };
        if from == to {
            r.report(path.clone(), ProblemKind::SelfMapping);
            continue;
        }
        if let Some(first) = seen.get(&(from.clone(), to.clone())) {
            r.report(
                path.clone(),
                ProblemKind::Duplicate {
                    what: "mapping",
                    value: format!("{from} -> {to}"),
                    first: first.clone(),
                },
            );
            continue;
        }
        seen.insert((from.clone(), to.clone()), path.clone());
        set.mappings.push(RequirementMapping {
            from,
            to,
            relationship,
            note,
        });
    }
    Reading {
        value: Some(set),
        problems: r.problems,
    }
}

/// `framework:ref`, split at the first colon (framework keys never contain one).
fn read_reference(r: &mut Reader, item: &Obj, field: &str) -> Option<RequirementRef> {
    let text = r.string(item, field)?;
    match text.split_once(':') {
        Some((framework, ref_id)) if !framework.trim().is_empty() && !ref_id.trim().is_empty() => {
            Some(RequirementRef::new(framework.trim(), ref_id.trim()))
        }
        _ => {
            r.report(
                item.field_path(field),
                ProblemKind::InvalidReference { value: text },
            );
            None
        }
    }
}

fn read_licence(r: &mut Reader, obj: &Obj, required: bool) -> Option<Licence> {
    let licence = if required {
        r.object_field(obj, "licence", LICENCE_FIELDS)?
    } else {
        r.opt_object_field(obj, "licence", LICENCE_FIELDS)?
    };
    Some(Licence {
        id: r.string(&licence, "id").unwrap_or_default(),
        name: r.string(&licence, "name").unwrap_or_default(),
        url: r.opt_string(&licence, "url"),
        note: r.opt_string(&licence, "note"),
    })
}

fn read_provenance(r: &mut Reader, obj: &Obj, required: bool) -> Option<Provenance> {
    let provenance = if required {
        r.object_field(obj, "provenance", PROVENANCE_FIELDS)?
    } else {
        r.opt_object_field(obj, "provenance", PROVENANCE_FIELDS)?
    };
    Some(Provenance {
        source: r.string(&provenance, "source").unwrap_or_default(),
        url: r.opt_string(&provenance, "url"),
        note: r.opt_string(&provenance, "note"),
    })
}

fn blank_licence() -> Licence {
    Licence {
        id: String::new(),
        name: String::new(),
        url: None,
        note: None,
    }
}

fn blank_provenance() -> Provenance {
    Provenance {
        source: String::new(),
        url: None,
        note: None,
    }
}

fn blank_framework() -> Framework {
    Framework {
        key: String::new(),
        name: String::new(),
        version: String::new(),
        publisher: String::new(),
        licence: blank_licence(),
        provenance: blank_provenance(),
        description: String::new(),
        requirements: Vec::new(),
    }
}

fn blank_requirement(framework: &Framework) -> Requirement {
    Requirement {
        ref_id: String::new(),
        title: String::new(),
        description: String::new(),
        parent: None,
        assessable: false,
        order: 0,
        licence: framework.licence.clone(),
        provenance: framework.provenance.clone(),
    }
}
