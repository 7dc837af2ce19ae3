//! The compliance catalogue model: frameworks, requirements, common controls, mappings, packs.

mod builtin;
mod error;
mod export;
mod index;
mod model;
mod pack;
mod reader;

#[cfg(test)]
mod tests;

pub use builtin::{BUILTIN_DOCUMENTS, builtin};
pub use error::{CatalogueError, Problem, ProblemKind};
pub use export::framework_to_yaml;
pub use index::Catalogue;
pub use model::{
    CommonControl, ControlLibrary, ControlMapping, Framework, Licence, MappingSet, Provenance,
    Relationship, Requirement, RequirementMapping, RequirementRef,
};
pub use pack::{
    CONTROLS_FORMAT, Document, FRAMEWORK_FORMAT, MAPPINGS_FORMAT, framework_problems,
    parse_controls, parse_document, parse_framework, parse_mappings,
};
