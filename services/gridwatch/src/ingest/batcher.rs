//! The batcher task: parses deliveries into batches, closed by size or by time.
//!
//! A batch closes when it holds `batch_max_items` readings and rejections, or
//! `batch_max_messages` messages, or `batch_max_delay` after its first message: the message
//! limit keeps batches below the broker's in-flight window (so one commits while the next
//! fills), and the timer closes the last batch of a burst.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::batch::{Batch, Parser, TopicKind};
use crate::config::IngestConfig;
use crate::metrics::Metrics;
use crate::mqtt::Delivery;
use crate::shutdown::Shutdown;

/// Runs until shutdown (or until the session stops delivering), then hands over the open batch
/// and closes `batches`, which lets the writers drain and stop.
pub async fn run(
    mut deliveries: mpsc::UnboundedReceiver<Delivery>,
    batches: mpsc::Sender<Batch>,
    parser: Parser,
    config: IngestConfig,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    let max_delay = config.batch_max_delay();
    // Resolved once: a labelled lookup per message costs a hash and a lock.
    let message_counters = [TopicKind::Meter, TopicKind::Gateway, TopicKind::Other]
        .map(|kind| metrics.ingest.messages.with_label_values(&[kind.label()]));
    let mut seq = 0u64;
    let mut batch = Batch::new(seq);
    let mut deadline: Option<Instant> = None;
    loop {
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            _ = timer => {}
            delivery = deliveries.recv() => match delivery {
                Some(delivery) => {
                    if batch.is_empty() {
                        batch.opened_at = std::time::Instant::now();
                        deadline = Some(Instant::now() + max_delay);
                    }
                    let kind = batch.add(delivery, &parser);
                    message_counters[kind as usize].inc();
                    if batch.items() < config.batch_max_items
                        && batch.messages.len() < config.batch_max_messages
                    {
                        continue;
                    }
                }
                None => break,
            },
        }
        if !batch.is_empty() {
            seq += 1;
            let full = std::mem::replace(&mut batch, Batch::new(seq));
            deadline = None;
            if batches.send(full).await.is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.send(batch).await;
    }
}
