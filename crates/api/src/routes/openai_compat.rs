//! The OpenAI-compatible endpoint (B-4): `POST /v1/chat/completions` and `GET /v1/models`,
//! so any OpenAI SDK pointed at `https://<assay>/v1` gets the organisation's guard-rails.
//!
//! - Who: an organisation API key (`assay_<id>_<secret>`) with the `ai` scope (or `admin`,
//!   which implies it). The organisation is the key's; there is no org in the path. People's
//!   access tokens are refused (they use the `/api/v1/orgs/{org_id}/ai/...` endpoints).
//! - What runs: the same AI pipeline as the rest of the AI API (limits per API key, budget,
//!   input and output safety, gateway, audit); this module only translates the wire format.
//!   `model` is `assay-auto` (the gateway chooses) or a served model, which is then the only
//!   AI model called (the offline fallback still answers when it fails).
//! - Errors: every error on these routes — the handler's, the extractors', the rate limiter's
//!   — leaves as OpenAI's `{"error":{"message","type","param","code"}}` ([`openai_errors`]),
//!   and so does any error for a path under `/v1/` that no route handled: unknown path,
//!   wrong method, body too large (`UnderV1`). The SDKs then raise their
//!   typed exceptions. A stream that fails after it started ends with one such body as a
//!   `data:` event and no `[DONE]`. `code` carries Assay's stable code
//!   (`ai_rate_limited`, `ai_blocked`, `forbidden`...), except where OpenAI clients look for
//!   OpenAI's own (`invalid_api_key`, `model_not_found`).

use crate::auth::{Caller, ClientFacts, OrgAccess};
use crate::error::ApiError;
use crate::state::AppState;
use assay_ai::types::{FinishReason, GenerationParams};
use assay_ai::{ChatMessage, TaskKind, TokenUsage};
use assay_core::OrgCtx;
use assay_core::access::Permission;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The model name that lets the gateway choose (task, complexity, breakers, fallbacks).
pub const AUTO_MODEL: &str = "assay-auto";

// ---- Errors in OpenAI's shape --------------------------------------------------------------

/// An error as OpenAI sends it: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `rate_limit_error`, `server_error`...
    pub kind: &'static str,
    /// The request field at fault (`messages[1].role`), when there is one.
    pub param: Option<String>,
    pub code: Option<Cow<'static, str>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl OpenAiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            kind: kind_for(status),
            param: None,
            code: Some(code.into()),
            headers: Vec::new(),
        }
    }

    /// 400 `invalid_request_error` naming the parameter at fault.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        e.param = Some(param.into());
        e
    }

    fn model_not_found(model: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "The model `{model}` does not exist or you do not have access to it. \
                 GET /v1/models lists the models this gateway serves."
            ),
        );
        e.param = Some("model".into());
        e
    }

    /// The same error with Assay's status, code, message and headers (`Retry-After`,
    /// `WWW-Authenticate`, `X-RateLimit-*`). Assay's generic 401 codes become OpenAI's
    /// `invalid_api_key`, which is what OpenAI clients look for.
    pub fn from_api_error(err: &ApiError) -> Self {
        let code: Cow<'static, str> = match (err.status, err.code) {
            (StatusCode::UNAUTHORIZED, "unauthenticated" | "invalid_token" | "token_expired") => {
                "invalid_api_key".into()
            }
            (_, code) => code.into(),
        };
        let param = err
            .details
            .as_ref()
            .and_then(|d| d["fields"][0]["field"].as_str())
            .map(str::to_owned);
        Self {
            status: err.status,
            message: err.message.clone(),
            kind: kind_for(err.status),
            param,
            code: Some(code),
            headers: err.headers.clone(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: impl ToString) -> Self {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((name, v));
        }
        self
    }

    /// The body: also what a stream sends as its last event when it fails mid-way.
    pub fn body(&self) -> Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

/// OpenAI's error `type` for a status.
fn kind_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        403 => "permission_error",
        429 => "rate_limit_error",
        408 | 500.. => "server_error",
        _ => "invalid_request_error",
    }
}

impl From<ApiError> for OpenAiError {
    fn from(err: ApiError) -> Self {
        Self::from_api_error(&err)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        // JSON with no `ApiError` extension: the outer `render_errors` leaves it as it is.
        let mut res = (self.status, axum::Json(self.body())).into_response();
        for (name, value) in self.headers {
            res.headers_mut().insert(name, value);
        }
        res
    }
}

/// Route layer for the `/v1` routes: any error in Assay's shape (from an extractor or the
/// rate limiter) is re-rendered in OpenAI's, keeping status and headers. The errors that
/// happen outside these routes are `UnderV1`'s.
pub async fn openai_errors(req: Request, next: Next) -> Response {
    in_openai_shape(next.run(req).await, None)
}

/// Whether `path` is the OpenAI-compatible API's (`/v1/...`, not `/api/v1/...`).
fn is_openai_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// For paths under `/v1/` (the outermost middleware, `crate::edge`, asks before the request
/// runs): the errors produced before any `/v1` route runs — the router's 404 (unknown path)
/// and 405 (wrong method), the body limit's 413, the timeout's 408 — leave in OpenAI's shape
/// too, so an OpenAI SDK raises its typed error. Every other path keeps Assay's shape.
pub(crate) struct UnderV1 {
    method: axum::http::Method,
    uri: axum::http::Uri,
}

