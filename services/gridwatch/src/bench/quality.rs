//! `gridwatch bench quality`: how well the detector finds a diversion, by theft size and node
//! size, and how often it raises a case where nothing is stolen.
//!
//! Each run is one simulated region (its own database) whose feeders each carry `homes` homes
//! directly (no transformers), with a `small-diversion` of `share` of one feeder's energy from
//! `onset_hours` on, over `seeds` seeds; the same grids without a theft measure the false cases.
//! The registers are copied straight into PostgreSQL at their boundaries (the detector is
//! measured here, not ingest or the network). Per theft size and node size it prints:
//! - detected: runs with a diversion case on the diverted feeder that started after the onset,
//! - delay: event time from the onset until the case was first judged (its `judged_until`),
//! - energy error: the cases' energy on that feeder against the energy the simulator diverted,
//! - false cases: diversion cases on any other node, and on the clean grids, per node-day.
//!
//! `--svg FILE` writes delay against theft size, one series per node size.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;

use gridwatch_sim::truth::InjectionKind;
use gridwatch_sim::{SimConfig, Simulation};

use crate::config::Config;
use crate::detector::Detector;
use crate::metrics::Metrics;

/// What `bench quality` runs.
#[derive(Args, Debug, Clone)]
pub struct QualityBenchArgs {
    /// Seeds per combination.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Homes per feeder (node sizes), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "5,50,500")]
    pub homes: Vec<u32>,
    /// Theft sizes, as shares of the feeder's energy, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.005,0.01,0.03,0.1,0.5")]
    pub shares: Vec<f64>,
    /// Feeders per grid (one of them diverted).
    #[arg(long, default_value_t = 4)]
    pub feeders: u32,
    /// Days simulated.
    #[arg(long, default_value_t = 6)]
    pub days: u32,
    /// Onset of the theft, hours after the start.
    #[arg(long, default_value_t = 72.0)]
    pub onset_hours: f64,
    /// Writes delay against theft size as an SVG chart here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Database of the runs (dropped and created again for each).
    #[arg(long, default_value = "gridwatch_bench_quality")]
    pub database: String,
}

/// One run's outcome.
#[derive(Debug, Clone, Default)]
struct RunOutcome {
    detected: bool,
    delay_hours: Option<f64>,
    energy_error: Option<f64>,
    false_cases: i64,
    node_days: f64,
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: QualityBenchArgs, config: &Config) -> anyhow::Result<()> {
    println!(
        "gridwatch bench quality: {} seed(s) x feeders of {:?} homes x thefts of {:?} of a feeder's energy from hour {} of {} days, {} feeders per grid",
        args.seeds, args.homes, args.shares, args.onset_hours, args.days, args.feeders
    );
    let started = Instant::now();
    // (homes, share) -> outcomes; share 0 is the clean grid.
    let mut results: BTreeMap<(u32, u64), Vec<RunOutcome>> = BTreeMap::new();
    let shares: Vec<f64> = std::iter::once(0.0)
        .chain(args.shares.iter().copied())
        .collect();
    for &homes in &args.homes {
        for &share in &shares {
            for seed in 0..args.seeds {
                let outcome = one_run(&args, config, homes, share, 1000 + seed)
                    .await
                    .with_context(|| format!("run of {homes} homes, share {share}, seed {seed}"))?;
                results
                    .entry((homes, (share * 1e6).round() as u64))
                    .or_default()
                    .push(outcome);
            }
        }
    }
    print_table(&results, args.onset_hours);
    if let Some(path) = &args.svg {
        std::fs::write(path, svg(&results))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("delay chart written to {}", path.display());
    }
    println!("{:.0} s in all", started.elapsed().as_secs_f64());
    Ok(())
}

