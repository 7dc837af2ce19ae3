//! The OpenAPI description stays in step with the router, and says the truth about bodies.
//!
//! The route table is the description itself (`assay_api::openapi::routes()`), not a
//! second hand-written list: a list next to the spec could drift from the spec just as the
//! spec can drift from the router, while the spec is what clients read. axum's `Router`
//! cannot list its routes, so the router's side is checked twice over: by HTTP (every
//! documented operation reaches a handler; every other method on a documented path gets the
//! router's 405) and by reading the one place routes are registered, `router_with` in
//! `src/lib.rs`, whose `.route(...)` calls must name exactly the documented operations.

mod support;

use assay_api::openapi;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::TestApp;

fn spec() -> Value {
    serde_json::to_value(openapi::document()).unwrap()
}

/// A concrete URL for a path template: every parameter gets a well-formed value that names
/// nothing that exists.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{org_id}" | "{user_id}" | "{invitation_id}" => uuid::Uuid::new_v4().to_string(),
            s if s.starts_with('{') => "nothing-here".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a response is the router's own fallback (no route, or no such method on it)
/// rather than an answer from a handler or its extractors.
async fn is_router_fallback(res: reqwest::Response) -> Option<String> {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    let fallback = (status == 404 && code == "not_found" && message == "no such resource")
        || (status == 405 && code == "method_not_allowed");
    fallback.then(|| format!("{status} {code}"))
}

async fn send(app: &TestApp, method: &Method, path: &str) -> reqwest::Response {
    let mut req = app.client.request(method.clone(), app.url(path));
    if [Method::POST, Method::PUT, Method::PATCH].contains(method) {
        req = req.json(&json!({}));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_description_is_served_with_security_schemes() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, spec());
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
    let schemes = &served["components"]["securitySchemes"];
    assert_eq!(schemes["bearer_jwt"]["scheme"], "bearer");
    assert_eq!(schemes["bearer_jwt"]["bearerFormat"], "JWT");
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["bearerFormat"], "assay_<id>_<secret>");
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let app = TestApp::builder()
        .config(|c| {
            c.rate_limits.auth_per_minute = 10_000;
            c.rate_limits.api_per_minute = 10_000;
        })
        .spawn()
        .await;
    let routes = openapi::routes();
    assert!(routes.len() >= 25, "{routes:?}");
    let mut unrouted = Vec::new();
    for (method, path) in &routes {
        let res = send(&app, method, &concrete(path)).await;
        if let Some(fallback) = is_router_fallback(res).await {
            unrouted.push(format!("{method} {path}: {fallback}"));
        }
    }
    assert!(
        unrouted.is_empty(),
        "documented but not served: {unrouted:#?}"
    );
}

#[tokio::test]
async fn other_methods_on_documented_paths_are_not_served() {
    let app = TestApp::spawn().await;
    let routes = openapi::routes();
    let paths: BTreeSet<&str> = routes.iter().map(|(_, p)| p.as_str()).collect();
    let mut undocumented = Vec::new();
    for path in paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if routes.iter().any(|(m, p)| *m == method && p == path) {
                continue;
            }
            let res = send(&app, &method, &concrete(path)).await;
            if is_router_fallback(res).await.is_none() {
                undocumented.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:#?}"
    );
}

/// `(METHOD, path)` for every `.route("path", get(..).post(..))` in `src/lib.rs`.
fn routes_registered_in_source() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/lib.rs");
    let mut out = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        // The call's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(i)
            })
            .expect("balanced parentheses");
        let args = &rest[..end];
        let path = args
            .trim_start()
            .strip_prefix('"')
            .and_then(|p| p.split('"').next())
            .expect("route path literal");
        for method in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{method}(");
            let called = args.match_indices(&call).any(|(i, _)| {
                !args[..i]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            });
            if called {
                out.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    out
}

#[test]
fn the_routes_registered_in_the_router_are_the_documented_ones() {
    let registered = routes_registered_in_source();
    let documented: BTreeSet<(String, String)> = openapi::routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p))
        .collect();
    assert!(registered.len() >= 25, "parsed too few: {registered:?}");
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unregistered: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty() && unregistered.is_empty(),
        "registered but undocumented: {undocumented:?}\ndocumented but unregistered: {unregistered:?}"
    );
}

