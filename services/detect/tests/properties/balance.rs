//! Balance math on a synthetic grid tree whose every flow is known: what enters a node minus
//! what it feeds is exactly what was diverted or lost inside its balance zone, and the order in
//! which the registry lists nodes and meters changes nothing.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use proptest::sample::Index;

use gridwatch_core::registry::{
    self, Meter, MeterClass, MeterRole, Node, Region, RegistryDocument,
};
use gridwatch_core::{MeterId, NodeId, RegionId};
use gridwatch_detect::balance::{balance, NodeBalance};
use gridwatch_detect::topology::Topology;

/// One node of the synthetic tree. Energies are whole watt-hours, so that every sum is exact
/// in an f64 whatever order it is taken in.
#[derive(Debug, Clone)]
struct SynthNode {
    /// The parent, an earlier node (so the nodes form a tree rooted at node 0).
    parent: Index,
    /// Whether an input meter measures what enters it (always, for the root).
    metered: bool,
    /// What each of its consumers drew, Wh.
    consumers_wh: Vec<u32>,
    /// Energy taken without a meter (a diversion), Wh.
    diverted_wh: u32,
    /// Technical losses inside it, Wh.
    loss_wh: u32,
}

fn synth_node() -> impl Strategy<Value = SynthNode> {
    (
        any::<Index>(),
        any::<bool>(),
        prop::collection::vec(0u32..200_000, 0..5),
        prop_oneof![3 => Just(0u32), 1 => 0u32..50_000_000],
        0u32..20_000,
    )
        .prop_map(
            |(parent, metered, consumers_wh, diverted_wh, loss_wh)| SynthNode {
                parent,
                metered,
                consumers_wh,
                diverted_wh,
                loss_wh,
            },
        )
}

/// A grid: its registry document, every meter's true energy, and every node's diversion
/// plus losses.
struct Grid {
    doc: RegistryDocument,
    energy_wh: HashMap<MeterId, f64>,
    unmetered_wh: HashMap<NodeId, f64>,
}

fn id<T>(parse: fn(&str) -> Result<T, gridwatch_core::IdError>, text: &str) -> T {
    parse(text).expect("a valid identifier")
}

