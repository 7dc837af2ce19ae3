//! The catalogue's domain types: what a framework, a requirement, a common control and a
//! mapping are once a pack has been read and checked. Every requirement carries its own
//! licence and provenance (B-5) so that no consumer has to walk back to the pack for them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Under what terms a framework's text (or one requirement of it) may be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    /// SPDX identifier where one exists (`OGL-UK-3.0`), otherwise a `LicenseRef-` name.
    pub id: String,
    /// Human-readable name of the licence.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Anything a reader must know, e.g. that the criteria text is copyright of its publisher
    /// and only our own paraphrase is shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Where the identifiers and titles of a framework (or one requirement) come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The publisher's document, named so an auditor can find it.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A framework (standard, regulation, scheme) with its requirements in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Framework {
    pub key: String,
    pub name: String,
    pub version: String,
    pub publisher: String,
    pub licence: Licence,
    pub provenance: Provenance,
    pub description: String,
    pub requirements: Vec<Requirement>,
}

impl Framework {
    /// The requirement with this ref id, if any.
    pub fn requirement(&self, ref_id: &str) -> Option<&Requirement> {
        self.requirements.iter().find(|r| r.ref_id == ref_id)
    }

    /// Requirements an organisation answers for (leaves, unless a pack says otherwise).
    pub fn assessable(&self) -> impl Iterator<Item = &Requirement> {
        self.requirements.iter().filter(|r| r.assessable)
    }

    /// Direct children of `parent` (`None` for the top level), in their declared order.
    pub fn children<'a>(&'a self, parent: Option<&'a str>) -> Vec<&'a Requirement> {
        let mut children: Vec<_> = self
            .requirements
            .iter()
            .filter(|r| r.parent.as_deref() == parent)
            .collect();
        children.sort_by_key(|r| r.order);
        children
    }

    /// Every requirement below `ref_id`, at any depth, in file order.
    pub fn descendants<'a>(&'a self, ref_id: &str) -> Vec<&'a Requirement> {
        self.requirements
            .iter()
            .filter(|r| self.ancestors(&r.ref_id).any(|a| a.ref_id == ref_id))
            .collect()
    }

    /// Parent, grandparent, ... of `ref_id`. Packs are checked acyclic before they load.
    pub fn ancestors<'a>(&'a self, ref_id: &str) -> impl Iterator<Item = &'a Requirement> {
        let mut next = self.requirement(ref_id).and_then(|r| r.parent.clone());
        std::iter::from_fn(move || {
            let parent = self.requirement(next.as_deref()?)?;
            next = parent.parent.clone();
            Some(parent)
        })
    }
}

/// One node of a framework's hierarchy: a function, clause, theme, control, criterion...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// The identifier as the publisher writes it (`GV.OC-01`, `A.5.15`, `CC6.1`, `Art.33`).
    pub ref_id: String,
    pub title: String,
    pub description: String,
    pub parent: Option<String>,
    /// Whether an organisation is assessed against it; grouping nodes are not.
    pub assessable: bool,
    /// Position among its siblings, starting at 1.
    pub order: u32,
    pub licence: Licence,
    pub provenance: Provenance,
}

/// A framework-qualified requirement reference, written `framework:ref` in mapping files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequirementRef {
    pub framework: String,
    pub ref_id: String,
}

impl RequirementRef {
    pub fn new(framework: impl Into<String>, ref_id: impl Into<String>) -> Self {
        Self {
            framework: framework.into(),
            ref_id: ref_id.into(),
        }
    }
}

impl fmt::Display for RequirementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.framework, self.ref_id)
    }
}

/// An organisation-level control ("MFA for every user") that serves requirements in
/// several frameworks at once, so one implementation and its evidence count everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommonControl {
    /// Stable key such as `IAM-01`.
    pub key: String,
    pub title: String,
    /// Grouping for display (`Identity and access`).
    pub domain: String,
    pub description: String,
    pub guidance: String,
    /// One or two questions an assessment asks about this control.
    pub questions: Vec<String>,
    /// The requirements this control helps meet.
    pub maps_to: Vec<RequirementRef>,
    pub licence: Licence,
    pub provenance: Provenance,
}

/// A control-to-requirement edge, flattened for callers that index or store them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ControlMapping {
    pub control: String,
    pub requirement: RequirementRef,
}

/// How the scope of one requirement relates to another's (set-theoretic, as in NIST OLIR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    /// Both say the same thing.
    Equal,
    /// `from` is wholly contained in `to`.
    Subset,
    /// `from` wholly contains `to`.
    Superset,
    /// They overlap, neither contains the other.
    Intersect,
}

impl Relationship {
    pub const ALL: [Relationship; 4] = [
        Relationship::Equal,
        Relationship::Subset,
        Relationship::Superset,
        Relationship::Intersect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Relationship::Equal => "equal",
            Relationship::Subset => "subset",
            Relationship::Superset => "superset",
            Relationship::Intersect => "intersect",
        }
    }

    /// The same relationship seen from the other end.
    pub fn inverse(self) -> Self {
        match self {
            Relationship::Subset => Relationship::Superset,
            Relationship::Superset => Relationship::Subset,
            other => other,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Relationship {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A requirement-to-requirement crosswalk entry between two frameworks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementMapping {
    pub from: RequirementRef,
    pub to: RequirementRef,
    pub relationship: Relationship,
    pub note: Option<String>,
}

/// A library of common controls as read from one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlLibrary {
    pub key: String,
    pub name: String,
    pub version: String,
    pub licence: Licence,
    pub provenance: Provenance,
    pub controls: Vec<CommonControl>,
}

/// A set of requirement mappings as read from one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingSet {
    pub key: String,
    pub name: String,
    pub licence: Licence,
    pub provenance: Provenance,
    pub mappings: Vec<RequirementMapping>,
}
