//! A checked, indexed catalogue: frameworks, common controls and requirement mappings that
//! all refer to each other correctly, with the look-ups the API, scoring and AI crates use.

use std::collections::HashMap;

use super::error::{CatalogueError, Problem, ProblemKind, finish};
use super::model::{
    CommonControl, ControlLibrary, ControlMapping, Framework, MappingSet, Relationship,
    Requirement, RequirementMapping, RequirementRef,
};
use super::pack::{Document, read_document};

#[derive(Debug, Clone)]
pub struct Catalogue {
    frameworks: Vec<Framework>,
    controls: Vec<CommonControl>,
    requirement_mappings: Vec<RequirementMapping>,
    framework_index: HashMap<String, usize>,
    requirement_index: HashMap<RequirementRef, (usize, usize)>,
    control_index: HashMap<String, usize>,
    controls_by_requirement: HashMap<RequirementRef, Vec<usize>>,
}

/// The result of [`Catalogue::with_frameworks`]: the wider catalogue and the problems of
/// the frameworks that were left out of it.
#[derive(Debug, Clone)]
pub struct Extended {
    pub catalogue: Catalogue,
    pub skipped: Vec<Problem>,
}

/// A document already read, kept with its name so cross-document problems can cite it.
struct Named<T> {
    document: String,
    value: T,
}

impl Catalogue {
    /// Read documents of any kind (`(name, yaml)` pairs) and check them together. Every
    /// problem in every document is returned at once.
    pub fn from_documents<'a>(
        documents: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, CatalogueError> {
        let mut problems = Vec::new();
        let (mut frameworks, mut libraries, mut sets) = (Vec::new(), Vec::new(), Vec::new());
        for (name, text) in documents {
            let document = name.to_owned();
            let reading = read_document(name, text);
            problems.extend(reading.problems);
            match reading.value {
                Some(Document::Framework(value)) => frameworks.push(Named { document, value }),
                Some(Document::Controls(value)) => libraries.push(Named { document, value }),
                Some(Document::Mappings(value)) => sets.push(Named { document, value }),
                None => {}
            }
        }
        match Self::assemble(frameworks, libraries, sets) {
            Ok(catalogue) => finish(catalogue, problems),
            Err(e) => {
                problems.extend(e.problems);
                Err(CatalogueError { problems })
            }
        }
    }

    /// Check already-built parts together (for importers that produce frameworks from
    /// OSCAL or Prowler). Problems name documents as `framework <key>`, `controls <key>`...
    pub fn build(
        frameworks: Vec<Framework>,
        libraries: Vec<ControlLibrary>,
        mapping_sets: Vec<MappingSet>,
    ) -> Result<Self, CatalogueError> {
        let mut problems = Vec::new();
        let frameworks = frameworks
            .into_iter()
            .map(|f| {
                let document = format!("framework {}", f.key);
                problems.extend(super::pack::framework_problems(&document, &f));
                Named { document, value: f }
            })
            .collect();
        let libraries = libraries
            .into_iter()
            .map(|l| Named {
                document: format!("controls {}", l.key),
                value: l,
            })
            .collect();
        let sets = mapping_sets
            .into_iter()
            .map(|s| Named {
                document: format!("mappings {}", s.key),
                value: s,
            })
            .collect();
        match Self::assemble(frameworks, libraries, sets) {
            Ok(catalogue) => finish(catalogue, problems),
            Err(e) => {
                problems.extend(e.problems);
                Err(CatalogueError { problems })
            }
        }
    }

