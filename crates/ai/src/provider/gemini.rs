//! Google Gemini `models/{model}:generateContent` and `:streamGenerateContent?alt=sse`.
//!
//! System messages become `systemInstruction`, assistant turns `role: "model"`. Usage comes
//! from `usageMetadata` (in a stream: the last chunk that has it). A prompt the provider
//! blocks comes back as HTTP 200 with `promptFeedback.blockReason` and no candidates; that
//! is a typed `Blocked` error. Parts without text (function calls, thoughts) are skipped.

use super::{
    Completion, Credential, EventStream, Provider, ProviderRequest, StreamEvent, clip, credential,
    json_bytes, status_error, uri,
};
use crate::AiError;
use crate::config::SafetySetting;
use crate::http::{HttpClient, HttpResponse, Route};
use crate::retry::retry_after_from_headers;
use crate::types::{FinishReason, MessageRole, ProviderKind, TokenUsage};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::time::Duration;

pub struct Gemini {
    http: Route,
    base_url: String,
    /// `x-goog-api-key`.
    key: Credential,
    safety_settings: Vec<SafetySetting>,
}

impl Gemini {
    pub fn new(
        http: &HttpClient,
        base_url: &str,
        api_key: Option<SecretString>,
        safety_settings: Vec<SafetySetting>,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        Self {
            http: http.route_to(&base_url),
            base_url,
            key: credential(
                http::HeaderName::from_static("x-goog-api-key"),
                api_key.map(|k| k.expose_secret().to_owned()),
            ),
            safety_settings,
        }
    }

    async fn send(&self, req: &ProviderRequest, stream: bool) -> Result<HttpResponse, AiError> {
        let target = if stream {
            format!(
                "{}/models/{}:streamGenerateContent?alt=sse",
                self.base_url, req.model
            )
        } else {
            format!("{}/models/{}:generateContent", self.base_url, req.model)
        };
        let key = self.key.clone()?;
        let body = json_bytes(&request_body(req, &self.safety_settings));
        super::send(
            self.http.post_json(uri(&target)?, key, body),
            classify_error,
        )
        .await
    }
}

/// The `GenerateContentRequest` body.
pub fn request_body(req: &ProviderRequest, safety: &[SafetySetting]) -> Value {
    let system: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role == MessageRole::System)
        .map(|m| json!({"text": m.content}))
        .collect();
    let contents: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role != MessageRole::System)
        .map(|m| {
            let role = if m.role == MessageRole::Assistant {
                "model"
            } else {
                "user"
            };
            json!({"role": role, "parts": [{"text": m.content}]})
        })
        .collect();
    let mut body = json!({"contents": contents});
    if !system.is_empty() {
        body["systemInstruction"] = json!({"parts": system});
    }
    if !safety.is_empty() {
        body["safetySettings"] = json!(
            safety
                .iter()
                .map(|s| json!({"category": s.category, "threshold": s.threshold}))
                .collect::<Vec<_>>()
        );
    }
    let mut gen_cfg = serde_json::Map::new();
    if let Some(t) = req.temperature {
        gen_cfg.insert("temperature".into(), json!(t));
    }
    if let Some(n) = req.max_output_tokens {
        gen_cfg.insert("maxOutputTokens".into(), json!(n));
    }
    if req.json_output {
        gen_cfg.insert("responseMimeType".into(), json!("application/json"));
    }
    if !gen_cfg.is_empty() {
        body["generationConfig"] = Value::Object(gen_cfg);
    }
    body
}

/// `"2.5s"` (a protobuf Duration in JSON) -> 2.5 s.
fn proto_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Map an error response to a typed error. Gemini answers 429 `RESOURCE_EXHAUSTED` both for
/// a per-minute limit (retry later) and for a spent daily/free-tier quota (do not).
pub fn classify_error(status: u16, headers: &http::HeaderMap, body: &str) -> AiError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let err = v.get("error").unwrap_or(&Value::Null);
    let detail = clip(err.get("message").and_then(Value::as_str).unwrap_or(body));
    let details = err
        .get("details")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let typed = |suffix: &str| {
        details.iter().find(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(suffix))
        })
    };
    if status == 429 {
        let quota_spent = typed("google.rpc.QuotaFailure")
            .and_then(|q| q.get("violations"))
            .and_then(Value::as_array)
            .is_some_and(|vs| {
                vs.iter().any(|v| {
                    v.get("quotaId").and_then(Value::as_str).is_some_and(|id| {
                        id.contains("PerDay")
                            || id.contains("FreeTier") && !id.contains("PerMinute")
                    })
                })
            });
        if quota_spent {
            return AiError::QuotaExhausted;
        }
        let retry_after = typed("google.rpc.RetryInfo")
            .and_then(|r| r.get("retryDelay"))
            .and_then(Value::as_str)
            .and_then(proto_duration)
            .or_else(|| retry_after_from_headers(headers));
        return AiError::RateLimited { retry_after };
    }
    status_error(status, detail, retry_after_from_headers(headers))
}

/// Normalise a Gemini `finishReason`.
pub fn finish_of(s: &str) -> FinishReason {
    match s {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "LANGUAGE" => FinishReason::ContentFilter(s.to_owned()),
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS" => {
            FinishReason::ToolCalls
        }
        other => FinishReason::Other(other.to_owned()),
    }
}

fn usage_of(v: &Value) -> Option<TokenUsage> {
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    Some(TokenUsage {
        input_tokens: n("promptTokenCount")?,
        // Thinking tokens are billed as output.
        output_tokens: n("candidatesTokenCount").unwrap_or(0)
            + n("thoughtsTokenCount").unwrap_or(0),
        cached_input_tokens: n("cachedContentTokenCount").unwrap_or(0),
        estimated: false,
    })
}