impl UnderV1 {
    /// `Some` for a request to the OpenAI-compatible API.
    pub(crate) fn of(req: &Request) -> Option<Self> {
        is_openai_path(req.uri().path()).then(|| Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
        })
    }

    /// The response, errors in OpenAI's shape.
    pub(crate) fn shape(&self, res: Response) -> Response {
        let status = res.status();
        if !(status.is_client_error() || status.is_server_error()) {
            return res;
        }
        let target = format!("{} {}", self.method, self.uri.path());
        in_openai_shape(res, Some(&target))
    }
}

/// `res` in OpenAI's error shape when it is an error not already in it. `target` (`POST
/// /v1/x`) is given for requests no route matched, to name in 404/405 messages.
fn in_openai_shape(res: Response, target: Option<&str>) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let err = match parts.extensions.remove::<ApiError>() {
        Some(err) => err,
        None => {
            let is_json = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if is_json {
                // Already rendered (ours, in OpenAI's shape).
                return Response::from_parts(parts, body);
            }
            ApiError::from_status(status)
        }
    };
    let mut e = OpenAiError::from_api_error(&err);
    match (status, target) {
        // As OpenAI words it, with what this gateway does serve.
        (StatusCode::NOT_FOUND, Some(target)) if err.code == "not_found" => {
            e.message = format!(
                "Invalid URL ({target}). This gateway serves POST /v1/chat/completions and GET /v1/models."
            );
        }
        (StatusCode::METHOD_NOT_ALLOWED, Some(target)) => {
            e.message = format!(
                "Method not allowed ({target}). This gateway serves POST /v1/chat/completions and GET /v1/models."
            );
        }
        _ => {}
    }
    let mut out = e.into_response();
    // Keep what the inner layers added (rate-limit headers, security headers come later).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    out
}

// ---- Who may call ---------------------------------------------------------------------------

/// Extractor: an organisation API key with the `ai` scope, as org access in the key's
/// organisation. No credential, a person's token or a bad key: 401 `invalid_api_key`; a key
/// without `ai`: 403 `forbidden`, audited like every denial.
pub struct AiKeyAccess(pub OrgAccess);

impl FromRequestParts<AppState> for AiKeyAccess {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OpenAiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let not_a_key = |message: &str| {
            OpenAiError::from(ApiError::unauthenticated("invalid_api_key", message))
        };
        match bearer {
            None => {
                return Err(not_a_key(
                    "You didn't provide an API key: send Authorization: Bearer <an Assay organisation API key with the ai scope>.",
                ));
            }
            Some(b) if !assay_auth::api_key::is_api_key(b) => {
                return Err(not_a_key(
                    "This endpoint takes an Assay organisation API key (assay_...) with the ai scope; \
                     people's access tokens are for /api/v1.",
                ));
            }
            Some(_) => {}
        }
        let caller = Caller::from_request_parts(parts, state).await?;
        let Caller::ApiKey { org_id, scopes, .. } = &caller else {
            return Err(not_a_key("an organisation API key is required"));
        };
        let ctx = OrgCtx::for_api_key(*org_id, crate::auth::role_for_scopes(*scopes));
        let Ok(facts) = ClientFacts::from_request_parts(parts, state).await;
        let access = OrgAccess { ctx, caller, facts };
        access.require(state, Permission::AiUse).await.map_err(|e| {
            let mut e = OpenAiError::from(e);
            e.message = "This API key lacks the ai scope; create one with the ai scope to use the AI endpoints.".into();
            e
        })?;
        Ok(AiKeyAccess(access))
    }
}

// ---- Models -----------------------------------------------------------------------------------

/// One entry of `GET /v1/models` (OpenAI's model object).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelObject {
    /// What to send as `model`: `assay-auto`, a configured model's registry id
    /// (`openai/gpt-4.1-mini`), or `offline`.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds (when this server started).
    pub created: u64,
    /// The configured provider (`openai`, `gemini`...), `offline`, or `assay` for the alias.
    pub owned_by: String,
}

/// `GET /v1/models`: `{"object":"list","data":[...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

