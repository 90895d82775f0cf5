//! Industrial plants working shifts.
//!
//! power = peak x (idle share + (1 - idle share) x production x the day's output) x noise
//!       + ventilation and space heating in cold weather.
//! Production follows the shift pattern (with half-hour ramps and a lunch dip), stops on Sundays
//! and holidays unless the plant runs continuously, and stops during rare breakdowns.

use serde::{Deserialize, Serialize};

use crate::calendar::{DayType, StepContext};
use crate::config::IndustrialConfig;
use crate::rng::{self, correlation_per_step, LogNormalAr1, Stream};

/// Length of the ramp at the start and end of a shift, hours.
const RAMP_HOURS: f64 = 0.5;
/// Production kept during the lunch break of day shifts.
const LUNCH_SHARE: f64 = 0.75;
/// Production kept during the Sunday maintenance window of continuous plants (08-16 local).
const MAINTENANCE_SHARE: f64 = 0.6;
/// Production kept by continuous plants on holidays.
const CONTINUOUS_HOLIDAY_SHARE: f64 = 0.85;
/// Interval-to-interval noise: log-sigma and 15-minute correlation (machines are steadier than
/// people).
const NOISE_SIGMA: f64 = 0.05;
const NOISE_CORRELATION_15MIN: f64 = 0.9;
/// Day-to-day output: log-sigma.
const DAY_SIGMA: f64 = 0.08;
/// Ventilation and space heating in cold weather: share of peak at 25 K below 10 °C.
const COLD_WEATHER_SHARE: f64 = 0.05;
const COLD_WEATHER_FROM_C: f64 = 10.0;
const COLD_WEATHER_SPAN_K: f64 = 25.0;

/// How a plant works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftPattern {
    /// Weekdays 07:00-16:00.
    OneShift,
    /// Weekdays 06:00-22:00 and Saturdays 06:00-14:00.
    TwoShifts,
    /// Around the clock, with a maintenance dip on Sundays.
    Continuous,
}

impl ShiftPattern {
    /// Share of the week in production, for the nominal mean.
    fn duty(self) -> f64 {
        match self {
            ShiftPattern::OneShift => 9.0 * 5.0 / 168.0,
            ShiftPattern::TwoShifts => (16.0 * 5.0 + 8.0) / 168.0,
            ShiftPattern::Continuous => 0.97,
        }
    }

    /// Production level at a local hour of a day type, 0 to 1.
    fn production(self, day_type: DayType, holiday: bool, hour: f64) -> f64 {
        let window = |from: f64, to: f64| {
            ((hour - from) / RAMP_HOURS).clamp(0.0, 1.0)
                * ((to - hour) / RAMP_HOURS).clamp(0.0, 1.0)
        };
        let lunch = if (12.0..12.75).contains(&hour) {
            LUNCH_SHARE
        } else {
            1.0
        };
        match (self, day_type) {
            (ShiftPattern::Continuous, DayType::SundayOrHoliday) if holiday => {
                CONTINUOUS_HOLIDAY_SHARE
            }
            (ShiftPattern::Continuous, DayType::SundayOrHoliday) => {
                if (8.0..16.0).contains(&hour) {
                    MAINTENANCE_SHARE
                } else {
                    1.0
                }
            }
            (ShiftPattern::Continuous, _) => 1.0,
            (_, DayType::SundayOrHoliday) => 0.0,
            (ShiftPattern::OneShift, DayType::Workday) => window(7.0, 16.0) * lunch,
            (ShiftPattern::OneShift, DayType::Saturday) => 0.0,
            (ShiftPattern::TwoShifts, DayType::Workday) => window(6.0, 22.0) * lunch,
            (ShiftPattern::TwoShifts, DayType::Saturday) => window(6.0, 14.0) * lunch,
        }
    }
}

/// One plant.
#[derive(Debug)]
pub(crate) struct Industrial {
    pattern: ShiftPattern,
    peak_w: f64,
    idle_share: f64,
    breakdown_chance_per_step: f64,
    breakdown_hours: [f64; 2],
    rng: Stream,
    noise: LogNormalAr1,
    day_factor: f64,
    current_day: Option<i64>,
    broken_until: u64,
}

impl Industrial {
    pub(crate) fn new(
        config: &IndustrialConfig,
        step_minutes: f64,
        traits: &mut Stream,
        mut rng: Stream,
    ) -> Industrial {
        let pick = rng::uniform(traits, [0.0, 1.0]);
        let pattern = if pick < config.one_shift_share {
            ShiftPattern::OneShift
        } else if pick < config.one_shift_share + config.two_shift_share {
            ShiftPattern::TwoShifts
        } else {
            ShiftPattern::Continuous
        };
        let peak_w = rng::log_normal(traits, config.median_peak_w, config.peak_log_sigma)
            .clamp(config.peak_w[0], config.peak_w[1]);
        let idle_share = rng::uniform(traits, config.idle_share);
        let noise = LogNormalAr1::new(
            &mut rng,
            NOISE_SIGMA,
            correlation_per_step(NOISE_CORRELATION_15MIN, step_minutes),
        );
        let steps_per_day = 24.0 * 60.0 / step_minutes;
        Industrial {
            pattern,
            peak_w,
            idle_share,
            breakdown_chance_per_step: config.breakdown_chance_per_day / steps_per_day,
            breakdown_hours: config.breakdown_hours,
            rng,
            noise,
            day_factor: 1.0,
            current_day: None,
            broken_until: 0,
        }
    }

    pub(crate) fn pattern(&self) -> ShiftPattern {
        self.pattern
    }

    pub(crate) fn nominal_mean_w(&self) -> f64 {
        self.peak_w * (self.idle_share + (1.0 - self.idle_share) * self.pattern.duty())
    }

    /// True average power of the interval, W.
    pub(crate) fn power_w(&mut self, context: &StepContext) -> f64 {
        if self.current_day != Some(context.local_day) {
            self.current_day = Some(context.local_day);
            self.day_factor =
                (DAY_SIGMA * rng::normal(&mut self.rng) - 0.5 * DAY_SIGMA * DAY_SIGMA).exp();
        }
        let noise = self.noise.next(&mut self.rng);
        let breaks = rng::chance(&mut self.rng, self.breakdown_chance_per_step);
        let repair_hours = rng::uniform(&mut self.rng, self.breakdown_hours);
        if breaks && context.index >= self.broken_until {
            self.broken_until = context.index + (repair_hours / context.hours).ceil() as u64;
        }
        let production = if context.index < self.broken_until {
            0.0
        } else {
            self.pattern.production(
                context.day_type,
                context.holiday,
                context.local_mid_hour.rem_euclid(24.0),
            ) * self.day_factor
        };
        let cold = ((COLD_WEATHER_FROM_C - context.temperature_c) / COLD_WEATHER_SPAN_K).max(0.0);
        self.peak_w * (self.idle_share + (1.0 - self.idle_share) * production) * noise
            + self.peak_w * COLD_WEATHER_SHARE * cold
    }
}
