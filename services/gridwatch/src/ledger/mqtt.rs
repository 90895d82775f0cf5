//! Purchases from the MQTT topic `<root>/market/purchases`, inside the API service.
//!
//! Its own persistent session (client id `<mqtt.client_id>-purchases`), QoS 1, manual acks:
//! each message is parsed and submitted through the same code as `POST /api/v1/purchases`, and
//! acknowledged only after its transaction commits, one at a time, so in arrival order; a
//! message never committed is never acknowledged, and the broker redelivers it. Redelivery is
//! harmless: a stored purchase is idempotent, and a refusal already recorded is not recorded
//! twice.
//!
//! A database that cannot work for anyone at the moment ([`database_unavailable`]: the
//! connection lost, out of disk or memory, a server shutting down, a standby after a failover, a
//! serialization failure) holds the message and everything behind it, retried with backoff,
//! forever: that is not the message's fault, and holding it loses nothing. Any other database
//! error is retried [`MAX_ATTEMPTS_ON_STATEMENT_ERROR`] times: an error that comes back every
//! time is caused by the message itself, and retrying it forever would stop every purchase
//! behind it. Such a message is then kept as a rejection (see `Consumer::keep_unstorable`) and
//! acknowledged.

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

/// Attempts at storing one purchase (or its refusal) that the database answers with an error
/// that is not [`database_unavailable`], before the message is kept as a rejection instead. With
/// the backoff from [`RETRY_MIN`] that is about 3 seconds of retries: an error caused by the
/// message comes back on every one, and the purchases behind it are barely delayed.
pub const MAX_ATTEMPTS_ON_STATEMENT_ERROR: u32 = 6;

/// `gridwatch_purchases_total{outcome}` of a message kept as a rejection because the database
/// refused to store it [`MAX_ATTEMPTS_ON_STATEMENT_ERROR`] times.
pub const UNSTORABLE_OUTCOME: &str = "unstorable";

/// True when `error` says the database cannot serve anyone right now, whatever the message: the
/// connection is gone, or the server is out of resources (class 53: disk full, out of memory, too
/// many connections), stopping or cancelling (57), failing itself (58: I/O errors), read-only (a
/// standby after a failover), or rolled the transaction back for concurrency (40: serialization
/// failure, deadlock). Such an error holds the message, retried forever; any other is the
/// message's and is retried a bounded number of times.
pub fn database_unavailable(error: &tokio_postgres::Error) -> bool {
    if crate::db::is_connection_error(error) {
        return true;
    }
    error.code().is_some_and(|code| {
        matches!(code.code().get(..2), Some("40" | "53" | "57" | "58"))
            || *code == tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION
    })
}

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
    /// The database connection, reconnecting (with backoff, forever) while it is lost; `None`
    /// if shutdown came first.
    async fn connected(
        &mut self,
        delay: &mut Duration,
        shutdown: &Shutdown,
    ) -> Option<&mut Client> {
        loop {
            if shutdown.is_triggered() {
                return None;
            }
            if self
                .client
                .as_ref()
                .is_some_and(|client| !client.is_closed())
            {
                return self.client.as_mut();
            }
            match crate::db::connect(&self.config.database_url).await {
                Ok(client) => return Some(self.client.insert(client)),
                Err(error) => {
                    tracing::warn!(error = %crate::db::describe(&error), retry_in_ms = delay.as_millis() as u64,
                        "Failed to connect to the database; holding the purchase.");
                    tokio::time::sleep(*delay).await;
                    *delay = (*delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Waits out a failed attempt: forgets a lost connection, sleeps, lengthens the backoff.
    async fn back_off(&mut self, error: &tokio_postgres::Error, delay: &mut Duration) {
        if crate::db::is_connection_error(error) {
            self.client = None;
        }
        tokio::time::sleep(*delay).await;
        *delay = (*delay * 2).min(RETRY_MAX);
    }

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
        let regulation = self.regulation;
        let mut delay = RETRY_MIN;
        let mut refused_attempts = 0;
        loop {
            let Some(client) = self.connected(&mut delay, shutdown).await else {
                return false;
            };
            let result = match &parsed {
                Ok(request) => submit(client, regulation, request, submission).await,
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
                    let unavailable = database_unavailable(&error);
                    if !unavailable {
                        refused_attempts += 1;
                    }
                    if !unavailable && refused_attempts >= MAX_ATTEMPTS_ON_STATEMENT_ERROR {
                        if !self.keep_unstorable(submission, &error, shutdown).await {
                            return false;
                        }
                        UNSTORABLE_OUTCOME
                    } else {
                        tracing::warn!(error = %crate::db::describe(&error), database_unavailable = unavailable,
                            refused_attempts, retry_in_ms = delay.as_millis() as u64,
                            "Failed to store a purchase from MQTT; retrying.");
                        self.back_off(&error, &mut delay).await;
                        continue;
                    }
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

    /// Keeps a message the database refused to store [`MAX_ATTEMPTS_ON_STATEMENT_ERROR`] times
    /// as a rejection, with its raw payload and the database's error, so that it can be
    /// acknowledged and the purchases behind it go on; false if shutdown came first.
    ///
    /// Its reason code is `invalid_field`. Neither CONTRACT section 2 nor section 3 has a code
    /// for "the database refused it"; the closest documented one is `invalid_field` (a field
    /// that cannot be stored as given), which is also what such a message most likely holds: a
    /// value the parser let through and the database does not take. The rejection's detail says
    /// what happened. It is recorded like a payload that did not parse (`purchase_attempts`,
    /// `rejections`, `rejection_counts`), so `GET /api/v1/rejections` and the status count it.
    ///
    /// What this writes is the payload's bytes, the purchases topic and text of gridwatch's own
    /// (with the database's error message), none of it taken from the message's fields: if the
    /// database refuses even that, the fault is the database's, not the message's, and it is
    /// retried like a lost connection, holding the topic until the database is repaired.
    async fn keep_unstorable(
        &mut self,
        submission: Submission<'_>,
        error: &tokio_postgres::Error,
        shutdown: &Shutdown,
    ) -> bool {
        let cause = crate::db::describe(error);
        tracing::error!(error = %cause, attempts = MAX_ATTEMPTS_ON_STATEMENT_ERROR,
            "The database refused a purchase from MQTT on every attempt; keeping it as a rejection.");
        let refusal = Refusal::new(
            RefusalCode::InvalidField,
            format!(
                "not stored: the database refused this message {MAX_ATTEMPTS_ON_STATEMENT_ERROR} times ({cause}); kept as a rejection so that the purchases after it are not held"
            ),
        );
        let mut delay = RETRY_MIN;
        loop {
            let Some(client) = self.connected(&mut delay, shutdown).await else {
                return false;
            };
            match record_unparsed(client, &refusal, submission).await {
                Ok(()) => return true,
                Err(error) => {
                    tracing::error!(error = %crate::db::describe(&error), retry_in_ms = delay.as_millis() as u64,
                        "Failed to keep an unstorable purchase as a rejection; retrying.");
                    self.back_off(&error, &mut delay).await;
                }
            }
        }
    }
}
