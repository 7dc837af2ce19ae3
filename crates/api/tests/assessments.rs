//! Assessments and readiness history through HTTP: a full session (start, answer, resume,
//! complete, confirm) that changes control statuses and raises readiness, the coalesced
//! and daily snapshots it leaves in the history, the rules that keep answers structured
//! ("no" is never implemented), refusals with the offending field, and isolation between
//! organisations. Runs on SQLite, and on PostgreSQL when `ASSAY_TEST_POSTGRES_URL` is set.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use support::{Session, TestApp, call};

const FRAMEWORK: &str = "cyber-essentials";

/// An app whose change snapshots are written after `quiet_ms` of quiet; no daily task
/// unless asked for, so the history holds only what a test caused.
async fn app_with(quiet_ms: u64, daily: bool) -> TestApp {
    TestApp::builder()
        .config(move |c| {
            c.readiness.snapshot_quiet_ms = quiet_ms;
            c.readiness.daily_snapshots = daily;
            c.rate_limits.api_per_minute = 100_000;
            c.rate_limits.auth_per_minute = 1_000;
        })
        .spawn()
        .await
}

fn org_path(s: &Session, rest: &str) -> String {
    format!("/api/v1/orgs/{}{rest}", s.org_id)
}

async fn adopt(app: &TestApp, s: &Session, framework: &str) {
    let (status, body) = call(
        app,
        Method::PUT,
        &org_path(s, &format!("/frameworks/{framework}")),
        &s.access,
        None,
    )
    .await;
    assert!(status == 201 || status == 200, "{status} {body}");
}

