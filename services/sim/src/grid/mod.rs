//! The grid: regions, the tree of nodes, meters, consumers and farms, as the simulator runs
//! them, and the registry document (CONTRACT §1) that describes them to gridwatch.
//!
//! The simulator's tree is the physical one. The registry says where consumers were connected
//! when it was written; a topology-change scenario moves consumers physically without telling
//! it, exactly as happens in the field.

mod build;

use gridwatch_core::ids::{GatewayId, LicenceId, MeterId, NodeId, RegionId};
use gridwatch_core::registry::{
    Licence, Meter, MeterClass, MeterRole, Node, Region, RegistryDocument,
};

use crate::flows::Diversion;
use crate::lighting::StreetLighting;
use crate::loads::{ConsumerLoad, LoadModel, MiningFarm};
use crate::losses::NodeLoss;
use crate::meters::Measurement;
use crate::purchases::PurchaseBook;
use crate::scenarios::tamper::Tamper;

/// The three levels of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Substation,
    Feeder,
    Transformer,
}

impl NodeKind {
    fn as_str(self) -> &'static str {
        match self {
            NodeKind::Substation => "substation",
            NodeKind::Feeder => "feeder",
            NodeKind::Transformer => "transformer",
        }
    }
}

/// A region and its roots.
#[derive(Debug)]
pub(crate) struct GridRegion {
    pub id: RegionId,
    pub name: String,
    pub tariff_kzt_per_kwh: f64,
    pub timezone: Option<String>,
    /// Its substations (nodes without a parent).
    pub roots: Vec<usize>,
}

/// A node of the tree. Nodes are stored parents first.
#[derive(Debug)]
pub(crate) struct GridNode {
    pub id: NodeId,
    pub region: usize,
    pub kind: NodeKind,
    pub parent: Option<usize>,
    pub input_meter: Option<usize>,
    pub loss: NodeLoss,
    pub lighting: Option<StreetLighting>,
    /// Energy taken below the input meter by scenarios.
    pub diversions: Vec<Diversion>,
}

/// A meter.
#[derive(Debug)]
pub(crate) struct GridMeter {
    pub id: MeterId,
    /// The node the registry attaches it to.
    pub node: usize,
    pub role: MeterRole,
    pub class: MeterClass,
    pub accuracy_pct: f64,
    pub gateway: Option<usize>,
    /// The consumer it meters (consumer meters only).
    pub consumer: Option<usize>,
    /// The licensed farm it meters.
    pub farm: Option<usize>,
    pub measurement: Measurement,
    /// When it is read.
    pub schedule: ReadingSchedule,
}

/// When a meter's register is read and how the reading is stamped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ReadingSchedule {
    /// Intervals between readings (1: every interval; 2: a 30-minute profile of 15-minute
    /// intervals).
    pub every: u32,
    /// Seconds after the boundary the reading is taken and stamped (a head-end's poll time).
    pub delay_s: u32,
}

impl Default for ReadingSchedule {
    fn default() -> Self {
        ReadingSchedule {
            every: 1,
            delay_s: 0,
        }
    }
}

/// Consumers moved to another node at some interval (topology change).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Relocation {
    pub from_index: u64,
    pub to_node: usize,
    pub injection: usize,
}

/// A consumer connection.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub meter: usize,
    /// The node it is physically connected to (at the start of the run).
    pub node: usize,
    pub load: ConsumerLoad,
    /// The injection that its load's injected part (rigs, unregistered machines) counts for.
    pub load_injection: Option<usize>,
    pub tamper: Option<Tamper>,
    pub relocation: Option<Relocation>,
}

impl Consumer {
    /// The node it is physically connected to during interval `index`.
    pub(crate) fn physical_node(&self, index: u64) -> usize {
        match self.relocation {
            Some(r) if index >= r.from_index => r.to_node,
            _ => self.node,
        }
    }
}

/// A licensed farm.
#[derive(Debug)]
pub(crate) struct Farm {
    pub consumer: usize,
    pub region: usize,
    pub licence: LicenceId,
    pub holder: String,
    pub pool: String,
    pub book: PurchaseBook,
}

/// The whole grid.
#[derive(Debug)]
pub(crate) struct Grid {
    pub regions: Vec<GridRegion>,
    pub nodes: Vec<GridNode>,
    pub meters: Vec<GridMeter>,
    pub consumers: Vec<Consumer>,
    pub gateways: Vec<GatewayId>,
    pub farms: Vec<Farm>,
}

impl Grid {
    /// The farm model of a farm.
    pub(crate) fn farm_model(&mut self, farm: usize) -> Option<&mut MiningFarm> {
        let consumer = self.farms.get(farm)?.consumer;
        match &mut self.consumers.get_mut(consumer)?.load.model {
            LoadModel::Mining(model) => Some(model),
            _ => None,
        }
    }

    /// Index of a node by id.
    pub(crate) fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id.as_str() == id)
    }

    /// Index of a meter by id.
    pub(crate) fn meter_index(&self, id: &str) -> Option<usize> {
        self.meters.iter().position(|m| m.id.as_str() == id)
    }

    /// Children of a node, in order.
    pub(crate) fn children(&self, node: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&n| self.nodes[n].parent == Some(node))
            .collect()
    }

    /// The nearest node at or above `node` with an input meter: where a change of flow at
    /// `node` shows in a balance.
    pub(crate) fn metered_ancestor(&self, node: usize) -> Option<usize> {
        let mut current = Some(node);
        while let Some(n) = current {
            if self.nodes[n].input_meter.is_some() {
                return Some(n);
            }
            current = self.nodes[n].parent;
        }
        None
    }

    /// Consumers registered on `node`.
    pub(crate) fn consumers_on(&self, node: usize) -> Vec<usize> {
        (0..self.consumers.len())
            .filter(|&c| self.consumers[c].node == node)
            .collect()
    }

    /// The registry document describing the grid (CONTRACT §1).
    pub(crate) fn registry(&self) -> RegistryDocument {
        let regions = self
            .regions
            .iter()
            .map(|r| Region {
                id: r.id.clone(),
                name: r.name.clone(),
                tariff_kzt_per_kwh: r.tariff_kzt_per_kwh,
                timezone: r.timezone.clone(),
            })
            .collect();
        let nodes = self
            .nodes
            .iter()
            .map(|n| Node {
                id: n.id.clone(),
                parent: n.parent.map(|p| self.nodes[p].id.clone()),
                region: self.regions[n.region].id.clone(),
                kind: n.kind.as_str().to_string(),
                input_meter: n.input_meter.map(|m| self.meters[m].id.clone()),
            })
            .collect();
        let meters = self
            .meters
            .iter()
            .map(|m| Meter {
                id: m.id.clone(),
                node: self.nodes[m.node].id.clone(),
                role: m.role,
                class: m.class,
                accuracy_pct: m.accuracy_pct,
                licence: m.farm.map(|f| self.farms[f].licence.clone()),
                gateway: m.gateway.map(|g| self.gateways[g].clone()),
            })
            .collect();
        let licences = self
            .farms
            .iter()
            .map(|f| {
                let (machines, rated_w) = match &self.consumers[f.consumer].load.model {
                    LoadModel::Mining(m) => (m.registered_machines(), m.rated_w()),
                    _ => (0, 0.0),
                };
                Licence {
                    id: f.licence.clone(),
                    holder: f.holder.clone(),
                    pool: Some(f.pool.clone()),
                    registered_machines: machines,
                    machine_rated_w: rated_w.round() as u32,
                }
            })
            .collect();
        RegistryDocument {
            regions,
            nodes,
            meters,
            licences,
        }
    }
}
