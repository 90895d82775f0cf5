//! `gridwatch demo`: the East Kazakhstan case, end to end, in one process.
//!
//! It starts its own broker (deploy/mosquitto's configuration), a fresh database, and ingest, the
//! detector and the API; simulates a region of a few thousand meters in which insiders divert
//! 50 MW below a substation's boundary meter (rigging the feeders' meters so the feeders
//! balance), a household runs mining rigs and a licensed farm consumes more than it bought;
//! publishes it all over MQTT as fast as the broker takes it; waits for the detector to catch up;
//! and prints what was found, how fast, and what it would have cost over two years.

mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use clap::Args;

use gridwatch_sim::{Scenario, SimConfig, Simulation};

use crate::config::{Config, Secret};
use crate::localbroker::LocalBroker;
use crate::services::{self, Service};
use crate::simulate::{feed, FeedOptions};

/// How long a source may be silent, in wall time, before a replay stops waiting for it.
const REPLAY_SOURCE_SILENCE_SECS: i64 = 30;

/// Options of `gridwatch demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Households in the simulated region (plus its commercial, industrial and mining meters).
    #[arg(long, default_value_t = 3000)]
    pub households: u32,
    /// Simulated days: a household starts mining and a farm over-consumes after the third (the
    /// mining rule compares a connection with its own three days before), the 50 MW diversion
    /// starts on the last.
    #[arg(long, default_value_t = 10)]
    pub days: u32,
    /// Random seed of the simulation.
    #[arg(long, default_value_t = 2025)]
    pub seed: u64,
    /// Stop after the report instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// The shipped broker configuration.
    #[arg(long, default_value = "deploy/mosquitto")]
    pub broker_config: PathBuf,
    /// Where the demo's broker keeps its files.
    #[arg(long, default_value = ".run/demo")]
    pub work_dir: PathBuf,
    /// The demo's database (dropped and created again).
    #[arg(long, default_value = "gridwatch_demo")]
    pub database: String,
    /// Longest wait for the detector, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Share of the meters on transformers that report through their transformer's data
    /// concentrator (gateway arrays); the others send one message per reading. Default: the
    /// simulator's mixed network (0.6). A replay from a utility's head-end system sends
    /// everything in arrays: 1.
    #[arg(long)]
    pub gateway_share: Option<f64>,
}

const INGEST_USER: &str = "gridwatch-ingest";
const SIMULATOR_USER: &str = "gridwatch-simulator";

/// The demo's simulation: the default East Kazakhstan region sized by `args`; one household
/// mining and a farm over its quota from the fourth day; the insider diversion on the last.
pub fn demo_sim_config(args: &DemoArgs, now: DateTime<Utc>) -> anyhow::Result<SimConfig> {
    let mut config = SimConfig {
        seed: args.seed,
        days: args.days,
        ..SimConfig::default()
    };
    // The run ends at the last midnight: readings are recent, and the detector's windows align.
    let end = now.duration_trunc(TimeDelta::days(1)).unwrap_or(now);
    config.start = end - TimeDelta::days(i64::from(args.days));
    if let Some(region) = config.regions.first_mut() {
        region.households = args.households;
    }
    if let Some(share) = args.gateway_share {
        config.network.gateway_share = share;
    }
    let diversion_onset = 24.0 * f64::from(args.days.max(2) - 1);
    let mut scenarios: Vec<Scenario> = Vec::new();
    for (name, extra) in [
        (
            "east-kazakhstan",
            serde_json::json!({"insider": true, "onset_hours": diversion_onset}),
        ),
        (
            "unlicensed-mining",
            serde_json::json!({"count": 1, "onset_hours": 72.0}),
        ),
        ("quota-overrun", serde_json::json!({"onset_hours": 72.0})),
    ] {
        let mut json = serde_json::json!({ "name": name });
        if let (Some(obj), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
            obj.extend(extra.clone());
        }
        scenarios
            .push(serde_json::from_value(json).with_context(|| format!("the {name} scenario"))?);
    }
    config.scenarios = scenarios;
    Ok(config)
}

