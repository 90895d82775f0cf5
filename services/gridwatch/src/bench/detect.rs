//! `gridwatch bench detect`: what the detector costs on this machine.
//!
//! (a) One 15-minute window's evaluation for a national-sized region shard: 100,000 meters
//!     under about 2,000 balanced nodes (the simulator's grid, every transformer metered, an
//!     East Kazakhstan diversion in it). The history is copied straight into PostgreSQL (this
//!     measures the detector, not ingest); the detector catches up on it, then each further
//!     window is stored and the detector's cycle on it timed, as in real time. The target is
//!     2 s per window.
//! (b) The 30-day, 10,000-household replay end to end through MQTT, ingest and the detector:
//!     `gridwatch demo` at that size (its own broker and database), timed; target 10 minutes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;
use tokio_postgres::Client;

use gridwatch_sim::{SimConfig, Simulation};

use crate::config::Config;
use crate::detector::Detector;
use crate::metrics::Metrics;

/// Sizes of the detector benchmark.
#[derive(Args, Debug, Clone)]
pub struct DetectBenchArgs {
    /// Households of the window benchmark's grid (plus its other meters).
    #[arg(long, default_value_t = 100_000)]
    pub households: u32,
    /// Substations; each has 10 feeders of 19 metered transformers (about 2,000 nodes for 10).
    #[arg(long, default_value_t = 10)]
    pub substations: u32,
    /// Days of history before the timed windows (the loss models learn from them).
    #[arg(long, default_value_t = 1)]
    pub history_days: u32,
    /// Windows timed one by one after the history.
    #[arg(long, default_value_t = 8)]
    pub windows: u32,
    /// Households of the end-to-end replay (b); 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    pub replay_households: u32,
    /// Days of the end-to-end replay (b).
    #[arg(long, default_value_t = 30)]
    pub replay_days: u32,
    /// Share of (b)'s meters on transformers sending through their concentrator's gateway
    /// arrays (a head-end replay sends everything in arrays: 1; the demo's mixed network: 0.6).
    #[arg(long, default_value_t = 1.0)]
    pub replay_gateway_share: f64,
    /// The shipped broker configuration (for (b)).
    #[arg(long, default_value = "deploy/mosquitto")]
    pub broker_config: PathBuf,
    /// Where (b)'s broker keeps its files.
    #[arg(long, default_value = ".run/bench-detect")]
    pub work_dir: PathBuf,
    /// Database of (a) (dropped and created again); (b) uses it with a `_replay` suffix.
    #[arg(long, default_value = "gridwatch_bench_detect")]
    pub database: String,
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: DetectBenchArgs, config: &Config) -> anyhow::Result<()> {
    println!(
        "gridwatch bench detect: (a) {} households under {} substations, {} day(s) of history, {} timed windows; (b) {} households over {} days through MQTT",
        args.households, args.substations, args.history_days, args.windows, args.replay_households, args.replay_days
    );
    window_benchmark(&args, config).await?;
    if args.replay_households > 0 {
        replay_benchmark(&args, config).await?;
    }
    Ok(())
}

