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
///
/// Typed first: serde reads the few fields used straight into strings and numbers, skipping
/// the rest, with no `Value` tree of the body. A body whose fields have unusual types
/// (content as parts, a number where a string belongs...) fails that strict reading and is
/// read again by `parse_completion_loose`, so the answer is the same either way (a
/// property test holds the two readings together).
pub fn parse_completion(body: &[u8]) -> Result<Completion, AiError> {
    #[derive(Deserialize)]
    struct Choice {
        #[serde(default)]
        message: Option<Obj<Message>>,
        #[serde(default)]
        finish_reason: Option<String>,
    }
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        content: Option<String>,
    }
    let Ok(Obj(v)) = serde_json::from_slice::<Obj<WireBody<Choice>>>(body) else {
        return parse_completion_loose(body);
    };
    let choice = v
        .choices
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| AiError::InvalidOutput {
            detail: "no choices".into(),
        })?
        .0;
    let text = choice.message.and_then(|m| m.0.content).unwrap_or_default();
    let finish = choice.finish_reason.as_deref().map(finish_of);
    if text.is_empty() && matches!(finish, Some(FinishReason::ContentFilter(_))) {
        return Err(AiError::Blocked {
            reason: "content_filter".into(),
        });
    }
    Ok(Completion {
        text,
        usage: v.usage.and_then(|u| u.0.usage()),
        finish,
    })
}

/// Parse one streamed event's data: `None` for `[DONE]`.
///
/// Typed first, as [`parse_completion`] (one chunk arrives per token or so, so a `Value`
/// tree each was most of a streamed answer's parsing); unusual shapes go to
/// `parse_chunk_loose`.
pub fn parse_chunk(data: &str) -> Result<Option<Vec<StreamEvent>>, AiError> {
    #[derive(Deserialize)]
    struct Choice {
        #[serde(default)]
        index: Option<u64>,
        #[serde(default)]
        delta: Option<Obj<Delta>>,
        #[serde(default)]
        finish_reason: Option<String>,
    }
    #[derive(Deserialize)]
    struct Delta {
        #[serde(default)]
        content: Option<String>,
    }
    if data.trim() == "[DONE]" {
        return Ok(None);
    }
    let chunk = match serde_json::from_str::<Obj<WireBody<Choice>>>(data) {
        Ok(Obj(c)) if c.error.is_none() => c,
        // An error object, or a shape the typed reading does not take.
        _ => return parse_chunk_loose(data),
    };
    let mut out = Vec::new();
    for Obj(c) in chunk.choices.into_iter().flatten() {
        if c.index.unwrap_or(0) != 0 {
            continue;
        }
        if let Some(t) = c.delta.and_then(|d| d.0.content)
            && !t.is_empty()
        {
            out.push(StreamEvent::Delta(t));
        }
        if let Some(f) = c.finish_reason {
            out.push(StreamEvent::Finish(finish_of(&f)));
        }
    }
    if let Some(u) = chunk.usage.and_then(|u| u.0.usage()) {
        out.push(StreamEvent::Usage(u));
    }
    Ok(Some(out))
}

/// The top level of a `chat.completion` or `chat.completion.chunk` body, typed, with `C`
/// the choice as each reads it (`error` is only looked at in chunks).
#[derive(Deserialize)]
struct WireBody<C> {
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    #[serde(default = "Option::default")]
    choices: Option<Vec<Obj<C>>>,
    #[serde(default)]
    usage: Option<Obj<WireUsage>>,
}

/// A JSON object read into `T`, never an array: serde's derived structs also take an array
/// of their fields in order (`"usage": [9, 3]`), which the tolerant reading treats as no
/// usage; with this wrapper such a shape fails the typed reading and goes to the tolerant one.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectOnly<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(ObjectOnly(std::marker::PhantomData))
            .map(Obj)
    }
}

