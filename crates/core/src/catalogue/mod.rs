//! The compliance catalogue model: frameworks, requirements, common controls, mappings, packs.

mod builtin;
mod error;
mod export;
mod import;
mod index;
mod model;
mod oscal;
mod pack;
mod prowler;
mod reader;
mod stored;

#[cfg(test)]
mod tests;

pub use builtin::{BUILTIN_DOCUMENTS, builtin};
pub use error::{CatalogueError, Problem, ProblemKind};
pub use export::framework_to_yaml;
pub use import::{Format, ImportOptions, ImportedFramework, import_document};
pub use index::{Catalogue, Extended};
pub use model::{
    CommonControl, ControlLibrary, ControlMapping, Framework, Licence, MappingSet, Provenance,
    Relationship, Requirement, RequirementMapping, RequirementRef,
};
pub use oscal::{
    ASSAY_OSCAL_NS, OSCAL_VERSION, ProfileResolver, ProfileSource, framework_to_oscal,
    framework_to_oscal_json, oscal_ids, parse_oscal_catalog, parse_oscal_profile,
};
pub use pack::{
    CONTROLS_FORMAT, Document, FRAMEWORK_FORMAT, MAPPINGS_FORMAT, framework_problems,
    parse_controls, parse_document, parse_framework, parse_mappings,
};
pub use prowler::{ProwlerCheck, ProwlerImport, parse_prowler};
pub use stored::{MAX_KEY_LEN, PreparedPack, RESERVED_KEYS, prepare_pack, read_stored_pack};
