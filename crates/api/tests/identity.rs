//! Identity and access through HTTP: accounts, sessions, token attacks, tenant isolation,
//! invitations, API keys, audit, throttling and bad input.

mod support;

use assay_auth::AccessClaims;
use base64::Engine;
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use support::{PASSWORD, Session, TestApp};

async fn body(res: reqwest::Response) -> Value {
    res.json().await.unwrap()
}

async fn status_and_code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let b: Value = res.json().await.unwrap_or(Value::Null);
    (
        status,
        b["error"]["code"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.with_token(Method::GET, "/api/v1/me", token)
        .send()
        .await
        .unwrap()
}

async fn count_events(app: &TestApp, action: &str) -> i64 {
    let row = app
        .state
        .db()
        .primary()
        .query_one_raw(sea_orm::Statement::from_string(
            app.state.db().primary().get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM audit_events WHERE action = '{action}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn register_login_and_me_show_role_and_permissions() {
    let app = TestApp::spawn().await;
    let s = app.signup("Alice@Example.com", "Acme").await;
    let me_body = body(me(&app, &s.access).await).await;
    assert_eq!(me_body["user"]["email"], "alice@example.com");
    assert_eq!(me_body["memberships"][0]["role"], "owner");
    assert!(
        me_body["memberships"][0]["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "api_keys.manage")
    );

    let login = app
        .post_json(
            "/api/v1/auth/login",
            json!({ "email": "alice@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(login.status(), 200);
    let b = body(login).await;
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 900);
    assert_eq!(b["org"]["id"], s.org_id.as_str());
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same_then_lock() {
    let app = TestApp::builder()
        .config(|c| c.rate_limits.auth_per_minute = 1000)
        .spawn()
        .await;
    app.signup("bob@example.com", "Bobs").await;
    let wrong = app
        .post_json(
            "/api/v1/auth/login",
            json!({ "email": "bob@example.com", "password": "not-the-password-1" }),
        )
        .await;
    let unknown = app
        .post_json(
            "/api/v1/auth/login",
            json!({ "email": "nobody@example.com", "password": "not-the-password-1" }),
        )
        .await;
    let (a, b) = (status_and_code(wrong).await, status_and_code(unknown).await);
    assert_eq!(a, (401, "invalid_credentials".into()));
    assert_eq!(a, b);
    // Failures 2..5 on bob: the fifth locks the account with Retry-After.
    let mut last = None;
    for _ in 0..4 {
        last = Some(
            app.post_json(
                "/api/v1/auth/login",
                json!({ "email": "bob@example.com", "password": "still-wrong-pass" }),
            )
            .await,
        );
    }
    let locked = last.unwrap();
    assert_eq!(locked.status(), 429);
    assert!(locked.headers().get("retry-after").is_some());
    // Even the right password waits until the lock passes.
    let right = app
        .post_json(
            "/api/v1/auth/login",
            json!({ "email": "bob@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status_and_code(right).await, (429, "login_locked".into()));
    assert!(count_events(&app, "auth.login_failed").await >= 5);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_kills_the_family() {
    let app = TestApp::spawn().await;
    let s = app.signup("carol@example.com", "Carols").await;
    let first = app
        .post_json(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": s.refresh }),
        )
        .await;
    assert_eq!(first.status(), 200);
    let rotated = body(first).await;
    let new_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, s.refresh);
    assert_eq!(me(&app, &new_access).await.status(), 200);

    // Replay the old token: refused, and the whole family dies.
    let replay = app
        .post_json(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": s.refresh }),
        )
        .await;
    assert_eq!(
        status_and_code(replay).await,
        (401, "invalid_refresh_token".into())
    );
    let after = app
        .post_json(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": new_refresh }),
        )
        .await;
    assert_eq!(after.status(), 401);
    assert_eq!(
        status_and_code(me(&app, &new_access).await).await,
        (401, "token_revoked".into())
    );
    assert_eq!(count_events(&app, "auth.refresh_reuse_detected").await, 1);
}

#[tokio::test]
async fn logout_and_logout_all_end_sessions() {
    let app = TestApp::spawn().await;
    let s = app.signup("dan@example.com", "Dans").await;
    let other = body(
        app.post_json(
            "/api/v1/auth/login",
            json!({ "email": "dan@example.com", "password": PASSWORD }),
        )
        .await,
    )
    .await;
    let other_access = other["access_token"].as_str().unwrap().to_owned();

    let out = app
        .with_token(Method::POST, "/api/v1/auth/logout", &s.access)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(
        status_and_code(me(&app, &s.access).await).await,
        (401, "token_revoked".into())
    );
    assert_eq!(
        app.post_json(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": s.refresh })
        )
        .await
        .status(),
        401
    );
    // The other session is untouched by a plain logout...
    assert_eq!(me(&app, &other_access).await.status(), 200);
    // ...and ended by logout-all.
    let all = app
        .with_token(Method::POST, "/api/v1/auth/logout-all", &other_access)
        .send()
        .await
        .unwrap();
    assert_eq!(body(all).await["sessions_revoked"], 1);
    assert_eq!(me(&app, &other_access).await.status(), 401);
    let refresh = other["refresh_token"].as_str().unwrap();
    assert_eq!(
        app.post_json("/api/v1/auth/refresh", json!({ "refresh_token": refresh }))
            .await
            .status(),
        401
    );
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn token_attacks_are_rejected() {
    let app = TestApp::spawn().await;
    let s = app.signup("eve@example.com", "Eves").await;
    let good: AccessClaims = app.state.identity().tokens.verify(&s.access).unwrap();
    let sign = |c: &AccessClaims| app.state.identity().tokens.sign(c).unwrap();
    let now = chrono::Utc::now().timestamp();

    let mut expired = good.clone();
    expired.exp = now - 3600;
    expired.iat = now - 7200;
    expired.nbf = now - 7200;
    let mut future = good.clone();
    future.nbf = now + 3600;
    let mut wrong_aud = good.clone();
    wrong_aud.aud = "someone-else".into();
    let mut wrong_iss = good.clone();
    wrong_iss.iss = "evil".into();
    let mut refresh_typ = good.clone();
    refresh_typ.typ = "refresh".into();

    let parts: Vec<&str> = s.access.split('.').collect();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        parts[1]
    );
    let mut tampered_claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    tampered_claims["sub"] = json!(uuid::Uuid::now_v7());
    let tampered = format!("{}.{}.{}", parts[0], b64(&tampered_claims), parts[2]);
    let other_key = assay_auth::AccessTokens::new(
        assay_auth::AccessTokenConfig::new("assay", "assay-api"),
        assay_auth::Keyring::single(assay_auth::JwtKey::hs256("other", &[7u8; 32]).unwrap())
            .unwrap(),
    )
    .sign(&good)
    .unwrap();

    let cases = [
        ("alg none", alg_none),
        ("tampered payload", tampered),
        ("wrong key", other_key),
        ("expired", sign(&expired)),
        ("not yet valid", sign(&future)),
        ("wrong audience", sign(&wrong_aud)),
        ("wrong issuer", sign(&wrong_iss)),
        ("refresh typ", sign(&refresh_typ)),
        ("refresh token as bearer", s.refresh.clone()),
        ("garbage", "not.a.jwt".into()),
    ];
    for (name, token) in cases {
        let (status, _) = status_and_code(me(&app, &token).await).await;
        assert_eq!(status, 401, "{name} was accepted");
    }
    assert_eq!(me(&app, &s.access).await.status(), 200);
}

#[tokio::test]
async fn deactivated_users_and_removed_members_lose_access() {
    let app = TestApp::spawn().await;
    let owner = app.signup("own@example.com", "Owned").await;
    // Invite a second person and have them join.
    let inv = app
        .with_token(
            Method::POST,
            &format!("/api/v1/orgs/{}/invitations", owner.org_id),
            &owner.access,
        )
        .json(&json!({ "email": "member@example.com", "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(inv.status(), 201);
    let token = body(inv).await["token"].as_str().unwrap().to_owned();
    let joined = app
        .post_json(
            "/api/v1/auth/register",
            json!({ "email": "member@example.com", "password": PASSWORD, "name": "M", "invite_token": token }),
        )
        .await;
    assert_eq!(joined.status(), 201);
    let member = body(joined).await;
    let member_access = member["access_token"].as_str().unwrap().to_owned();
    let member_id = member["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(member["org"]["id"], owner.org_id.as_str());
    let org_path = format!("/api/v1/orgs/{}", owner.org_id);
    assert_eq!(
        app.with_token(Method::GET, &org_path, &member_access)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The token cannot be used twice.
    let again = app
        .post_json("/api/v1/auth/register", json!({ "email": "member@example.com", "password": PASSWORD, "name": "M", "invite_token": token }))
        .await;
    assert_eq!(again.status(), 422);

    let removed = app
        .with_token(
            Method::DELETE,
            &format!("{org_path}/members/{member_id}"),
            &owner.access,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    assert_eq!(
        app.with_token(Method::GET, &org_path, &member_access)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let uid: assay_core::UserId = member_id.parse().unwrap();
    assay_store::repo::users::deactivate(app.state.db().primary(), uid)
        .await
        .unwrap();
    app.state.identity().user_changed(uid).await;
    assert_eq!(
        status_and_code(me(&app, &member_access).await).await,
        (401, "account_inactive".into())
    );
}

#[tokio::test]
async fn organisations_are_isolated() {
    let app = TestApp::spawn().await;
    let a = app.signup("a@a.example", "Alpha").await;
    let b = app.signup("b@b.example", "Beta").await;
    for path in ["", "/members", "/invitations", "/api-keys", "/audit"] {
        let res = app
            .with_token(
                Method::GET,
                &format!("/api/v1/orgs/{}{path}", b.org_id),
                &a.access,
            )
            .send()
            .await
            .unwrap();
        let (status, _) = status_and_code(res).await;
        assert_eq!(status, 404, "org B{path} visible to A");
    }
    let mine = body(
        app.with_token(Method::GET, "/api/v1/orgs", &a.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let _ = b;
}

#[tokio::test]
async fn roles_limit_what_members_can_do_and_denials_are_audited() {
    let app = TestApp::spawn().await;
    let owner = app.signup("boss@example.com", "Roles").await;
    let inv = body(
        app.with_token(
            Method::POST,
            &format!("/api/v1/orgs/{}/invitations", owner.org_id),
            &owner.access,
        )
        .json(&json!({ "email": "viewer@example.com", "role": "viewer" }))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let viewer = body(
        app.post_json(
            "/api/v1/auth/register",
            json!({ "email": "viewer@example.com", "password": PASSWORD, "name": "V", "invite_token": inv["token"] }),
        )
        .await,
    )
    .await;
    let viewer_access = viewer["access_token"].as_str().unwrap();
    let org = format!("/api/v1/orgs/{}", owner.org_id);
    assert_eq!(
        app.with_token(Method::GET, &format!("{org}/members"), viewer_access)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let rename = app
        .with_token(Method::PATCH, &org, viewer_access)
        .json(&json!({ "name": "Hacked" }))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_code(rename).await, (403, "forbidden".into()));
    assert_eq!(count_events(&app, "permission.denied").await, 1);

    // The last owner cannot demote themself.
    let demote = app
        .with_token(
            Method::PATCH,
            &format!("{org}/members/{}", owner.user_id),
            &owner.access,
        )
        .json(&json!({ "role": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(demote.status(), 409);
}

#[tokio::test]
async fn api_keys_work_within_their_scopes_and_org() {
    let app = TestApp::spawn().await;
    let s = app.signup("keys@example.com", "Keyed").await;
    let other = app.signup("other@example.com", "Other").await;
    let created = app
        .with_token(
            Method::POST,
            &format!("/api/v1/orgs/{}/api-keys", s.org_id),
            &s.access,
        )
        .json(&json!({ "name": "ci", "scopes": ["read"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let c = body(created).await;
    let key = c["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("assay_"));
    let key_id = c["api_key"]["id"].as_str().unwrap().to_owned();

    let org = format!("/api/v1/orgs/{}", s.org_id);
    assert_eq!(
        app.with_token(Method::GET, &org, &key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let write = app
        .with_token(Method::PATCH, &org, &key)
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
    let elsewhere = app
        .with_token(Method::GET, &format!("/api/v1/orgs/{}", other.org_id), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);

    let listed = body(
        app.with_token(Method::GET, &format!("{org}/api-keys"), &s.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        !listed.to_string().contains(&key[20..]),
        "a listed key shows its secret"
    );
    assert_eq!(
        app.with_token(
            Method::DELETE,
            &format!("{org}/api-keys/{key_id}"),
            &s.access
        )
        .send()
        .await
        .unwrap()
        .status(),
        204
    );
    assert_eq!(
        status_and_code(
            app.with_token(Method::GET, &org, &key)
                .send()
                .await
                .unwrap()
        )
        .await,
        (401, "api_key_revoked".into())
    );
}

#[tokio::test]
async fn audit_log_lists_and_verifies_the_org_chain() {
    let app = TestApp::spawn().await;
    let s = app.signup("aud@example.com", "Audited").await;
    let org = format!("/api/v1/orgs/{}", s.org_id);
    app.with_token(Method::PATCH, &org, &s.access)
        .json(&json!({ "name": "Renamed" }))
        .send()
        .await
        .unwrap();
    let list = body(
        app.with_token(Method::GET, &format!("{org}/audit?limit=1"), &s.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["items"][0]["action"], "org.renamed");
    assert!(list["items"][0]["request_id"].as_str().is_some());
    let page2 = body(
        app.with_token(
            Method::GET,
            &format!("{org}/audit?cursor={}", list["next_cursor"]),
            &s.access,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(page2["items"][0]["action"], "org.created");
    let verify = body(
        app.with_token(Method::GET, &format!("{org}/audit/verify"), &s.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(verify["first_broken"], Value::Null);
    assert_eq!(verify["events_checked"], 2);
}

#[tokio::test]
async fn auth_endpoints_are_rate_limited_per_ip() {
    let app = TestApp::builder()
        .config(|c| c.rate_limits.auth_per_minute = 3)
        .spawn()
        .await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let res = app
            .post_json(
                "/api/v1/auth/login",
                json!({ "email": "x@example.com", "password": "whatever-password" }),
            )
            .await;
        statuses.push(res.status().as_u16());
        assert!(res.headers().get("x-ratelimit-limit").is_some());
        last = Some(res);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    let last = last.unwrap();
    assert!(last.headers().get("retry-after").is_some());
    assert_eq!(last.headers()["x-ratelimit-remaining"], "0");
}

#[tokio::test]
async fn bad_input_is_4xx_naming_the_field() {
    let app = TestApp::spawn().await;
    let malformed = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_code(malformed).await,
        (400, "bad_request".into())
    );

    let weak = app
        .post_json(
            "/api/v1/auth/register",
            json!({ "email": "w@example.com", "password": "short", "name": "W", "org_name": "O" }),
        )
        .await;
    assert_eq!(weak.status(), 422);
    let b = body(weak).await;
    assert_eq!(b["error"]["details"]["fields"][0]["field"], "password");

    let bad_email = app
        .post_json(
            "/api/v1/auth/register",
            json!({ "email": "not-an-email", "password": PASSWORD, "name": "W", "org_name": "O" }),
        )
        .await;
    assert_eq!(
        body(bad_email).await["error"]["details"]["fields"][0]["field"],
        "email"
    );

    let unknown = app
        .post_json("/api/v1/auth/register", json!({ "email": "u@example.com", "password": PASSWORD, "name": "W", "org_name": "O", "is_admin": true }))
        .await;
    let u = body(unknown).await;
    assert_eq!(u["error"]["code"], "invalid_input");
    assert_eq!(u["error"]["details"]["fields"][0]["field"], "is_admin");

    let missing = app
        .post_json("/api/v1/auth/login", json!({ "email": "u@example.com" }))
        .await;
    assert_eq!(
        body(missing).await["error"]["details"]["fields"][0]["field"],
        "password"
    );

    let s = app.signup("ok@example.com", "Fine").await;
    let bad_role = app
        .with_token(
            Method::POST,
            &format!("/api/v1/orgs/{}/invitations", s.org_id),
            &s.access,
        )
        .json(&json!({ "email": "x@example.com", "role": "superuser" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        body(bad_role).await["error"]["details"]["fields"][0]["field"],
        "role"
    );

    let huge = json!({ "email": "h@example.com", "password": PASSWORD, "name": "x".repeat(3 * 1024 * 1024), "org_name": "O" });
    let too_big = app.post_json("/api/v1/auth/register", huge).await;
    assert_eq!(too_big.status(), 413);
}

/// Two API nodes sharing one database and one Redis: a logout on one is honoured by the
/// other, and the per-IP limit is counted once across both.
#[tokio::test]
async fn two_nodes_share_revocation_and_limits_through_redis() {
    let Some(redis) = assay_store::testing::service_url("ASSAY_TEST_REDIS_URL") else {
        return;
    };
    let prefix = format!("assay-test-{}:", uuid::Uuid::new_v4().simple());
    let (r1, p1) = (redis.clone(), prefix.clone());
    let a = TestApp::builder()
        .config(move |c| {
            c.redis.url = Some(r1);
            c.redis.key_prefix = p1;
            c.rate_limits.auth_per_minute = 4;
        })
        .spawn()
        .await;
    let (r2, p2) = (redis.clone(), prefix.clone());
    let b = TestApp::builder()
        .database_of(&a)
        .config(move |c| {
            c.redis.url = Some(r2);
            c.redis.key_prefix = p2;
            c.rate_limits.auth_per_minute = 4;
        })
        .spawn()
        .await;
    let s: Session = a.signup("shared@example.com", "Shared").await; // 1 of 4 on the shared limit
    assert_eq!(me(&b, &s.access).await.status(), 200);
    assert_eq!(
        a.with_token(Method::POST, "/api/v1/auth/logout", &s.access)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        status_and_code(me(&b, &s.access).await).await,
        (401, "token_revoked".into())
    );

    let login = json!({ "email": "shared@example.com", "password": "wrong-password-1" });
    assert_eq!(
        b.post_json("/api/v1/auth/login", login.clone())
            .await
            .status(),
        401
    ); // 2
    assert_eq!(
        a.post_json("/api/v1/auth/login", login.clone())
            .await
            .status(),
        401
    ); // 3
    assert_eq!(
        b.post_json("/api/v1/auth/login", login.clone())
            .await
            .status(),
        401
    ); // 4
    assert_eq!(a.post_json("/api/v1/auth/login", login).await.status(), 429); // 5: over, counted across nodes
}

#[tokio::test]
async fn admins_cannot_grant_ownership_and_the_refusal_is_audited() {
    let app = TestApp::spawn().await;
    let owner = app.signup("chief@example.com", "Grants").await;
    let org = format!("/api/v1/orgs/{}", owner.org_id);
    let invite = |email: &'static str, role: &'static str| {
        let (app, org, token) = (&app, org.clone(), owner.access.clone());
        async move {
            let inv = body(
                app.with_token(Method::POST, &format!("{org}/invitations"), &token)
                    .json(&json!({ "email": email, "role": role }))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            body(
                app.post_json(
                    "/api/v1/auth/register",
                    json!({ "email": email, "password": PASSWORD, "name": "N", "invite_token": inv["token"] }),
                )
                .await,
            )
            .await
        }
    };
    let admin = invite("deputy@example.com", "admin").await;
    let member = invite("staff@example.com", "member").await;
    let admin_access = admin["access_token"].as_str().unwrap();
    let promote = app
        .with_token(
            Method::PATCH,
            &format!("{org}/members/{}", member["user"]["id"].as_str().unwrap()),
            admin_access,
        )
        .json(&json!({ "role": "owner" }))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_code(promote).await, (403, "forbidden".into()));
    let invite_owner = app
        .with_token(Method::POST, &format!("{org}/invitations"), admin_access)
        .json(&json!({ "email": "boss2@example.com", "role": "owner" }))
        .send()
        .await
        .unwrap();
    assert_eq!(invite_owner.status(), 403);
    assert_eq!(count_events(&app, "permission.denied").await, 2);
}

/// A node's subscription to the other nodes' cache changes ends with the node, so an
/// embedder that starts and stops apps does not pile up Redis subscriptions.
#[tokio::test]
async fn a_stopped_node_leaves_the_invalidation_channel() {
    let Some(redis) = assay_store::testing::service_url("ASSAY_TEST_REDIS_URL") else {
        return;
    };
    let prefix = format!("assay-test-{}:", uuid::Uuid::new_v4().simple());
    let channel = format!("{prefix}invalidate");
    let (r, p) = (redis.clone(), prefix.clone());
    let mut app = TestApp::builder()
        .config(move |c| {
            c.redis.url = Some(r);
            c.redis.key_prefix = p;
        })
        .spawn()
        .await;
    let mut conn = redis::Client::open(redis.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut subscribers = async move || -> i64 {
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut conn)
            .await
            .unwrap();
        n
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while subscribers().await != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the node never subscribed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.begin_shutdown();
    app.stopped().await.unwrap();
    drop(app);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while subscribers().await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stopped node is still subscribed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `/me` is served from a per-node cache of each person's profile, which lists their
/// organisations by name: a rename shows there at once.
#[tokio::test]
async fn a_renamed_organisation_shows_in_the_profile_at_once() {
    let app = TestApp::spawn().await;
    let s = app.signup("rename@example.com", "Before").await;
    let org_name = async || -> Value {
        body(me(&app, &s.access).await).await["memberships"][0]["org"]["name"].clone()
    };
    assert_eq!(org_name().await, "Before"); // now cached
    let res = app
        .with_token(
            Method::PATCH,
            &format!("/api/v1/orgs/{}", s.org_id),
            &s.access,
        )
        .json(&json!({ "name": "After" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(org_name().await, "After");
}
