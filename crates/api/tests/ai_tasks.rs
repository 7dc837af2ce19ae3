//! The AI task endpoints over real HTTP: help, gap analysis with recommendations, policy
//! drafts and evidence classification, against `tools/mock-llm` speaking OpenAI Chat
//! Completions (scripted structured replies) and against the offline provider. Runs on
//! SQLite, and on PostgreSQL when `ASSAY_TEST_POSTGRES_URL` is set.

mod support;

use assay_core::{OrgCtx, Role, UserId};
use assay_store::repo::ai_settings::{self, AiSettings};
use assay_store::repo::evidence_classifications::{self, ClassificationStatus};
use mock_llm::{MockConfig, MockServer};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Session, TestApp};

/// Limits high enough that a test's calls are never rate limited (the limits have their own
/// tests).
fn generous_limits(c: &mut assay_config::Config) {
    c.ai_limits.help_per_minute = 1_000;
    c.ai_limits.analysis_per_minute = 1_000;
    c.ai_limits.classification_per_minute = 1_000;
    c.ai_limits.burst = 100;
}

/// An app whose AI provider is mock-llm (OpenAI-compatible), configured as `assay serve`
/// configures one from `OPENAI_API_KEY` / `OPENAI_BASE_URL`.
async fn with_mock(
    edit: impl FnOnce(&mut assay_config::Config) + 'static,
) -> (TestApp, MockServer) {
    let mock = mock_llm::spawn(MockConfig::default()).await.unwrap();
    let base = format!("{}/v1", mock.base_url());
    let app = TestApp::builder()
        .config(move |c| {
            generous_limits(c);
            c.ai.apply_customary_env(&|name| match name {
                "OPENAI_API_KEY" => Some("sk-test-key".to_owned()),
                "OPENAI_BASE_URL" => Some(base.clone()),
                _ => None,
            });
            edit(c);
        })
        .spawn()
        .await;
    (app, mock)
}

async fn offline_app() -> TestApp {
    TestApp::builder().config(generous_limits).spawn().await
}

