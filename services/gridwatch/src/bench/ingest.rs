//! `gridwatch bench ingest`: what the ingest pipeline carries on this machine, against the
//! ceilings it cannot beat.
//!
//! (a) the MQTT-only ceiling: the same publishers and a subscriber that only acknowledges;
//! (b) end to end, one reading per message; (c) end to end, gateway arrays of 500;
//! (d) raw binary COPY of the same rows into the same table; (e) publish-to-commit latency
//! p50/p99 at half of (b); (f) the ingest process's peak RSS; (g) (b) again while a gateway
//! floods as many garbage messages as there are good ones. Ingest runs as a child process
//! (`gridwatch ingest`), against its own Mosquitto (deploy/mosquitto) and its own database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;

use crate::config::Config;
use crate::localbroker::{free_port, LocalBroker};
use crate::metrics::Metrics;
use crate::mqtt::publisher::{self as publish, Message};
use crate::mqtt::session::Backoff;
use crate::mqtt::{broker_options, Session};

/// Sizes of the ingest benchmark.
#[derive(Args, Debug, Clone)]
pub struct IngestBenchArgs {
    /// Single-reading messages for (a), (b).
    #[arg(long, default_value_t = 200_000)]
    pub messages: usize,
    /// Readings sent as gateway arrays for (c) and copied for (d).
    #[arg(long, default_value_t = 2_000_000)]
    pub gateway_readings: usize,
    /// Readings per gateway array.
    #[arg(long, default_value_t = 500)]
    pub array: usize,
    /// Concurrent publishing clients.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Registered meters the readings are spread over.
    #[arg(long, default_value_t = 10_000)]
    pub meters: usize,
    /// Seconds of paced publishing for the latency figure (e).
    #[arg(long, default_value_t = 15)]
    pub latency_secs: u64,
    /// The shipped broker configuration.
    #[arg(long, default_value = "deploy/mosquitto")]
    pub broker_config: PathBuf,
    /// Where the benchmark's broker keeps its files.
    #[arg(long, default_value = ".run/bench")]
    pub work_dir: PathBuf,
    /// Database for the benchmark (dropped and created again).
    #[arg(long, default_value = "gridwatch_bench")]
    pub database: String,
}

const INGEST_USER: &str = "gridwatch-ingest";
const SIMULATOR_USER: &str = "gridwatch-simulator";

fn ts_text(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The i-th reading of the benchmark: spread over meters, 15 minutes apart per meter.
fn reading(i: usize, meters: usize, base: DateTime<Utc>) -> (usize, DateTime<Utc>, i64) {
    let meter = i % meters;
    let interval = (i / meters) as i64;
    (
        meter,
        base + chrono::Duration::minutes(15 * interval),
        1_000 + interval * 250,
    )
}

fn single_messages(count: usize, meters: usize, base: DateTime<Utc>) -> Vec<Message> {
    (0..count)
        .map(|i| {
            let (meter, ts, energy) = reading(i, meters, base);
            (
                format!("gridwatch/v1/meters/M-{meter:06}/readings"),
                Bytes::from(format!(
                    r#"{{"ts":"{}","energy_wh":{energy},"power_w":1000.0}}"#,
                    ts_text(ts)
                )),
            )
        })
        .collect()
}

fn gateway_messages(
    count: usize,
    array: usize,
    meters: usize,
    base: DateTime<Utc>,
) -> Vec<Message> {
    (0..count)
        .collect::<Vec<_>>()
        .chunks(array.max(1))
        .enumerate()
        .map(|(n, chunk)| {
            let elements: Vec<String> = chunk
                .iter()
                .map(|&i| {
                    let (meter, ts, energy) = reading(i, meters, base);
                    format!(
                        r#"{{"meter_id":"M-{meter:06}","ts":"{}","energy_wh":{energy},"power_w":1000.0}}"#,
                        ts_text(ts)
                    )
                })
                .collect();
            (
                format!("gridwatch/v1/gateways/GW-{:04}/readings", n % 1000),
                Bytes::from(format!("[{}]", elements.join(","))),
            )
        })
        .collect()
}

/// Reads `/metrics` of the child over plain HTTP/1.0.
async fn scrape(port: u16) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}

fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Cumulative bucket counts of a histogram: (upper bound, count).
fn histogram(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (le, value) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.trim().parse().ok()?))
        })
        .collect()
}

/// A quantile from the difference of two snapshots of a cumulative histogram, interpolated
/// linearly inside the bucket (the resolution is the bucket width).
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let old = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, n - old)
        })
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let mut lower = 0.0;
    let mut below = 0.0;
    for (le, cumulative) in counts {
        if cumulative >= target {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = cumulative - below;
            let fraction = if inside > 0.0 {
                (target - below) / inside
            } else {
                1.0
            };
            return Some(lower + fraction * (le - lower));
        }
        lower = le;
        below = cumulative;
    }
    None
}