fn started_at() -> u64 {
    static AT: OnceLock<u64> = OnceLock::new();
    *AT.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// The models a request may name, in the order `/v1/models` lists them: the gateway's own
/// choice first, then the configured registry, then the offline provider when enabled.
fn served_models(state: &AppState) -> Vec<ModelObject> {
    let ai = &state.config().ai;
    let created = started_at();
    let entry = |id: String, owned_by: String| ModelObject {
        id,
        object: "model",
        created,
        owned_by,
    };
    let mut out = vec![entry(AUTO_MODEL.into(), "assay".into())];
    for m in &ai.models {
        out.push(entry(m.registry_id(), m.provider.clone()));
    }
    if ai.offline_fallback
        && !out
            .iter()
            .any(|m| m.id == assay_ai::registry::OFFLINE_MODEL_ID)
    {
        out.push(entry(
            assay_ai::registry::OFFLINE_MODEL_ID.into(),
            assay_ai::registry::OFFLINE_MODEL_ID.into(),
        ));
    }
    out
}

/// The models this gateway serves to the key's organisation.
#[utoipa::path(
    get,
    path = "/v1/models",
    operation_id = "openai_list_models",
    tag = "openai",
    summary = "OpenAI-compatible model list",
    description = "The model names `POST /v1/chat/completions` accepts: `assay-auto` (the \
        gateway chooses by task and complexity, with fallbacks), the configured models (the \
        named model is the only AI model called; if it fails, the offline fallback answers, \
        marked offline) and `offline` (deterministic answers from the built-in catalogue). \
        Needs an organisation API key with the `ai` scope. Errors use OpenAI's shape \
        `OpenAiErrorResponse`.",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The models", body = ModelList),
        (status = 401, description = "No API key, or not a valid organisation API key (`invalid_api_key`)", body = OpenAiErrorResponse),
        (status = 403, description = "The key lacks the `ai` scope (`forbidden`), or AI is switched off in this deployment (`ai_disabled`)", body = OpenAiErrorResponse),
        (status = 429, description = "Rate limited; see `Retry-After`", body = OpenAiErrorResponse),
        (status = 500, description = "Internal error", body = OpenAiErrorResponse),
        (status = 503, description = "The database is temporarily unavailable", body = OpenAiErrorResponse),
    )
)]
pub async fn list_models(State(state): State<AppState>, _access: AiKeyAccess) -> Response {
    if !state.ai_pipeline().enabled() {
        return backend::pipeline_error(&crate::ai::AiApiError::disabled()).into_response();
    }
    axum::Json(ModelList {
        object: "list",
        data: served_models(&state),
    })
    .into_response()
}

// ---- Request ----------------------------------------------------------------------------------

/// A validated `POST /v1/chat/completions` body, in the gateway's terms.
#[derive(Debug, Clone)]
pub struct ChatCompletionRequest {
    /// As the client sent it (`assay-auto`, a registry id or `offline`).
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub params: GenerationParams,
    pub stream: bool,
    pub include_usage: bool,
}

/// Parameters accepted only at their no-op value (clients such as LangChain send defaults);
/// any other value changes the answer in a way this gateway does not implement, so it is
/// refused rather than silently ignored.
/// Whether a parameter's value is its no-op default.
type IsDefault = fn(&Value) -> bool;

const DEFAULT_ONLY: &[(&str, IsDefault)] = &[
    ("n", |v| v.as_u64() == Some(1)),
    ("top_p", |v| v.as_f64() == Some(1.0)),
    ("presence_penalty", |v| v.as_f64() == Some(0.0)),
    ("frequency_penalty", |v| v.as_f64() == Some(0.0)),
    ("logprobs", |v| v.as_bool() == Some(false)),
    ("parallel_tool_calls", |v| v.is_boolean()),
    ("stop", |v| v.as_array().is_some_and(Vec::is_empty)),
    ("response_format", |v| v["type"] == "text"),
    ("tools", |v| v.as_array().is_some_and(Vec::is_empty)),
    ("tool_choice", |v| v == "none"),
];

/// Parameters accepted and not used: they do not change the answer.
const IGNORED: &[&str] = &["user", "seed", "store", "metadata", "service_tier"];

/// Upper bound on `max_tokens` (the largest output any configured model family allows).
const MAX_OUTPUT_TOKENS: u64 = 1_000_000;

