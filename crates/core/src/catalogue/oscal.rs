//! OSCAL 1.1 catalogs and basic profiles in and out (R-21, B-1).
//!
//! Import: groups and controls become requirements in a hierarchy (groups are not
//! assessable, controls are), the ref id is the control's `label` prop (else its `id`), and a
//! control's description is its statement and guidance prose with parameters written in.
//! Export: non-assessable requirements become groups, the rest controls with a `statement`
//! part. Everything a Framework holds that OSCAL has no field for (key, licence,
//! provenance, an order or assessable flag that nesting cannot express) travels as props in
//! Assay's namespace, so export -> import gives back the same framework.
//! The mapping is documented in docs/pack-format.md.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{CatalogueError, Problem, ProblemKind};
use super::import::{
    ImportOptions, JsonReader, SourcePaths, join, parse_json, present, slug, unstated_licence,
};
use super::model::{Framework, Licence, Provenance, Requirement};
use super::pack::framework_problems;

/// The OSCAL version exported catalogs declare.
pub const OSCAL_VERSION: &str = "1.1.2";
/// Namespace of the props Assay adds; OSCAL tools ignore props in namespaces they do not know.
pub const ASSAY_OSCAL_NS: &str = "https://github.com/assay-compliance/assay/ns/oscal";
/// Namespace of deterministic UUIDs: a framework exported twice gets the same catalog uuid.
const UUID_BASE: &str = "https://github.com/assay-compliance/assay/frameworks/";

/// What an OSCAL profile's import `href` resolves to.
#[derive(Debug, Clone)]
pub enum ProfileSource {
    /// A framework already in the catalogue; `with-ids` match its refs (or the ids its
    /// OSCAL export would have, case-insensitively).
    Framework(Box<Framework>),
    /// The text of an OSCAL catalog JSON document.
    CatalogJson(String),
}

/// Looks up a profile's import `href`; `None` when it is not known.
pub type ProfileResolver<'a> = dyn Fn(&str) -> Option<ProfileSource> + 'a;

/// Read an OSCAL catalog JSON document as a framework.
pub fn parse_oscal_catalog(
    text: &str,
    options: &ImportOptions,
) -> Result<Framework, CatalogueError> {
    catalog_from_value(&parse_json(&options.document, text)?, options)
}

/// Read an OSCAL profile JSON document as the framework it selects, resolving its imports
/// with `options.resolver`.
pub fn parse_oscal_profile(
    text: &str,
    options: &ImportOptions,
) -> Result<Framework, CatalogueError> {
    profile_from_value(&parse_json(&options.document, text)?, options)
}

pub(crate) fn catalog_from_value(
    root: &Value,
    options: &ImportOptions,
) -> Result<Framework, CatalogueError> {
    let reading = read_catalog(root, options);
    if reading.problems.is_empty() {
        Ok(reading.framework)
    } else {
        Err(CatalogueError {
            problems: reading.problems,
        })
    }
}

// ------------------------------------------------------------------------------ import

/// A catalog as far as it could be read, with the OSCAL id of every requirement (profiles
/// select by id).
struct CatalogReading {
    framework: Framework,
    oscal_ids: Vec<String>,
    problems: Vec<Problem>,
}

/// One group or control before the hierarchy is flattened into file order.
struct Node {
    requirement: Requirement,
    explicit_order: Option<u32>,
    oscal_id: String,
    node_path: String,
    ref_path: String,
    children: Vec<Node>,
}

/// A prop as OSCAL writes it: `{name, value, ns?, class?}`.
struct Prop {
    name: String,
    value: String,
    ns: Option<String>,
    class: Option<String>,
    path: String,
}

fn read_props(r: &mut JsonReader, obj: &Map<String, Value>, path: &str) -> Vec<Prop> {
    let mut props = Vec::new();
    for (value, prop_path) in r.array(obj, path, "props", false) {
        let Some(prop) = r.object(value, &prop_path) else {
            continue;
        };
        let name = r.string(prop, &prop_path, "name", true);
        let value = r.string(prop, &prop_path, "value", true);
        let ns = r.string(prop, &prop_path, "ns", false);
        let class = r.string(prop, &prop_path, "class", false);
        if let (Some(name), Some(value)) = (name, value) {
            props.push(Prop {
                name,
                value,
                ns,
                class,
                path: join(&prop_path, "value"),
            });
        }
    }
    props
}

fn assay_prop<'p>(props: &'p [Prop], name: &str) -> Option<&'p Prop> {
    props
        .iter()
        .find(|p| p.name == name && p.ns.as_deref() == Some(ASSAY_OSCAL_NS))
}