struct Child {
    process: tokio::process::Child,
    metrics_port: u16,
}

impl Child {
    async fn start(
        command: &[&str],
        db_url: &str,
        mqtt_url: &str,
        client_id: &str,
    ) -> anyhow::Result<Child> {
        let metrics_port = free_port()?;
        let process = tokio::process::Command::new(std::env::current_exe()?)
            .args(command)
            .env("GRIDWATCH_DATABASE_URL", db_url)
            .env("GRIDWATCH_MQTT_URL", mqtt_url)
            .env("GRIDWATCH_MQTT_CLIENT_ID", client_id)
            .env(
                "GRIDWATCH_METRICS_ADDR",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("GRIDWATCH_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .context("Failed to start the ingest child")?;
        let child = Child {
            process,
            metrics_port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = scrape(metrics_port).await {
                if metric_value(&text, "gridwatch_mqtt_subscribed") == Some(1.0) {
                    return Ok(child);
                }
            }
            if Instant::now() > deadline {
                bail!("the {command:?} child did not subscribe within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.process.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.process.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        tokio::time::timeout(Duration::from_secs(30), self.process.wait()).await??;
        Ok(())
    }
}

async fn stored(client: &tokio_postgres::Client) -> anyhow::Result<u64> {
    let n: Option<i64> = client
        .query_one(
            "SELECT sum(readings_stored)::bigint FROM ingest_counters",
            &[],
        )
        .await?
        .get(0);
    Ok(n.unwrap_or(0) as u64)
}

async fn wait_stored(
    client: &tokio_postgres::Client,
    target: u64,
    limit: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if stored(client).await? >= target {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {target} readings stored after {limit:?}",
                stored(client).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Publishes `messages` over `publishers` fresh connections labelled `label` and waits until
/// `readings` more readings are stored; returns readings stored per second from the first
/// publish.
async fn publish_until_stored(
    client: &tokio_postgres::Client,
    (port, password): (u16, &str),
    publishers: usize,
    label: &str,
    messages: Vec<Message>,
    readings: u64,
) -> anyhow::Result<f64> {
    let before = stored(client).await?;
    let broker = publish::local_broker(port, SIMULATOR_USER, password);
    let mut connections = publish::connect(&broker, publishers, label)?;
    let started = Instant::now();
    publish::publish_all(&mut connections, messages, None).await?;
    let done = wait_stored(client, before + readings, Duration::from_secs(600)).await?;
    for p in connections {
        p.close().await;
    }
    Ok(readings as f64 / (done - started).as_secs_f64())
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: IngestBenchArgs, config: &Config) -> anyhow::Result<()> {
    let ingest_password = format!("bench-{}", rand::random::<u64>());
    let simulator_password = format!("bench-{}", rand::random::<u64>());
    let broker = LocalBroker::start(
        &args.broker_config,
        &args.work_dir.join("broker"),
        0,
        &[
            (INGEST_USER, ingest_password.as_str()),
            (SIMULATOR_USER, simulator_password.as_str()),
        ],
    )?;
    let mqtt_url = broker.url(INGEST_USER, &ingest_password);

    // A fresh database with the meters registered.
    let db_secret = crate::db::drop_database(&config.database_url, &args.database).await?;
    let db_url = db_secret.expose().to_owned();
    let mut client = crate::db::prepare(&db_secret, true).await?;
    let ids: Vec<String> = (0..args.meters).map(|i| format!("M-{i:06}")).collect();
    client
        .batch_execute(
            "INSERT INTO regions (id, name, tariff_kzt_per_kwh) VALUES ('bench', 'Benchmark', 10.3);
             INSERT INTO nodes (id, region_key, kind) SELECT 'BENCH-N', region_key, 'feeder' FROM regions;",
        )
        .await?;
    client
        .execute(
            "INSERT INTO meters (id, node_key, role, class, accuracy_pct)
             SELECT id, (SELECT node_key FROM nodes), 'consumer', 'household', 1.0 FROM unnest($1::text[]) id",
            &[&ids],
        )
        .await?;

    let now = Utc::now();
    let day = chrono::Duration::days(1);
    println!(
        "gridwatch bench ingest: {} single-reading messages, {} readings in arrays of {}, {} publishers, {} meters",
        args.messages, args.gateway_readings, args.array, args.publishers, args.meters
    );

    // (a) The MQTT-only ceiling: the same publishers, and a subscriber process that only
    // acknowledges each message on arrival (same session code as ingest, no database).
    let ceiling = {
        let child =
            Child::start(&["bench", "ack-only"], &db_url, &mqtt_url, "bench-ack-only").await?;
        let messages = single_messages(args.messages, args.meters, now - day * 20);
        let mut publishers = publish::connect(
            &publish::local_broker(broker.port, SIMULATOR_USER, &simulator_password),
            args.publishers,
            "a",
        )?;
        let started = Instant::now();
        publish::publish_all(&mut publishers, messages, None).await?;
        loop {
            let text = scrape(child.metrics_port).await?;
            let received = text
                .lines()
                .find(|l| l.starts_with("gridwatch_ingest_messages_total{topic=\"meter\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            if received >= args.messages as f64 {
                break;
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("the ack-only subscriber received too little");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        for p in publishers {
            p.close().await;
        }
        child.stop().await?;
        args.messages as f64 / elapsed.as_secs_f64()
    };
    println!("(a) MQTT-only ceiling:               {ceiling:>10.0} messages/s");

    let child = Child::start(&["ingest"], &db_url, &mqtt_url, "bench-ingest").await?;

    // (b) End to end, one reading per message.
    let single = publish_until_stored(
        &client,
        (broker.port, &simulator_password),
        args.publishers,
        "b",
        single_messages(args.messages, args.meters, now - day * 10),
        args.messages as u64,
    )
    .await?;
    println!(
        "(b) end to end, 1 reading/message:   {single:>10.0} readings/s  ({:.2} x (a); target >= 0.85)",
        single / ceiling
    );

    // (g) The same good readings while a gateway floods garbage: every other message is a
    // different malformed payload from one source. Good readings per second against (b), and
    // what the flood left on disk.
    let (flooded, sample_rows, counted, rejections_bytes) = {
        let good = single_messages(args.messages, args.meters, now - day * 14);
        let mut messages = Vec::with_capacity(good.len() * 2);
        for (i, message) in good.into_iter().enumerate() {
            messages.push(message);
            messages.push((
                "gridwatch/v1/gateways/GW-FLOOD/readings".to_owned(),
                Bytes::from(format!("{{\"garbage\": {i}, \"padding\": \"{:0>120}\"", i)),
            ));
        }
        let rate = publish_until_stored(
            &client,
            (broker.port, &simulator_password),
            args.publishers,
            "g",
            messages,
            args.messages as u64,
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let counted = loop {
            let counted: i64 = client
                .query_one(
                    "SELECT coalesce(sum(rejected), 0)::bigint FROM rejection_counts
                     WHERE source = 'GW-FLOOD'",
                    &[],
                )
                .await?
                .get(0);
            if counted >= args.messages as i64 || Instant::now() > deadline {
                break counted;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM rejections WHERE source = 'GW-FLOOD'),
                        pg_total_relation_size('rejections')",
                &[],
            )
            .await?;
        (rate, row.get::<_, i64>(0), counted, row.get::<_, i64>(1))
    };
    println!(
        "(g) (b) with a garbage flood (1:1):  {flooded:>10.0} good readings/s  ({:.2} x (b)); {counted} rejections counted, {sample_rows} kept row by row, rejections table {:.1} MB",
        flooded / single,
        rejections_bytes as f64 / 1e6
    );

    // (c) End to end, gateway arrays.
    let arrays = publish_until_stored(
        &client,
        (broker.port, &simulator_password),
        args.publishers,
        "c",
        gateway_messages(
            args.gateway_readings,
            args.array,
            args.meters,
            now - day * 7,
        ),
        args.gateway_readings as u64,
    )
    .await?;

    // (e) Latency at half of (b): readings stamped with their publish time.
    let (p50, p99, paced_rate) = {
        let rate = (single / 2.0).max(1.0);
        let count = (rate * args.latency_secs as f64) as usize;
        let before_hist = histogram(
            &scrape(child.metrics_port).await?,
            "gridwatch_ingest_lag_seconds",
        );
        let before = stored(&client).await?;
        let mut publishers = publish::connect(
            &publish::local_broker(broker.port, SIMULATOR_USER, &simulator_password),
            args.publishers,
            "e",
        )?;
        // Stamped just before sending: each publisher paces its share, so stamping happens
        // in its loop; precompute topics only.
        let start_at = Utc::now() + chrono::Duration::milliseconds(200);
        let messages: Vec<Message> = (0..count)
            .map(|i| {
                let meter = i % args.meters;
                let interval = i / args.meters;
                let ts = start_at + chrono::Duration::microseconds((i as f64 / rate * 1e6) as i64);
                (
                    format!("gridwatch/v1/meters/M-{meter:06}/readings"),
                    Bytes::from(format!(
                        r#"{{"ts":"{}","energy_wh":{},"power_w":1.0}}"#,
                        ts_text(ts),
                        1_000_000 + interval * 10
                    )),
                )
            })
            .collect();
        let wait = (start_at - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        publish::publish_all(&mut publishers, messages, Some(rate)).await?;
        wait_stored(&client, before + count as u64, Duration::from_secs(120)).await?;
        for p in publishers {
            p.close().await;
        }
        let after_hist = histogram(
            &scrape(child.metrics_port).await?,
            "gridwatch_ingest_lag_seconds",
        );
        (
            quantile(&before_hist, &after_hist, 0.5),
            quantile(&before_hist, &after_hist, 0.99),
            rate,
        )
    };
    let rss_kib = child.peak_rss_kib();
    child.stop().await?;

    // (d) Raw binary COPY of the same number of rows into the same table.
    let copy_rate = {
        let base = now - day * 4;
        let from = base;
        let to = base
            + chrono::Duration::minutes(
                15 * (args.gateway_readings / args.meters.max(1)) as i64 + 15,
            );
        client
            .execute(
                "SELECT gridwatch_ensure_reading_partitions($1, $2)",
                &[&from, &to],
            )
            .await?;
        let keys: Vec<i32> = client
            .query("SELECT meter_key FROM meters ORDER BY id", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let started = Instant::now();
        let tx = client.transaction().await?;
        let rows = (0..args.gateway_readings).map(|i| {
            let (meter, ts, energy) = reading(i, args.meters, base);
            (ts, energy, keys[meter], Some(1000.0f32))
        });
        crate::db::copy::copy_readings(&tx, rows).await?;
        tx.commit().await?;
        args.gateway_readings as f64 / started.elapsed().as_secs_f64()
    };
    println!("(c) end to end, arrays of {:<4}:      {arrays:>10.0} readings/s  ({:.2} x (d); target >= 0.75)", args.array, arrays / copy_rate);
    println!("(d) raw binary COPY:                 {copy_rate:>10.0} rows/s");
    let ms = |v: Option<f64>| v.map_or("n/a".to_owned(), |s| format!("{:.0} ms", s * 1000.0));
    println!(
        "(e) latency at {paced_rate:.0} readings/s:      p50 {}  p99 {}  (target p99 <= 250 ms; bucket resolution)",
        ms(p50),
        ms(p99)
    );
    match rss_kib {
        Some(kib) => println!(
            "(f) ingest peak RSS:                 {:>10.1} MB  (target <= 100 MB)",
            kib as f64 / 1024.0
        ),
        None => println!("(f) ingest peak RSS:                 n/a"),
    }
    drop(client);
    crate::db::drop_database(&config.database_url, &args.database).await?;
    Ok(())
}

/// `gridwatch bench ack-only`: a subscriber that acknowledges every message on arrival and does
/// nothing else, serving its message count on `/metrics`: the ceiling ingest is measured against.
/// Its session is clean, so the broker forgets it when it stops.
pub async fn ack_only(config: &Config) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let (trigger, stop) = crate::shutdown::channel();
    let (_bound, server) = crate::http::serve(
        config.metrics_addr,
        crate::http::metrics_router(metrics.clone()),
        stop.clone(),
    )
    .await?;
    // A clean session: once the ceiling is measured, the broker must not keep queueing the
    // later runs' messages for this subscriber, which would slow them.
    let mut options = broker_options(&config.mqtt, &config.mqtt.client_id)?;
    options.set_clean_session(true);
    let mut session = Session::start(
        options,
        crate::ingest::subscription_filters(config),
        Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_millis(500),
        },
        crate::mqtt::HeldBytes::new(usize::MAX),
        metrics.clone(),
    );
    let received = metrics.ingest.messages.with_label_values(&["meter"]);
    let acks = session.acks.clone();
    let mut deliveries = std::mem::replace(
        &mut session.deliveries,
        tokio::sync::mpsc::unbounded_channel().1,
    );
    let acker = tokio::spawn(async move {
        while let Some(delivery) = deliveries.recv().await {
            acks.ack(delivery.ack_token());
            received.inc();
        }
    });
    crate::shutdown::os_signal().await;
    trigger.trigger();
    acker.abort();
    drop(session);
    let _ = server.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let before = vec![(0.1, 0.0), (0.2, 0.0), (f64::INFINITY, 0.0)];
        let after = vec![(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        let p50 = quantile(&before, &after, 0.5).expect("p50");
        assert!((p50 - 0.1).abs() < 1e-9);
        let p75 = quantile(&before, &after, 0.75).expect("p75");
        assert!((p75 - 0.15).abs() < 1e-9);
    }
}
