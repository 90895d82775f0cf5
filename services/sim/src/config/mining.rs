//! Licensed mining farms and their purchases.

use serde::{Deserialize, Serialize};

use super::{check_range, check_share, check_value};
use crate::error::SimError;

/// Licensed mining farms and the energy they buy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MiningConfig {
    /// Rated power of one machine, W. Default 3,250 (an Antminer S19).
    pub machine_rated_w: f64,
    /// Machines registered under a farm's licence, `[min, max]`. Default `[60, 160]` (0.2 to
    /// 0.5 MW), which keeps licensed mining well under 30 % of the default region's energy.
    pub registered_machines: [f64; 2],
    /// Share of registered machines running at a time (the rest broken or in maintenance),
    /// `[min, max]`; it wanders slowly within. Default `[0.88, 0.99]`.
    pub online_share: [f64; 2],
    /// What a running machine draws, as a share of its rating. Default 0.97.
    pub draw_share_of_rating: f64,
    /// Facility overhead (lighting, network, control) as a share of the machines' load.
    /// Default 0.015.
    pub overhead_share: f64,
    /// Extra cooling per kelvin above 0 °C outdoors, as a share of the machines' load.
    /// Default 0.0015 (about 3 % more on a summer day).
    pub cooling_share_per_k: f64,
    /// Chance per day of an unplanned outage (trip, network, fire alarm). Default 0.05.
    pub outage_chance_per_day: f64,
    /// Length of an outage, hours, `[min, max]`. Default `[0.5, 6]`.
    pub outage_hours: [f64; 2],
    /// Curtailment: on days colder than this (daily mean, °C), the grid operator may ask farms to
    /// cut load during the evening peak. Default -10.
    pub curtailment_below_c: f64,
    /// Chance that a cold day is curtailed. Default 0.3.
    pub curtailment_chance: f64,
    /// Share of load kept while curtailed, `[min, max]`. Default `[0.5, 0.7]`.
    pub curtailment_keep_share: [f64; 2],
    /// Local hours of the evening peak, `[from, to)`. Default `[17, 21]`.
    pub curtailment_local_hours: [f64; 2],
    /// The regulation's cap on one purchase transaction, Wh. Default 1,000,000.
    pub purchase_cap_wh: i64,
    /// Length of a purchase's delivery interval, minutes; a multiple of the interval.
    /// Default 60.
    pub purchase_block_minutes: u32,
    /// How long before delivery a farm buys, minutes. Default 60.
    pub purchase_lead_minutes: u32,
    /// What a farm buys beyond its planned consumption, as a share: it would rather pay for a
    /// little unused energy than be caught short. Default 0.02.
    pub purchase_margin: f64,
}

impl Default for MiningConfig {
    fn default() -> Self {
        MiningConfig {
            machine_rated_w: 3_250.0,
            registered_machines: [60.0, 160.0],
            online_share: [0.88, 0.99],
            draw_share_of_rating: 0.97,
            overhead_share: 0.015,
            cooling_share_per_k: 0.0015,
            outage_chance_per_day: 0.05,
            outage_hours: [0.5, 6.0],
            curtailment_below_c: -10.0,
            curtailment_chance: 0.3,
            curtailment_keep_share: [0.5, 0.7],
            curtailment_local_hours: [17.0, 21.0],
            purchase_cap_wh: 1_000_000,
            purchase_block_minutes: 60,
            purchase_lead_minutes: 60,
            purchase_margin: 0.02,
        }
    }
}

impl MiningConfig {
    pub(crate) fn validate(&self, interval_minutes: u32) -> Result<(), SimError> {
        check_value(
            "mining.machine_rated_w",
            self.machine_rated_w,
            1.0,
            100_000.0,
        )?;
        check_range(
            "mining.registered_machines",
            self.registered_machines,
            1.0,
            1e7,
        )?;
        check_range("mining.online_share", self.online_share, 0.0, 1.0)?;
        check_value(
            "mining.draw_share_of_rating",
            self.draw_share_of_rating,
            0.1,
            1.5,
        )?;
        check_value("mining.overhead_share", self.overhead_share, 0.0, 1.0)?;
        check_value(
            "mining.cooling_share_per_k",
            self.cooling_share_per_k,
            0.0,
            0.1,
        )?;
        check_share("mining.outage_chance_per_day", self.outage_chance_per_day)?;
        check_range("mining.outage_hours", self.outage_hours, 0.0, 24.0 * 30.0)?;
        check_value(
            "mining.curtailment_below_c",
            self.curtailment_below_c,
            -80.0,
            60.0,
        )?;
        check_share("mining.curtailment_chance", self.curtailment_chance)?;
        check_range(
            "mining.curtailment_keep_share",
            self.curtailment_keep_share,
            0.0,
            1.0,
        )?;
        check_range(
            "mining.curtailment_local_hours",
            self.curtailment_local_hours,
            0.0,
            24.0,
        )?;
        if self.purchase_cap_wh <= 0 {
            return Err(SimError::config("mining.purchase_cap_wh must be positive"));
        }
        if self.purchase_block_minutes == 0
            || self.purchase_block_minutes.checked_rem(interval_minutes) != Some(0)
        {
            return Err(SimError::config(format!(
                "mining.purchase_block_minutes is {}, must be a positive multiple of interval_minutes",
                self.purchase_block_minutes
            )));
        }
        check_value("mining.purchase_margin", self.purchase_margin, -0.5, 1.0)
    }
}
