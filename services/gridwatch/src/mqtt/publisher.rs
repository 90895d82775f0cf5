//! QoS 1 publishers that report when the broker has acknowledged everything: what the
//! simulator, the demo and the benchmarks publish with.
//!
//! A publisher reaches the broker exactly as ingest does: [`broker_options`] turns the same
//! [`MqttConfig`] (URL, TLS with its CA file, credentials) into the connection, and only the
//! publishing side's own settings differ.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

use crate::config::{MqttConfig, Secret};
use crate::mqtt::broker_options;

/// One message to publish.
pub type Message = (String, Bytes);

/// The connection settings of publishers that log in with the credentials of `url`
/// (`mqtt[s]://user:password@host[:port]`), checking an `mqtts://` broker's certificate
/// against `ca_file` (the system roots if `None`).
pub fn broker_at(url: &str, ca_file: Option<std::path::PathBuf>) -> MqttConfig {
    MqttConfig {
        url: Secret::new(url),
        username: None,
        password: None,
        ca_file,
        ..MqttConfig::default()
    }
}

/// The connection settings of publishers that log in as `user` to a broker on this machine
/// (the demo's, the benchmarks' and the tests' own, plain MQTT on `port`).
pub fn local_broker(port: u16, user: &str, password: &str) -> MqttConfig {
    MqttConfig {
        url: Secret::new(format!("mqtt://127.0.0.1:{port}")),
        username: Some(user.to_owned()),
        password: Some(Secret::new(password)),
        ca_file: None,
        ..MqttConfig::default()
    }
}

/// Connects `publishers` clients to `broker` (client ids `bench-<tag>-<i>`) and returns them.
pub fn connect(
    broker: &MqttConfig,
    publishers: usize,
    tag: &str,
) -> anyhow::Result<Vec<Publisher>> {
    (0..publishers)
        .map(|i| Publisher::connect(broker, &format!("bench-{tag}-{i}")))
        .collect()
}

/// The options of a publishing client: the broker's connection as ingest builds it, with the
/// publishing side's own session settings.
fn publisher_options(broker: &MqttConfig, client_id: &str) -> anyhow::Result<MqttOptions> {
    let mut options = broker_options(broker, client_id)?;
    options
        // A persistent session, so that a broker restart loses nothing: rumqttc republishes
        // the messages not yet acknowledged (and those still queued in the client) only
        // when the broker says it kept the session; with a clean session it drops them, and
        // `flush` would wait forever for their acknowledgements.
        .set_clean_session(false)
        // A publisher subscribes to nothing: there is nothing of the broker's to acknowledge.
        .set_manual_acks(false)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_max_packet_size(8 << 20, 8 << 20);
    Ok(options)
}

/// One publishing client and its event loop.
pub struct Publisher {
    client: AsyncClient,
    acked: tokio::sync::watch::Receiver<u64>,
    sent: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    fn connect(broker: &MqttConfig, client_id: &str) -> anyhow::Result<Publisher> {
        let options = publisher_options(broker, client_id)?;
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let (tx, acked) = tokio::sync::watch::channel(0u64);
        let client_id = client_id.to_owned();
        let task = tokio::spawn(async move {
            let mut count = 0u64;
            // Whether the connection is failing: its first error is logged, not every retry.
            let mut failing = false;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        count += 1;
                        let _ = tx.send(count);
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => failing = false,
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(error) => {
                        if !failing {
                            tracing::warn!(%error, %client_id,
                                "A publisher lost or could not open its broker connection; retrying.");
                            failing = true;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                }
            }
        });
        Ok(Publisher {
            client,
            acked,
            sent: 0,
            task,
        })
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

#[cfg(test)]
mod tests {
    use rumqttc::{TlsConfiguration, Transport};

    use super::*;

    #[test]
    fn a_publisher_reaches_the_brokers_host_over_tls_with_the_urls_credentials() {
        let ca_file =
            std::env::temp_dir().join(format!("gw-publisher-ca-{}.pem", std::process::id()));
        std::fs::write(&ca_file, b"the CA certificate").expect("a temporary file");
        let broker = broker_at(
            "mqtts://gridwatch-simulator:s3cret@broker.example:8884",
            Some(ca_file.clone()),
        );
        let options = publisher_options(&broker, "sim-1").expect("valid options");
        let _ = std::fs::remove_file(&ca_file);
        assert_eq!(
            options.broker_address(),
            ("broker.example".to_owned(), 8884)
        );
        match options.transport() {
            Transport::Tls(TlsConfiguration::Simple { ca, .. }) => {
                assert_eq!(ca, b"the CA certificate")
            }
            _ => panic!("mqtts:// must use TLS with the CA file"),
        }
        let login = options.credentials().expect("credentials from the URL");
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("gridwatch-simulator", "s3cret")
        );
        assert!(!options.clean_session(), "a persistent session");
        assert!(
            !options.manual_acks(),
            "a publisher acknowledges nothing itself"
        );
        assert_eq!(options.client_id(), "sim-1");
    }

    #[test]
    fn a_plain_url_connects_without_tls_and_a_missing_ca_file_is_an_error() {
        let options =
            publisher_options(&broker_at("mqtt://10.1.2.3", None), "sim-2").expect("valid options");
        assert_eq!(options.broker_address(), ("10.1.2.3".to_owned(), 1883));
        assert!(matches!(options.transport(), Transport::Tcp));
        assert!(options.credentials().is_none());
        let local = publisher_options(&local_broker(18830, "gridwatch-market", "pw"), "m")
            .expect("valid options");
        assert_eq!(local.broker_address(), ("127.0.0.1".to_owned(), 18830));
        assert_eq!(
            local.credentials().map(|l| l.username),
            Some("gridwatch-market".to_owned())
        );
        let missing = broker_at(
            "mqtts://broker.example",
            Some("/nonexistent/gridwatch-ca.pem".into()),
        );
        assert!(publisher_options(&missing, "sim-3").is_err());
    }
}