/// The fields of OpenAI's `usage` object that are read, typed (see [`usage_of`] for the
/// tolerant reading of the same object).
#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Obj<WireCached>>,
}

#[derive(Deserialize)]
struct WireCached {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl WireUsage {
    fn usage(self) -> Option<TokenUsage> {
        Some(TokenUsage {
            input_tokens: self.prompt_tokens?,
            output_tokens: self.completion_tokens.unwrap_or(0),
            cached_input_tokens: self
                .prompt_tokens_details
                .and_then(|d| d.0.cached_tokens)
                .unwrap_or(0),
            estimated: false,
        })
    }
}

/// [`parse_completion`] over a `Value` reading that tolerates any JSON shape.
fn parse_completion_loose(body: &[u8]) -> Result<Completion, AiError> {
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

/// [`parse_chunk`] (past `[DONE]`) over a `Value` tree that tolerates any JSON shape.
fn parse_chunk_loose(data: &str) -> Result<Option<Vec<StreamEvent>>, AiError> {
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

    /// JSON of the shapes providers send and of shapes they should not: the fields read, with
    /// values of every type, nested at random.
    fn wild_body() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![
            "index",
            "delta",
            "content",
            "finish_reason",
            "message",
            "prompt_tokens",
            "completion_tokens",
            "prompt_tokens_details",
            "cached_tokens",
            "type",
            "text",
            "role",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..40).prop_map(Value::from),
            Just(Value::from(2.5)),
            prop::sample::select(vec!["stop", "length", "content_filter", "hi", "", "[DONE]"])
                .prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(4, 32, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map(key.clone().prop_map(String::from), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let top = prop::sample::select(vec!["choices", "usage", "error", "id"]);
        prop::collection::btree_map(top.prop_map(String::from), value, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()).to_string())
    }

    proptest::proptest! {
        /// The typed readings answer exactly as the tolerant `Value` readings, for any shape.
        #[test]
        fn typed_and_loose_readings_agree(body in wild_body()) {
            proptest::prop_assert_eq!(parse_chunk(&body), parse_chunk_loose(&body));
            proptest::prop_assert_eq!(
                parse_completion(body.as_bytes()),
                parse_completion_loose(body.as_bytes())
            );
        }
    }

    #[test]
    fn typed_and_loose_readings_agree_on_real_and_odd_bodies() {
        let bodies = [
            r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
            r#"{"choices":[{"delta":{"content":"a"},"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"index":1,"delta":{"content":"other choice"}},{"index":0,"delta":{"content":"b"},"finish_reason":"length"}]}"#,
            r#"{"choices":[{"message":{"content":[{"type":"text","text":"parts"}]}}]}"#,
            r#"{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":-1}}"#,
            r#"{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":1.5,"completion_tokens":2}}"#,
            r#"{"usage":{"prompt_tokens":2,"prompt_tokens":3}}"#,
            r#"{"error":null,"choices":[{"delta":{"content":"ok"}}]}"#,
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            r#"{"choices":{"0":{"delta":{"content":"not an array"}}}}"#,
            // Arrays where objects belong (serde's derived structs would take them in order).
            r#"{"usage":[0]}"#,
            r#"{"usage":{"prompt_tokens":5,"prompt_tokens_details":[2]}}"#,
            r#"{"choices":[[0,{"content":"x"},"stop"]]}"#,
            r#"{"choices":[{"message":["hi"],"delta":["hi"]}]}"#,
            "[]",
            "{\"choices\": [",
            "",
            "[1, 2]",
        ];
        for body in bodies {
            assert_eq!(parse_chunk(body), parse_chunk_loose(body), "{body}");
            assert_eq!(
                parse_completion(body.as_bytes()),
                parse_completion_loose(body.as_bytes()),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_chunk_is_invalid_output() {
        assert!(matches!(
            parse_chunk("{\"choices\": ["),
            Err(AiError::InvalidOutput { .. })
        ));
    }
}
