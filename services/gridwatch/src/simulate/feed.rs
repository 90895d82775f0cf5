//! Publishing a simulation over MQTT, interval by interval.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;

use gridwatch_sim::{topic_string, OutTopic, Simulation};

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
    /// How the head-end delivers the readings.
    pub upload: Upload,
}

/// How readings reach the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Upload {
    /// Each message as its interval comes (meters and concentrators reporting live).
    #[default]
    Live,
    /// A head-end that uploads each data concentrator's day in turn, one concentrator after
    /// another, once the day is over: gateway messages are held and published concentrator by
    /// concentrator at each midnight (UTC), each concentrator's upload stored before the next
    /// begins (with a backlog to wait on); meters reporting on their own stay live.
    DailyPerGateway,
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
    let mut held = Held::default();
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
        if options.upload == Upload::DailyPerGateway {
            let day = interval.at.date_naive();
            if held.day.is_some_and(|d| d != day) {
                upload_held(&mut held, &mut publishers, &backlog, &mut stats).await?;
            }
            held.day = Some(day);
        }
        for message in interval.messages {
            if let (Upload::DailyPerGateway, OutTopic::Gateway(gateway)) =
                (options.upload, &message.topic)
            {
                held.by_gateway
                    .entry(gateway.to_string())
                    .or_default()
                    .push((
                        topic_string(&options.topic_root, &message.topic),
                        message.payload,
                    ));
                continue;
            }
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
    upload_held(&mut held, &mut publishers, &backlog, &mut stats).await?;
    for p in &mut publishers {
        p.flush().await?;
    }
    for p in publishers {
        p.close().await;
    }
    stats.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Gateway messages a daily head-end holds until the day is over, by concentrator.
#[derive(Default)]
struct Held {
    /// The day being held.
    day: Option<chrono::NaiveDate>,
    /// Topic and payload of each held message, by concentrator id (uploaded in id order).
    by_gateway: BTreeMap<String, Vec<(String, Vec<u8>)>>,
}

/// Publishes the held day, concentrator after concentrator; with a backlog, each upload is
/// stored before the next starts, as uploads hours apart would leave it.
async fn upload_held(
    held: &mut Held,
    publishers: &mut [Publisher],
    backlog: &Option<(&Backlog, tokio_postgres::Client, u64)>,
    stats: &mut FeedStats,
) -> anyhow::Result<()> {
    for (_, messages) in std::mem::take(&mut held.by_gateway) {
        let mut readings = 0;
        for (topic, payload) in messages {
            readings += count_readings(&payload);
            stats.messages += 1;
            publishers[0].send(topic, Bytes::from(payload)).await?;
        }
        stats.readings += readings;
        publishers[0].flush().await?;
        if let Some((_, client, baseline)) = backlog {
            wait_until_stored(client, stats.readings, *baseline, readings).await?;
        }
    }
    Ok(())
}

/// Waits until the database has accounted for `published` readings (since `baseline`), all but
/// the copies the network duplicated (absorbed, never counted): at most a fiftieth of the
/// `upload` just sent short, or no progress for two seconds; at most a minute.
async fn wait_until_stored(
    client: &tokio_postgres::Client,
    published: u64,
    baseline: u64,
    upload: u64,
) -> anyhow::Result<()> {
    let mut last = None;
    let mut still = 0;
    for _ in 0..600 {
        let accounted = accounted(client).await?.saturating_sub(baseline);
        if published.saturating_sub(accounted) <= upload / 50 {
            return Ok(());
        }
        still = if last == Some(accounted) {
            still + 1
        } else {
            0
        };
        if still >= 20 {
            return Ok(());
        }
        last = Some(accounted);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
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
