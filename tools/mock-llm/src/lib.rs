//! A mock LLM server speaking OpenAI Chat Completions and Google Gemini `generateContent`,
//! streaming and not, with deterministic content, configurable latency and pacing, and
//! faults a test can queue (429 with Retry-After, 5xx, stalls, malformed JSON, blocked
//! prompts). Tests start it in-process on `127.0.0.1:0`; benchmarks run the binary. A
//! process (with no queue to reach) takes a few faults from directives in the prompt
//! ([`PROMPT_DIRECTIVES`]).

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How the server behaves when no fault is queued.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Wait before the response (non-streaming) or before the first chunk (streaming).
    pub latency: Duration,
    /// How many content chunks a streamed answer is cut into.
    pub chunks: usize,
    /// Pause between streamed chunks.
    pub chunk_interval: Duration,
    /// Prompt tokens reported as served from the provider's prompt cache.
    pub cached_prompt_tokens: u64,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            chunks: 4,
            chunk_interval: Duration::ZERO,
            cached_prompt_tokens: 0,
        }
    }
}

/// A misbehaviour applied to one request (faults are taken from a queue, one per request).
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// 429 rate limit with `retry-after-ms` and `Retry-After` (OpenAI) or a `RetryInfo`
    /// detail (Gemini).
    RateLimited { retry_after_ms: u64 },
    /// 429 because the account is out of credit (OpenAI `insufficient_quota`; Gemini a
    /// per-day `QuotaFailure`).
    QuotaExhausted,
    /// Any error status with the provider's error body (500, 503, 408, 400...).
    Status(u16),
    /// 401 with the provider's invalid-key body.
    Unauthorized,
    /// Headers sent, then nothing until this much time has passed.
    StallBeforeFirstToken(Duration),
    /// A stream that pauses after `after_chunks` content chunks.
    StallMidStream {
        after_chunks: usize,
        stall: Duration,
    },
    /// OpenAI, streamed: the stream stops after `after_chunks` content chunks, with no
    /// finish chunk, no usage and no `[DONE]`, as when a provider drops the connection
    /// mid-answer. (Non-streamed requests are answered normally.)
    AbortMidStream { after_chunks: usize },
    /// A body (or, streamed, a chunk after the first) that is not valid JSON.
    MalformedJson,
    /// Gemini: HTTP 200 with `promptFeedback.blockReason` and no candidates. OpenAI: 400
    /// with code `content_filter` (as Azure deployments answer).
    PromptBlocked { reason: String },
    /// The answer ends with this finish reason instead of the normal one.
    FinishReason(String),
    /// OpenAI: the usage-only chunk carries `"choices": null` (as vLLM sends it).
    NullChoicesInUsageChunk,
    /// Gemini: the first streamed chunk also carries a part with no text.
    NonTextPart,
    /// No usage at all (as some OpenAI-compatible servers answer).
    OmitUsage,
}

/// A request the server received, for assertions.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Shared, test-controlled state: queued faults and replies, recorded requests.
pub struct MockControl {
    faults: Mutex<VecDeque<Fault>>,
    replies: Mutex<VecDeque<String>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Whether requests are kept for [`MockControl::requests`] (or only counted).
    keep_requests: bool,
    served: AtomicU64,
}

impl Default for MockControl {
    fn default() -> Self {
        Self {
            faults: Mutex::default(),
            replies: Mutex::default(),
            requests: Mutex::default(),
            keep_requests: true,
            served: AtomicU64::new(0),
        }
    }
}

impl MockControl {
    /// A control that counts requests without keeping them: for a server nobody can ask
    /// for its recorded requests (the standalone process, a benchmark's mock), where keeping
    /// a copy of each (headers and parsed body) would only grow its memory for as long as
    /// a benchmark drives it.
    pub fn counting_only() -> Self {
        Self {
            keep_requests: false,
            ..Self::default()
        }
    }

