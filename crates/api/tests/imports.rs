//! Importing framework packs through HTTP (R-21): OSCAL, Prowler and YAML files become
//! frameworks of one organisation only — adoptable, scored, listed — or, from a platform
//! admin, of every organisation; bad files are refused with the path of each problem and
//! leave nothing behind; keys never collide within what one organisation sees.

mod support;

use assay_core::OrgCtx;
use assay_store::ConnectionTrait;
use assay_store::repo::imported_frameworks;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Session, TestApp, call};

const OSCAL: &str = include_str!("../../core/tests/fixtures/oscal-catalog-small.json");
const PROWLER: &str = include_str!("../../core/tests/fixtures/prowler-provider.json");

const YAML: &str = r#"format: assay.framework.v1
framework:
  key: acme-baseline
  name: ACME Security Baseline
  version: "1.0"
  publisher: ACME Ltd
  licence: { id: CC-BY-4.0, name: Creative Commons Attribution 4.0 }
  provenance: { source: ACME baseline v1.0 }
  description: A short baseline for ACME's suppliers.
requirements:
  - { ref: AC, title: Access control, description: Limit who reaches what. }
  - { ref: AC-1, parent: AC, title: MFA, description: Every remote sign-in uses MFA. }
  - { ref: AC-2, parent: AC, title: Leavers, description: Leavers lose access on their last day. }
  - { ref: LOG-1, title: Central logging, description: Security logs are kept for a year. }
"#;

/// POST a file as the raw body to an import endpoint (`query` like `?format=yaml`).
async fn upload(
    app: &TestApp,
    path: &str,
    token: &str,
    content_type: &str,
    file: &str,
) -> (u16, Value) {
    let res = app
        .with_token(Method::POST, path, token)
        .header("content-type", content_type)
        .body(file.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn import_path(s: &Session, query: &str) -> String {
    format!("/api/v1/orgs/{}/frameworks/import{query}", s.org_id)
}

fn keys(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect()
}

fn fields(err: &Value) -> Vec<String> {
    err["error"]["details"]["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|x| x["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Imported packs stored for these organisations and platform-wide, read through the data
/// layer rather than the API.
async fn stored_rows(app: &TestApp, orgs: &[&Session]) -> usize {
    let db = app.state.db().primary();
    let mut n = imported_frameworks::list_platform(db).await.unwrap().len();
    for s in orgs {
        let ctx = OrgCtx::for_system(s.org_id.parse().unwrap());
        n += imported_frameworks::list_for_org(db, &ctx)
            .await
            .unwrap()
            .len();
    }
    n
}

#[tokio::test]
async fn oscal_prowler_and_yaml_become_frameworks_of_one_organisation_only() {
    let app = TestApp::spawn().await;
    let a = app.signup("importer@example.com", "Importer").await;
    let b = app.signup("neighbour@example.com", "Neighbour").await;

    let (status, oscal) = upload(
        &app,
        &import_path(&a, ""),
        &a.access,
        "application/json",
        OSCAL,
    )
    .await;
    assert_eq!(status, 201, "{oscal}");
    assert_eq!(oscal["framework"]["key"], "example-control-catalog");
    assert_eq!(oscal["import"]["source_format"], "oscal");
    assert_eq!(oscal["import"]["scope"], "org");
    assert_eq!(oscal["framework"]["requirements"], 6);

    let (status, prowler) = upload(
        &app,
        &import_path(&a, "?filename=example_1.0_aws.json"),
        &a.access,
        "application/json",
        PROWLER,
    )
    .await;
    assert_eq!(status, 201, "{prowler}");
    assert_eq!(prowler["framework"]["key"], "prowler-example_1.0_aws");
    assert_eq!(
        prowler["import"]["original_filename"],
        "example_1.0_aws.json"
    );
    assert!(
        prowler["framework"]["requirements_with_checks"]
            .as_u64()
            .unwrap()
            >= 3
    );

    let (status, yaml) = upload(
        &app,
        &import_path(&a, "?format=yaml&filename=acme.yaml"),
        &a.access,
        "application/yaml",
        YAML,
    )
    .await;
    assert_eq!(status, 201, "{yaml}");
    assert_eq!(yaml["framework"]["key"], "acme-baseline");
    assert_eq!(yaml["framework"]["assessable_requirements"], 3);

    // The importing organisation lists all three; the neighbour sees none of them.
    let (_, mine) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/frameworks/imports", a.org_id),
        &a.access,
        None,
    )
    .await;
    assert_eq!(
        keys(&mine),
        [
            "acme-baseline",
            "example-control-catalog",
            "prowler-example_1.0_aws"
        ]
    );
    let (_, theirs) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/frameworks/imports", b.org_id),
        &b.access,
        None,
    )
    .await;
    assert!(keys(&theirs).is_empty(), "{theirs}");
    let (_, public) = call(&app, Method::GET, "/api/v1/frameworks", &b.access, None).await;
    assert!(!keys(&public).contains(&"acme-baseline".to_owned()));
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/v1/frameworks/acme-baseline",
        &a.access,
        None,
    )
    .await;
    assert_eq!(
        status, 404,
        "org-private packs are not in the public catalogue"
    );
    // Through the organisation, its own pack reads and exports; the neighbour's cannot.
    let (status, detail) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/frameworks/acme-baseline", a.org_id),
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["key"], "acme-baseline");
    assert!(!detail["items"].as_array().unwrap().is_empty());
    let exported = app
        .with_token(
            Method::GET,
            &format!(
                "/api/v1/orgs/{}/frameworks/acme-baseline/export?format=yaml",
                a.org_id
            ),
            &a.access,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(exported.status(), 200);
    assert!(exported.text().await.unwrap().contains("acme-baseline"));
    for path in ["", "/export"] {
        let (status, _) = call(
            &app,
            Method::GET,
            &format!("/api/v1/orgs/{}/frameworks/acme-baseline{path}", b.org_id),
            &b.access,
            None,
        )
        .await;
        assert_eq!(status, 404, "the neighbour cannot read {path:?}");
    }
    let (status, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/orgs/{}/frameworks/acme-baseline", b.org_id),
        &b.access,
        None,
    )
    .await;
    assert_eq!(status, 404, "another organisation cannot adopt it");
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/controls?framework=acme-baseline", b.org_id),
        &b.access,
        None,
    )
    .await;
    assert_eq!(status, 422);

    // Adopted, it is listed and scored like any framework: nothing maps to it yet, so every
    // assessable requirement is missing.
    let (status, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/orgs/{}/frameworks/acme-baseline", a.org_id),
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 201);
    let (_, adopted) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/frameworks", a.org_id),
        &a.access,
        None,
    )
    .await;
    assert_eq!(
        adopted["items"][0]["name"], "ACME Security Baseline",
        "{adopted}"
    );
    assert_eq!(adopted["items"][0]["assessable_requirements"], 3);
    let (status, readiness) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/readiness", a.org_id),
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{readiness}");
    let acme = readiness["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["framework"] == "acme-baseline")
        .unwrap_or_else(|| panic!("no readiness for the import: {readiness}"));
    assert_eq!(acme["breakdown"]["missing"], 3, "{acme}");
    assert_eq!(acme["score"], 0);
    let (status, controls) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/controls?framework=acme-baseline", a.org_id),
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{controls}");

    // Every import is in the organisation's audit log, with its facts.
    let (_, log) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/audit?action=framework.imported", a.org_id),
        &a.access,
        None,
    )
    .await;
    let events = log["items"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{log}");
    assert!(
        events.iter().any(|e| e["details"]["format"] == "prowler"
            && e["resource_id"] == "prowler-example_1.0_aws")
    );
}

