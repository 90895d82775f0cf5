//! Every fuzz target, run for a bounded number of inputs from the committed corpus: the suite
//! exercises the harness and catches a regression that a seed or a few mutations reach.

use gridwatch_fuzz::{corpus_dir, load_corpus, run, Budget, Options, Report, Target};

/// Inputs per target: a few seconds for all four in a debug build.
const EXECUTIONS: u64 = 2_000;

fn campaign(target: Target, seed: u64, executions: u64) -> Report {
    let corpus = load_corpus(&corpus_dir(), target).expect("the corpus is readable");
    let options = Options {
        seed,
        budget: Budget {
            time: None,
            executions: Some(executions),
        },
        ..Options::default()
    };
    run(target, &corpus, &options).expect("nothing to save")
}

fn survives(target: Target) {
    let report = campaign(target, 1, EXECUTIONS);
    assert_eq!(report.executions, EXECUTIONS);
    let crashes: Vec<String> = report
        .crashes
        .iter()
        .map(|c| {
            format!(
                "{:?} x{}: {}\n  input: {:?}",
                c.kind,
                c.occurrences,
                c.message,
                String::from_utf8_lossy(&c.input)
            )
        })
        .collect();
    assert!(
        crashes.is_empty(),
        "{}:\n{}",
        target.name(),
        crashes.join("\n")
    );
    // The seeds alone reach several outcomes; mutations must reach more.
    assert!(report.outcomes > 3, "{} outcomes only", report.outcomes);
}

#[test]
fn meter_payload_survives_two_thousand_inputs() {
    survives(Target::MeterPayload);
}

#[test]
fn gateway_payload_survives_two_thousand_inputs() {
    survives(Target::GatewayPayload);
}

#[test]
fn registry_survives_two_thousand_inputs() {
    survives(Target::Registry);
}

#[test]
fn calculator_survives_two_thousand_inputs() {
    survives(Target::Calculator);
}

#[test]
fn every_target_has_seeds() {
    for target in Target::ALL {
        let seeds = load_corpus(&corpus_dir(), target).expect("readable");
        assert!(
            seeds.len() >= 5,
            "{} has {} seeds",
            target.name(),
            seeds.len()
        );
    }
}

#[test]
fn the_same_seed_replays_the_same_inputs() {
    let digest = |seed| campaign(Target::MeterPayload, seed, 300).digest;
    assert_eq!(digest(7), digest(7));
    assert_ne!(digest(7), digest(8));
}
