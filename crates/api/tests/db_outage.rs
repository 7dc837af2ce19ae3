//! Database outage while serving: readiness turns 503 quickly, liveness stays 200,
//! and readiness recovers when the database returns — without restarting Assay.
//!
//! The outage is real at the network level: the app reaches PostgreSQL through a local TCP
//! proxy that this test can cut (closing every live connection and refusing new ones) and
//! restore, so the shared PostgreSQL server other tests use keeps running.

mod support;

use assay_store::testing::CuttableProxy;
use assay_store::testing::{create_postgres_database, drop_postgres_database, service_url};
use std::time::{Duration, Instant};
use support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_recovers_without_restart() {
    let Some(admin_url) = service_url("ASSAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (settings, name) = create_postgres_database(&admin_url).await;
    let real = assay_store::testing::expose_for_tests(&settings.url);
    let proxy = CuttableProxy::to_url(&real).await;
    let via_proxy = proxy.url(&real);

    let app = TestApp::builder()
        .sqlite() // the builder's own database is replaced by the proxied one below
        .config(move |c| {
            c.database.url = via_proxy;
            c.database.acquire_timeout_secs = 1;
        })
        .spawn()
        .await;
    assert_eq!(app.get("/health/ready").await.status(), 200);

    proxy.cut();
    let started = Instant::now();
    let res = app.get("/health/ready").await;
    let took = started.elapsed();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["status"], "down");
    assert!(
        took < Duration::from_secs(2),
        "readiness took {took:?} to report the outage"
    );
    assert_eq!(app.get("/health/live").await.status(), 200);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if app.get("/health/ready").await.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness did not recover after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(app);
    drop_postgres_database(&admin_url, &name).await;
}
