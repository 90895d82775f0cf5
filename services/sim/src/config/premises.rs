//! Commercial and industrial premises.

use serde::{Deserialize, Serialize};

use super::{check_range, check_share, check_value};
use crate::error::SimError;

/// Commercial premises: offices (weekday office shape), shops (general commerce shape), groceries
/// with 24/7 refrigeration and bakeries working at night (bakery shape); see README.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommercialConfig {
    /// Relative weight of offices (weekdays 8-18, closed at weekends). Default 0.3.
    pub office_weight: f64,
    /// Relative weight of shops. Default 0.35.
    pub shop_weight: f64,
    /// Relative weight of groceries with round-the-clock refrigeration. Default 0.25.
    pub grocery_weight: f64,
    /// Relative weight of bakeries (night and early-morning load). Default 0.1.
    pub bakery_weight: f64,
    /// Median yearly consumption, kWh, of an office, a shop, a grocery and a bakery.
    /// Default `[30000, 40000, 90000, 70000]`.
    pub median_annual_kwh: [f64; 4],
    /// Spread of yearly consumption (standard deviation of its logarithm). Default 0.5.
    pub annual_kwh_log_sigma: f64,
    /// Share of a grocery's energy that goes to refrigeration, day and night. Default 0.5.
    pub grocery_refrigeration_share: f64,
    /// Shops and groceries open on Sundays (they do in Kazakhstan; the German profile assumes
    /// not). Default true.
    pub shops_open_sunday: bool,
    /// Interval-to-interval randomness (standard deviation of the log factor). Default 0.12.
    pub noise_log_sigma: f64,
    /// Correlation of that randomness from one 15-minute interval to the next. Default 0.7.
    pub noise_correlation_15min: f64,
    /// Day-to-day randomness (standard deviation of the log factor). Default 0.06.
    pub day_log_sigma: f64,
}

impl Default for CommercialConfig {
    fn default() -> Self {
        CommercialConfig {
            office_weight: 0.3,
            shop_weight: 0.35,
            grocery_weight: 0.25,
            bakery_weight: 0.1,
            median_annual_kwh: [30_000.0, 40_000.0, 90_000.0, 70_000.0],
            annual_kwh_log_sigma: 0.5,
            grocery_refrigeration_share: 0.5,
            shops_open_sunday: true,
            noise_log_sigma: 0.12,
            noise_correlation_15min: 0.7,
            day_log_sigma: 0.06,
        }
    }
}

impl CommercialConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        let weights = [
            self.office_weight,
            self.shop_weight,
            self.grocery_weight,
            self.bakery_weight,
        ];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || weights.iter().sum::<f64>() <= 0.0
        {
            return Err(SimError::config(
                "commercial weights must be non-negative with a positive sum",
            ));
        }
        for energy in self.median_annual_kwh {
            check_value("commercial.median_annual_kwh", energy, 1.0, 1e8)?;
        }
        check_value(
            "commercial.annual_kwh_log_sigma",
            self.annual_kwh_log_sigma,
            0.0,
            3.0,
        )?;
        check_share(
            "commercial.grocery_refrigeration_share",
            self.grocery_refrigeration_share,
        )?;
        check_value("commercial.noise_log_sigma", self.noise_log_sigma, 0.0, 2.0)?;
        check_share(
            "commercial.noise_correlation_15min",
            self.noise_correlation_15min,
        )?;
        check_value("commercial.day_log_sigma", self.day_log_sigma, 0.0, 2.0)
    }
}

/// Industrial premises working in shifts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndustrialConfig {
    /// Median peak power, W. Default 600,000.
    pub median_peak_w: f64,
    /// Spread of peak power (standard deviation of its logarithm). Default 0.8.
    pub peak_log_sigma: f64,
    /// Bounds on peak power, W. Default `[100000, 8000000]`.
    pub peak_w: [f64; 2],
    /// Share of plants working one shift (weekdays 07:00-16:00). Default 0.3.
    pub one_shift_share: f64,
    /// Share working two shifts (weekdays 06:00-22:00, Saturday mornings). Default 0.4. The rest
    /// run continuously, with a maintenance dip on Sundays.
    pub two_shift_share: f64,
    /// Load outside shifts (lighting, compressors, heating), as a share of peak, `[min, max]`.
    /// Default `[0.15, 0.3]`.
    pub idle_share: [f64; 2],
    /// Chance per day of a breakdown that stops production. Default 0.01.
    pub breakdown_chance_per_day: f64,
    /// Length of a breakdown, hours, `[min, max]`. Default `[2, 24]`.
    pub breakdown_hours: [f64; 2],
}

impl Default for IndustrialConfig {
    fn default() -> Self {
        IndustrialConfig {
            median_peak_w: 600_000.0,
            peak_log_sigma: 0.8,
            peak_w: [100_000.0, 8_000_000.0],
            one_shift_share: 0.3,
            two_shift_share: 0.4,
            idle_share: [0.15, 0.3],
            breakdown_chance_per_day: 0.01,
            breakdown_hours: [2.0, 24.0],
        }
    }
}

impl IndustrialConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        check_value("industrial.median_peak_w", self.median_peak_w, 1.0, 1e9)?;
        check_value("industrial.peak_log_sigma", self.peak_log_sigma, 0.0, 3.0)?;
        check_range("industrial.peak_w", self.peak_w, 1.0, 1e9)?;
        check_share("industrial.one_shift_share", self.one_shift_share)?;
        check_share("industrial.two_shift_share", self.two_shift_share)?;
        check_share(
            "industrial.one_shift_share + two_shift_share",
            self.one_shift_share + self.two_shift_share,
        )?;
        check_range("industrial.idle_share", self.idle_share, 0.0, 1.0)?;
        check_share(
            "industrial.breakdown_chance_per_day",
            self.breakdown_chance_per_day,
        )?;
        check_range(
            "industrial.breakdown_hours",
            self.breakdown_hours,
            0.0,
            24.0 * 30.0,
        )
    }
}
