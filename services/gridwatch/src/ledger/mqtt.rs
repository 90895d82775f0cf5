//! Purchases from the MQTT topic `<root>/market/purchases`, inside the API service.
//!
//! Its own persistent session (client id `<mqtt.client_id>-purchases`), QoS 1, manual acks:
//! each message is parsed and submitted through the same code as `POST /api/v1/purchases`, and
//! acknowledged only after its transaction commits, one at a time, so in arrival order. A
//! database failure holds the message (retried with backoff) and everything behind it; a
//! message never committed is never acknowledged, and the broker redelivers it. Redelivery is
//! harmless: a stored purchase is idempotent, and a refusal already recorded is not recorded
//! twice.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

use gridwatch_core::regulation::Regulation;

use super::purchase::{parse, Refusal, RefusalCode};
use super::submit::{record_unparsed, submit, Channel, PurchaseError, Submission};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::mqtt::session::{Backoff, Delivery};
use crate::mqtt::{broker_options, Session};
use crate::shutdown::Shutdown;

/// Largest purchase payload accepted (the contract's 64 KiB); larger ones are refused as
/// `payload_too_large` and kept (truncated) in the rejections store.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 10;
/// The actor written into histories for purchases that came over MQTT.
pub const MQTT_ACTOR: &str = "mqtt:market";

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The client id of the purchases session.
pub fn client_id(config: &Config) -> String {
    format!("{}-purchases", config.mqtt.client_id)
}

/// The subscription filter: the purchases topic, shared if so configured.
pub fn filter(config: &Config) -> String {
    let topic = gridwatch_core::topic::purchase_filter(&config.mqtt.topic_root);
    match &config.mqtt.share_group {
        Some(group) => format!("$share/{group}/{topic}"),
        None => topic,
    }
}

/// Consumes purchases until `shutdown`.
pub async fn run(
    config: Config,
    regulation: Arc<Regulation>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let client_id = client_id(&config);
    let options = broker_options(&config.mqtt, &client_id)?;
    let mut session = Session::start(
        options,
        vec![filter(&config)],
        Backoff {
            min: Duration::from_millis(config.mqtt.reconnect_min_ms),
            max: Duration::from_millis(config.mqtt.reconnect_max_ms),
        },
        // Purchases are small and few; the budget only guards against a flood.
        crate::mqtt::HeldBytes::new(config.ingest.max_held_bytes),
        metrics.clone(),
    );
    tracing::info!(%client_id, "Consuming purchases from MQTT.");
    let mut consumer = Consumer {
        config: &config,
        regulation: &regulation,
        metrics: &metrics,
        client: None,
    };
    loop {
        let delivery = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            delivery = session.deliveries.recv() => match delivery {
                Some(delivery) => delivery,
                None => break,
            },
        };
        if consumer.process(&delivery, &shutdown).await {
            session.acks.ack(delivery.ack_token());
        } else {
            // Given up at shutdown: not acknowledged, so the broker redelivers it.
            break;
        }
    }
    drop(session.acks);
    let _ = tokio::time::timeout(Duration::from_secs(10), session.task).await;
    tracing::info!("Stopped consuming purchases.");
    Ok(())
}

struct Consumer<'a> {
    config: &'a Config,
    regulation: &'a Regulation,
    metrics: &'a Metrics,
    client: Option<Client>,
}

impl Consumer<'_> {
    /// Commits what `delivery` leads to; false if shutdown came first.
    async fn process(&mut self, delivery: &Delivery, shutdown: &Shutdown) -> bool {
        let payload = &delivery.publish.payload[..];
        let submission = Submission {
            actor: MQTT_ACTOR,
            channel: Channel::Mqtt {
                topic: &delivery.publish.topic,
                raw: payload,
                received_at: delivery.received_at,
            },
        };
        let parsed = if payload.len() > MAX_PAYLOAD_BYTES {
            Err(Refusal::new(
                RefusalCode::PayloadTooLarge,
                format!(
                    "payload is {} bytes, at most {MAX_PAYLOAD_BYTES} are accepted",
                    payload.len()
                ),
            ))
        } else {
            parse(payload)
        };
        let mut delay = RETRY_MIN;
        loop {
            if shutdown.is_triggered() {
                return false;
            }
            let client = match self.client.as_mut() {
                Some(client) if !client.is_closed() => client,
                _ => match crate::db::connect(&self.config.database_url).await {
                    Ok(client) => self.client.insert(client),
                    Err(error) => {
                        tracing::warn!(error = %crate::db::describe(&error), retry_in_ms = delay.as_millis() as u64,
                            "Failed to connect to the database; holding the purchase.");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(RETRY_MAX);
                        continue;
                    }
                },
            };
            let result = match &parsed {
                Ok(request) => submit(client, self.regulation, request, submission).await,
                Err(refusal) => match record_unparsed(client, refusal, submission).await {
                    Ok(()) => Err(PurchaseError::Refused(refusal.clone())),
                    Err(error) => Err(PurchaseError::Database(error)),
                },
            };
            let outcome = match result {
                Ok(outcome) if outcome.created => "accepted",
                Ok(_) => "duplicate",
                Err(PurchaseError::Refused(refusal)) => {
                    tracing::info!(code = refusal.code.as_str(), detail = %refusal.message,
                        "Refused a purchase from MQTT.");
                    refusal.code.as_str()
                }
                Err(PurchaseError::Database(error)) => {
                    if crate::db::is_connection_error(&error) {
                        self.client = None;
                    }
                    tracing::warn!(error = %crate::db::describe(&error), retry_in_ms = delay.as_millis() as u64,
                        "Failed to store a purchase from MQTT; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                    continue;
                }
            };
            self.metrics
                .api
                .purchases
                .with_label_values(&[outcome])
                .inc();
            return true;
        }
    }
}
