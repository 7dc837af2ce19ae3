//! OpenAI-compatible Chat Completions (OpenAI, Azure deployments, vLLM, Ollama...).
//!
//! Non-streaming `chat.completion` and streaming `chat.completion.chunk` SSE with
//! `stream_options.include_usage` (the usage arrives in a last chunk whose `choices` is empty
//! — or null, as some servers send it), ended by `data: [DONE]`.

use super::{
    Completion, Credential, EventStream, Provider, ProviderRequest, StreamEvent, clip, credential,
    json_bytes, status_error, uri,
};
use crate::AiError;
use crate::http::{HttpClient, HttpResponse, Route};
use crate::retry::retry_after_from_headers;
use crate::types::{FinishReason, MessageRole, ProviderKind, TokenUsage};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub struct OpenAiCompatible {
    http: Route,
    base_url: String,
    /// `{base_url}/chat/completions`, parsed once (not per call) when it is a valid URL.
    completions_uri: Option<http::Uri>,
    /// `api-key` (Azure) or `Authorization: Bearer`.
    auth: Credential,
    azure_api_version: Option<String>,
}

impl OpenAiCompatible {
    pub fn new(
        http: &HttpClient,
        base_url: &str,
        api_key: Option<SecretString>,
        azure_api_version: Option<String>,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let auth = match &azure_api_version {
            Some(_) => credential(
                http::HeaderName::from_static("api-key"),
                api_key.map(|k| k.expose_secret().to_owned()),
            ),
            None => credential(
                http::header::AUTHORIZATION,
                api_key.map(|k| format!("Bearer {}", k.expose_secret())),
            ),
        };
        Self {
            http: http.route_to(&base_url),
            completions_uri: format!("{base_url}/chat/completions").parse().ok(),
            base_url,
            auth,
            azure_api_version,
        }
    }

    async fn send(&self, req: &ProviderRequest, stream: bool) -> Result<HttpResponse, AiError> {
        let target = match (&self.azure_api_version, &self.completions_uri) {
            (Some(v), _) => uri(&format!(
                "{}/openai/deployments/{}/chat/completions?api-version={v}",
                self.base_url, req.model
            ))?,
            (None, Some(u)) => u.clone(),
            // Not a valid URL: the call's error says so.
            (None, None) => uri(&format!("{}/chat/completions", self.base_url))?,
        };
        let auth = self.auth.clone()?;
        let body = json_bytes(&request_body(req, stream));
        super::send(self.http.post_json(target, auth, body), classify_error).await
    }
}

/// The Chat Completions request body (typed: the messages are serialised from the request's
/// strings, not copied into a `Value` tree first).
pub fn request_body(req: &ProviderRequest, stream: bool) -> impl Serialize + '_ {
    #[derive(Serialize)]
    struct Body<'a> {
        model: &'a str,
        messages: Vec<Message<'a>>,
        stream: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        stream_options: Option<StreamOptions>,
        #[serde(skip_serializing_if = "Option::is_none")]
        temperature: Option<f32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_completion_tokens: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        response_format: Option<ResponseFormat>,
    }
    #[derive(Serialize)]
    struct Message<'a> {
        role: &'static str,
        content: &'a str,
    }
    #[derive(Serialize)]
    struct StreamOptions {
        include_usage: bool,
    }
    #[derive(Serialize)]
    struct ResponseFormat {
        #[serde(rename = "type")]
        kind: &'static str,
    }
    Body {
        model: &req.model,
        messages: req
            .messages
            .iter()
            .map(|m| Message {
                role: match m.role {
                    MessageRole::System => "system",
                    MessageRole::User => "user",
                    MessageRole::Assistant => "assistant",
                },
                content: &m.content,
            })
            .collect(),
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        temperature: req.temperature,
        max_completion_tokens: req.max_output_tokens,
        response_format: req.json_output.then_some(ResponseFormat {
            kind: "json_object",
        }),
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<Value>,
}

