//! The ground truth matches what was published: each injection's energy, recomputed from the
//! published payloads (and, where the theft is a difference, from the clean twin of the run:
//! the same configuration without that scenario), agrees with the simulator's own figure.

mod common;

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use common::{perfect_small_config, run, without, Run};
use gridwatch_sim::scenarios::{
    CapacityExceeded, EastKazakhstan, MiningShare, PurchaseOverCap, QuotaOverrun, SmallDiversion,
    Tamper, TopologyChange, UnlicensedMining,
};
use gridwatch_sim::{Injection, InjectionKind, Scenario, SimConfig};

/// Days simulated: two clean days (the default onset), then two with the scenarios.
const DAYS: u32 = 4;
/// Accuracy of boundary and farm meters.
const CLASS_05: f64 = 0.005;
/// Worst household class.
const CLASS_2: f64 = 0.02;

fn config(scenarios: Vec<Scenario>) -> SimConfig {
    SimConfig {
        scenarios,
        ..perfect_small_config(DAYS)
    }
}

fn window(injection: &Injection) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        injection.started_at,
        injection.ended_at.expect("ended once the run is over"),
    )
}

fn of_kind(run: &Run, kind: InjectionKind) -> Vec<&Injection> {
    run.truth
        .injected
        .iter()
        .filter(|i| i.kind == kind)
        .collect()
}

fn assert_close(what: &str, recomputed: f64, truth: i64, tolerance: f64) {
    assert!(
        (recomputed - truth as f64).abs() <= tolerance,
        "{what}: recomputed {recomputed:.0} Wh, ground truth {truth} Wh (tolerance {tolerance:.0})"
    );
}

fn meter_of(injection: &Injection) -> String {
    injection.meter.as_ref().expect("a meter").to_string()
}

#[test]
fn east_kazakhstan_diversions_are_what_the_feeder_balances_lose() {
    let scenarios = vec![Scenario::EastKazakhstan(EastKazakhstan::default())];
    let run_with = run(config(scenarios.clone()));
    let twin = run(without(&config(scenarios), "east-kazakhstan"));
    // The small grid's substations have three feeders: the default four become three.
    let diversions = of_kind(&run_with, InjectionKind::Diversion);
    assert_eq!(diversions.len(), 3);
    let mut total = 0;
    for injection in diversions {
        let feeder = injection.node.as_ref().expect("a feeder").to_string();
        let (from, to) = window(injection);
        assert_eq!(from - Duration::hours(48), run_with.registry_start());
        let stolen =
            (run_with.residual(&feeder, from, to) - twin.residual(&feeder, from, to)) as f64;
        assert_close(
            &feeder,
            stolen,
            injection.energy_wh,
            CLASS_05 * stolen.abs() + 1_000.0,
        );
        total += injection.energy_wh;
    }
    // 50 MW for two days.
    let expected = 50e6 * 48.0;
    assert!((total as f64 - expected).abs() < 0.02 * expected, "{total}");
}

