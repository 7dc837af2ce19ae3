//! Prowler compliance files in: the requirements Prowler maps its cloud checks to,
//! with the check ids kept per requirement for automated checks later.
//!
//! Two layouts exist. Provider files (`compliance/aws/cis_2.0_aws.json`) have PascalCase
//! members, one provider and `Attributes` as a list of objects. Multi-provider files
//! (`compliance/cis_controls_8.1.json`) have lower-case members, `attributes` as one object
//! and `checks` keyed by provider. Both become one framework whose hierarchy comes from the
//! grouping attributes (Section > SubSection ...) and whose leaves are the requirements.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::error::{CatalogueError, ProblemKind};
use super::import::{ImportOptions, JsonReader, SourcePaths, parse_json, present, slug};
use super::model::{Framework, Licence, Provenance, Requirement};
use super::pack::framework_problems;

/// One Prowler check that gives evidence for a requirement on one provider.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ProwlerCheck {
    /// Prowler's provider name, lower-case (`aws`, `azure`, `gcp`, `m365`...).
    pub provider: String,
    /// The check id (`iam_root_mfa_enabled`).
    pub check: String,
}

/// A Prowler file read as a framework, with the checks of each requirement by ref id
/// (requirements without checks are left out of the map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProwlerImport {
    pub framework: Framework,
    pub checks: BTreeMap<String, Vec<ProwlerCheck>>,
}

/// Grouping attributes of provider files, outermost first. Files use different names for
/// the same idea (KISA: Domain > Subdomain > Section, ENS: Marco > Categoria, CCC:
/// FamilyName > Section > SubSection, NIST 800-53: Section > SubSection > SubGroup).
const GROUPING_KEYS: &[&str] = &[
    "Domain",
    "Subdomain",
    "Marco",
    "Categoria",
    "FamilyName",
    "Section",
    "SubSection",
    "Subsection",
    "SubGroup",
];
/// Used only when none of the above is present (ISO 27001 files group by Annex A theme
/// this way; elsewhere `Category` means something else).
const FALLBACK_GROUPING_KEY: &str = "Category";

/// Read a Prowler compliance JSON document.
pub fn parse_prowler(text: &str, options: &ImportOptions) -> Result<ProwlerImport, CatalogueError> {
    prowler_from_value(&parse_json(&options.document, text)?, options)
}

/// Field names of the two layouts.
struct Layout {
    multi_provider: bool,
}

impl Layout {
    fn key(&self, pascal: &'static str) -> String {
        if self.multi_provider {
            pascal.to_ascii_lowercase()
        } else {
            pascal.to_owned()
        }
    }
}

/// A requirement as read, before the hierarchy is built.
struct Entry {
    ref_id: String,
    title: String,
    description: String,
    groups: Vec<String>,
    checks: Vec<ProwlerCheck>,
    path: String,
    ref_path: String,
}

