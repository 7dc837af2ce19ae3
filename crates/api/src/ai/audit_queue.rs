//! Audit events of AI calls, written off the request path: calls enqueue without waiting
//! and one task appends them in batches gathered over a few milliseconds, each batch in
//! one transaction with a handful of statements per organisation (the audit chain
//! serialises appends per organisation, so one transaction per event would put a chain
//! lock on every AI call). A failed batch is logged and counted
//! (`assay_ai_audit_dropped_total`); the calls it described have already been answered.

use assay_store::Db;
use assay_store::repo::audit::{self, NewAuditEvent};
use std::time::Duration;
use tokio::sync::mpsc;

const BATCH: usize = 512;
/// After the first event of a batch, how long to let more arrive: under load one
/// transaction per tick instead of one per handful of events (each statement is a round
/// trip to the database, and on SQLite every transaction serialises with the others).
const GATHER: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct AuditQueue {
    tx: mpsc::Sender<NewAuditEvent>,
}

impl AuditQueue {
    /// Start the writer (needs a Tokio runtime); it ends when every queue clone is dropped,
    /// after writing what is queued.
    pub fn start(db: Db, capacity: usize) -> Self {
        let (tx, mut rx) = mpsc::channel::<NewAuditEvent>(capacity.max(1));
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                if batch.len() < BATCH {
                    tokio::time::sleep(GATHER).await;
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(ev) => batch.push(ev),
                            Err(_) => break,
                        }
                    }
                }
                let events = std::mem::take(&mut batch);
                let n = events.len() as u64;
                let written = db
                    .write(move |txn| {
                        Box::pin(async move {
                            audit::append_batch(txn, events).await?;
                            Ok(())
                        })
                    })
                    .await;
                if let Err(e) = written {
                    metrics::counter!("assay_ai_audit_dropped_total", "reason" => "write_failed")
                        .increment(n);
                    tracing::error!(error = %e, events = n, "AI audit events lost: write failed");
                    // A failing database: do not spin on it.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Self { tx }
    }

    /// Enqueue without waiting; a full queue drops the event and counts it.
    pub fn record(&self, ev: NewAuditEvent) {
        if self.tx.try_send(ev).is_err() {
            metrics::counter!("assay_ai_audit_dropped_total", "reason" => "queue_full")
                .increment(1);
            tracing::warn!("AI audit event dropped: queue full");
        }
    }
}