#[tokio::test]
async fn a_bad_file_is_refused_with_the_path_of_each_problem_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let s = app.signup("careless@example.com", "Careless").await;

    let broken_yaml = YAML.replace("parent: AC, title: Leavers", "parent: NOPE, title: Leavers");
    let (status, err) = upload(
        &app,
        &import_path(&s, ""),
        &s.access,
        "application/yaml",
        &broken_yaml,
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["code"], "invalid_input");
    assert!(
        fields(&err).contains(&"requirements[2].parent".to_owned()),
        "{err}"
    );

    let broken_oscal = json!({ "catalog": {
        "uuid": "0b3a0c1e-2f6e-4a55-9a38-3a6f0b9f4d11",
        "metadata": { "title": "Broken", "version": "1", "last-modified": "2026-01-01T00:00:00Z", "oscal-version": "1.1.2" },
        "groups": [{ "id": "g", "title": "Group", "controls": [{ "title": "A control without an id" }] }]
    }});
    let (status, err) = upload(
        &app,
        &import_path(&s, ""),
        &s.access,
        "application/json",
        &broken_oscal.to_string(),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        fields(&err)
            .iter()
            .any(|f| f.starts_with("catalog.groups[0].controls[0]")),
        "{err}"
    );

    let broken_prowler = json!({ "Framework": "X", "Version": "1", "Provider": "AWS",
        "Requirements": [{ "Id": "1", "Description": "fine", "Checks": [] }, { "Description": "no id", "Checks": [] }] });
    let (status, err) = upload(
        &app,
        &import_path(&s, "?format=prowler"),
        &s.access,
        "application/json",
        &broken_prowler.to_string(),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        fields(&err)
            .iter()
            .any(|f| f.starts_with("Requirements[1]")),
        "{err}"
    );

    let (status, err) = upload(
        &app,
        &import_path(&s, ""),
        &s.access,
        "application/json",
        "{\"catalog\": [1, 2,",
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["details"]["position"]["line"].is_number(),
        "{err}"
    );

    let (status, err) = upload(
        &app,
        &import_path(&s, "?format=csv"),
        &s.access,
        "text/plain",
        YAML,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&err), ["format"]);
    let (status, err) = upload(&app, &import_path(&s, ""), &s.access, "text/plain", "  \n").await;
    assert_eq!(status, 422);
    assert_eq!(fields(&err), ["body"]);
    let (status, err) = upload(
        &app,
        &import_path(&s, "?key=Bad%20Key"),
        &s.access,
        "text/plain",
        YAML,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&err), ["key"]);

    assert_eq!(stored_rows(&app, &[&s]).await, 0, "nothing half-imported");
    let (_, log) = call(
        &app,
        Method::GET,
        &format!("/api/v1/orgs/{}/audit?action=framework.imported", s.org_id),
        &s.access,
        None,
    )
    .await;
    assert!(log["items"].as_array().unwrap().is_empty(), "{log}");
}