    /// Apply these faults to the next requests, one each, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.faults).extend(faults);
    }

    /// Answer the next requests with these texts instead of the generated reply.
    pub fn push_replies<S: Into<String>>(&self, replies: impl IntoIterator<Item = S>) {
        lock(&self.replies).extend(replies.into_iter().map(Into::into));
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// Requests received so far (cheaper than `requests().len()`).
    pub fn request_count(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    pub fn clear(&self) {
        lock(&self.faults).clear();
        lock(&self.replies).clear();
        lock(&self.requests).clear();
    }

    fn next_fault(&self) -> Option<Fault> {
        lock(&self.faults).pop_front()
    }

    fn next_reply(&self) -> Option<String> {
        lock(&self.replies).pop_front()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A server started in-process.
pub struct MockServer {
    pub addr: SocketAddr,
    pub control: Arc<MockControl>,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// `http://127.0.0.1:PORT` (OpenAI clients append `/v1/...`, Gemini `/v1beta/...`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start a server on `127.0.0.1:0` in this runtime.
pub async fn spawn(cfg: MockConfig) -> std::io::Result<MockServer> {
    spawn_with_control(cfg, MockControl::default()).await
}

/// Like [`spawn`], with the given control (e.g. [`MockControl::counting_only`]).
pub async fn spawn_with_control(
    cfg: MockConfig,
    control: MockControl,
) -> std::io::Result<MockServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let control = Arc::new(control);
    let c2 = control.clone();
    let task = tokio::spawn(async move {
        let _ = serve_with_control(listener, cfg, c2).await;
    });
    Ok(MockServer {
        addr,
        control,
        task,
    })
}

/// Serve on an already-bound listener until the task is dropped. Nobody holds the control,
/// so requests are counted, not kept (see [`MockControl::counting_only`]).
pub async fn serve(listener: TcpListener, cfg: MockConfig) -> std::io::Result<()> {
    serve_with_control(listener, cfg, Arc::new(MockControl::counting_only())).await
}

/// Like [`serve`], with a control handle kept by the caller.
pub async fn serve_with_control(
    listener: TcpListener,
    cfg: MockConfig,
    control: Arc<MockControl>,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Streamed chunks go out as written, as a provider's do: without TCP_NODELAY, Nagle's
    // algorithm holds each small chunk until the previous one is acknowledged, and a
    // delayed ACK makes that ~40 ms.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(cfg, control)).await
}

#[derive(Clone)]
struct AppState {
    cfg: Arc<MockConfig>,
    control: Arc<MockControl>,
}

/// The routes: OpenAI (`/v1/chat/completions`, Azure-style deployments) and Gemini.
pub fn router(cfg: MockConfig, control: Arc<MockControl>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/chat/completions", post(openai))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(openai),
        )
        .route("/v1beta/models/{spec}", post(gemini))
        .route("/v1/models/{spec}", post(gemini))
        .with_state(AppState {
            cfg: Arc::new(cfg),
            control,
        })
}

fn record(st: &AppState, path: &str, query: &HashMap<String, String>, h: &HeaderMap, body: &Value) {
    st.control.served.fetch_add(1, Ordering::SeqCst);
    if !st.control.keep_requests {
        return;
    }
    lock(&st.control.requests).push(RecordedRequest {
        path: path.to_owned(),
        query: query.clone(),
        headers: h.clone(),
        body: body.clone(),
    });
}

/// Whitespace-separated words: the mock's deterministic stand-in for tokens.
fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// The deterministic answer to a prompt: it quotes the start of the last user turn.
fn generated_reply(last_user: &str) -> String {
    let head: Vec<&str> = last_user.split_whitespace().take(12).collect();
    format!(
        "Mock answer. You asked about: {}. Here is a deterministic reply.",
        head.join(" ")
    )
}

/// Split `text` into at most `n` non-empty pieces on character boundaries.
fn split_chunks(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.clamp(1, chars.len().max(1));
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

struct Plan {
    reply: String,
    prompt_tokens: u64,
    completion_tokens: u64,
    cached_tokens: u64,
    fault: Option<Fault>,
}

/// A text a prompt may contain, and the fault it asks for.
pub type Directive = (&'static str, fn() -> Fault);

/// Faults a prompt can ask for, when none is queued: the last user message containing the
/// directive gets the fault (for processes such as the SDK check, which cannot queue).
pub const PROMPT_DIRECTIVES: &[Directive] = &[
    ("[mock-llm:abort-mid-stream]", || Fault::AbortMidStream {
        after_chunks: 1,
    }),
    ("[mock-llm:finish-length]", || {
        Fault::FinishReason("length".into())
    }),
];

fn prompt_fault(last_user: &str) -> Option<Fault> {
    PROMPT_DIRECTIVES
        .iter()
        .find(|(directive, _)| last_user.contains(directive))
        .map(|(_, fault)| fault())
}

fn plan(st: &AppState, prompt_text: &str, last_user: &str) -> Plan {
    let reply = st
        .control
        .next_reply()
        .unwrap_or_else(|| generated_reply(last_user));
    let prompt_tokens = words(prompt_text).max(1);
    Plan {
        completion_tokens: words(&reply),
        cached_tokens: st.cfg.cached_prompt_tokens.min(prompt_tokens),
        prompt_tokens,
        reply,
        fault: st.control.next_fault().or_else(|| prompt_fault(last_user)),
    }
}

fn sse_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        Ok::<Bytes, std::convert::Infallible>,
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("static response parts are valid")
}

/// The configured latency, plus any stall queued before the first token.
async fn wait_before_answer(cfg: &MockConfig, fault: &Option<Fault>) {
    let mut wait = cfg.latency;
    if let Some(Fault::StallBeforeFirstToken(d)) = fault {
        wait += *d;
    }
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// Pacing before streamed chunk `i`: the chunk interval, and a queued mid-stream stall.
async fn pace(cfg: &MockConfig, fault: &Option<Fault>, i: usize) {
    if i > 0 && !cfg.chunk_interval.is_zero() {
        tokio::time::sleep(cfg.chunk_interval).await;
    }
    if let Some(Fault::StallMidStream {
        after_chunks,
        stall,
    }) = fault
        && i == *after_chunks
    {
        tokio::time::sleep(*stall).await;
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

// ---------------------------------------------------------------- OpenAI

fn openai_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Response {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

async fn openai(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return openai_error(
                400,
                "invalid_request_error",
                None,
                "We could not parse the JSON body of your request.",
            );
        }
    };
    record(&st, uri.path(), &query, &headers, &body);
    let has_key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7)
        || headers.contains_key("api-key");
    if !has_key {
        return openai_error(
            401,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        );
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return openai_error(
            400,
            "invalid_request_error",
            None,
            "'messages' is a required property",
        );
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let text_of = |m: &Value| {
        m.get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let prompt_text: Vec<String> = messages.iter().map(text_of).collect();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(text_of)
        .unwrap_or_default();
    let p = plan(&st, &prompt_text.join(" "), &last_user);
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    match &p.fault {
        Some(Fault::RateLimited { retry_after_ms }) => {
            let mut r = openai_error(
                429,
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached for requests.",
            );
            let h = r.headers_mut();
            h.insert("retry-after-ms", HeaderValue::from(*retry_after_ms));
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_ms.div_ceil(1000)),
            );
            return r;
        }
        Some(Fault::QuotaExhausted) => {
            return openai_error(
                429,
                "insufficient_quota",
                Some("insufficient_quota"),
                "You exceeded your current quota, please check your plan and billing details.",
            );
        }
        Some(Fault::Status(code)) => {
            return openai_error(
                *code,
                "server_error",
                None,
                "The server had an error while processing your request.",
            );
        }
        Some(Fault::Unauthorized) => {
            return openai_error(
                401,
                "invalid_request_error",
                Some("invalid_api_key"),
                "Incorrect API key provided.",
            );
        }
        Some(Fault::PromptBlocked { .. }) => {
            return openai_error(
                400,
                "invalid_request_error",
                Some("content_filter"),
                "The response was filtered due to the prompt triggering content management policy.",
            );
        }
        _ => {}
    }

    let id = format!("chatcmpl-mock{}", st.control.request_count());
    let created = 1_700_000_000u64;
    let finish = match &p.fault {
        Some(Fault::FinishReason(f)) => f.clone(),
        _ => "stop".to_owned(),
    };
    let omit_usage = p.fault == Some(Fault::OmitUsage);
    let usage = json!({
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": p.completion_tokens,
        "total_tokens": p.prompt_tokens + p.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": p.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    });

    if !stream {
        wait_before_answer(&st.cfg, &p.fault).await;
        if p.fault == Some(Fault::MalformedJson) {
            return Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!(
                    "{{\"id\":\"{id}\",\"object\":\"chat.completion\",\"choices\":[{{"
                )))
                .expect("valid response");
        }
        let mut body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": p.reply, "refusal": null},
                "logprobs": null,
                "finish_reason": finish
            }],
            "usage": usage,
        });
        if omit_usage {
            body.as_object_mut().expect("object").remove("usage");
        }
        return json_response(StatusCode::OK, body);
    }

    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let cfg = st.cfg.clone();
    tokio::spawn(async move {
        let chunk = |delta: Value, finish: Value| {
            let mut c = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            Bytes::from(format!("data: {c}\n\n"))
        };
        wait_before_answer(&cfg, &p.fault).await;
        if tx
            .send(chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            ))
            .await
            .is_err()
        {
            return;
        }
        for (i, piece) in split_chunks(&p.reply, cfg.chunks).into_iter().enumerate() {
            pace(&cfg, &p.fault, i).await;
            if let Some(Fault::AbortMidStream { after_chunks }) = p.fault
                && i == after_chunks
            {
                return;
            }
            if i == 1 && p.fault == Some(Fault::MalformedJson) {
                let _ = tx
                    .send(Bytes::from_static(
                        b"data: {\"id\": \"broken\", \"choices\": [\n\n",
                    ))
                    .await;
                return;
            }
            if tx
                .send(chunk(json!({"content": piece}), Value::Null))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = tx.send(chunk(json!({}), json!(finish))).await;
        if include_usage && !omit_usage {
            let choices = if p.fault == Some(Fault::NullChoicesInUsageChunk) {
                Value::Null
            } else {
                json!([])
            };
            let c = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_mock", "choices": choices, "usage": usage,
            });
            let _ = tx.send(Bytes::from(format!("data: {c}\n\n"))).await;
        }
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    sse_response(rx)
}

