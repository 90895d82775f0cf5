//! `gridwatch-fuzz`: runs the fuzz targets for a bounded time each and reports executions and
//! crashes. `scripts/fuzz.sh` is the usual way in.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use gridwatch_fuzz::{corpus_dir, load_corpus, run, Budget, Options, Target};

/// Fuzzes gridwatch's payload parsers, registry validation and calculator on stable Rust.
#[derive(Parser)]
struct Args {
    /// Targets to run (all when none): meter_payload, gateway_payload, registry, calculator.
    targets: Vec<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Stop a target after this many executions, if that comes first.
    #[arg(long)]
    executions: Option<u64>,
    /// Seed of the mutations (the same seed replays the same inputs).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The corpus folder (default: the committed `fuzz/corpus`).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Where crashing inputs are saved (default: `fuzz/crashes`).
    #[arg(long)]
    crashes: Option<PathBuf>,
    /// An input running longer than this many seconds is saved as a hang.
    #[arg(long, default_value_t = 10)]
    hang_seconds: u64,
    /// Write each input to `<crashes>/<target>/current.bin` before running it (slow; to find
    /// an input that aborts the process).
    #[arg(long)]
    trace: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let targets: Vec<Target> = if args.targets.is_empty() {
        Target::ALL.to_vec()
    } else {
        let mut targets = Vec::new();
        for name in &args.targets {
            let Some(target) = Target::parse(name) else {
                eprintln!("unknown target {name:?}; the targets are meter_payload, gateway_payload, registry, calculator");
                return ExitCode::from(2);
            };
            targets.push(target);
        }
        targets
    };
    let corpus = args.corpus.unwrap_or_else(corpus_dir);
    let options = Options {
        seed: args.seed,
        budget: Budget {
            time: Some(Duration::from_secs(args.seconds)),
            executions: args.executions,
        },
        crash_dir: Some(
            args.crashes
                .unwrap_or_else(|| corpus_dir().with_file_name("crashes")),
        ),
        hang_after: Some(Duration::from_secs(args.hang_seconds)),
        trace: args.trace,
    };
    let mut crashed = false;
    for target in targets {
        let report =
            match load_corpus(&corpus, target).and_then(|seeds| run(target, &seeds, &options)) {
                Ok(report) => report,
                Err(error) => {
                    eprintln!("{}: failed to run: {error}", target.name());
                    return ExitCode::from(2);
                }
            };
        let seconds = report.elapsed.as_secs_f64();
        println!(
            "{}: {} executions in {seconds:.1} s ({:.0}/s), {} distinct outcomes, pool {}, {} crashes (seed {})",
            target.name(),
            report.executions,
            report.executions as f64 / seconds.max(1e-9),
            report.outcomes,
            report.pool,
            report.crashes.len(),
            args.seed,
        );
        for crash in &report.crashes {
            crashed = true;
            let first_line = crash.message.lines().take(2).collect::<Vec<_>>().join(" ");
            println!(
                "  {:?} x{}: {first_line}\n    input saved to {}",
                crash.kind,
                crash.occurrences,
                crash
                    .saved_to
                    .as_ref()
                    .map_or("(not saved)".into(), |p| p.display().to_string()),
            );
        }
    }
    if crashed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