/// Parse and check a body, naming the parameter at fault as OpenAI does.
pub fn parse_request(bytes: &[u8]) -> Result<ChatCompletionRequest, OpenAiError> {
    let body: Value = serde_json::from_slice(bytes).map_err(|_| {
        OpenAiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "We could not parse the JSON body of your request. The body must be a JSON object.",
        )
    })?;
    let Some(obj) = body.as_object() else {
        return Err(OpenAiError::invalid(
            "",
            "The request body must be a JSON object.",
        ));
    };
    for (key, value) in obj {
        let known = matches!(
            key.as_str(),
            "model"
                | "messages"
                | "temperature"
                | "max_tokens"
                | "max_completion_tokens"
                | "stream"
                | "stream_options"
        ) || IGNORED.contains(&key.as_str());
        if known || value.is_null() {
            continue;
        }
        match DEFAULT_ONLY.iter().find(|(name, _)| name == key) {
            Some((_, is_default)) if is_default(value) => {}
            Some(_) => {
                return Err(OpenAiError::invalid(
                    key.clone(),
                    format!(
                        "'{key}' is not supported by this gateway except at its default value."
                    ),
                ));
            }
            None => {
                return Err(OpenAiError::invalid(
                    key.clone(),
                    format!("Unrecognized request argument supplied: {key}"),
                ));
            }
        }
    }

    let model = match obj.get("model") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => {
            return Err(OpenAiError::invalid("model", "'model' must not be empty."));
        }
        Some(_) => return Err(OpenAiError::invalid("model", "'model' must be a string.")),
        None => {
            return Err(OpenAiError::invalid(
                "model",
                "you must provide a model parameter",
            ));
        }
    };
    let messages = parse_messages(obj.get("messages"))?;

    let temperature = match obj.get("temperature") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=2.0).contains(&t) => Some(t as f32),
            _ => {
                return Err(OpenAiError::invalid(
                    "temperature",
                    "'temperature' must be a number from 0 to 2.",
                ));
            }
        },
    };
    let tokens = |name: &str| -> Result<Option<u32>, OpenAiError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (1..=MAX_OUTPUT_TOKENS).contains(&n) => Ok(Some(n as u32)),
                _ => Err(OpenAiError::invalid(
                    name,
                    format!("'{name}' must be an integer from 1 to {MAX_OUTPUT_TOKENS}."),
                )),
            },
        }
    };
    let max_tokens = tokens("max_tokens")?;
    let max_completion_tokens = tokens("max_completion_tokens")?;
    if let (Some(a), Some(b)) = (max_tokens, max_completion_tokens)
        && a != b
    {
        return Err(OpenAiError::invalid(
            "max_tokens",
            "Send either 'max_tokens' or 'max_completion_tokens', not both with different values.",
        ));
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(OpenAiError::invalid(
                "stream",
                "'stream' must be a boolean.",
            ));
        }
    };
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(_) if !stream => {
            return Err(OpenAiError::invalid(
                "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            ));
        }
        Some(Value::Object(o)) => {
            if let Some(k) = o.keys().find(|k| *k != "include_usage") {
                return Err(OpenAiError::invalid(
                    format!("stream_options.{k}"),
                    format!("Unrecognized stream option: {k}"),
                ));
            }
            match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(OpenAiError::invalid(
                        "stream_options.include_usage",
                        "'include_usage' must be a boolean.",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(OpenAiError::invalid(
                "stream_options",
                "'stream_options' must be an object.",
            ));
        }
    };
    Ok(ChatCompletionRequest {
        model,
        messages,
        params: GenerationParams {
            temperature,
            max_output_tokens: max_completion_tokens.or(max_tokens),
        },
        stream,
        include_usage,
    })
}

fn parse_messages(v: Option<&Value>) -> Result<Vec<ChatMessage>, OpenAiError> {
    let Some(v) = v else {
        return Err(OpenAiError::invalid(
            "messages",
            "'messages' is a required property",
        ));
    };
    let Some(items) = v.as_array() else {
        return Err(OpenAiError::invalid(
            "messages",
            "'messages' must be an array.",
        ));
    };
    if items.is_empty() {
        return Err(OpenAiError::invalid(
            "messages",
            "'messages' must contain at least one message.",
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let at = |field: &str| format!("messages[{i}]{field}");
        let Some(m) = m.as_object() else {
            return Err(OpenAiError::invalid(
                at(""),
                "Each message must be an object.",
            ));
        };
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if let Some(k) = m
            .keys()
            .find(|k| !matches!(k.as_str(), "role" | "content" | "name"))
        {
            return Err(OpenAiError::invalid(
                at(&format!(".{k}")),
                format!("'{k}' in messages is not supported by this gateway (text chat only)."),
            ));
        }
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.iter().enumerate() {
                    match (p["type"].as_str(), p["text"].as_str()) {
                        (Some("text"), Some(t)) => text.push_str(t),
                        _ => {
                            return Err(OpenAiError::invalid(
                                at(&format!(".content[{j}]")),
                                "Only text content parts ({\"type\":\"text\",\"text\":...}) are supported.",
                            ));
                        }
                    }
                }
                text
            }
            None | Some(Value::Null) => {
                return Err(OpenAiError::invalid(
                    at(".content"),
                    "Each message needs 'content' (a string or text parts).",
                ));
            }
            Some(_) => {
                return Err(OpenAiError::invalid(
                    at(".content"),
                    "'content' must be a string or an array of text parts.",
                ));
            }
        };
        out.push(match role {
            // `developer` is OpenAI's newer name for the system role.
            "system" | "developer" => ChatMessage::system(content),
            "user" => ChatMessage::user(content),
            "assistant" => ChatMessage::assistant(content),
            "" => {
                return Err(OpenAiError::invalid(
                    at(".role"),
                    "Each message needs a 'role': system, user or assistant.",
                ));
            }
            other => {
                return Err(OpenAiError::invalid(
                    at(".role"),
                    format!("Role '{other}' is not supported: use system, user or assistant."),
                ));
            }
        });
    }
    if !out
        .iter()
        .any(|m| m.role == assay_ai::types::MessageRole::User)
    {
        return Err(OpenAiError::invalid(
            "messages",
            "'messages' must contain at least one user message.",
        ));
    }
    Ok(out)
}

// ---- Response ---------------------------------------------------------------------------------

fn finish_reason(f: Option<&FinishReason>) -> &'static str {
    match f {
        None | Some(FinishReason::Stop) | Some(FinishReason::Other(_)) => "stop",
        Some(FinishReason::Length) => "length",
        Some(FinishReason::ContentFilter(_)) => "content_filter",
        Some(FinishReason::ToolCalls) => "tool_calls",
    }
}

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::now_v7().simple())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `chat.completion` object for a complete answer (typed, so the answer is serialised
/// straight from the pipeline's strings instead of copied into a `Value` tree first).
pub fn completion_body<'a>(
    id: &'a str,
    created: u64,
    model: &'a str,
    text: &'a str,
    finish: Option<&FinishReason>,
    usage: &TokenUsage,
) -> impl Serialize + 'a {
    #[derive(Serialize)]
    struct Body<'a> {
        id: &'a str,
        object: &'static str,
        created: u64,
        model: &'a str,
        choices: [Choice<'a>; 1],
        usage: Usage,
        system_fingerprint: Option<()>,
    }
    #[derive(Serialize)]
    struct Choice<'a> {
        index: u32,
        message: Message<'a>,
        logprobs: Option<()>,
        finish_reason: &'static str,
    }
    #[derive(Serialize)]
    struct Message<'a> {
        role: &'static str,
        content: &'a str,
        refusal: Option<()>,
    }
    Body {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: text,
                refusal: None,
            },
            logprobs: None,
            finish_reason: finish_reason(finish),
        }],
        usage: Usage::of(usage),
        system_fingerprint: None,
    }
}