// ---------------------------------------------------------------- Gemini

fn gemini_error(code: u16, status: &str, message: &str, details: Value) -> Response {
    let mut err = json!({"code": code, "message": message, "status": status});
    if !details.is_null() {
        err["details"] = details;
    }
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({ "error": err }),
    )
}

fn gemini_status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

async fn gemini(
    State(st): State<AppState>,
    Path(spec): Path<String>,
    uri: axum::http::Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, action)) = spec.split_once(':') else {
        return gemini_error(404, "NOT_FOUND", "Method not found.", Value::Null);
    };
    let (model, action) = (model.to_owned(), action.to_owned());
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return gemini_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received.",
                Value::Null,
            );
        }
    };
    record(&st, uri.path(), &query, &headers, &body);
    let stream = match action.as_str() {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return gemini_error(404, "NOT_FOUND", "Method not found.", Value::Null),
    };
    if !headers.contains_key("x-goog-api-key") && !query.contains_key("key") {
        return gemini_error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers. Please use API Key.",
            Value::Null,
        );
    }
    let Some(contents) = body.get("contents").and_then(Value::as_array) else {
        return gemini_error(
            400,
            "INVALID_ARGUMENT",
            "* GenerateContentRequest.contents: contents is not specified",
            Value::Null,
        );
    };
    let text_of = |c: &Value| -> String {
        c.get("parts")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let mut prompt: Vec<String> = contents.iter().map(text_of).collect();
    if let Some(sys) = body.get("systemInstruction") {
        prompt.push(text_of(sys));
    }
    let last_user = contents
        .iter()
        .rev()
        .find(|c| c.get("role").and_then(Value::as_str).unwrap_or("user") == "user")
        .map(text_of)
        .unwrap_or_default();
    let p = plan(&st, &prompt.join(" "), &last_user);

    match &p.fault {
        Some(Fault::RateLimited { retry_after_ms }) => {
            let secs = retry_after_ms / 1000;
            let frac = retry_after_ms % 1000;
            let delay = if frac == 0 {
                format!("{secs}s")
            } else {
                format!("{secs}.{frac:03}s")
            };
            return gemini_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                json!([
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}]},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
                ]),
            );
        }
        Some(Fault::QuotaExhausted) => {
            return gemini_error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
                json!([
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}
                ]),
            );
        }
        Some(Fault::Status(code)) => {
            return gemini_error(
                *code,
                gemini_status_name(*code),
                "An internal error has occurred.",
                Value::Null,
            );
        }
        Some(Fault::Unauthorized) => {
            return gemini_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                json!([
                    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}
                ]),
            );
        }
        _ => {}
    }

    let usage_full = {
        let mut u = json!({
            "promptTokenCount": p.prompt_tokens,
            "candidatesTokenCount": p.completion_tokens,
            "totalTokenCount": p.prompt_tokens + p.completion_tokens,
        });
        if p.cached_tokens > 0 {
            u["cachedContentTokenCount"] = json!(p.cached_tokens);
        }
        u
    };
    let response_id = format!("mock-{}", st.control.request_count());

    if let Some(Fault::PromptBlocked { reason }) = &p.fault {
        let blocked = json!({
            "promptFeedback": {"blockReason": reason, "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
            "usageMetadata": {"promptTokenCount": p.prompt_tokens, "totalTokenCount": p.prompt_tokens},
            "modelVersion": model, "responseId": response_id,
        });
        if !stream {
            return json_response(StatusCode::OK, blocked);
        }
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Bytes::from(format!("data: {blocked}\r\n\r\n")));
        return sse_response(rx);
    }

    let finish = match &p.fault {
        Some(Fault::FinishReason(f)) => f.clone(),
        _ => "STOP".to_owned(),
    };
    let candidate = |text: Option<&str>, extra_part: bool, finish: Option<&str>| {
        let mut parts = Vec::new();
        if extra_part {
            parts.push(json!({"functionCall": {"name": "lookup", "args": {}}}));
        }
        if let Some(t) = text {
            parts.push(json!({"text": t}));
        }
        let mut c = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let Some(f) = finish {
            c["finishReason"] = json!(f);
            if f == "SAFETY" {
                c["content"] = json!({"parts": [], "role": "model"});
                c["safetyRatings"] = json!([{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": true}]);
            }
        }
        c
    };

    if !stream {
        wait_before_answer(&st.cfg, &p.fault).await;
        if p.fault == Some(Fault::MalformedJson) {
            return Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"candidates\": [{\"content\": "))
                .expect("valid response");
        }
        return json_response(
            StatusCode::OK,
            json!({
                "candidates": [candidate(Some(&p.reply), p.fault == Some(Fault::NonTextPart), Some(&finish))],
                "usageMetadata": usage_full,
                "modelVersion": model,
                "responseId": response_id,
            }),
        );
    }

    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let cfg = st.cfg.clone();
    tokio::spawn(async move {
        wait_before_answer(&cfg, &p.fault).await;
        let pieces = split_chunks(&p.reply, cfg.chunks);
        let last = pieces.len() - 1;
        for (i, piece) in pieces.into_iter().enumerate() {
            pace(&cfg, &p.fault, i).await;
            if i == 1 && p.fault == Some(Fault::MalformedJson) {
                let _ = tx
                    .send(Bytes::from_static(b"data: {\"candidates\": [{\r\n\r\n"))
                    .await;
                return;
            }
            let is_last = i == last;
            let text = if is_last && finish == "SAFETY" {
                None
            } else {
                Some(piece.as_str())
            };
            let usage = if is_last {
                usage_full.clone()
            } else {
                // Intermediate chunks carry the prompt count only; the final one is complete.
                json!({"promptTokenCount": p.prompt_tokens, "totalTokenCount": p.prompt_tokens})
            };
            let c = json!({
                "candidates": [candidate(text, i == 0 && p.fault == Some(Fault::NonTextPart), is_last.then_some(finish.as_str()))],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": response_id,
            });
            if tx
                .send(Bytes::from(format!("data: {c}\r\n\r\n")))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    sse_response(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of an OpenAI chat completion request to `server`.
    async fn openai_text(server: &MockServer, body: Value) -> String {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", server.base_url()))
            .bearer_auth("k")
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    #[test]
    fn chunks_cover_the_text_in_order() {
        let t = "Mock answer. You asked about: ünïcode text.";
        for n in 1..12 {
            let parts = split_chunks(t, n);
            assert!(parts.len() <= n.max(1));
            assert_eq!(parts.concat(), t);
            assert!(parts.iter().all(|p| !p.is_empty()));
        }
    }

    #[tokio::test]
    async fn a_counting_only_control_counts_requests_without_keeping_them() {
        let server = spawn_with_control(MockConfig::default(), MockControl::counting_only())
            .await
            .unwrap();
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for _ in 0..3 {
            assert!(
                openai_text(&server, body.clone())
                    .await
                    .contains("Mock answer")
            );
        }
        assert_eq!(server.control.request_count(), 3);
        assert!(server.control.requests().is_empty());

        let recording = spawn(MockConfig::default()).await.unwrap();
        openai_text(&recording, body).await;
        assert_eq!(recording.control.requests().len(), 1);
    }

    #[tokio::test]
    async fn openai_stream_ends_with_usage_then_done() {
        let server = spawn(MockConfig::default()).await.unwrap();
        let body = openai_text(
            &server,
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "hello there"}]}),
        )
        .await;
        let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.last(), Some(&"data: [DONE]"));
        let usage: Value =
            serde_json::from_str(events[events.len() - 2].trim_start_matches("data: ")).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["prompt_tokens"], 2);
    }

    #[tokio::test]
    async fn an_aborted_openai_stream_stops_after_its_chunks_without_done() {
        let server = spawn(MockConfig {
            chunks: 4,
            ..MockConfig::default()
        })
        .await
        .unwrap();
        server
            .control
            .push_faults([Fault::AbortMidStream { after_chunks: 2 }]);
        let reply = "0123456789abcdefghijKLMNOPQRSTklmnopqrst"; // 4 chunks of 10
        server.control.push_replies([reply]);
        let body = openai_text(
            &server,
            json!({"model": "m", "stream": true,
                "messages": [{"role": "user", "content": "count"}]}),
        )
        .await;
        let events: Vec<Value> = body
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let data = e.strip_prefix("data: ").unwrap();
                assert_ne!(data, "[DONE]", "{body}");
                serde_json::from_str(data).unwrap()
            })
            .collect();
        // The role chunk, then two of the four content chunks; nothing finishes.
        assert_eq!(events.len(), 3, "{body}");
        let text: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, reply[..20]);
        assert!(
            events
                .iter()
                .all(|e| e["choices"][0]["finish_reason"].is_null())
        );
    }

    #[tokio::test]
    async fn a_prompt_directive_applies_its_fault_when_none_is_queued() {
        let server = spawn(MockConfig::default()).await.unwrap();
        let finish = |content: &str| {
            let body = json!({"model": "m", "messages": [{"role": "user", "content": content}]});
            let server = &server;
            async move {
                let v: Value = serde_json::from_str(&openai_text(server, body).await).unwrap();
                v["choices"][0]["finish_reason"].clone()
            }
        };
        assert_eq!(
            finish("Summarise [mock-llm:finish-length] please").await,
            "length"
        );
        assert_eq!(finish("Summarise please").await, "stop");
        server
            .control
            .push_faults([Fault::FinishReason("content_filter".into())]);
        assert_eq!(
            finish("[mock-llm:finish-length]").await,
            "content_filter",
            "a queued fault comes first"
        );
    }

    #[tokio::test]
    async fn missing_key_is_rejected_like_the_real_apis() {
        let server = spawn(MockConfig::default()).await.unwrap();
        let c = reqwest::Client::new();
        let r = c
            .post(format!("{}/v1/chat/completions", server.base_url()))
            .json(&json!({"model": "m", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = c
            .post(format!(
                "{}/v1beta/models/g:generateContent",
                server.base_url()
            ))
            .json(&json!({"contents": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
}