/// Map an error response (status, headers, body) to a typed error.
pub fn classify_error(status: u16, headers: &http::HeaderMap, body: &str) -> AiError {
    let parsed = serde_json::from_str::<ErrorEnvelope>(body)
        .ok()
        .map(|e| e.error);
    let code = parsed
        .as_ref()
        .and_then(|e| e.code.as_ref())
        .and_then(|c| c.as_str())
        .unwrap_or("");
    let kind = parsed
        .as_ref()
        .and_then(|e| e.kind.as_deref())
        .unwrap_or("");
    let detail = clip(
        parsed
            .as_ref()
            .and_then(|e| e.message.as_deref())
            .unwrap_or(body),
    );
    if code == "insufficient_quota" || kind == "insufficient_quota" {
        return AiError::QuotaExhausted;
    }
    if code == "content_filter" || code == "content_policy_violation" {
        return AiError::Blocked {
            reason: code.to_owned(),
        };
    }
    status_error(status, detail, retry_after_from_headers(headers))
}

fn usage_of(v: &Value) -> Option<TokenUsage> {
    let u = v.as_object()?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    Some(TokenUsage {
        input_tokens: n("prompt_tokens")?,
        output_tokens: n("completion_tokens").unwrap_or(0),
        cached_input_tokens: v
            .pointer("/prompt_tokens_details/cached_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        estimated: false,
    })
}

pub fn finish_of(s: &str) -> FinishReason {
    match s {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter("content_filter".into()),
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Parse a non-streaming `chat.completion` body.
pub fn parse_completion(body: &[u8]) -> Result<Completion, AiError> {
    // Only the fields read below, typed: serde skips the rest of the body without building
    // a tree of it. Loosely typed where providers differ (`content` may be null or parts).
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        choices: Option<Vec<Choice>>,
        #[serde(default)]
        usage: Option<Value>,
    }
    #[derive(Deserialize)]
    struct Choice {
        #[serde(default)]
        message: Option<Message>,
        #[serde(default)]
        finish_reason: Option<Value>,
    }
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        content: Option<Value>,
    }
    let v: Body = serde_json::from_slice(body).map_err(|e| AiError::InvalidOutput {
        detail: format!("chat.completion body: {e}"),
    })?;
    let choice = v
        .choices
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| AiError::InvalidOutput {
            detail: "no choices".into(),
        })?;
    let text = match choice.message.and_then(|m| m.content) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let finish = choice
        .finish_reason
        .as_ref()
        .and_then(Value::as_str)
        .map(finish_of);
    if text.is_empty() && matches!(finish, Some(FinishReason::ContentFilter(_))) {
        return Err(AiError::Blocked {
            reason: "content_filter".into(),
        });
    }
    Ok(Completion {
        text,
        usage: v.usage.as_ref().and_then(usage_of),
        finish,
    })
}

