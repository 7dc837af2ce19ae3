//! The catalogue and an organisation's posture through HTTP: frameworks, adoption, control
//! states with their rules, bulk updates that change all or nothing, and the audit trail.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{TestApp, call};

#[tokio::test]
async fn frameworks_are_listed_with_licence_and_requirements() {
    let app = TestApp::spawn().await;
    let s = app.signup("cat@example.com", "Catalogue").await;
    let (status, list) = call(&app, Method::GET, "/api/v1/frameworks", &s.access, None).await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    for k in [
        "nist-csf",
        "iso27001",
        "cyber-essentials",
        "uk-gdpr",
        "soc2",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    let (_, csf) = call(
        &app,
        Method::GET,
        "/api/v1/frameworks/nist-csf",
        &s.access,
        None,
    )
    .await;
    assert_eq!(csf["assessable_requirements"], 106);
    assert!(
        csf["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["licence"].is_object())
    );
    let (missing, _) = call(
        &app,
        Method::GET,
        "/api/v1/frameworks/nope",
        &s.access,
        None,
    )
    .await;
    assert_eq!(missing, 404);
}

#[tokio::test]
async fn adopting_and_dropping_frameworks_is_idempotent_and_audited() {
    let app = TestApp::spawn().await;
    let s = app.signup("adopt@example.com", "Adopter").await;
    let base = format!("/api/v1/orgs/{}/frameworks", s.org_id);
    assert_eq!(
        call(
            &app,
            Method::PUT,
            &format!("{base}/cyber-essentials"),
            &s.access,
            None
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            &app,
            Method::PUT,
            &format!("{base}/cyber-essentials"),
            &s.access,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &app,
            Method::PUT,
            &format!("{base}/not-a-framework"),
            &s.access,
            None
        )
        .await
        .0,
        404
    );
    let (_, adopted) = call(&app, Method::GET, &base, &s.access, None).await;
    assert_eq!(adopted["items"][0]["key"], "cyber-essentials");
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("{base}/cyber-essentials"),
            &s.access,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("{base}/cyber-essentials"),
            &s.access,
            None
        )
        .await
        .0,
        404
    );
    let (_, audit) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/audit", s.org_id),
        &s.access,
        None,
    )
    .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(&actions[..2], ["framework.unadopted", "framework.adopted"]);
}

#[tokio::test]
async fn control_states_follow_the_rules_and_paginate() {
    let app = TestApp::spawn().await;
    let s = app.signup("ctl@example.com", "Controls").await;
    let other = app.signup("stranger@example.com", "Elsewhere").await;
    let base = format!("/api/v1/orgs/{}/controls", s.org_id);

    // N/A without a justification is refused, naming the field; nothing is stored.
    let (status, err) = call(
        &app,
        Method::PATCH,
        &format!("{base}/IAM-01"),
        &s.access,
        Some(json!({ "status": "not_applicable" })),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        err["error"]["details"]["fields"][0]["field"],
        "justification"
    );
    // An owner from another organisation is refused.
    let (status, err) = call(
        &app,
        Method::PATCH,
        &format!("{base}/IAM-01"),
        &s.access,
        Some(json!({ "owner_id": other.user_id })),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["details"]["fields"][0]["field"], "owner_id");

    let (status, ctl) = call(
        &app,
        Method::PATCH,
        &format!("{base}/IAM-01"),
        &s.access,
        Some(json!({ "status": "implemented", "owner_id": s.user_id, "due_date": "2027-03-31", "notes": "MFA on every account" })),
    )
    .await;
    assert_eq!(status, 200, "{ctl}");
    assert_eq!(ctl["status"], "implemented");
    assert_eq!(ctl["due_date"], "2027-03-31");
    // A partial update keeps the other fields; null clears one.
    let (_, ctl) = call(
        &app,
        Method::PATCH,
        &format!("{base}/IAM-01"),
        &s.access,
        Some(json!({ "notes": null })),
    )
    .await;
    assert_eq!(ctl["status"], "implemented");
    assert_eq!(ctl["owner_id"], s.user_id.as_str());
    assert_eq!(ctl["notes"], Value::Null);

    let (_, filtered) = call(
        &app,
        Method::GET,
        &format!("{base}?status=implemented"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    let (_, detail) = call(
        &app,
        Method::GET,
        &format!("{base}/IAM-01"),
        &s.access,
        None,
    )
    .await;
    assert!(!detail["requirements"].as_array().unwrap().is_empty());

    // Cursor pagination walks every control exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}?limit=40&cursor={c}"),
            None => format!("{base}?limit=40"),
        };
        let (status, page) = call(&app, Method::GET, &path, &s.access, None).await;
        assert_eq!(status, 200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["key"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let total = assay_core::catalogue::builtin().controls().len();
    assert_eq!(seen.len(), total);
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), total);

    // The other organisation sees none of this.
    let (_, theirs) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/controls/IAM-01", other.org_id),
        &other.access,
        None,
    )
    .await;
    assert_eq!(theirs["status"], "not_started");
}

