//! Helpers shared by the integration tests: small grids, runs collected into maps of published
//! registers, and registry-based balances computed the way gridwatch computes them.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use gridwatch_core::reading::{parse_gateway_payload, parse_meter_payload, ReadingBounds};
use gridwatch_core::registry::RegistryDocument;
use gridwatch_core::MeterId;
use gridwatch_sim::config::{NetworkConfig, RegionConfig};
use gridwatch_sim::{
    ConsumerKind, GroundTruth, Interval, NodeTruth, OutTopic, Purchase, Scenario, SimConfig,
    Simulation,
};

/// A small region: 2 substations x 3 feeders x 2 transformers, 240 households, 24 commercial,
/// 2 industrial, 2 farms, over `days` days.
pub fn small_config(days: u32) -> SimConfig {
    SimConfig {
        days,
        regions: vec![RegionConfig {
            substations: 2,
            feeders_per_substation: 3,
            transformers_per_feeder: 2,
            households: 240,
            commercial: 24,
            industrial: 2,
            mining_farms: 2,
            ..RegionConfig::default()
        }],
        ..SimConfig::default()
    }
}

/// The same, with a network that delivers every reading once and on time.
pub fn perfect_small_config(days: u32) -> SimConfig {
    SimConfig {
        network: NetworkConfig::perfect(),
        ..small_config(days)
    }
}

/// What a run published, parsed.
pub struct Run {
    pub registry: RegistryDocument,
    pub truth: GroundTruth,
    /// (meter, reading time in seconds) -> register, from the published payloads.
    pub registers: HashMap<(String, i64), i64>,
    pub purchases: Vec<Purchase>,
    pub messages: usize,
    pub readings: usize,
    /// Each interval's end (seconds) and its nodes' truth.
    pub nodes: Vec<(i64, Vec<NodeTruth>)>,
    /// Per meter, the energy its sensing element was not shown, summed in absolute value, Wh.
    pub hidden_gross_wh: HashMap<String, f64>,
}

/// Parses every reading of an interval's messages: (meter, ts seconds, register).
pub fn readings_of(interval: &Interval) -> Vec<(String, i64, i64)> {
    let bounds = ReadingBounds::unbounded();
    let mut out = Vec::new();
    for message in &interval.messages {
        match &message.topic {
            OutTopic::Meter(id) => {
                let reading = parse_meter_payload(id, &message.payload, &bounds)
                    .expect("a meter payload parses");
                out.push((id.to_string(), reading.ts.timestamp(), reading.energy_wh));
            }
            OutTopic::Gateway(_) => {
                let elements = parse_gateway_payload(&message.payload, 10_000, &bounds)
                    .expect("a gateway payload is an array");
                for element in elements {
                    let reading = element.result.expect("a gateway element parses");
                    out.push((
                        reading.meter_id.to_string(),
                        reading.ts.timestamp(),
                        reading.energy_wh,
                    ));
                }
            }
        }
    }
    out
}

/// Runs a configuration to the end and collects what it published.
pub fn run(config: SimConfig) -> Run {
    let mut simulation = Simulation::new(config).expect("a valid configuration");
    let registry = simulation.registry().clone();
    let mut registers = HashMap::new();
    let mut purchases = Vec::new();
    let mut messages = 0;
    let mut readings = 0;
    let mut nodes = Vec::new();
    let mut hidden_gross_wh: HashMap<String, f64> = HashMap::new();
    while let Some(interval) = simulation.next_interval() {
        messages += interval.messages.len();
        nodes.push((interval.at.timestamp(), interval.truth.nodes.clone()));
        for (meter, truth) in registry.meters.iter().zip(&interval.truth.meters) {
            if truth.consumed_wh != truth.seen_wh {
                *hidden_gross_wh.entry(meter.id.to_string()).or_default() +=
                    (truth.consumed_wh - truth.seen_wh).abs();
            }
        }
        for (meter, ts, register) in readings_of(&interval) {
            readings += 1;
            let previous = registers.insert((meter, ts), register);
            assert!(
                previous.is_none() || previous == Some(register),
                "a re-delivery changed its value"
            );
        }
        purchases.extend(interval.purchases);
    }
    Run {
        registry,
        truth: simulation.ground_truth().clone(),
        registers,
        purchases,
        messages,
        readings,
        nodes,
        hidden_gross_wh,
    }
}

