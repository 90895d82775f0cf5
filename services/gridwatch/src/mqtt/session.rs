//! The MQTT session: one task drives rumqttc's event loop and nothing else.
//!
//! It hands every received publish to a channel (never waiting on the database) and sends the
//! acknowledgements that the ingest pipeline asks for once a batch is committed. Each
//! connection is an *epoch*: a publish is acknowledged only on the connection it arrived on.
//! When a connection drops, the broker redelivers what was not acknowledged, with the same packet
//! ids; an ack carried over to the new connection could then acknowledge a different message that
//! reused the id before it was committed. Stale acks are dropped instead: the redelivered copy is
//! stored again (idempotently) and acknowledged in its own epoch.
//!
//! The ack is queued from this task, between two steps of the same `poll()` future (which is
//! kept alive, never cancelled), so the epoch cannot change between the check and the queueing;
//! and rumqttc drops queued acks itself when a connection fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// A publish received from the broker, tagged with the connection it arrived on.
#[derive(Debug)]
pub struct Delivery {
    /// The message.
    pub publish: Publish,
    /// Which connection of this session it arrived on.
    pub epoch: u64,
    /// When it arrived (wall clock), for the rejections store.
    pub received_at: DateTime<Utc>,
}

/// What is needed to acknowledge a delivery later, without keeping its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckToken {
    epoch: u64,
    pkid: u16,
    qos: QoS,
    /// Payload bytes the delivery holds until acknowledged.
    bytes: usize,
}

impl Delivery {
    /// The token that acknowledges this delivery.
    pub fn ack_token(&self) -> AckToken {
        AckToken {
            epoch: self.epoch,
            pkid: self.publish.pkid,
            qos: self.publish.qos,
            bytes: self.publish.payload.len(),
        }
    }
}

/// Payload bytes received and not yet acknowledged, and the most the session may hold.
///
/// The broker's in-flight window counts messages, not bytes: a window that keeps single-reading
/// messages flowing would, with 1 MiB gateway arrays, hold a gigabyte. So the session stops
/// reading from the broker while it holds more than `cap` bytes (TCP pushes back on the broker,
/// which keeps the rest queued) and resumes as acknowledgements release them.
#[derive(Debug)]
pub struct HeldBytes {
    held: AtomicUsize,
    cap: usize,
}

impl HeldBytes {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Arc<HeldBytes> {
        Arc::new(HeldBytes {
            held: AtomicUsize::new(0),
            cap,
        })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn over_cap(&self) -> bool {
        self.held() > self.cap
    }

    fn add(&self, bytes: usize) {
        self.held.fetch_add(bytes, Ordering::Relaxed);
    }

    fn release(&self, bytes: usize) {
        // Saturating: never wraps even if a token were released twice.
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(bytes))
            });
    }
}

/// Asks the session to acknowledge deliveries; dropping every handle lets the session
/// disconnect cleanly.
#[derive(Clone)]
pub struct AckHandle {
    sender: mpsc::UnboundedSender<AckToken>,
}

impl AckHandle {
    /// Queues the acknowledgement of one delivery (in the order of the calls).
    pub fn ack(&self, token: AckToken) {
        // The session only stops after every handle is dropped, so this cannot fail while the
        // handle exists; if it somehow did, the broker would redeliver, which is safe.
        let _ = self.sender.send(token);
    }
}

/// A running session.
pub struct Session {
    /// Received publishes, in arrival order.
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
    /// Where committed deliveries are acknowledged.
    pub acks: AckHandle,
    /// The event-loop task; it ends after every [`AckHandle`] is dropped and the disconnect
    /// has been sent (or the connection is gone).
    pub task: JoinHandle<()>,
}

/// Reconnection delays.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay after a failure.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Session {
    /// Connects (in the background) and subscribes to `filters` at QoS 1 on every connection.
    pub fn start(
        options: MqttOptions,
        filters: Vec<String>,
        backoff: Backoff,
        held: Arc<HeldBytes>,
        metrics: Arc<Metrics>,
    ) -> Session {
        let (client, eventloop) = AsyncClient::new(options, 1 << 16);
        let (delivery_tx, deliveries) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            client,
            filters,
            backoff,
            held,
            metrics,
            epoch: 0,
            ack_backlog: std::collections::VecDeque::new(),
            ack_backlog_warned: false,
        };
        let task = tokio::spawn(driver.run(eventloop, delivery_tx, ack_rx));
        Session {
            deliveries,
            acks: AckHandle { sender: ack_tx },
            task,
        }
    }
}

/// A connection that lasted this long resets the reconnection delay.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

struct Driver {
    client: AsyncClient,
    filters: Vec<String>,
    backoff: Backoff,
    held: Arc<HeldBytes>,
    metrics: Arc<Metrics>,
    /// Incremented whenever a connection is lost.
    epoch: u64,
    /// Acknowledgements the event loop's request channel had no room for, in arrival order.
    ack_backlog: std::collections::VecDeque<Publish>,
    ack_backlog_warned: bool,
}