async fn history(app: &TestApp, s: &Session, query: &str) -> Value {
    let (status, body) = call(
        app,
        Method::GET,
        &org_path(s, &format!("/readiness/history{query}")),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Poll the history until it has at least `n` points (snapshots are written in the
/// background after the quiet period). The deadline only guards against a hang.
async fn wait_for_points(app: &TestApp, s: &Session, query: &str, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let h = history(app, s, query).await;
        if h["points"].as_array().unwrap().len() >= n {
            return h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot #{n} appeared: {h}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn overall_score(app: &TestApp, s: &Session) -> f64 {
    let (status, body) = call(
        app,
        Method::GET,
        &org_path(s, "/readiness"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["overall"]["percent"].as_f64().unwrap_or(0.0)
}

async fn start(app: &TestApp, s: &Session, framework: &str) -> Value {
    let (status, body) = call(
        app,
        Method::POST,
        &org_path(s, "/assessments"),
        &s.access,
        Some(json!({ "framework": framework })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn answer(app: &TestApp, s: &Session, id: &str, question: &str, body: Value) -> (u16, Value) {
    call(
        app,
        Method::PUT,
        &org_path(s, &format!("/assessments/{id}/answers/{question}")),
        &s.access,
        Some(body),
    )
    .await
}

fn question_ids(view: &Value) -> Vec<(String, String)> {
    view["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["id"].as_str().unwrap().to_owned(),
                q["control"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn control_status(app: &TestApp, s: &Session, key: &str) -> (String, Value) {
    let (status, body) = call(
        app,
        Method::GET,
        &org_path(s, &format!("/controls/{key}")),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (body["status"].as_str().unwrap().to_owned(), body)
}

async fn audit_actions(app: &TestApp, s: &Session, action: &str) -> Vec<Value> {
    let (status, body) = call(
        app,
        Method::GET,
        &org_path(s, &format!("/audit?action={action}&limit=500")),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_confirmed_assessment_sets_controls_raises_readiness_and_shows_in_the_history() {
    let app = app_with(50, false).await;
    let s = app.signup("flow@example.com", "Flow").await;
    adopt(&app, &s, FRAMEWORK).await;
    // Adopting is a change: the first point, at 0.
    let h = wait_for_points(&app, &s, "", 1).await;
    assert_eq!(h["points"][0]["trigger"], "change");
    assert_eq!(h["points"][0]["score"], 0);
    let before = overall_score(&app, &s).await;
    assert_eq!(before, 0.0);

    let view = start(&app, &s, FRAMEWORK).await;
    let id = view["id"].as_str().unwrap().to_owned();
    assert_eq!(view["status"], "in_progress");
    let questions = question_ids(&view);
    assert!(questions.len() > 4, "{questions:?}");
    assert_eq!(view["progress"]["answered"], 0);
    assert_eq!(view["next_question"], questions[0].0.as_str());

    // The first control is answered "no" (with notes claiming otherwise); the rest "yes".
    let no_control = questions[0].1.clone();
    // A question of another control, answered yes.
    let (yes_q, yes_control) = questions
        .iter()
        .find(|(_, c)| *c != no_control)
        .cloned()
        .unwrap();
    let half = questions.len() / 2;
    for (q, control) in &questions[..half] {
        let body = if *control == no_control {
            json!({ "answer": "no", "notes": "implemented everywhere, honestly" })
        } else {
            json!({ "answer": "yes" })
        };
        let (status, res) = answer(&app, &s, &id, q, body).await;
        assert_eq!(status, 200, "{res}");
    }

    // Resume: the answers so far, the progress, and where to carry on.
    let (status, resumed) = call(
        &app,
        Method::GET,
        &org_path(&s, &format!("/assessments/{id}")),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["progress"]["answered"], half);
    assert_eq!(resumed["progress"]["remaining"], questions.len() - half);
    assert_eq!(resumed["next_question"], questions[half].0.as_str());
    assert_eq!(resumed["questions"][0]["answer"], "no");
    assert_eq!(
        resumed["questions"][0]["notes"],
        "implemented everywhere, honestly"
    );
    assert!(resumed["questions"][half]["answer"].is_null());

    for (q, control) in &questions[half..] {
        let answer_word = if *control == no_control { "no" } else { "yes" };
        let (status, res) = answer(&app, &s, &id, q, json!({ "answer": answer_word })).await;
        assert_eq!(status, 200, "{res}");
    }
    // Changing an answer is allowed while in progress.
    let (status, res) = answer(&app, &s, &id, &yes_q, json!({ "answer": "partial" })).await;
    assert_eq!(status, 200, "{res}");
    let (_, res) = answer(&app, &s, &id, &yes_q, json!({ "answer": "yes" })).await;
    assert_eq!(res["progress"]["remaining"], 0);

    let (status, done) = call(
        &app,
        Method::POST,
        &org_path(&s, &format!("/assessments/{id}/complete")),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "completed");
    let result = &done["result"];
    let score = result["score"].as_u64().unwrap();
    assert!(score > 0 && score < 100, "{result}");
    let implied = result["implied"].as_array().unwrap();
    let status_of = |key: &str| {
        implied
            .iter()
            .find(|i| i["control"] == key)
            .map(|i| i["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status_of(&no_control), "not_started");
    assert!(
        result["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["control"] == no_control.as_str()),
        "{result}"
    );
    assert!(
        result["next_steps"][0]
            .as_str()
            .unwrap()
            .starts_with(&no_control)
    );
    // Nothing is applied yet; the proposal lists what confirming would change.
    assert_eq!(
        control_status(&app, &s, &yes_control).await.0,
        "not_started"
    );
    let proposed = done["proposed_changes"].as_array().unwrap();
    assert!(proposed.iter().all(|c| c["control"] != no_control.as_str()));
    assert!(!proposed.is_empty());
    assert_eq!(overall_score(&app, &s).await, 0.0);

    // Answers are frozen once completed.
    let (status, res) = answer(&app, &s, &id, &questions[0].0, json!({ "answer": "yes" })).await;
    assert_eq!(status, 409, "{res}");

    let (status, confirmed) = call(
        &app,
        Method::POST,
        &org_path(&s, &format!("/assessments/{id}/confirm")),
        &s.access,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    let applied = confirmed["applied"].as_array().unwrap();
    assert_eq!(applied.len(), proposed.len());
    assert!(applied.iter().all(|a| a["to"] == "implemented"));
    assert!(
        confirmed["unchanged"]
            .as_array()
            .unwrap()
            .contains(&json!(no_control))
    );
    assert_eq!(
        control_status(&app, &s, &yes_control).await.0,
        "implemented"
    );
    // "no" never becomes implemented, whatever its notes say.
    assert_eq!(control_status(&app, &s, &no_control).await.0, "not_started");
    let after = overall_score(&app, &s).await;
    assert!(after > before, "{before} -> {after}");
    assert!((after - result["percent"].as_f64().unwrap()).abs() < 1e-9);

    // The confirmation left a snapshot; the history shows the rise.
    let h = wait_for_points(&app, &s, "", 2).await;
    let points = h["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{h}");
    assert_eq!(points[1]["percent"].as_f64().unwrap(), after);
    assert_eq!(h["trend"]["direction"], "up");
    assert!(
        (h["trend"]["change"].as_f64().unwrap() - (after * 100.0).round() / 100.0).abs() < 0.01
    );
    let fw = history(&app, &s, &format!("?framework={FRAMEWORK}")).await;
    assert_eq!(fw["points"].as_array().unwrap().len(), 2);
    assert!(fw["points"][1]["breakdown"]["met"].as_u64().unwrap() > 0);
    assert_eq!(
        history(&app, &s, "?limit=1").await["points"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Confirming twice is refused; the session shows what it applied.
    let (status, _) = call(
        &app,
        Method::POST,
        &org_path(&s, &format!("/assessments/{id}/confirm")),
        &s.access,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409);
    let (_, listed) = call(
        &app,
        Method::GET,
        &org_path(&s, "/assessments?status=confirmed"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert_eq!(listed["items"][0]["score"], score);
    assert_eq!(listed["items"][0]["progress"]["remaining"], 0);

    // Every step is in the audit log; each control change names the assessment.
    assert_eq!(audit_actions(&app, &s, "assessment.started").await.len(), 1);
    assert_eq!(
        audit_actions(&app, &s, "assessment.answered").await.len(),
        questions.len() + 2
    );
    assert_eq!(
        audit_actions(&app, &s, "assessment.completed").await.len(),
        1
    );
    assert_eq!(
        audit_actions(&app, &s, "assessment.confirmed").await.len(),
        1
    );
    let control_events = audit_actions(&app, &s, "control.updated").await;
    assert_eq!(control_events.len(), applied.len());
    assert!(
        control_events
            .iter()
            .all(|e| e["details"]["assessment"] == id.as_str())
    );
    let (_, verify) = call(
        &app,
        Method::GET,
        &org_path(&s, "/audit/verify"),
        &s.access,
        None,
    )
    .await;
    assert!(verify["first_broken"].is_null(), "{verify}");
    assert!(verify["events_checked"].as_u64().unwrap() > questions.len() as u64);
}

#[tokio::test]
async fn answering_no_throughout_implies_nothing_is_implemented() {
    let app = app_with(50, false).await;
    let s = app.signup("nope@example.com", "Nope").await;
    adopt(&app, &s, FRAMEWORK).await;
    let view = start(&app, &s, FRAMEWORK).await;
    let id = view["id"].as_str().unwrap();
    for (q, _) in question_ids(&view) {
        let (status, res) = answer(
            &app,
            &s,
            id,
            &q,
            json!({ "answer": "no", "notes": "yes, implemented" }),
        )
        .await;
        assert_eq!(status, 200, "{res}");
    }
    let (_, done) = call(
        &app,
        Method::POST,
        &org_path(&s, &format!("/assessments/{id}/complete")),
        &s.access,
        None,
    )
    .await;
    assert_eq!(done["result"]["score"], 0);
    assert!(
        done["result"]["implied"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "not_started")
    );
    let (status, confirmed) = call(
        &app,
        Method::POST,
        &org_path(&s, &format!("/assessments/{id}/confirm")),
        &s.access,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    assert!(confirmed["applied"].as_array().unwrap().is_empty());
    let (_, controls) = call(
        &app,
        Method::GET,
        &org_path(
            &s,
            &format!("/controls?framework={FRAMEWORK}&status=implemented"),
        ),
        &s.access,
        None,
    )
    .await;
    assert!(controls["items"].as_array().unwrap().is_empty());
    assert_eq!(overall_score(&app, &s).await, 0.0);
}

#[tokio::test]
async fn confirming_a_subset_applies_only_those_and_not_applicable_needs_notes() {
    let app = app_with(50, false).await;
    let s = app.signup("subset@example.com", "Subset").await;
    adopt(&app, &s, FRAMEWORK).await;
    let view = start(&app, &s, FRAMEWORK).await;
    let id = view["id"].as_str().unwrap();
    let questions = question_ids(&view);
    let mut controls: Vec<String> = questions.iter().map(|(_, c)| c.clone()).collect();
    controls.dedup();
    let (na_justified, na_bare, yes_a, yes_b) = (
        controls[0].clone(),
        controls[1].clone(),
        controls[2].clone(),
        controls[3].clone(),
    );
    for (q, c) in &questions {
        let body = if *c == na_justified {
            json!({ "answer": "not_applicable", "notes": "no wireless networks" })
        } else if *c == na_bare {
            json!({ "answer": "not_applicable" })
        } else if *c == yes_a || *c == yes_b {
            json!({ "answer": "yes" })
        } else {
            continue;
        };
        let (status, res) = answer(&app, &s, id, q, body).await;
        assert_eq!(status, 200, "{res}");
    }
    let (status, _) = call(
        &app,
        Method::POST,
        &org_path(&s, &format!("/assessments/{id}/confirm")),
        &s.access,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409, "confirming before completing");
    let (_, done) = call(
        &app,
        Method::POST,
        &org_path(&s, &format!("/assessments/{id}/complete")),
        &s.access,
        None,
    )
    .await;
    assert_eq!(done["result"]["needs_justification"], json!([na_bare]));

    let confirm_path = org_path(&s, &format!("/assessments/{id}/confirm"));
    let confirm = |body: Value| call(&app, Method::POST, &confirm_path, &s.access, Some(body));
    // A bare N/A cannot be applied; unknown and repeated keys are named.
    let (status, err) = confirm(json!({ "controls": [yes_a, na_bare] })).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["details"]["fields"][0]["field"], "controls[1]");
    let (status, err) = confirm(json!({ "controls": [yes_a, "NOPE-99", yes_a] })).await;
    assert_eq!(status, 422, "{err}");
    let fields: Vec<&str> = err["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["controls[1]", "controls[2]"]);
    let (status, err) = confirm(json!({ "controls": [] })).await;
    assert_eq!(status, 422, "{err}");
    // Nothing was applied by the refusals.
    assert_eq!(control_status(&app, &s, &yes_a).await.0, "not_started");

    let (status, confirmed) = confirm(json!({ "controls": [yes_a, na_justified] })).await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["applied"].as_array().unwrap().len(), 2);
    assert_eq!(control_status(&app, &s, &yes_a).await.0, "implemented");
    assert_eq!(control_status(&app, &s, &yes_b).await.0, "not_started");
    let (status, na) = control_status(&app, &s, &na_justified).await;
    assert_eq!(status, "not_applicable");
    assert_eq!(na["justification"], "no wireless networks");
    assert_eq!(control_status(&app, &s, &na_bare).await.0, "not_started");
}

#[tokio::test]
async fn a_burst_of_changes_writes_one_snapshot() {
    // A quiet period long enough that ten requests in a row fall inside it.
    let app = app_with(750, false).await;
    let s = app.signup("burst@example.com", "Burst").await;
    adopt(&app, &s, FRAMEWORK).await;
    wait_for_points(&app, &s, "", 1).await;
    let (_, page) = call(
        &app,
        Method::GET,
        &org_path(&s, &format!("/controls?framework={FRAMEWORK}&limit=10")),
        &s.access,
        None,
    )
    .await;
    let keys: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_owned())
        .collect();
    for key in &keys[..6] {
        let (status, res) = call(
            &app,
            Method::PATCH,
            &org_path(&s, &format!("/controls/{key}")),
            &s.access,
            Some(json!({ "status": "implemented" })),
        )
        .await;
        assert_eq!(status, 200, "{res}");
    }
    let updates: Vec<Value> = keys[6..]
        .iter()
        .map(|k| json!({ "key": k, "status": "in_progress" }))
        .collect();
    let (status, res) = call(
        &app,
        Method::POST,
        &org_path(&s, "/controls/bulk"),
        &s.access,
        Some(json!({ "updates": updates })),
    )
    .await;
    assert_eq!(status, 200, "{res}");
    let burst_score = overall_score(&app, &s).await;
    let h = wait_for_points(&app, &s, "", 2).await;
    assert_eq!(h["points"][1]["percent"].as_f64().unwrap(), burst_score);

    assert_eq!(h["trend"]["direction"], "up");
    // One more change gives exactly one more point: the burst left one, not seven.
    adopt(&app, &s, "soc2").await;
    let h = wait_for_points(&app, &s, "", 3).await;
    let points = h["points"].as_array().unwrap();
    assert_eq!(points.len(), 3, "{h}");
    assert_eq!(
        points[2]["breakdown"]["frameworks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Dropping both frameworks at once is one more point, with no score left.
    for fw in [FRAMEWORK, "soc2"] {
        let (status, _) = call(
            &app,
            Method::DELETE,
            &org_path(&s, &format!("/frameworks/{fw}")),
            &s.access,
            None,
        )
        .await;
        assert_eq!(status, 204);
    }
    let h = wait_for_points(&app, &s, "", 4).await;
    assert_eq!(h["points"].as_array().unwrap().len(), 4, "{h}");
    assert!(h["points"][3]["score"].is_null(), "{h}");
    // The framework's own history keeps only the points taken while it was adopted.
    let fw = history(&app, &s, &format!("?framework={FRAMEWORK}")).await;
    assert_eq!(fw["points"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_starting_node_takes_todays_daily_snapshot_once() {
    let first = app_with(50, false).await;
    let s = first.signup("daily@example.com", "Daily").await;
    adopt(&first, &s, FRAMEWORK).await;
    wait_for_points(&first, &s, "", 1).await;
    // A second node on the same database with the daily task: it takes today's on start.
    let second = TestApp::builder()
        .database_of(&first)
        .config(|c| {
            c.readiness.daily_snapshots = true;
            c.rate_limits.api_per_minute = 100_000;
        })
        .spawn()
        .await;
    let h = wait_for_points(&second, &s, "", 2).await;
    let triggers: Vec<&str> = h["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["change", "daily"]);
    // Today's is there: another run (another node, a restart) adds none.
    let taken = assay_api::readiness_snapshots::take_daily(&first.state, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(taken, 0);
    assert_eq!(
        history(&first, &s, "").await["points"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field() {
    let app = app_with(50, false).await;
    let s = app.signup("bad@example.com", "Bad").await;
    let assessments = org_path(&s, "/assessments");
    let field_of = |body: &Value| {
        body["error"]["details"]["fields"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    let (status, body) = call(
        &app,
        Method::POST,
        &assessments,
        &s.access,
        Some(json!({ "framework": "pci-dss" })),
    )
    .await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "framework"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        Method::POST,
        &assessments,
        &s.access,
        Some(json!({ "framework": FRAMEWORK })),
    )
    .await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "framework"),
        "not adopted: {body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("adopt"));
    let (status, body) = call(&app, Method::POST, &assessments, &s.access, Some(json!({}))).await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "framework"),
        "{body}"
    );

    adopt(&app, &s, FRAMEWORK).await;
    let view = start(&app, &s, FRAMEWORK).await;
    let id = view["id"].as_str().unwrap();
    // One session in progress per framework; the conflict names the open one.
    let (status, body) = call(
        &app,
        Method::POST,
        &assessments,
        &s.access,
        Some(json!({ "framework": FRAMEWORK })),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["assessment_id"], id);

    let q = view["questions"][0]["id"].as_str().unwrap();
    for (bad, field) in [
        (json!({ "answer": "implemented" }), "answer"),
        (json!({ "answer": "not implemented" }), "answer"),
        (json!({ "answer": "Yes" }), "answer"),
        (json!({ "notes": "forgot the answer" }), "answer"),
        (json!({ "answer": "yes", "score": 5 }), "score"),
        (
            json!({ "answer": "yes", "notes": "x".repeat(4001) }),
            "notes",
        ),
    ] {
        let (status, body) = answer(&app, &s, id, q, bad.clone()).await;
        assert_eq!(
            (status, field_of(&body).as_str()),
            (422, field),
            "{bad}: {body}"
        );
    }
    let (status, body) = answer(&app, &s, id, "NOPE-01.q1", json!({ "answer": "yes" })).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = answer(&app, &s, "not-a-uuid", q, json!({ "answer": "yes" })).await;
    assert!(status == 400 || status == 404, "{status}");
    // Nothing above was stored.
    let (_, resumed) = call(
        &app,
        Method::GET,
        &format!("{assessments}/{id}"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(resumed["progress"]["answered"], 0);
    assert!(
        resumed["questions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["answer"].is_null())
    );

    for (query, field) in [
        ("?status=done", "status"),
        ("?limit=0", "limit"),
        ("?cursor=zzz", "cursor"),
    ] {
        let (status, body) = call(
            &app,
            Method::GET,
            &format!("{assessments}{query}"),
            &s.access,
            None,
        )
        .await;
        assert_eq!(
            (status, field_of(&body).as_str()),
            (422, field),
            "{query}: {body}"
        );
    }
    for (query, field) in [
        ("?since=last-tuesday", "since"),
        ("?framework=nope", "framework"),
        ("?limit=5000", "limit"),
    ] {
        let (status, body) = call(
            &app,
            Method::GET,
            &org_path(&s, &format!("/readiness/history{query}")),
            &s.access,
            None,
        )
        .await;
        assert_eq!(
            (status, field_of(&body).as_str()),
            (422, field),
            "{query}: {body}"
        );
    }
    assert_eq!(
        history(&app, &s, "?since=2026-01-01").await["trend"]["direction"],
        "none"
    );

    // Abandoning: an unconfirmed session goes with its answers, and the framework is free.
    let (status, _) = answer(&app, &s, id, q, json!({ "answer": "yes" })).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{assessments}/{id}"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("{assessments}/{id}"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(audit_actions(&app, &s, "assessment.deleted").await.len(), 1);
    start(&app, &s, FRAMEWORK).await;
}

#[tokio::test]
async fn another_organisations_assessments_are_not_found() {
    let app = app_with(50, false).await;
    let a = app.signup("iso-a@example.com", "IsoA").await;
    let b = app.signup("iso-b@example.com", "IsoB").await;
    adopt(&app, &a, FRAMEWORK).await;
    adopt(&app, &b, FRAMEWORK).await;
    let view = start(&app, &a, FRAMEWORK).await;
    let id = view["id"].as_str().unwrap();
    let q = view["questions"][0]["id"].as_str().unwrap();

    // B names A's assessment under its own organisation: no such assessment.
    let theirs = org_path(&b, &format!("/assessments/{id}"));
    for (method, path, body) in [
        (Method::GET, theirs.clone(), None),
        (
            Method::PUT,
            format!("{theirs}/answers/{q}"),
            Some(json!({ "answer": "yes" })),
        ),
        (Method::POST, format!("{theirs}/complete"), None),
        (Method::POST, format!("{theirs}/confirm"), Some(json!({}))),
        (Method::DELETE, theirs.clone(), None),
    ] {
        let (status, res) = call(&app, method.clone(), &path, &b.access, body).await;
        assert_eq!(status, 404, "{method} {path}: {res}");
        assert_eq!(res["error"]["code"], "not_found");
    }
    // Under A's organisation B is not a member: not found either.
    let (status, _) = call(
        &app,
        Method::GET,
        &org_path(&a, &format!("/assessments/{id}")),
        &b.access,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::GET,
        &org_path(&a, "/readiness/history"),
        &b.access,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // B's list and B's own session know nothing of A's.
    let (_, listed) = call(
        &app,
        Method::GET,
        &org_path(&b, "/assessments"),
        &b.access,
        None,
    )
    .await;
    assert!(listed["items"].as_array().unwrap().is_empty());
    start(&app, &b, FRAMEWORK).await;
    let (_, resumed) = call(
        &app,
        Method::GET,
        &org_path(&a, &format!("/assessments/{id}")),
        &a.access,
        None,
    )
    .await;
    assert_eq!(resumed["status"], "in_progress");
    assert_eq!(resumed["progress"]["answered"], 0);
}