async fn window_benchmark(args: &DetectBenchArgs, config: &Config) -> anyhow::Result<()> {
    let url = crate::db::drop_database(&config.database_url, &args.database).await?;
    let mut client = crate::db::prepare(&url, true).await?;

    let mut sim_config = SimConfig {
        seed: 7,
        // A day beyond the timed windows, so the simulation never runs out.
        days: args.history_days + 1 + args.windows.div_ceil(96),
        ..SimConfig::default()
    };
    if let Some(region) = sim_config.regions.first_mut() {
        region.households = args.households;
        region.substations = args.substations;
        region.feeders_per_substation = 10;
        region.transformers_per_feeder = 19;
        region.metered_transformer_share = 1.0;
    }
    sim_config.scenarios = vec![serde_json::from_value(serde_json::json!({
        "name": "east-kazakhstan",
        "onset_hours": 24.0 * f64::from(args.history_days) - 6.0,
    }))?];
    let generated = Instant::now();
    let mut simulation = Simulation::new(sim_config).context("Invalid benchmark simulation")?;
    let (meter_keys, region_key) = import_registry(&mut client, &simulation).await?;
    let nodes = simulation.registry().nodes.len();
    let balanced: i64 = client
        .query_one(
            "SELECT count(DISTINCT node_key) FROM meters WHERE role = 'input'",
            &[],
        )
        .await?
        .get(0);
    println!(
        "    grid: {nodes} nodes ({balanced} with an input meter), {} meters",
        meter_keys.len()
    );
    let start = simulation.config().start;
    client
        .execute(
            "SELECT gridwatch_ensure_reading_partitions($1, $2)",
            &[
                &start,
                &(start + TimeDelta::days(i64::from(simulation.config().days) + 1)),
            ],
        )
        .await?;

    // The history, copied in bulk.
    let history = u64::from(args.history_days) * 96;
    let mut stored = 0usize;
    let mut last = start;
    for _ in 0..history {
        let Some(interval) = simulation.next_interval() else {
            break;
        };
        stored += copy_interval(&mut client, &meter_keys, &interval).await?;
        last = interval.at;
    }
    touch(&client, region_key, start, last).await?;
    println!(
        "    history: {stored} readings generated and copied in {:.1} s",
        generated.elapsed().as_secs_f64()
    );

    let mut detector_config = config.clone();
    detector_config.database_url = url.clone();
    let metrics = Arc::new(Metrics::new());
    let mut detector = Detector::new(detector_config, metrics);
    let caught_up = Instant::now();
    while detector.cycle(&mut client).await? {}
    let catch_up = caught_up.elapsed().as_secs_f64();
    println!(
        "    catch-up: {history} windows of history evaluated in {catch_up:.1} s ({:.0} ms per window)",
        catch_up * 1000.0 / history as f64
    );

    // Real time: one window's readings arrive, the detector evaluates it. A window's figure
    // is the time until its transaction committed (its diversion findings visible); the daily
    // meter analyses that a day's last window makes due run after it and are timed apart.
    let mut timings = Vec::new();
    let mut labels = Vec::new();
    let mut daily = Vec::new();
    for _ in 0..args.windows {
        let Some(interval) = simulation.next_interval() else {
            break;
        };
        copy_interval(&mut client, &meter_keys, &interval).await?;
        touch(&client, region_key, interval.at, interval.at).await?;
        let (mut windows_secs, mut analyses_secs) = (0.0, 0.0);
        loop {
            let worked = detector.cycle(&mut client).await?;
            windows_secs += detector.last_cycle().windows_secs;
            analyses_secs += detector.last_cycle().analyses_secs;
            if !worked {
                break;
            }
        }
        timings.push(windows_secs);
        let mut label = format!("{} {windows_secs:.2} s", interval.at.format("%H:%M"));
        if analyses_secs >= 0.01 {
            label.push_str(&format!(" (+ daily analyses {analyses_secs:.2} s)"));
            daily.push(analyses_secs);
        }
        labels.push(label);
    }
    // The window that opens a day also fits the day's loss models; one that closes an hour
    // runs the licence analyses.
    println!("    windows (readings at): {}", labels.join(", "));
    timings.sort_by(f64::total_cmp);
    let median = timings.get(timings.len() / 2).copied().unwrap_or(f64::NAN);
    let max = timings.last().copied().unwrap_or(f64::NAN);
    let anomalies: i64 = client
        .query_one(
            "SELECT count(*) FROM anomalies WHERE kind = 'diversion'",
            &[],
        )
        .await?
        .get(0);
    println!(
        "(a) one window, {} meters / {balanced} balanced nodes: median {:.2} s, max {:.2} s over {} windows (target <= 2 s); {anomalies} diversion anomaly(ies) open",
        meter_keys.len(),
        median,
        max,
        timings.len()
    );
    if !daily.is_empty() {
        println!(
            "    daily meter analyses (mining, tampering, mining share; {} day(s) of history), after the day's last window committed: {}",
            args.history_days,
            daily
                .iter()
                .map(|s| format!("{s:.2} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Imports the simulation's registry; returns each simulated meter's database key (-1 for one
/// the registry refused) and the region's key.
pub(super) async fn import_registry(
    client: &mut Client,
    simulation: &Simulation,
) -> anyhow::Result<(Vec<i32>, i32)> {
    crate::registry::store::import_document(client, simulation.registry(), "bench")
        .await
        .map_err(|e| anyhow::anyhow!("The simulated registry was refused: {e}"))?;
    let keys: std::collections::HashMap<String, i32> = client
        .query("SELECT id, meter_key FROM meters", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let meter_keys = simulation
        .registry()
        .meters
        .iter()
        .map(|m| keys.get(&m.id.to_string()).copied().unwrap_or(-1))
        .collect();
    let region_key: i32 = client
        .query_one("SELECT min(region_key) FROM regions", &[])
        .await?
        .get(0);
    Ok((meter_keys, region_key))
}

/// Copies one interval's registers into `readings`; returns how many.
pub(super) async fn copy_interval(
    client: &mut Client,
    meter_keys: &[i32],
    interval: &gridwatch_sim::Interval,
) -> anyhow::Result<usize> {
    let tx = client.transaction().await?;
    let rows = interval
        .truth
        .meters
        .iter()
        .zip(meter_keys)
        .filter(|(_, key)| **key >= 0)
        .map(|(meter, key)| (interval.at, meter.register_wh, *key, None));
    let n = crate::db::copy::copy_readings(&tx, rows).await? as usize;
    tx.commit().await?;
    Ok(n)
}

/// Tells the detector what was stored, as ingest does.
pub(super) async fn touch(
    client: &Client,
    region_key: i32,
    from: DateTime<Utc>,
    newest: DateTime<Utc>,
) -> anyhow::Result<()> {
    client
        .execute(
            "INSERT INTO reading_touches (region_key, minute, readings, newest_ts)
             VALUES ($1, $2, 1, $3)",
            &[&region_key, &from, &newest],
        )
        .await?;
    Ok(())
}

async fn replay_benchmark(args: &DetectBenchArgs, config: &Config) -> anyhow::Result<()> {
    let database = format!("{}_replay", args.database);
    let demo = crate::demo::DemoArgs {
        households: args.replay_households,
        days: args.replay_days,
        seed: 2025,
        exit: true,
        broker_config: args.broker_config.clone(),
        work_dir: args.work_dir.clone(),
        database: database.clone(),
        timeout_secs: 3600,
        gateway_share: Some(args.replay_gateway_share),
    };
    println!(
        "\n(b) replay: `gridwatch demo --households {} --days {} --gateway-share {} --exit`, its report follows.\n",
        args.replay_households, args.replay_days, args.replay_gateway_share
    );
    let started = Instant::now();
    crate::demo::run(demo, config).await?;
    let elapsed = started.elapsed();
    println!(
        "(b) {} households, {} days through MQTT, ingest and the detector: {:.1} min end to end (target <= 10 min)",
        args.replay_households,
        args.replay_days,
        elapsed.as_secs_f64() / 60.0
    );
    Ok(())
}
