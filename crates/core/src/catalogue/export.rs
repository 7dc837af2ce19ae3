//! Writing a framework back out as an Assay pack, so that any framework (built-in or
//! imported from OSCAL/Prowler) can be exported, edited and re-imported. Values that the
//! reader would default anyway (order, assessable, inherited licence) are left out, so an
//! exported pack reads like a hand-written one and round-trips exactly.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::model::{Framework, Licence, Provenance};
use super::pack::FRAMEWORK_FORMAT;

#[derive(Serialize)]
struct PackOut<'a> {
    format: &'static str,
    framework: HeadOut<'a>,
    requirements: Vec<RequirementOut<'a>>,
}

#[derive(Serialize)]
struct HeadOut<'a> {
    key: &'a str,
    name: &'a str,
    version: &'a str,
    publisher: &'a str,
    licence: &'a Licence,
    provenance: &'a Provenance,
    description: &'a str,
}

#[derive(Serialize)]
struct RequirementOut<'a> {
    #[serde(rename = "ref")]
    ref_id: &'a str,
    title: &'a str,
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assessable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    licence: Option<&'a Licence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<&'a Provenance>,
}

/// The framework as an `assay.framework.v1` YAML document.
pub fn framework_to_yaml(framework: &Framework) -> String {
    let parents: HashSet<&str> = framework
        .requirements
        .iter()
        .filter_map(|r| r.parent.as_deref())
        .collect();
    let mut position: HashMap<Option<&str>, u32> = HashMap::new();
    let requirements = framework
        .requirements
        .iter()
        .map(|r| {
            let default_position = position.entry(r.parent.as_deref()).or_insert(0);
            *default_position += 1;
            let default_assessable = !parents.contains(r.ref_id.as_str());
            RequirementOut {
                ref_id: &r.ref_id,
                title: &r.title,
                description: &r.description,
                parent: r.parent.as_deref(),
                assessable: (r.assessable != default_assessable).then_some(r.assessable),
                order: (r.order != *default_position).then_some(r.order),
                licence: (r.licence != framework.licence).then_some(&r.licence),
                provenance: (r.provenance != framework.provenance).then_some(&r.provenance),
            }
        })
        .collect();
    let pack = PackOut {
        format: FRAMEWORK_FORMAT,
        framework: HeadOut {
            key: &framework.key,
            name: &framework.name,
            version: &framework.version,
            publisher: &framework.publisher,
            licence: &framework.licence,
            provenance: &framework.provenance,
            description: &framework.description,
        },
        requirements,
    };
    // Serialising plain strings, bools and integers into YAML cannot fail.
    serde_norway::to_string(&pack).expect("pack serialises to YAML")
}
