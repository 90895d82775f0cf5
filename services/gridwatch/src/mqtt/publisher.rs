//! QoS 1 publishers that report when the broker has acknowledged everything: what the
//! simulator, the demo and the benchmarks publish with.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

/// One message to publish.
pub type Message = (String, Bytes);

/// Connects `publishers` clients as `user` and returns them.
pub fn connect(
    port: u16,
    user: &str,
    password: &str,
    publishers: usize,
    tag: &str,
) -> Vec<Publisher> {
    (0..publishers)
        .map(|i| Publisher::connect(port, user, password, &format!("bench-{tag}-{i}")))
        .collect()
}

/// One publishing client and its event loop.
pub struct Publisher {
    client: AsyncClient,
    acked: tokio::sync::watch::Receiver<u64>,
    sent: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    fn connect(port: u16, user: &str, password: &str, client_id: &str) -> Publisher {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options
            .set_credentials(user, password)
            // A persistent session, so that a broker restart loses nothing: rumqttc republishes
            // the messages not yet acknowledged (and those still queued in the client) only
            // when the broker says it kept the session; with a clean session it drops them, and
            // `flush` would wait forever for their acknowledgements.
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(30))
            .set_inflight(1000)
            .set_max_packet_size(8 << 20, 8 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let (tx, acked) = tokio::sync::watch::channel(0u64);
        let task = tokio::spawn(async move {
            let mut count = 0u64;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        count += 1;
                        let _ = tx.send(count);
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Publisher {
            client,
            acked,
            sent: 0,
            task,
        }
    }

    /// Queues one message at QoS 1 (waiting only if the client's queue is full).
    pub async fn send(&mut self, topic: String, payload: Bytes) -> anyhow::Result<()> {
        self.client
            .publish_bytes(topic, QoS::AtLeastOnce, false, payload)
            .await?;
        self.sent += 1;
        Ok(())
    }

    /// Waits until the broker acknowledged everything sent so far.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        let sent = self.sent;
        self.acked.wait_for(|n| *n >= sent).await?;
        Ok(())
    }

    /// Publishes `messages` at QoS 1, optionally paced at `per_second`, and waits for the acks.
    pub async fn publish(
        &mut self,
        messages: Vec<Message>,
        per_second: Option<f64>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        for (i, (topic, payload)) in messages.into_iter().enumerate() {
            if let Some(rate) = per_second {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            self.client
                .publish_bytes(topic, QoS::AtLeastOnce, false, payload)
                .await?;
            self.sent += 1;
        }
        let sent = self.sent;
        self.acked.wait_for(|n| *n >= sent).await?;
        Ok(())
    }

    /// Disconnects.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// Publishes `messages` spread round-robin over `publishers` concurrently (each paced at its
/// share of `per_second` if given); returns the time until the broker acknowledged them all.
pub async fn publish_all(
    publishers: &mut [Publisher],
    messages: Vec<Message>,
    per_second: Option<f64>,
) -> anyhow::Result<Duration> {
    let n = publishers.len().max(1);
    let mut shares: Vec<Vec<Message>> = (0..n).map(|_| Vec::new()).collect();
    for (i, message) in messages.into_iter().enumerate() {
        shares[i % n].push(message);
    }
    let started = Instant::now();
    let share_rate = per_second.map(|r| r / n as f64);
    let futures = publishers
        .iter_mut()
        .zip(shares)
        .map(|(p, share)| p.publish(share, share_rate));
    for result in futures_util::future::join_all(futures).await {
        result?;
    }
    Ok(started.elapsed())
}
