//! `tamper`: household meters made to under-report.
//!
//! The synthetic attacks of Jokar, Arianpoo and Leung, "Electricity Theft Detection in AMI
//! Using Customers' Consumption Patterns", IEEE Trans. Smart Grid 7(1), 2016, applied to each
//! day of readings x_t (a local day), plus the later capped and subtracted variants and a
//! register driven backwards:
//! - h1: alpha x_t, alpha ~ U(0.1, 0.8) drawn per day
//! - h2: 0 between a random start and end (at least 4 hours), x_t otherwise
//! - h3: gamma_t x_t, gamma_t ~ U(0.1, 0.8) drawn per reading
//! - h4: gamma_t mean(x)
//! - h5: mean(x), a flat line at the day's mean
//! - h6: x reversed within the day
//!   (h5 and h6 move consumption within a day without reducing its total: they cheat
//!   time-of-use tariffs, and their energy here is close to zero; they show as patterns)
//! - cap: min(x_t, c);  subtract: max(x_t - c, 0), with c a share of the home's mean power
//! - backwards: for a few night hours the register runs backwards at the rate of consumption.
//!
//! The energy is consumed all the same: what the meter does not see shows in its node's
//! residual. h4, h5 and h6 need the whole day's values, so the device looks ahead at the day's
//! true consumption, as the literature's definitions assume.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::install::{Installer, Place};
use crate::calendar::{Clock, StepContext};
use crate::error::SimError;
use crate::loads::ConsumerLoad;
use crate::rng::{self, Purpose, Stream};
use crate::truth::InjectionKind;
use gridwatch_core::registry::MeterClass;

/// An attack on a meter's readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// alpha x_t, alpha ~ U(0.1, 0.8) per day.
    H1,
    /// Zero between a random start and end.
    H2,
    /// gamma_t x_t, gamma_t ~ U(0.1, 0.8) per reading.
    H3,
    /// gamma_t mean(x).
    H4,
    /// mean(x): a flat line at the daily mean.
    H5,
    /// The day reversed.
    H6,
    /// min(x_t, c).
    Cap,
    /// max(x_t - c, 0).
    Subtract,
    /// The register runs backwards for a few night hours.
    Backwards,
}

impl Attack {
    /// All attacks, in the order they are assigned by default.
    pub const ALL: [Attack; 9] = [
        Attack::H1,
        Attack::H2,
        Attack::H3,
        Attack::H4,
        Attack::H5,
        Attack::H6,
        Attack::Cap,
        Attack::Subtract,
        Attack::Backwards,
    ];

    fn name(self) -> &'static str {
        match self {
            Attack::H1 => "h1",
            Attack::H2 => "h2",
            Attack::H3 => "h3",
            Attack::H4 => "h4",
            Attack::H5 => "h5",
            Attack::H6 => "h6",
            Attack::Cap => "cap",
            Attack::Subtract => "subtract",
            Attack::Backwards => "backwards",
        }
    }
}

/// Range of the scaling factors of h1, h3 and h4.
const SCALE_RANGE: [f64; 2] = [0.1, 0.8];
/// Shortest zeroed stretch of h2, hours.
const H2_MIN_HOURS: f64 = 4.0;
/// Length of the backwards window, hours, within local 22:00-06:00.
const BACKWARDS_HOURS: [f64; 2] = [2.0, 6.0];
const BACKWARDS_NIGHT_START_H: f64 = 22.0;
const NIGHT_HOURS: f64 = 8.0;

/// A tampering device on one meter.
#[derive(Debug)]
pub(crate) struct Tamper {
    pub injection: usize,
    attack: Attack,
    from_index: u64,
    until_index: u64,
    cap_w: f64,
    rng: Stream,
    day: Option<i64>,
    day_first_index: u64,
    day_seen_w: Vec<f64>,
}

impl Tamper {
    /// Before interval `context.index` is sampled: on a new local day, look at the day's true
    /// consumption and decide what the meter will be shown.
    pub(crate) fn prepare(
        &mut self,
        load: &mut ConsumerLoad,
        clock: &Clock,
        context: &StepContext,
    ) {
        if self.day == Some(context.local_day) {
            return;
        }
        self.day = Some(context.local_day);
        self.day_first_index = context.index;
        let mut end = context.index + 1;
        let limit = context.index + clock.intervals_per_day() + 1;
        while end < limit && clock.context(end).local_day == context.local_day {
            end += 1;
        }
        let samples = load.look_ahead(clock, context.index, end);
        let x: Vec<f64> = samples.iter().map(|s| s.power_w).collect();
        let attacked = self.attack_day(&x, context, clock);
        self.day_seen_w = (context.index..end)
            .zip(x.iter().zip(attacked))
            .map(|(index, (&truth, attacked))| {
                if (self.from_index..self.until_index).contains(&index) {
                    attacked
                } else {
                    truth
                }
            })
            .collect();
    }

