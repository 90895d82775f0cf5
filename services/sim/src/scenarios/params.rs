//! Scenario parameters. Every field is optional; the default is given on each. Times are hours
//! after the start of the run; a scenario without `duration_hours` lasts to the end.

use gridwatch_core::ids::{LicenceId, MeterId, NodeId, RegionId};
use serde::{Deserialize, Serialize};

use super::tamper::Attack;

/// Default onset of every scenario, hours: two clean days first, so that a detector has some
/// history to learn from.
const DEFAULT_ONSET_HOURS: f64 = 48.0;

/// Parameters of `east-kazakhstan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EastKazakhstan {
    /// The substation below whose boundary meter the energy is taken. Default: the first
    /// substation of the first region.
    pub substation: Option<NodeId>,
    /// How many of its feeders carry the diversion (the first ones). Default 4.
    pub feeders: u32,
    /// Total power diverted, W. Default 50,000,000 (the case's "50 MWh": a power of about
    /// 50 MW, the consumption of a town of 60,000).
    pub power_w: f64,
    /// Relative variability of the diverted power (illegal farms are steady). Default 0.02.
    pub variability: f64,
    /// Onset, hours after the start. Default 48.
    pub onset_hours: f64,
    /// Duration, hours. Default: to the end.
    pub duration_hours: Option<f64>,
    /// The insider variant: utility staff rig the diverted feeders' input meters to under-read
    /// by exactly what is taken, so each feeder balances; only the substation's meter above
    /// sees the theft. Default false.
    pub insider: bool,
    /// With `insider`, how many of the diverted feeders have a rigged meter (the first ones).
    /// Default: all of them.
    pub insider_feeders: Option<u32>,
}

impl Default for EastKazakhstan {
    fn default() -> Self {
        EastKazakhstan {
            substation: None,
            feeders: 4,
            power_w: 50e6,
            variability: 0.02,
            onset_hours: DEFAULT_ONSET_HOURS,
            duration_hours: None,
            insider: false,
            insider_feeders: None,
        }
    }
}

/// Parameters of `small-diversion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmallDiversion {
    /// The feeder. Default: one drawn at random.
    pub feeder: Option<NodeId>,
    /// Share of the feeder's energy taken. Default 0.03, below the single-window floor of about
    /// 2-4 %: only a learned baseline and a cumulative test find it.
    pub share: f64,
    /// Onset, hours after the start. Default 48.
    pub onset_hours: f64,
    /// Duration, hours. Default: to the end.
    pub duration_hours: Option<f64>,
}

impl Default for SmallDiversion {
    fn default() -> Self {
        SmallDiversion {
            feeder: None,
            share: 0.03,
            onset_hours: DEFAULT_ONSET_HOURS,
            duration_hours: None,
        }
    }
}

/// Parameters of `tamper`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tamper {
    /// The tampered meters (consumer meters). Default: `count` households drawn at random.
    pub meters: Vec<MeterId>,
    /// How many households to tamper when `meters` is empty. Default 9 (one per attack).
    pub count: u32,
    /// Attacks, assigned to the meters in turn. Default: all nine.
    pub attacks: Vec<Attack>,
    /// The `c` of `cap` (min(x, c)) and `subtract` (max(x - c, 0)), as a share of the meter's
    /// mean power. Default 0.5.
    pub cap_share_of_mean: f64,
    /// Onset, hours after the start. Default 48.
    pub onset_hours: f64,
    /// Duration, hours. Default: to the end.
    pub duration_hours: Option<f64>,
}

impl Default for Tamper {
    fn default() -> Self {
        Tamper {
            meters: Vec::new(),
            count: 9,
            attacks: Attack::ALL.to_vec(),
            cap_share_of_mean: 0.5,
            onset_hours: DEFAULT_ONSET_HOURS,
            duration_hours: None,
        }
    }
}

/// Parameters of `unlicensed-mining`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnlicensedMining {
    /// The household meters behind which rigs run. Default: `count` households at random.
    pub meters: Vec<MeterId>,
    /// How many households when `meters` is empty. Default 2.
    pub count: u32,
    /// Rigs per household. Default 3 (about 9.75 kW, within a house connection).
    pub rigs: u32,
    /// Power of one rig, W. Default 3,250 (an Antminer S19).
    pub rig_w: f64,
    /// Onset, hours after the start. Default 48.
    pub onset_hours: f64,
    /// Duration, hours. Default: to the end.
    pub duration_hours: Option<f64>,
}

