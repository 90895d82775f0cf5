//! The grid tree as the balance needs it: for every node with an input meter, the meters whose
//! sum is what the node feeds (CONTRACT.md section 1).

use std::collections::HashMap;

use gridwatch_core::registry::{MeterClass, MeterRole, RegistryDocument};
use gridwatch_core::{LicenceId, MeterId, NodeId, RegionId};

/// A node, by dense index.
#[derive(Debug, Clone)]
pub struct TopoNode {
    /// Its id.
    pub id: NodeId,
    /// Its region.
    pub region: RegionId,
    /// Its kind (substation, feeder...).
    pub kind: String,
    /// Its parent's index.
    pub parent: Option<usize>,
    /// Its input meter's index.
    pub input_meter: Option<usize>,
    /// Its children's indices.
    pub children: Vec<usize>,
    /// Consumer meters attached to it.
    pub consumers: Vec<usize>,
}

/// A meter, by dense index.
#[derive(Debug, Clone)]
pub struct TopoMeter {
    /// Its id.
    pub id: MeterId,
    /// Its node's index.
    pub node: usize,
    /// Input or consumer.
    pub role: MeterRole,
    /// Connection class.
    pub class: MeterClass,
    /// Accuracy class in percent.
    pub accuracy_pct: f64,
    /// Licence of a licensed farm.
    pub licence: Option<LicenceId>,
}

/// The grid, indexed.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Nodes by index.
    pub nodes: Vec<TopoNode>,
    /// Meters by index.
    pub meters: Vec<TopoMeter>,
    node_index: HashMap<NodeId, usize>,
    meter_index: HashMap<MeterId, usize>,
}

/// What a node's balance adds up: input minus the sum of `fed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceTerms {
    /// The node's input meter.
    pub input: usize,
    /// Child input meters, and consumer meters reached through children without one.
    pub fed: Vec<usize>,
}

impl Topology {
    /// Indexes a registry document (assumed valid: see `gridwatch_core::registry::validate`).
    pub fn from_registry(doc: &RegistryDocument) -> Topology {
        let mut t = Topology::default();
        for n in &doc.nodes {
            t.node_index.insert(n.id.clone(), t.nodes.len());
            t.nodes.push(TopoNode {
                id: n.id.clone(),
                region: n.region.clone(),
                kind: n.kind.clone(),
                parent: None,
                input_meter: None,
                children: Vec::new(),
                consumers: Vec::new(),
            });
        }
        for m in &doc.meters {
            let Some(&node) = t.node_index.get(&m.node) else {
                continue;
            };
            t.meter_index.insert(m.id.clone(), t.meters.len());
            if m.role == MeterRole::Consumer {
                t.nodes[node].consumers.push(t.meters.len());
            }
            t.meters.push(TopoMeter {
                id: m.id.clone(),
                node,
                role: m.role,
                class: m.class,
                accuracy_pct: m.accuracy_pct,
                licence: m.licence.clone(),
            });
        }
        for n in &doc.nodes {
            let Some(&i) = t.node_index.get(&n.id) else {
                continue;
            };
            if let Some(parent) = n.parent.as_ref().and_then(|p| t.node_index.get(p)).copied() {
                t.nodes[i].parent = Some(parent);
                t.nodes[parent].children.push(i);
            }
            t.nodes[i].input_meter = n
                .input_meter
                .as_ref()
                .and_then(|m| t.meter_index.get(m))
                .copied();
        }
        t
    }

    /// A node's index.
    pub fn node(&self, id: &str) -> Option<usize> {
        self.node_index.get(id).copied()
    }

    /// A meter's index.
    pub fn meter(&self, id: &str) -> Option<usize> {
        self.meter_index.get(id).copied()
    }

    /// The balance terms of a node with an input meter; `None` for a node without one.
    pub fn balance_terms(&self, node: usize) -> Option<BalanceTerms> {
        let input = self.nodes.get(node)?.input_meter?;
        let mut fed = self.nodes[node].consumers.clone();
        let mut stack: Vec<usize> = self.nodes[node].children.clone();
        while let Some(child) = stack.pop() {
            match self.nodes[child].input_meter {
                Some(meter) => fed.push(meter),
                None => {
                    fed.extend(&self.nodes[child].consumers);
                    stack.extend(&self.nodes[child].children);
                }
            }
        }
        fed.sort_unstable();
        Some(BalanceTerms { input, fed })
    }