#[tokio::test]
async fn bulk_updates_change_all_or_nothing() {
    let app = TestApp::spawn().await;
    let s = app.signup("bulk@example.com", "Bulk").await;
    let base = format!("/api/v1/orgs/{}/controls", s.org_id);
    let bad = json!({ "updates": [
        { "key": "IAM-01", "status": "implemented" },
        { "key": "NO-SUCH", "status": "implemented" },
        { "key": "IAM-02", "status": "not_applicable" },
    ]});
    let (status, err) = call(
        &app,
        Method::POST,
        &format!("{base}/bulk"),
        &s.access,
        Some(bad),
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = err["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["updates[1].key", "updates[2].justification"]);
    let (_, one) = call(
        &app,
        Method::GET,
        &format!("{base}/IAM-01"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(
        one["status"], "not_started",
        "a failed bulk update changed something"
    );

    let good = json!({ "updates": [
        { "key": "IAM-01", "status": "implemented" },
        { "key": "IAM-02", "status": "not_applicable", "justification": "No privileged accounts exist" },
    ]});
    let (status, done) = call(
        &app,
        Method::POST,
        &format!("{base}/bulk"),
        &s.access,
        Some(good),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["updated"], 2);
    let (_, audit) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/audit?action=control.updated", s.org_id),
        &s.access,
        None,
    )
    .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn posture_exports_as_csv_and_xlsx() {
    let app = TestApp::spawn().await;
    let s = app.signup("export@example.com", "Exporter").await;
    let base = format!("/api/v1/orgs/{}/controls", s.org_id);
    call(
        &app,
        Method::PATCH,
        &format!("{base}/IAM-01"),
        &s.access,
        Some(json!({ "status": "implemented", "notes": "MFA, \"everywhere\"" })),
    )
    .await;

    let csv = app
        .with_token(Method::GET, &format!("{base}/export"), &s.access)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("control,title,domain,status")
    );
    let iam = text.lines().find(|l| l.starts_with("IAM-01,")).unwrap();
    assert!(
        iam.contains(",implemented,") && iam.contains("\"MFA, \"\"everywhere\"\"\""),
        "{iam}"
    );
    assert_eq!(
        text.lines().count(),
        assay_core::catalogue::builtin().controls().len() + 1
    );

    let xlsx = app
        .with_token(
            Method::GET,
            &format!("{base}/export?format=xlsx"),
            &s.access,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(xlsx.status(), 200);
    let bytes = xlsx.bytes().await.unwrap();
    assert_eq!(&bytes[..2], b"PK", "an XLSX file is a zip archive");

    let (status, _) = call(
        &app,
        Method::GET,
        &format!("{base}/export?format=pdf"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 422);
}

fn profile() -> Value {
    json!({
        "industry": "technology", "employee_count": 40, "revenue_band": "1m_to_10m", "country": "GB",
        "data_sensitivity": "medium", "handles_personal_data": true, "handles_payment_data": false,
        "handles_health_data": false, "critical_infrastructure": false, "international_operations": true,
        "cloud_providers": ["aws"], "planned_frameworks": ["iso27001"]
    })
}

#[tokio::test]
async fn business_profile_drives_explained_recommendations() {
    let app = TestApp::spawn().await;
    let s = app.signup("profile@example.com", "Profiled").await;
    let base = format!("/api/v1/orgs/{}", s.org_id);
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("{base}/profile"),
            &s.access,
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("{base}/framework-recommendations"),
            &s.access,
            None
        )
        .await
        .0,
        404
    );

    let mut bad = profile();
    bad["country"] = json!("UK");
    bad["employee_count"] = json!(-3);
    let (status, err) = call(
        &app,
        Method::PUT,
        &format!("{base}/profile"),
        &s.access,
        Some(bad),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    let mut bad = profile();
    bad["country"] = json!("UK");
    let (status, err) = call(
        &app,
        Method::PUT,
        &format!("{base}/profile"),
        &s.access,
        Some(bad),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(err["error"]["details"]["fields"][0]["field"], "country");

    let (status, _) = call(
        &app,
        Method::PUT,
        &format!("{base}/profile"),
        &s.access,
        Some(profile()),
    )
    .await;
    assert_eq!(status, 200);
    let (_, stored) = call(
        &app,
        Method::GET,
        &format!("{base}/profile"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(stored["profile"]["country"], "GB");

    let (status, recs) = call(
        &app,
        Method::GET,
        &format!("{base}/framework-recommendations"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let items = recs["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        assay_core::catalogue::builtin().frameworks().len()
    );
    let gdpr = items.iter().find(|r| r["framework"] == "uk-gdpr").unwrap();
    assert_eq!(gdpr["priority"], "required_by_law", "{gdpr}");
    assert!(
        items
            .iter()
            .all(|r| !r["reasons"].as_array().unwrap().is_empty() || r["score"] == 0)
    );
}

#[tokio::test]
async fn readiness_is_computed_from_control_states() {
    let app = TestApp::spawn().await;
    let s = app.signup("ready@example.com", "Readiness").await;
    let base = format!("/api/v1/orgs/{}", s.org_id);
    call(
        &app,
        Method::PUT,
        &format!("{base}/frameworks/cyber-essentials"),
        &s.access,
        None,
    )
    .await;
    let (status, before) = call(
        &app,
        Method::GET,
        &format!("{base}/readiness"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{before}");
    let ce = &before["frameworks"][0];
    assert_eq!(ce["score"], 0);
    let action = ce["top_actions"][0]["control"].as_str().unwrap().to_owned();

    // Implementing the top action raises the score; nothing is constant.
    call(
        &app,
        Method::PATCH,
        &format!("{base}/controls/{action}"),
        &s.access,
        Some(json!({ "status": "implemented" })),
    )
    .await;
    let (_, after) = call(
        &app,
        Method::GET,
        &format!("{base}/readiness"),
        &s.access,
        None,
    )
    .await;
    let raised = after["frameworks"][0]["percent"].as_f64().unwrap();
    assert!(raised > 0.0, "{after}");

    // Everything implemented scores 100.
    let keys: Vec<Value> = assay_core::catalogue::builtin()
        .controls()
        .iter()
        .map(|c| json!({ "key": c.key, "status": "implemented" }))
        .collect();
    for chunk in keys.chunks(100) {
        let (status, _) = call(
            &app,
            Method::POST,
            &format!("{base}/controls/bulk"),
            &s.access,
            Some(json!({ "updates": chunk })),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (_, full) = call(
        &app,
        Method::GET,
        &format!("{base}/readiness"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(full["frameworks"][0]["score"], 100);
    assert_eq!(full["overall"]["score"], 100);
}

#[tokio::test]
async fn frameworks_export_as_oscal_and_yaml_that_read_back() {
    let app = TestApp::spawn().await;
    let s = app.signup("oscal@example.com", "Exports").await;
    let oscal = app
        .with_token(Method::GET, "/api/v1/frameworks/nist-csf/export", &s.access)
        .send()
        .await
        .unwrap();
    assert_eq!(oscal.status(), 200);
    let text = oscal.text().await.unwrap();
    let back = assay_core::catalogue::parse_oscal_catalog(
        &text,
        &assay_core::catalogue::ImportOptions::named("nist-csf.oscal.json"),
    )
    .unwrap();
    assert_eq!(back.assessable().count(), 106);
    let yaml = app
        .with_token(
            Method::GET,
            "/api/v1/frameworks/uk-gdpr/export?format=yaml",
            &s.access,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(yaml.status(), 200);
    let fw = assay_core::catalogue::parse_framework("uk-gdpr.yaml", &yaml.text().await.unwrap())
        .unwrap();
    assert_eq!(fw.key, "uk-gdpr");
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/v1/frameworks/uk-gdpr/export?format=docx",
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 422);
}

/// The controls list and readiness are served from a per-node posture cache: the node that
/// took a write answers with it at once; another node catches up within the cache's TTL
/// (`posture_cache::POSTURE_TTL`), polled here rather than slept.
#[tokio::test]
async fn cached_posture_reads_follow_writes() {
    let first = TestApp::spawn().await;
    let second = TestApp::builder().database_of(&first).spawn().await;
    let s = first.signup("cache@example.com", "Cached").await;
    let org = &s.org_id;
    let page = format!("/api/v1/orgs/{org}/controls?limit=5");
    let status_of = |page: &Value| page["items"][0]["status"].as_str().unwrap().to_owned();
    let (_, before) = call(&first, Method::GET, &page, &s.access, None).await;
    let (_, before_second) = call(&second, Method::GET, &page, &s.access, None).await;
    assert_eq!(status_of(&before), "not_started");
    assert_eq!(status_of(&before_second), "not_started");
    let key = before["items"][0]["key"].as_str().unwrap().to_owned();
    let (patched, _) = call(
        &first,
        Method::PATCH,
        &format!("/api/v1/orgs/{org}/controls/{key}"),
        &s.access,
        Some(json!({ "status": "implemented" })),
    )
    .await;
    assert_eq!(patched, 200);
    // The writing node: at once, for the page it had rendered and for a new view.
    let (_, after) = call(&first, Method::GET, &page, &s.access, None).await;
    assert_eq!(status_of(&after), "implemented");
    let (_, filtered) = call(
        &first,
        Method::GET,
        &format!("/api/v1/orgs/{org}/controls?status=implemented"),
        &s.access,
        None,
    )
    .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    // The other node: within the TTL.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, now) = call(&second, Method::GET, &page, &s.access, None).await;
        if status_of(&now) == "implemented" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second node never saw the change"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