async fn call(
    app: &TestApp,
    s: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let path = path.replace("{org}", &s.org_id);
    let mut rb = app.with_token(method, &path, &s.access);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let res = rb.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(app: &TestApp, s: &Session, path: &str, body: Value) -> (u16, Value) {
    call(app, s, Method::POST, path, Some(body)).await
}

async fn adopt(app: &TestApp, s: &Session, framework: &str) {
    let (status, body) = call(
        app,
        s,
        Method::PUT,
        &format!("/api/v1/orgs/{{org}}/frameworks/{framework}"),
        None,
    )
    .await;
    assert!(status == 201 || status == 200, "{body}");
}

async fn set_status(app: &TestApp, s: &Session, control: &str, status: &str) {
    let (code, body) = call(
        app,
        s,
        Method::PATCH,
        &format!("/api/v1/orgs/{{org}}/controls/{control}"),
        Some(json!({ "status": status })),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

/// The messages of the `i`th request mock-llm received: (role, content) pairs.
fn messages(mock: &MockServer, i: usize) -> Vec<(String, String)> {
    let reqs = mock.control.requests();
    reqs[i].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn system_text(msgs: &[(String, String)]) -> String {
    msgs.iter()
        .filter(|(r, _)| r == "system")
        .map(|(_, c)| c.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn user_text(msgs: &[(String, String)]) -> String {
    msgs.iter()
        .filter(|(r, _)| r == "user")
        .map(|(_, c)| c.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn ctx_of(s: &Session) -> OrgCtx {
    OrgCtx::for_verified_member(
        s.org_id.parse().unwrap(),
        s.user_id.parse::<UserId>().unwrap(),
        Role::Owner,
    )
}

// ---------------------------------------------------------------- help

#[tokio::test]
async fn help_is_grounded_in_the_catalogue_text_of_the_item() {
    let (app, mock) = with_mock(|_| {}).await;
    let s = app.signup("help@example.com", "Help Org").await;

    mock.control
        .push_replies(["UAC.8 asks you to grant access by role."]);
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/help",
        json!({ "subject": "control", "ref": "IAM-04", "question": "Does SMS count?" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["answer"], "UAC.8 asks you to grant access by role.");
    assert_eq!(body["source"]["ref"], "IAM-04");
    assert_eq!(body["ai"]["offline"], false);
    let control = assay_core::catalogue::builtin().control("IAM-04").unwrap();
    let msgs = messages(&mock, 0);
    assert!(
        system_text(&msgs).contains(&control.description),
        "{msgs:?}"
    );
    assert!(system_text(&msgs).contains(&control.guidance));
    let user = user_text(&msgs);
    assert!(
        user.contains("IAM-04") && user.contains("Does SMS count?"),
        "{user}"
    );

    // A requirement, by framework and ref: its own description is the grounding.
    mock.control.push_replies(["Firewalls explained."]);
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/help",
        json!({ "subject": "requirement", "framework": "cyber-essentials", "ref": "FW.1" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let req = assay_core::catalogue::builtin()
        .requirement("cyber-essentials", "FW.1")
        .unwrap();
    assert!(system_text(&messages(&mock, 1)).contains(&req.description));
    assert_eq!(body["source"]["framework"], "cyber-essentials");

    // An assessment question: the question's own text is in the grounding.
    mock.control.push_replies(["A question explained."]);
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/help",
        json!({ "subject": "question", "framework": "cyber-essentials", "ref": "IAM-04.q1" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(system_text(&messages(&mock, 2)).contains(&control.questions[0]));

    // Unknown items answer 404 and invalid refs 422, without calling any model.
    let before = mock.control.request_count();
    for (body, code) in [
        (json!({ "subject": "control", "ref": "NOPE-01" }), 404),
        (json!({ "subject": "requirement", "ref": "ZZ.99" }), 404),
        (
            json!({ "subject": "requirement", "framework": "no-such-fw", "ref": "FW.1" }),
            404,
        ),
        (json!({ "subject": "question", "ref": "IAM-04.q42" }), 404),
        (json!({ "subject": "question", "ref": "IAM-04" }), 422),
        (json!({ "subject": "policy", "ref": "IAM-04" }), 422),
        (json!({ "subject": "control", "ref": "" }), 422),
    ] {
        let (status, res) = post(&app, &s, "/api/v1/orgs/{org}/ai/help", body.clone()).await;
        assert_eq!(status, code, "{body} -> {res}");
    }
    assert_eq!(mock.control.request_count(), before);
}

// ---------------------------------------------------------------- gap analysis

#[tokio::test]
async fn gap_analysis_is_grounded_in_this_org_only_and_drops_ids_out_of_scope() {
    let (app, mock) = with_mock(|_| {}).await;
    let a = app.signup("gaps-a@example.com", "Gaps Alpha").await;
    let b = app.signup("gaps-b@example.com", "Gaps Bravo").await;
    adopt(&app, &a, "cyber-essentials").await;
    set_status(&app, &a, "NET-01", "in_progress").await;
    // The other organisation's state must never reach A's prompt.
    adopt(&app, &b, "cyber-essentials").await;
    for c in ["IAM-04", "VUL-01", "NET-02"] {
        set_status(&app, &b, c, "implemented").await;
    }

    mock.control.push_replies([json!({
        "summary": "Most identity controls are missing.",
        "gaps": [
            { "control_id": "iam-04", "finding": "No MFA.", "severity": "high" },
            { "control_id": "XYZ-99", "finding": "Invented.", "severity": "low" },
            { "control_id": "GOV-01", "finding": "Real but not in Cyber Essentials.", "severity": "low" },
            { "control_id": "NET-01", "finding": "Firewall half done.", "severity": "medium" }
        ],
        "recommendations": [
            { "action": "Turn on MFA for every account.", "control_id": "IAM-04", "priority": "high" },
            { "action": "Buy a product we made up.", "control_id": "FAKE-7" },
            { "action": "Agree an owner for the programme." }
        ]
    })
    .to_string()]);
    let (status, body) = post(
        &app,
        &a,
        "/api/v1/orgs/{org}/ai/gap-analysis",
        json!({ "framework": "cyber-essentials" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let gaps: Vec<(&str, &str, &str)> = body["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["control_id"].as_str().unwrap(),
                g["status"].as_str().unwrap(),
                g["severity"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        gaps,
        vec![
            ("IAM-04", "not_started", "high"),
            ("NET-01", "in_progress", "medium")
        ]
    );
    assert_eq!(
        body["dropped_control_ids"],
        json!(["XYZ-99", "GOV-01", "FAKE-7"])
    );
    assert!(
        body["notice"].as_str().unwrap().contains("XYZ-99"),
        "{body}"
    );
    let recs: Vec<&str> = body["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        recs,
        vec![
            "Turn on MFA for every account.",
            "Agree an owner for the programme."
        ]
    );
    // The readiness quoted is the one GET /readiness computes.
    let (_, readiness) = call(&app, &a, Method::GET, "/api/v1/orgs/{org}/readiness", None).await;
    assert_eq!(
        body["readiness"]["score"],
        readiness["frameworks"][0]["score"]
    );
    assert!(body["readiness"]["breakdown"]["missing"].as_u64().unwrap() > 0);

    // What the provider saw: A's own statuses, never B's.
    let reqs = mock.control.requests();
    assert_eq!(reqs.len(), 1);
    let sent = reqs[0].body.to_string();
    let system = system_text(&messages(&mock, 0));
    assert!(
        system.contains("- IAM-04 [not_started] Multi-factor authentication"),
        "{system}"
    );
    assert!(system.contains("- NET-01 [in_progress]"), "{system}");
    assert!(
        !sent.contains("[implemented]"),
        "another org's state leaked: {sent}"
    );
    assert!(!sent.contains(&b.org_id) && !sent.contains("Gaps Bravo"));
    assert!(!sent.contains(&a.org_id), "ids are not prompt material");

    // B's analysis in turn sees B's state.
    mock.control.push_replies([r#"{"summary":"ok","gaps":[]}"#]);
    let (status, _) = post(
        &app,
        &b,
        "/api/v1/orgs/{org}/ai/gap-analysis",
        json!({ "framework": "cyber-essentials" }),
    )
    .await;
    assert_eq!(status, 200);
    let system = system_text(&messages(&mock, 1));
    assert!(system.contains("- IAM-04 [implemented]"), "{system}");
    assert!(!system.contains("- NET-01 [in_progress]"));
}

#[tokio::test]
async fn gap_analysis_needs_an_adopted_framework() {
    let (app, mock) = with_mock(|_| {}).await;
    let s = app.signup("noadopt@example.com", "No Adopt").await;
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/gap-analysis",
        json!({ "framework": "soc2" }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "framework_not_adopted");
    let (status, _) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/gap-analysis",
        json!({ "framework": "no-such-framework" }),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = post(&app, &s, "/api/v1/orgs/{org}/ai/gap-analysis", json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "framework");
    assert_eq!(mock.control.request_count(), 0, "no model was asked");
}

// ---------------------------------------------------------------- policy draft

#[tokio::test]
async fn policy_draft_is_structured_and_only_covers_real_framework_controls() {
    let (app, mock) = with_mock(|_| {}).await;
    let s = app.signup("policy@example.com", "Policy Org").await;
    mock.control.push_replies([json!({
        "title": "Access control policy",
        "sections": [
            { "heading": "Purpose", "body": "Protect accounts." },
            { "heading": "Policy statements", "body": "MFA everywhere." }
        ],
        "controls_covered": ["IAM-04", "iam-01", "GOV-01", "MADE-UP-1", "IAM-04"]
    })
    .to_string()]);
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/policy-draft",
        json!({ "topic": "Access control and multi-factor authentication", "framework": "cyber-essentials" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["title"], "Access control policy");
    assert_eq!(body["sections"].as_array().unwrap().len(), 2);
    assert_eq!(body["stored"], false);
    let covered: Vec<&str> = body["controls_covered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(covered, vec!["IAM-04", "IAM-01"]);
    assert_eq!(body["dropped_control_ids"], json!(["GOV-01", "MADE-UP-1"]));
    let msgs = messages(&mock, 0);
    assert!(
        system_text(&msgs).contains("- IAM-04 Multi-factor authentication"),
        "{msgs:?}"
    );
    assert_eq!(
        user_text(&msgs),
        "Access control and multi-factor authentication"
    );

    for (bad, field) in [
        (
            json!({ "topic": "x", "framework": "cyber-essentials" }),
            "topic",
        ),
        (json!({ "topic": "Backups" }), "framework"),
        (
            json!({ "topic": "Backups", "framework": "cyber-essentials", "extra": 1 }),
            "extra",
        ),
    ] {
        let (status, body) = post(&app, &s, "/api/v1/orgs/{org}/ai/policy-draft", bad).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(
            body["error"]["details"]["fields"][0]["field"], field,
            "{body}"
        );
    }
    let (status, _) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/policy-draft",
        json!({ "topic": "Backups", "framework": "nope" }),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_invalid_structured_reply_is_repaired_once() {
    let (app, mock) = with_mock(|_| {}).await;
    let s = app.signup("repair@example.com", "Repair Org").await;
    mock.control.push_replies([
        "Sure! Here is a policy about backups.".to_owned(),
        json!({ "title": "Backup policy", "sections": [{ "heading": "Purpose", "body": "Restore." }] })
            .to_string(),
    ]);
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/policy-draft",
        json!({ "topic": "Backups and restore tests", "framework": "iso27001" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["title"], "Backup policy");
    assert_eq!(body["ai"]["offline"], false);
    assert_eq!(body["controls_covered"], json!([]));
    assert_eq!(mock.control.request_count(), 2);
    let repair = messages(&mock, 1);
    assert!(
        repair
            .last()
            .unwrap()
            .1
            .starts_with("Your reply was not valid"),
        "{repair:?}"
    );
}

#[tokio::test]
async fn a_reply_still_invalid_after_repair_is_ai_invalid_output() {
    // Without the offline fallback, a model that never produces the schema is an error.
    let (app, mock) = with_mock(|c| c.ai.offline_fallback = false).await;
    let s = app.signup("invalid@example.com", "Invalid Org").await;
    mock.control
        .push_replies((0..12).map(|i| format!("{{\"title\": \"\", \"attempt\": {i}}}")));
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/policy-draft",
        json!({ "topic": "Access control", "framework": "cyber-essentials" }),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "ai_invalid_output");
    assert!(
        !body.to_string().contains("attempt"),
        "no model text is echoed: {body}"
    );
    // One repair per model tried, never more.
    let n = mock.control.request_count();
    assert!(n >= 2 && n % 2 == 0, "{n}");
}

// ---------------------------------------------------------------- classification

fn classification_reply(confidence: f64, controls: &[&str]) -> String {
    json!({
        "evidence_type": "MFA configuration",
        "controls": controls,
        "confidence": confidence,
        "rationale": "The export lists MFA enforcement per user."
    })
    .to_string()
}

#[tokio::test]
async fn classification_is_applied_at_the_threshold_suggested_below_and_stored() {
    // A threshold of 0.8 (default 0.7) shows the setting is used.
    let (app, mock) = with_mock(|c| c.ai_tasks.classification_threshold = 0.8).await;
    let s = app.signup("classify@example.com", "Classify Org").await;
    let text = "Entra ID export: MFA enforced for all 42 users, including administrators.";

    mock.control.push_replies([classification_reply(
        0.85,
        &["IAM-04", "FAKE-1", "iam-06", "IAM-03", "IAM-01"],
    )]);
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/classify-evidence",
        json!({ "text": text }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "applied");
    assert_eq!(body["applied"], true);
    assert_eq!(body["evidence_type"], "mfa_configuration");
    let keys: Vec<&str> = body["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        vec!["IAM-04", "IAM-06", "IAM-03"],
        "at most three, all real"
    );
    assert_eq!(body["dropped_control_ids"], json!(["FAKE-1"]));
    assert_eq!(body["threshold"], 0.8);
    let applied_id: uuid::Uuid = body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(user_text(&messages(&mock, 0)), text);

    mock.control
        .push_replies([classification_reply(0.75, &["IAM-04"])]);
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/classify-evidence",
        json!({ "filename": "mfa-report.csv", "extracted_text": "user,mfa\nalice,enforced" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "suggested");
    assert_eq!(body["applied"], false);
    assert_eq!(body["input"]["filename"], "mfa-report.csv");
    assert!(user_text(&messages(&mock, 1)).starts_with("File name: mfa-report.csv"));

    // Stored, in this organisation only, with a hash and a length but no text.
    let ctx = ctx_of(&s);
    let db = app.state.db().primary();
    let rows = evidence_classifications::recent(db, &ctx, false, 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let applied = evidence_classifications::get(db, &ctx, applied_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(applied.status, ClassificationStatus::Applied);
    assert_eq!(applied.controls, vec!["IAM-04", "IAM-06", "IAM-03"]);
    assert_eq!(
        applied.input_sha256,
        hex::encode(Sha256::digest(text.as_bytes()))
    );
    assert_eq!(applied.input_chars, text.chars().count() as u64);
    assert_eq!(applied.input_text, None);
    assert_eq!(applied.actor_id.as_deref(), Some(s.user_id.as_str()));
    let other = app.signup("classify-other@example.com", "Other Org").await;
    assert!(
        evidence_classifications::get(db, &ctx_of(&other), applied_id)
            .await
            .unwrap()
            .is_none()
    );

    // Audited in the same transaction.
    let (status, audit) = call(
        &app,
        &s,
        Method::GET,
        "/api/v1/orgs/{org}/audit?action=evidence.classified",
        None,
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["items"].as_array().unwrap().len(), 2, "{audit}");

    // With prompt storage enabled the text is kept, redacted as the provider saw it.
    ai_settings::put(
        db,
        &ctx,
        &AiSettings {
            store_prompts: true,
            ..AiSettings::default()
        },
    )
    .await
    .unwrap();
    mock.control
        .push_replies([classification_reply(0.9, &["IAM-04"])]);
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/classify-evidence",
        json!({ "text": "MFA report sent by alice.admin@example.com for every account" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["input"]["text_stored"], true);
    let id: uuid::Uuid = body["id"].as_str().unwrap().parse().unwrap();
    let kept = evidence_classifications::get(db, &ctx, id)
        .await
        .unwrap()
        .unwrap()
        .input_text
        .unwrap();
    assert!(kept.contains("MFA report"), "{kept}");
    assert!(!kept.contains("alice.admin@example.com"), "{kept}");
}

#[tokio::test]
async fn classification_input_must_be_one_form() {
    let app = offline_app().await;
    let s = app.signup("forms@example.com", "Forms Org").await;
    for (body, field) in [
        (json!({}), "text"),
        (
            json!({ "text": "a", "extracted_text": "b", "filename": "f" }),
            "text",
        ),
        (json!({ "extracted_text": "b" }), "filename"),
        (json!({ "filename": "f.txt" }), "extracted_text"),
        (json!({ "text": "   " }), "text"),
        (json!({ "text": "x".repeat(20_001) }), "text"),
    ] {
        let (status, res) = post(&app, &s, "/api/v1/orgs/{org}/ai/classify-evidence", body).await;
        assert_eq!(status, 422, "{res}");
        assert_eq!(
            res["error"]["details"]["fields"][0]["field"], field,
            "{res}"
        );
    }
    let rows = evidence_classifications::recent(app.state.db().primary(), &ctx_of(&s), false, 10)
        .await
        .unwrap();
    assert!(rows.is_empty(), "nothing half-written");
}

// ---------------------------------------------------------------- offline

#[tokio::test]
async fn offline_mode_gives_valid_catalogue_grounded_answers_for_every_task() {
    let app = offline_app().await;
    let s = app.signup("offline@example.com", "Offline Org").await;
    let catalogue = assay_core::catalogue::builtin();

    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/help",
        json!({ "subject": "control", "ref": "VUL-01" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ai"]["offline"], true);
    assert!(
        body["answer"]
            .as_str()
            .unwrap()
            .contains(&catalogue.control("VUL-01").unwrap().guidance),
        "{body}"
    );

    // Everything in Cyber Essentials' scope implemented but three controls.
    adopt(&app, &s, "cyber-essentials").await;
    let model =
        assay_core::readiness::ReadinessModel::new(catalogue, &["cyber-essentials"]).unwrap();
    let open = ["NET-01", "VUL-01", "IAM-02"];
    let updates: Vec<Value> = model
        .controls_in_scope("cyber-essentials")
        .into_iter()
        .filter(|k| !open.contains(k))
        .map(|k| json!({ "key": k, "status": "implemented" }))
        .collect();
    let (code, res) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/controls/bulk",
        json!({ "updates": updates }),
    )
    .await;
    assert_eq!(code, 200, "{res}");
    set_status(&app, &s, "NET-01", "in_progress").await;
    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/gap-analysis",
        json!({ "framework": "cyber-essentials" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ai"]["offline"], true);
    assert_eq!(body["dropped_control_ids"], json!([]));
    let mut gaps: Vec<(String, String)> = body["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["control_id"].as_str().unwrap().to_owned(),
                g["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    gaps.sort();
    assert_eq!(
        gaps,
        vec![
            ("IAM-02".to_owned(), "high".to_owned()),
            ("NET-01".to_owned(), "medium".to_owned()),
            ("VUL-01".to_owned(), "high".to_owned()),
        ],
        "exactly the controls not implemented: {body}"
    );
    assert!(!body["recommendations"].as_array().unwrap().is_empty());

    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/policy-draft",
        json!({ "topic": "Patch management", "framework": "cyber-essentials" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["sections"].as_array().unwrap().len() >= 3);
    let covered = body["controls_covered"].as_array().unwrap();
    assert!(covered.iter().any(|c| c["key"] == "VUL-01"), "{body}");
    assert_eq!(body["dropped_control_ids"], json!([]));

    let (status, body) = post(
        &app,
        &s,
        "/api/v1/orgs/{org}/ai/classify-evidence",
        json!({ "text": "Windows Defender antivirus weekly malware scan report" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["evidence_type"], "malware_protection_report");
    assert_eq!(body["ai"]["offline"], true);
    let controls = body["controls"].as_array().unwrap();
    assert!(!controls.is_empty() && controls.len() <= 3, "{body}");
    // Keyword rules stay below the default threshold: a person confirms.
    assert_eq!(body["status"], "suggested");
}

/// Help reads the organisation's catalogue view: a requirement of a framework it imported is
/// explained from that pack's text; another organisation cannot ask about it.
#[tokio::test]
async fn help_explains_requirements_of_the_organisations_own_imports() {
    const PACK: &str = r#"format: assay.framework.v1
framework:
  key: acme-help
  name: ACME Help Baseline
  version: "1.0"
  publisher: ACME Ltd
  licence: { id: CC-BY-4.0, name: Creative Commons Attribution 4.0 }
  provenance: { source: ACME baseline v1.0 }
  description: A short baseline for ACME's suppliers.
requirements:
  - { ref: AC, title: Access control, description: Limit who reaches what. }
  - { ref: AC-1, parent: AC, title: Remote MFA, description: Every remote sign-in uses a second factor. }
"#;
    let app = offline_app().await;
    let s = app.signup("helper-import@example.com", "Importer").await;
    let other = app.signup("helper-other@example.com", "Other").await;
    let imported = app
        .with_token(
            Method::POST,
            &format!("/api/v1/orgs/{}/frameworks/import?format=yaml", s.org_id),
            &s.access,
        )
        .header("content-type", "application/yaml")
        .body(PACK)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), 201, "{}", imported.text().await.unwrap());
    let body = json!({ "subject": "requirement", "framework": "acme-help", "ref": "AC-1" });
    let (status, res) = post(&app, &s, "/api/v1/orgs/{org}/ai/help", body.clone()).await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res["source"]["framework"], "acme-help");
    assert_eq!(
        res["source"]["text"],
        "Every remote sign-in uses a second factor."
    );
    let (status, res) = post(&app, &other, "/api/v1/orgs/{org}/ai/help", body).await;
    assert_eq!(status, 404, "{res}");
}

/// R-31's order (output safety, then cache): an answer the output policy had to redact is
/// never kept in the cache — the next identical question goes to the provider again — while
/// a clean answer is answered from the cache.
#[tokio::test]
async fn only_answers_the_output_policy_leaves_unchanged_are_cached() {
    let (app, mock) = with_mock(|_| {}).await;
    let s = app.signup("cache-gate@example.com", "Cache Gate Org").await;
    let ask = json!({ "subject": "control", "ref": "IAM-04", "question": "Who owns this?" });
    for _ in 0..2 {
        mock.control
            .push_replies(["Ask pat.owner@example.org, who owns IAM-04."]);
        let (status, body) = post(&app, &s, "/api/v1/orgs/{org}/ai/help", ask.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["answer"], "Ask [EMAIL_1], who owns IAM-04.");
        assert_eq!(body["ai"]["cache_hit"], false, "{body}");
        // Stores are off the request path; give one a moment to (not) land.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(mock.control.request_count(), 2);

    let clean = json!({ "subject": "control", "ref": "IAM-04", "question": "What is it?" });
    mock.control
        .push_replies(["IAM-04 is about access by role."]);
    let (status, body) = post(&app, &s, "/api/v1/orgs/{org}/ai/help", clean.clone()).await;
    assert_eq!(
        (status, &body["ai"]["cache_hit"]),
        (200, &json!(false)),
        "{body}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (status, body) = post(&app, &s, "/api/v1/orgs/{org}/ai/help", clean).await;
    assert_eq!(
        (status, &body["ai"]["cache_hit"]),
        (200, &json!(true)),
        "{body}"
    );
    assert_eq!(body["answer"], "IAM-04 is about access by role.");
    assert_eq!(mock.control.request_count(), 3);
}

/// A suggestion waits for a person: listed as awaiting review, confirmed with a corrected
/// type and controls (or rejected), once, audited; an applied one can still be overruled.
/// The model's answer is kept beside the decision.
#[tokio::test]
async fn suggestions_wait_for_a_person_who_confirms_corrects_or_rejects_them_once() {
    let (app, mock) = with_mock(|_| {}).await;
    let s = app
        .signup("review-class@example.com", "Review Class Org")
        .await;
    let classify = async |confidence: f64, controls: &[&str]| {
        mock.control
            .push_replies([classification_reply(confidence, controls)]);
        // A text of its own each time (the same text would be answered from the cache).
        let text =
            json!({ "text": format!("Entra ID export {confidence}: MFA enforced for all users.") });
        let (status, body) = post(&app, &s, "/api/v1/orgs/{org}/ai/classify-evidence", text).await;
        assert_eq!(status, 201, "{body}");
        body
    };
    let suggested = classify(0.4, &["IAM-04"]).await;
    assert_eq!(
        suggested["effective"]["state"], "awaiting_review",
        "{suggested}"
    );
    let applied = classify(0.9, &["IAM-04"]).await;
    assert_eq!(applied["effective"]["state"], "applied");
    assert_eq!(applied["effective"]["controls"][0]["key"], "IAM-04");

    let awaiting = async || {
        let path = "/api/v1/orgs/{org}/ai/classifications?awaiting_review=true";
        let (status, body) = call(&app, &s, Method::GET, path, None).await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    };
    let waiting = awaiting().await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["id"], suggested["id"]);

    let review = |id: &Value| {
        format!(
            "/api/v1/orgs/{{org}}/ai/classifications/{}/review",
            id.as_str().unwrap()
        )
    };
    // Bad input is named and changes nothing.
    for (bad, field) in [
        (json!({ "decision": "maybe" }), "decision"),
        (
            json!({ "decision": "confirm", "controls": ["NOPE-1"] }),
            "controls",
        ),
        (
            json!({ "decision": "reject", "controls": ["IAM-01"] }),
            "controls",
        ),
        (
            json!({ "decision": "confirm", "evidence_type": "!!!" }),
            "evidence_type",
        ),
    ] {
        let (status, body) = post(&app, &s, &review(&suggested["id"]), bad).await;
        assert_eq!(status, 422, "{body}");
        assert!(body.to_string().contains(field), "{body}");
    }
    let (status, body) = post(
        &app,
        &s,
        &review(&suggested["id"]),
        json!({ "decision": "confirm", "evidence_type": "MFA report", "controls": ["iam-01", "IAM-04", "IAM-01"], "note": "It covers admins too." }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["review"]["decision"], "confirmed");
    assert_eq!(body["review"]["reviewer_id"], s.user_id.as_str());
    assert_eq!(body["effective"]["state"], "confirmed");
    assert_eq!(body["effective"]["evidence_type"], "mfa_report");
    let keys: Vec<&str> = body["effective"]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["IAM-01", "IAM-04"]);
    // The model's answer stays as it was.
    assert_eq!(body["evidence_type"], suggested["evidence_type"]);
    assert_eq!(body["status"], "suggested");

    // Once only.
    let again = json!({ "decision": "reject" });
    let (status, body) = post(&app, &s, &review(&suggested["id"]), again).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_reviewed");
    assert_eq!(body["error"]["details"]["review"]["decision"], "confirmed");

    // An applied classification can be overruled.
    let reject = json!({ "decision": "reject", "note": "Wrong tenant's export." });
    let (status, body) = post(&app, &s, &review(&applied["id"]), reject).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["effective"], json!({ "state": "rejected" }));
    let path = format!(
        "/api/v1/orgs/{{org}}/ai/classifications/{}",
        applied["id"].as_str().unwrap()
    );
    let (status, body) = call(&app, &s, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["review"]["note"], "Wrong tenant's export.");

    assert!(awaiting().await.is_empty());
    let filter = assay_store::repo::audit::AuditFilter {
        action: Some("evidence.classification.reviewed".into()),
        ..Default::default()
    };
    let events = assay_store::repo::audit::list(app.state.db().primary(), &ctx_of(&s), &filter, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);

    // Another organisation sees none of it.
    let other = app
        .signup("review-class-2@example.com", "Other Class Org")
        .await;
    let (status, _) = call(
        &app,
        &other,
        Method::GET,
        &path.replace("{org}", &s.org_id),
        None,
    )
    .await;
    assert_eq!(
        status, 404,
        "not a member: the organisation is not there for them"
    );
    let theirs = path.replace("{org}", &other.org_id);
    let (status, _) = call(&app, &other, Method::GET, &theirs, None).await;
    assert_eq!(status, 404);
}