    /// The tree with consumer meters fed from other nodes than the registry says: each
    /// `(meter, node)` puts the meter on the node. Balance terms of the result count each moved
    /// meter where it is fed now.
    pub fn with_moves(&self, moves: &[(usize, usize)]) -> Topology {
        let mut t = self.clone();
        for &(meter, node) in moves {
            if meter >= t.meters.len() || node >= t.nodes.len() {
                continue;
            }
            let from = t.meters[meter].node;
            if from == node || t.meters[meter].role != MeterRole::Consumer {
                continue;
            }
            t.nodes[from].consumers.retain(|&m| m != meter);
            t.nodes[node].consumers.push(meter);
            t.meters[meter].node = node;
        }
        t
    }

    /// Nodes of `region` with an input meter, parents before children.
    pub fn balanced_nodes(&self, region: &str) -> Vec<usize> {
        let mut out: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].region.as_str() == region && self.nodes[i].input_meter.is_some()
            })
            .collect();
        out.sort_by_key(|&i| self.depth(i));
        out
    }

    /// Nodes of `region` without a parent (where the region's energy enters).
    pub fn roots(&self, region: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].region.as_str() == region && self.nodes[i].parent.is_none())
            .collect()
    }

    fn depth(&self, mut node: usize) -> usize {
        let mut depth = 0;
        while let Some(parent) = self.nodes[node].parent {
            depth += 1;
            node = parent;
            if depth > self.nodes.len() {
                break;
            }
        }
        depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_core::registry::parse_document;

    #[test]
    fn a_child_without_input_meter_is_seen_through_its_consumers() {
        let doc = parse_document(
            br#"{
          "regions": [{"id":"r","name":"R","tariff_kzt_per_kwh":10}],
          "nodes": [
            {"id":"S","parent":null,"region":"r","kind":"substation","input_meter":"S-IN"},
            {"id":"F1","parent":"S","region":"r","kind":"feeder","input_meter":"F1-IN"},
            {"id":"F2","parent":"S","region":"r","kind":"feeder"},
            {"id":"T","parent":"F2","region":"r","kind":"transformer"}],
          "meters": [
            {"id":"S-IN","node":"S","role":"input","class":"boundary","accuracy_pct":0.5},
            {"id":"F1-IN","node":"F1","role":"input","class":"boundary","accuracy_pct":0.5},
            {"id":"A","node":"F1","role":"consumer","class":"household","accuracy_pct":1},
            {"id":"B","node":"F2","role":"consumer","class":"household","accuracy_pct":1},
            {"id":"C","node":"T","role":"consumer","class":"household","accuracy_pct":1},
            {"id":"D","node":"S","role":"consumer","class":"industrial","accuracy_pct":1}]
        }"#,
        )
        .expect("valid");
        let t = Topology::from_registry(&doc);
        let s = t.node("S").expect("S");
        let terms = t.balance_terms(s).expect("S has an input meter");
        let mut fed: Vec<&str> = terms.fed.iter().map(|&m| t.meters[m].id.as_str()).collect();
        fed.sort_unstable();
        assert_eq!(fed, ["B", "C", "D", "F1-IN"]);
        let f1 = t
            .balance_terms(t.node("F1").expect("F1"))
            .expect("F1 balanced");
        assert_eq!(f1.fed.len(), 1);
        assert!(t.balance_terms(t.node("F2").expect("F2")).is_none());
        assert_eq!(t.balanced_nodes("r").len(), 2);
        assert_eq!(t.balanced_nodes("r")[0], s);

        // C moves from T (under F2, no input meter) to F1: S still feeds it, F1 now does.
        let moved = t.with_moves(&[(t.meter("C").expect("C"), t.node("F1").expect("F1"))]);
        let f1 = moved
            .balance_terms(moved.node("F1").expect("F1"))
            .expect("F1 balanced");
        assert_eq!(f1.fed.len(), 2);
        assert_eq!(
            moved.balance_terms(s).expect("S").fed.len(),
            terms.fed.len() - 1,
            "C is inside F1 now, which S sees through F1's input meter"
        );
    }
}