/// Runs the demo.
pub async fn run(args: DemoArgs, base: &Config) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("gridwatch demo: the East Kazakhstan case, end to end.");

    // A broker of our own, with the production queue settings and fresh state.
    let broker_dir = args.work_dir.join("broker");
    let _ = std::fs::remove_dir_all(&broker_dir);
    let ingest_password = format!("demo-{:016x}", rand::random::<u64>());
    let simulator_password = format!("demo-{:016x}", rand::random::<u64>());
    let broker = LocalBroker::start(
        &args.broker_config,
        &broker_dir,
        0,
        &[
            (INGEST_USER, ingest_password.as_str()),
            (SIMULATOR_USER, simulator_password.as_str()),
        ],
    )
    .context("Failed to start the demo's broker")?;
    println!(
        "  broker     mqtt://127.0.0.1:{} (deploy/mosquitto configuration)",
        broker.port
    );

    // A fresh database.
    let mut config = base.clone();
    config.database_url = crate::db::drop_database(&base.database_url, &args.database)
        .await
        .context("Failed to drop the previous demo database")?;
    config.migrate_on_start = true;
    config.mqtt.url = Secret::new(broker.url(INGEST_USER, &ingest_password));
    config.mqtt.client_id = "gridwatch-demo".into();
    config.detector.poll_ms = 200;
    // A replay at full speed: a source silent for half a minute of wall time has ended its
    // stream (a gateway still in an outage at the end), and the last windows are judged.
    config.detector.source_silence_secs = REPLAY_SOURCE_SILENCE_SECS;
    if std::net::TcpListener::bind(config.http_addr).is_err() {
        config.http_addr.set_port(0);
    }
    println!("  database   {} (created)", args.database);

    let running =
        services::start(&config, &[Service::Ingest, Service::Detect, Service::Api]).await?;
    let http = running.http_addr;
    println!("  services   ingest, detector and API in this process, HTTP on {http}");

    let now = Utc::now();
    let sim_config = demo_sim_config(&args, now)?;
    let mut simulation = Simulation::new(sim_config).context("Invalid demo simulation")?;
    let meters = simulation.registry().meters.len();
    let mut client = crate::db::connect(&config.database_url).await?;
    crate::registry::store::import_document(&mut client, simulation.registry(), "demo")
        .await
        .map_err(|e| anyhow::anyhow!("The simulated registry was refused: {e}"))?;
    println!(
        "  grid       {} nodes and {meters} meters registered ({} households)",
        simulation.registry().nodes.len(),
        args.households
    );

    crate::simulate::wait_until_consuming(
        &client,
        broker.port,
        SIMULATOR_USER,
        &simulator_password,
        &config.mqtt.topic_root,
    )
    .await?;

    // Publish the whole run as fast as the broker takes it.
    let total = simulation.intervals();
    let options = FeedOptions {
        mqtt_url: broker.url(SIMULATOR_USER, &simulator_password),
        topic_root: config.mqtt.topic_root.clone(),
        publishers: 2,
        speed: None,
        backlog: Some(crate::simulate::Backlog {
            database_url: config.database_url.clone(),
            max_readings: 1_000_000,
        }),
        upload: crate::simulate::Upload::Live,
    };
    let sim_start = simulation.config().start;
    let sim_end = sim_start + TimeDelta::days(i64::from(args.days));
    println!(
        "  simulating {} to {} ({} days of 15-minute readings)",
        sim_start.format("%Y-%m-%d %H:%M UTC"),
        sim_end.format("%Y-%m-%d %H:%M UTC"),
        args.days
    );
    let stats = feed(&mut simulation, &options, |done, stats| {
        if done % 8 == 0 || done == total {
            progress(&format!(
                "  publishing {done}/{total} intervals, {} readings ({:.0}/s)",
                stats.readings,
                stats.readings as f64 / stats.elapsed_secs.max(0.001)
            ));
        }
    })
    .await?;
    println!();

    // Wait for the detector to evaluate everything the watermark allows.
    let target = sim_end - TimeDelta::seconds(config.detector.allowed_lateness_secs);
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut settled = 0;
    let mut last_stored = -1i64;
    loop {
        let until: Option<DateTime<Utc>> = client
            .query_one("SELECT min(analysed_until) FROM detector_progress", &[])
            .await?
            .get(0);
        let stored: i64 = client
            .query_one(
                "SELECT coalesce(sum(readings_stored), 0)::bigint FROM ingest_counters",
                &[],
            )
            .await?
            .get(0);
        progress(&format!(
            "  detecting  {stored} readings stored, evaluated up to {}",
            until.map_or("-".into(), |u| u.format("%Y-%m-%d %H:%M UTC").to_string())
        ));
        let pending: i64 = client
            .query_one("SELECT count(*) FROM reading_touches", &[])
            .await?
            .get(0);
        // Done when ingest holds nothing unacknowledged and stores nothing more, the watermark's
        // last window is evaluated, and nothing stored is left for the detector (late readings
        // re-evaluated, conditions they disprove withdrawn), twice in a row.
        let quiet = running.metrics.ingest.unacked.get() <= 0 && stored == last_stored;
        last_stored = stored;
        if quiet && until.is_some_and(|u| u >= target - TimeDelta::minutes(15)) && pending == 0 {
            settled += 1;
            if settled >= 2 {
                break;
            }
        } else {
            settled = 0;
        }
        if Instant::now() > deadline {
            println!();
            bail!(
                "the detector did not catch up within {} s",
                args.timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!();
    let truth = simulation.ground_truth().clone();
    let truth_file = args.work_dir.join("ground-truth.json");
    std::fs::write(&truth_file, serde_json::to_vec_pretty(&truth)?)
        .with_context(|| format!("Failed to write {truth_file:?}"))?;
    report::print(&client, &truth, stats, started.elapsed(), http).await?;

    if args.exit {
        running.stop();
    } else {
        println!("\nServing until Ctrl-C.");
        let stopper = running.stopper();
        tokio::spawn(async move {
            crate::shutdown::os_signal().await;
            stopper.trigger();
        });
    }
    running.wait().await?;
    drop(broker);
    Ok(())
}

/// Rewrites the current terminal line.
fn progress(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = write!(out, "\r{line:<100}");
    let _ = out.flush();
}