/// The publisher-facing label (`AC-2(1)`), preferring the plain one over class-specific
/// variants such as NIST's zero-padded `sp800-53a` label.
fn label_prop(props: &[Prop]) -> Option<&Prop> {
    let labels = || {
        props
            .iter()
            .filter(|p| p.name == "label" && p.ns.as_deref().is_none_or(is_oscal_ns))
    };
    labels()
        .find(|p| p.class.is_none())
        .or_else(|| labels().next())
}

fn is_oscal_ns(ns: &str) -> bool {
    ns == "http://csrc.nist.gov/ns/oscal"
}

fn bool_prop(r: &mut JsonReader, props: &[Prop], name: &str) -> Option<bool> {
    let prop = assay_prop(props, name)?;
    match prop.value.as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            r.report(
                &prop.path,
                ProblemKind::WrongType {
                    expected: "true or false",
                },
            );
            None
        }
    }
}

fn order_prop(r: &mut JsonReader, props: &[Prop]) -> Option<u32> {
    let prop = assay_prop(props, "order")?;
    let order = prop.value.parse().ok();
    if order.is_none() {
        r.report(
            &prop.path,
            ProblemKind::WrongType {
                expected: "a whole number",
            },
        );
    }
    order
}

/// Licence from `licence-*` props, when the document states one.
fn licence_props(r: &mut JsonReader, props: &[Prop], path: &str) -> Option<Licence> {
    let get = |name| assay_prop(props, name).map(|p| p.value.clone());
    let (id, name) = (get("licence-id"), get("licence-name"));
    if id.is_none() && name.is_none() {
        return None;
    }
    if id.is_none() || name.is_none() {
        // Half a licence is a damaged export; inventing the other half would hide that.
        r.report(join(path, "props"), ProblemKind::Missing);
    }
    Some(Licence {
        id: id.unwrap_or_default(),
        name: name.unwrap_or_default(),
        url: get("licence-url"),
        note: get("licence-note"),
    })
}

fn provenance_props(props: &[Prop]) -> Option<Provenance> {
    let get = |name| assay_prop(props, name).map(|p| p.value.clone());
    Some(Provenance {
        source: get("provenance-source")?,
        url: get("provenance-url"),
        note: get("provenance-note"),
    })
}

/// Parameter id -> the text written in its place in prose.
type Params = BTreeMap<String, String>;

fn read_params(r: &mut JsonReader, obj: &Map<String, Value>, path: &str, params: &mut Params) {
    for (value, param_path) in r.array(obj, path, "params", false) {
        let Some(param) = r.object(value, &param_path) else {
            continue;
        };
        let Some(id) = r.string(param, &param_path, "id", true) else {
            continue;
        };
        let text = param_text(param, &id, params);
        params.insert(id, text);
    }
}

/// How a parameter reads in prose: its values when set, else its choices, else what it asks
/// for (label or guideline), in the bracket style of NIST's own rendering.
fn param_text(param: &Map<String, Value>, id: &str, params: &Params) -> String {
    let strings = |value: Option<&Value>| -> Vec<String> {
        value
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| insert_params(s, params))
                    .collect()
            })
            .unwrap_or_default()
    };
    let values = strings(param.get("values"));
    if !values.is_empty() {
        return values.join(", ");
    }
    if let Some(select) = param.get("select").and_then(Value::as_object) {
        let choices = strings(select.get("choice"));
        let many = select.get("how-many").and_then(Value::as_str) == Some("one-or-more");
        let kind = if many {
            "Selection (one or more)"
        } else {
            "Selection"
        };
        return format!("[{kind}: {}]", choices.join("; "));
    }
    let label = param.get("label").and_then(Value::as_str).or_else(|| {
        param
            .get("guidelines")
            .and_then(Value::as_array)
            .and_then(|g| g.first())
            .and_then(|g| g.get("prose"))
            .and_then(Value::as_str)
    });
    format!("[Assignment: {}]", label.map(str::trim).unwrap_or(id))
}

