//! The provider seam: one trait for OpenAI-compatible servers, Gemini and the offline
//! provider. Providers translate wire formats and classify errors; they never retry or
//! time out on their own (the gateway does both, in one place).

pub mod gemini;
pub mod offline;
pub mod openai;

use crate::AiError;
use crate::types::{ChatMessage, FinishReason, ProviderKind, TaskKind, TokenUsage};
use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// What the gateway asks of one model.
#[derive(Clone, Debug)]
pub struct ProviderRequest {
    /// The provider's model (or deployment) name.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    pub max_output_tokens: Option<u32>,
    /// Ask for a JSON object (structured tasks).
    pub json_output: bool,
    /// The offline provider answers by task; remote providers ignore it.
    pub task: TaskKind,
}

/// A complete answer from a provider.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub text: String,
    /// `None` when the provider reported no usage.
    pub usage: Option<TokenUsage>,
    pub finish: Option<FinishReason>,
}

/// One piece of a streamed answer.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    Delta(String),
    /// Usage so far; the last one seen is the call's usage.
    Usage(TokenUsage),
    Finish(FinishReason),
}

pub type EventStream = BoxStream<'static, Result<StreamEvent, AiError>>;

pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    fn complete<'a>(
        &'a self,
        req: &'a ProviderRequest,
    ) -> BoxFuture<'a, Result<Completion, AiError>>;
    /// Resolves once the response has started (status checked); events follow.
    fn stream<'a>(
        &'a self,
        req: &'a ProviderRequest,
    ) -> BoxFuture<'a, Result<EventStream, AiError>>;
}

/// A transport failure: nothing in the response can be trusted, the provider may be down.
pub(crate) fn transport_error(e: reqwest::Error) -> AiError {
    let what = if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    AiError::Unavailable {
        detail: format!("{what} error: {e}"),
    }
}

/// Error statuses shared by both providers once their body has been looked at.
pub(crate) fn status_error(
    status: u16,
    detail: String,
    retry_after: Option<std::time::Duration>,
) -> AiError {
    match status {
        429 => AiError::RateLimited { retry_after },
        408 | 409 | 500..=599 => AiError::Unavailable {
            detail: format!("HTTP {status}: {detail}"),
        },
        _ => AiError::Rejected { status, detail },
    }
}

/// How a provider turns an error response (status, headers, body) into an `AiError`.
pub(crate) type ClassifyError = fn(u16, &reqwest::header::HeaderMap, &str) -> AiError;

/// Send a request; a non-200 answer becomes the provider's typed error.
pub(crate) async fn send(
    rb: reqwest::RequestBuilder,
    classify: ClassifyError,
) -> Result<reqwest::Response, AiError> {
    let resp = rb.send().await.map_err(transport_error)?;
    let status = resp.status().as_u16();
    if status == 200 {
        return Ok(resp);
    }
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    Err(classify(status, &headers, &body))
}

/// Truncate provider text kept for logs.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}