impl Run {
    /// A meter's register at a reading time.
    pub fn register(&self, meter: &str, at: DateTime<Utc>) -> i64 {
        *self
            .registers
            .get(&(meter.to_string(), at.timestamp()))
            .unwrap_or_else(|| panic!("no reading of {meter} at {at}"))
    }

    /// A meter's register advance over `[from, to]`, Wh.
    pub fn delta(&self, meter: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        self.register(meter, to) - self.register(meter, from)
    }

    /// Technical losses of a node over the intervals ending in `(from, to]`, Wh.
    pub fn losses(&self, node: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
        let n = self
            .registry
            .nodes
            .iter()
            .position(|x| x.id.as_str() == node)
            .expect("a node");
        self.nodes
            .iter()
            .filter(|(end, _)| *end > from.timestamp() && *end <= to.timestamp())
            .map(|(_, nodes)| nodes[n].technical_loss_wh)
            .sum()
    }

    /// Technical losses absorbed by a node's balance (its own and its unmetered descendants'),
    /// over the intervals ending in `(from, to]`, Wh.
    pub fn domain_losses(&self, node: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
        balance_domain(&self.registry, node)
            .iter()
            .map(|n| self.losses(n, from, to))
            .sum()
    }

    /// The registry balance residual of `node` over `[from, to]`: its input meter minus what it
    /// feeds as the registry says (children's input meters, or their downstream meters).
    pub fn residual(&self, node: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        let input = self
            .registry
            .nodes
            .iter()
            .find(|n| n.id.as_str() == node)
            .and_then(|n| n.input_meter.clone())
            .expect("a metered node");
        let fed: i64 = fed_meters(&self.registry, node)
            .iter()
            .map(|m| self.delta(m, from, to))
            .sum();
        self.delta(input.as_str(), from, to) - fed
    }
}

/// The meters a node's balance subtracts, as CONTRACT §1 defines it.
pub fn fed_meters(registry: &RegistryDocument, node: &str) -> Vec<String> {
    let mut meters: Vec<String> = registry
        .meters
        .iter()
        .filter(|m| {
            m.node.as_str() == node && m.role == gridwatch_core::registry::MeterRole::Consumer
        })
        .map(|m| m.id.to_string())
        .collect();
    for child in registry
        .nodes
        .iter()
        .filter(|n| n.parent.as_ref().map(|p| p.as_str()) == Some(node))
    {
        match &child.input_meter {
            Some(meter) => meters.push(meter.to_string()),
            None => meters.extend(fed_meters(registry, child.id.as_str())),
        }
    }
    meters
}

/// The nodes whose losses and lighting a node's balance absorbs: itself and its unmetered
/// descendants, recursively.
pub fn balance_domain(registry: &RegistryDocument, node: &str) -> HashSet<String> {
    let mut domain = HashSet::from([node.to_string()]);
    for child in registry
        .nodes
        .iter()
        .filter(|n| n.parent.as_ref().map(|p| p.as_str()) == Some(node))
    {
        if child.input_meter.is_none() {
            domain.extend(balance_domain(registry, child.id.as_str()));
        }
    }
    domain
}

/// The configuration without the scenarios named.
pub fn without(config: &SimConfig, name: &str) -> SimConfig {
    SimConfig {
        scenarios: config
            .scenarios
            .iter()
            .filter(|s| s.name() != name)
            .cloned()
            .collect::<Vec<Scenario>>(),
        ..config.clone()
    }
}

/// A meter id.
pub fn meter(id: &str) -> MeterId {
    MeterId::parse(id).expect("a valid meter id")
}

/// Indices, in the registry's meter list, of the consumer meters whose kind `keep` accepts.
pub fn consumers_where(simulation: &Simulation, keep: impl Fn(ConsumerKind) -> bool) -> Vec<usize> {
    simulation
        .registry()
        .meters
        .iter()
        .enumerate()
        .filter(|(_, m)| simulation.consumer_kind(&m.id).is_some_and(&keep))
        .map(|(i, _)| i)
        .collect()
}