    fn assemble(
        frameworks: Vec<Named<Framework>>,
        libraries: Vec<Named<ControlLibrary>>,
        sets: Vec<Named<MappingSet>>,
    ) -> Result<Self, CatalogueError> {
        let mut problems = Vec::new();
        let mut catalogue = Catalogue {
            frameworks: Vec::new(),
            controls: Vec::new(),
            requirement_mappings: Vec::new(),
            framework_index: HashMap::new(),
            requirement_index: HashMap::new(),
            control_index: HashMap::new(),
            controls_by_requirement: HashMap::new(),
        };
        let mut framework_documents: HashMap<String, String> = HashMap::new();

        for Named { document, value } in frameworks {
            if let Some(first) = framework_documents.get(&value.key) {
                problems.push(Problem::new(
                    &document,
                    "framework.key",
                    ProblemKind::Duplicate {
                        what: "framework key",
                        value: value.key.clone(),
                        first: first.clone(),
                    },
                ));
                continue;
            }
            framework_documents.insert(value.key.clone(), document);
            let f = catalogue.frameworks.len();
            for (r, requirement) in value.requirements.iter().enumerate() {
                catalogue
                    .requirement_index
                    .entry(RequirementRef::new(&value.key, &requirement.ref_id))
                    .or_insert((f, r));
            }
            catalogue.framework_index.insert(value.key.clone(), f);
            catalogue.frameworks.push(value);
        }

        let mut control_documents: HashMap<String, String> = HashMap::new();
        for Named { document, value } in libraries {
            for (i, control) in value.controls.into_iter().enumerate() {
                let path = format!("controls[{i}]");
                if let Some(first) = control_documents.get(&control.key) {
                    // Duplicates inside one document were reported when it was read.
                    if *first != document {
                        problems.push(Problem::new(
                            &document,
                            format!("{path}.key"),
                            ProblemKind::Duplicate {
                                what: "control key",
                                value: control.key.clone(),
                                first: first.clone(),
                            },
                        ));
                    }
                    continue;
                }
                control_documents.insert(control.key.clone(), document.clone());
                catalogue.check_references(&document, &path, &control, &mut problems);
                let c = catalogue.controls.len();
                for reference in &control.maps_to {
                    catalogue
                        .controls_by_requirement
                        .entry(reference.clone())
                        .or_default()
                        .push(c);
                }
                catalogue.control_index.insert(control.key.clone(), c);
                catalogue.controls.push(control);
            }
        }

        for Named { document, value } in sets {
            for (i, mapping) in value.mappings.into_iter().enumerate() {
                let mut ok = true;
                for (field, reference) in [("from", &mapping.from), ("to", &mapping.to)] {
                    if let Some(kind) = catalogue.reference_problem(reference) {
                        problems.push(Problem::new(
                            &document,
                            format!("mappings[{i}].{field}"),
                            kind,
                        ));
                        ok = false;
                    }
                }
                if ok {
                    catalogue.requirement_mappings.push(mapping);
                }
            }
        }
        finish(catalogue, problems)
    }

    /// This catalogue plus imported frameworks (an organisation's view: the built-in packs,
    /// the platform-wide imports and its own). A framework that has problems of its own or
    /// whose key is already taken is left out and reported in [`Extended::skipped`] rather
    /// than failing the whole view: one bad stored pack (or a built-in pack added later
    /// under a key someone had imported) must not take every other framework down with it.
    /// The controls and mappings stay as they are; imported frameworks bring none.
    pub fn with_frameworks(&self, frameworks: impl IntoIterator<Item = Framework>) -> Extended {
        let mut catalogue = self.clone();
        let mut skipped = Vec::new();
        for framework in frameworks {
            let document = format!("framework {}", framework.key);
            if self.framework_index.contains_key(&framework.key)
                || catalogue.framework_index.contains_key(&framework.key)
            {
                skipped.push(Problem::new(
                    &document,
                    "framework.key",
                    ProblemKind::Duplicate {
                        what: "framework key",
                        value: framework.key.clone(),
                        first: "an earlier framework of the catalogue".into(),
                    },
                ));
                continue;
            }
            let problems = super::pack::framework_problems(&document, &framework);
            if !problems.is_empty() {
                skipped.extend(problems);
                continue;
            }
            let f = catalogue.frameworks.len();
            for (r, requirement) in framework.requirements.iter().enumerate() {
                catalogue
                    .requirement_index
                    .entry(RequirementRef::new(&framework.key, &requirement.ref_id))
                    .or_insert((f, r));
            }
            catalogue.framework_index.insert(framework.key.clone(), f);
            catalogue.frameworks.push(framework);
        }
        Extended { catalogue, skipped }
    }

