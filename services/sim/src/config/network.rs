//! How readings travel from meters to gridwatch.

use serde::{Deserialize, Serialize};

use super::{check_range, check_share, check_value};
use crate::error::SimError;

/// Delivery of readings. Defaults are realistic for a cellular/PLC AMI network but not huge:
/// gridwatch must treat all of this as data quality, never as theft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Share of consumer readings lost for good. Default 0.01.
    pub missing_share: f64,
    /// Share of boundary (input) meter readings lost for good: their links are better.
    /// Default 0.001.
    pub boundary_missing_share: f64,
    /// Share of readings delivered late. Default 0.02.
    pub late_share: f64,
    /// Longest delay of a late reading, minutes (delays are spread evenly up to it).
    /// Default 180.
    pub late_max_minutes: f64,
    /// Share of readings delivered twice (same value). Default 0.005.
    pub duplicate_share: f64,
    /// Longest delay of a duplicate after the original, minutes. Default 30.
    pub duplicate_max_delay_minutes: f64,
    /// Chance per day that a meter's link goes silent. Default 0.01.
    pub meter_outage_chance_per_day: f64,
    /// Chance per day that a gateway (data concentrator) goes silent, silencing its meters.
    /// Default 0.02.
    pub gateway_outage_chance_per_day: f64,
    /// Length of a silence, hours, `[min, max]`. Default `[1, 12]`.
    pub outage_hours: [f64; 2],
    /// Share of silences whose readings are lost; the others are kept by the meter or
    /// concentrator and delivered in a burst when it comes back. Default 0.3.
    pub outage_lost_share: f64,
    /// Share of meters on distribution transformers that report through their transformer's
    /// data concentrator (gateway arrays); the rest, and all meters on feeders, report one
    /// message per reading. Default 0.6.
    pub gateway_share: f64,
    /// Most readings in one gateway message; larger uploads are split. Default 500.
    pub gateway_batch_max: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            missing_share: 0.01,
            boundary_missing_share: 0.001,
            late_share: 0.02,
            late_max_minutes: 180.0,
            duplicate_share: 0.005,
            duplicate_max_delay_minutes: 30.0,
            meter_outage_chance_per_day: 0.01,
            gateway_outage_chance_per_day: 0.02,
            outage_hours: [1.0, 12.0],
            outage_lost_share: 0.3,
            gateway_share: 0.6,
            gateway_batch_max: 500,
        }
    }
}

/// Most readings in one gateway message accepted by CONTRACT §2.
const CONTRACT_MAX_GATEWAY_ELEMENTS: u32 = 10_000;

impl NetworkConfig {
    /// A network that delivers every reading once and on time (gateways still batch): for tests
    /// that compare published registers with the truth.
    pub fn perfect() -> NetworkConfig {
        NetworkConfig {
            missing_share: 0.0,
            boundary_missing_share: 0.0,
            late_share: 0.0,
            duplicate_share: 0.0,
            meter_outage_chance_per_day: 0.0,
            gateway_outage_chance_per_day: 0.0,
            ..NetworkConfig::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SimError> {
        check_share("network.missing_share", self.missing_share)?;
        check_share(
            "network.boundary_missing_share",
            self.boundary_missing_share,
        )?;
        check_share("network.late_share", self.late_share)?;
        check_value(
            "network.late_max_minutes",
            self.late_max_minutes,
            0.0,
            7.0 * 24.0 * 60.0,
        )?;
        check_share("network.duplicate_share", self.duplicate_share)?;
        check_value(
            "network.duplicate_max_delay_minutes",
            self.duplicate_max_delay_minutes,
            0.0,
            7.0 * 24.0 * 60.0,
        )?;
        check_share(
            "network.meter_outage_chance_per_day",
            self.meter_outage_chance_per_day,
        )?;
        check_share(
            "network.gateway_outage_chance_per_day",
            self.gateway_outage_chance_per_day,
        )?;
        check_range("network.outage_hours", self.outage_hours, 0.0, 30.0 * 24.0)?;
        check_share("network.outage_lost_share", self.outage_lost_share)?;
        check_share("network.gateway_share", self.gateway_share)?;
        if self.gateway_batch_max == 0 || self.gateway_batch_max > CONTRACT_MAX_GATEWAY_ELEMENTS {
            return Err(SimError::config(format!(
                "network.gateway_batch_max is {}, must be between 1 and {CONTRACT_MAX_GATEWAY_ELEMENTS}",
                self.gateway_batch_max
            )));
        }
        Ok(())
    }
}
