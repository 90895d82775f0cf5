//! Publishing a simulation over MQTT, interval by interval.

use std::time::Instant;

use bytes::Bytes;

use gridwatch_sim::{topic_string, Simulation};

use crate::config::MqttConfig;
use crate::mqtt::publisher::{self, Publisher};

/// How to publish.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// Broker URL with the simulator's credentials (`mqtt[s]://user:password@host[:port]`), what
    /// [`feed`] connects to; [`feed_through`] takes the whole connection (with a CA file) instead.
    pub mqtt_url: String,
    /// Topic root (`gridwatch/v1`).
    pub topic_root: String,
    /// Concurrent publishing clients.
    pub publishers: usize,
    /// Simulated seconds per real second; `None`: as fast as the broker takes it.
    pub speed: Option<f64>,
    /// Flow control for a full-speed replay: pause while more than this many published
    /// readings are neither stored nor rejected in the database. A broker queues what its
    /// consumer has not taken up to a bound (deploy/mosquitto: 2,000,000 messages) and drops
    /// beyond it; real meters publish at their own pace, a replay must not outrun ingest.
    pub backlog: Option<Backlog>,
}

/// The database whose ingest counters a replay waits on, and how far it may run ahead.
#[derive(Debug, Clone)]
pub struct Backlog {
    /// The database ingest writes to.
    pub database_url: crate::config::Secret,
    /// Readings published and not yet accounted for, at most.
    pub max_readings: u64,
}

impl Backlog {
    /// Waits until at most `max_readings` of `published` (counted from `baseline`, what the
    /// database had accounted for when the replay began) are unaccounted for.
    async fn wait(
        &self,
        client: &tokio_postgres::Client,
        published: u64,
        baseline: u64,
    ) -> anyhow::Result<()> {
        loop {
            let accounted = accounted(client).await?.saturating_sub(baseline);
            if published.saturating_sub(accounted) <= self.max_readings {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Readings stored or rejected so far, by every ingest instance.
async fn accounted(client: &tokio_postgres::Client) -> Result<u64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(sum(readings_stored + rejections), 0)::bigint FROM ingest_counters",
            &[],
        )
        .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// What was published.
#[derive(Debug, Clone, Copy, Default)]
pub struct FeedStats {
    /// MQTT messages with readings.
    pub messages: u64,
    /// Readings inside them (gateway arrays hold many).
    pub readings: u64,
    /// Purchases published.
    pub purchases: u64,
    /// Wall time, seconds.
    pub elapsed_secs: f64,
}

/// Publishes every interval of `simulation` to the broker of `options.mqtt_url` (an `mqtts://`
/// broker's certificate checked against the system roots); `progress(intervals_done, stats)` is
/// called after each. Returns once the broker has acknowledged everything.
pub async fn feed(
    simulation: &mut Simulation,
    options: &FeedOptions,
    progress: impl FnMut(u64, &FeedStats),
) -> anyhow::Result<FeedStats> {
    let broker = publisher::broker_at(&options.mqtt_url, None);
    feed_through(simulation, &broker, options, progress).await
}

/// [`feed`] through `broker` (host, port, TLS with its CA file, credentials: the connection
/// ingest would make with the same settings) instead of `options.mqtt_url`.
pub async fn feed_through(
    simulation: &mut Simulation,
    broker: &MqttConfig,
    options: &FeedOptions,
    mut progress: impl FnMut(u64, &FeedStats),
) -> anyhow::Result<FeedStats> {
    let mut publishers: Vec<Publisher> = publisher::connect(
        broker,
        options.publishers.max(1),
        &format!("sim-{}", std::process::id()),
    )?;
    let started = Instant::now();
    let sim_start = simulation.config().start;
    let purchases_topic = gridwatch_core::topic::purchase_filter(&options.topic_root);
    let mut stats = FeedStats::default();
    let mut done = 0u64;
    let mut next = 0usize;
    // The database the replay waits on, and what it had accounted for before the replay.
    let backlog = match &options.backlog {
        Some(backlog) => {
            let client = crate::db::connect(&backlog.database_url).await?;
            let baseline = accounted(&client).await?;
            Some((backlog, client, baseline))
        }
        None => None,
    };
    while let Some(interval) = simulation.next_interval() {
        if let Some((backlog, client, baseline)) = &backlog {
            backlog.wait(client, stats.readings, *baseline).await?;
        }
        if let Some(speed) = options.speed {
            let due = (interval.at - sim_start).num_milliseconds() as f64 / 1000.0 / speed;
            let wait = due - started.elapsed().as_secs_f64();
            if wait > 0.0 {
                tokio::time::sleep(std::time::Duration::from_secs_f64(wait)).await;
            }
        }
        for message in interval.messages {
            let readings = count_readings(&message.payload);
            let topic = topic_string(&options.topic_root, &message.topic);
            let n = publishers.len();
            publishers[next % n]
                .send(topic, Bytes::from(message.payload))
                .await?;
            next += 1;
            stats.messages += 1;
            stats.readings += readings;
        }
        for purchase in interval.purchases {
            let payload = serde_json::to_vec(&purchase)?;
            publishers[0]
                .send(purchases_topic.clone(), Bytes::from(payload))
                .await?;
            stats.purchases += 1;
        }
        done += 1;
        stats.elapsed_secs = started.elapsed().as_secs_f64();
        progress(done, &stats);
    }
    for p in &mut publishers {
        p.flush().await?;
    }
    for p in publishers {
        p.close().await;
    }
    stats.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Readings in a payload: elements of a gateway array, or one.
fn count_readings(payload: &[u8]) -> u64 {
    if payload.first() == Some(&b'[') {
        // Each element names its meter once.
        payload.windows(10).filter(|w| w == b"\"meter_id\"").count() as u64
    } else {
        1
    }
}