async fn one_run(
    args: &QualityBenchArgs,
    config: &Config,
    homes: u32,
    share: f64,
    seed: u64,
) -> anyhow::Result<RunOutcome> {
    let url = crate::db::drop_database(&config.database_url, &args.database).await?;
    let mut client = crate::db::prepare(&url, true).await?;
    let mut sim_config = SimConfig {
        seed,
        days: args.days,
        ..SimConfig::default()
    };
    if let Some(region) = sim_config.regions.first_mut() {
        region.substations = 1;
        region.feeders_per_substation = args.feeders;
        region.transformers_per_feeder = 0;
        region.households = homes * args.feeders;
        region.commercial = (homes * args.feeders / 50).min(20);
        region.industrial = 0;
        region.mining_farms = 0;
    }
    sim_config.scenarios = if share > 0.0 {
        vec![serde_json::from_value(serde_json::json!({
            "name": "small-diversion", "share": share, "onset_hours": args.onset_hours,
        }))?]
    } else {
        Vec::new()
    };
    let mut simulation = Simulation::new(sim_config).context("invalid simulation")?;
    let (meter_keys, region_key) = super::detect::import_registry(&mut client, &simulation).await?;
    let start = simulation.config().start;
    client
        .execute(
            "SELECT gridwatch_ensure_reading_partitions($1, $2)",
            &[
                &(start - TimeDelta::days(1)),
                &(start + TimeDelta::days(i64::from(args.days) + 1)),
            ],
        )
        .await?;
    let mut detector_config = config.clone();
    detector_config.database_url = url.clone();
    let mut detector = Detector::new(detector_config, Arc::new(Metrics::new()));
    // A day at a time: the detector keeps up as it would live.
    let mut first = None;
    let mut last = start;
    let mut n = 0u64;
    while let Some(interval) = simulation.next_interval() {
        super::detect::copy_interval(&mut client, &meter_keys, &interval).await?;
        first.get_or_insert(interval.at);
        last = interval.at;
        n += 1;
        if n.is_multiple_of(96) {
            super::detect::touch(&client, region_key, first.unwrap_or(start), last).await?;
            first = None;
            while detector.cycle(&mut client).await? {}
        }
    }
    super::detect::touch(&client, region_key, first.unwrap_or(last), last).await?;
    while detector.cycle(&mut client).await? {}

    let truth = simulation.ground_truth().clone();
    let injection = truth
        .injected
        .iter()
        .find(|i| i.kind == InjectionKind::Diversion);
    let balanced: i64 = client
        .query_one(
            "SELECT count(*) FROM nodes WHERE input_meter_key IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    let node_days = balanced as f64 * f64::from(args.days);
    let cases = client
        .query(
            "SELECT node, started_at, energy_wh, (evidence->>'judged_until')::timestamptz
             FROM anomalies WHERE kind = 'diversion' AND status <> 'withdrawn'",
            &[],
        )
        .await?;
    let mut outcome = RunOutcome {
        node_days,
        ..RunOutcome::default()
    };
    let diverted = injection.and_then(|i| i.node.as_ref().map(|n| n.to_string()));
    let onset = injection.map(|i| i.started_at);
    let mut energy = 0i64;
    let mut first_judged: Option<DateTime<Utc>> = None;
    for row in &cases {
        let node: Option<String> = row.get(0);
        let started: DateTime<Utc> = row.get(1);
        let on_theft = diverted.is_some()
            && node == diverted
            && onset.is_some_and(|o| started >= o - TimeDelta::hours(1));
        if on_theft {
            energy += row.get::<_, i64>(2);
            let judged: Option<DateTime<Utc>> = row.get(3);
            let judged = judged.unwrap_or(started);
            first_judged = Some(first_judged.map_or(judged, |f| f.min(judged)));
        } else {
            outcome.false_cases += 1;
        }
    }
    if let (Some(injection), Some(judged)) = (injection, first_judged) {
        outcome.detected = true;
        outcome.delay_hours =
            Some(((judged - injection.started_at).num_seconds() as f64 / 3600.0).max(0.0));
        if injection.energy_wh > 0 {
            outcome.energy_error =
                Some((energy - injection.energy_wh) as f64 / injection.energy_wh as f64);
        }
    }
    Ok(outcome)
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

fn print_table(results: &BTreeMap<(u32, u64), Vec<RunOutcome>>, onset_hours: f64) {
    println!(
        "\n| homes per feeder | theft (share of feeder) | detected | median delay (h) | worst delay (h) | median energy error | false cases per 1,000 node-days |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for ((homes, share), outcomes) in results {
        let share = *share as f64 / 1e6;
        let detected = outcomes.iter().filter(|o| o.detected).count();
        let mut delays: Vec<f64> = outcomes.iter().filter_map(|o| o.delay_hours).collect();
        let worst = delays
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d))));
        let mut errors: Vec<f64> = outcomes.iter().filter_map(|o| o.energy_error).collect();
        let false_cases: i64 = outcomes.iter().map(|o| o.false_cases).sum();
        let node_days: f64 = outcomes.iter().map(|o| o.node_days).sum();
        let theft = if share > 0.0 {
            format!("{:.1} %", share * 100.0)
        } else {
            "none (clean)".into()
        };
        let found = if share > 0.0 {
            format!("{detected}/{}", outcomes.len())
        } else {
            "-".into()
        };
        let fmt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".into(), f);
        println!(
            "| {homes} | {theft} | {found} | {} | {} | {} | {:.1} |",
            fmt(median(&mut delays), &|d| format!("{d:.1}")),
            fmt(worst, &|d| format!("{d:.1}")),
            fmt(median(&mut errors), &|e| format!("{:+.1} %", e * 100.0)),
            1000.0 * false_cases as f64 / node_days.max(1.0)
        );
    }
    println!(
        "(delay: event time from the onset, hour {onset_hours}, to the case's first judgement)"
    );
}

