//! What a meter registers.
//!
//! A meter integrates the power its sensing element sees into a cumulative register:
//! - with a systematic error drawn once within its accuracy class (IEC 62053: a class 1 meter
//!   stays within +-1 %; most real meters sit well inside their class),
//! - with a small random error per reading,
//! - read at its own clock, a few seconds off: the register labelled T holds the energy up to
//!   T + skew, a few seconds more or less than the true T (it cancels over longer windows).
//!
//! The register keeps its fractional watt-hours, so integer reporting never drifts.

use crate::config::MeterConfig;
use crate::rng::{self, Stream};

/// Seconds in an hour.
const SECONDS_PER_HOUR: f64 = 3_600.0;

/// One reading as the meter produces it, before the network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RegisterReading {
    /// The register at the labelled time, Wh.
    pub register_wh: i64,
    /// Average power reported with the reading, W.
    pub power_w: f64,
    /// Energy the register advanced by over the interval (true time), Wh.
    pub registered_wh: f64,
}

/// A meter's measurement chain.
#[derive(Debug)]
pub(crate) struct Measurement {
    systematic_error: f64,
    random_error_sigma: f64,
    clock_skew_h: f64,
    power_noise_share: f64,
    accumulated_wh: f64,
    rng: Stream,
}

impl Measurement {
    /// A meter of `accuracy_pct` whose register starts at `initial_register_wh`.
    pub(crate) fn new(
        config: &MeterConfig,
        accuracy_pct: f64,
        initial_register_wh: f64,
        mut rng: Stream,
    ) -> Measurement {
        let class = accuracy_pct / 100.0;
        let systematic_error =
            (rng::normal(&mut rng) * config.systematic_error_sigma_of_class * class)
                .clamp(-class, class);
        let skew_s = (rng::normal(&mut rng) * config.clock_skew_sigma_s)
            .clamp(-config.clock_skew_max_s, config.clock_skew_max_s);
        Measurement {
            systematic_error,
            random_error_sigma: config.random_error_sigma_of_class * class,
            clock_skew_h: skew_s / SECONDS_PER_HOUR,
            power_noise_share: config.power_noise_share,
            accumulated_wh: initial_register_wh.max(0.0),
            rng,
        }
    }

    /// The same meter read `delay_s` seconds after each labelled boundary (a head-end that
    /// stamps its poll time): its register holds that much more energy, as a late clock does.
    pub(crate) fn delayed(mut self, delay_s: u32) -> Measurement {
        self.clock_skew_h += f64::from(delay_s) / SECONDS_PER_HOUR;
        self
    }

    /// The register at the start of the run, Wh (before any interval).
    #[cfg(test)]
    pub(crate) fn register_wh(&self) -> f64 {
        self.accumulated_wh
    }

    /// Registers one interval in which the sensing element saw `seen_w` on average, and reads
    /// the register at the interval's labelled end. `next_seen_w` is what it will see in the
    /// next interval: a meter whose clock is late reads a few seconds into it.
    pub(crate) fn register(
        &mut self,
        seen_w: f64,
        next_seen_w: f64,
        hours: f64,
    ) -> RegisterReading {
        let random_error = self.random_error_sigma * rng::normal(&mut self.rng);
        let power_noise = self.power_noise_share * rng::normal(&mut self.rng);
        let before = self.accumulated_wh;
        let increment = seen_w * hours * (1.0 + self.systematic_error + random_error);
        // A register never goes below zero, even when tampered backwards.
        self.accumulated_wh = (self.accumulated_wh + increment).max(0.0);
        let skew_power = if self.clock_skew_h >= 0.0 {
            next_seen_w
        } else {
            seen_w
        };
        let skew_wh = skew_power * (1.0 + self.systematic_error) * self.clock_skew_h;
        let register = (self.accumulated_wh + skew_wh).max(0.0).floor();
        let registered_wh = self.accumulated_wh - before;
        RegisterReading {
            register_wh: register as i64,
            power_w: registered_wh / hours * (1.0 + power_noise),
            registered_wh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Purpose};

    #[test]
    fn registers_rise_monotonically_and_track_true_energy_within_class() {
        let config = MeterConfig::default();
        for key in 0..200 {
            let mut meter =
                Measurement::new(&config, 1.0, 1e6, stream(3, key, Purpose::Measurement));
            let mut last = meter.register_wh().floor() as i64;
            let mut true_wh = 0.0;
            let mut rng = stream(3, key, Purpose::Load);
            let mut next = 500.0;
            for _ in 0..960 {
                let now = next;
                next = if rng::chance(&mut rng, 0.1) {
                    0.0
                } else {
                    rng::uniform(&mut rng, [0.0, 5000.0])
                };
                let reading = meter.register(now, next, 0.25);
                assert!(reading.register_wh >= last, "register went backwards");
                last = reading.register_wh;
                true_wh += now * 0.25;
            }
            let measured = last as f64 - 1e6;
            assert!(
                (measured - true_wh).abs() <= 0.01 * true_wh + 20.0,
                "{measured} vs {true_wh}"
            );
        }
    }
}
