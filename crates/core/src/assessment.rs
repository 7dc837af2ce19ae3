//! Assessments: question banks built from the controls in scope of a framework,
//! structured answers, and the deterministic result they imply.