pub(crate) fn prowler_from_value(
    root: &Value,
    options: &ImportOptions,
) -> Result<ProwlerImport, CatalogueError> {
    let document = options.document.as_str();
    let mut r = JsonReader::new(document);
    let Some(root) = r.object(root, "") else {
        return Err(CatalogueError {
            problems: r.problems,
        });
    };
    let layout = Layout {
        multi_provider: !root.contains_key("Requirements") && root.contains_key("requirements"),
    };
    let k = |name| layout.key(name);
    let framework_name = r
        .string(root, "", &k("Framework"), true)
        .unwrap_or_default();
    let name = r
        .string(root, "", &k("Name"), false)
        .unwrap_or_else(|| framework_name.clone());
    // Many provider files leave Version empty; the framework then says so rather than fail.
    let version = r
        .string(root, "", &k("Version"), false)
        .unwrap_or_else(|| "unversioned".into());
    let provider = if layout.multi_provider {
        None
    } else {
        r.string(root, "", "Provider", true)
            .map(|p| p.to_ascii_lowercase())
    };
    let description = r
        .string(root, "", &k("Description"), false)
        .unwrap_or_else(|| name.clone());
    let group_by = if layout.multi_provider {
        root.get("outputs")
            .and_then(|o| o.get("table_config"))
            .and_then(|t| t.get("group_by"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    } else {
        None
    };

    let requirements_key = k("Requirements");
    let items = r.array(root, "", &requirements_key, true);
    if items.is_empty() && present(root, &requirements_key).is_some() {
        r.report(requirements_key.clone(), ProblemKind::Empty);
    }
    let mut entries = Vec::new();
    let mut seen: HashMap<String, u32> = HashMap::new();
    for (value, path) in items {
        let Some(item) = r.object(value, &path) else {
            continue;
        };
        let Some(id) = r.string(item, &path, &k("Id"), true) else {
            continue;
        };
        // Some published files list an Id twice for two different requirements. Both are
        // kept, in file order: the n-th repeat becomes `Id#n`, so counts match the file and
        // each keeps its own checks.
        let count = seen.entry(id.clone()).or_insert(0);
        *count += 1;
        let ref_id = if *count == 1 {
            id
        } else {
            format!("{id}#{count}")
        };
        let attributes = read_attributes(&mut r, item, &path, &layout);
        let groups = grouping(&attributes, group_by.as_deref());
        let attribute = |key: &str| {
            attributes
                .first()
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let own_description = r.string(item, &path, &k("Description"), false);
        // A short description is often the only title a file has (CIS files); the longer
        // text then sits in the attributes.
        let title = r
            .string(item, &path, &k("Name"), false)
            .or_else(|| attribute("Title"))
            .or_else(|| {
                own_description
                    .clone()
                    .filter(|d| d.chars().count() <= 200 && !d.contains('\n'))
            })
            .unwrap_or_else(|| ref_id.clone());
        let description = [own_description, attribute("Description")]
            .into_iter()
            .flatten()
            .find(|d| *d != title)
            .unwrap_or_else(|| title.clone());
        let checks = read_checks(
            &mut r,
            item,
            &path,
            &layout,
            provider.as_deref().unwrap_or("unknown"),
        );
        entries.push(Entry {
            ref_path: format!("{path}.{}", k("Id")),
            ref_id,
            title,
            description,
            groups,
            checks,
            path,
        });
    }

    let key = options.key.clone().unwrap_or_else(|| {
        let stem = document
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or_default()
            .trim_end_matches(".json");
        if stem.is_empty() {
            slug(&format!(
                "prowler-{framework_name}-{version}-{}",
                provider.as_deref().unwrap_or("multi")
            ))
        } else {
            slug(&format!("prowler-{stem}"))
        }
    });
    let licence = options.licence.clone().unwrap_or_else(|| Licence {
        id: "Apache-2.0".into(),
        name: "Apache License 2.0".into(),
        url: Some("https://github.com/prowler-cloud/prowler/blob/master/LICENSE".into()),
        note: Some(
            "Prowler's compliance mappings are published under Apache-2.0; text quoted from the underlying framework remains its publisher's."
                .into(),
        ),
    });
    let provider_text = provider.as_deref().unwrap_or("several providers");
    let provenance = options.provenance.clone().unwrap_or_else(|| Provenance {
        source: format!(
            "Prowler compliance file {document} ({framework_name} {version}, {provider_text})"
        ),
        url: Some("https://github.com/prowler-cloud/prowler".into()),
        note: None,
    });
    let mut framework = Framework {
        key,
        name,
        version,
        publisher: format!("{framework_name} (as mapped by Prowler)"),
        licence,
        provenance,
        description,
        requirements: Vec::new(),
    };
    let mut paths = SourcePaths {
        nodes: Vec::new(),
        refs: Vec::new(),
        head: String::new(),
    };
    let checks = build_hierarchy(entries, &mut framework, &mut paths, &requirements_key);

    let mut problems = r.problems;
    if problems.is_empty() {
        problems = paths.relocate(framework_problems(document, &framework));
    }
    if problems.is_empty() {
        Ok(ProwlerImport { framework, checks })
    } else {
        Err(CatalogueError { problems })
    }
}

fn read_attributes(
    r: &mut JsonReader,
    item: &Map<String, Value>,
    path: &str,
    layout: &Layout,
) -> Vec<Map<String, Value>> {
    let key = layout.key("Attributes");
    if layout.multi_provider {
        return match present(item, &key) {
            None => Vec::new(),
            Some(value) => r
                .object(value, &format!("{path}.{key}"))
                .cloned()
                .into_iter()
                .collect(),
        };
    }
    r.array(item, path, &key, false)
        .into_iter()
        .filter_map(|(value, item_path)| r.object(value, &item_path).cloned())
        .collect()
}

fn read_checks(
    r: &mut JsonReader,
    item: &Map<String, Value>,
    path: &str,
    layout: &Layout,
    provider: &str,
) -> Vec<ProwlerCheck> {
    let key = layout.key("Checks");
    let check = |provider: &str, check: String| ProwlerCheck {
        provider: provider.to_owned(),
        check,
    };
    if !layout.multi_provider {
        r.strings(item, path, &key)
            .into_iter()
            .map(|c| check(provider, c))
            .collect()
    } else {
        let Some(value) = present(item, &key) else {
            return Vec::new();
        };
        let checks_path = format!("{path}.{key}");
        let Some(by_provider) = r.object(value, &checks_path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for provider in by_provider.keys() {
            for c in r.strings(by_provider, &checks_path, provider) {
                out.push(check(&provider.to_ascii_lowercase(), c));
            }
        }
        out
    }
}

/// The grouping values of one requirement, outermost first. A key counts only when every
/// attribute object agrees on it: MITRE files list one attribute per cloud service, and a
/// requirement cannot sit in two places of a tree.
fn grouping(attributes: &[Map<String, Value>], group_by: Option<&str>) -> Vec<String> {
    let value = |key: &str| -> Option<String> {
        let mut values = attributes
            .iter()
            .map(|a| a.get(key).and_then(Value::as_str).map(str::trim));
        let first = values.next()??;
        (!first.is_empty() && values.all(|v| v == Some(first))).then(|| first.to_owned())
    };
    if let Some(key) = group_by {
        return value(key).into_iter().collect();
    }
    let groups: Vec<String> = GROUPING_KEYS.iter().filter_map(|k| value(k)).collect();
    if groups.is_empty() {
        value(FALLBACK_GROUPING_KEY).into_iter().collect()
    } else {
        groups
    }
}

enum Child {
    Group(usize),
    Requirement(usize),
}

struct Group {
    path: Vec<String>,
    children: Vec<Child>,
}

/// Lay the entries out as a tree in order of first appearance and flatten it depth-first.
/// A group's ref is its value (`1 Identity and Access Management`) unless that value names
/// another group or a requirement too; then it is the whole path joined with ` / ` (or
/// `Group: value` at the top level).
fn build_hierarchy(
    entries: Vec<Entry>,
    framework: &mut Framework,
    paths: &mut SourcePaths,
    requirements_key: &str,
) -> BTreeMap<String, Vec<ProwlerCheck>> {
    let mut groups: Vec<Group> = Vec::new();
    let mut group_index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut root: Vec<Child> = Vec::new();
    for (e, entry) in entries.iter().enumerate() {
        let mut parent: Option<usize> = None;
        for depth in 1..=entry.groups.len() {
            let path = entry.groups[..depth].to_vec();
            let index = match group_index.get(&path) {
                Some(&index) => index,
                None => {
                    let index = groups.len();
                    groups.push(Group {
                        path: path.clone(),
                        children: Vec::new(),
                    });
                    group_index.insert(path, index);
                    match parent {
                        Some(p) => groups[p].children.push(Child::Group(index)),
                        None => root.push(Child::Group(index)),
                    }
                    index
                }
            };
            parent = Some(index);
        }
        match parent {
            Some(p) => groups[p].children.push(Child::Requirement(e)),
            None => root.push(Child::Requirement(e)),
        }
    }

    let mut value_uses: HashMap<&str, usize> = HashMap::new();
    for group in &groups {
        *value_uses
            .entry(group.path.last().map_or("", String::as_str))
            .or_default() += 1;
    }
    for entry in &entries {
        *value_uses.entry(entry.ref_id.as_str()).or_default() += 1;
    }
    let group_refs: Vec<String> = groups
        .iter()
        .map(|g| {
            let last = g.path.last().map_or("", String::as_str);
            if value_uses[last] == 1 {
                last.to_owned()
            } else if g.path.len() > 1 {
                g.path.join(" / ")
            } else {
                format!("Group: {last}")
            }
        })
        .collect();

    struct Flat<'a> {
        entries: &'a [Entry],
        groups: &'a [Group],
        group_refs: &'a [String],
        requirements_key: &'a str,
    }
    fn visit(
        flat: &Flat,
        children: &[Child],
        parent: Option<&str>,
        framework: &mut Framework,
        paths: &mut SourcePaths,
        checks: &mut BTreeMap<String, Vec<ProwlerCheck>>,
    ) {
        for (position, child) in children.iter().enumerate() {
            let order = position as u32 + 1;
            match *child {
                Child::Group(g) => {
                    let group = &flat.groups[g];
                    let value = group.path.last().cloned().unwrap_or_default();
                    let ref_id = flat.group_refs[g].clone();
                    // A group is defined by its first requirement's attributes.
                    let first = first_entry(flat, &group.children);
                    let source = first.map_or(flat.requirements_key.to_owned(), |e| e.path.clone());
                    framework.requirements.push(Requirement {
                        ref_id: ref_id.clone(),
                        title: value.clone(),
                        description: value,
                        parent: parent.map(str::to_owned),
                        assessable: false,
                        order,
                        licence: framework.licence.clone(),
                        provenance: framework.provenance.clone(),
                    });
                    paths.nodes.push(source.clone());
                    paths.refs.push(source);
                    visit(
                        flat,
                        &group.children,
                        Some(&ref_id),
                        framework,
                        paths,
                        checks,
                    );
                }
                Child::Requirement(e) => {
                    let entry = &flat.entries[e];
                    framework.requirements.push(Requirement {
                        ref_id: entry.ref_id.clone(),
                        title: entry.title.clone(),
                        description: entry.description.clone(),
                        parent: parent.map(str::to_owned),
                        assessable: true,
                        order,
                        licence: framework.licence.clone(),
                        provenance: framework.provenance.clone(),
                    });
                    paths.nodes.push(entry.path.clone());
                    paths.refs.push(entry.ref_path.clone());
                    if !entry.checks.is_empty() {
                        checks.insert(entry.ref_id.clone(), entry.checks.clone());
                    }
                }
            }
        }
    }
    fn first_entry<'a>(flat: &Flat<'a>, children: &[Child]) -> Option<&'a Entry> {
        children.iter().find_map(|child| match *child {
            Child::Requirement(e) => Some(&flat.entries[e]),
            Child::Group(g) => first_entry(flat, &flat.groups[g].children),
        })
    }

    let flat = Flat {
        entries: &entries,
        groups: &groups,
        group_refs: &group_refs,
        requirements_key,
    };
    let mut checks = BTreeMap::new();
    visit(&flat, &root, None, framework, paths, &mut checks);
    checks
}
