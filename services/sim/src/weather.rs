//! Outdoor temperature: climate normals, a daily cycle, and weather that lasts a few days.
//!
//! temperature = normal for the day of the year (monthly means interpolated between mid-months)
//!             + daily cycle (coldest around 03:00 local, warmest around 15:00)
//!             + the day's departure from normal (an AR(1) process from day to day, interpolated
//!               between noons so that a cold spell sets in over hours, not at midnight)
//!             + a small, sticky quarter-hour noise.
//!
//! The whole run (plus a day before and two after, for smoothing and for look-ahead) is
//! generated at start: a few floats per interval.

use std::collections::HashMap;
use std::f64::consts::PI;

use chrono::Datelike;

use crate::calendar::{days_since_epoch, hours_since_midnight, Clock};
use crate::config::SimConfig;
use crate::rng::{self, correlation_per_step, Purpose};

/// Hour of the day's warmest temperature, local.
const WARMEST_LOCAL_HOUR: f64 = 15.0;
/// Standard deviation of the quarter-hour temperature noise, °C.
const FAST_NOISE_SIGMA_C: f64 = 0.4;
/// Its correlation from one 15-minute interval to the next.
const FAST_NOISE_CORRELATION_15MIN: f64 = 0.9;
/// Time constant of the smoothed temperature that buildings respond to, hours.
const BUILDING_TIME_CONSTANT_H: f64 = 12.0;
/// Days of weather generated before the run (warm-up) and after it (look-ahead).
const DAYS_BEFORE: i64 = 1;
const DAYS_AFTER: i64 = 2;

/// The temperature of every interval of the run and its margins.
#[derive(Debug)]
pub(crate) struct Weather {
    first_index: i64,
    temperature_c: Vec<f32>,
    smoothed_c: Vec<f32>,
    day_mean_c: HashMap<i64, f64>,
}

impl Weather {
    pub(crate) fn empty() -> Weather {
        Weather {
            first_index: 0,
            temperature_c: Vec::new(),
            smoothed_c: Vec::new(),
            day_mean_c: HashMap::new(),
        }
    }

    pub(crate) fn generate(config: &SimConfig, clock: &Clock) -> Weather {
        let climate = &config.climate;
        let per_day = clock.intervals_per_day() as i64;
        let first_index = -DAYS_BEFORE * per_day;
        let last_index = clock.intervals() as i64 + DAYS_AFTER * per_day;
        let mut rng = rng::stream(config.seed, 0, Purpose::Weather);
        let step_hours = clock.step_hours();
        let fast_rho = correlation_per_step(
            FAST_NOISE_CORRELATION_15MIN,
            f64::from(clock.step_minutes()),
        );

        // Day anomalies, keyed by local day, one more on each side for interpolation.
        let first_day = days_since_epoch(clock.local(clock.interval_start(first_index)).date()) - 1;
        let last_day = days_since_epoch(clock.local(clock.interval_start(last_index)).date()) + 1;
        let mut anomalies = HashMap::new();
        let mut standardised = rng::normal(&mut rng);
        let rho = climate.day_anomaly_correlation;
        for day in first_day..=last_day {
            standardised = rho * standardised + (1.0 - rho * rho).sqrt() * rng::normal(&mut rng);
            anomalies.insert(day, standardised);
        }

        let mut temperature_c = Vec::with_capacity((last_index - first_index + 1) as usize);
        let mut fast = rng::normal(&mut rng) * FAST_NOISE_SIGMA_C;
        for index in first_index..=last_index {
            let mid = clock.interval_start(index)
                + chrono::Duration::seconds(i64::from(clock.step_minutes()) * 30);
            let local = clock.local(mid);
            let day = days_since_epoch(local.date());
            let hour = hours_since_midnight(local);
            let day_of_year = f64::from(local.ordinal()) - 1.0 + hour / 24.0;
            let month0 = local.month0() as usize;
            let normal = interpolate_monthly(&climate.monthly_mean_c, day_of_year);
            let diurnal = interpolate_monthly(&climate.diurnal_half_range_c, day_of_year)
                * (2.0 * PI * (hour - WARMEST_LOCAL_HOUR) / 24.0).cos();
            // Anomaly: interpolate the standardised departure between this day's noon and the
            // neighbouring day's, then scale by the month's spread.
            let (other_day, weight) = if hour >= 12.0 {
                (day + 1, (hour - 12.0) / 24.0)
            } else {
                (day - 1, (12.0 - hour) / 24.0)
            };
            let here = anomalies.get(&day).copied().unwrap_or(0.0);
            let there = anomalies.get(&other_day).copied().unwrap_or(0.0);
            let anomaly =
                ((1.0 - weight) * here + weight * there) * climate.day_anomaly_sigma_c[month0];
            fast = fast_rho * fast
                + (1.0 - fast_rho * fast_rho).sqrt() * FAST_NOISE_SIGMA_C * rng::normal(&mut rng);
            temperature_c.push((normal + diurnal + anomaly + fast) as f32);
        }

        let alpha = 1.0 - (-step_hours / BUILDING_TIME_CONSTANT_H).exp();
        let mut smoothed_c = Vec::with_capacity(temperature_c.len());
        let mut level = f64::from(temperature_c.first().copied().unwrap_or(0.0));
        for t in &temperature_c {
            level += alpha * (f64::from(*t) - level);
            smoothed_c.push(level as f32);
        }

        let mut sums: HashMap<i64, (f64, u32)> = HashMap::new();
        for (offset, t) in temperature_c.iter().enumerate() {
            let index = first_index + offset as i64;
            let day = days_since_epoch(clock.local(clock.interval_start(index)).date());
            let entry = sums.entry(day).or_insert((0.0, 0));
            entry.0 += f64::from(*t);
            entry.1 += 1;
        }
        let day_mean_c = sums
            .into_iter()
            .map(|(day, (sum, n))| (day, sum / f64::from(n.max(1))))
            .collect();

        Weather {
            first_index,
            temperature_c,
            smoothed_c,
            day_mean_c,
        }
    }

