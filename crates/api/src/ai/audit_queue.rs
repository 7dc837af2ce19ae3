//! Audit events of AI calls, written off the request path: calls enqueue without waiting
//! and the bookkeeping thread appends them in batches gathered over 200 ms,
//! each batch in one transaction with a handful of statements per organisation (the audit
//! chain serialises appends per organisation, so one transaction per event would put a
//! chain lock on every AI call). A failed batch is logged and counted
//! (`assay_ai_audit_dropped_total`); the calls it described have already been answered.
//! At shutdown the server flushes the queue ([`AuditQueue::flush`]) before it exits.

use assay_infra::background::{Background, BatchQueue};
use assay_store::Db;
use assay_store::repo::audit::{self, NewAuditEvent};
use std::time::Duration;

#[derive(Clone)]
pub struct AuditQueue {
    queue: BatchQueue<NewAuditEvent>,
}

impl AuditQueue {
    /// Start the writer on `runtime` (the bookkeeping thread, which `db` must belong to);
    /// it ends when every queue clone is dropped, after writing what is queued.
    pub fn start(runtime: &Background, db: Db, capacity: usize) -> Self {
        // One transaction per bookkeeping window instead of one per handful of events: each
        // statement is a round trip to the database, and on SQLite every transaction
        // serialises with the others.
        let queue = BatchQueue::start_bookkeeping(
            "ai_audit",
            runtime.handle(),
            capacity,
            move |events| {
                let db = db.clone();
                async move {
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
            },
        );
        Self { queue }
    }

    /// Enqueue without waiting; a full queue drops the event and counts it.
    pub fn record(&self, ev: NewAuditEvent) {
        if self.queue.push(ev).is_err() {
            metrics::counter!("assay_ai_audit_dropped_total", "reason" => "queue_full")
                .increment(1);
            tracing::warn!("AI audit event dropped: queue full");
        }
    }

    /// Wait while the writer is far behind (see `BatchQueue::wait_for_room`); whether it
    /// waited.
    pub async fn wait_for_room(&self) -> bool {
        self.queue.wait_for_room().await
    }

    /// Wait until every event enqueued before this call has been written (or counted lost).
    pub async fn flush(&self) {
        self.queue.flush().await;
    }
}
