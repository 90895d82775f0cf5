//! The `gridwatch` command: every service and tool of the product in one binary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use gridwatch::config::Config;
use gridwatch::services::{self, Service};
use gridwatch::{api, db, shutdown, telemetry};

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
    /// Run the detector: energy balance at every node, the diversion tests, data gaps, on event
    /// time.
    Detect,
    /// Run the HTTP API on GRIDWATCH_HTTP_ADDR (registry, purchases, calculator, rejections,
    /// status, /metrics, /api/v1/openapi.json) and consume purchases from MQTT.
    Api,
    /// Run every service in one process (the small-deployment default): ingest, the detector
    /// and the API, with /metrics on GRIDWATCH_HTTP_ADDR.
    Run,
    /// Simulate a grid (loads, meters, losses, network faults, thefts) and publish its readings
    /// and purchases over MQTT, as a real grid would.
    Simulate(gridwatch::simulate::SimulateArgs),
    /// Run the East Kazakhstan demonstration end to end: its own broker and database, the
    /// services, a simulated region with a 50 MW insider diversion, and a report.
    Demo(gridwatch::demo::DemoArgs),
    /// Registry documents (CONTRACT section 1).
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// The compliance calculator: purchase transactions needed, profit tax and AIFC obligation
    /// for a period, under the regulation profile in force on the date.
    Calc(CalcArgs),
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

/// The calculator's inputs.
#[derive(clap::Args)]
struct CalcArgs {
    /// Electricity consumed over the period, in MWh.
    #[arg(long, allow_negative_numbers = true)]
    consumption_mwh: f64,
    /// Revenue over the period, in tenge.
    #[arg(long, allow_negative_numbers = true)]
    revenue_kzt: f64,
    /// Costs over the period, in tenge.
    #[arg(long, allow_negative_numbers = true)]
    costs_kzt: f64,
    /// Digital assets mined over the period, in units (for example BTC).
    #[arg(long, allow_negative_numbers = true)]
    mined_assets: f64,
    /// Value of one unit of the asset, in tenge (to value the AIFC obligation).
    #[arg(long, allow_negative_numbers = true)]
    asset_value_kzt: Option<f64>,
    /// The day whose rules apply, such as 2025-10-01 (default: today, UTC).
    #[arg(long)]
    date: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Validate and upsert a registry document (JSON), all or nothing, as PUT /api/v1/registry
    /// does; changes are recorded as made by `cli`.
    Import {
        /// The registry document.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain of anomaly histories and report the first entry altered, inserted
    /// or removed, and every anomaly whose row disagrees with its history (exit 1), or print
    /// the number of entries and the head hash to record elsewhere (exit 0).
    Verify(gridwatch::audit::VerifyArgs),
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

async fn dispatch(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Migrate => {
            let mut client = db::connect_creating(&config.database_url).await?;
            let applied = db::migrate::run(&mut client).await?;
            println!("Schema up to date ({applied} migration(s) applied).");
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest => {
            run_services(config, &[Service::Ingest]).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            run_services(config, &[Service::Ingest, Service::Detect, Service::Api]).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Detect => {
            run_services(config, &[Service::Detect]).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Api => {
            run_services(config, &[Service::Api]).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(args) => {
            gridwatch::simulate::run(args, &config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            gridwatch::demo::run(args, &config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Calc(args) => calc(args, &config),
        Command::Registry {
            command: RegistryCommand::Import { file },
        } => registry_import(&file, &config).await,
        Command::Audit {
            command: AuditCommand::Verify(args),
        } => gridwatch::audit::run(args, &config).await,
        Command::Bench { command } => {
            gridwatch::bench::run(command, &config).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `services` until SIGINT or SIGTERM, or until one of them fails.
async fn run_services(config: Config, services: &[Service]) -> anyhow::Result<()> {
    let running = services::start(&config, services).await?;
    let stopper = running.stopper();
    tokio::spawn(async move {
        shutdown::os_signal().await;
        tracing::info!("Stopping: finishing open work.");
        stopper.trigger();
    });
    running.wait().await
}

/// `gridwatch calc`.
fn calc(args: CalcArgs, config: &Config) -> anyhow::Result<ExitCode> {
    use gridwatch_core::calculator::{calculate, CalculatorInput};
    let regulation = gridwatch::ledger::regulation::load(config.api.regulation_file.as_deref())?;
    let date = match api::calculator::parse_date(args.date.as_deref()) {
        Ok(date) => date,
        Err(message) => {
            eprintln!("gridwatch calc: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let input = CalculatorInput {
        consumption_mwh: args.consumption_mwh,
        revenue_kzt: args.revenue_kzt,
        costs_kzt: args.costs_kzt,
        mined_assets: args.mined_assets,
        asset_value_kzt: args.asset_value_kzt,
        date,
    };
    let compliance = match calculate(&input, &regulation) {
        Ok(compliance) => compliance,
        Err(error) => {
            eprintln!(
                "gridwatch calc: --{}: {}",
                error.field.replace('_', "-"),
                error.message
            );
            return Ok(ExitCode::from(2));
        }
    };
    let answer = api::calculator::CalculatorAnswer { date, compliance };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", api::calculator::table(&input, &answer));
    }
    Ok(ExitCode::SUCCESS)
}

/// `gridwatch registry import FILE`.
async fn registry_import(file: &std::path::Path, config: &Config) -> anyhow::Result<ExitCode> {
    use gridwatch::registry::store::{import_document, ImportError};
    let started = std::time::Instant::now();
    let bytes = std::fs::read(file).with_context(|| format!("Failed to read {file:?}"))?;
    let document = match gridwatch_core::registry::parse_document(&bytes) {
        Ok(document) => document,
        Err(error) => {
            eprintln!(
                "gridwatch registry import: {file:?} was refused; nothing was changed:\n  {error}"
            );
            return Ok(ExitCode::from(1));
        }
    };
    let mut client = db::prepare(&config.database_url, config.migrate_on_start).await?;
    match import_document(&mut client, &document, "cli").await {
        Ok(summary) => {
            println!(
                "Imported {file:?} in {:.2} s: created {} region(s), {} node(s), {} meter(s), {} licence(s); updated {} region(s), {} node(s), {} meter(s), {} licence(s); {} unchanged. Registry version {}.",
                started.elapsed().as_secs_f64(),
                summary.created.regions, summary.created.nodes, summary.created.meters, summary.created.licences,
                summary.updated.regions, summary.updated.nodes, summary.updated.meters, summary.updated.licences,
                summary.unchanged, summary.version
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ImportError::Invalid(errors)) => {
            eprintln!("gridwatch registry import: {file:?} was refused ({} error(s)); nothing was changed:", errors.len());
            for error in &errors {
                eprintln!("  {error}");
            }
            Ok(ExitCode::from(1))
        }
        Err(error) => Err(anyhow::Error::new(error).context("Failed to import the registry")),
    }
}