/// Replace `{{ insert: param, id }}` with the parameter's text; unknown ids stay visible.
fn insert_params(prose: &str, params: &Params) -> String {
    let mut out = String::new();
    let mut rest = prose;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = rest[start + 2..start + len].trim();
        let id = inner
            .strip_prefix("insert:")
            .and_then(|s| s.split_once(','))
            .filter(|(kind, _)| kind.trim() == "param")
            .map(|(_, id)| id.trim());
        match id.and_then(|id| params.get(id)) {
            Some(text) => out.push_str(text),
            None => out.push_str(&rest[start..start + len + 2]),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Prose of `parts` (and their sub-parts, one per line, with their labels), parameters
/// written in. `names` limits the top level to parts of those names.
fn render_parts(parts: &[Value], names: Option<&[&str]>, params: &Params) -> Vec<String> {
    let mut blocks = Vec::new();
    for part in parts.iter().filter_map(Value::as_object) {
        let name = part.get("name").and_then(Value::as_str).unwrap_or_default();
        if names.is_some_and(|names| !names.contains(&name)) {
            continue;
        }
        let mut lines = Vec::new();
        render_part(part, params, &mut lines);
        if lines.is_empty() {
            continue;
        }
        let text = lines.join("\n");
        blocks.push(if name == "guidance" {
            format!("Guidance: {text}")
        } else {
            text
        });
    }
    blocks
}

fn render_part(part: &Map<String, Value>, params: &Params, lines: &mut Vec<String>) {
    let label = part
        .get("props")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some("label"))
        .and_then(|p| p.get("value"))
        .and_then(Value::as_str);
    let prose = part
        .get("prose")
        .and_then(Value::as_str)
        .map(|p| insert_params(p.trim(), params))
        .filter(|p| !p.is_empty());
    match (label, prose) {
        (Some(label), Some(prose)) => lines.push(format!("{label} {prose}")),
        (None, Some(prose)) => lines.push(prose),
        (Some(label), None) => lines.push(label.to_owned()),
        (None, None) => {}
    }
    for sub in part
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        render_part(sub, params, lines);
    }
}

struct CatalogWalk<'r, 'd> {
    r: &'r mut JsonReader<'d>,
    licence: Licence,
    provenance: Provenance,
    /// OSCAL id -> where it was first seen, to report duplicates.
    ids: HashMap<String, String>,
}

impl CatalogWalk<'_, '_> {
    fn container(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        parent: Option<&str>,
        params: &Params,
        groups_allowed: bool,
    ) -> Vec<Node> {
        let mut nodes = Vec::new();
        if groups_allowed {
            for (value, group_path) in self.r.array(obj, path, "groups", false) {
                nodes.extend(self.node(value, &group_path, parent, params, false));
            }
        }
        for (value, control_path) in self.r.array(obj, path, "controls", false) {
            nodes.extend(self.node(value, &control_path, parent, params, true));
        }
        nodes
    }

    fn node(
        &mut self,
        value: &Value,
        path: &str,
        parent: Option<&str>,
        params: &Params,
        is_control: bool,
    ) -> Option<Node> {
        let obj = self.r.object(value, path)?;
        // OSCAL requires ids on controls; on groups they are optional.
        let id = self.r.string(obj, path, "id", is_control);
        let title = self.r.string(obj, path, "title", true);
        let props = read_props(self.r, obj, path);
        if let Some(id) = &id {
            let id_path = join(path, "id");
            if let Some(first) = self.ids.get(id) {
                let first = first.clone();
                self.r.report(
                    id_path,
                    ProblemKind::Duplicate {
                        what: "OSCAL id",
                        value: id.clone(),
                        first,
                    },
                );
            } else {
                self.ids.insert(id.clone(), id_path);
            }
        }
        // Withdrawn controls (NIST keeps them as tombstones) are not requirements any more.
        if is_control
            && props
                .iter()
                .any(|p| p.name == "status" && p.value == "withdrawn" && p.ns.is_none())
        {
            return None;
        }
        let (ref_id, ref_path) = match (label_prop(&props), &id, &title) {
            (Some(label), _, _) => (label.value.clone(), label.path.clone()),
            (None, Some(id), _) => (id.clone(), join(path, "id")),
            (None, None, Some(title)) => (title.clone(), join(path, "title")),
            (None, None, None) => (String::new(), join(path, "id")),
        };
        let mut params = params.clone();
        read_params(self.r, obj, path, &mut params);
        let parts: Vec<Value> = self
            .r
            .array(obj, path, "parts", false)
            .into_iter()
            .map(|(v, _)| v.clone())
            .collect();
        let blocks = if is_control {
            render_parts(&parts, Some(&["statement", "guidance"]), &params)
        } else {
            render_parts(&parts, None, &params)
        };
        let title = title.unwrap_or_default();
        let description = if blocks.is_empty() {
            title.clone()
        } else {
            blocks.join("\n\n")
        };
        let assessable = bool_prop(self.r, &props, "assessable").unwrap_or(is_control);
        let explicit_order = order_prop(self.r, &props);
        let licence = licence_props(self.r, &props, path).unwrap_or_else(|| self.licence.clone());
        let provenance = provenance_props(&props).unwrap_or_else(|| self.provenance.clone());
        let children = self.container(obj, path, Some(&ref_id), &params, !is_control);
        Some(Node {
            requirement: Requirement {
                ref_id,
                title,
                description,
                parent: parent.map(str::to_owned),
                assessable,
                order: 0,
                licence,
                provenance,
            },
            explicit_order,
            oscal_id: id.unwrap_or_default(),
            node_path: path.to_owned(),
            ref_path,
            children,
        })
    }
}