/// OpenAI's `usage` object.
#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedTokens,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

impl Usage {
    fn of(u: &TokenUsage) -> Self {
        Self {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens + u.output_tokens,
            prompt_tokens_details: CachedTokens {
                cached_tokens: u.cached_input_tokens,
            },
        }
    }
}

/// Frames `chat.completion.chunk` events for one streamed answer (typed: one per token or
/// so, serialised straight from the answer's strings, no `Value` tree per chunk).
struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

/// One `chat.completion.chunk`, fields in OpenAI's order.
#[derive(Serialize)]
struct ChunkBody<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: Option<()>,
    choices: C,
    /// Present (null until the usage chunk) only when the client asked for usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

impl ChunkWriter {
    fn chunk(&self, choices: impl Serialize, usage: Option<Usage>) -> Bytes {
        Self::frame(&ChunkBody {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            system_fingerprint: None,
            choices,
            usage: self.include_usage.then_some(usage),
        })
    }

    /// One `data:` event.
    fn frame(value: &impl Serialize) -> Bytes {
        let mut out = Vec::with_capacity(192);
        out.extend_from_slice(b"data: ");
        // Strings, numbers, nulls and string-keyed objects only: serialising cannot fail.
        serde_json::to_writer(&mut out, value).unwrap_or_default();
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }

    fn choice<'a>(delta: Delta<'a>, finish_reason: Option<&'static str>) -> [ChunkChoice<'a>; 1] {
        [ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }]
    }

    fn role(&self) -> Bytes {
        let delta = Delta {
            role: Some("assistant"),
            content: Some(""),
        };
        self.chunk(Self::choice(delta, None), None)
    }

    fn delta(&self, text: &str) -> Bytes {
        let delta = Delta {
            role: None,
            content: Some(text),
        };
        self.chunk(Self::choice(delta, None), None)
    }

    /// The finishing chunk, the usage chunk when asked for, and `[DONE]`.
    fn finish(&self, finish: Option<&FinishReason>, usage: &TokenUsage) -> Vec<Bytes> {
        let delta = Delta {
            role: None,
            content: None,
        };
        let mut out = vec![self.chunk(Self::choice(delta, Some(finish_reason(finish))), None)];
        if self.include_usage {
            out.push(self.chunk([(); 0], Some(Usage::of(usage))));
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    }
}