    /// What the meter is shown in interval `context.index`, W, given the true draw.
    pub(crate) fn seen_w(&mut self, context: &StepContext, true_w: f64) -> f64 {
        let offset = context.index.saturating_sub(self.day_first_index) as usize;
        self.day_seen_w.get(offset).copied().unwrap_or(true_w)
    }

    /// The attacked version of a day's true powers `x`. Every day draws the same random numbers
    /// whatever the attack, so a day's parameters do not depend on the ones before.
    fn attack_day(&mut self, x: &[f64], context: &StepContext, clock: &Clock) -> Vec<f64> {
        let n = x.len();
        let per_hour = 60.0 / f64::from(clock.step_minutes());
        let alpha = rng::uniform(&mut self.rng, SCALE_RANGE);
        let zero_length =
            (rng::uniform(&mut self.rng, [H2_MIN_HOURS, 24.0]) * per_hour).round() as usize;
        let zero_start_draw = rng::uniform(&mut self.rng, [0.0, 1.0]);
        let gammas: Vec<f64> = (0..n)
            .map(|_| rng::uniform(&mut self.rng, SCALE_RANGE))
            .collect();
        let back_hours = rng::uniform(&mut self.rng, BACKWARDS_HOURS);
        let back_start_draw = rng::uniform(&mut self.rng, [0.0, 1.0]);
        let mean = if n == 0 {
            0.0
        } else {
            x.iter().sum::<f64>() / n as f64
        };
        match self.attack {
            Attack::H1 => x.iter().map(|v| alpha * v).collect(),
            Attack::H2 => {
                let length = zero_length.min(n);
                let start = ((n - length) as f64 * zero_start_draw) as usize;
                x.iter()
                    .enumerate()
                    .map(|(t, v)| {
                        if (start..start + length).contains(&t) {
                            0.0
                        } else {
                            *v
                        }
                    })
                    .collect()
            }
            Attack::H3 => x.iter().zip(&gammas).map(|(v, g)| g * v).collect(),
            Attack::H4 => gammas.iter().map(|g| g * mean).collect(),
            Attack::H5 => vec![mean; n],
            Attack::H6 => x.iter().rev().copied().collect(),
            Attack::Cap => x.iter().map(|v| v.min(self.cap_w)).collect(),
            Attack::Subtract => x.iter().map(|v| (v - self.cap_w).max(0.0)).collect(),
            Attack::Backwards => {
                let start_h =
                    BACKWARDS_NIGHT_START_H + (NIGHT_HOURS - back_hours) * back_start_draw;
                (0..n)
                    .map(|t| {
                        let hour =
                            (context.local_start_hour + t as f64 / per_hour).rem_euclid(24.0);
                        let since_start = (hour - start_h).rem_euclid(24.0);
                        if since_start < back_hours {
                            -x[t]
                        } else {
                            x[t]
                        }
                    })
                    .collect()
            }
        }
    }
}

