//! Energy is conserved: at every node and in every interval, input = fed + technical losses +
//! unmetered lighting + injected theft; and the published registers say the same within the
//! meters' accuracy.

mod common;

use std::collections::HashMap;

use common::{balance_domain, fed_meters, small_config};
use gridwatch_core::registry::MeterRole;
use gridwatch_sim::scenarios::{
    EastKazakhstan, SmallDiversion, Tamper, TopologyChange, UnlicensedMining,
};
use gridwatch_sim::{IntervalTruth, Scenario, SimConfig, Simulation};

/// Largest clock skew of a meter, seconds (the default configuration's clip).
const MAX_SKEW_S: f64 = 10.0;

fn thefts(onset_hours: f64) -> Vec<Scenario> {
    vec![
        Scenario::EastKazakhstan(EastKazakhstan {
            power_w: 2e6,
            feeders: 2,
            insider: true,
            insider_feeders: Some(1),
            onset_hours,
            ..EastKazakhstan::default()
        }),
        Scenario::SmallDiversion(SmallDiversion {
            onset_hours,
            ..SmallDiversion::default()
        }),
        Scenario::Tamper(Tamper {
            onset_hours,
            ..Tamper::default()
        }),
        Scenario::UnlicensedMining(UnlicensedMining {
            onset_hours,
            ..UnlicensedMining::default()
        }),
    ]
}

fn collect(
    config: SimConfig,
) -> (
    gridwatch_core::registry::RegistryDocument,
    Vec<IntervalTruth>,
) {
    let mut simulation = Simulation::new(config).expect("valid");
    let registry = simulation.registry().clone();
    let mut truths = Vec::new();
    while let Some(interval) = simulation.next_interval() {
        truths.push(interval.truth);
    }
    (registry, truths)
}

#[test]
fn every_node_conserves_energy_in_every_interval() {
    let mut config = small_config(3);
    config.scenarios = thefts(24.0);
    config
        .scenarios
        .push(Scenario::TopologyChange(TopologyChange {
            onset_hours: 30.0,
            ..TopologyChange::default()
        }));
    let (registry, truths) = collect(config);
    let mut theft_seen = false;
    for truth in &truths {
        for (n, node) in truth.nodes.iter().enumerate() {
            let sum = node.fed_wh + node.technical_loss_wh + node.unmetered_wh + node.theft_wh;
            assert!(
                (node.input_wh - sum).abs() <= 1e-9 * node.input_wh.max(1.0),
                "{} at {}: input {} != {}",
                registry.nodes[n].id,
                truth.end,
                node.input_wh,
                sum
            );
            assert!(node.technical_loss_wh > 0.0 && node.fed_wh >= 0.0 && node.unmetered_wh >= 0.0);
            theft_seen |= node.theft_wh > 0.0;
        }
        // A node's input is what its input meter's connection carries.
        for (n, node) in registry.nodes.iter().enumerate() {
            if let Some(input) = &node.input_meter {
                let m = registry
                    .meters
                    .iter()
                    .position(|m| &m.id == input)
                    .expect("meter");
                assert!((truth.meters[m].consumed_wh - truth.nodes[n].input_wh).abs() < 1e-6);
            }
        }
    }
    assert!(theft_seen);
}

#[test]
fn what_a_node_feeds_is_its_children_and_consumers() {
    let mut config = small_config(2);
    config.scenarios = thefts(12.0);
    let (registry, truths) = collect(config);
    let node_index: HashMap<&str, usize> = registry
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    for truth in &truths {
        let mut fed = vec![0.0; registry.nodes.len()];
        for (n, node) in registry.nodes.iter().enumerate() {
            if let Some(parent) = &node.parent {
                fed[node_index[parent.as_str()]] += truth.nodes[n].input_wh;
            }
        }
        for (m, meter) in registry.meters.iter().enumerate() {
            if meter.role == MeterRole::Consumer {
                fed[node_index[meter.node.as_str()]] += truth.meters[m].consumed_wh;
            }
        }
        for (n, node) in truth.nodes.iter().enumerate() {
            assert!((node.fed_wh - fed[n]).abs() <= 1e-6 * fed[n].max(1.0));
        }
    }
}

