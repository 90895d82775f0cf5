//! A QoS 1 publisher that waits until the broker has acknowledged everything it sent.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::task::JoinHandle;

pub struct Publisher {
    client: AsyncClient,
    task: JoinHandle<()>,
    acked: tokio::sync::watch::Receiver<u64>,
    sent: u64,
}

impl Publisher {
    /// Connects to 127.0.0.1:`port` as `user` (password `<user>-test-pw`).
    pub async fn connect(port: u16, user: &str) -> Publisher {
        let mut options = MqttOptions::new(super::unique_name("pub"), "127.0.0.1", port);
        options
            .set_credentials(user, format!("{user}{}", super::broker::PASSWORD_SUFFIX))
            .set_keep_alive(Duration::from_secs(30))
            .set_inflight(500)
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
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Publisher {
            client,
            task,
            acked,
            sent: 0,
        }
    }

    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish queued");
        self.sent += 1;
    }

    /// Waits until the broker acknowledged every publish.
    pub async fn flush(&mut self) {
        let sent = self.sent;
        tokio::time::timeout(Duration::from_secs(60), self.acked.wait_for(|n| *n >= sent))
            .await
            .expect("broker acknowledged every publish within 60 s")
            .expect("publisher task alive");
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}
