//! The provider seam: one trait for OpenAI-compatible servers, Gemini and the offline
//! provider. Providers translate wire formats and classify errors; they never retry or
//! time out on their own (the gateway does both, in one place).

pub mod gemini;
pub mod offline;
pub mod openai;

use crate::AiError;
use crate::http::HttpResponse;
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
pub(crate) type ClassifyError = fn(u16, &http::HeaderMap, &str) -> AiError;

/// Wait for a response; a non-200 answer becomes the provider's typed error.
pub(crate) async fn send(
    sent: impl Future<Output = Result<HttpResponse, AiError>>,
    classify: ClassifyError,
) -> Result<HttpResponse, AiError> {
    let resp = sent.await?;
    let status = resp.status.as_u16();
    if status == 200 {
        return Ok(resp);
    }
    let headers = resp.headers.clone();
    let body = resp.text().await;
    Err(classify(status, &headers, &body))
}

/// A JSON request body (the bodies are plain data: they always serialise).
pub(crate) fn json_bytes(v: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The header a provider's key travels in, built once when the provider is: `None` without
/// a key; an error (returned by every call) for a key HTTP cannot carry (a line break in
/// it) rather than a mangled header.
pub(crate) type Credential = Result<Option<(http::HeaderName, http::HeaderValue)>, AiError>;

pub(crate) fn credential(name: http::HeaderName, value: Option<String>) -> Credential {
    let Some(v) = value else { return Ok(None) };
    let mut h = http::HeaderValue::from_str(&v).map_err(|_| AiError::Unavailable {
        detail: "request error: the API key holds characters HTTP cannot carry".into(),
    })?;
    h.set_sensitive(true);
    Ok(Some((name, h)))
}

/// A provider URL, parsed (an invalid one fails the call as a request error).
pub(crate) fn uri(s: &str) -> Result<http::Uri, AiError> {
    s.parse().map_err(|e| AiError::Unavailable {
        detail: format!("request error: invalid URL {s}: {e}"),
    })
}

/// Truncate provider text kept for logs.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}