    fn slot(&self, index: i64) -> usize {
        let last = self.temperature_c.len().saturating_sub(1);
        ((index - self.first_index).max(0) as usize).min(last)
    }

    /// Temperature of interval `index`, °C.
    pub(crate) fn temperature(&self, index: i64) -> f64 {
        self.temperature_c
            .get(self.slot(index))
            .map_or(0.0, |t| f64::from(*t))
    }

    /// Temperature smoothed over about half a day, °C.
    pub(crate) fn smoothed(&self, index: i64) -> f64 {
        self.smoothed_c
            .get(self.slot(index))
            .map_or(0.0, |t| f64::from(*t))
    }

    /// Mean temperature of a local day (days since 1970-01-01), °C.
    pub(crate) fn day_mean(&self, day: i64) -> f64 {
        self.day_mean_c.get(&day).copied().unwrap_or(0.0)
    }
}

/// Interpolates monthly values (taken to hold at mid-month) at a fractional day of the year
/// (0 = 1 January, 00:00), wrapping around the new year.
pub(crate) fn interpolate_monthly(values: &[f64; 12], day_of_year: f64) -> f64 {
    const DAYS_PER_MONTH: f64 = 365.25 / 12.0;
    let position = day_of_year / DAYS_PER_MONTH - 0.5;
    let below = position.floor();
    let weight = position - below;
    let month_below = (below as i64).rem_euclid(12) as usize;
    let month_above = (month_below + 1) % 12;
    (1.0 - weight) * values[month_below] + weight * values[month_above]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monthly_values_interpolate_through_mid_months_and_wrap() {
        let values = [
            0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -10.0,
        ];
        assert!((interpolate_monthly(&values, 15.2) - 0.0).abs() < 0.1);
        assert!((interpolate_monthly(&values, 45.6) - 10.0).abs() < 0.1);
        assert!(interpolate_monthly(&values, 0.0) < -4.0); // between mid-December and mid-January
    }

    #[test]
    fn january_in_ust_kamenogorsk_is_cold_with_a_daily_cycle() {
        let config = SimConfig {
            days: 28,
            ..SimConfig::default()
        };
        let clock = Clock::new(&config);
        let n = clock.intervals();
        let temps: Vec<f64> = (0..n).map(|i| clock.context(i).temperature_c).collect();
        let mean = temps.iter().sum::<f64>() / n as f64;
        assert!((-24.0..-6.0).contains(&mean), "{mean}");
        let afternoon: Vec<f64> = (0..n)
            .map(|i| clock.context(i))
            .filter(|c| (14.0..16.0).contains(&c.local_mid_hour))
            .map(|c| c.temperature_c)
            .collect();
        let night: Vec<f64> = (0..n)
            .map(|i| clock.context(i))
            .filter(|c| (2.0..4.0).contains(&c.local_mid_hour))
            .map(|c| c.temperature_c)
            .collect();
        let average = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(average(&afternoon) > average(&night) + 5.0);
    }
}
