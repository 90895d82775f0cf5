//! The shape of a region's grid.

use gridwatch_core::ids::{check_identifier, RegionId};
use serde::{Deserialize, Serialize};

use super::check_share;
use crate::error::SimError;

/// One region: its tariff, its tree and how many consumers of each kind hang from it.
///
/// Node ids are `{id_prefix}-SUB-01`, `{id_prefix}-F-001`, `{id_prefix}-T-0001`; an input meter
/// is its node's id followed by `-IN`. Consumer meters are numbered across regions
/// (`M-000001`, farms `FARM-001` with licence `KZ-MIN-001`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionConfig {
    /// Region id. Default `east-kz`.
    pub id: RegionId,
    /// Region name. Default `East Kazakhstan`.
    pub name: String,
    /// Tariff, KZT per kWh. Default 10.3 (9 billion KZT / 876 GWh in the East Kazakhstan case).
    pub tariff_kzt_per_kwh: f64,
    /// IANA time zone of the region's local days (CONTRACT §1), e.g. `Asia/Almaty`. Default
    /// none: the registry names no zone and the detector's days are UTC days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Prefix of node ids. Default `EK`.
    pub id_prefix: String,
    /// Substations (roots of the tree, each with a class 0.5S input meter). Default 2.
    pub substations: u32,
    /// Feeders per substation, each with an input meter. Default 4.
    pub feeders_per_substation: u32,
    /// Distribution transformers per feeder; 0 puts every consumer directly on its feeder.
    /// Default 3.
    pub transformers_per_feeder: u32,
    /// Share of transformers with their own input meter; the others are balanced through their
    /// consumers by their feeder. Default 0.5.
    pub metered_transformer_share: f64,
    /// Household meters. Default 1,500.
    pub households: u32,
    /// Commercial meters (shops, offices, groceries, bakeries). Default 90.
    pub commercial: u32,
    /// Industrial meters, each directly on a feeder. Default 4.
    pub industrial: u32,
    /// Licensed mining farms, each directly on a feeder with its own licence. Default 2.
    pub mining_farms: u32,
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig {
            id: RegionId::parse("east-kz").expect("east-kz is a valid identifier"),
            name: "East Kazakhstan".to_string(),
            tariff_kzt_per_kwh: 10.3,
            timezone: None,
            id_prefix: "EK".to_string(),
            substations: 2,
            feeders_per_substation: 4,
            transformers_per_feeder: 3,
            metered_transformer_share: 0.5,
            households: 1_500,
            commercial: 90,
            industrial: 4,
            mining_farms: 2,
        }
    }
}

/// Most substations, feeders per substation and transformers per feeder: the id formats
/// (`SUB-01`, `F-001`, `T-0001`) stay readable up to these, and no region needs more.
const MAX_SUBSTATIONS: u32 = 99;
const MAX_FEEDERS_PER_SUBSTATION: u32 = 50;
const MAX_TRANSFORMERS_PER_FEEDER: u32 = 200;
/// Most consumer meters of one kind in a region (ids have six digits).
const MAX_CONSUMERS: u32 = 999_999;

impl RegionConfig {
    pub(crate) fn validate(&self, entry: &str) -> Result<(), SimError> {
        let fail = |message: String| Err(SimError::config(format!("{entry}: {message}")));
        if check_identifier(&format!("{}-SUB-01-IN", self.id_prefix)).is_err()
            || self.id_prefix.len() > 20
        {
            return fail(format!(
                "id_prefix {:?} must be 1 to 20 letters, digits, '.', '_' or '-'",
                self.id_prefix
            ));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return fail("name must be 1 to 200 characters".into());
        }
        if !self.tariff_kzt_per_kwh.is_finite()
            || !(0.0..=1000.0).contains(&self.tariff_kzt_per_kwh)
        {
            return fail(format!(
                "tariff_kzt_per_kwh is {}, must be between 0 and 1000",
                self.tariff_kzt_per_kwh
            ));
        }
        if let Some(zone) = &self.timezone {
            if gridwatch_core::days::zone(zone).is_none() {
                return fail(format!("timezone {zone:?} is not an IANA time zone"));
            }
        }
        if !(1..=MAX_SUBSTATIONS).contains(&self.substations) {
            return fail(format!(
                "substations must be between 1 and {MAX_SUBSTATIONS}"
            ));
        }
        if !(1..=MAX_FEEDERS_PER_SUBSTATION).contains(&self.feeders_per_substation) {
            return fail(format!(
                "feeders_per_substation must be between 1 and {MAX_FEEDERS_PER_SUBSTATION}"
            ));
        }
        if self.transformers_per_feeder > MAX_TRANSFORMERS_PER_FEEDER {
            return fail(format!(
                "transformers_per_feeder must be at most {MAX_TRANSFORMERS_PER_FEEDER}"
            ));
        }
        check_share(
            &format!("{entry}.metered_transformer_share"),
            self.metered_transformer_share,
        )?;
        for (name, count) in [
            ("households", self.households),
            ("commercial", self.commercial),
            ("industrial", self.industrial),
            ("mining_farms", self.mining_farms),
        ] {
            if count > MAX_CONSUMERS {
                return fail(format!("{name} must be at most {MAX_CONSUMERS}"));
            }
        }
        Ok(())
    }
}