fn sse(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        // Proxies (nginx) must pass chunks on as they come.
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Headers saying how the answer was produced (the body stays exactly OpenAI's).
fn meta_headers(res: &mut Response, model: &str, offline: bool, cache_hit: bool) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(model) {
        h.insert("x-assay-model", v);
    }
    h.insert(
        "x-assay-offline",
        HeaderValue::from_static(if offline { "true" } else { "false" }),
    );
    h.insert(
        "x-assay-cache",
        HeaderValue::from_static(if cache_hit { "hit" } else { "miss" }),
    );
}

/// Whether `model` names something this gateway serves (one of [`served_models`], checked
/// without building the list).
fn check_model(state: &AppState, model: &str) -> Result<(), OpenAiError> {
    let ai = &state.config().ai;
    let served = model == AUTO_MODEL
        || ai.models.iter().any(|m| m.is_named(model))
        || (ai.offline_fallback && model == assay_ai::registry::OFFLINE_MODEL_ID);
    if served {
        Ok(())
    } else {
        Err(OpenAiError::model_not_found(model))
    }
}

/// An OpenAI Chat Completions call through the organisation's AI pipeline.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    operation_id = "openai_chat_completions",
    tag = "openai",
    summary = "OpenAI-compatible chat completion (streaming or not)",
    description = "OpenAI's Chat Completions wire format, through Assay's AI pipeline: the \
        API key's rate limits, the organisation's budget, input and output safety, model \
        selection with fallbacks, and audit. `model`: `assay-auto` lets the gateway choose; \
        a configured model's id (see `GET /v1/models`) is the only AI model called (with its \
        retries; if it fails the offline fallback answers, `x-assay-offline: true`). \
        `finish_reason` is the provider's (`stop`, `length`, `content_filter`). \
        `stream: true` answers `text/event-stream` with `data: {chat.completion.chunk}` \
        events and `data: [DONE]`; `stream_options.include_usage` adds the usage chunk. A \
        failure after the stream started (the provider failing, output safety blocking) \
        ends it with one `data: {\"error\": {...}}` event in OpenAI's shape and no \
        `[DONE]`. Text messages with roles system (or developer), user and assistant. \
        Headers `x-assay-model`, `x-assay-offline`, `x-assay-cache` say how the answer was \
        produced. Errors use OpenAI's shape `OpenAiErrorResponse`, with Assay's code in \
        `code` — also for unknown paths under `/v1/` (404), a wrong method (405) and a body \
        larger than the server accepts (413 `payload_too_large`).",
    security(("api_key" = [])),
    request_body(content = Object, description = "OpenAI `CreateChatCompletionRequest` (text only)", content_type = "application/json"),
    responses(
        (status = 200, description = "`chat.completion` JSON, or an SSE stream of `chat.completion.chunk` when `stream` is true", content_type = "application/json", body = Object),
        (status = 400, description = "Malformed body or an invalid parameter (`param` names it)", body = OpenAiErrorResponse),
        (status = 401, description = "No API key, or not a valid organisation API key (`invalid_api_key`)", body = OpenAiErrorResponse),
        (status = 403, description = "The key lacks the `ai` scope (`forbidden`), or AI is switched off in this deployment (`ai_disabled`)", body = OpenAiErrorResponse),
        (status = 404, description = "Unknown model (`model_not_found`)", body = OpenAiErrorResponse),
        (status = 413, description = "The body is larger than the server accepts (`payload_too_large`)", body = OpenAiErrorResponse),
        (status = 415, description = "The body is not `application/json`", body = OpenAiErrorResponse),
        (status = 422, description = "Refused by the organisation's safety rules (`ai_blocked`, rule ids in the message)", body = OpenAiErrorResponse),
        (status = 429, description = "Rate limited (`ai_rate_limited`, `rate_limited`; see `Retry-After`) or the monthly AI budget is spent (`ai_budget_exceeded`)", body = OpenAiErrorResponse),
        (status = 500, description = "Internal error", body = OpenAiErrorResponse),
        (status = 502, description = "The model's answer failed validation (`ai_invalid_output`)", body = OpenAiErrorResponse),
        (status = 503, description = "No AI provider could answer (`ai_unavailable`), or the database is unavailable", body = OpenAiErrorResponse),
    )
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    AiKeyAccess(access): AiKeyAccess,
    api_limit: Option<axum::Extension<crate::rate_limit::DeferredApiLimit>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(OpenAiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as application/json.",
        ));
    }
    let req = parse_request(&body)?;
    check_model(&state, &req.model)?;
    let mut caller = crate::ai::AiCaller::from_access(&access);
    caller.api_limit = api_limit.map(|axum::Extension(l)| l);
    backend::run(&state, &caller, req).await
}

/// Where a validated request meets the AI pipeline (limits per API key, budget, input and
/// output safety, gateway, audit), and the pipeline's answers and errors become OpenAI's.
mod backend {
    use super::*;
    use crate::ai::{AiApiError, AiCaller, BlockedAt, PipelineEvent, PipelineParams};
    use futures::StreamExt;

    pub(super) async fn run(
        state: &AppState,
        caller: &AiCaller,
        req: ChatCompletionRequest,
    ) -> Result<Response, OpenAiError> {
        let params = PipelineParams {
            generation: req.params,
            // `assay-auto` lets the gateway choose; any other served name is the model.
            model: (req.model != AUTO_MODEL).then(|| req.model.clone()),
            ..Default::default()
        };
        let pipeline = state.ai_pipeline();
        let id = completion_id();
        let created = unix_now();
        if !req.stream {
            let answer = pipeline
                .complete(caller, TaskKind::Chat, req.messages, params)
                .await
                .map_err(|e| pipeline_error(&e))?;
            let m = &answer.meta;
            let body = completion_body(
                &id,
                created,
                &m.model,
                &answer.text,
                m.finish_reason.as_ref(),
                &m.usage,
            );
            let mut out = axum::Json(body).into_response();
            meta_headers(&mut out, &m.model, m.offline, m.cache_hit);
            return Ok(crate::routes::ai::with_budget_headers(out, &answer.budget));
        }
        let mut events = pipeline
            .stream(caller, TaskKind::Chat, req.messages, params)
            .await
            .map_err(|e| pipeline_error(&e))?;
        let budget = events.budget;
        // The first event names the model, which every chunk carries. An error before it
        // is still an HTTP error (nothing has been sent yet).
        let (model, offline) = match events.next().await {
            Some(PipelineEvent::Metadata { model, offline, .. }) => (model, offline),
            Some(PipelineEvent::Error(e)) => return Err(pipeline_error(&e)),
            _ => {
                return Err(pipeline_error(&AiApiError::Unavailable {
                    retry_after: None,
                }));
            }
        };
        let w = ChunkWriter {
            id,
            created,
            model: model.clone(),
            include_usage: req.include_usage,
        };
        let first = futures::stream::iter([w.role()]);
        let rest = events
            .scan(false, move |ended, ev| {
                if *ended {
                    return std::future::ready(None);
                }
                let out: Vec<Bytes> = match ev {
                    PipelineEvent::Content(t) if t.is_empty() => vec![],
                    PipelineEvent::Content(t) => vec![w.delta(&t)],
                    PipelineEvent::Complete(answer) => {
                        *ended = true;
                        w.finish(answer.meta.finish_reason.as_ref(), &answer.meta.usage)
                    }
                    // After the first byte the status is sent: OpenAI's SDKs raise on a
                    // `data: {"error": ...}` event, and no `[DONE]` follows.
                    PipelineEvent::Error(e) => {
                        *ended = true;
                        vec![ChunkWriter::frame(&pipeline_error(&e).body())]
                    }
                    PipelineEvent::Metadata { .. } => vec![],
                };
                std::future::ready(Some(futures::stream::iter(out)))
            })
            .flatten();
        let stream = first.chain(rest).map(Ok::<Bytes, std::convert::Infallible>);
        let mut out = sse(Body::from_stream(stream));
        meta_headers(&mut out, &model, offline, false);
        Ok(crate::routes::ai::with_budget_headers(out, &budget))
    }

