//! The store suite: every test runs against SQLite, and against PostgreSQL when
//! `ASSAY_TEST_POSTGRES_URL` is set (required in CI).

use assay_core::{OrgCtx, Role};
use assay_store::repo::audit::{self, Actor, AuditFilter, NewAuditEvent};
use assay_store::repo::{
    ai_safety_reviews, ai_settings, ai_usage, api_keys, imported_frameworks, invitations,
    login_failures, memberships, organisations, posture, sessions, users,
};
use assay_store::testing::TestDb;
use assay_store::{Backend, Db, DbSettings, StoreError};
use sea_orm::ConnectionTrait;

/// Generate `sqlite::NAME` and `postgres::NAME` tests calling `NAME(TestDb)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(assay_store::testing::TestDb::sqlite().await).await }
            )*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(db) = assay_store::testing::TestDb::postgres().await { super::$name(db).await }
            }
            )*
        }
    };
}

on_both_backends!(
    migrations_are_applied_and_reported,
    a_newer_schema_is_refused,
    organisation_starts_with_its_owner,
    email_is_unique_case_insensitively,
    failed_transaction_leaves_nothing,
    last_owner_cannot_leave,
    members_are_scoped_to_their_organisation,
    audit_chain_verifies_and_detects_tampering,
    audit_chain_detects_deleted_events,
    audit_appends_concurrently_without_forking,
    audit_batches_chain_like_single_appends,
    audit_list_is_org_scoped_and_paginated,
    reads_fall_back_to_primary_when_replica_is_down,
    ping_reports_latency_and_pool,
    refresh_rotation_detects_reuse_and_revokes_the_family,
    invitations_are_accepted_once_and_scoped,
    api_keys_are_scoped_and_revocable,
    login_failures_count_and_clear,
    ai_usage_ledger_sums_spend_and_groups_by_day,
    a_full_bookkeeping_batch_of_usage_is_stored_whole,
    monthly_spend_is_backfilled_from_the_ledger,
    posture_adoption_controls_and_profile_are_org_scoped,
    assessments_move_through_their_life_cycle_scoped_to_their_org,
    readiness_snapshots_keep_one_daily_per_day_and_history_in_order,
    imported_frameworks_are_org_scoped_with_keys_unique_across_scopes,
    imported_framework_key_races_admit_one_import,
    ai_safety_reviews_are_per_organisation_and_resolve_once,
    ai_settings_keep_pii_restoration,
);

async fn signup(db: &Db, email: &str, org: &str) -> (users::User, organisations::Organisation) {
    let (email, org) = (email.to_owned(), org.to_owned());
    db.write(move |txn| {
        Box::pin(async move {
            let user = users::create(
                txn,
                users::NewUser {
                    email: &email,
                    name: "Test",
                    password_hash: None,
                },
            )
            .await?;
            let org =
                organisations::create_with_owner(txn, &org, &org.to_lowercase(), user.id).await?;
            Ok((user, org))
        })
    })
    .await
    .expect("signup")
}

async fn migrations_are_applied_and_reported(t: TestDb) {
    let status = t.db.migration_status().await.unwrap();
    assert!(!status.is_empty());
    assert!(status.iter().all(|m| m.applied), "{status:?}");
    // Running again applies nothing.
    assert!(t.db.migrate_up().await.unwrap().is_empty());
    t.db.ensure_migrated().await.unwrap();
}

async fn a_newer_schema_is_refused(t: TestDb) {
    t.db.primary()
        .execute_unprepared(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m9999_from_the_future', 0)",
        )
        .await
        .unwrap();
    let err = t.db.migrate_up().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::UnknownMigrations(v) if v == &["m9999_from_the_future".to_owned()]),
        "{err}"
    );
    assert!(err.to_string().contains("newer Assay"));
    assert!(t.db.ensure_schema_known().await.is_err());
}

async fn organisation_starts_with_its_owner(t: TestDb) {
    let (user, org) = signup(&t.db, "Owner@Example.com", "Acme").await;
    assert_eq!(user.email, "owner@example.com");
    let mine = organisations::list_for_user(t.db.primary(), user.id)
        .await
        .unwrap();
    assert_eq!(mine, vec![(org.clone(), Role::Owner)]);
    assert_eq!(
        memberships::role_of(t.db.primary(), org.id, user.id)
            .await
            .unwrap(),
        Some(Role::Owner)
    );
    let ctx = OrgCtx::for_verified_member(org.id, user.id, Role::Owner);
    let renamed = organisations::rename(t.db.primary(), &ctx, "Acme Ltd")
        .await
        .unwrap();
    assert_eq!(renamed.name, "Acme Ltd");
}

async fn email_is_unique_case_insensitively(t: TestDb) {
    signup(&t.db, "a@example.com", "One").await;
    let err = users::create(
        t.db.primary(),
        users::NewUser {
            email: "A@EXAMPLE.COM",
            name: "x",
            password_hash: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { field } if field == "email"),
        "{err:?}"
    );
}

