//! AI through the API: the pipeline every AI endpoint runs (limits, budget, safety,
//! gateway, audit), its typed errors, and the pieces it is built from.

mod audit_queue;
pub mod budget;
pub mod errors;
pub mod grounding;
pub mod limits;
pub mod pipeline;
pub mod schema;

pub use errors::{AiApiError, BlockedAt};
pub use pipeline::{
    AiCaller, AiPipeline, AnswerMeta, PipelineAnswer, PipelineEvent, PipelineParams,
    PipelineStream, Principal, SafetySummary,
};