#[test]
fn registers_track_what_each_meter_sees_within_its_class() {
    let mut config = small_config(3);
    config.scenarios = thefts(24.0);
    let (registry, truths) = collect(config);
    let per_day = 96;
    for m in 0..registry.meters.len() {
        let accuracy = registry.meters[m].accuracy_pct / 100.0;
        for day in 1..truths.len() / per_day {
            let first = (day - 1) * per_day;
            let last = day * per_day - 1;
            let delta =
                (truths[last].meters[m].register_wh - truths[first].meters[m].register_wh) as f64;
            let seen: f64 = (first + 1..=last)
                .map(|i| truths[i].meters[m].seen_wh)
                .sum();
            let gross: f64 = (first + 1..=last)
                .map(|i| truths[i].meters[m].seen_wh.abs())
                .sum();
            let peak_w = (first..=last.min(truths.len() - 2) + 1)
                .map(|i| truths[i].meters[m].seen_wh.abs() * 4.0)
                .fold(0.0, f64::max);
            let tolerance = accuracy * gross + 2.0 * peak_w * MAX_SKEW_S / 3600.0 + 2.0;
            assert!(
                (delta - seen).abs() <= tolerance,
                "{} day {day}: register moved {delta}, meter saw {seen} (tolerance {tolerance})",
                registry.meters[m].id
            );
        }
    }
}

#[test]
fn registers_never_run_backwards_unless_tampered_backwards() {
    let mut config = small_config(4);
    config.scenarios = thefts(24.0);
    let mut simulation = Simulation::new(config).expect("valid");
    let backwards: Vec<String> = simulation
        .ground_truth()
        .injected
        .iter()
        .filter(|i| i.details["attack"] == "backwards")
        .filter_map(|i| i.meter.as_ref().map(ToString::to_string))
        .collect();
    assert_eq!(backwards.len(), 1);
    let registry = simulation.registry().clone();
    let mut last: Vec<Option<i64>> = vec![None; registry.meters.len()];
    let mut went_back = 0;
    while let Some(interval) = simulation.next_interval() {
        for (m, truth) in interval.truth.meters.iter().enumerate() {
            if let Some(previous) = last[m] {
                if truth.register_wh < previous {
                    assert!(
                        backwards.contains(&registry.meters[m].id.to_string()),
                        "{} went backwards",
                        registry.meters[m].id
                    );
                    went_back += 1;
                }
            }
            last[m] = Some(truth.register_wh);
        }
    }
    assert!(
        went_back > 0,
        "the backwards attack never drove its register backwards"
    );
}

#[test]
fn registry_balances_close_within_meter_accuracy() {
    // Input = fed + losses + lighting + injected theft, seen through the published registers and
    // the registry's tree, node by node and day by day.
    let mut config = small_config(3);
    config.scenarios = thefts(24.0);
    let (registry, truths) = collect(config);
    let meter_index: HashMap<String, usize> = registry
        .meters
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.to_string(), i))
        .collect();
    let node_index: HashMap<String, usize> = registry
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.to_string(), i))
        .collect();
    let per_day = 96;
    for node in registry.nodes.iter().filter(|n| n.input_meter.is_some()) {
        let input = meter_index[node.input_meter.as_ref().expect("metered").as_str()];
        let fed: Vec<usize> = fed_meters(&registry, node.id.as_str())
            .iter()
            .map(|m| meter_index[m])
            .collect();
        let domain: Vec<usize> = balance_domain(&registry, node.id.as_str())
            .iter()
            .map(|n| node_index[n])
            .collect();
        for day in 1..truths.len() / per_day {
            let (first, last) = ((day - 1) * per_day, day * per_day - 1);
            let delta = |m: usize| {
                (truths[last].meters[m].register_wh - truths[first].meters[m].register_wh) as f64
            };
            let residual = delta(input) - fed.iter().map(|&m| delta(m)).sum::<f64>();
            let window = first + 1..=last;
            let mut expected = 0.0;
            let mut tolerance = 0.0;
            for i in window.clone() {
                let t = &truths[i];
                for &d in &domain {
                    expected += t.nodes[d].technical_loss_wh
                        + t.nodes[d].unmetered_wh
                        + t.nodes[d].theft_wh;
                }
                for &m in &fed {
                    expected += t.meters[m].consumed_wh - t.meters[m].seen_wh;
                }
                expected -= t.meters[input].consumed_wh - t.meters[input].seen_wh;
                for &m in fed.iter().chain([&input]) {
                    let accuracy = registry.meters[m].accuracy_pct / 100.0;
                    tolerance += accuracy * t.meters[m].seen_wh.abs()
                        + 2.0 * MAX_SKEW_S / 3600.0 * t.meters[m].seen_wh.abs() * 4.0
                            / per_day as f64;
                }
            }
            tolerance += 2.0 * (fed.len() + 1) as f64;
            assert!(
                (residual - expected).abs() <= tolerance,
                "{} day {day}: residual {residual} Wh, expected {expected} Wh (tolerance {tolerance})",
                node.id
            );
        }
    }
}
