//! Releases acknowledgements in arrival order.
//!
//! Writers commit batches concurrently and may finish out of order; a batch's messages are
//! acknowledged only once it and every earlier batch are done.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use crate::mqtt::session::AckToken;
use crate::mqtt::AckHandle;

/// A batch a writer is done with.
#[derive(Debug)]
pub struct Committed {
    /// The batch's position in arrival order.
    pub seq: u64,
    /// Acks to send: every message of the batch, or none if it could not be committed.
    pub tokens: Vec<AckToken>,
}

/// Runs until every writer has stopped; then drops `acks`, which lets the session disconnect.
pub async fn run(mut committed: mpsc::UnboundedReceiver<Committed>, acks: AckHandle) {
    let mut next = 0u64;
    let mut waiting: BTreeMap<u64, Vec<AckToken>> = BTreeMap::new();
    while let Some(done) = committed.recv().await {
        waiting.insert(done.seq, done.tokens);
        while let Some(tokens) = waiting.remove(&next) {
            for token in tokens {
                acks.ack(token);
            }
            next += 1;
        }
    }
    if !waiting.is_empty() {
        tracing::warn!(
            batches = waiting.len(),
            "Stopped with batches waiting for an earlier one; the broker will redeliver them."
        );
    }
}
