//! Writer tasks: take batches from the shared queue and commit each, retrying with backoff
//! until it is committed (or, once shutdown is asked for, until the grace period ends).
//!
//! A batch that cannot be committed is never acknowledged: the broker keeps it and the rest of
//! the stream (its queue is sized for the outage we promise to survive).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Mutex};

use super::batch::Batch;
use super::sequencer::Committed;
use super::writer::{commit, Connection, WriterContext};
use crate::db::is_connection_error;
use crate::shutdown::Shutdown;

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// One writer: its name (for `ingest_counters`) and what it shares with the others.
pub async fn run(
    name: String,
    ctx: Arc<WriterContext>,
    queue: Arc<Mutex<mpsc::Receiver<Batch>>>,
    committed: mpsc::UnboundedSender<Committed>,
    grace: Duration,
    shutdown: Shutdown,
) {
    let mut connection: Option<Connection> = None;
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            queue.recv().await
        };
        let Some(batch) = batch else { return };
        let tokens =
            if commit_with_retry(&name, &ctx, &mut connection, &batch, grace, &shutdown).await {
                batch.messages.iter().map(|m| m.ack).collect()
            } else {
                // Given up at shutdown: nothing is acknowledged, the broker redelivers.
                Vec::new()
            };
        let _ = committed.send(Committed {
            seq: batch.seq,
            tokens,
        });
    }
}

async fn commit_with_retry(
    name: &str,
    ctx: &WriterContext,
    connection: &mut Option<Connection>,
    batch: &Batch,
    grace: Duration,
    shutdown: &Shutdown,
) -> bool {
    let ingest = &ctx.metrics.ingest;
    let mut delay = RETRY_MIN;
    let mut stopping_since: Option<Instant> = None;
    loop {
        if shutdown.is_triggered() {
            let since = *stopping_since.get_or_insert_with(Instant::now);
            if since.elapsed() > grace {
                tracing::error!(
                    batch = batch.seq,
                    messages = batch.messages.len(),
                    "Stopping without committing a batch; the broker will redeliver it."
                );
                return false;
            }
        }
        if connection.is_none() {
            match Connection::open(&ctx.database_url).await {
                Ok(c) => *connection = Some(c),
                Err(error) => {
                    ingest.db_errors.with_label_values(&["connect"]).inc();
                    tracing::warn!(error = %crate::db::describe(&error), writer = name, retry_in_ms = delay.as_millis() as u64,
                        "Failed to open a database connection; holding the batch.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let started = Instant::now();
        match commit(conn, ctx, name, batch).await {
            Ok(outcome) => {
                ingest
                    .commit_duration
                    .observe(started.elapsed().as_secs_f64());
                ingest.batch_items.observe(batch.items() as f64);
                tracing::debug!(
                    batch = batch.seq,
                    stored = outcome.stored,
                    absorbed = outcome.absorbed,
                    rejected = outcome.rejected,
                    "Committed a batch."
                );
                return true;
            }
            Err(error) => {
                ingest.db_errors.with_label_values(&["commit"]).inc();
                // A missing partition (dropped by retention while cached) shows as a check
                // violation; forget what we knew and recreate on the next attempt.
                ctx.partitions.forget();
                if is_connection_error(&error) {
                    *connection = None;
                }
                tracing::warn!(error = %crate::db::describe(&error), writer = name, batch = batch.seq,
                    retry_in_ms = delay.as_millis() as u64,
                    "Failed to commit a batch; retrying.");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}
