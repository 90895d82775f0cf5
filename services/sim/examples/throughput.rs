//! How fast the simulator generates a month of a 10,000-meter grid (payloads included).
//!
//! `cargo run --release -p gridwatch-sim --example throughput [days] [households]`

use std::time::Instant;

use gridwatch_sim::config::RegionConfig;
use gridwatch_sim::scenarios::{EastKazakhstan, Tamper};
use gridwatch_sim::{Scenario, SimConfig, Simulation};

fn main() {
    let mut args = std::env::args().skip(1);
    let days: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let households: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(9_300);
    let config = SimConfig {
        days,
        regions: vec![RegionConfig {
            substations: 4,
            feeders_per_substation: 6,
            transformers_per_feeder: 8,
            households,
            commercial: 600,
            industrial: 20,
            mining_farms: 6,
            ..RegionConfig::default()
        }],
        scenarios: vec![
            Scenario::EastKazakhstan(EastKazakhstan::default()),
            Scenario::Tamper(Tamper::default()),
        ],
        ..SimConfig::default()
    };
    let started = Instant::now();
    let mut simulation = match Simulation::new(config) {
        Ok(simulation) => simulation,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    let meters = simulation.registry().meters.len();
    let built = started.elapsed();
    let (mut messages, mut bytes, mut purchases) = (0usize, 0usize, 0usize);
    while let Some(interval) = simulation.next_interval() {
        messages += interval.messages.len();
        bytes += interval
            .messages
            .iter()
            .map(|m| m.payload.len())
            .sum::<usize>();
        purchases += interval.purchases.len();
    }
    let elapsed = started.elapsed();
    let readings = meters as f64 * f64::from(days) * 96.0;
    println!(
        "{meters} meters x {days} days: built in {:.2} s, generated in {:.2} s ({:.2} M readings/s); \
         {messages} messages, {:.0} MB of payload, {purchases} purchases",
        built.as_secs_f64(),
        elapsed.as_secs_f64(),
        readings / elapsed.as_secs_f64() / 1e6,
        bytes as f64 / 1e6,
    );
}
