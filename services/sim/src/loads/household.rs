//! A household: the household load shape, made individual.
//!
//! power = standby (fridge, routers, always on)
//!       + smooth part   = its share of the home's energy x household shape at the home's clock
//!                         (habits shift it by up to an hour or so) x the day's mood x sticky noise
//!       + appliance bursts (kettle, oven, washing machine), more likely when the profile is high
//!       + electric heating (temperature-driven, flat-ish, high in winter) or night storage
//!       + air conditioning on hot afternoons.
//! Homes empty now and then for a few days (holidays): only standby and frost protection remain.

use super::profiles::{ProfileDay, StandardProfile};
use super::ConsumerKind;
use crate::calendar::StepContext;
use crate::config::HouseholdConfig;
use crate::rng::{self, correlation_per_step, LogNormalAr1, Stream};

/// Always-on load of a home, W, `[min, max]`: fridge, freezer, routers, standby.
const STANDBY_W: [f64; 2] = [25.0, 70.0];
/// Standby never exceeds this share of a home's mean power.
const STANDBY_MAX_SHARE_OF_MEAN: f64 = 0.5;
/// Correlation of a home's daily level from one day to the next.
const DAY_LEVEL_CORRELATION: f64 = 0.5;
/// Share of the smooth load left while a home is empty (fridge and freezer cycling).
const ABSENT_SMOOTH_SHARE: f64 = 0.15;
/// Heating set-back while a home is empty, kelvin (frost protection).
const ABSENT_HEATING_SETBACK_K: f64 = 4.0;
/// Night set-back of direct electric heating: share kept from 23:00 to 06:00.
const NIGHT_SETBACK_SHARE: f64 = 0.9;
/// Night-tariff window for storage heaters, local hours `[from, to)` across midnight.
const STORAGE_CHARGE_FROM_H: f64 = 23.0;
const STORAGE_CHARGE_HOURS: f64 = 8.0;
/// Share of a storage-heated home's daily heat delivered directly in the day (top-up).
const STORAGE_DAYTIME_SHARE: f64 = 0.2;
/// Thermostat cycling seen at interval resolution: log-sigma and 15-minute correlation.
const THERMOSTAT_SIGMA: f64 = 0.08;
const THERMOSTAT_CORRELATION_15MIN: f64 = 0.7;
/// Air conditioning: cooling above this temperature, W per kelvin, capped, afternoons/evenings.
const COOLING_FROM_C: f64 = 24.0;
const COOLING_W_PER_K: [f64; 2] = [60.0, 120.0];
const COOLING_MAX_W: f64 = 2_500.0;
const COOLING_LOCAL_HOURS: [f64; 2] = [10.0, 23.0];
/// High-use homes have bigger bursts (electric water heaters).
const HIGH_USE_BURST_FACTOR: f64 = 2.0;
/// Hours in a year, to turn yearly energy into mean power.
const HOURS_PER_YEAR: f64 = 8_760.0;

#[derive(Debug, Clone)]
struct Heating {
    w_per_k: f64,
    balance_c: f64,
    max_w: f64,
    storage: bool,
}

/// One home.
#[derive(Debug)]
pub(crate) struct Household {
    standby_w: f64,
    smooth_mean_w: f64,
    appliance_mean_w: f64,
    burst_wh: [f64; 2],
    habit_shift_h: f64,
    heating: Option<Heating>,
    cooling_w_per_k: Option<f64>,
    high_use: bool,
    nominal_mean_w: f64,
    absence_chance_per_day: f64,
    absence_days: [f64; 2],
    day_log_sigma: f64,
    rng: Stream,
    noise: LogNormalAr1,
    thermostat: LogNormalAr1,
    day_level: f64,
    day_factor: f64,
    current_day: Option<i64>,
    absent_until_day: i64,
}

