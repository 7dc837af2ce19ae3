//! Wire-format tests: each provider client against `mock-llm`, which speaks the documented
//! OpenAI Chat Completions and Gemini generateContent shapes, streaming and not.

use assay_ai::AiError;
use assay_ai::config::SafetySetting;
use assay_ai::provider::gemini::Gemini;
use assay_ai::provider::openai::OpenAiCompatible;
use assay_ai::provider::{Provider, ProviderRequest, StreamEvent};
use assay_ai::types::{ChatMessage, FinishReason, TaskKind, TokenUsage};
use futures::StreamExt;
use mock_llm::{Fault, MockConfig, MockServer};
use serde_json::json;
use std::time::Duration;

const QUESTION: &str = "How do we evidence multi factor authentication for admins";
const REPLY: &str = "Mock answer. You asked about: How do we evidence multi factor authentication for admins. Here is a deterministic reply.";

fn req(model: &str, json_output: bool) -> ProviderRequest {
    ProviderRequest {
        model: model.into(),
        messages: vec![
            ChatMessage::system("You are a compliance assistant."),
            ChatMessage::user("hi"),
            ChatMessage::assistant("Hello."),
            ChatMessage::user(QUESTION),
        ],
        temperature: Some(0.2),
        max_output_tokens: Some(256),
        json_output,
        task: TaskKind::Chat,
    }
}

/// Words the mock counts as prompt tokens for `req` (system + all turns).
fn prompt_words() -> u64 {
    ["You are a compliance assistant.", "hi", "Hello.", QUESTION]
        .iter()
        .map(|s| s.split_whitespace().count() as u64)
        .sum()
}

/// A fault and the check its error must pass.
type ErrorCheck = fn(&AiError) -> bool;

async fn mock(cfg: MockConfig) -> MockServer {
    mock_llm::spawn(cfg).await.expect("mock-llm starts")
}

fn openai(m: &MockServer) -> OpenAiCompatible {
    OpenAiCompatible::new(
        &assay_ai::http::HttpClient::new().expect("client"),
        &format!("{}/v1", m.base_url()),
        Some("sk-test".to_string().into()),
        None,
    )
}

fn gemini(m: &MockServer) -> Gemini {
    let safety = vec![SafetySetting {
        category: "HARM_CATEGORY_DANGEROUS_CONTENT".into(),
        threshold: "BLOCK_ONLY_HIGH".into(),
    }];
    Gemini::new(
        &assay_ai::http::HttpClient::new().expect("client"),
        &format!("{}/v1beta", m.base_url()),
        Some("g-test".to_string().into()),
        safety,
    )
}

async fn collect(
    p: &dyn Provider,
    r: &ProviderRequest,
) -> Result<Vec<Result<StreamEvent, AiError>>, AiError> {
    Ok(p.stream(r).await?.collect().await)
}