    fn check_references(
        &self,
        document: &str,
        path: &str,
        control: &CommonControl,
        problems: &mut Vec<Problem>,
    ) {
        // Positions are per framework list, as written in the file.
        let mut position: HashMap<&str, usize> = HashMap::new();
        for reference in &control.maps_to {
            let n = position.entry(&reference.framework).or_insert(0);
            if let Some(kind) = self.reference_problem(reference) {
                problems.push(Problem::new(
                    document,
                    format!("{path}.maps.{}[{n}]", reference.framework),
                    kind,
                ));
            }
            *n += 1;
        }
    }

    fn reference_problem(&self, reference: &RequirementRef) -> Option<ProblemKind> {
        if !self.framework_index.contains_key(&reference.framework) {
            Some(ProblemKind::UnknownFramework {
                framework: reference.framework.clone(),
            })
        } else if !self.requirement_index.contains_key(reference) {
            Some(ProblemKind::UnknownRequirement {
                reference: reference.to_string(),
            })
        } else {
            None
        }
    }

    pub fn frameworks(&self) -> &[Framework] {
        &self.frameworks
    }

    pub fn framework(&self, key: &str) -> Option<&Framework> {
        self.framework_index.get(key).map(|&i| &self.frameworks[i])
    }

    /// A requirement by framework key and ref id (`("nist-csf", "PR.AA-01")`).
    pub fn requirement(&self, framework: &str, ref_id: &str) -> Option<&Requirement> {
        self.requirement_by_ref(&RequirementRef::new(framework, ref_id))
    }

    pub fn requirement_by_ref(&self, reference: &RequirementRef) -> Option<&Requirement> {
        self.requirement_index
            .get(reference)
            .map(|&(f, r)| &self.frameworks[f].requirements[r])
    }

    pub fn controls(&self) -> &[CommonControl] {
        &self.controls
    }

    pub fn control(&self, key: &str) -> Option<&CommonControl> {
        self.control_index.get(key).map(|&i| &self.controls[i])
    }

    /// Controls mapped directly to this requirement, in library order.
    pub fn controls_for(&self, framework: &str, ref_id: &str) -> Vec<&CommonControl> {
        self.controls_by_requirement
            .get(&RequirementRef::new(framework, ref_id))
            .map(|ids| ids.iter().map(|&i| &self.controls[i]).collect())
            .unwrap_or_default()
    }

    /// The requirements a control maps to, with their frameworks, in the control's order.
    pub fn requirements_for(&self, control_key: &str) -> Vec<(&Framework, &Requirement)> {
        let Some(control) = self.control(control_key) else {
            return Vec::new();
        };
        control
            .maps_to
            .iter()
            .filter_map(|reference| self.requirement_index.get(reference))
            .map(|&(f, r)| (&self.frameworks[f], &self.frameworks[f].requirements[r]))
            .collect()
    }

    /// Every control-to-requirement edge, flattened.
    pub fn control_mappings(&self) -> impl Iterator<Item = ControlMapping> + '_ {
        self.controls.iter().flat_map(|c| {
            c.maps_to.iter().map(|reference| ControlMapping {
                control: c.key.clone(),
                requirement: reference.clone(),
            })
        })
    }

    pub fn requirement_mappings(&self) -> &[RequirementMapping] {
        &self.requirement_mappings
    }

    /// Requirements in other frameworks related to this one, seen from this side (a stored
    /// `subset` read from its `to` end comes back as `superset`).
    pub fn related(&self, framework: &str, ref_id: &str) -> Vec<(RequirementRef, Relationship)> {
        let this = RequirementRef::new(framework, ref_id);
        self.requirement_mappings
            .iter()
            .filter_map(|m| {
                if m.from == this {
                    Some((m.to.clone(), m.relationship))
                } else if m.to == this {
                    Some((m.from.clone(), m.relationship.inverse()))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Assessable requirements no control maps to; empty for the built-in catalogue.
    pub fn uncovered_requirements(&self) -> Vec<RequirementRef> {
        self.frameworks
            .iter()
            .flat_map(|f| {
                f.assessable()
                    .map(move |r| RequirementRef::new(&f.key, &r.ref_id))
            })
            .filter(|reference| !self.controls_by_requirement.contains_key(reference))
            .collect()
    }
}
