//! The AI gateway as `assay serve` wires it: offline answers from the built-in catalogue
//! when no provider is configured, a real OpenAI-compatible provider (tools/mock-llm) when
//! one is, and every call in the stored usage ledger with its tokens and cost.

mod support;

use assay_ai::{AiRequest, ChatMessage, TaskKind};
use assay_core::{OrgCtx, Role, UserId};
use assay_store::repo::ai_usage;
use std::time::{Duration, Instant};
use support::TestApp;

async fn ctx_for(app: &TestApp) -> OrgCtx {
    let s = app.signup("ai-user@example.com", "AI Org").await;
    OrgCtx::for_verified_member(
        s.org_id.parse().unwrap(),
        s.user_id.parse::<UserId>().unwrap(),
        Role::Member,
    )
}

/// Wait until the usage writer (batched off the request path) has stored `n` rows.
async fn ledger_rows(app: &TestApp, ctx: &OrgCtx, n: i64) -> Vec<ai_usage::UsageTotals> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let totals = ai_usage::totals(app.state.db().primary(), ctx, "2000-01-01", "2999-12-31")
            .await
            .unwrap();
        if totals.iter().map(|t| t.requests).sum::<i64>() >= n {
            return totals;
        }
        assert!(
            Instant::now() < deadline,
            "usage rows never reached the store: {totals:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_bare_server_answers_offline_from_the_catalogue_and_records_usage() {
    let app = TestApp::spawn().await;
    let ctx = ctx_for(&app).await;
    let res = app
        .state
        .ai()
        .complete(AiRequest::new(
            &ctx,
            TaskKind::Help,
            vec![ChatMessage::user("What does GV.OC-01 ask of us?")],
        ))
        .await
        .unwrap();
    assert!(res.meta.offline);
    assert!(res.text.contains("GV.OC-01"), "{}", res.text);
    let rows = ledger_rows(&app, &ctx, 1).await;
    assert_eq!(rows[0].model, res.meta.model);

    let ready: serde_json::Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["checks"]["ai"]["status"], "offline_only");
}

#[tokio::test]
async fn a_configured_provider_answers_and_its_cost_is_stored() {
    let mock = mock_llm::spawn(mock_llm::MockConfig::default())
        .await
        .unwrap();
    let base = format!("{}/v1", mock.base_url());
    let app = TestApp::builder()
        .config(move |c| {
            c.ai.apply_customary_env(&|name| match name {
                "OPENAI_API_KEY" => Some("sk-test-key".to_owned()),
                "OPENAI_BASE_URL" => Some(base.clone()),
                _ => None,
            })
        })
        .spawn()
        .await;
    let ctx = ctx_for(&app).await;
    let res = app
        .state
        .ai()
        .complete(AiRequest::new(
            &ctx,
            TaskKind::Chat,
            vec![ChatMessage::user("Summarise our access control posture")],
        ))
        .await
        .unwrap();
    assert!(!res.meta.offline, "{:?}", res.meta);
    assert!(
        res.meta.usage.input_tokens > 0 && res.meta.cost_usd > 0.0,
        "{:?}",
        res.meta
    );
    let rows = ledger_rows(&app, &ctx, 1).await;
    assert_eq!(rows[0].model, res.meta.model);
    assert!(rows[0].cost_usd.unwrap() > 0.0);
    let spend = ai_usage::org_spend_since(
        app.state.db().primary(),
        ctx.org_id(),
        chrono::Utc::now() - chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    assert!(
        (spend - res.meta.cost_usd).abs() < 1e-9,
        "{spend} vs {}",
        res.meta.cost_usd
    );

    let ready: serde_json::Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["checks"]["ai"]["status"], "up");
}

fn generous_help_limit(c: &mut assay_config::Config) {
    c.ai_limits.help_per_minute = 1000;
    c.ai_limits.burst = 1000;
}

/// AI audit events and usage rows are written by the bookkeeping thread (its own runtime
/// and database handle, SCHED_IDLE): whatever the answered calls left queued is written
/// when the server stops, before its pools close — read back here over a new connection.
async fn bookkeeping_is_flushed_at_shutdown(mut app: TestApp) {
    let s = app
        .signup("bookkeeping@example.com", "Bookkeeping Org")
        .await;
    let path = format!("/api/v1/orgs/{}/ai/help", s.org_id);
    let calls = 6;
    for _ in 0..calls {
        let (status, body) = support::call(
            &app,
            reqwest::Method::POST,
            &path,
            &s.access,
            Some(serde_json::json!({ "subject": "control", "ref": "IAM-04" })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    app.begin_shutdown();
    app.stopped().await.expect("clean stop");

    let url = assay_store::DatabaseUrl::parse(&app.database_url).unwrap();
    let db = assay_store::Db::connect(&assay_store::DbSettings::new(url))
        .await
        .unwrap();
    let ctx = OrgCtx::for_verified_member(
        s.org_id.parse().unwrap(),
        s.user_id.parse::<UserId>().unwrap(),
        Role::Member,
    );
    let filter = assay_store::repo::audit::AuditFilter {
        action: Some("ai.call".into()),
        ..Default::default()
    };
    let events = assay_store::repo::audit::list(db.primary(), &ctx, &filter, 100)
        .await
        .unwrap();
    assert_eq!(events.len(), calls, "{events:?}");
    let totals = ai_usage::totals(db.primary(), &ctx, "2000-01-01", "2999-12-31")
        .await
        .unwrap();
    assert_eq!(totals.iter().map(|t| t.requests).sum::<i64>(), calls as i64);
    let report = assay_store::repo::audit::verify_chain(db.primary(), Some(ctx.org_id()))
        .await
        .unwrap();
    assert!(report.first_broken.is_none(), "{report:?}");
    db.close().await;
}

#[tokio::test]
async fn bookkeeping_is_flushed_at_shutdown_on_postgres() {
    let app = TestApp::builder().config(generous_help_limit).spawn().await;
    bookkeeping_is_flushed_at_shutdown(app).await;
}

#[tokio::test]
async fn bookkeeping_is_flushed_at_shutdown_on_sqlite() {
    let app = TestApp::builder()
        .sqlite()
        .config(generous_help_limit)
        .spawn()
        .await;
    bookkeeping_is_flushed_at_shutdown(app).await;
}
