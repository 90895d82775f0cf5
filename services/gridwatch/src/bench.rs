//! Benchmarks that print figures (not timed tests).

use clap::Subcommand;

use crate::config::Config;

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Ingest throughput, latency and memory. Not in this build yet.
    Ingest,
}

/// Runs a benchmark and prints its figures.
pub async fn run(command: BenchCommand, _config: &Config) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest => anyhow::bail!("`bench ingest` is not available in this build yet"),
    }
}