fn text_of(events: &[Result<StreamEvent, AiError>]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Delta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

// ------------------------------------------------------------------ OpenAI

#[tokio::test]
async fn openai_request_shape_and_complete_response() {
    let m = mock(MockConfig {
        cached_prompt_tokens: 3,
        ..MockConfig::default()
    })
    .await;
    let c = openai(&m).complete(&req("gpt-test", true)).await.unwrap();
    assert_eq!(c.text, REPLY);
    assert_eq!(c.finish, Some(FinishReason::Stop));
    let words = REPLY.split_whitespace().count() as u64;
    assert_eq!(
        c.usage,
        Some(TokenUsage {
            input_tokens: prompt_words(),
            output_tokens: words,
            cached_input_tokens: 3,
            estimated: false
        })
    );

    let sent = &m.control.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.headers["authorization"], "Bearer sk-test");
    let b = &sent.body;
    assert_eq!(b["model"], "gpt-test");
    assert_eq!(b["stream"], false);
    assert!(b.get("stream_options").is_none());
    assert_eq!(
        b["messages"][0],
        json!({"role": "system", "content": "You are a compliance assistant."})
    );
    assert_eq!(b["messages"][2]["role"], "assistant");
    assert_eq!(b["max_completion_tokens"], 256);
    assert_eq!(b["response_format"], json!({"type": "json_object"}));
    assert!((b["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
}

#[tokio::test]
async fn openai_stream_is_complete_in_order_with_usage_from_the_final_chunk() {
    let m = mock(MockConfig {
        chunks: 7,
        ..MockConfig::default()
    })
    .await;
    let events = collect(&openai(&m), &req("gpt-test", false)).await.unwrap();
    assert_eq!(text_of(&events), REPLY);
    let deltas = events
        .iter()
        .filter(|e| matches!(e, Ok(StreamEvent::Delta(_))))
        .count();
    assert_eq!(deltas, 7);
    // Text, then the finish reason, then the usage-only chunk (before [DONE]).
    let n = events.len();
    assert_eq!(events[n - 2], Ok(StreamEvent::Finish(FinishReason::Stop)));
    assert!(
        matches!(&events[n - 1], Ok(StreamEvent::Usage(u)) if u.input_tokens == prompt_words() && !u.estimated)
    );
    let body = &m.control.requests()[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn openai_usage_chunk_with_null_choices_is_still_read() {
    let m = mock(MockConfig::default()).await;
    m.control.push_faults([Fault::NullChoicesInUsageChunk]);
    let events = collect(&openai(&m), &req("gpt-test", false)).await.unwrap();
    assert_eq!(text_of(&events), REPLY);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ok(StreamEvent::Usage(_))))
    );
    assert!(events.iter().all(|e| e.is_ok()));
}

#[tokio::test]
async fn openai_error_kinds_are_mapped() {
    let m = mock(MockConfig::default()).await;
    let p = openai(&m);
    let r = req("gpt-test", false);
    let cases: Vec<(Fault, ErrorCheck)> = vec![
        (
            Fault::RateLimited {
                retry_after_ms: 1500,
            },
            |e| matches!(e, AiError::RateLimited { retry_after: Some(d) } if *d == Duration::from_millis(1500)),
        ),
        (Fault::QuotaExhausted, |e| {
            matches!(e, AiError::QuotaExhausted)
        }),
        (Fault::Status(500), |e| {
            matches!(e, AiError::Unavailable { .. })
        }),
        (Fault::Status(503), |e| {
            matches!(e, AiError::Unavailable { .. })
        }),
        (Fault::Status(408), |e| {
            matches!(e, AiError::Unavailable { .. })
        }),
        (Fault::Unauthorized, |e| {
            matches!(e, AiError::Rejected { status: 401, .. })
        }),
        (Fault::Status(404), |e| {
            matches!(e, AiError::Rejected { status: 404, .. })
        }),
        (
            Fault::PromptBlocked { reason: "x".into() },
            |e| matches!(e, AiError::Blocked { reason } if reason == "content_filter"),
        ),
        (Fault::MalformedJson, |e| {
            matches!(e, AiError::InvalidOutput { .. })
        }),
    ];
    for (fault, want) in cases {
        m.control.push_faults([fault.clone()]);
        let e = p.complete(&r).await.expect_err("fault gives an error");
        assert!(want(&e), "{fault:?} gave {e:?}");
        if !matches!(fault, Fault::MalformedJson) {
            m.control.push_faults([fault.clone()]);
            let e = match p.stream(&r).await {
                Err(e) => e,
                Ok(_) => panic!("{fault:?}: stream should fail at its start"),
            };
            assert!(want(&e), "stream {fault:?} gave {e:?}");
        }
    }
    // Retryable or not, as the gateway will treat them.
    m.control.push_faults([
        Fault::RateLimited { retry_after_ms: 10 },
        Fault::QuotaExhausted,
    ]);
    assert!(p.complete(&r).await.unwrap_err().is_retryable());
    assert!(!p.complete(&r).await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn openai_broken_chunk_mid_stream_is_an_error_after_the_text_so_far() {
    let m = mock(MockConfig {
        chunks: 4,
        ..MockConfig::default()
    })
    .await;
    m.control.push_faults([Fault::MalformedJson]);
    let events = collect(&openai(&m), &req("gpt-test", false)).await.unwrap();
    assert!(matches!(events[0], Ok(StreamEvent::Delta(_))));
    assert!(matches!(
        events.last(),
        Some(Err(AiError::InvalidOutput { .. }))
    ));
}

#[tokio::test]
async fn openai_finish_reasons_and_missing_usage() {
    let m = mock(MockConfig::default()).await;
    let p = openai(&m);
    m.control.push_faults([
        Fault::FinishReason("length".into()),
        Fault::FinishReason("content_filter".into()),
        Fault::OmitUsage,
    ]);
    assert_eq!(
        p.complete(&req("m", false)).await.unwrap().finish,
        Some(FinishReason::Length)
    );
    assert_eq!(
        p.complete(&req("m", false)).await.unwrap().finish,
        Some(FinishReason::ContentFilter("content_filter".into()))
    );
    assert_eq!(p.complete(&req("m", false)).await.unwrap().usage, None);
}

#[tokio::test]
async fn azure_style_deployment_url_and_key_header() {
    let m = mock(MockConfig::default()).await;
    let p = OpenAiCompatible::new(
        &assay_ai::http::HttpClient::new().expect("client"),
        &m.base_url(),
        Some("az-key".to_string().into()),
        Some("2024-10-21".into()),
    );
    assert_eq!(
        p.complete(&req("my-deployment", false)).await.unwrap().text,
        REPLY
    );
    let sent = &m.control.requests()[0];
    assert_eq!(
        sent.path,
        "/openai/deployments/my-deployment/chat/completions"
    );
    assert_eq!(sent.query["api-version"], "2024-10-21");
    assert_eq!(sent.headers["api-key"], "az-key");
    assert!(!sent.headers.contains_key("authorization"));
}

// ------------------------------------------------------------------ Gemini

#[tokio::test]
async fn gemini_request_shape_and_complete_response() {
    let m = mock(MockConfig {
        cached_prompt_tokens: 2,
        ..MockConfig::default()
    })
    .await;
    let c = gemini(&m)
        .complete(&req("gemini-test", true))
        .await
        .unwrap();
    assert_eq!(c.text, REPLY);
    assert_eq!(c.finish, Some(FinishReason::Stop));
    assert_eq!(c.usage.unwrap().input_tokens, prompt_words());
    assert_eq!(c.usage.unwrap().cached_input_tokens, 2);

    let sent = &m.control.requests()[0];
    assert_eq!(sent.path, "/v1beta/models/gemini-test:generateContent");
    assert_eq!(sent.headers["x-goog-api-key"], "g-test");
    let b = &sent.body;
    assert_eq!(
        b["systemInstruction"],
        json!({"parts": [{"text": "You are a compliance assistant."}]})
    );
    assert_eq!(
        b["contents"].as_array().unwrap().len(),
        3,
        "system message is not a turn"
    );
    assert_eq!(
        b["contents"][1],
        json!({"role": "model", "parts": [{"text": "Hello."}]})
    );
    assert_eq!(b["contents"][2]["role"], "user");
    assert_eq!(
        b["safetySettings"],
        json!([{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_ONLY_HIGH"}])
    );
    assert_eq!(
        b["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(b["generationConfig"]["maxOutputTokens"], 256);
}

#[tokio::test]
async fn gemini_stream_uses_alt_sse_and_takes_usage_from_the_last_chunk_that_has_it() {
    let m = mock(MockConfig {
        chunks: 5,
        ..MockConfig::default()
    })
    .await;
    m.control.push_faults([Fault::NonTextPart]);
    let events = collect(&gemini(&m), &req("gemini-test", false))
        .await
        .unwrap();
    assert!(events.iter().all(|e| e.is_ok()), "{events:?}");
    assert_eq!(text_of(&events), REPLY, "the non-text part is skipped");
    // Every chunk carries usageMetadata; only the last has the output count.
    let usages: Vec<TokenUsage> = events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Usage(u)) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(usages.len(), 5);
    assert_eq!(usages[0].output_tokens, 0);
    let last = usages.last().unwrap();
    assert_eq!(
        (last.input_tokens, last.output_tokens),
        (prompt_words(), REPLY.split_whitespace().count() as u64)
    );
    assert_eq!(
        events.last(),
        Some(&Ok(StreamEvent::Finish(FinishReason::Stop)))
    );
    let sent = &m.control.requests()[0];
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-test:streamGenerateContent"
    );
    assert_eq!(sent.query["alt"], "sse");
}

#[tokio::test]
async fn gemini_blocked_prompt_is_a_typed_error_streaming_or_not() {
    let m = mock(MockConfig::default()).await;
    let p = gemini(&m);
    m.control.push_faults([
        Fault::PromptBlocked {
            reason: "SAFETY".into(),
        },
        Fault::PromptBlocked {
            reason: "PROHIBITED_CONTENT".into(),
        },
    ]);
    assert!(
        matches!(p.complete(&req("g", false)).await, Err(AiError::Blocked { reason }) if reason == "SAFETY")
    );
    let events = collect(&p, &req("g", false)).await.unwrap();
    assert!(
        matches!(&events[..], [Err(AiError::Blocked { reason })] if reason == "PROHIBITED_CONTENT"),
        "{events:?}"
    );
}

#[tokio::test]
async fn gemini_finish_reasons_including_a_safety_stop() {
    let m = mock(MockConfig::default()).await;
    let p = gemini(&m);
    for (raw, want) in [
        ("MAX_TOKENS", FinishReason::Length),
        (
            "RECITATION",
            FinishReason::ContentFilter("RECITATION".into()),
        ),
        ("OTHER", FinishReason::Other("OTHER".into())),
        ("MALFORMED_FUNCTION_CALL", FinishReason::ToolCalls),
    ] {
        m.control.push_faults([Fault::FinishReason(raw.into())]);
        assert_eq!(
            p.complete(&req("g", false)).await.unwrap().finish,
            Some(want),
            "{raw}"
        );
    }
    // A candidate stopped for SAFETY with no text at all is a block, not an empty answer.
    m.control
        .push_faults([Fault::FinishReason("SAFETY".into())]);
    assert!(
        matches!(p.complete(&req("g", false)).await, Err(AiError::Blocked { reason }) if reason == "SAFETY")
    );
    // Streamed, the text before the stop arrives and the stop is reported.
    m.control
        .push_faults([Fault::FinishReason("SAFETY".into())]);
    let events = collect(&p, &req("g", false)).await.unwrap();
    assert_eq!(
        events.last(),
        Some(&Ok(StreamEvent::Finish(FinishReason::ContentFilter(
            "SAFETY".into()
        ))))
    );
}

#[tokio::test]
async fn gemini_error_kinds_are_mapped() {
    let m = mock(MockConfig::default()).await;
    let p = gemini(&m);
    let cases: Vec<(Fault, ErrorCheck)> = vec![
        (
            Fault::RateLimited {
                retry_after_ms: 2500,
            },
            |e| matches!(e, AiError::RateLimited { retry_after: Some(d) } if *d == Duration::from_millis(2500)),
        ),
        (Fault::QuotaExhausted, |e| {
            matches!(e, AiError::QuotaExhausted)
        }),
        (Fault::Status(500), |e| {
            matches!(e, AiError::Unavailable { .. })
        }),
        (Fault::Status(503), |e| {
            matches!(e, AiError::Unavailable { .. })
        }),
        (Fault::Unauthorized, |e| {
            matches!(e, AiError::Rejected { status: 400, .. })
        }),
        (Fault::MalformedJson, |e| {
            matches!(e, AiError::InvalidOutput { .. })
        }),
    ];
    for (fault, want) in cases {
        m.control.push_faults([fault.clone()]);
        let e = p
            .complete(&req("g", false))
            .await
            .expect_err("fault gives an error");
        assert!(want(&e), "{fault:?} gave {e:?}");
    }
}

#[tokio::test]
async fn a_stall_is_visible_to_the_caller_as_silence_not_an_error() {
    // Providers never time out themselves; the gateway owns timeouts (see gateway tests).
    let m = mock(MockConfig::default()).await;
    m.control
        .push_faults([Fault::StallBeforeFirstToken(Duration::from_secs(5))]);
    let p = openai(&m);
    let r = req("m", false);
    let mut s = p.stream(&r).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(200), s.next()).await;
    assert!(waited.is_err(), "no event during the stall");
}
