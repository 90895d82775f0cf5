//! The truth behind a run: what was injected, and the true flows of every interval.
//!
//! [`GroundTruth`] is what `gridwatch simulate` writes next to the data (JSON): every theft or
//! trap injected, where, when and how much energy, computed by the simulator from its own true
//! flows. [`IntervalTruth`] is the physics of one interval, for tests: per node the true input,
//! what it fed, its technical loss, what was stolen at it and its unmetered street lighting; per
//! meter the true energy through it and what its register made of it.

use chrono::{DateTime, Utc};
use gridwatch_core::ids::{LicenceId, MeterId, NodeId, RegionId};
use serde::{Deserialize, Serialize};

use crate::config::SimConfig;

/// The kind of an injected condition; the names are gridwatch's anomaly kinds where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectionKind {
    /// Energy taken from a node below its input meter.
    Diversion,
    /// A meter made to under-report (or run backwards).
    MeterTamper,
    /// Mining rigs on an ordinary connection.
    UnlicensedMining,
    /// A licensed farm consuming more than it bought.
    QuotaOverrun,
    /// A licensed farm running more machines than registered.
    CapacityExceeded,
    /// A purchase attempt above the per-transaction cap.
    PurchaseOverCap,
    /// A region whose licensed mining exceeds its share of the region's energy.
    MiningShareExceeded,
    /// Consumers moved to another node without the registry knowing (not a theft: a trap).
    TopologyChange,
}

/// One injected condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    /// What it is.
    pub kind: InjectionKind,
    /// The scenario that injected it (its name, such as `east-kazakhstan`).
    pub scenario: String,
    /// Its region.
    pub region: Option<RegionId>,
    /// The node where it happens (for a diversion, where the energy leaves the grid).
    pub node: Option<NodeId>,
    /// The meter concerned, if one.
    pub meter: Option<MeterId>,
    /// The licence concerned, if one.
    pub licence: Option<LicenceId>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended: the scenario's end, or the end of the run if it was still going on then;
    /// `None` while the run is still going on.
    pub ended_at: Option<DateTime<Utc>>,
    /// Energy at stake, Wh, from the simulator's true flows: stolen (diversion, tamper),
    /// consumed by illegal rigs or unregistered machines, unpaid (quota), above the cap
    /// (purchase), licensed mining above the regional share, or moved (topology change).
    pub energy_wh: i64,
    /// Kind-specific facts: attack type, rigs, shares, the nodes whose residuals move...
    pub details: serde_json::Value,
}

/// Everything injected in a run, with what is needed to reproduce it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// The run's seed.
    pub seed: u64,
    /// The run's whole configuration.
    pub config: SimConfig,
    /// What was injected, in the order the scenarios were listed.
    pub injected: Vec<Injection>,
}

/// The true flows of one node over one interval, Wh.
///
/// `input_wh = fed_wh + technical_loss_wh + unmetered_wh + theft_wh` holds exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeTruth {
    /// Energy that entered the node (through its input meter, if it has one).
    pub input_wh: f64,
    /// Energy it fed: its physical children's inputs and its physical consumers' consumption
    /// (physical: after a topology change the registry may say otherwise).
    pub fed_wh: f64,
    /// Technical losses.
    pub technical_loss_wh: f64,
    /// Energy diverted at the node.
    pub theft_wh: f64,
    /// Legitimate unmetered consumption (street lighting).
    pub unmetered_wh: f64,
}

/// One meter over one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MeterTruth {
    /// True energy through the meter's connection (a consumer's consumption, a node's input), Wh.
    pub consumed_wh: f64,
    /// Energy the meter's sensing element was shown, Wh: equal to `consumed_wh` unless a tamper
    /// hides part of it (negative when it drives the register backwards).
    pub seen_wh: f64,
    /// Energy the register advanced by, with the meter's errors, Wh.
    pub registered_wh: f64,
    /// The register value put in this interval's reading (before any network effect), Wh.
    pub register_wh: i64,
}

/// The truth of one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalTruth {
    /// Start of the interval.
    pub start: DateTime<Utc>,
    /// End of the interval (the readings' nominal time).
    pub end: DateTime<Utc>,
    /// Per node, in the order of the registry document's `nodes`.
    pub nodes: Vec<NodeTruth>,
    /// Per meter, in the order of the registry document's `meters`.
    pub meters: Vec<MeterTruth>,
}