/// Siblings take their explicit order, else their position (groups before controls, as
/// OSCAL keeps them in separate arrays); the framework lists them depth-first in that order.
fn flatten(
    nodes: Vec<Node>,
    framework: &mut Framework,
    ids: &mut Vec<String>,
    paths: &mut SourcePaths,
) {
    let mut nodes: Vec<Node> = nodes
        .into_iter()
        .enumerate()
        .map(|(i, mut node)| {
            node.requirement.order = node.explicit_order.unwrap_or(i as u32 + 1);
            node
        })
        .collect();
    nodes.sort_by_key(|n| n.requirement.order);
    for node in nodes {
        framework.requirements.push(node.requirement);
        ids.push(node.oscal_id);
        paths.nodes.push(node.node_path);
        paths.refs.push(node.ref_path);
        flatten(node.children, framework, ids, paths);
    }
}

struct Head {
    title: String,
    version: String,
    publisher: Option<String>,
    remarks: Option<String>,
    link: Option<String>,
    props: Vec<Prop>,
}

fn read_metadata(r: &mut JsonReader, root: &Map<String, Value>, root_path: &str) -> Option<Head> {
    let path = join(root_path, "metadata");
    let metadata = r.required_object(root, root_path, "metadata")?;
    let title = r.string(metadata, &path, "title", true).unwrap_or_default();
    let version = r
        .string(metadata, &path, "version", true)
        .unwrap_or_default();
    let remarks = r.string(metadata, &path, "remarks", false);
    let props = read_props(r, metadata, &path);
    let link = metadata
        .get("links")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("href").and_then(Value::as_str))
        .find(|href| href.starts_with("http"))
        .map(str::to_owned);
    Some(Head {
        title,
        version,
        publisher: publisher(metadata),
        remarks,
        link,
        props,
    })
}

