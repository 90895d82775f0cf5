//! Commercial premises around the simulator's load shapes: offices (weekdays 8-18), shops
//! (commerce in general), groceries (the commerce shape plus refrigeration that never stops) and
//! bakeries (baking before dawn).

use super::profiles::{ProfileDay, StandardProfile};
use crate::calendar::{DayType, StepContext};
use crate::config::CommercialConfig;
use crate::rng::{self, correlation_per_step, LogNormalAr1, Stream};

/// Correlation of a premise's daily level from one day to the next.
const DAY_LEVEL_CORRELATION: f64 = 0.5;
/// Refrigeration works harder in warm weather: extra share per kelvin above this temperature.
const REFRIGERATION_FROM_C: f64 = 10.0;
const REFRIGERATION_SHARE_PER_K: f64 = 0.012;
/// Compressor cycling seen at interval resolution: log-sigma and 15-minute correlation.
const COMPRESSOR_SIGMA: f64 = 0.1;
const COMPRESSOR_CORRELATION_15MIN: f64 = 0.5;
/// Hours in a year, to turn yearly energy into mean power.
const HOURS_PER_YEAR: f64 = 8_760.0;

/// Kinds of commercial premises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommercialKind {
    Office,
    Shop,
    Grocery,
    Bakery,
}

/// One commercial premise.
#[derive(Debug)]
pub(crate) struct Commercial {
    kind: CommercialKind,
    profiled_mean_w: f64,
    refrigeration_w: f64,
    open_sunday: bool,
    day_log_sigma: f64,
    rng: Stream,
    noise: LogNormalAr1,
    compressor: LogNormalAr1,
    day_level: f64,
    day_factor: f64,
    current_day: Option<i64>,
}

impl Commercial {
    pub(crate) fn new(
        config: &CommercialConfig,
        step_minutes: f64,
        traits: &mut Stream,
        mut rng: Stream,
    ) -> Commercial {
        let weights = [
            config.office_weight,
            config.shop_weight,
            config.grocery_weight,
            config.bakery_weight,
        ];
        let total: f64 = weights.iter().sum();
        let mut pick = rng::uniform(traits, [0.0, total]);
        let mut slot = 0;
        while slot < 3 && pick >= weights[slot] {
            pick -= weights[slot];
            slot += 1;
        }
        let kind = [
            CommercialKind::Office,
            CommercialKind::Shop,
            CommercialKind::Grocery,
            CommercialKind::Bakery,
        ][slot];
        let annual_kwh = rng::log_normal(
            traits,
            config.median_annual_kwh[slot],
            config.annual_kwh_log_sigma,
        );
        let mean_w = annual_kwh * 1_000.0 / HOURS_PER_YEAR;
        let refrigeration_w = if kind == CommercialKind::Grocery {
            mean_w * config.grocery_refrigeration_share
        } else {
            0.0
        };
        let rho = correlation_per_step(config.noise_correlation_15min, step_minutes);
        let noise = LogNormalAr1::new(&mut rng, config.noise_log_sigma, rho);
        let compressor = LogNormalAr1::new(
            &mut rng,
            COMPRESSOR_SIGMA,
            correlation_per_step(COMPRESSOR_CORRELATION_15MIN, step_minutes),
        );
        Commercial {
            kind,
            profiled_mean_w: mean_w - refrigeration_w,
            refrigeration_w,
            open_sunday: config.shops_open_sunday,
            day_log_sigma: config.day_log_sigma,
            rng,
            noise,
            compressor,
            day_level: 0.0,
            day_factor: 1.0,
            current_day: None,
        }
    }

    pub(crate) fn kind(&self) -> CommercialKind {
        self.kind
    }

    pub(crate) fn nominal_mean_w(&self) -> f64 {
        self.profiled_mean_w + self.refrigeration_w
    }

    /// True average power of the interval, W.
    pub(crate) fn power_w(&mut self, context: &StepContext) -> f64 {
        if self.current_day != Some(context.local_day) {
            self.current_day = Some(context.local_day);
            let rho = DAY_LEVEL_CORRELATION;
            self.day_level =
                rho * self.day_level + (1.0 - rho * rho).sqrt() * rng::normal(&mut self.rng);
            let sigma = self.day_log_sigma;
            self.day_factor = (sigma * self.day_level - 0.5 * sigma * sigma).exp();
        }
        let noise = self.noise.next(&mut self.rng);
        let compressor = self.compressor.next(&mut self.rng);
        let mut day_type = context.day_type;
        let sells = matches!(self.kind, CommercialKind::Shop | CommercialKind::Grocery);
        if sells && self.open_sunday && day_type == DayType::SundayOrHoliday && !context.holiday {
            // Kazakh shops open on Sundays: trade like a Saturday.
            day_type = DayType::Saturday;
        }
        let day = ProfileDay {
            month0: context.month0,
            season: context.season,
            day_type,
            day_of_year: context.day_of_year,
        };
        let profile = match self.kind {
            CommercialKind::Office => StandardProfile::Office,
            CommercialKind::Shop | CommercialKind::Grocery => StandardProfile::Commerce,
            CommercialKind::Bakery => StandardProfile::Bakery,
        };
        let shape = profile.relative(&day, context.local_mid_hour);
        let warm = (context.temperature_c - REFRIGERATION_FROM_C).max(0.0);
        let refrigeration =
            self.refrigeration_w * (1.0 + REFRIGERATION_SHARE_PER_K * warm) * compressor;
        self.profiled_mean_w * shape * self.day_factor * noise + refrigeration
    }
}
