//! A meter's recent energy per window: the input of the per-meter analyses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use gridwatch_core::registry::MeterClass;
use gridwatch_core::{LicenceId, MeterId, NodeId, RegionId};

use crate::window::{Window, WindowSpec};

/// One meter's energy in consecutive windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterProfile {
    /// The meter.
    pub meter: MeterId,
    /// Its connection class.
    pub class: MeterClass,
    /// Its node.
    pub node: NodeId,
    /// Its region.
    pub region: RegionId,
    /// Its licence, for a licensed farm.
    pub licence: Option<LicenceId>,
    /// Its accuracy class in percent.
    pub accuracy_pct: f64,
    /// Window length.
    pub spec: WindowSpec,
    /// Start of the first window.
    pub start: DateTime<Utc>,
    /// Energy in Wh of each window from `start`; `None` where unknown.
    pub energy_wh: Vec<Option<f64>>,
    /// Whether the register ran backwards in each window.
    pub backwards: Vec<bool>,
}

impl MeterProfile {
    /// The i-th window.
    pub fn window(&self, i: usize) -> Window {
        let start = self.start + self.spec.length() * i as i32;
        Window {
            start,
            end: start + self.spec.length(),
        }
    }

    /// End of the last window.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + self.spec.length() * self.energy_wh.len() as i32
    }

    /// Known energies, with their window index.
    pub fn known(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.energy_wh
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|e| (i, e)))
    }

    /// Share of windows whose energy is known.
    pub fn coverage(&self) -> f64 {
        if self.energy_wh.is_empty() {
            return 0.0;
        }
        self.known().count() as f64 / self.energy_wh.len() as f64
    }
}