impl Default for UnlicensedMining {
    fn default() -> Self {
        UnlicensedMining {
            meters: Vec::new(),
            count: 2,
            rigs: 3,
            rig_w: 3_250.0,
            onset_hours: DEFAULT_ONSET_HOURS,
            duration_hours: None,
        }
    }
}

/// Parameters of `quota-overrun`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaOverrun {
    /// The licence. Default: the first.
    pub licence: Option<LicenceId>,
    /// How much more the farm consumes than it buys, as a share of what it buys. Default 0.05.
    pub excess: f64,
    /// Onset, hours after the start (rounded up to a delivery block). Default 48.
    pub onset_hours: f64,
    /// Duration, hours. Default: to the end.
    pub duration_hours: Option<f64>,
}

impl Default for QuotaOverrun {
    fn default() -> Self {
        QuotaOverrun {
            licence: None,
            excess: 0.05,
            onset_hours: DEFAULT_ONSET_HOURS,
            duration_hours: None,
        }
    }
}

/// Parameters of `capacity-exceeded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityExceeded {
    /// The licence. Default: the first.
    pub licence: Option<LicenceId>,
    /// Unregistered machines as a share of the registered ones. Default 0.15.
    pub excess_share: f64,
    /// Whether the farm buys energy for them too, so that its quota balances and only its
    /// power gives it away. Default true.
    pub bought: bool,
    /// Onset, hours after the start. Default 48.
    pub onset_hours: f64,
    /// Duration, hours. Default: to the end.
    pub duration_hours: Option<f64>,
}

impl Default for CapacityExceeded {
    fn default() -> Self {
        CapacityExceeded {
            licence: None,
            excess_share: 0.15,
            bought: true,
            onset_hours: DEFAULT_ONSET_HOURS,
            duration_hours: None,
        }
    }
}

/// Parameters of `purchase-over-cap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PurchaseOverCap {
    /// The licence. Default: the first.
    pub licence: Option<LicenceId>,
    /// Attempts. Default 3.
    pub attempts: u32,
    /// Energy of each attempt, Wh. Default 2,500,000 (two and a half times the cap).
    pub energy_wh: i64,
    /// First attempt, hours after the start. Default 48.
    pub onset_hours: f64,
    /// Hours between attempts. Default 6.
    pub spacing_hours: f64,
}

impl Default for PurchaseOverCap {
    fn default() -> Self {
        PurchaseOverCap {
            licence: None,
            attempts: 3,
            energy_wh: 2_500_000,
            onset_hours: DEFAULT_ONSET_HOURS,
            spacing_hours: 6.0,
        }
    }
}

/// Parameters of `mining-share`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MiningShare {
    /// The region. Default: the first.
    pub region: Option<RegionId>,
    /// Share of the region's input energy that its licensed farms reach once they commission
    /// the extra machines their (enlarged) licences allow. Default 0.4.
    pub target_share: f64,
    /// The regulation's limit (the "70/30" programme). Default 0.3.
    pub threshold_share: f64,
    /// Onset, hours after the start. Default 48.
    pub onset_hours: f64,
    /// Duration, hours. Default: to the end.
    pub duration_hours: Option<f64>,
}

impl Default for MiningShare {
    fn default() -> Self {
        MiningShare {
            region: None,
            target_share: 0.4,
            threshold_share: 0.3,
            onset_hours: DEFAULT_ONSET_HOURS,
            duration_hours: None,
        }
    }
}

/// Parameters of `topology-change`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologyChange {
    /// The feeder the consumers leave. Default: the first feeder with a sibling.
    pub from_feeder: Option<NodeId>,
    /// The neighbouring feeder they are moved to. Default: the next feeder of the same
    /// substation.
    pub to_feeder: Option<NodeId>,
    /// Consumers moved (from one transformer of `from_feeder`, or the feeder itself when it has
    /// none). Default 30.
    pub consumers: u32,
    /// When the crew rewires them, hours after the start. The move is permanent. Default 48.
    pub onset_hours: f64,
}

impl Default for TopologyChange {
    fn default() -> Self {
        TopologyChange {
            from_feeder: None,
            to_feeder: None,
            consumers: 30,
            onset_hours: DEFAULT_ONSET_HOURS,
        }
    }
}
