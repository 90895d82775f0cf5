//! The `gridwatch` command: every service and tool of the product in one binary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use gridwatch::config::Config;
use gridwatch::metrics::Metrics;
use gridwatch::{db, http, ingest, shutdown, telemetry};

/// gridwatch: smart-meter theft detection for electricity grids.
///
/// Configuration: `--config FILE` (TOML), overridden by GRIDWATCH_* environment variables
/// (see README.md).
#[derive(Parser)]
#[command(name = "gridwatch", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (every key has a default; see deploy/gridwatch.example.toml).
    #[arg(long, global = true, env = "GRIDWATCH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database if needed and apply pending schema migrations.
    Migrate,
    /// Run the ingest service: MQTT meter readings into PostgreSQL, at least once.
    Ingest,
    /// Run the detector (energy balance, quotas, mining, tampering). Not in this build yet.
    Detect,
    /// Run the HTTP API (registry, purchases, anomalies, status). Not in this build yet.
    Api,
    /// Run every service in one process (the small-deployment default). This build runs
    /// ingest and serves /metrics on GRIDWATCH_HTTP_ADDR.
    Run,
    /// Simulate a grid and publish its readings over MQTT. Not in this build yet.
    Simulate,
    /// Run the East Kazakhstan demonstration end to end. Not in this build yet.
    Demo,
    /// Registry documents (CONTRACT section 1).
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// The compliance calculator (purchases needed, profit tax, AIFC share). Not in this build yet.
    Calc,
    /// The tamper-evident audit history.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        command: gridwatch::bench::BenchCommand,
    },
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Validate and upsert a registry document (JSON). Not in this build yet.
    Import {
        /// The registry document.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain of anomaly histories and report the first broken entry. Not in
    /// this build yet.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("gridwatch: {error:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gridwatch: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, config)) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("gridwatch: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn not_yet(what: &str) -> anyhow::Result<ExitCode> {
    eprintln!("gridwatch: `{what}` is not available in this build yet.");
    Ok(ExitCode::from(2))
}

async fn dispatch(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Migrate => {
            let mut client = db::connect_creating(&config.database_url).await?;
            let applied = db::migrate::run(&mut client).await?;
            println!("Schema up to date ({applied} migration(s) applied).");
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest => {
            run_ingest(config, false).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            run_ingest(config, true).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Detect => not_yet("detect"),
        Command::Api => not_yet("api"),
        Command::Simulate => not_yet("simulate"),
        Command::Demo => not_yet("demo"),
        Command::Calc => not_yet("calc"),
        Command::Registry {
            command: RegistryCommand::Import { .. },
        } => not_yet("registry import"),
        Command::Audit {
            command: AuditCommand::Verify,
        } => not_yet("audit verify"),
        Command::Bench { command } => {
            gridwatch::bench::run(command, &config).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Ingest with `/metrics` on the metrics address (or on the API address for `run`).
async fn run_ingest(config: Config, combined: bool) -> anyhow::Result<()> {
    db::prepare(&config.database_url, config.migrate_on_start)
        .await
        .context("Failed to prepare the database")?;
    let metrics = Arc::new(Metrics::new());
    let (trigger, stop) = shutdown::channel();
    let addr = if combined {
        config.http_addr
    } else {
        config.metrics_addr
    };
    let (bound, server) =
        http::serve(addr, http::metrics_router(metrics.clone()), stop.clone()).await?;
    tracing::info!(%bound, "Serving /metrics.");
    tokio::spawn(async move {
        shutdown::os_signal().await;
        tracing::info!("Stopping: finishing the open batch.");
        trigger.trigger();
    });
    ingest::run(&config, metrics, stop).await?;
    let _ = server.await;
    Ok(())
}