/// What one `GenerateContentResponse` says.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub text: String,
    pub finish: Option<FinishReason>,
    pub usage: Option<TokenUsage>,
}

pub fn parse_response(v: &Value) -> Result<Parsed, AiError> {
    let candidates = v.get("candidates").and_then(Value::as_array);
    if let Some(reason) = v
        .pointer("/promptFeedback/blockReason")
        .and_then(Value::as_str)
        && candidates.is_none_or(|c| c.is_empty())
    {
        return Err(AiError::Blocked {
            reason: reason.to_owned(),
        });
    }
    let first = candidates.and_then(|c| c.first());
    let text: String = first
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                // Thought summaries are not the answer.
                .filter(|p| !p.get("thought").and_then(Value::as_bool).unwrap_or(false))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    Ok(Parsed {
        text,
        finish: first
            .and_then(|c| c.get("finishReason"))
            .and_then(Value::as_str)
            .map(finish_of),
        usage: v.get("usageMetadata").and_then(usage_of),
    })
}

impl Provider for Gemini {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    fn complete<'a>(
        &'a self,
        req: &'a ProviderRequest,
    ) -> BoxFuture<'a, Result<Completion, AiError>> {
        async move {
            let body = self.send(req, false).await?.bytes().await?;
            let v: Value = serde_json::from_slice(&body).map_err(|e| AiError::InvalidOutput {
                detail: format!("generateContent body: {e}"),
            })?;
            let p = parse_response(&v)?;
            if p.text.is_empty()
                && let Some(FinishReason::ContentFilter(reason)) = &p.finish
            {
                return Err(AiError::Blocked {
                    reason: reason.clone(),
                });
            }
            Ok(Completion {
                text: p.text,
                usage: p.usage,
                finish: p.finish,
            })
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
            let s = events
                .map(|r| -> Vec<Result<StreamEvent, AiError>> {
                    let data = match r {
                        Ok(d) => d,
                        Err(e) => return vec![Err(e)],
                    };
                    let v: Value = match serde_json::from_str(&data) {
                        Ok(v) => v,
                        Err(e) => {
                            return vec![Err(AiError::InvalidOutput {
                                detail: format!("chunk: {e}"),
                            })];
                        }
                    };
                    if v.get("error").is_some() {
                        let code = v
                            .pointer("/error/code")
                            .and_then(Value::as_u64)
                            .unwrap_or(500) as u16;
                        return vec![Err(classify_error(code, &http::HeaderMap::new(), &data))];
                    }
                    match parse_response(&v) {
                        Err(e) => vec![Err(e)],
                        Ok(p) => {
                            let mut out = Vec::new();
                            if !p.text.is_empty() {
                                out.push(Ok(StreamEvent::Delta(p.text)));
                            }
                            if let Some(u) = p.usage {
                                out.push(Ok(StreamEvent::Usage(u)));
                            }
                            if let Some(f) = p.finish {
                                out.push(Ok(StreamEvent::Finish(f)));
                            }
                            out
                        }
                    }
                })
                .flat_map(futures::stream::iter);
            // Gemini has no end marker: the stream ends with the connection. Stop at the
            // first error so nothing after a broken chunk is taken as the answer.
            let s = s.scan(false, |failed, item| {
                if *failed {
                    return futures::future::ready(None);
                }
                *failed = item.is_err();
                futures::future::ready(Some(item))
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
    fn every_finish_reason_is_normalised() {
        assert_eq!(finish_of("STOP"), FinishReason::Stop);
        assert_eq!(finish_of("MAX_TOKENS"), FinishReason::Length);
        for f in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
            "LANGUAGE",
        ] {
            assert_eq!(finish_of(f), FinishReason::ContentFilter(f.into()));
        }
        assert_eq!(
            finish_of("MALFORMED_FUNCTION_CALL"),
            FinishReason::ToolCalls
        );
        assert_eq!(finish_of("OTHER"), FinishReason::Other("OTHER".into()));
        assert_eq!(
            finish_of("FINISH_REASON_UNSPECIFIED"),
            FinishReason::Other("FINISH_REASON_UNSPECIFIED".into())
        );
    }

    #[test]
    fn blocked_prompt_is_a_typed_error() {
        let v = json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}});
        assert!(
            matches!(parse_response(&v), Err(AiError::Blocked { reason }) if reason == "PROHIBITED_CONTENT")
        );
    }

    #[test]
    fn parts_without_text_and_thoughts_are_skipped() {
        let v = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "f", "args": {}}}, {"text": "thinking", "thought": true}, {"text": "Hello"}, {"text": " world"}]},
            "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2, "thoughtsTokenCount": 3, "cachedContentTokenCount": 4, "totalTokenCount": 15}});
        let p = parse_response(&v).unwrap();
        assert_eq!(p.text, "Hello world");
        assert_eq!(
            p.usage,
            Some(TokenUsage {
                input_tokens: 10,
                output_tokens: 5,
                cached_input_tokens: 4,
                estimated: false
            })
        );
    }

    #[test]
    fn rate_limit_vs_spent_quota() {
        let h = http::HeaderMap::new();
        let rate = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "x", "details": [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]}}).to_string();
        assert!(
            matches!(classify_error(429, &h, &rate), AiError::RateLimited { retry_after: Some(d) } if d == Duration::from_millis(2500))
        );
        let quota = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "x", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}).to_string();
        assert!(matches!(
            classify_error(429, &h, &quota),
            AiError::QuotaExhausted
        ));
        assert!(classify_error(503, &h, "{}").is_retryable());
        assert!(matches!(
            classify_error(400, &h, "{}"),
            AiError::Rejected { status: 400, .. }
        ));
    }
}
