//! Households: parameters that make each home an individual around the standard profile.

use serde::{Deserialize, Serialize};

use super::{check_range, check_share, check_value};
use crate::error::SimError;

/// Households. Their shape is the simulator's own household load shape (see README); these
/// parameters make each home an individual around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HouseholdConfig {
    /// Median yearly consumption without electric heating, kWh. Default 2,100 (about 175 kWh a
    /// month: a city apartment with gas or district heat).
    pub median_annual_kwh: f64,
    /// Spread of yearly consumption between homes (standard deviation of its logarithm).
    /// Default 0.45: 90 % of homes between about 100 and 370 kWh a month.
    pub annual_kwh_log_sigma: f64,
    /// Share of homes heated by electricity: high, flat-ish and temperature-driven in winter,
    /// the classic false positive of mining detection. Default 0.04 (most city homes have
    /// district heating; private houses burn coal or use electricity).
    pub electric_heating_share: f64,
    /// Heat-loss coefficient of an electrically heated home, W per kelvin below the balance
    /// temperature, `[min, max]`. Default `[80, 180]` (a small house or a poorly insulated
    /// flat: about 1,800 to 4,200 kWh in a January of -15 °C).
    pub heating_w_per_k: [f64; 2],
    /// Outdoor temperature below which a home needs heating, °C (internal gains cover the rest).
    /// Default 16.
    pub heating_balance_temperature_c: f64,
    /// Installed heater power, W, `[min, max]`: heating demand is capped there on the coldest
    /// nights. Default `[6000, 12000]`.
    pub heater_max_w: [f64; 2],
    /// Share of electrically heated homes with storage heaters charged at night (night tariff):
    /// their load is flat and high from 23:00 to 07:00. Default 0.3.
    pub storage_heating_share: f64,
    /// Share of homes with genuinely high but daily-varying use (large families, electric water
    /// heaters, workshops). Default 0.05.
    pub high_use_share: f64,
    /// How much more a high-use home consumes, `[min, max]` times. Default `[2, 3.5]`.
    pub high_use_factor: [f64; 2],
    /// Share of homes with air conditioning (above 24 °C). Default 0.04.
    pub air_conditioning_share: f64,
    /// Chance per day that an occupied home empties for a holiday or a trip. Default 0.003.
    pub absence_chance_per_day: f64,
    /// Length of an absence, days, `[min, max]`. Default `[3, 14]`.
    pub absence_days: [f64; 2],
    /// Interval-to-interval randomness: standard deviation of the log factor. Default 0.45.
    pub noise_log_sigma: f64,
    /// Correlation of that randomness from one 15-minute interval to the next. Default 0.6.
    pub noise_correlation_15min: f64,
    /// Day-to-day randomness: standard deviation of the log factor of a whole day. Default 0.15.
    pub day_log_sigma: f64,
    /// Spread of habits: how early or late a home follows the profile, minutes (standard
    /// deviation). Default 30.
    pub habit_shift_minutes_sigma: f64,
    /// Share of a home's energy that comes in appliance bursts (kettle, oven, washing machine)
    /// rather than as a smooth base. Default 0.25.
    pub appliance_energy_share: f64,
    /// Energy of one appliance burst, Wh, `[min, max]`. Default `[100, 600]`.
    pub appliance_burst_wh: [f64; 2],
}

impl Default for HouseholdConfig {
    fn default() -> Self {
        HouseholdConfig {
            median_annual_kwh: 2_100.0,
            annual_kwh_log_sigma: 0.45,
            electric_heating_share: 0.04,
            heating_w_per_k: [80.0, 180.0],
            heating_balance_temperature_c: 16.0,
            heater_max_w: [6_000.0, 12_000.0],
            storage_heating_share: 0.3,
            high_use_share: 0.05,
            high_use_factor: [2.0, 3.5],
            air_conditioning_share: 0.04,
            absence_chance_per_day: 0.003,
            absence_days: [3.0, 14.0],
            noise_log_sigma: 0.45,
            noise_correlation_15min: 0.6,
            day_log_sigma: 0.15,
            habit_shift_minutes_sigma: 30.0,
            appliance_energy_share: 0.25,
            appliance_burst_wh: [100.0, 600.0],
        }
    }
}

impl HouseholdConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        check_value(
            "households.median_annual_kwh",
            self.median_annual_kwh,
            1.0,
            1e6,
        )?;
        check_value(
            "households.annual_kwh_log_sigma",
            self.annual_kwh_log_sigma,
            0.0,
            3.0,
        )?;
        check_share(
            "households.electric_heating_share",
            self.electric_heating_share,
        )?;
        check_range(
            "households.heating_w_per_k",
            self.heating_w_per_k,
            0.0,
            10_000.0,
        )?;
        check_value(
            "households.heating_balance_temperature_c",
            self.heating_balance_temperature_c,
            -10.0,
            30.0,
        )?;
        check_range("households.heater_max_w", self.heater_max_w, 0.0, 100_000.0)?;
        check_share(
            "households.storage_heating_share",
            self.storage_heating_share,
        )?;
        check_share("households.high_use_share", self.high_use_share)?;
        check_range(
            "households.high_use_factor",
            self.high_use_factor,
            1.0,
            20.0,
        )?;
        check_share(
            "households.air_conditioning_share",
            self.air_conditioning_share,
        )?;
        check_share(
            "households.absence_chance_per_day",
            self.absence_chance_per_day,
        )?;
        check_range("households.absence_days", self.absence_days, 0.0, 365.0)?;
        check_value("households.noise_log_sigma", self.noise_log_sigma, 0.0, 2.0)?;
        check_share(
            "households.noise_correlation_15min",
            self.noise_correlation_15min,
        )?;
        check_value("households.day_log_sigma", self.day_log_sigma, 0.0, 2.0)?;
        check_value(
            "households.habit_shift_minutes_sigma",
            self.habit_shift_minutes_sigma,
            0.0,
            240.0,
        )?;
        check_share(
            "households.appliance_energy_share",
            self.appliance_energy_share,
        )?;
        check_range(
            "households.appliance_burst_wh",
            self.appliance_burst_wh,
            1.0,
            100_000.0,
        )
    }
}