#[test]
fn the_insider_variant_hides_below_the_feeders_and_shows_at_the_substation() {
    let scenarios = vec![
        Scenario::EastKazakhstan(EastKazakhstan {
            insider: true,
            ..EastKazakhstan::default()
        }),
        Scenario::SmallDiversion(SmallDiversion::default()),
        Scenario::Tamper(Tamper::default()),
    ];
    let run_with = run(config(scenarios.clone()));
    let twin = run(without(&config(scenarios.clone()), "east-kazakhstan"));
    let diversions: Vec<&Injection> = of_kind(&run_with, InjectionKind::Diversion)
        .into_iter()
        .filter(|i| i.scenario == "east-kazakhstan")
        .collect();
    let tampers: Vec<&Injection> = of_kind(&run_with, InjectionKind::MeterTamper)
        .into_iter()
        .filter(|i| i.scenario == "east-kazakhstan")
        .collect();
    assert_eq!((diversions.len(), tampers.len()), (3, 3));
    let (from, to) = window(diversions[0]);
    let substation = diversions[0].details["visible_at"]
        .as_str()
        .expect("visible_at")
        .to_string();
    for (diversion, tamper) in diversions.iter().zip(&tampers) {
        let feeder = diversion.node.as_ref().expect("feeder").to_string();
        // The rigged feeder meter under-reads by what is taken: the feeder balances as if clean.
        let feeder_shift =
            (run_with.residual(&feeder, from, to) - twin.residual(&feeder, from, to)) as f64;
        assert!(
            feeder_shift.abs() < 1e-4 * diversion.energy_wh as f64 + 100.0,
            "{feeder}: {feeder_shift}"
        );
        assert_eq!(
            tamper.meter.as_ref().map(ToString::to_string),
            Some(format!("{feeder}-IN"))
        );
        assert_eq!(tamper.energy_wh, diversion.energy_wh);
    }
    // The substation's meter above sees it all, plus the extra busbar losses its flow causes
    // (quadratic: 50 MW through a substation sized for a few MW costs it about 1 % more).
    let stolen: i64 = diversions.iter().map(|d| d.energy_wh).sum();
    let extra_losses = run_with.losses(&substation, from, to) - twin.losses(&substation, from, to);
    let shift =
        (run_with.residual(&substation, from, to) - twin.residual(&substation, from, to)) as f64;
    assert!(
        extra_losses >= 0.0 && extra_losses < 0.03 * stolen as f64,
        "{extra_losses}"
    );
    assert_close(
        &substation,
        shift - extra_losses,
        stolen,
        CLASS_05 * stolen as f64 + 1_000.0,
    );

    // The small diversion and the tampers of the same run, each against its own twin.
    let small = of_kind(&run_with, InjectionKind::Diversion)
        .into_iter()
        .find(|i| i.scenario == "small-diversion")
        .expect("a small diversion");
    let twin_small = run(without(&config(scenarios.clone()), "small-diversion"));
    let feeder = small.node.as_ref().expect("feeder").to_string();
    let (from, to) = window(small);
    let shift =
        (run_with.residual(&feeder, from, to) - twin_small.residual(&feeder, from, to)) as f64;
    assert_close(
        &feeder,
        shift,
        small.energy_wh,
        CLASS_05 * shift.abs() + 200.0,
    );
    assert!(small.energy_wh > 0);

    let twin_tamper = run(without(&config(scenarios), "tamper"));
    let household_tampers: Vec<&Injection> = of_kind(&run_with, InjectionKind::MeterTamper)
        .into_iter()
        .filter(|i| i.scenario == "tamper")
        .collect();
    assert_eq!(household_tampers.len(), 9);
    for injection in household_tampers {
        let meter = meter_of(injection);
        let (from, to) = window(injection);
        let unreported =
            (twin_tamper.delta(&meter, from, to) - run_with.delta(&meter, from, to)) as f64;
        let gross = run_with.hidden_gross_wh.get(&meter).copied().unwrap_or(0.0);
        assert_close(
            &format!("{meter} ({})", injection.details["attack"]),
            unreported,
            injection.energy_wh,
            CLASS_2 * gross + 20.0,
        );
        // h5 (the day's mean) and h6 (the day reversed) move consumption within a day without
        // reducing its total: they cheat time-of-use tariffs, and steal about nothing here.
        if !["h5", "h6"].contains(&injection.details["attack"].as_str().unwrap_or_default()) {
            assert!(injection.energy_wh > 0, "{meter} stole nothing");
        }
    }
}

#[test]
fn rigs_unregistered_machines_moved_consumers_and_over_cap_purchases_match() {
    let scenarios = vec![
        Scenario::UnlicensedMining(UnlicensedMining::default()),
        Scenario::CapacityExceeded(CapacityExceeded::default()),
        Scenario::TopologyChange(TopologyChange::default()),
        Scenario::PurchaseOverCap(PurchaseOverCap::default()),
    ];
    let run_with = run(config(scenarios.clone()));

    let twin = run(without(&config(scenarios.clone()), "unlicensed-mining"));
    let rigs = of_kind(&run_with, InjectionKind::UnlicensedMining);
    assert_eq!(rigs.len(), 2);
    for injection in rigs {
        let meter = meter_of(injection);
        let (from, to) = window(injection);
        let extra = (run_with.delta(&meter, from, to) - twin.delta(&meter, from, to)) as f64;
        assert_close(
            &meter,
            extra,
            injection.energy_wh,
            CLASS_2 * extra.abs() + 20.0,
        );
        // Three S19s for two days: about 3 x 3,250 W x 48 h.
        assert!((injection.energy_wh as f64 / (3.0 * 3250.0 * 48.0) - 1.0).abs() < 0.03);
    }

    let twin = run(without(&config(scenarios.clone()), "capacity-exceeded"));
    let capacity = of_kind(&run_with, InjectionKind::CapacityExceeded);
    assert_eq!(capacity.len(), 1);
    let meter = meter_of(capacity[0]);
    let (from, to) = window(capacity[0]);
    let extra = (run_with.delta(&meter, from, to) - twin.delta(&meter, from, to)) as f64;
    assert_close(
        &meter,
        extra,
        capacity[0].energy_wh,
        CLASS_05 * extra.abs() + 50.0,
    );

    let twin = run(without(&config(scenarios.clone()), "topology-change"));
    let moves = of_kind(&run_with, InjectionKind::TopologyChange);
    assert_eq!(moves.len(), 1);
    let (from, to) = window(moves[0]);
    let falls = moves[0].details["residual_falls_at"]
        .as_str()
        .expect("falls_at")
        .to_string();
    let rises = moves[0].details["residual_rises_at"]
        .as_str()
        .expect("rises_at")
        .to_string();
    assert_ne!(falls, rises);
    // The residuals move by what moved, plus the shift of the losses the moved load causes on
    // each side (quadratic, so a few percent of it), which the truth records.
    let shift = |node: &str| {
        (run_with.residual(node, from, to) - twin.residual(node, from, to)) as f64
            - (run_with.domain_losses(node, from, to) - twin.domain_losses(node, from, to))
    };
    let moved = moves[0].energy_wh as f64;
    assert_close(
        &falls,
        -shift(&falls),
        moves[0].energy_wh,
        CLASS_05 * moved + 100.0,
    );
    assert_close(
        &rises,
        shift(&rises),
        moves[0].energy_wh,
        CLASS_05 * moved + 100.0,
    );

    let cap = run_with.truth.config.mining.purchase_cap_wh;
    let attempts = of_kind(&run_with, InjectionKind::PurchaseOverCap);
    let over: Vec<i64> = run_with
        .purchases
        .iter()
        .filter(|p| p.energy_wh > cap)
        .map(|p| p.energy_wh - cap)
        .collect();
    assert_eq!(attempts.len(), 3);
    assert_eq!(over.len(), 3);
    assert_eq!(
        over.iter().sum::<i64>(),
        attempts.iter().map(|i| i.energy_wh).sum::<i64>()
    );
    assert!(attempts
        .iter()
        .all(|i| i.started_at == i.ended_at.expect("ended")));
}