impl Household {
    /// Draws a home's traits from `traits` and keeps `rng` for its behaviour.
    /// `reference_temperature_c`: the season's normal temperature, to estimate its mean load.
    pub(crate) fn new(
        config: &HouseholdConfig,
        step_minutes: f64,
        reference_temperature_c: f64,
        traits: &mut Stream,
        mut rng: Stream,
    ) -> Household {
        let high_use = rng::chance(traits, config.high_use_share);
        let use_factor = if high_use {
            rng::uniform(traits, config.high_use_factor)
        } else {
            1.0
        };
        let annual_kwh = rng::log_normal(
            traits,
            config.median_annual_kwh,
            config.annual_kwh_log_sigma,
        ) * use_factor;
        let mean_w = annual_kwh * 1_000.0 / HOURS_PER_YEAR;
        let standby_w = rng::uniform(traits, STANDBY_W).min(STANDBY_MAX_SHARE_OF_MEAN * mean_w);
        let variable_w = mean_w - standby_w;
        let heating = rng::chance(traits, config.electric_heating_share).then(|| Heating {
            w_per_k: rng::uniform(traits, config.heating_w_per_k),
            balance_c: config.heating_balance_temperature_c,
            max_w: rng::uniform(traits, config.heater_max_w),
            storage: rng::chance(traits, config.storage_heating_share),
        });
        let cooling_w_per_k = rng::chance(traits, config.air_conditioning_share)
            .then(|| rng::uniform(traits, COOLING_W_PER_K));
        let habit_shift_h = rng::normal(traits) * config.habit_shift_minutes_sigma / 60.0;
        let burst_factor = if high_use { HIGH_USE_BURST_FACTOR } else { 1.0 };
        let rho = correlation_per_step(config.noise_correlation_15min, step_minutes);
        let noise = LogNormalAr1::new(&mut rng, config.noise_log_sigma, rho);
        let thermostat = LogNormalAr1::new(
            &mut rng,
            THERMOSTAT_SIGMA,
            correlation_per_step(THERMOSTAT_CORRELATION_15MIN, step_minutes),
        );
        let heating_mean_w = heating.as_ref().map_or(0.0, |h| {
            (h.w_per_k * (h.balance_c - reference_temperature_c).max(0.0)).min(h.max_w)
        });
        Household {
            standby_w,
            smooth_mean_w: variable_w * (1.0 - config.appliance_energy_share),
            appliance_mean_w: variable_w * config.appliance_energy_share,
            burst_wh: [
                config.appliance_burst_wh[0] * burst_factor,
                config.appliance_burst_wh[1] * burst_factor,
            ],
            habit_shift_h,
            heating,
            cooling_w_per_k,
            high_use,
            nominal_mean_w: mean_w + heating_mean_w,
            absence_chance_per_day: config.absence_chance_per_day,
            absence_days: config.absence_days,
            day_log_sigma: config.day_log_sigma,
            rng,
            noise,
            thermostat,
            day_level: 0.0,
            day_factor: 1.0,
            current_day: None,
            absent_until_day: i64::MIN,
        }
    }

    pub(crate) fn nominal_mean_w(&self) -> f64 {
        self.nominal_mean_w
    }

    pub(crate) fn kind(&self) -> ConsumerKind {
        ConsumerKind::Household {
            electric_heating: self.heating.is_some(),
            storage_heating: self.heating.as_ref().is_some_and(|h| h.storage),
            high_use: self.high_use,
            air_conditioning: self.cooling_w_per_k.is_some(),
        }
    }

    fn start_day(&mut self, day: i64) {
        self.current_day = Some(day);
        let rho = DAY_LEVEL_CORRELATION;
        self.day_level =
            rho * self.day_level + (1.0 - rho * rho).sqrt() * rng::normal(&mut self.rng);
        let sigma = self.day_log_sigma;
        self.day_factor = (sigma * self.day_level - 0.5 * sigma * sigma).exp();
        let leaving = rng::chance(&mut self.rng, self.absence_chance_per_day);
        let length = rng::uniform(&mut self.rng, self.absence_days).round() as i64;
        if day >= self.absent_until_day && leaving {
            self.absent_until_day = day + length.max(1);
        }
    }