    /// The pipeline's typed error in OpenAI's shape. Status and code stay Assay's, with two
    /// exceptions for what OpenAI clients expect: a spent budget is OpenAI's 429
    /// `insufficient_quota` (not Assay's 402), and an input block names `messages` as the
    /// parameter. Rule ids are in the message, never the matched text.
    pub(super) fn pipeline_error(e: &AiApiError) -> OpenAiError {
        let api = e.to_api_error();
        let mut out = OpenAiError::from_api_error(&api);
        match e {
            AiApiError::BudgetExceeded { .. } => {
                out.status = StatusCode::TOO_MANY_REQUESTS;
                out.kind = "insufficient_quota";
                out.message =
                    "The organisation's monthly AI budget is spent; an AI admin can raise it."
                        .into();
            }
            AiApiError::Blocked { rules, at } => {
                out.message = format!("{} (rules: {}).", api.message, rules.join(", "));
                if *at == BlockedAt::Input {
                    out.param = Some("messages".into());
                }
            }
            _ => {}
        }
        out
    }
}

/// OpenAI's error body: `{"error":{"message","type","param","code"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorResponse {
    pub error: OpenAiErrorBody,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorBody {
    /// For people; may change.
    pub message: String,
    /// OpenAI's category: `invalid_request_error`, `permission_error`, `rate_limit_error`,
    /// `server_error`.
    #[serde(rename = "type")]
    #[schema(example = "invalid_request_error")]
    pub kind: String,
    /// The request parameter at fault (`messages[1].role`), or null.
    pub param: Option<String>,
    /// Stable code: `invalid_api_key`, `model_not_found`, `invalid_request`, `forbidden`,
    /// `ai_rate_limited`, `ai_budget_exceeded`, `ai_blocked`, `ai_unavailable`,
    /// `ai_invalid_output`...
    pub code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<ChatCompletionRequest, OpenAiError> {
        parse_request(&serde_json::to_vec(&v).unwrap())
    }

    fn param_of(v: Value) -> String {
        let e = parse(v).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e:?}");
        assert_eq!(e.kind, "invalid_request_error");
        e.param.unwrap_or_default()
    }

    #[test]
    fn a_plain_request_parses_with_its_parameters() {
        let r = parse(json!({
            "model": "assay-auto",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": "What is ISO 27001?", "name": "sam"}
            ],
            "temperature": 0.2, "max_completion_tokens": 64, "stream": true,
            "stream_options": {"include_usage": true}, "user": "u-1", "n": 1, "top_p": 1
        }))
        .unwrap();
        assert_eq!(r.messages.len(), 4);
        assert_eq!(r.messages[0], ChatMessage::system("Be brief."));
        assert_eq!(r.messages[1], ChatMessage::user("Hello there"));
        assert_eq!(r.params.temperature, Some(0.2));
        assert_eq!(r.params.max_output_tokens, Some(64));
        assert!(r.stream && r.include_usage);
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let m = || json!([{"role": "user", "content": "hi"}]);
        assert_eq!(param_of(json!({"messages": m()})), "model");
        assert_eq!(param_of(json!({"model": "", "messages": m()})), "model");
        assert_eq!(param_of(json!({"model": "x"})), "messages");
        assert_eq!(param_of(json!({"model": "x", "messages": []})), "messages");
        assert_eq!(
            param_of(json!({"model": "x", "messages": [{"role": "tool", "content": "r"}]})),
            "messages[0].role"
        );
        assert_eq!(
            param_of(
                json!({"model": "x", "messages": [{"role": "user", "content": "a"}, {"role": "user"}]})
            ),
            "messages[1].content"
        );
        assert_eq!(
            param_of(
                json!({"model": "x", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})
            ),
            "messages[0].content[0]"
        );
        assert_eq!(
            param_of(
                json!({"model": "x", "messages": [{"role": "assistant", "content": "a", "tool_calls": []}]})
            ),
            "messages[0].tool_calls"
        );
        assert_eq!(
            param_of(
                json!({"model": "x", "messages": [{"role": "system", "content": "only a system prompt"}]})
            ),
            "messages"
        );
        assert_eq!(
            param_of(json!({"model": "x", "messages": m(), "temperature": 2.5})),
            "temperature"
        );
        assert_eq!(
            param_of(json!({"model": "x", "messages": m(), "max_tokens": 0})),
            "max_tokens"
        );
        assert_eq!(
            param_of(
                json!({"model": "x", "messages": m(), "max_tokens": 5, "max_completion_tokens": 6})
            ),
            "max_tokens"
        );
        assert_eq!(
            param_of(json!({"model": "x", "messages": m(), "stream": "yes"})),
            "stream"
        );
        assert_eq!(
            param_of(
                json!({"model": "x", "messages": m(), "stream_options": {"include_usage": true}})
            ),
            "stream_options"
        );
        assert_eq!(
            param_of(json!({"model": "x", "messages": m(), "n": 2})),
            "n"
        );
        assert_eq!(
            param_of(json!({"model": "x", "messages": m(), "tools": [{"type": "function"}]})),
            "tools"
        );
        assert_eq!(
            param_of(json!({"model": "x", "messages": m(), "frobnicate": 1})),
            "frobnicate"
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_a_400_without_param() {
        let e = parse_request(b"{nope").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.param, None);
        assert_eq!(e.body()["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn assay_errors_keep_status_code_and_headers_in_openai_shape() {
        let limited =
            ApiError::rate_limited("ai_rate_limited", std::time::Duration::from_millis(1500));
        let e = OpenAiError::from_api_error(&limited);
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.kind, "rate_limit_error");
        assert_eq!(e.code.as_deref(), Some("ai_rate_limited"));
        assert!(
            e.headers
                .iter()
                .any(|(n, v)| n == header::RETRY_AFTER && v == "2")
        );
        let e = OpenAiError::from_api_error(&ApiError::unauthenticated("invalid_token", "bad"));
        assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
        let e = OpenAiError::from_api_error(&ApiError::forbidden("no"));
        assert_eq!((e.status.as_u16(), e.kind), (403, "permission_error"));
        let body = OpenAiError::from_api_error(&ApiError::internal("boom")).body();
        assert_eq!(body["error"]["type"], "server_error");
        let keys: Vec<&String> = body["error"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{body}");
    }

    #[test]
    fn a_stream_ends_with_finish_usage_and_done() {
        let w = ChunkWriter {
            id: "chatcmpl-1".into(),
            created: 1,
            model: "m".into(),
            include_usage: true,
        };
        let usage = TokenUsage {
            input_tokens: 3,
            output_tokens: 4,
            cached_input_tokens: 0,
            estimated: false,
        };
        let frames: Vec<String> = w
            .finish(Some(&FinishReason::Length), &usage)
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        assert_eq!(frames.len(), 3);
        let fin: Value =
            serde_json::from_str(frames[0].strip_prefix("data: ").unwrap().trim()).unwrap();
        assert_eq!(fin["choices"][0]["finish_reason"], "length");
        assert_eq!(fin["usage"], Value::Null);
        let u: Value =
            serde_json::from_str(frames[1].strip_prefix("data: ").unwrap().trim()).unwrap();
        assert_eq!(u["choices"], json!([]));
        assert_eq!(u["usage"]["total_tokens"], 7);
        assert_eq!(frames[2], "data: [DONE]\n\n");
    }

    #[test]
    fn each_chunk_is_openais_shape() {
        let parse = |b: Bytes| -> Value {
            let s = String::from_utf8(b.to_vec()).unwrap();
            let data = s.strip_prefix("data: ").unwrap();
            assert!(data.ends_with("\n\n"), "{s:?}");
            serde_json::from_str(data.trim_end()).unwrap()
        };
        let usage = TokenUsage {
            input_tokens: 3,
            output_tokens: 4,
            cached_input_tokens: 2,
            estimated: false,
        };
        for include_usage in [false, true] {
            let w = ChunkWriter {
                id: "chatcmpl-1".into(),
                created: 7,
                model: "m".into(),
                include_usage,
            };
            let chunk = |choices: Value, usage: Value| {
                let mut v = json!({
                    "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7,
                    "model": "m", "system_fingerprint": null, "choices": choices,
                });
                if include_usage {
                    v["usage"] = usage;
                }
                v
            };
            assert_eq!(
                parse(w.role()),
                chunk(
                    json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
                    Value::Null
                )
            );
            assert_eq!(
                parse(w.delta("a \"quoted\"\nline")),
                chunk(
                    json!([{"index": 0, "delta": {"content": "a \"quoted\"\nline"}, "logprobs": null, "finish_reason": null}]),
                    Value::Null
                )
            );
            let mut end = w.finish(Some(&FinishReason::Stop), &usage).into_iter();
            assert_eq!(
                parse(end.next().unwrap()),
                chunk(
                    json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]),
                    Value::Null
                )
            );
            if include_usage {
                assert_eq!(
                    parse(end.next().unwrap()),
                    chunk(
                        json!([]),
                        json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 2}})
                    )
                );
            }
            assert_eq!(end.next().unwrap(), Bytes::from_static(b"data: [DONE]\n\n"));
            assert_eq!(end.next(), None);
        }
    }
}