pub(super) fn install(
    params: &super::Tamper,
    installer: &mut Installer<'_>,
) -> Result<(), SimError> {
    if params.attacks.is_empty() {
        return Err(installer.error("attacks is empty"));
    }
    if !(params.cap_share_of_mean.is_finite() && params.cap_share_of_mean >= 0.0) {
        return Err(installer.error("cap_share_of_mean must be 0 or more"));
    }
    let meters = if params.meters.is_empty() {
        installer.pick_consumers(MeterClass::Household, params.count as usize, |c| {
            c.tamper.is_none()
        })?
    } else {
        params
            .meters
            .iter()
            .map(|id| installer.consumer_meter(id))
            .collect::<Result<Vec<_>, _>>()?
    };
    let (from, until) = installer.window(params.onset_hours, params.duration_hours)?;
    for (i, &meter) in meters.iter().enumerate() {
        let attack = params.attacks[i % params.attacks.len()];
        let Some(consumer) = installer.grid.meters[meter].consumer else {
            continue;
        };
        if installer.grid.consumers[consumer].tamper.is_some() {
            return Err(installer.error(format!(
                "meter {} is already tampered by another scenario",
                installer.grid.meters[meter].id
            )));
        }
        let cap_w = params.cap_share_of_mean
            * installer.grid.consumers[consumer]
                .load
                .model
                .nominal_mean_w();
        let node = installer.grid.meters[meter].node;
        let mut details = json!({ "attack": attack.name() });
        if matches!(attack, Attack::Cap | Attack::Subtract) {
            details["c_w"] = json!(cap_w);
        }
        let injection = installer.inject(
            InjectionKind::MeterTamper,
            Place {
                node: Some(node),
                meter: Some(meter),
                ..Place::default()
            },
            from,
            until,
            details,
        );
        let rng = installer.stream(meter as u64, Purpose::Tamper);
        installer.grid.consumers[consumer].tamper = Some(Tamper {
            injection,
            attack,
            from_index: from,
            until_index: until,
            cap_w,
            rng,
            day: None,
            day_first_index: 0,
            day_seen_w: Vec::new(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;
    use crate::rng::stream;

    fn device(attack: Attack) -> Tamper {
        Tamper {
            injection: 0,
            attack,
            from_index: 0,
            until_index: u64::MAX,
            cap_w: 300.0,
            rng: stream(1, attack as u64, Purpose::Tamper),
            day: None,
            day_first_index: 0,
            day_seen_w: Vec::new(),
        }
    }

    /// A day of 96 quarter-hours: 100 W at night rising to 1,000 W in the evening.
    fn day() -> Vec<f64> {
        (0..96)
            .map(|t| 100.0 + 900.0 * (f64::from(t) / 95.0).powi(2))
            .collect()
    }

    fn attacked(attack: Attack) -> Vec<f64> {
        let clock = Clock::new(&SimConfig::default());
        device(attack).attack_day(&day(), &clock.context(0), &clock)
    }

    #[test]
    fn jokar_attacks_transform_a_day_as_defined() {
        let x = day();
        let mean = x.iter().sum::<f64>() / 96.0;
        let h1 = attacked(Attack::H1);
        let alpha = h1[0] / x[0];
        assert!((0.1..0.8).contains(&alpha));
        assert!(h1
            .iter()
            .zip(&x)
            .all(|(a, v)| (a / v - alpha).abs() < 1e-12));
        let h2 = attacked(Attack::H2);
        let zeroed = h2.iter().filter(|v| **v == 0.0).count();
        assert!(
            zeroed >= 16,
            "at least four hours zeroed, got {zeroed} quarter-hours"
        );
        assert!(h2.iter().zip(&x).all(|(a, v)| *a == 0.0 || a == v));
        let h3 = attacked(Attack::H3);
        assert!(h3
            .iter()
            .zip(&x)
            .all(|(a, v)| (0.1..0.8).contains(&(a / v))));
        let h4 = attacked(Attack::H4);
        assert!(h4.iter().all(|a| (0.1..0.8).contains(&(a / mean))));
        assert!(attacked(Attack::H5).iter().all(|a| (a - mean).abs() < 1e-9));
        let h6 = attacked(Attack::H6);
        assert!(h6.iter().zip(x.iter().rev()).all(|(a, v)| a == v));
        assert!(attacked(Attack::Cap).iter().all(|a| *a <= 300.0));
        let subtract = attacked(Attack::Subtract);
        assert!(subtract
            .iter()
            .zip(&x)
            .all(|(a, v)| (a - (v - 300.0).max(0.0)).abs() < 1e-9));
    }

    #[test]
    fn the_backwards_attack_reverses_a_few_night_hours() {
        // The day starts at 05:00 local: quarter-hour t is at 05:00 + t/4 hours.
        let backwards = attacked(Attack::Backwards);
        let reversed: Vec<usize> = (0..96).filter(|&t| backwards[t] < 0.0).collect();
        assert!(
            (8..=24).contains(&reversed.len()),
            "{} quarter-hours",
            reversed.len()
        );
        for t in reversed {
            let hour = (5.0 + t as f64 / 4.0) % 24.0;
            assert!(!(6.0..22.0).contains(&hour), "reversed at {hour}");
        }
    }
}
