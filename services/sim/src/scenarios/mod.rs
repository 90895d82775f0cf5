//! What a run injects: the thefts of DOMAIN.md and the traps that are not thefts.
//!
//! A [`Scenario`] is configuration (serde, tagged by `name`, every parameter with a documented
//! default). When a simulation is built, each scenario is installed into the grid: it attaches
//! diversions to nodes, tampering devices to meters, rigs to connections, changes to farms and
//! purchase books, or relocations to consumers, and records an [`Injection`] in the ground truth.
//! The engine then adds to each injection's energy, interval by interval, from its true flows.
//!
//! Scenarios draw their choices (which meters, attack parameters) from streams keyed by their
//! own parameters, never by their position in the list, so removing one scenario from a run
//! changes nothing else: that is the clean twin the tests compare with.

mod east_kazakhstan;
mod farms;
mod install;
mod mining_share;
mod params;
mod small_diversion;
pub(crate) mod tamper;
mod topology_change;
mod unlicensed_mining;

use serde::{Deserialize, Serialize};

pub use params::{
    CapacityExceeded, EastKazakhstan, MiningShare, PurchaseOverCap, QuotaOverrun, SmallDiversion,
    Tamper, TopologyChange, UnlicensedMining,
};
pub use tamper::Attack;

pub(crate) use install::{install_all, Watches};

#[cfg(doc)]
use crate::truth::Injection;

/// One scenario, tagged by its `name`: `{"name": "tamper", "count": 3}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Scenario {
    /// Nothing injected (the default when no scenario is listed).
    Clean,
    /// The East Kazakhstan case: tens of MW diverted below a substation's boundary meters,
    /// spread over several feeders, optionally hidden below a rigged feeder meter.
    EastKazakhstan(EastKazakhstan),
    /// A small, persistent diversion: a share of one feeder's energy.
    SmallDiversion(SmallDiversion),
    /// Tampered household meters (Jokar et al. 2016 attacks h1-h6, cap, subtract, backwards).
    Tamper(Tamper),
    /// Mining rigs on household connections.
    UnlicensedMining(UnlicensedMining),
    /// A licensed farm consuming more than it bought.
    QuotaOverrun(QuotaOverrun),
    /// A licensed farm running more machines than registered.
    CapacityExceeded(CapacityExceeded),
    /// Purchase attempts above the per-transaction cap.
    PurchaseOverCap(PurchaseOverCap),
    /// A region whose licensed mining exceeds 30 % of its energy.
    MiningShare(MiningShare),
    /// Consumers moved to a neighbouring feeder without the registry knowing (a trap, not a
    /// theft).
    TopologyChange(TopologyChange),
}

impl Scenario {
    /// The scenario's name, as in its tag.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Clean => "clean",
            Scenario::EastKazakhstan(_) => "east-kazakhstan",
            Scenario::SmallDiversion(_) => "small-diversion",
            Scenario::Tamper(_) => "tamper",
            Scenario::UnlicensedMining(_) => "unlicensed-mining",
            Scenario::QuotaOverrun(_) => "quota-overrun",
            Scenario::CapacityExceeded(_) => "capacity-exceeded",
            Scenario::PurchaseOverCap(_) => "purchase-over-cap",
            Scenario::MiningShare(_) => "mining-share",
            Scenario::TopologyChange(_) => "topology-change",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_tagged_by_name_with_defaults_and_refuse_unknown_fields() {
        let list: Vec<Scenario> = serde_json::from_str(
            r#"[{"name": "clean"}, {"name": "east-kazakhstan", "insider": true},
                {"name": "tamper", "attacks": ["h1", "backwards"]}, {"name": "mining-share"}]"#,
        )
        .expect("parses");
        assert_eq!(list[0], Scenario::Clean);
        match &list[1] {
            Scenario::EastKazakhstan(p) => {
                assert!(p.insider);
                assert_eq!(p.power_w, 50e6);
            }
            other => panic!("{other:?}"),
        }
        match &list[2] {
            Scenario::Tamper(p) => assert_eq!(p.attacks, vec![Attack::H1, Attack::Backwards]),
            other => panic!("{other:?}"),
        }
        assert!(serde_json::from_str::<Scenario>(r#"{"name": "tamper", "colour": 1}"#).is_err());
        assert!(serde_json::from_str::<Scenario>(r#"{"name": "teleport"}"#).is_err());
        let json = serde_json::to_string(&list).expect("serialises");
        let back: Vec<Scenario> = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, list);
    }
}
