//! Prometheus metrics: the process-wide `metrics` recorder and its own listener.
//!
//! Every crate records through the `metrics` facade (`assay_db_replica_fallbacks_total`,
//! the AI gateway's token and cost counters, ...); this installs the Prometheus recorder and
//! serves `GET /metrics` on `server.metrics_addr`, never on the public port.

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusBuilder;

/// Install the recorder and serve it; returns the bound address. Fails when the address
/// cannot be bound or a recorder is already installed.
pub async fn serve(addr: &str) -> Result<std::net::SocketAddr, String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let upkeep = handle.clone();
    // The exporter keeps histograms bounded only if upkeep runs now and then.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new().route("/metrics", get(move || std::future::ready(handle.render())));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    tracing::info!(addr = %bound, "metrics at /metrics");
    Ok(bound)
}