#[tokio::test]
async fn keys_are_unique_within_what_an_organisation_sees() {
    let app = TestApp::spawn().await;
    let s = app.signup("twice@example.com", "Twice").await;
    let other = app.signup("elsewhere@example.com", "Elsewhere").await;
    let (status, _) = upload(&app, &import_path(&s, ""), &s.access, "text/plain", YAML).await;
    assert_eq!(status, 201);
    let (status, err) = upload(&app, &import_path(&s, ""), &s.access, "text/plain", YAML).await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["details"]["field"], "key");
    // A built-in key is taken in every organisation.
    let (status, _) = upload(
        &app,
        &import_path(&s, "?key=nist-csf"),
        &s.access,
        "text/plain",
        YAML,
    )
    .await;
    assert_eq!(status, 409);
    // The same key in another organisation is its own business; a new key here works.
    let (status, _) = upload(
        &app,
        &import_path(&other, ""),
        &other.access,
        "text/plain",
        YAML,
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = upload(
        &app,
        &import_path(&s, "?key=acme-v2"),
        &s.access,
        "text/plain",
        YAML,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(stored_rows(&app, &[&s, &other]).await, 3);
}

/// Set the platform-admin flag the way an operator would: in the database.
async fn make_platform_admin(app: &TestApp, email: &str) {
    app.state
        .db()
        .primary()
        .execute_unprepared(&format!(
            "UPDATE users SET is_platform_admin = true WHERE email = '{email}'"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_platform_admins_import_is_seen_by_every_organisation() {
    let app = TestApp::spawn().await;
    let admin = app.signup("root@example.com", "Operator").await;
    let a = app.signup("tenant-a@example.com", "Tenant A").await;
    let b = app.signup("tenant-b@example.com", "Tenant B").await;

    // Not yet an admin: refused, audited, nothing stored.
    let (status, err) = upload(
        &app,
        "/api/v1/frameworks/import",
        &admin.access,
        "text/plain",
        YAML,
    )
    .await;
    assert_eq!(status, 403, "{err}");
    let (status, _) = upload(
        &app,
        "/api/v1/frameworks/import",
        &a.access,
        "text/plain",
        YAML,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(stored_rows(&app, &[&admin, &a, &b]).await, 0);

    make_platform_admin(&app, "root@example.com").await;
    let (status, body) = upload(
        &app,
        "/api/v1/frameworks/import",
        &admin.access,
        "application/json",
        OSCAL,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["import"]["scope"], "platform");
    let key = "example-control-catalog";

    for t in [&a, &b] {
        let (_, public) = call(&app, Method::GET, "/api/v1/frameworks", &t.access, None).await;
        assert!(keys(&public).contains(&key.to_owned()), "{public}");
        let (_, imports) = call(
            &app,
            Method::GET,
            &format!("/api/v1/orgs/{}/frameworks/imports", t.org_id),
            &t.access,
            None,
        )
        .await;
        assert_eq!(imports["items"][0]["scope"], "platform", "{imports}");
        let (status, _) = call(
            &app,
            Method::PUT,
            &format!("/api/v1/orgs/{}/frameworks/{key}", t.org_id),
            &t.access,
            None,
        )
        .await;
        assert_eq!(status, 201);
        let (_, readiness) = call(
            &app,
            Method::GET,
            &format!("/api/v1/orgs/{}/readiness", t.org_id),
            &t.access,
            None,
        )
        .await;
        assert_eq!(readiness["frameworks"][0]["framework"], key, "{readiness}");
        // Its key is taken for every organisation, and it is not theirs to delete.
        let (status, _) = upload(
            &app,
            &import_path(t, &format!("?key={key}")),
            &t.access,
            "text/plain",
            YAML,
        )
        .await;
        assert_eq!(status, 409);
        let (status, _) = call(
            &app,
            Method::DELETE,
            &format!("/api/v1/orgs/{}/frameworks/imports/{key}", t.org_id),
            &t.access,
            None,
        )
        .await;
        assert_eq!(status, 404);
    }
    let (status, detail) = call(
        &app,
        Method::GET,
        &format!("/api/v1/frameworks/{key}"),
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(detail["items"].as_array().unwrap().len(), 6);
    let res = app
        .with_token(
            Method::GET,
            &format!("/api/v1/frameworks/{key}/export?format=yaml"),
            &b.access,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("key: example-control-catalog")
    );

    // A platform key must be free everywhere: an org-private key blocks it.
    let (status, _) = upload(&app, &import_path(&a, ""), &a.access, "text/plain", YAML).await;
    assert_eq!(status, 201);
    let (status, _) = upload(
        &app,
        "/api/v1/frameworks/import",
        &admin.access,
        "text/plain",
        YAML,
    )
    .await;
    assert_eq!(status, 409);
    // The refusal and the import are in the platform audit chain.
    let chain = assay_store::repo::audit::verify_chain(app.state.db().primary(), None)
        .await
        .unwrap();
    assert!(chain.first_broken.is_none());
    assert!(chain.events_checked >= 3, "{chain:?}");
}

#[tokio::test]
async fn an_import_is_deleted_only_when_not_adopted() {
    let app = TestApp::spawn().await;
    let s = app.signup("tidy@example.com", "Tidy").await;
    let other = app.signup("nosy@example.com", "Nosy").await;
    let (status, _) = upload(&app, &import_path(&s, ""), &s.access, "text/plain", YAML).await;
    assert_eq!(status, 201);
    let fw = format!("/api/v1/orgs/{}/frameworks/acme-baseline", s.org_id);
    let del = format!("/api/v1/orgs/{}/frameworks/imports/acme-baseline", s.org_id);
    assert_eq!(call(&app, Method::PUT, &fw, &s.access, None).await.0, 201);

    let (status, err) = call(&app, Method::DELETE, &del, &s.access, None).await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(stored_rows(&app, &[&s, &other]).await, 1);
    // Another organisation cannot reach it at all.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!(
            "/api/v1/orgs/{}/frameworks/imports/acme-baseline",
            other.org_id
        ),
        &other.access,
        None,
    )
    .await;
    assert_eq!(status, 404);

    assert_eq!(
        call(&app, Method::DELETE, &fw, &s.access, None).await.0,
        204
    );
    assert_eq!(
        call(&app, Method::DELETE, &del, &s.access, None).await.0,
        204
    );
    assert_eq!(stored_rows(&app, &[&s, &other]).await, 0);
    assert_eq!(
        call(&app, Method::DELETE, &del, &s.access, None).await.0,
        404
    );
    // Gone from the organisation's catalogue at once.
    assert_eq!(call(&app, Method::PUT, &fw, &s.access, None).await.0, 404);
    let (_, log) = call(
        &app,
        Method::GET,
        &format!(
            "/api/v1/orgs/{}/audit?action=framework.import_deleted",
            s.org_id
        ),
        &s.access,
        None,
    )
    .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1, "{log}");
}

#[tokio::test]
async fn an_import_on_one_node_is_adoptable_on_another_at_once() {
    let app = TestApp::spawn().await;
    let s = app.signup("nodes@example.com", "Nodes").await;
    // A second node of the same deployment (SQLite file shared) that built its view first.
    let second = TestApp::builder().database_of(&app).spawn().await;
    let (_, before) = call(
        &second,
        Method::GET,
        &format!("/api/v1/orgs/{}/readiness", s.org_id),
        &s.access,
        None,
    )
    .await;
    assert!(before["frameworks"].as_array().unwrap().is_empty());
    let (status, _) = upload(&app, &import_path(&s, ""), &s.access, "text/plain", YAML).await;
    assert_eq!(status, 201);
    let (status, body) = call(
        &second,
        Method::PUT,
        &format!("/api/v1/orgs/{}/frameworks/acme-baseline", s.org_id),
        &s.access,
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
}
