//! What an analysis reports: one condition (kind, subject, period), its size and its evidence.
//! The service turns findings into anomalies (CONTRACT.md section 4).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use gridwatch_core::{LicenceId, MeterId, NodeId, RegionId};

pub use gridwatch_core::anomaly::{Kind, Severity};

/// One condition found by an analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of condition.
    pub kind: Kind,
    /// The region concerned.
    pub region: Option<RegionId>,
    /// The node concerned.
    pub node: Option<NodeId>,
    /// The meter concerned.
    pub meter: Option<MeterId>,
    /// The licence concerned.
    pub licence: Option<LicenceId>,
    /// When the condition started (event time).
    pub started_at: DateTime<Utc>,
    /// When it stopped; `None` while it still holds at the end of the data analysed.
    pub ended_at: Option<DateTime<Utc>>,
    /// Estimated energy stolen, unpaid or unaccounted, in Wh (never negative).
    pub energy_wh: f64,
    /// The test statistic behind the finding (higher is stronger; its meaning is in evidence).
    pub score: f64,
    /// How likely the finding is right, in [0, 1] (the work queue sorts by loss x confidence).
    pub confidence: f64,
    /// Meters that may explain it, most likely first.
    pub suspects: Vec<String>,
    /// The data that proves it, for investigators (series, thresholds, comparisons).
    pub evidence: serde_json::Value,
}

/// Money thresholds (KZT) of the severity ladder; see [`severity`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeverityThresholds {
    /// At or above: low (default 10,000 KZT, about a household's year of electricity).
    pub low_kzt: f64,
    /// At or above: medium (default 100,000 KZT).
    pub medium_kzt: f64,
    /// At or above: high (default 1,000,000 KZT).
    pub high_kzt: f64,
    /// At or above, or an ongoing diversion of at least `critical_power_w`: critical
    /// (default 10,000,000 KZT).
    pub critical_kzt: f64,
    /// A diversion drawing this much power is critical at once (default 1 MW): the East
    /// Kazakhstan case drew 50 MW.
    pub critical_power_w: f64,
}

impl Default for SeverityThresholds {
    fn default() -> Self {
        SeverityThresholds {
            low_kzt: 10_000.0,
            medium_kzt: 100_000.0,
            high_kzt: 1_000_000.0,
            critical_kzt: 10_000_000.0,
            critical_power_w: 1_000_000.0,
        }
    }
}

/// Severity from the money at stake and, for diversions, the power being diverted now.
/// Data gaps are informational whatever their size.
pub fn severity(kind: Kind, loss_kzt: f64, power_w: f64, t: &SeverityThresholds) -> Severity {
    if kind == Kind::DataGap {
        return Severity::Info;
    }
    if loss_kzt >= t.critical_kzt || (kind == Kind::Diversion && power_w >= t.critical_power_w) {
        Severity::Critical
    } else if loss_kzt >= t.high_kzt {
        Severity::High
    } else if loss_kzt >= t.medium_kzt {
        Severity::Medium
    } else if loss_kzt >= t.low_kzt {
        Severity::Low
    } else {
        Severity::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifty_megawatt_diversion_is_critical_from_its_first_window() {
        let t = SeverityThresholds::default();
        // 50 MW for 15 minutes at 10.3 KZT/kWh: 128,750 KZT, but 50 MW is critical at once.
        assert_eq!(
            severity(Kind::Diversion, 128_750.0, 50e6, &t),
            Severity::Critical
        );
        assert_eq!(
            severity(Kind::UnlicensedMining, 128_750.0, 50e6, &t),
            Severity::Medium
        );
        assert_eq!(severity(Kind::DataGap, 1e12, 0.0, &t), Severity::Info);
    }
}
