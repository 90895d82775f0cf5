//! `gridwatch simulate`: runs the grid simulator (crate gridwatch-sim) and feeds what it
//! produces to gridwatch the way a real grid would: the registry document, then every interval's
//! readings over MQTT (single-meter messages and gateway arrays, lost, late and duplicated as the
//! scenario says) and the licensed farms' purchases on the market topic.

pub mod feed;

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;

use gridwatch_sim::{Scenario, SimConfig, Simulation};

use crate::config::Config;
pub use feed::{feed, feed_through, Backlog, FeedOptions, FeedStats, Upload};

/// Options of `gridwatch simulate`.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Simulator configuration (TOML or JSON, every key optional; see services/sim/README.md).
    #[arg(long)]
    pub sim_config: Option<PathBuf>,
    /// Scenario to inject, with its default parameters (repeatable): clean, east-kazakhstan,
    /// east-kazakhstan-insider, small-diversion, tamper, unlicensed-mining, quota-overrun,
    /// capacity-exceeded, purchase-over-cap, mining-share, topology-change.
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,
    /// Random seed (same seed, same run).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated days.
    #[arg(long)]
    pub days: Option<u32>,
    /// Start of the simulated period (RFC 3339); default: the configuration's.
    #[arg(long)]
    pub start: Option<DateTime<Utc>>,
    /// Households in the (first) region.
    #[arg(long)]
    pub households: Option<u32>,
    /// Simulated seconds per real second (60: an hour a minute); 0 publishes as fast as the
    /// broker takes it.
    #[arg(long, default_value_t = 0.0)]
    pub speed: f64,
    /// Broker URL with the simulator's credentials, `mqtt[s]://user:password@host[:port]`
    /// (default: GRIDWATCH_SIMULATOR_MQTT_URL, else the configuration's broker URL and
    /// credentials). Its host, port, scheme and credentials are used as given; an `mqtts://`
    /// broker's certificate is checked against GRIDWATCH_MQTT_CA_FILE (system roots if unset).
    #[arg(long, env = "GRIDWATCH_SIMULATOR_MQTT_URL")]
    pub mqtt_url: Option<String>,
    /// Register the grid directly in the database before publishing (the configuration's
    /// GRIDWATCH_DATABASE_URL); without it, import the document written by --registry-out with
    /// `gridwatch registry import` or PUT /api/v1/registry.
    #[arg(long)]
    pub register: bool,
    /// Write the registry document here.
    #[arg(long)]
    pub registry_out: Option<PathBuf>,
    /// Write the ground truth (what was injected, where, when, how much) here.
    #[arg(long)]
    pub truth_out: Option<PathBuf>,
    /// Concurrent MQTT publishing clients.
    #[arg(long, default_value_t = 2)]
    pub publishers: usize,
    /// How the head-end delivers: `live`, or `daily-per-gateway` (each concentrator's day in
    /// turn after midnight, as head-ends that upload load profiles in bulk do).
    #[arg(long, value_enum, default_value_t = Upload::Live)]
    pub upload: Upload,
}

