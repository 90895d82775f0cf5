//! Street lighting: legitimate, unmetered load switched by photocells at dusk and dawn.
//!
//! It sits in a node's normal residual, so gridwatch must expect it: long January nights light
//! for over 15 hours, June nights for about 8. Each node's photocells switch a little after
//! sunset and before sunrise, by a delay drawn per node.

use crate::calendar::StepContext;
use crate::config::StreetLightingConfig;
use crate::rng::{self, Stream};

/// One node's lamps.
#[derive(Debug, Clone)]
pub(crate) struct StreetLighting {
    power_w: f64,
    delay_h: f64,
}

impl StreetLighting {
    pub(crate) fn new(config: &StreetLightingConfig, rng: &mut Stream) -> StreetLighting {
        let lamps = rng::uniform(rng, config.lamps).round();
        let lamp_w = rng::uniform(rng, config.lamp_w);
        StreetLighting {
            power_w: lamps * lamp_w,
            delay_h: rng::uniform(rng, config.photocell_delay_minutes) / 60.0,
        }
    }

    /// Installed power, W.
    pub(crate) fn installed_w(&self) -> f64 {
        self.power_w
    }

    /// Average power over the interval, W.
    pub(crate) fn power_w(&self, context: &StepContext) -> f64 {
        let lights_off = context.sunrise_local_hour - self.delay_h;
        let lights_on = context.sunset_local_hour + self.delay_h;
        let from = context.local_start_hour;
        let to = from + context.hours;
        // The dark part of a local day is [0, lights_off) and [lights_on, 24); an interval may
        // run past midnight, into the next day's early dark.
        let dark = |a: f64, b: f64| overlap(a, b, 0.0, lights_off) + overlap(a, b, lights_on, 24.0);
        let dark_hours = if to <= 24.0 {
            dark(from, to)
        } else {
            dark(from, 24.0) + dark(0.0, to - 24.0)
        };
        self.power_w * dark_hours / context.hours
    }
}

/// Length of the overlap of `[a, b)` and `[c, d)`.
fn overlap(a: f64, b: f64, c: f64, d: f64) -> f64 {
    (b.min(d) - a.max(c)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Clock;
    use crate::config::SimConfig;

    #[test]
    fn lamps_burn_through_long_winter_nights_only() {
        let config = SimConfig::default();
        let clock = Clock::new(&config);
        let lamps = StreetLighting {
            power_w: 1000.0,
            delay_h: 0.1,
        };
        let day_hours: f64 = (0..96)
            .map(|i| lamps.power_w(&clock.context(i)) * 0.25 / 1000.0)
            .sum();
        assert!((14.5..16.5).contains(&day_hours), "{day_hours}");
        let noon = (0..96)
            .map(|i| clock.context(i))
            .find(|c| (12.0..12.25).contains(&c.local_start_hour))
            .expect("a local noon");
        assert_eq!(lamps.power_w(&noon), 0.0);
    }
}