/// Parse one streamed event's data: `None` for `[DONE]`.
pub fn parse_chunk(data: &str) -> Result<Option<Vec<StreamEvent>>, AiError> {
    if data.trim() == "[DONE]" {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| AiError::InvalidOutput {
        detail: format!("chunk: {e}"),
    })?;
    if v.get("error").is_some_and(|e| !e.is_null()) {
        return Err(classify_error(500, &http::HeaderMap::new(), data));
    }
    let mut out = Vec::new();
    // `choices` may be missing, null or empty (the usage-only chunk).
    if let Some(choices) = v.get("choices").and_then(Value::as_array) {
        for c in choices
            .iter()
            .filter(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        {
            if let Some(t) = c.pointer("/delta/content").and_then(Value::as_str)
                && !t.is_empty()
            {
                out.push(StreamEvent::Delta(t.to_owned()));
            }
            if let Some(f) = c.get("finish_reason").and_then(Value::as_str) {
                out.push(StreamEvent::Finish(finish_of(f)));
            }
        }
    }
    if let Some(u) = v.get("usage").and_then(usage_of) {
        out.push(StreamEvent::Usage(u));
    }
    Ok(Some(out))
}

impl Provider for OpenAiCompatible {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Openai
    }

    fn complete<'a>(
        &'a self,
        req: &'a ProviderRequest,
    ) -> BoxFuture<'a, Result<Completion, AiError>> {
        async move {
            let body = self.send(req, false).await?.bytes().await?;
            parse_completion(&body)
        }
        .boxed()
    }

    fn stream<'a>(
        &'a self,
        req: &'a ProviderRequest,
    ) -> BoxFuture<'a, Result<EventStream, AiError>> {
        async move {
            let resp = self.send(req, true).await?;
            let events = crate::sse::events(resp.into_stream());
            let s = futures::stream::unfold(
                (events.boxed(), false, false),
                |(mut ev, mut done, mut finished)| async move {
                    if done {
                        return None;
                    }
                    loop {
                        match ev.next().await {
                            Some(Ok(data)) => match parse_chunk(&data) {
                                Ok(None) => return None,
                                Ok(Some(items)) if items.is_empty() => continue,
                                Ok(Some(items)) => {
                                    finished |=
                                        items.iter().any(|i| matches!(i, StreamEvent::Finish(_)));
                                    return Some((Ok(items), (ev, done, finished)));
                                }
                                Err(e) => {
                                    done = true;
                                    return Some((Err(e), (ev, done, finished)));
                                }
                            },
                            Some(Err(e)) => {
                                done = true;
                                return Some((Err(e), (ev, done, finished)));
                            }
                            None if finished => return None,
                            None => {
                                done = true;
                                let e = AiError::Unavailable {
                                    detail: "stream ended before [DONE]".into(),
                                };
                                return Some((Err(e), (ev, done, finished)));
                            }
                        }
                    }
                },
            )
            .flat_map(|r: Result<Vec<StreamEvent>, AiError>| match r {
                Ok(items) => futures::stream::iter(items.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => futures::stream::iter(vec![Err(e)]),
            });
            Ok(s.boxed())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_only_chunk_with_empty_or_null_choices() {
        for choices in ["[]", "null"] {
            let data = format!(
                r#"{{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":{choices},"usage":{{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{{"cached_tokens":4}}}}}}"#
            );
            let ev = parse_chunk(&data).unwrap().unwrap();
            assert_eq!(
                ev,
                vec![StreamEvent::Usage(TokenUsage {
                    input_tokens: 9,
                    output_tokens: 3,
                    cached_input_tokens: 4,
                    estimated: false
                })]
            );
        }
        let no_choices = r#"{"id":"x","object":"chat.completion.chunk","usage":null}"#;
        assert_eq!(parse_chunk(no_choices).unwrap().unwrap(), vec![]);
        assert_eq!(parse_chunk("[DONE]").unwrap(), None);
    }

    #[test]
    fn error_bodies_are_classified() {
        let h = http::HeaderMap::new();
        let rate = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert!(matches!(
            classify_error(429, &h, rate),
            AiError::RateLimited { .. }
        ));
        let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert!(matches!(
            classify_error(429, &h, quota),
            AiError::QuotaExhausted
        ));
        assert!(!classify_error(429, &h, quota).is_retryable());
        assert!(classify_error(503, &h, "<html>bad gateway</html>").is_retryable());
        assert!(matches!(
            classify_error(
                401,
                &h,
                r#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#
            ),
            AiError::Rejected { status: 401, .. }
        ));
        let e = classify_error(
            400,
            &h,
            r#"{"error":{"message":"filtered","type":null,"code":"content_filter"}}"#,
        );
        assert!(matches!(e, AiError::Blocked { ref reason } if reason == "content_filter"));
        // Provider text never reaches Display.
        assert!(
            !classify_error(500, &h, r#"{"error":{"message":"secret internals"}}"#)
                .to_string()
                .contains("secret")
        );
    }

    #[test]
    fn malformed_chunk_is_invalid_output() {
        assert!(matches!(
            parse_chunk("{\"choices\": ["),
            Err(AiError::InvalidOutput { .. })
        ));
    }
}
