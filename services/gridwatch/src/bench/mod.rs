//! Benchmarks that print figures (not timed tests: a busy machine makes those flaky).
//!
//! - `gridwatch bench ingest`: the ingest pipeline against its ceilings (docs/BENCHMARKS.md).
//! - `gridwatch bench detect`: one window for 100,000 meters, and the 30-day replay.
//! - `gridwatch bench quality`: detection rate, delay, energy error and false cases by theft and
//!   node size (docs/DETECTION.md).

pub mod detect;
pub mod ingest;
pub mod quality;

use clap::Subcommand;

use crate::config::Config;

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Ingest throughput, latency and memory against the MQTT-only and raw-COPY ceilings.
    Ingest(ingest::IngestBenchArgs),
    /// Detector cost: one window for 100,000 meters, and a 30-day replay through MQTT.
    Detect(detect::DetectBenchArgs),
    /// Detection quality: rate, delay, energy error and false cases by theft and node size.
    Quality(quality::QualityBenchArgs),
    /// (Used by `bench ingest`.) A subscriber that only acknowledges, for the MQTT ceiling.
    #[command(hide = true)]
    AckOnly,
}

/// Runs a benchmark and prints its figures.
pub async fn run(command: BenchCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest::run(args, config).await,
        BenchCommand::Detect(args) => detect::run(args, config).await,
        BenchCommand::Quality(args) => quality::run(args, config).await,
        BenchCommand::AckOnly => ingest::ack_only(config).await,
    }
}