fn grid(nodes: &[SynthNode]) -> Grid {
    let parent_of = |i: usize| (i > 0).then(|| nodes[i].parent.index(i));
    let region = id(RegionId::parse, "r");
    let mut doc = RegistryDocument {
        regions: vec![Region {
            id: region.clone(),
            name: "Synthetic".into(),
            tariff_kzt_per_kwh: 10.0,
            timezone: None,
        }],
        ..RegistryDocument::default()
    };
    let mut energy_wh = HashMap::new();
    let mut unmetered_wh = HashMap::new();
    // What enters each node: its consumers, diversion and losses, and what its children take.
    // Children have higher indices than their parent, so one pass from the leaves adds it up.
    let mut throughput_wh = vec![0.0f64; nodes.len()];
    for i in (0..nodes.len()).rev() {
        let n = &nodes[i];
        let own = n.consumers_wh.iter().map(|&c| f64::from(c)).sum::<f64>()
            + f64::from(n.diverted_wh)
            + f64::from(n.loss_wh);
        throughput_wh[i] += own;
        if let Some(p) = parent_of(i) {
            throughput_wh[p] += throughput_wh[i];
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let node_id = id(NodeId::parse, &format!("N{i}"));
        let metered = i == 0 || n.metered;
        let input_meter = metered.then(|| id(MeterId::parse, &format!("N{i}-IN")));
        doc.nodes.push(Node {
            id: node_id.clone(),
            parent: parent_of(i).map(|p| id(NodeId::parse, &format!("N{p}"))),
            region: region.clone(),
            kind: "transformer".into(),
            input_meter: input_meter.clone(),
        });
        let meter = |meter_id: MeterId, role, class| Meter {
            id: meter_id,
            node: node_id.clone(),
            role,
            class,
            accuracy_pct: 1.0,
            licence: None,
            gateway: None,
        };
        if let Some(input) = input_meter {
            energy_wh.insert(input.clone(), throughput_wh[i]);
            doc.meters
                .push(meter(input, MeterRole::Input, MeterClass::Boundary));
        }
        for (j, &drawn) in n.consumers_wh.iter().enumerate() {
            let consumer = id(MeterId::parse, &format!("N{i}-C{j}"));
            energy_wh.insert(consumer.clone(), f64::from(drawn));
            doc.meters
                .push(meter(consumer, MeterRole::Consumer, MeterClass::Household));
        }
        unmetered_wh.insert(node_id, f64::from(n.diverted_wh) + f64::from(n.loss_wh));
    }
    Grid {
        doc,
        energy_wh,
        unmetered_wh,
    }
}

/// Every balanced node's balance, by node id, with the ids of what it feeds.
fn balances(
    grid: &Grid,
    doc: &RegistryDocument,
) -> HashMap<NodeId, (NodeBalance, BTreeSet<MeterId>)> {
    let topology = Topology::from_registry(doc);
    let energy = |m: usize| Some((grid.energy_wh[&topology.meters[m].id], 0.0));
    topology
        .balanced_nodes("r")
        .into_iter()
        .map(|node| {
            let terms = topology.balance_terms(node).expect("a balanced node");
            let fed = terms
                .fed
                .iter()
                .map(|&m| topology.meters[m].id.clone())
                .collect();
            let b = balance(&terms, energy, |_| None);
            (topology.nodes[node].id.clone(), (b, fed))
        })
        .collect()
}

/// Diversion plus losses inside `node`'s balance zone: the node and the children reached
/// without crossing another input meter.
fn zone_unmetered_wh(grid: &Grid, node: &NodeId) -> f64 {
    let doc = &grid.doc;
    let mut total = 0.0;
    let mut stack = vec![node.clone()];
    while let Some(current) = stack.pop() {
        total += grid.unmetered_wh[&current];
        for child in doc
            .nodes
            .iter()
            .filter(|n| n.parent.as_ref() == Some(&current))
        {
            if child.input_meter.is_none() {
                stack.push(child.id.clone());
            }
        }
    }
    total
}

/// `items` permuted by the Fisher-Yates draws in `draws`.
fn permuted<T>(mut items: Vec<T>, draws: &[Index]) -> Vec<T> {
    for i in (1..items.len()).rev() {
        let j = draws[i % draws.len()].index(i + 1);
        items.swap(i, j);
    }
    items
}

proptest! {
    #![proptest_config(super::config())]

    #[test]
    fn input_minus_fed_is_what_was_diverted_or_lost_in_the_zone(
        nodes in prop::collection::vec(synth_node(), 1..16),
    ) {
        let grid = grid(&nodes);
        prop_assert_eq!(registry::validate(&grid.doc, &RegistryDocument::default()), Ok(()));
        let balances = balances(&grid, &grid.doc);
        let mut residual_total_wh = 0.0;
        for (node, (b, _)) in &balances {
            let residual_wh = b.residual_wh().expect("every input meter is read");
            prop_assert_eq!(residual_wh, zone_unmetered_wh(&grid, node), "node {}", node);
            prop_assert_eq!(b.coverage, 1.0);
            prop_assert_eq!(b.imputed_meters, 0);
            residual_total_wh += residual_wh;
        }
        // The root is metered, so the zones cover the tree: every Wh diverted or lost shows in
        // exactly one node's residual.
        let unmetered_total_wh: f64 = grid.unmetered_wh.values().sum();
        prop_assert_eq!(residual_total_wh, unmetered_total_wh);
    }

    #[test]
    fn the_order_of_nodes_and_meters_in_the_registry_changes_no_balance(
        nodes in prop::collection::vec(synth_node(), 1..16),
        node_draws in prop::collection::vec(any::<Index>(), 1..32),
        meter_draws in prop::collection::vec(any::<Index>(), 1..32),
    ) {
        let grid = grid(&nodes);
        let mut shuffled = grid.doc.clone();
        shuffled.nodes = permuted(shuffled.nodes, &node_draws);
        shuffled.meters = permuted(shuffled.meters, &meter_draws);
        prop_assert_eq!(balances(&grid, &shuffled), balances(&grid, &grid.doc));
    }

    #[test]
    fn imputed_meters_add_their_typical_energy_and_lower_coverage(
        nodes in prop::collection::vec(synth_node(), 1..16),
        missing in prop::collection::vec(any::<bool>(), 64),
        typical_wh in prop::collection::vec(0u32..100_000, 64),
    ) {
        let grid = grid(&nodes);
        let topology = Topology::from_registry(&grid.doc);
        let truth = |m: usize| grid.energy_wh[&topology.meters[m].id];
        for node in topology.balanced_nodes("r") {
            let terms = topology.balance_terms(node).expect("a balanced node");
            let known = |m: usize| (!missing[m % 64]).then(|| (truth(m), 0.0));
            let typical = |m: usize| Some((f64::from(typical_wh[m % 64]), 0.0));
            let b = balance(&terms, known, typical);
            let expected_fed_wh: f64 = terms
                .fed
                .iter()
                .map(|&m| match known(m) {
                    Some((e, _)) => e,
                    None => f64::from(typical_wh[m % 64]),
                })
                .sum();
            prop_assert_eq!(b.fed_wh, expected_fed_wh);
            let imputed = terms.fed.iter().filter(|&&m| missing[m % 64]).count();
            prop_assert_eq!(b.imputed_meters as usize, imputed);
            prop_assert!((0.0..=1.0).contains(&b.coverage), "coverage {}", b.coverage);
            if imputed == 0 {
                prop_assert_eq!(b.coverage, 1.0);
            }
        }
    }
}
