//! The ingest service: MQTT readings into PostgreSQL, at least once, nothing lost.
//!
//! ```text
//!  broker ──> session task ──deliveries──> batcher ──batches──> writer 1..n ──> PostgreSQL
//!               ^  (event loop only)          (parse)             (commit)
//!               └────────── acks, in arrival order <── sequencer <──┘
//! ```
//! A message is acknowledged only after the transaction holding its readings and rejections
//! commits; anything not acknowledged is redelivered by the broker, and storing is idempotent.

pub mod batch;
pub mod batcher;
pub mod sequencer;
pub mod worker;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, Mutex};

use crate::config::Config;
use crate::db::partitions::PartitionCache;
use crate::metrics::Metrics;
use crate::mqtt::session::Backoff;
use crate::mqtt::{broker_options, HeldBytes, Session};
use crate::registry::{MeterDirectory, SharedDirectory};
use crate::shutdown::Shutdown;
use batch::Parser;
use writer::{RejectionLimits, WriterContext};

/// How often the registry version is checked.
const REGISTRY_POLL: Duration = Duration::from_secs(1);
/// How often partitions are created ahead of the wall clock.
const PARTITIONS_EVERY: Duration = Duration::from_secs(3600);

/// The MQTT subscription filters of `config`: both reading topics, shared if so configured.
pub fn subscription_filters(config: &Config) -> Vec<String> {
    gridwatch_core::topic::reading_filters(&config.mqtt.topic_root)
        .into_iter()
        .map(|f| match &config.mqtt.share_group {
            Some(group) => format!("$share/{group}/{f}"),
            None => f,
        })
        .collect()
}

/// Runs ingest until `shutdown`, then commits and acknowledges what it holds and disconnects.
///
/// The database must be migrated (every service does it at start).
pub async fn run(config: &Config, metrics: Arc<Metrics>, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut client = crate::db::connect_creating(&config.database_url).await?;
    let directory = Arc::new(SharedDirectory::new(
        MeterDirectory::load(&mut client)
            .await
            .context("Failed to load the registry")?,
    ));
    metrics
        .ingest
        .registry_meters
        .set(directory.snapshot().len() as i64);
    let partitions = Arc::new(PartitionCache::default());
    partitions
        .ensure_ahead(&client, chrono::Utc::now())
        .await
        .context("Failed to create the readings partitions")?;
    drop(client);

    tokio::spawn(directory.clone().keep_fresh(
        config.database_url.clone(),
        metrics.clone(),
        REGISTRY_POLL,
        shutdown.clone(),
    ));
    tokio::spawn(keep_partitions_ahead(
        config.database_url.clone(),
        partitions.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));

    let options = broker_options(&config.mqtt, &config.mqtt.client_id)?;
    let session = Session::start(
        options,
        subscription_filters(config),
        Backoff {
            min: Duration::from_millis(config.mqtt.reconnect_min_ms),
            max: Duration::from_millis(config.mqtt.reconnect_max_ms),
        },
        HeldBytes::new(config.ingest.max_held_bytes),
        metrics.clone(),
    );
    tracing::info!(
        client_id = %config.mqtt.client_id,
        topic_root = %config.mqtt.topic_root,
        share_group = ?config.mqtt.share_group,
        writers = config.ingest.writers,
        "Ingest started."
    );

    let ctx = Arc::new(WriterContext {
        database_url: config.database_url.clone(),
        directory,
        partitions,
        metrics: metrics.clone(),
        limits: RejectionLimits::from_config(&config.ingest),
        stage_next: std::sync::atomic::AtomicU32::new(0),
    });
    let (batch_tx, batch_rx) = mpsc::channel(config.ingest.writers);
    let queue = Arc::new(Mutex::new(batch_rx));
    let (committed_tx, committed_rx) = mpsc::unbounded_channel();
    let grace = Duration::from_secs(config.ingest.shutdown_grace_secs);
    let mut writers = Vec::new();
    for n in 0..config.ingest.writers {
        writers.push(tokio::spawn(worker::run(
            format!("{}/{n}", config.mqtt.client_id),
            ctx.clone(),
            queue.clone(),
            committed_tx.clone(),
            grace,
            shutdown.clone(),
        )));
    }
    drop(committed_tx);
    let sequencer = tokio::spawn(sequencer::run(committed_rx, session.acks));
    batcher::run(
        session.deliveries,
        batch_tx,
        Parser::new(&config.mqtt.topic_root, &config.ingest),
        config.ingest.clone(),
        metrics.clone(),
        shutdown,
    )
    .await;
    for writer in writers {
        let _ = writer.await;
    }
    let _ = sequencer.await;
    // The session sends the queued acks and a DISCONNECT; don't wait forever on a dead broker.
    let _ = tokio::time::timeout(grace, session.task).await;
    tracing::info!("Ingest stopped.");
    Ok(())
}

async fn keep_partitions_ahead(
    url: crate::config::Secret,
    partitions: Arc<PartitionCache>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PARTITIONS_EVERY) => {}
            _ = shutdown.wait() => return,
        }
        let result = match crate::db::connect(&url).await {
            Ok(client) => partitions.ensure_ahead(&client, chrono::Utc::now()).await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            metrics
                .ingest
                .db_errors
                .with_label_values(&["partition"])
                .inc();
            tracing::warn!(error = %crate::db::describe(&error), "Failed to create partitions ahead; will retry.");
        }
    }
}
