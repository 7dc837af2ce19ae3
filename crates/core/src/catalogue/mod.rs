//! The compliance catalogue model: frameworks, requirements, common controls, mappings, packs.