#[test]
fn unpaid_energy_and_the_regional_mining_share_match() {
    let scenarios = vec![
        Scenario::MiningShare(MiningShare::default()),
        Scenario::QuotaOverrun(QuotaOverrun::default()),
    ];
    let run_with = run(config(scenarios));

    let quota = of_kind(&run_with, InjectionKind::QuotaOverrun);
    assert_eq!(quota.len(), 1);
    let (from, to) = window(quota[0]);
    let meter = meter_of(quota[0]);
    let licence = quota[0].licence.as_ref().expect("licence");
    let drawn = run_with.delta(&meter, from, to) as f64;
    let bought: i64 = run_with
        .purchases
        .iter()
        .filter(|p| &p.licence == licence && p.delivery_start >= from && p.delivery_end <= to)
        .map(|p| p.energy_wh)
        .sum();
    assert!(run_with.purchases.iter().all(|p| p.energy_wh <= 1_000_000));
    let unpaid = drawn - bought as f64;
    assert_close(
        &meter,
        unpaid,
        quota[0].energy_wh,
        CLASS_05 * drawn + 1_000.0,
    );
    // About 5 % of what was bought.
    assert!((quota[0].energy_wh as f64 / bought as f64 - 0.05).abs() < 0.01);

    let share = of_kind(&run_with, InjectionKind::MiningShareExceeded);
    assert_eq!(share.len(), 1);
    let (from, to) = window(share[0]);
    let region = share[0].region.as_ref().expect("region");
    let farms: Vec<String> = run_with
        .registry
        .meters
        .iter()
        .filter(|m| m.licence.is_some())
        .map(|m| m.id.to_string())
        .collect();
    let roots: Vec<String> = run_with
        .registry
        .nodes
        .iter()
        .filter(|n| n.parent.is_none() && &n.region == region)
        .filter_map(|n| n.input_meter.as_ref().map(ToString::to_string))
        .collect();
    let mut excess = 0.0;
    let mut tolerance = 0.0;
    let mut day = from;
    let mut shares = HashMap::new();
    while day < to {
        let next = (day + Duration::days(1)).min(to);
        let mining: f64 = farms
            .iter()
            .map(|m| run_with.delta(m, day, next) as f64)
            .sum();
        let input: f64 = roots
            .iter()
            .map(|m| run_with.delta(m, day, next) as f64)
            .sum();
        excess += (mining - 0.3 * input).max(0.0);
        tolerance += CLASS_05 * (mining + 0.3 * input);
        shares.insert(day, mining / input);
        day = next;
    }
    assert_close(
        "mining share",
        excess,
        share[0].energy_wh,
        tolerance + 1_000.0,
    );
    assert!(share[0].energy_wh > 0);
    assert!(shares.values().all(|s| *s > 0.3), "{shares:?}");
    assert_eq!(
        share[0].details["days"].as_array().map(Vec::len),
        Some(shares.len())
    );
}

#[test]
fn ground_truth_is_json_with_the_contracts_kinds() {
    let run_with = run(config(vec![Scenario::Tamper(Tamper {
        count: 2,
        ..Tamper::default()
    })]));
    let json = serde_json::to_value(&run_with.truth).expect("serialises");
    assert_eq!(json["seed"], 42);
    assert_eq!(json["injected"][0]["kind"], "meter_tamper");
    assert_eq!(json["injected"][0]["scenario"], "tamper");
    assert_eq!(json["config"]["scenarios"][0]["name"], "tamper");
    for field in [
        "region",
        "node",
        "meter",
        "licence",
        "started_at",
        "ended_at",
        "energy_wh",
        "details",
    ] {
        assert!(json["injected"][0].get(field).is_some(), "{field}");
    }
    let back: gridwatch_sim::GroundTruth = serde_json::from_value(json).expect("parses back");
    assert_eq!(back, run_with.truth);
}

trait StartOf {
    fn registry_start(&self) -> DateTime<Utc>;
}

impl StartOf for Run {
    fn registry_start(&self) -> DateTime<Utc> {
        self.truth.config.start
    }
}