/// Publishes a probe reading and a probe purchase, as `user`, to the broker on this machine at
/// `port` until both are kept as rejections: from then on ingest and the purchases consumer are
/// subscribed, and the broker keeps everything published for them (their sessions are
/// persistent).
pub async fn wait_until_consuming(
    client: &tokio_postgres::Client,
    port: u16,
    user: &str,
    password: &str,
    root: &str,
) -> anyhow::Result<()> {
    use bytes::Bytes;
    let broker = crate::mqtt::publisher::local_broker(port, user, password);
    let mut probe = crate::mqtt::publisher::connect(&broker, 1, "probe")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        for p in &mut probe {
            p.send(
                format!("{root}/meters/GRIDWATCH-PROBE/readings"),
                Bytes::from_static(br#"{"ts":"2020-01-01T00:00:00Z","energy_wh":0}"#),
            )
            .await?;
            p.send(
                gridwatch_core::topic::purchase_filter(root),
                Bytes::from_static(b"{\"probe\": true}"),
            )
            .await?;
            p.flush().await?;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let readings: i64 = client
            .query_one(
                "SELECT count(*) FROM rejections WHERE source = 'GRIDWATCH-PROBE'",
                &[],
            )
            .await?
            .get(0);
        let purchases: i64 = client
            .query_one(
                "SELECT count(*) FROM rejections WHERE topic LIKE '%/market/purchases'",
                &[],
            )
            .await?
            .get(0);
        if readings > 0 && purchases > 0 {
            break;
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("ingest and the purchases consumer did not subscribe within 60 s");
        }
    }
    for p in probe {
        p.close().await;
    }
    Ok(())
}

/// Builds a scenario from its name with default parameters.
pub fn scenario_by_name(name: &str) -> anyhow::Result<Scenario> {
    let json = match name {
        "east-kazakhstan-insider" => {
            serde_json::json!({"name": "east-kazakhstan", "insider": true})
        }
        other => serde_json::json!({ "name": other }),
    };
    serde_json::from_value(json).with_context(|| format!("Unknown scenario {name:?}"))
}

/// The simulator configuration of `args`.
pub fn sim_config(args: &SimulateArgs) -> anyhow::Result<SimConfig> {
    let mut config: SimConfig = match &args.sim_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("Failed to read {path:?}"))?;
            if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text)
                    .with_context(|| format!("Invalid simulator configuration {path:?}"))?
            } else {
                toml::from_str(&text)
                    .with_context(|| format!("Invalid simulator configuration {path:?}"))?
            }
        }
        None => SimConfig::default(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(days) = args.days {
        config.days = days;
    }
    if let Some(start) = args.start {
        config.start = start;
    }
    if let Some(households) = args.households {
        if let Some(region) = config.regions.first_mut() {
            region.households = households;
        }
    }
    for name in &args.scenarios {
        config.scenarios.push(scenario_by_name(name)?);
    }
    Ok(config)
}

/// Runs `gridwatch simulate`.
pub async fn run(args: SimulateArgs, config: &Config) -> anyhow::Result<()> {
    let sim_config = sim_config(&args)?;
    let mut simulation = Simulation::new(sim_config).context("Invalid simulation")?;
    if let Some(path) = &args.registry_out {
        std::fs::write(path, serde_json::to_vec_pretty(simulation.registry())?)
            .with_context(|| format!("Failed to write {path:?}"))?;
    }
    if args.register {
        let mut client = crate::db::prepare(&config.database_url, config.migrate_on_start).await?;
        let summary = crate::registry::store::import_document(
            &mut client,
            simulation.registry(),
            "simulator",
        )
        .await
        .map_err(|e| anyhow::anyhow!("The simulated registry was refused: {e}"))?;
        println!("Registered the simulated grid: {summary:?}");
    }
    // The simulator's own URL carries its own credentials; without one it connects as the
    // configuration says (URL, GRIDWATCH_MQTT_USERNAME and _PASSWORD). Either way through the
    // configured CA file.
    let broker = match &args.mqtt_url {
        Some(url) => crate::mqtt::publisher::broker_at(url, config.mqtt.ca_file.clone()),
        None => config.mqtt.clone(),
    };
    let options = FeedOptions {
        mqtt_url: broker.url.expose().to_owned(),
        topic_root: config.mqtt.topic_root.clone(),
        publishers: args.publishers,
        speed: (args.speed > 0.0).then_some(args.speed),
        // At full speed against a database this process can read (--register), the replay
        // waits for ingest rather than overflow the broker's queue.
        backlog: (args.register && args.speed <= 0.0).then(|| Backlog {
            database_url: config.database_url.clone(),
            max_readings: 1_000_000,
        }),
        upload: args.upload,
    };
    let total = simulation.intervals();
    let stats = feed_through(&mut simulation, &broker, &options, |done, stats| {
        if done % 96 == 0 || done == total {
            eprintln!(
                "simulate: {done}/{total} intervals, {} messages, {} readings, {} purchases",
                stats.messages, stats.readings, stats.purchases
            );
        }
    })
    .await?;
    if let Some(path) = &args.truth_out {
        std::fs::write(path, serde_json::to_vec_pretty(simulation.ground_truth())?)
            .with_context(|| format!("Failed to write {path:?}"))?;
    }
    println!(
        "Published {} messages ({} readings) and {} purchases in {:.1} s.",
        stats.messages, stats.readings, stats.purchases, stats.elapsed_secs
    );
    Ok(())
}