impl Driver {
    async fn run(
        mut self,
        mut eventloop: EventLoop,
        deliveries: mpsc::UnboundedSender<Delivery>,
        mut acks: mpsc::UnboundedReceiver<AckToken>,
    ) {
        let metrics = self.metrics.clone();
        let ingest = &metrics.ingest;
        let mut delay = self.backoff.min;
        let mut connected_at: Option<std::time::Instant> = None;
        let mut acks_open = true;
        let mut disconnecting = false;
        loop {
            // Over budget: read nothing more until acknowledgements release enough. Acks keep
            // being queued meanwhile and go out as soon as polling resumes.
            while acks_open && self.held.over_cap() {
                ingest.held_bytes.set(self.held.held() as i64);
                tokio::select! {
                    token = acks.recv() => match token {
                        Some(token) => self.ack(token),
                        None => {
                            acks_open = false;
                            disconnecting = true;
                            let _ = self.client.try_disconnect();
                        }
                    },
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            self.flush_acks();
            let result = {
                let poll = eventloop.poll();
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        result = &mut poll => break result,
                        token = acks.recv(), if acks_open => match token {
                            Some(token) => self.ack(token),
                            None => {
                                // Every ack has been queued: leave cleanly.
                                acks_open = false;
                                disconnecting = true;
                                let _ = self.client.try_disconnect();
                            }
                        },
                    }
                }
            };
            match result {
                Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                    connected_at = Some(std::time::Instant::now());
                    ingest.mqtt_connected.set(1);
                    tracing::info!(
                        session_present = connack.session_present,
                        "Connected to the MQTT broker."
                    );
                    // Subscribing on every connection also covers a session the broker lost
                    // (restart without persistence) and a changed configuration.
                    let subscriptions = self
                        .filters
                        .iter()
                        .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    if let Err(error) = self.client.try_subscribe_many(subscriptions) {
                        tracing::error!(%error, "Failed to queue the subscriptions.");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(mut publish))) => {
                    ingest.unacked.inc();
                    // The payload is a slice of rumqttc's read buffer and would keep the whole
                    // buffer alive until the message is acknowledged (after its commit): own a
                    // copy instead, so memory follows the messages held, not the socket reads.
                    publish.payload = bytes::Bytes::copy_from_slice(&publish.payload);
                    self.held.add(publish.payload.len());
                    ingest.held_bytes.set(self.held.held() as i64);
                    let delivery = Delivery {
                        publish,
                        epoch: self.epoch,
                        received_at: Utc::now(),
                    };
                    // Once the pipeline stops listening (shutdown), further messages are left
                    // unacknowledged for the broker to redeliver.
                    let _ = deliveries.send(delivery);
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    let refused = suback
                        .return_codes
                        .iter()
                        .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                        .count();
                    ingest.mqtt_subscribed.set(i64::from(refused == 0));
                    if refused > 0 {
                        tracing::error!(
                            refused,
                            "The broker refused subscriptions (check the ACL for this user)."
                        );
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) if disconnecting => {
                    tracing::info!("Disconnected from the MQTT broker.");
                    break;
                }
                Ok(_) => {}
                Err(error) => {
                    self.epoch += 1;
                    // Acknowledgements of the lost connection mean nothing on the next one.
                    self.ack_backlog.clear();
                    ingest.mqtt_connected.set(0);
                    ingest.mqtt_subscribed.set(0);
                    if disconnecting {
                        break;
                    }
                    ingest.mqtt_reconnects.inc();
                    // Back off from the first delay again only after a connection that held;
                    // a connection that keeps dropping at once (a broker refusing us, or another
                    // process with our client id taking the session over) backs off further.
                    let lasted = connected_at.take().map(|at| at.elapsed());
                    if lasted.is_some_and(|d| d >= STABLE_CONNECTION) {
                        delay = self.backoff.min;
                    }
                    if lasted.is_some_and(|d| d < Duration::from_secs(1)) {
                        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                            "The broker closed a connection just opened; is another process using this client id?");
                    } else {
                        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                            "Lost the MQTT broker connection; reconnecting.");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.backoff.max);
                }
            }
        }
        ingest.mqtt_connected.set(0);
    }

    fn ack(&mut self, token: AckToken) {
        self.metrics.ingest.unacked.dec();
        self.held.release(token.bytes);
        if token.epoch != self.epoch || token.qos == QoS::AtMostOnce {
            // Arrived on a connection that is gone: the broker redelivers it.
            return;
        }
        let mut publish = Publish::new("", token.qos, Vec::new());
        publish.pkid = token.pkid;
        // In arrival order, behind any the event loop has not taken yet.
        self.ack_backlog.push_back(publish);
        self.flush_acks();
    }

    /// Hands queued acknowledgements to the event loop while its request channel has room.
    /// rumqttc takes one request per poll and reads up to ten packets per poll: a broker that
    /// sends faster than its in-flight window should allow fills the channel, and an
    /// acknowledgement dropped there would leave its message in flight until the connection
    /// is reset. Kept here instead, each goes out as soon as the channel drains.
    fn flush_acks(&mut self) {
        while let Some(publish) = self.ack_backlog.front() {
            if self.client.try_ack(publish).is_err() {
                if !self.ack_backlog_warned {
                    self.ack_backlog_warned = true;
                    tracing::warn!(
                        queued = self.ack_backlog.len(),
                        "The MQTT event loop is behind on acknowledgements; holding them in order."
                    );
                }
                return;
            }
            self.ack_backlog.pop_front();
        }
        self.ack_backlog_warned = false;
    }
}