/// The party in the `publisher` role, else `creator`, else the first party named.
fn publisher(metadata: &Map<String, Value>) -> Option<String> {
    let parties: HashMap<&str, &str> = metadata
        .get("parties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p.get("uuid")?.as_str()?, p.get("name")?.as_str()?)))
        .collect();
    let in_role = |role: &str| {
        metadata
            .get("responsible-parties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|rp| rp.get("role-id").and_then(Value::as_str) == Some(role))
            .flat_map(|rp| {
                rp.get("party-uuids")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .filter_map(Value::as_str)
            .find_map(|uuid| parties.get(uuid).copied())
    };
    in_role("publisher")
        .or_else(|| in_role("creator"))
        .or_else(|| {
            metadata
                .get("parties")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|p| p.get("name").and_then(Value::as_str))
        })
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

fn read_catalog(root: &Value, options: &ImportOptions) -> CatalogReading {
    let document = options.document.as_str();
    let mut r = JsonReader::new(document);
    let mut framework = Framework {
        key: String::new(),
        name: String::new(),
        version: String::new(),
        publisher: String::new(),
        licence: unstated_licence(),
        provenance: Provenance {
            source: String::new(),
            url: None,
            note: None,
        },
        description: String::new(),
        requirements: Vec::new(),
    };
    let mut ids = Vec::new();
    let mut paths = SourcePaths {
        nodes: Vec::new(),
        refs: Vec::new(),
        head: "catalog.metadata".into(),
    };
    let catalog = r
        .object(root, "")
        .and_then(|root| r.required_object(root, "", "catalog"));
    if let Some(catalog) = catalog {
        let head = read_metadata(&mut r, catalog, "catalog");
        if let Some(head) = &head {
            fill_head(&mut r, &mut framework, head, options, "catalog");
        }
        let mut params = Params::new();
        read_params(&mut r, catalog, "catalog", &mut params);
        let mut walk = CatalogWalk {
            r: &mut r,
            licence: framework.licence.clone(),
            provenance: framework.provenance.clone(),
            ids: HashMap::new(),
        };
        let nodes = walk.container(catalog, "catalog", None, &params, true);
        flatten(nodes, &mut framework, &mut ids, &mut paths);
        if head.is_some() && framework.requirements.is_empty() {
            r.report("catalog.controls", ProblemKind::Empty);
        }
    }
    let mut problems = r.problems;
    if problems.is_empty() {
        problems = paths.relocate(framework_problems(document, &framework));
    }
    CatalogReading {
        framework,
        oscal_ids: ids,
        problems,
    }
}

/// The framework's own fields from OSCAL metadata, Assay props first, then the caller's
/// fallbacks, then what the metadata implies.
fn fill_head(
    r: &mut JsonReader,
    framework: &mut Framework,
    head: &Head,
    options: &ImportOptions,
    kind: &str,
) {
    let metadata_path = format!("{kind}.metadata");
    framework.key = options
        .key
        .clone()
        .or_else(|| assay_prop(&head.props, "framework-key").map(|p| p.value.clone()))
        .unwrap_or_else(|| slug(&head.title));
    framework.name = head.title.clone();
    framework.version = head.version.clone();
    framework.publisher = head
        .publisher
        .clone()
        .unwrap_or_else(|| "Publisher not stated".into());
    framework.description = head.remarks.clone().unwrap_or_else(|| head.title.clone());
    framework.licence = licence_props(r, &head.props, &metadata_path)
        .or_else(|| options.licence.clone())
        .unwrap_or_else(unstated_licence);
    let document = if options.document.is_empty() {
        String::new()
    } else {
        format!(" {}", options.document)
    };
    framework.provenance = provenance_props(&head.props)
        .or_else(|| options.provenance.clone())
        .unwrap_or_else(|| Provenance {
            source: format!("{}, version {}", head.title, head.version),
            url: head.link.clone(),
            note: Some(format!("Imported from the OSCAL {kind}{document}.")),
        });
}

// ------------------------------------------------------------------------------ profile

pub(crate) fn profile_from_value(
    root: &Value,
    options: &ImportOptions,
) -> Result<Framework, CatalogueError> {
    let document = options.document.as_str();
    let mut r = JsonReader::new(document);
    let mut extra_problems = Vec::new();
    let profile = r
        .object(root, "")
        .and_then(|root| r.required_object(root, "", "profile"));
    let Some(profile) = profile else {
        return Err(CatalogueError {
            problems: r.problems,
        });
    };
    let head = read_metadata(&mut r, profile, "profile");
    let mut framework = Framework {
        key: String::new(),
        name: String::new(),
        version: String::new(),
        publisher: String::new(),
        licence: unstated_licence(),
        provenance: Provenance {
            source: String::new(),
            url: None,
            note: None,
        },
        description: String::new(),
        requirements: Vec::new(),
    };
    let mut paths = SourcePaths {
        nodes: Vec::new(),
        refs: Vec::new(),
        head: "profile.metadata".into(),
    };
    let mut sources = Vec::new();
    let imports = r.array(profile, "profile", "imports", true);
    if imports.is_empty() && present(profile, "imports").is_some() {
        r.report("profile.imports", ProblemKind::Empty);
    }
    for (value, import_path) in imports {
        let Some(import) = r.object(value, &import_path) else {
            continue;
        };
        let Some(href) = r.string(import, &import_path, "href", true) else {
            continue;
        };
        let resolved = options.resolver.and_then(|resolve| resolve(&href));
        let catalog = match resolved {
            None => {
                r.report(
                    join(&import_path, "href"),
                    ProblemKind::UnknownFramework {
                        framework: href.clone(),
                    },
                );
                None
            }
            Some(ProfileSource::Framework(f)) => {
                let ids = oscal_ids(&f);
                Some((*f, ids))
            }
            Some(ProfileSource::CatalogJson(text)) => {
                let inner = ImportOptions {
                    document: href.clone(),
                    licence: options.licence.clone(),
                    provenance: None,
                    key: None,
                    resolver: None,
                };
                match parse_json(&href, &text) {
                    Err(e) => {
                        extra_problems.extend(e.problems);
                        None
                    }
                    Ok(root) => {
                        let reading = read_catalog(&root, &inner);
                        if reading.problems.is_empty() {
                            Some((reading.framework, reading.oscal_ids))
                        } else {
                            extra_problems.extend(reading.problems);
                            None
                        }
                    }
                }
            }
        };
        let selected = select(&mut r, import, &import_path, catalog.as_ref());
        if let (Some((catalog, _)), Some(selected)) = (catalog, selected) {
            for requirement in selected {
                framework.requirements.push(requirement);
                paths.nodes.push(import_path.clone());
                paths.refs.push(import_path.clone());
            }
            sources.push((href, catalog));
        }
    }
    if let Some(head) = &head {
        fill_head(&mut r, &mut framework, head, options, "profile");
        if let Some((_, first)) = sources.first() {
            // A profile only selects: the terms and publisher of what it selects still apply.
            if assay_prop(&head.props, "licence-id").is_none() && options.licence.is_none() {
                framework.licence = first.licence.clone();
            }
            if head.publisher.is_none() {
                framework.publisher = first.publisher.clone();
            }
            if head.remarks.is_none() {
                let names: Vec<&str> = sources.iter().map(|(_, f)| f.name.as_str()).collect();
                framework.description =
                    format!("{}: a selection from {}.", head.title, names.join(", "));
            }
        }
    }
    let mut problems = r.problems;
    problems.extend(extra_problems);
    if problems.is_empty() {
        problems = paths.relocate(framework_problems(document, &framework));
    }
    if problems.is_empty() {
        Ok(framework)
    } else {
        Err(CatalogueError { problems })
    }
}

/// The requirements an import selects, in catalog order, with the ancestors that give them
/// their place in the hierarchy (kept as non-assessable grouping nodes) and orders renumbered
/// among the siblings that remain.
fn select(
    r: &mut JsonReader,
    import: &Map<String, Value>,
    path: &str,
    catalog: Option<&(Framework, Vec<String>)>,
) -> Option<Vec<Requirement>> {
    let include_all = present(import, "include-all").is_some();
    let includes = r.array(import, path, "include-controls", false);
    let excludes = r.array(import, path, "exclude-controls", false);
    if !include_all && includes.is_empty() {
        r.report(join(path, "include-controls"), ProblemKind::Missing);
    }
    let (framework, ids) = catalog?;
    let lookup = |wanted: &str| -> Option<usize> {
        let exact = ids.iter().position(|id| id == wanted).or_else(|| {
            framework
                .requirements
                .iter()
                .position(|q| q.ref_id == wanted)
        });
        exact.or_else(|| {
            ids.iter().zip(&framework.requirements).position(|(id, q)| {
                id.eq_ignore_ascii_case(wanted) || q.ref_id.eq_ignore_ascii_case(wanted)
            })
        })
    };
    let matched = |r: &mut JsonReader, list: Vec<(&Value, String)>| -> HashSet<usize> {
        let mut chosen = HashSet::new();
        for (value, item_path) in list {
            let Some(item) = r.object(value, &item_path) else {
                continue;
            };
            let children = r.string(item, &item_path, "with-child-controls", false);
            let with_children = children.as_deref() == Some("yes");
            for (id_value, id_path) in r.array(item, &item_path, "with-ids", true) {
                let Some(id) = id_value.as_str() else {
                    r.report(
                        id_path,
                        ProblemKind::WrongType {
                            expected: "a string",
                        },
                    );
                    continue;
                };
                let Some(index) = lookup(id.trim()) else {
                    r.report(
                        id_path,
                        ProblemKind::UnknownRequirement {
                            reference: format!("{}:{id}", framework.key),
                        },
                    );
                    continue;
                };
                chosen.insert(index);
                if with_children {
                    let ref_id = &framework.requirements[index].ref_id;
                    for (j, q) in framework.requirements.iter().enumerate() {
                        if framework.ancestors(&q.ref_id).any(|a| &a.ref_id == ref_id) {
                            chosen.insert(j);
                        }
                    }
                }
            }
        }
        chosen
    };
    let mut chosen: HashSet<usize> = if include_all {
        (0..framework.requirements.len()).collect()
    } else {
        matched(r, includes)
    };
    for index in matched(r, excludes) {
        chosen.remove(&index);
    }
    let mut keep: HashSet<&str> = HashSet::new();
    for &i in &chosen {
        let ref_id = framework.requirements[i].ref_id.as_str();
        keep.insert(ref_id);
        keep.extend(framework.ancestors(ref_id).map(|a| a.ref_id.as_str()));
    }
    let mut position: HashMap<Option<String>, u32> = HashMap::new();
    let selected = framework
        .requirements
        .iter()
        .enumerate()
        .filter(|(_, q)| keep.contains(q.ref_id.as_str()))
        .map(|(i, q)| {
            let next = position.entry(q.parent.clone()).or_insert(0);
            *next += 1;
            Requirement {
                assessable: q.assessable && chosen.contains(&i),
                order: *next,
                ..q.clone()
            }
        })
        .collect();
    Some(selected)
}

// ------------------------------------------------------------------------------ export

#[derive(Serialize)]
struct CatalogDocument<'a> {
    catalog: CatalogOut<'a>,
}

#[derive(Serialize)]
struct CatalogOut<'a> {
    uuid: Uuid,
    metadata: MetadataOut<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<NodeOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    controls: Vec<NodeOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct MetadataOut<'a> {
    title: String,
    last_modified: String,
    version: String,
    oscal_version: &'static str,
    props: Vec<PropOut>,
    roles: Vec<RoleOut>,
    parties: Vec<PartyOut>,
    responsible_parties: Vec<ResponsiblePartyOut>,
    remarks: &'a str,
}

#[derive(Serialize)]
struct RoleOut {
    id: &'static str,
    title: &'static str,
}

#[derive(Serialize)]
struct PartyOut {
    uuid: Uuid,
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ResponsiblePartyOut {
    role_id: &'static str,
    party_uuids: Vec<Uuid>,
}

#[derive(Serialize)]
struct PropOut {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ns: Option<&'static str>,
    value: String,
}

impl PropOut {
    fn standard(name: &'static str, value: &str) -> Self {
        Self {
            name,
            ns: None,
            value: single_line(value),
        }
    }

    fn assay(name: &'static str, value: &str) -> Self {
        Self {
            name,
            ns: Some(ASSAY_OSCAL_NS),
            value: single_line(value),
        }
    }
}

#[derive(Serialize)]
struct PartOut {
    id: String,
    name: &'static str,
    prose: String,
}

#[derive(Serialize)]
struct NodeOut {
    id: String,
    title: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    props: Vec<PropOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parts: Vec<PartOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<NodeOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    controls: Vec<NodeOut>,
}

/// OSCAL's single-line fields (titles, prop values) may not contain line breaks; text read
/// from Assay packs never does, so this only changes content imported from elsewhere.
fn single_line(text: &str) -> String {
    if text.contains(['\n', '\r']) {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        text.to_owned()
    }
}

fn licence_out(licence: &Licence, props: &mut Vec<PropOut>) {
    props.push(PropOut::assay("licence-id", &licence.id));
    props.push(PropOut::assay("licence-name", &licence.name));
    if let Some(url) = &licence.url {
        props.push(PropOut::assay("licence-url", url));
    }
    if let Some(note) = &licence.note {
        props.push(PropOut::assay("licence-note", note));
    }
}

fn provenance_out(provenance: &Provenance, props: &mut Vec<PropOut>) {
    props.push(PropOut::assay("provenance-source", &provenance.source));
    if let Some(url) = &provenance.url {
        props.push(PropOut::assay("provenance-url", url));
    }
    if let Some(note) = &provenance.note {
        props.push(PropOut::assay("provenance-note", note));
    }
}

/// The OSCAL id every requirement gets on export, in the framework's order: the ref made
/// into an OSCAL token (ASCII letters, digits, `.-_`, not starting with a digit), made
/// unique with a numeric suffix.
pub fn oscal_ids(framework: &Framework) -> Vec<String> {
    let mut used = HashSet::new();
    framework
        .requirements
        .iter()
        .map(|q| unique_token(&q.ref_id, &mut used))
        .collect()
}

fn unique_token(text: &str, used: &mut HashSet<String>) -> String {
    let mut token: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !token.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        token.insert_str(0, "id-");
    }
    let mut candidate = token.clone();
    let mut n = 1;
    while !used.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{token}-{n}");
    }
    candidate
}

/// The framework as an OSCAL 1.1 catalog (see the module notes for the mapping).
/// `last_modified` is a parameter so that the same framework always exports the same bytes.
pub fn framework_to_oscal(framework: &Framework, last_modified: DateTime<Utc>) -> Value {
    // Plain strings, numbers and uuids always serialise.
    serde_json::to_value(catalog_document(framework, last_modified))
        .expect("catalog serialises to JSON")
}

/// [`framework_to_oscal`] as pretty-printed JSON text, members in OSCAL's documented order.
pub fn framework_to_oscal_json(framework: &Framework, last_modified: DateTime<Utc>) -> String {
    serde_json::to_string_pretty(&catalog_document(framework, last_modified))
        .expect("catalog serialises to JSON")
}

fn catalog_document(framework: &Framework, last_modified: DateTime<Utc>) -> CatalogDocument<'_> {
    let uuid = |suffix: &str| {
        Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!("{UUID_BASE}{}{suffix}", framework.key).as_bytes(),
        )
    };
    let ids = oscal_ids(framework);
    let mut used: HashSet<String> = ids.iter().cloned().collect();

    // A requirement is a group unless it is assessable or sits under a control (OSCAL
    // controls cannot contain groups). Parents come before children in a checked framework
    // only by convention, so kinds are resolved through the ancestor chain.
    let is_control =
        |q: &Requirement| q.assessable || framework.ancestors(&q.ref_id).any(|a| a.assessable);
    let mut children: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    for (i, q) in framework.requirements.iter().enumerate() {
        children.entry(q.parent.as_deref()).or_default().push(i);
    }
    for list in children.values_mut() {
        list.sort_by_key(|&i| framework.requirements[i].order);
    }

    struct Ctx<'f> {
        framework: &'f Framework,
        ids: Vec<String>,
        kinds: Vec<bool>,
        children: HashMap<Option<&'f str>, Vec<usize>>,
    }
    let kinds: Vec<bool> = framework.requirements.iter().map(is_control).collect();
    let ctx = Ctx {
        framework,
        ids,
        kinds,
        children,
    };
    // Part ids share the document's id space, so they are reserved after the node ids.
    let part_ids: Vec<String> = ctx
        .ids
        .iter()
        .zip(&ctx.kinds)
        .map(|(id, &control)| {
            let suffix = if control { "_smt" } else { "_ovw" };
            unique_token(&format!("{id}{suffix}"), &mut used)
        })
        .collect();

    fn level(ctx: &Ctx, part_ids: &[String], parent: Option<&str>) -> (Vec<NodeOut>, Vec<NodeOut>) {
        let list = ctx.children.get(&parent).cloned().unwrap_or_default();
        let (group_idx, control_idx): (Vec<usize>, Vec<usize>) =
            list.into_iter().partition(|&i| !ctx.kinds[i]);
        let position: HashMap<usize, u32> = group_idx
            .iter()
            .chain(&control_idx)
            .enumerate()
            .map(|(p, &i)| (i, p as u32 + 1))
            .collect();
        let node = |i: usize| {
            let q = &ctx.framework.requirements[i];
            let control = ctx.kinds[i];
            let mut props = vec![PropOut::standard("label", &q.ref_id)];
            if q.assessable != control {
                props.push(PropOut::assay("assessable", &q.assessable.to_string()));
            }
            if q.order != position[&i] {
                props.push(PropOut::assay("order", &q.order.to_string()));
            }
            if q.licence != ctx.framework.licence {
                licence_out(&q.licence, &mut props);
            }
            if q.provenance != ctx.framework.provenance {
                provenance_out(&q.provenance, &mut props);
            }
            let parts = if q.description.is_empty() {
                Vec::new()
            } else {
                vec![PartOut {
                    id: part_ids[i].clone(),
                    name: if control { "statement" } else { "overview" },
                    prose: q.description.clone(),
                }]
            };
            let (groups, controls) = level(ctx, part_ids, Some(&q.ref_id));
            NodeOut {
                id: ctx.ids[i].clone(),
                title: single_line(&q.title),
                props,
                parts,
                groups,
                controls,
            }
        };
        (
            group_idx.iter().map(|&i| node(i)).collect(),
            control_idx.iter().map(|&i| node(i)).collect(),
        )
    }
    let (groups, controls) = level(&ctx, &part_ids, None);

    let mut props = vec![PropOut::assay("framework-key", &framework.key)];
    licence_out(&framework.licence, &mut props);
    provenance_out(&framework.provenance, &mut props);
    let publisher = uuid("/publisher");
    CatalogDocument {
        catalog: CatalogOut {
            uuid: uuid(""),
            metadata: MetadataOut {
                title: single_line(&framework.name),
                last_modified: last_modified.to_rfc3339_opts(SecondsFormat::Secs, true),
                version: single_line(&framework.version),
                oscal_version: OSCAL_VERSION,
                props,
                roles: vec![RoleOut {
                    id: "publisher",
                    title: "Publisher",
                }],
                parties: vec![PartyOut {
                    uuid: publisher,
                    kind: "organization",
                    name: single_line(&framework.publisher),
                }],
                responsible_parties: vec![ResponsiblePartyOut {
                    role_id: "publisher",
                    party_uuids: vec![publisher],
                }],
                remarks: &framework.description,
            },
            groups,
            controls,
        },
    }
}