fn operations(spec: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.to_uppercase(), path.clone(), op));
        }
    }
    out
}

#[test]
fn every_error_response_uses_the_shared_error_shape() {
    let spec = spec();
    let error_ref = format!("#/components/schemas/{}", openapi::ERROR_SCHEMA);
    let openai_error_ref = "#/components/schemas/OpenAiErrorResponse".to_owned();
    let body = &spec["components"]["schemas"]["ErrorBody"];
    let props: BTreeSet<&str> = body["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        props,
        BTreeSet::from(["code", "message", "details", "request_id"])
    );
    let mut wrong = Vec::new();
    for (method, path, op) in operations(&spec) {
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let responses = op["responses"].as_object().unwrap();
        if secured && !responses.contains_key("401") {
            wrong.push(format!("{method} {path}: secured but no 401"));
        }
        for (status, res) in responses {
            let code: u16 = status.parse().unwrap();
            // The readiness probe answers 503 with its report, by design.
            if code < 400 || (path == "/health/ready" && code == 503) {
                continue;
            }
            // The OpenAI-compatible routes answer in OpenAI's error shape, router and body-limit
            // errors included.
            let expected = if path.starts_with("/v1/") {
                &openai_error_ref
            } else {
                &error_ref
            };
            if res["content"]["application/json"]["schema"]["$ref"] != expected.as_str() {
                wrong.push(format!("{method} {path} {status}: {res}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn documented_roles_are_the_roles_in_core() {
    let spec = spec();
    let documented: Vec<&str> = spec["components"]["schemas"]["Role"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let core: Vec<&str> = assay_core::Role::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(documented, core);
}

/// Check `value` against a schema of the description: every property the body has is
/// declared, and every required property is present (recursively through `$ref`, arrays
/// and nullable `oneOf`s).
fn conforms(spec: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return conforms(
            spec,
            &spec["components"]["schemas"][name],
            value,
            at,
            problems,
        );
    }
    if let Some(alternatives) = schema["oneOf"].as_array() {
        if value.is_null() && alternatives.iter().any(|a| a["type"] == "null") {
            return;
        }
        let non_null: Vec<&Value> = alternatives
            .iter()
            .filter(|a| a["type"] != "null")
            .collect();
        if let [only] = non_null.as_slice() {
            return conforms(spec, only, value, at, problems);
        }
        return;
    }
    match value {
        Value::Object(map) if schema.get("properties").is_some() => {
            let props = schema["properties"].as_object().unwrap();
            for (key, v) in map {
                match props.get(key) {
                    Some(s) => conforms(spec, s, v, &format!("{at}.{key}"), problems),
                    None => problems.push(format!("{at}.{key}: not in the schema")),
                }
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let key = required.as_str().unwrap();
                if !map.contains_key(key) {
                    problems.push(format!("{at}.{key}: required but absent"));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                conforms(
                    spec,
                    &schema["items"],
                    item,
                    &format!("{at}[{i}]"),
                    problems,
                );
            }
        }
        Value::String(s) => {
            if let Some(allowed) = schema["enum"].as_array()
                && !allowed.iter().any(|a| a == s)
            {
                problems.push(format!("{at}: {s:?} is not one of {allowed:?}"));
            }
        }
        _ => {}
    }
}

fn response_schema<'a>(spec: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let schema = &spec["paths"][path][method.to_lowercase()]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(!schema.is_null(), "{method} {path} {status} has no schema");
    schema
}

/// Real responses of the main endpoints have the documented shapes.
#[tokio::test]
async fn responses_match_their_schemas() {
    let app = TestApp::builder()
        .config(|c| c.rate_limits.auth_per_minute = 1000)
        .spawn()
        .await;
    let spec = spec();
    let owner = app.signup("schema-owner@example.com", "Shapes").await;
    let org = format!("/api/v1/orgs/{}", owner.org_id);
    let problems = std::cell::RefCell::new(Vec::new());
    let check_schema = |schema: &Value, value: &Value, at: &str| {
        conforms(&spec, schema, value, at, &mut problems.borrow_mut());
    };
    let check = |method: &str, path: &str, status: u16, value: &Value| {
        let schema = response_schema(&spec, method, path, status);
        check_schema(schema, value, &format!("{method} {path} {status}"));
    };
    let call = |method: Method, url: String, body: Option<Value>| {
        let mut req = app.with_token(method, &url, &owner.access);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (s, v) = call(Method::GET, "/health/live".into(), None).await;
    check("GET", "/health/live", s, &v);
    let (s, v) = call(Method::GET, "/health/ready".into(), None).await;
    check("GET", "/health/ready", s, &v);
    let (s, v) = call(
        Method::POST,
        "/api/v1/auth/login".into(),
        Some(json!({ "email": "schema-owner@example.com", "password": support::PASSWORD })),
    )
    .await;
    check("POST", "/api/v1/auth/login", s, &v);
    let (s, v) = call(Method::GET, "/api/v1/me".into(), None).await;
    check("GET", "/api/v1/me", s, &v);
    let (s, v) = call(Method::GET, "/api/v1/orgs".into(), None).await;
    check("GET", "/api/v1/orgs", s, &v);
    let (s, v) = call(Method::GET, format!("{org}/members"), None).await;
    check("GET", "/api/v1/orgs/{org_id}/members", s, &v);
    let (s, v) = call(
        Method::POST,
        format!("{org}/invitations"),
        Some(json!({ "email": "invitee@example.com", "role": "auditor" })),
    )
    .await;
    check("POST", "/api/v1/orgs/{org_id}/invitations", s, &v);
    let (s, v) = call(Method::GET, format!("{org}/invitations"), None).await;
    check("GET", "/api/v1/orgs/{org_id}/invitations", s, &v);
    let (s, v) = call(
        Method::POST,
        format!("{org}/api-keys"),
        Some(json!({ "name": "ci", "scopes": ["read", "write"] })),
    )
    .await;
    let key = v["key"].as_str().unwrap_or_default().to_owned();
    check("POST", "/api/v1/orgs/{org_id}/api-keys", s, &v);
    let (s, v) = call(Method::GET, format!("{org}/api-keys"), None).await;
    check("GET", "/api/v1/orgs/{org_id}/api-keys", s, &v);
    let (s, v) = call(Method::GET, format!("{org}/audit"), None).await;
    check("GET", "/api/v1/orgs/{org_id}/audit", s, &v);
    let (s, v) = call(Method::GET, format!("{org}/audit/verify"), None).await;
    check("GET", "/api/v1/orgs/{org_id}/audit/verify", s, &v);
    let (s, v) = call(
        Method::POST,
        "/api/v1/orgs".into(),
        Some(json!({ "name": "Second" })),
    )
    .await;
    check("POST", "/api/v1/orgs", s, &v);
    // An API key as the caller of /me.
    let res = app
        .with_token(Method::GET, "/api/v1/me", &key)
        .send()
        .await
        .unwrap();
    let (s, v) = (res.status().as_u16(), res.json::<Value>().await.unwrap());
    check("GET", "/api/v1/me", s, &v);
    // Errors: the router's 404, an extractor's 401, a handler's 422 with field details.
    let res = app.get("/api/v1/no-such-thing").await;
    let v: Value = res.json().await.unwrap();
    check_schema(
        &json!({ "$ref": "#/components/schemas/ErrorResponse" }),
        &v,
        "fallback 404",
    );
    let (s, v) = call(
        Method::POST,
        format!("{org}/invitations"),
        Some(json!({ "email": "not-an-email", "role": "viewer" })),
    )
    .await;
    assert_eq!(s, 422);
    check("POST", "/api/v1/orgs/{org_id}/invitations", s, &v);
    let res = app.get("/api/v1/me").await;
    let (s, v) = (res.status().as_u16(), res.json::<Value>().await.unwrap());
    assert_eq!(s, 401);
    check("GET", "/api/v1/me", s, &v);
    let problems = problems.into_inner();
    assert!(problems.is_empty(), "{problems:#?}");
}