async fn failed_transaction_leaves_nothing(t: TestDb) {
    signup(&t.db, "first@example.com", "Taken").await;
    // The user insert succeeds, the organisation's slug collides: neither may remain.
    let err =
        t.db.write(|txn| {
            Box::pin(async move {
                let user = users::create(
                    txn,
                    users::NewUser {
                        email: "second@example.com",
                        name: "x",
                        password_hash: None,
                    },
                )
                .await?;
                organisations::create_with_owner(txn, "Taken", "taken", user.id).await?;
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { field } if field == "slug"),
        "{err:?}"
    );
    assert!(
        users::find_for_login(t.db.primary(), "second@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

async fn last_owner_cannot_leave(t: TestDb) {
    let (owner, org) = signup(&t.db, "owner@example.com", "Solo").await;
    let ctx = OrgCtx::for_verified_member(org.id, owner.id, Role::Owner);
    let err = memberships::set_role(t.db.primary(), &ctx, owner.id, Role::Admin)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invariant(_)));
    assert!(
        memberships::remove(t.db.primary(), &ctx, owner.id)
            .await
            .is_err()
    );
    // With a second owner, the first may step down.
    let other = users::create(
        t.db.primary(),
        users::NewUser {
            email: "two@example.com",
            name: "Two",
            password_hash: None,
        },
    )
    .await
    .unwrap();
    memberships::add(t.db.primary(), &ctx, other.id, Role::Owner)
        .await
        .unwrap();
    memberships::set_role(t.db.primary(), &ctx, owner.id, Role::Admin)
        .await
        .unwrap();
    assert_eq!(
        memberships::role_of(t.db.primary(), org.id, owner.id)
            .await
            .unwrap(),
        Some(Role::Admin)
    );
}

async fn members_are_scoped_to_their_organisation(t: TestDb) {
    let (alice, a) = signup(&t.db, "alice@a.example", "OrgA").await;
    let (bob, b) = signup(&t.db, "bob@b.example", "OrgB").await;
    let ctx_a = OrgCtx::for_verified_member(a.id, alice.id, Role::Owner);
    let ctx_b = OrgCtx::for_verified_member(b.id, bob.id, Role::Owner);
    let in_a = memberships::list(t.db.primary(), &ctx_a).await.unwrap();
    assert_eq!(
        in_a.iter().map(|m| m.email.as_str()).collect::<Vec<_>>(),
        ["alice@a.example"]
    );
    // Removing "bob" through org A's scope cannot touch org B.
    assert!(matches!(
        memberships::remove(t.db.primary(), &ctx_a, bob.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        memberships::list(t.db.primary(), &ctx_b)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        memberships::role_of(t.db.primary(), a.id, bob.id)
            .await
            .unwrap(),
        None
    );
}

async fn audit_chain_verifies_and_detects_tampering(t: TestDb) {
    let (user, org) = signup(&t.db, "audit@example.com", "Audited").await;
    for i in 0..5 {
        let ev = NewAuditEvent::new(
            Some(org.id),
            Actor::User(user.id),
            format!("thing.changed.{i}"),
        )
        .resource("thing", i);
        audit::append(t.db.primary(), ev).await.unwrap();
    }
    let report = audit::verify_chain(t.db.primary(), Some(org.id))
        .await
        .unwrap();
    assert_eq!(report.events_checked, 5);
    assert_eq!(report.first_broken, None);

    t.db.primary()
        .execute_unprepared("UPDATE audit_events SET action = 'nothing.happened' WHERE seq = 3")
        .await
        .unwrap();
    let report = audit::verify_chain(t.db.primary(), Some(org.id))
        .await
        .unwrap();
    let broken = report.first_broken.expect("tampering detected");
    assert_eq!(broken.seq, 3);
    assert!(broken.event_id.is_some());
    assert_eq!(report.events_checked, 2);
}

async fn audit_chain_detects_deleted_events(t: TestDb) {
    let (user, org) = signup(&t.db, "del@example.com", "Deleted").await;
    for i in 0..4 {
        audit::append(
            t.db.primary(),
            NewAuditEvent::new(Some(org.id), Actor::User(user.id), format!("a{i}")),
        )
        .await
        .unwrap();
    }
    t.db.primary()
        .execute_unprepared("DELETE FROM audit_events WHERE seq = 4")
        .await
        .unwrap();
    let tail = audit::verify_chain(t.db.primary(), Some(org.id))
        .await
        .unwrap();
    assert!(
        tail.first_broken
            .unwrap()
            .reason
            .contains("removed from the end")
    );
    t.db.primary()
        .execute_unprepared("DELETE FROM audit_events WHERE seq = 2")
        .await
        .unwrap();
    let middle = audit::verify_chain(t.db.primary(), Some(org.id))
        .await
        .unwrap();
    assert_eq!(middle.first_broken.unwrap().seq, 2);
}

async fn audit_appends_concurrently_without_forking(t: TestDb) {
    let (user, org) = signup(&t.db, "conc@example.com", "Concurrent").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            db.write(move |txn| {
                Box::pin(async move {
                    audit::append(
                        txn,
                        NewAuditEvent::new(Some(org.id), Actor::User(user.id), format!("c{i}")),
                    )
                    .await
                })
            })
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let report = audit::verify_chain(t.db.primary(), Some(org.id))
        .await
        .unwrap();
    assert_eq!(report.events_checked, 20);
    assert_eq!(report.first_broken, None);
}

async fn audit_batches_chain_like_single_appends(t: TestDb) {
    let (alice, a) = signup(&t.db, "batch-a@example.com", "BatchA").await;
    let (bob, b) = signup(&t.db, "batch-b@example.com", "BatchB").await;
    // A single append, then a batch interleaving both orgs and the platform chain, then
    // another single append: one unbroken chain per organisation, in order.
    audit::append(
        t.db.primary(),
        NewAuditEvent::new(Some(a.id), Actor::User(alice.id), "before"),
    )
    .await
    .unwrap();
    let platform_before = audit::verify_chain(t.db.primary(), None)
        .await
        .unwrap()
        .events_checked;
    // More events per chain than one INSERT takes (64), so chunks follow one another.
    let mut batch = Vec::new();
    for i in 0..70 {
        batch.push(NewAuditEvent::new(
            Some(a.id),
            Actor::User(alice.id),
            format!("a{i}"),
        ));
        batch.push(NewAuditEvent::new(
            Some(b.id),
            Actor::User(bob.id),
            format!("b{i}"),
        ));
    }
    batch.push(NewAuditEvent::new(None, Actor::Anonymous, "p0"));
    let written =
        t.db.write(move |txn| Box::pin(async move { audit::append_batch(txn, batch).await }))
            .await
            .unwrap();
    assert_eq!(written, 141);
    audit::append(
        t.db.primary(),
        NewAuditEvent::new(Some(a.id), Actor::User(alice.id), "after"),
    )
    .await
    .unwrap();
    assert!(
        t.db.write(|txn| Box::pin(async move { audit::append_batch(txn, Vec::new()).await }))
            .await
            .unwrap()
            == 0
    );

    for (org, n) in [(a.id, 72), (b.id, 70)] {
        let report = audit::verify_chain(t.db.primary(), Some(org))
            .await
            .unwrap();
        assert_eq!((report.events_checked, report.first_broken), (n, None));
    }
    let platform = audit::verify_chain(t.db.primary(), None).await.unwrap();
    assert_eq!(platform.events_checked, platform_before + 1);
    assert_eq!(platform.first_broken, None);
    let ctx = OrgCtx::for_verified_member(a.id, alice.id, Role::Owner);
    let listed = audit::list(t.db.primary(), &ctx, &AuditFilter::default(), 200)
        .await
        .unwrap();
    let actions: Vec<String> = listed.iter().rev().map(|e| e.action.clone()).collect();
    let mut expected = vec!["before".to_owned()];
    expected.extend((0..70).map(|i| format!("a{i}")));
    expected.push("after".into());
    // Sign-up may have audited events of its own first; ours follow in order.
    assert_eq!(actions[actions.len() - 72..], expected[..]);
}

async fn audit_list_is_org_scoped_and_paginated(t: TestDb) {
    let (alice, a) = signup(&t.db, "la@example.com", "ListA").await;
    let (bob, b) = signup(&t.db, "lb@example.com", "ListB").await;
    for i in 0..5 {
        audit::append(
            t.db.primary(),
            NewAuditEvent::new(Some(a.id), Actor::User(alice.id), format!("a.{i}")),
        )
        .await
        .unwrap();
    }
    audit::append(
        t.db.primary(),
        NewAuditEvent::new(Some(b.id), Actor::User(bob.id), "b.secret"),
    )
    .await
    .unwrap();
    let ctx_a = OrgCtx::for_verified_member(a.id, alice.id, Role::Owner);
    let page1 = audit::list(t.db.primary(), &ctx_a, &AuditFilter::default(), 3)
        .await
        .unwrap();
    assert_eq!(
        page1.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["a.4", "a.3", "a.2"]
    );
    let page2 = audit::list(
        t.db.primary(),
        &ctx_a,
        &AuditFilter {
            before_seq: Some(page1[2].seq),
            ..Default::default()
        },
        3,
    )
    .await
    .unwrap();
    assert_eq!(
        page2.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["a.1", "a.0"]
    );
    assert!(page1.iter().chain(&page2).all(|e| e.org_id == Some(a.id)));
}

async fn reads_fall_back_to_primary_when_replica_is_down(t: TestDb) {
    if t.settings.url.backend() != Backend::Postgres {
        return; // replicas are a PostgreSQL feature
    }
    let (user, _) = signup(&t.db, "replica@example.com", "Replica").await;
    let mut settings: DbSettings = t.settings.clone();
    // Nothing listens on port 1: every replica read fails to connect.
    settings.read_urls =
        vec![assay_store::DatabaseUrl::parse("postgres://nobody@127.0.0.1:1/none").unwrap()];
    settings.acquire_timeout = std::time::Duration::from_millis(500);
    let db = Db::connect(&settings).await.unwrap();
    let found = db
        .read(|conn| async move { users::find_for_login(&conn, "replica@example.com").await })
        .await
        .unwrap()
        .expect("user read through the fallback");
    assert_eq!(found.0.id, user.id);
}

async fn ping_reports_latency_and_pool(t: TestDb) {
    let latency = t.db.ping(std::time::Duration::from_secs(2)).await.unwrap();
    assert!(latency < std::time::Duration::from_secs(2));
    let pool = t.db.pool_status();
    assert!(pool.max >= 1 && pool.size >= 1, "{pool:?} on {}", t.label());
    if t.settings.url.backend() == Backend::Sqlite {
        assert_eq!(
            sqlite_pragma::<String>(&t.db, "journal_mode")
                .await
                .to_lowercase(),
            "wal"
        );
        assert_eq!(sqlite_pragma::<i32>(&t.db, "foreign_keys").await, 1);
        assert_eq!(sqlite_pragma::<i64>(&t.db, "page_size").await, 16 * 1024);
    }
}

/// The value of `PRAGMA name` on the primary connection.
async fn sqlite_pragma<T: sea_orm::TryGetable>(db: &Db, name: &str) -> T {
    db.primary()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            format!("PRAGMA {name}"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<T>(0)
        .unwrap()
}

fn token_row(hash: &str) -> sessions::TokenRow {
    let now = chrono::Utc::now();
    sessions::TokenRow {
        token_hash: hash.to_owned(),
        issued_at: now,
        expires_at: now + chrono::Duration::days(7),
    }
}

async fn refresh_rotation_detects_reuse_and_revokes_the_family(t: TestDb) {
    let (user, _) = signup(&t.db, "rot@example.com", "Rotate").await;
    let sid = uuid::Uuid::now_v7();
    let c = t.db.primary();
    sessions::open(
        c,
        sid,
        user.id,
        &token_row("h1"),
        &sessions::ClientInfo::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        sessions::rotate(c, "h1", &token_row("h2")).await.unwrap(),
        sessions::Rotation::Rotated {
            session_id: sid,
            user: user.id
        }
    );
    assert_eq!(
        sessions::rotate(c, "h2", &token_row("h3")).await.unwrap(),
        sessions::Rotation::Rotated {
            session_id: sid,
            user: user.id
        }
    );
    // Replaying h1 (already used): the family is revoked, and its newest token dies too.
    assert_eq!(
        sessions::rotate(c, "h1", &token_row("h4")).await.unwrap(),
        sessions::Rotation::ReuseDetected {
            session_id: sid,
            user: user.id
        }
    );
    assert!(!sessions::is_open(c, sid).await.unwrap());
    assert_eq!(
        sessions::rotate(c, "h3", &token_row("h5")).await.unwrap(),
        sessions::Rotation::Invalid
    );
    assert_eq!(
        sessions::rotate(c, "unknown", &token_row("h6"))
            .await
            .unwrap(),
        sessions::Rotation::Invalid
    );

    let other = uuid::Uuid::now_v7();
    sessions::open(
        c,
        other,
        user.id,
        &token_row("o1"),
        &sessions::ClientInfo::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        sessions::revoke_all(c, user.id, "logout_all")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        sessions::rotate(c, "o1", &token_row("o2")).await.unwrap(),
        sessions::Rotation::Invalid
    );
}

async fn invitations_are_accepted_once_and_scoped(t: TestDb) {
    let (owner, org) = signup(&t.db, "inv-owner@example.com", "Inviting").await;
    let (stranger, other_org) = signup(&t.db, "stranger@example.com", "Other").await;
    let ctx = OrgCtx::for_verified_member(org.id, owner.id, Role::Owner);
    let c = t.db.primary();
    let inv = invitations::create(
        c,
        &ctx,
        "New@Example.com",
        Role::Auditor,
        "invhash",
        chrono::Utc::now() + chrono::Duration::days(7),
    )
    .await
    .unwrap();
    assert_eq!(inv.email, "new@example.com");
    let found = invitations::find_by_token_hash(c, "invhash")
        .await
        .unwrap()
        .unwrap();
    assert!(found.is_pending(chrono::Utc::now()));
    let other_ctx = OrgCtx::for_verified_member(other_org.id, stranger.id, Role::Owner);
    assert!(invitations::list(c, &other_ctx).await.unwrap().is_empty());
    assert!(invitations::revoke(c, &other_ctx, inv.id).await.is_err());
    assert!(
        invitations::mark_accepted(c, inv.id, stranger.id)
            .await
            .unwrap()
    );
    assert!(
        !invitations::mark_accepted(c, inv.id, stranger.id)
            .await
            .unwrap()
    );
}

async fn api_keys_are_scoped_and_revocable(t: TestDb) {
    let (owner, org) = signup(&t.db, "keys@example.com", "Keys").await;
    let (stranger, other_org) = signup(&t.db, "keys2@example.com", "Keys2").await;
    let ctx = OrgCtx::for_verified_member(org.id, owner.id, Role::Owner);
    let other_ctx = OrgCtx::for_verified_member(other_org.id, stranger.id, Role::Owner);
    let c = t.db.primary();
    let key = api_keys::create(
        c,
        &ctx,
        api_keys::NewApiKeyRow {
            id: "abc123def456",
            name: "ci",
            key_hash: "khash",
            scopes: &["read", "ai"],
            expires_at: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(key.scopes, ["read", "ai"]);
    let cred = api_keys::find_for_auth(c, "abc123def456")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cred.key_hash, "khash");
    assert_eq!(cred.key.org_id, org.id);
    assert!(api_keys::list(c, &other_ctx).await.unwrap().is_empty());
    assert!(
        api_keys::revoke(c, &other_ctx, "abc123def456")
            .await
            .is_err()
    );
    api_keys::touch_last_used(c, "abc123def456").await.unwrap();
    api_keys::revoke(c, &ctx, "abc123def456").await.unwrap();
    let revoked = api_keys::find_for_auth(c, "abc123def456")
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.key.revoked_at.is_some() && revoked.key.last_used_at.is_some());
}

async fn login_failures_count_and_clear(t: TestDb) {
    let c = t.db.primary();
    assert_eq!(login_failures::get(c, "x@example.com").await.unwrap(), None);
    assert_eq!(
        login_failures::record_failure(c, "X@example.com")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        login_failures::record_failure(c, "x@example.com")
            .await
            .unwrap(),
        2
    );
    login_failures::clear(c, "x@example.com").await.unwrap();
    assert_eq!(login_failures::get(c, "x@example.com").await.unwrap(), None);
}

fn usage(
    org: assay_core::OrgId,
    user: Option<assay_core::UserId>,
    model: &str,
    cost: f64,
    at: chrono::DateTime<chrono::Utc>,
    hit: bool,
) -> ai_usage::NewAiUsage {
    ai_usage::NewAiUsage {
        id: uuid::Uuid::now_v7(),
        org_id: org,
        user_id: user,
        task: "help".into(),
        model: model.into(),
        provider: "openai".into(),
        provider_kind: "openai_compatible".into(),
        tier: "fast".into(),
        input_tokens: 100,
        output_tokens: 50,
        cached_input_tokens: 10,
        estimated: false,
        cost_usd: cost,
        latency_ms: 120.5,
        time_to_first_token_ms: Some(40.0),
        gateway_overhead_us: 90,
        cache_hit: hit,
        streamed: false,
        outcome: "ok".into(),
        at,
    }
}

/// The usage writer hands over up to `BOOKKEEPING_BATCH` (2,048) records at once: more
/// bound values than one SQLite statement takes (32,766) if they went in one INSERT.
async fn a_full_bookkeeping_batch_of_usage_is_stored_whole(t: TestDb) {
    let (user, org) = signup(&t.db, "batch@example.com", "AiBatch").await;
    let at = chrono::Utc::now();
    let batch: Vec<_> = (0..2048)
        .map(|_| usage(org.id, Some(user.id), "gpt-4o-mini", 0.001, at, false))
        .collect();
    let c = t.db.primary();
    assert_eq!(ai_usage::insert_batch(c, &batch).await.unwrap(), 2048);
    assert_eq!(
        ai_usage::insert_batch(c, &batch).await.unwrap(),
        0,
        "a retry adds nothing"
    );
    let month = ai_usage::org_spend_in_month(c, org.id, at).await.unwrap();
    assert!((month - 2.048).abs() < 1e-9, "{month}");
}

async fn ai_usage_ledger_sums_spend_and_groups_by_day(t: TestDb) {
    let (user, org) = signup(&t.db, "ai@example.com", "AiSpend").await;
    let (_, other) = signup(&t.db, "ai2@example.com", "AiOther").await;
    let c = t.db.primary();
    let day1 = chrono::DateTime::parse_from_rfc3339("2026-11-01T10:00:00Z")
        .unwrap()
        .to_utc();
    let day2 = chrono::DateTime::parse_from_rfc3339("2026-11-02T10:00:00Z")
        .unwrap()
        .to_utc();
    let batch = vec![
        usage(org.id, Some(user.id), "gpt-4o-mini", 0.25, day1, false),
        usage(org.id, Some(user.id), "gpt-4o-mini", 0.0, day1, true),
        usage(org.id, Some(user.id), "gemini-2.5-flash", 0.5, day2, false),
        usage(other.id, None, "gpt-4o-mini", 9.0, day2, false),
    ];
    assert_eq!(ai_usage::insert_batch(c, &batch).await.unwrap(), 4);
    // A retried batch is not counted twice.
    ai_usage::insert_batch(c, &batch).await.unwrap();
    let spend = ai_usage::org_spend_since(c, org.id, day1 - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!((spend - 0.75).abs() < 1e-9, "{spend}");
    let later = ai_usage::org_spend_since(c, org.id, day2 - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!((later - 0.5).abs() < 1e-9, "{later}");

    // The monthly totals agree with the ledger, per organisation and month, and the retried
    // batch (and a record repeated inside one batch) added nothing to them.
    let month = |o| ai_usage::org_spend_in_month(c, o, day2);
    assert!((month(org.id).await.unwrap() - 0.75).abs() < 1e-9);
    assert!((month(other.id).await.unwrap() - 9.0).abs() < 1e-9);
    let december = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let next = [
        usage(org.id, None, "gpt-4o-mini", 2.0, december, false),
        usage(org.id, None, "gpt-4o-mini", 0.125, day2, false),
    ];
    let twice = vec![next[0].clone(), next[0].clone(), next[1].clone()];
    assert_eq!(ai_usage::insert_batch(c, &twice).await.unwrap(), 2);
    assert!((month(org.id).await.unwrap() - 0.875).abs() < 1e-9);
    let dec = ai_usage::org_spend_in_month(c, org.id, december)
        .await
        .unwrap();
    assert!((dec - 2.0).abs() < 1e-9, "{dec}");
    let none = ai_usage::org_spend_in_month(c, org.id, december + chrono::Duration::days(40));
    assert_eq!(none.await.unwrap(), 0.0);
    let summed = ai_usage::org_spend_since(c, org.id, day1 - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!((summed - 2.875).abs() < 1e-9, "{summed}");

    let ctx = OrgCtx::for_verified_member(org.id, user.id, Role::Owner);
    let totals = ai_usage::totals(c, &ctx, "2026-11-01", "2026-11-30")
        .await
        .unwrap();
    // 2026-11-02 holds two groups (the user's gemini call, the key's gpt-4o-mini call).
    assert_eq!(totals.len(), 3);
    assert_eq!(totals[0].day, "2026-11-02");
    assert_eq!(totals[2].requests, 2);
    assert_eq!(totals[2].cache_hits, Some(1));
    assert_eq!(totals[2].input_tokens, Some(200));
}

/// m0009 fills the monthly totals from the ledger rows written before it existed.
async fn monthly_spend_is_backfilled_from_the_ledger(t: TestDb) {
    use sea_orm_migration::MigratorTrait;
    let (_, org) = signup(&t.db, "backfill@example.com", "Backfill").await;
    let c = t.db.primary();
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let batch = [
        usage(org.id, None, "m", 1.5, at("2026-10-31T23:59:59Z"), false),
        usage(org.id, None, "m", 0.25, at("2026-11-01T00:00:00Z"), false),
        usage(org.id, None, "m", 0.5, at("2026-11-30T12:00:00Z"), false),
    ];
    ai_usage::insert_batch(c, &batch).await.unwrap();
    // Back to before m0009 (the totals table is dropped), then forward again.
    assay_store::migrations::Migrator::down(c, Some(1))
        .await
        .unwrap();
    assert_eq!(t.db.migrate_up().await.unwrap().len(), 1);
    let month = |s| ai_usage::org_spend_in_month(c, org.id, at(s));
    assert!((month("2026-10-15T00:00:00Z").await.unwrap() - 1.5).abs() < 1e-9);
    assert!((month("2026-11-15T00:00:00Z").await.unwrap() - 0.75).abs() < 1e-9);
    // And later batches add to the backfilled totals.
    let more = [usage(
        org.id,
        None,
        "m",
        1.0,
        at("2026-11-02T00:00:00Z"),
        false,
    )];
    ai_usage::insert_batch(c, &more).await.unwrap();
    assert!((month("2026-11-15T00:00:00Z").await.unwrap() - 1.75).abs() < 1e-9);
}

async fn posture_adoption_controls_and_profile_are_org_scoped(t: TestDb) {
    use assay_core::ControlStatus;
    let (owner, org) = signup(&t.db, "posture@example.com", "Posture").await;
    let (other_user, other) = signup(&t.db, "posture2@example.com", "Posture2").await;
    let ctx = OrgCtx::for_verified_member(org.id, owner.id, Role::Owner);
    let other_ctx = OrgCtx::for_verified_member(other.id, other_user.id, Role::Owner);
    let c = t.db.primary();
    assert!(posture::adopt(c, &ctx, "nist-csf").await.unwrap());
    assert!(!posture::adopt(c, &ctx, "nist-csf").await.unwrap());
    assert_eq!(posture::adopted(c, &ctx).await.unwrap().len(), 1);
    assert!(posture::adopted(c, &other_ctx).await.unwrap().is_empty());

    let mut update = posture::ControlUpdate {
        status: ControlStatus::NotApplicable,
        justification: None,
        owner_id: None,
        due_date: None,
        notes: None,
    };
    assert!(matches!(
        posture::set_control(c, &ctx, "IAM-01", &update, "test").await,
        Err(StoreError::Invariant(_))
    ));
    update.status = ControlStatus::InProgress;
    update.owner_id = Some(owner.id);
    update.due_date = chrono::NaiveDate::from_ymd_opt(2027, 1, 31);
    let rec = posture::set_control(c, &ctx, "IAM-01", &update, "test")
        .await
        .unwrap();
    assert_eq!(rec.status, ControlStatus::InProgress);
    update.status = ControlStatus::Implemented;
    posture::set_control(c, &ctx, "IAM-01", &update, "test")
        .await
        .unwrap();
    let states = posture::control_states(c, &ctx).await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].status, ControlStatus::Implemented);
    assert_eq!(
        states[0].due_date,
        chrono::NaiveDate::from_ymd_opt(2027, 1, 31)
    );
    assert!(
        posture::control_states(c, &other_ctx)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(posture::unadopt(c, &ctx, "nist-csf").await.unwrap());
    assert!(posture::profile(c, &ctx).await.unwrap().is_none());
    posture::set_profile(c, &ctx, &serde_json::json!({ "industry": "software" }))
        .await
        .unwrap();
    posture::set_profile(c, &ctx, &serde_json::json!({ "industry": "finance" }))
        .await
        .unwrap();
    assert_eq!(
        posture::profile(c, &ctx).await.unwrap().unwrap().0["industry"],
        "finance"
    );
    assert!(posture::profile(c, &other_ctx).await.unwrap().is_none());
}

fn import<'a>(key: &'a str, pack: &'a str) -> imported_frameworks::NewImport<'a> {
    imported_frameworks::NewImport {
        key,
        name: "Imported",
        version: "1",
        source_format: "yaml",
        original_filename: Some("pack.yaml"),
        pack,
        checks: None,
        requirement_count: 2,
        imported_by: Some("test"),
    }
}

async fn imported_frameworks_are_org_scoped_with_keys_unique_across_scopes(t: TestDb) {
    let (a_user, a) = signup(&t.db, "imp-a@example.com", "ImpA").await;
    let (b_user, b) = signup(&t.db, "imp-b@example.com", "ImpB").await;
    let a_ctx = OrgCtx::for_verified_member(a.id, a_user.id, Role::Owner);
    let b_ctx = OrgCtx::for_verified_member(b.id, b_user.id, Role::Owner);
    let c = t.db.primary();
    let taken = |r: Result<imported_frameworks::ImportedFramework, StoreError>| matches!(r, Err(StoreError::Conflict { ref field }) if field == "key");

    let rec = imported_frameworks::insert_for_org(c, &a_ctx, &import("acme", "pack-a"))
        .await
        .unwrap();
    assert_eq!(rec.org_id, Some(a.id));
    assert_eq!(rec.requirement_count, 2);
    // Another organisation may use the same key privately; the first may not twice.
    imported_frameworks::insert_for_org(c, &b_ctx, &import("acme", "pack-b"))
        .await
        .unwrap();
    assert!(taken(
        imported_frameworks::insert_for_org(c, &a_ctx, &import("acme", "again")).await
    ));
    // Built-in keys belong to the built-in packs, in every scope.
    assert!(taken(
        imported_frameworks::insert_for_org(c, &a_ctx, &import("nist-csf", "x")).await
    ));
    assert!(taken(
        imported_frameworks::insert_platform(c, &import("iso27001", "x")).await
    ));
    // A platform-wide key must be free everywhere, and then shadows nothing.
    assert!(taken(
        imported_frameworks::insert_platform(c, &import("acme", "x")).await
    ));
    imported_frameworks::insert_platform(c, &import("shared", "pack-p"))
        .await
        .unwrap();
    assert!(taken(
        imported_frameworks::insert_for_org(c, &b_ctx, &import("shared", "x")).await
    ));
    assert!(taken(
        imported_frameworks::insert_platform(c, &import("shared", "x")).await
    ));

    // Each organisation lists its own; both see the platform pack.
    let own = imported_frameworks::list_for_org(c, &a_ctx).await.unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].key, "acme");
    let visible: Vec<(String, bool)> = imported_frameworks::list_visible(c, &b_ctx)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.org_id.is_none()))
        .collect();
    assert_eq!(
        visible,
        vec![("acme".to_owned(), false), ("shared".to_owned(), true)]
    );
    assert_eq!(
        imported_frameworks::list_platform(c).await.unwrap().len(),
        1
    );
    let packs = imported_frameworks::org_packs(c, &b_ctx).await.unwrap();
    assert_eq!(packs[0].pack, "pack-b");
    assert_eq!(
        imported_frameworks::platform_packs(c).await.unwrap()[0].pack,
        "pack-p"
    );
    assert_eq!(
        imported_frameworks::get(c, &a_ctx, "acme")
            .await
            .unwrap()
            .unwrap()
            .pack,
        "pack-a"
    );
    assert!(
        imported_frameworks::get(c, &a_ctx, "shared")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        imported_frameworks::lock_visible(c, &a_ctx, "shared")
            .await
            .unwrap()
    );
    assert!(
        !imported_frameworks::lock_visible(c, &a_ctx, "nope")
            .await
            .unwrap()
    );

    // Deleting: refused while adopted, scoped to the owner organisation.
    assert!(posture::adopt(c, &a_ctx, "acme").await.unwrap());
    assert!(matches!(
        imported_frameworks::delete_for_org(c, &a_ctx, "acme").await,
        Err(StoreError::Invariant(_))
    ));
    assert!(matches!(
        imported_frameworks::delete_for_org(c, &a_ctx, "shared").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(posture::unadopt(c, &a_ctx, "acme").await.unwrap());
    let gone = imported_frameworks::delete_for_org(c, &a_ctx, "acme")
        .await
        .unwrap();
    assert_eq!(gone.key, "acme");
    assert!(
        imported_frameworks::list_for_org(c, &a_ctx)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        imported_frameworks::list_for_org(c, &b_ctx)
            .await
            .unwrap()
            .len(),
        1
    );

    assert!(posture::adopt(c, &b_ctx, "shared").await.unwrap());
    assert!(matches!(
        imported_frameworks::delete_platform(c, "shared").await,
        Err(StoreError::Invariant(_))
    ));
    assert!(posture::unadopt(c, &b_ctx, "shared").await.unwrap());
    imported_frameworks::delete_platform(c, "shared")
        .await
        .unwrap();
    assert!(
        imported_frameworks::list_platform(c)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Several transactions importing one key at once, privately and platform-wide: exactly
/// one wins, whatever the interleaving (the per-key lock on PostgreSQL, the single writer on
/// SQLite), and no organisation ends up seeing two frameworks with one key.
async fn imported_framework_key_races_admit_one_import(t: TestDb) {
    let (user, org) = signup(&t.db, "race@example.com", "Race").await;
    let ctx = OrgCtx::for_verified_member(org.id, user.id, Role::Owner);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            db.write(move |txn| {
                Box::pin(async move {
                    let new = import("contested", "pack");
                    if i % 2 == 0 {
                        imported_frameworks::insert_platform(txn, &new).await
                    } else {
                        imported_frameworks::insert_for_org(txn, &ctx, &new).await
                    }
                })
            })
            .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict { field }) => assert_eq!(field, "key"),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1);
    let visible = imported_frameworks::list_visible(t.db.primary(), &ctx)
        .await
        .unwrap();
    assert_eq!(visible.len(), 1);
}

async fn assessments_move_through_their_life_cycle_scoped_to_their_org(t: TestDb) {
    use assay_core::assessment::Answer;
    use assay_store::repo::assessments::{self, AssessmentStatus, ListFilter};
    let (owner, org) = signup(&t.db, "assess@example.com", "Assess").await;
    let (other_user, other) = signup(&t.db, "assess2@example.com", "Assess2").await;
    let ctx = OrgCtx::for_verified_member(org.id, owner.id, Role::Owner);
    let other_ctx = OrgCtx::for_verified_member(other.id, other_user.id, Role::Owner);
    let c = t.db.primary();

    let a = assessments::start(c, &ctx, "cyber-essentials", "user:a")
        .await
        .unwrap();
    assert_eq!(a.status, AssessmentStatus::InProgress);
    // One open session per framework; another framework or another org is free.
    assert!(matches!(
        assessments::start(c, &ctx, "cyber-essentials", "user:a").await,
        Err(StoreError::Conflict { ref field }) if field == "framework"
    ));
    let b = assessments::start(c, &ctx, "soc2", "user:a").await.unwrap();
    assessments::start(c, &other_ctx, "cyber-essentials", "user:b")
        .await
        .unwrap();
    assert_eq!(
        assessments::open_for(c, &ctx, "cyber-essentials")
            .await
            .unwrap()
            .map(|x| x.id),
        Some(a.id)
    );

    let (before, first) =
        assessments::set_answer(c, &ctx, a.id, "IAM-01.q1", Answer::Partial, None, "user:a")
            .await
            .unwrap();
    assert!(before.is_none());
    assert_eq!(first.answer, Answer::Partial);
    let (before, _) = assessments::set_answer(
        c,
        &ctx,
        a.id,
        "IAM-01.q1",
        Answer::Yes,
        Some("all staff"),
        "user:a",
    )
    .await
    .unwrap();
    assert_eq!(before.map(|x| x.answer), Some(Answer::Partial));
    assessments::set_answer(c, &ctx, a.id, "IAM-02.q1", Answer::Unknown, None, "user:a")
        .await
        .unwrap();
    let stored = assessments::answers(c, &ctx, a.id).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].notes.as_deref(), Some("all staff"));
    // Unknown is not progress.
    let counts = assessments::answered_counts(c, &ctx, &[a.id, b.id])
        .await
        .unwrap();
    assert_eq!(counts.get(&a.id), Some(&1));
    assert_eq!(counts.get(&b.id), None);

    // Another organisation sees and touches nothing.
    assert!(
        assessments::get(c, &other_ctx, a.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        assessments::answers(c, &other_ctx, a.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        assessments::set_answer(c, &other_ctx, a.id, "IAM-01.q1", Answer::No, None, "x").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        assessments::complete(c, &other_ctx, a.id, &serde_json::json!({}), "x").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        assessments::delete(c, &other_ctx, a.id).await,
        Err(StoreError::NotFound { .. })
    ));

    let result = serde_json::json!({ "score": 42 });
    let done = assessments::complete(c, &ctx, a.id, &result, "user:a")
        .await
        .unwrap();
    assert_eq!(done.status, AssessmentStatus::Completed);
    assert_eq!(done.result, Some(result));
    assert_eq!(done.completed_by.as_deref(), Some("user:a"));
    // Completed: answers are frozen, completing twice is refused, the framework is free.
    assert!(matches!(
        assessments::set_answer(c, &ctx, a.id, "IAM-01.q1", Answer::No, None, "user:a").await,
        Err(StoreError::Invariant(_))
    ));
    assert_eq!(
        assessments::answers(c, &ctx, a.id).await.unwrap()[0].answer,
        Answer::Yes
    );
    assert!(matches!(
        assessments::complete(c, &ctx, a.id, &serde_json::json!({}), "user:a").await,
        Err(StoreError::Invariant(_))
    ));
    let again = assessments::start(c, &ctx, "cyber-essentials", "user:a")
        .await
        .unwrap();

    // Confirming needs a completed session, once.
    assert!(matches!(
        assessments::confirm(c, &ctx, again.id, &serde_json::json!([]), "user:a").await,
        Err(StoreError::Invariant(_))
    ));
    let confirmed = assessments::confirm(c, &ctx, a.id, &serde_json::json!(["IAM-01"]), "user:a")
        .await
        .unwrap();
    assert_eq!(confirmed.status, AssessmentStatus::Confirmed);
    assert_eq!(confirmed.applied, Some(serde_json::json!(["IAM-01"])));
    assert!(matches!(
        assessments::confirm(c, &ctx, a.id, &serde_json::json!([]), "user:a").await,
        Err(StoreError::Invariant(_))
    ));

    // Listing: newest first, filtered, paged, scoped.
    let all = assessments::list(
        c,
        &ctx,
        &ListFilter {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        all.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![again.id, b.id, a.id]
    );
    let page = assessments::list(
        c,
        &ctx,
        &ListFilter {
            limit: 1,
            before: Some(again.id),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(page[0].id, b.id);
    let ce_open = assessments::list(
        c,
        &ctx,
        &ListFilter {
            framework_key: Some("cyber-essentials".into()),
            status: Some(AssessmentStatus::InProgress),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ce_open.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![again.id]
    );
    assert_eq!(
        assessments::list(
            c,
            &other_ctx,
            &ListFilter {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .len(),
        1
    );

    // A confirmed session is kept; others are deleted with their answers.
    assert!(matches!(
        assessments::delete(c, &ctx, a.id).await,
        Err(StoreError::Invariant(_))
    ));
    assessments::set_answer(c, &ctx, again.id, "IAM-01.q1", Answer::No, None, "user:a")
        .await
        .unwrap();
    assert_eq!(
        assessments::delete(c, &ctx, again.id).await.unwrap().id,
        again.id
    );
    assert!(assessments::get(c, &ctx, again.id).await.unwrap().is_none());
    assert!(
        assessments::answers(c, &ctx, again.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn readiness_snapshots_keep_one_daily_per_day_and_history_in_order(t: TestDb) {
    use assay_store::repo::readiness_snapshots::{
        self as snapshots, FrameworkScore, NewSnapshot, SnapshotTrigger,
    };
    use chrono::{Duration, TimeZone, Utc};
    let (owner, org) = signup(&t.db, "snap@example.com", "Snap").await;
    let (other_user, other) = signup(&t.db, "snap2@example.com", "Snap2").await;
    let (_, idle) = signup(&t.db, "snap3@example.com", "Snap3").await;
    let ctx = OrgCtx::for_verified_member(org.id, owner.id, Role::Owner);
    let other_ctx = OrgCtx::for_verified_member(other.id, other_user.id, Role::Owner);
    let c = t.db.primary();
    posture::adopt(c, &ctx, "cyber-essentials").await.unwrap();
    posture::adopt(c, &other_ctx, "soc2").await.unwrap();

    let snap = |trigger, score: u8| NewSnapshot {
        trigger,
        overall_score: Some(score),
        overall_percent: Some(f64::from(score) + 0.25),
        frameworks: vec![FrameworkScore {
            framework: "cyber-essentials".into(),
            score: Some(score),
            percent: Some(f64::from(score) + 0.25),
            met: u32::from(score),
            partial: 1,
            missing: 2,
            not_applicable: 0,
        }],
    };
    let day1 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let day = snapshots::day_of(day1);
    assert_eq!(day, "2026-03-01");
    assert_eq!(
        snapshots::orgs_due_daily(c, &day).await.unwrap(),
        {
            let mut v = vec![org.id, other.id];
            v.sort();
            v
        },
        "only organisations with an adopted framework are due"
    );
    assert!(
        !snapshots::orgs_due_daily(c, &day)
            .await
            .unwrap()
            .contains(&idle.id)
    );

    let first = snapshots::record(c, &ctx, &snap(SnapshotTrigger::Daily, 10), day1)
        .await
        .unwrap()
        .expect("first daily of the day is stored");
    assert_eq!(first.frameworks[0].met, 10);
    // The same day again (another node, a restart) stores nothing.
    assert!(
        snapshots::record(
            c,
            &ctx,
            &snap(SnapshotTrigger::Daily, 11),
            day1 + Duration::hours(3)
        )
        .await
        .unwrap()
        .is_none()
    );
    assert_eq!(
        snapshots::orgs_due_daily(c, &day).await.unwrap(),
        vec![other.id]
    );
    // Change snapshots are not limited.
    for (i, score) in [20u8, 30, 40].into_iter().enumerate() {
        snapshots::record(
            c,
            &ctx,
            &snap(SnapshotTrigger::Change, score),
            day1 + Duration::hours(4 + i as i64),
        )
        .await
        .unwrap()
        .unwrap();
    }
    snapshots::record(
        c,
        &ctx,
        &snap(SnapshotTrigger::Daily, 50),
        day1 + Duration::days(1),
    )
    .await
    .unwrap()
    .unwrap();

    let all = snapshots::history(c, &ctx, None, 100).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|s| s.overall_score.unwrap())
            .collect::<Vec<_>>(),
        vec![10, 20, 30, 40, 50]
    );
    assert_eq!(all[0].trigger, SnapshotTrigger::Daily);
    assert_eq!(all[1].trigger, SnapshotTrigger::Change);
    assert_eq!(all[1].overall_percent, Some(20.25));
    // The most recent `limit`, oldest first; `since` bounds the window.
    let last_two = snapshots::history(c, &ctx, None, 2).await.unwrap();
    assert_eq!(
        last_two
            .iter()
            .map(|s| s.overall_score.unwrap())
            .collect::<Vec<_>>(),
        vec![40, 50]
    );
    let since = snapshots::history(c, &ctx, Some(day1 + Duration::hours(5)), 100)
        .await
        .unwrap();
    assert_eq!(since.len(), 3);
    let latest = snapshots::latest(c, &ctx).await.unwrap().unwrap();
    assert_eq!(latest.overall_score, Some(50));
    assert!(snap(SnapshotTrigger::Change, 50).same_scores_as(&latest));
    assert!(!snap(SnapshotTrigger::Change, 49).same_scores_as(&latest));

    assert!(
        snapshots::history(c, &other_ctx, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(snapshots::latest(c, &other_ctx).await.unwrap().is_none());
}

async fn ai_safety_reviews_are_per_organisation_and_resolve_once(t: TestDb) {
    use ai_safety_reviews::{NewReview, Resolved, ReviewStatus};
    let (user, a) = signup(&t.db, "escalated@example.com", "Escalating").await;
    let (other, b) = signup(&t.db, "other@example.com", "Other").await;
    let ctx_a = OrgCtx::for_verified_member(a.id, user.id, Role::Owner);
    let ctx_b = OrgCtx::for_verified_member(b.id, other.id, Role::Owner);
    let rules = vec!["disallowed.self_harm".to_owned()];
    let review = ai_safety_reviews::insert(
        t.db.primary(),
        &ctx_a,
        &NewReview {
            actor: &Actor::User(user.id),
            task: "chat",
            direction: "input",
            rules: &rules,
            resource: Some(("conversation", "c-1")),
            request_id: Some("req-1"),
        },
    )
    .await
    .unwrap();
    assert_eq!(review.status, ReviewStatus::Open);
    assert_eq!(review.rules, rules);
    assert_eq!(review.resource_id.as_deref(), Some("c-1"));

    // Another organisation neither lists nor resolves it.
    let db = t.db.primary();
    assert!(
        ai_safety_reviews::list(db, &ctx_b, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let outsider = Actor::User(other.id);
    let res = ai_safety_reviews::resolve(db, &ctx_b, review.id, &outsider, "x").await;
    assert_eq!(res.unwrap(), Resolved::NotFound);
    let open = ai_safety_reviews::list(db, &ctx_a, Some(ReviewStatus::Open), 10).await;
    assert_eq!(open.unwrap(), vec![review.clone()]);

    let admin = Actor::User(user.id);
    let res = ai_safety_reviews::resolve(db, &ctx_a, review.id, &admin, "called them").await;
    let Resolved::Now(done) = res.unwrap() else {
        panic!("the first resolution should succeed");
    };
    assert_eq!(done.status, ReviewStatus::Resolved);
    assert_eq!(done.resolution.as_deref(), Some("called them"));
    assert_eq!(done.resolver_type.as_deref(), Some("user"));
    assert!(done.resolved_at.is_some());
    // A second resolution changes nothing.
    let again = ai_safety_reviews::resolve(db, &ctx_a, review.id, &admin, "again").await;
    assert_eq!(again.unwrap(), Resolved::Already(done.clone()));
    let open = ai_safety_reviews::list(db, &ctx_a, Some(ReviewStatus::Open), 10).await;
    assert!(open.unwrap().is_empty());
    let all = ai_safety_reviews::list(db, &ctx_a, None, 10).await;
    assert_eq!(all.unwrap(), vec![done]);
}

async fn ai_settings_keep_pii_restoration(t: TestDb) {
    let (user, org) = signup(&t.db, "restore@example.com", "Restoring").await;
    let ctx = OrgCtx::for_verified_member(org.id, user.id, Role::Owner);
    let db = t.db.primary();
    assert!(!ai_settings::get(db, &ctx).await.unwrap().restore_pii);
    let new = ai_settings::AiSettings {
        restore_pii: true,
        ..Default::default()
    };
    assert!(ai_settings::put(db, &ctx, &new).await.unwrap().restore_pii);
    // Claiming the budget warning keeps it.
    assert!(
        ai_settings::claim_budget_warning(db, &ctx, "2026-12")
            .await
            .unwrap()
    );
    assert!(ai_settings::get(db, &ctx).await.unwrap().restore_pii);
}
