//! Everything a run is made of, with its default and the reason for it.
//!
//! A configuration is plain data (serde, unknown fields refused, every field optional): the
//! `gridwatch simulate` command reads it from its TOML or JSON file and this crate validates it
//! in [`Simulation::new`](crate::Simulation::new). Defaults describe a week of January on a
//! small East Kazakhstan network, clean, with the data-quality flaws of a real AMI network.

mod grid;
mod households;
mod mining;
mod network;
mod physics;
mod premises;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub use grid::RegionConfig;
pub use households::HouseholdConfig;
pub use mining::MiningConfig;
pub use network::NetworkConfig;
pub use physics::{ClimateConfig, LossConfig, MeterConfig, NodeLossConfig, StreetLightingConfig};
pub use premises::{CommercialConfig, IndustrialConfig};

use crate::error::SimError;
use crate::scenarios::Scenario;

/// A run of the simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of every random stream: the same configuration and seed give the same output, byte
    /// for byte. Default 42.
    pub seed: u64,
    /// Start of the first interval, in UTC. Default `2025-01-13T00:00:00Z`, a Monday in
    /// mid-winter, when electric heating makes households look most like mining rigs.
    pub start: DateTime<Utc>,
    /// Length of the run, in days. Default 7.
    pub days: u32,
    /// Length of an interval (between two readings of every meter), in minutes; must divide 60.
    /// Default 15, the usual AMI reading period and gridwatch's window.
    pub interval_minutes: u32,
    /// Offset of local (civil) time from UTC, in minutes: load profiles, shifts and holidays
    /// follow local time. Default 300 (UTC+5, all of Kazakhstan since 1 March 2024).
    pub utc_offset_minutes: i32,
    /// The regions of the grid, each with its tree. Default: one region, East Kazakhstan.
    pub regions: Vec<RegionConfig>,
    /// Households.
    pub households: HouseholdConfig,
    /// Shops, offices, groceries and bakeries.
    pub commercial: CommercialConfig,
    /// Industrial premises.
    pub industrial: IndustrialConfig,
    /// Licensed mining farms and their purchases.
    pub mining: MiningConfig,
    /// Temperature and the sun.
    pub climate: ClimateConfig,
    /// Meter accuracy, per-reading error and clock skew.
    pub meters: MeterConfig,
    /// Technical losses of the grid's nodes.
    pub losses: LossConfig,
    /// Unmetered street lighting.
    pub street_lighting: StreetLightingConfig,
    /// Delivery of readings: losses, delays, duplicates, gateways.
    pub network: NetworkConfig,
    /// What is injected; scenarios combine. Default: none (a clean run).
    pub scenarios: Vec<Scenario>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            start: Utc
                .with_ymd_and_hms(2025, 1, 13, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            days: 7,
            interval_minutes: 15,
            utc_offset_minutes: 300,
            regions: vec![RegionConfig::default()],
            households: HouseholdConfig::default(),
            commercial: CommercialConfig::default(),
            industrial: IndustrialConfig::default(),
            mining: MiningConfig::default(),
            climate: ClimateConfig::default(),
            meters: MeterConfig::default(),
            losses: LossConfig::default(),
            street_lighting: StreetLightingConfig::default(),
            network: NetworkConfig::default(),
            scenarios: Vec::new(),
        }
    }
}

/// Longest run accepted, in days: ten years is more than any test or demo needs, and bounds the
/// weather table built at start.
pub const MAX_DAYS: u32 = 3_660;

impl SimConfig {
    /// Checks every value; the message names the offending field.
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if self.days == 0 || self.days > MAX_DAYS {
            return Err(SimError::config(format!(
                "days is {}, must be between 1 and {MAX_DAYS}",
                self.days
            )));
        }
        if self.interval_minutes == 0 || 60 % self.interval_minutes != 0 {
            return Err(SimError::config(format!(
                "interval_minutes is {}, must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)",
                self.interval_minutes
            )));
        }
        if self.utc_offset_minutes.abs() > 14 * 60 {
            return Err(SimError::config(format!(
                "utc_offset_minutes is {}, must be within +-840",
                self.utc_offset_minutes
            )));
        }
        if self.regions.is_empty() {
            return Err(SimError::config("regions is empty: a grid needs a region"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, region) in self.regions.iter().enumerate() {
            region.validate(&format!("regions[{i}]"))?;
            if !seen.insert(region.id.as_str()) || !seen.insert(region.id_prefix.as_str()) {
                return Err(SimError::config(format!(
                    "regions[{i}]: id {} or id_prefix {} repeats another region's",
                    region.id, region.id_prefix
                )));
            }
        }
        self.households.validate()?;
        self.commercial.validate()?;
        self.industrial.validate()?;
        self.mining.validate(self.interval_minutes)?;
        self.climate.validate()?;
        self.meters.validate()?;
        self.losses.validate()?;
        self.street_lighting.validate()?;
        self.network.validate()?;
        Ok(())
    }
}

/// Checks that a share is a probability.
pub(crate) fn check_share(name: &str, value: f64) -> Result<(), SimError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(SimError::config(format!(
            "{name} is {value}, must be between 0 and 1"
        )))
    }
}

/// Checks that a `[min, max]` range is ordered and within `[low, high]`.
pub(crate) fn check_range(
    name: &str,
    range: [f64; 2],
    low: f64,
    high: f64,
) -> Result<(), SimError> {
    if range[0].is_finite()
        && range[1].is_finite()
        && low <= range[0]
        && range[0] <= range[1]
        && range[1] <= high
    {
        Ok(())
    } else {
        Err(SimError::config(format!(
            "{name} is [{}, {}], must be an ordered range within [{low}, {high}]",
            range[0], range[1]
        )))
    }
}

/// Checks that a value is finite and within `[low, high]`.
pub(crate) fn check_value(name: &str, value: f64, low: f64, high: f64) -> Result<(), SimError> {
    if value.is_finite() && (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(SimError::config(format!(
            "{name} is {value}, must be between {low} and {high}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_is_valid_and_round_trips() {
        let config = SimConfig::default();
        assert_eq!(config.validate(), Ok(()));
        let json = serde_json::to_string(&config).expect("serialises");
        let back: SimConfig = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, config);
    }

    #[test]
    fn every_field_is_optional_and_unknown_fields_are_refused() {
        let config: SimConfig =
            serde_json::from_str(r#"{"days": 2, "network": {"missing_share": 0.0}}"#)
                .expect("parses");
        assert_eq!(config.days, 2);
        assert_eq!(config.network.missing_share, 0.0);
        assert_eq!(
            config.network.late_share,
            NetworkConfig::default().late_share
        );
        assert!(serde_json::from_str::<SimConfig>(r#"{"dayz": 2}"#).is_err());
        assert!(serde_json::from_str::<SimConfig>(r#"{"network": {"lost": 1}}"#).is_err());
    }

    #[test]
    fn bad_values_are_named() {
        let config = SimConfig {
            interval_minutes: 7,
            ..SimConfig::default()
        };
        let message = config.validate().expect_err("invalid").to_string();
        assert!(message.contains("interval_minutes"), "{message}");
        let mut config = SimConfig::default();
        config.households.electric_heating_share = 1.5;
        let message = config.validate().expect_err("invalid").to_string();
        assert!(message.contains("electric_heating_share"), "{message}");
    }
}