/// Delay against theft size (log scale), one series per node size; undetected runs sit on the
/// top edge.
fn svg(results: &BTreeMap<(u32, u64), Vec<RunOutcome>>) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 400.0, 60.0, 50.0, 30.0, 120.0);
    let max_delay = results
        .values()
        .flatten()
        .filter_map(|o| o.delay_hours)
        .fold(24.0f64, f64::max)
        .ceil();
    let x_of = |share: f64| {
        let (lo, hi) = (0.002f64.ln(), 1.0f64.ln());
        left + (share.ln() - lo) / (hi - lo) * (w - left - right)
    };
    let y_of = |delay: f64| h - bottom - delay.min(max_delay) / max_delay * (h - bottom - top);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{}" y="18" text-anchor="middle">Detection delay against theft size (gridwatch bench quality)</text>
<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">theft, share of the feeder's energy (log scale)</text>
<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">delay, hours</text>
"#,
        w / 2.0,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom,
        (left + w - right) / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0
    );
    for share in [0.005, 0.01, 0.03, 0.1, 0.3, 1.0] {
        let x = x_of(share);
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="black"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            h - bottom,
            h - bottom + 5.0,
            h - bottom + 18.0,
            format_args!("{} %", share * 100.0)
        );
    }
    for step in 0..=4 {
        let d = max_delay * f64::from(step) / 4.0;
        let y = y_of(d);
        let _ = writeln!(
            out,
            r#"<line x1="{}" y1="{y:.1}" x2="{left}" y2="{y:.1}" stroke="black"/><text x="{}" y="{:.1}" text-anchor="end">{d:.0}</text>"#,
            left - 5.0,
            left - 8.0,
            y + 4.0
        );
    }
    let sizes: Vec<u32> = {
        let mut s: Vec<u32> = results.keys().map(|(h, _)| *h).collect();
        s.dedup();
        s
    };
    for (i, homes) in sizes.iter().enumerate() {
        let colour = colours[i % colours.len()];
        for ((h_, share), outcomes) in results.range((*homes, 1)..=(*homes, u64::MAX)) {
            let _ = h_;
            let share = *share as f64 / 1e6;
            for (j, o) in outcomes.iter().enumerate() {
                let x = x_of(share) + (j as f64 - 2.0) * 2.5 + (i as f64 - 1.0) * 6.0;
                match o.delay_hours {
                    Some(d) => {
                        let _ = writeln!(
                            out,
                            r#"<circle cx="{x:.1}" cy="{:.1}" r="3.5" fill="{colour}"/>"#,
                            y_of(d)
                        );
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            r#"<text x="{x:.1}" y="{:.1}" fill="{colour}" text-anchor="middle">x</text>"#,
                            top + 4.0
                        );
                    }
                }
            }
        }
        let y = top + 20.0 * i as f64 + 10.0;
        let _ = writeln!(
            out,
            r#"<circle cx="{}" cy="{y:.1}" r="4" fill="{colour}"/><text x="{}" y="{:.1}">{homes} homes</text>"#,
            w - right + 15.0,
            w - right + 25.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}">x: not found</text>"#,
        w - right + 10.0,
        top + 20.0 * sizes.len() as f64 + 14.0
    );
    out.push_str("</svg>\n");
    out
}