    /// True average power of the interval, W.
    pub(crate) fn power_w(&mut self, context: &StepContext) -> f64 {
        if self.current_day != Some(context.local_day) {
            self.start_day(context.local_day);
        }
        let absent = context.local_day < self.absent_until_day;
        let day = ProfileDay {
            month0: context.month0,
            season: context.season,
            day_type: context.day_type,
            day_of_year: context.day_of_year,
        };
        let shape =
            StandardProfile::Household.relative(&day, context.local_mid_hour + self.habit_shift_h);
        let noise = self.noise.next(&mut self.rng);
        // Only heated homes draw thermostat noise: a home's traits never change, so its stream
        // stays aligned from one run to the next.
        let thermostat = if self.heating.is_some() {
            self.thermostat.next(&mut self.rng)
        } else {
            1.0
        };
        let burst_draw: f64 = rng::uniform(&mut self.rng, [0.0, 1.0]);
        let burst_size = rng::uniform(&mut self.rng, self.burst_wh);

        let mut power = self.standby_w;
        if absent {
            power += self.smooth_mean_w * ABSENT_SMOOTH_SHARE * shape.min(1.0);
        } else {
            power += self.smooth_mean_w * shape * self.day_factor * noise;
            // Appliance bursts: as many as the expected energy calls for, on average.
            let expected_wh = self.appliance_mean_w * shape * self.day_factor * context.hours;
            let mean_burst_wh = 0.5 * (self.burst_wh[0] + self.burst_wh[1]);
            let expected_bursts = expected_wh / mean_burst_wh;
            let bursts = expected_bursts.floor()
                + if burst_draw < expected_bursts.fract() {
                    1.0
                } else {
                    0.0
                };
            power += bursts * burst_size / context.hours;
        }
        if let Some(heating) = &self.heating {
            power += heating_w(heating, context, absent, thermostat);
        }
        if let Some(w_per_k) = self.cooling_w_per_k {
            let hour = context.local_mid_hour;
            if !absent && (COOLING_LOCAL_HOURS[0]..COOLING_LOCAL_HOURS[1]).contains(&hour) {
                power += (w_per_k * (context.temperature_c - COOLING_FROM_C).max(0.0) * noise)
                    .min(COOLING_MAX_W);
            }
        }
        power
    }
}

/// Electric heating power, W.
fn heating_w(heating: &Heating, context: &StepContext, absent: bool, thermostat: f64) -> f64 {
    let balance = heating.balance_c
        - if absent {
            ABSENT_HEATING_SETBACK_K
        } else {
            0.0
        };
    let hour = context.local_mid_hour.rem_euclid(24.0);
    if heating.storage {
        // Daily heat need from the day's mean temperature; most of it charged at night.
        let daily_wh = heating.w_per_k * (balance - context.day_mean_temperature_c).max(0.0) * 24.0;
        let charging = !(STORAGE_CHARGE_FROM_H + STORAGE_CHARGE_HOURS - 24.0
            ..STORAGE_CHARGE_FROM_H)
            .contains(&hour);
        let power = if charging {
            daily_wh * (1.0 - STORAGE_DAYTIME_SHARE) / STORAGE_CHARGE_HOURS
        } else {
            daily_wh * STORAGE_DAYTIME_SHARE / (24.0 - STORAGE_CHARGE_HOURS)
        };
        (power * thermostat).min(heating.max_w)
    } else {
        let setback = if !(6.0..23.0).contains(&hour) {
            NIGHT_SETBACK_SHARE
        } else {
            1.0
        };
        let demand = heating.w_per_k * (balance - context.smoothed_temperature_c).max(0.0);
        (demand * setback * thermostat).min(heating.max_w)
    }
}
