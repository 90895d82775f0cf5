//! The residual a node shows when nothing is stolen: technical losses, meter bias and legitimate
//! unmetered loads, learned from the node's own history.
//!
//! Model, per window: `expected = a + c·F + b·F² + offset[slot]`, where `F` is the energy the
//! node delivers to what it feeds (its load). `a` is the no-load (iron) loss, `b·F²` the load
//! (copper, I²R) loss, `c·F` absorbs the systematic error of the meters (an input meter reading
//! 0.3 % high adds about 0.3 % of F), and the half-hour-of-day offsets absorb calendar-driven
//! unmetered loads such as street lighting switched at dusk and dawn. The regressor is the load
//! delivered, not the energy entering: a diversion inflates the input, and a model of the input
//! would expect inflated losses and hide part of the theft. It is fitted by iteratively reweighted least squares with Huber
//! weights on windows that were not flagged, so neither outliers nor a theft already caught pull
//! it up; its spread is the median absolute deviation of what it does not explain.
//!
//! Before a node has `min_history` windows of its own, documented priors stand in: losses of 6 %
//! of throughput with a spread of 10 % — wide on purpose, so that only a gross diversion (about
//! half the throughput, like the East Kazakhstan case's 50 MW) is flagged while the node is still
//! being learned.

use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// Calendar slots of a day: half hours.
pub const SLOTS: usize = 48;

/// The half hour of the day (UTC) of `t`, 0 to 47.
pub fn slot_of(t: DateTime<Utc>) -> u8 {
    (t.hour() * 2 + t.minute() / 30) as u8
}

/// Tuning of the loss model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossParams {
    /// Prior share of throughput lost (default 0.06: distribution grids lose 3-10 %).
    pub prior_loss_fraction: f64,
    /// Prior spread of the residual, as a share of throughput (default 0.10): wide on purpose,
    /// a node's no-load loss and street lighting can be a large share of a light night load;
    /// with the default threshold a new node is flagged only above about 55 % of its load.
    pub prior_sigma_fraction: f64,
    /// The most a node's residual may be, as a share of the larger of its load and its typical
    /// load, to count as normal however the model was learned (default 1.0: street lighting and
    /// the no-load loss can make half the load of a small transformer at night, but a node
    /// never loses more than it delivers): a theft already running when gridwatch starts, and
    /// larger than this, can never be learned as normal.
    pub max_loss_fraction: f64,
    /// Windows of clean history needed before the learned model replaces the priors
    /// (default 64: sixteen hours of 15-minute windows, most of a daily cycle).
    pub min_history: usize,
    /// Huber threshold in robust standard deviations (default 1.5).
    pub huber_k: f64,
    /// Least spread assumed, as a share of throughput (default 0.005): with meters of class
    /// 0.5S and 1, no balance is more exact than this, and it sets the single-window detection
    /// floor at about 2.5 % of throughput with the default threshold.
    pub sigma_floor_fraction: f64,
    /// Least spread assumed, in Wh per window (default 50 Wh: 200 W), for lightly loaded nodes
    /// whose meters' clocks and rounding move that much between windows.
    pub sigma_floor_wh: f64,
    /// Windows needed in a half hour of the day to learn its offset (default 2: one day of
    /// 15-minute windows, so that street lighting is learned from the first day).
    pub offset_min_points: usize,
    /// Uncertainty of the loss slope when a window's load departs from the node's usual load at
    /// that time of day, as a share of the departure (default 0.03): a farm switched off, a
    /// factory on holiday, changes the load without changing losses in proportion. A diversion
    /// does not move the load delivered, so it is not masked by this.
    pub slope_uncertainty: f64,
    /// Windows of history a model needs before the cumulative test may use it (default 192: two
    /// days, enough to learn each hour's calendar offset, such as street lighting switched on
    /// at dusk, which the per-window test tolerates but a CUSUM would accumulate).
    pub cusum_min_history: usize,
}

impl Default for LossParams {
    fn default() -> Self {
        LossParams {
            prior_loss_fraction: 0.06,
            prior_sigma_fraction: 0.10,
            max_loss_fraction: 1.0,
            min_history: 64,
            huber_k: 1.5,
            sigma_floor_fraction: 0.005,
            sigma_floor_wh: 50.0,
            offset_min_points: 2,
            cusum_min_history: 192,
            slope_uncertainty: 0.03,
        }
    }
}

/// One window of a node's history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResidualSample {
    /// Energy the node delivered to what it feeds (its load), Wh.
    pub load_wh: f64,
    /// Input minus fed, Wh.
    pub residual_wh: f64,
    /// Half hour of the day (UTC) of the window's start, 0 to 47 (see [`slot_of`]).
    pub slot: u8,
}

/// A node's learned (or prior) residual model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossModel {
    /// No-load loss per window, Wh.
    pub no_load_wh: f64,
    /// Share of input lost linearly (meter bias and the linear part of losses).
    pub linear: f64,
    /// Load loss coefficient, per Wh (loss = quadratic · I²).
    pub quadratic_per_wh: f64,
    /// Calendar offsets by half hour of the day (UTC), Wh.
    pub slot_offsets_wh: Vec<f64>,
    /// The node's usual load by half hour of the day, Wh: how far a window's load is from it
    /// says how far the model extrapolates.
    #[serde(default)]
    pub slot_load_wh: Vec<f64>,
    /// The residual's spread by half hour of the day, Wh (empty for the prior): the half hours
    /// when street lights switch on or a factory changes shifts are noisier than the rest.
    #[serde(default)]
    pub slot_sigma_wh: Vec<f64>,
    /// The node's median load over its history, Wh (0 for the prior): the cap on what counts as
    /// normal is a share of the larger of this and the window's load, so that the constant
    /// losses of a node lightly loaded at night are not mistaken for theft.
    #[serde(default)]
    pub typical_load_wh: f64,
    /// The largest residual the node showed in its training windows, Wh (their 99th
    /// percentile; 0 for the prior): the cap on the expected residual is never below what the
    /// node was seen to lose. Street lighting on a feeder of five homes draws twenty times their
    /// night load, and a lamp is learned from the hours it is dark.
    #[serde(default)]
    pub seen_residual_wh: f64,
    /// Spread of the residual around the model, Wh (learned models).
    pub sigma_wh: f64,
    /// Spread as a share of input (the prior).
    pub sigma_fraction: f64,
    /// Windows it was learned from (0 for the prior).
    pub samples: usize,
}

impl LossModel {
    /// The cold-start model.
    pub fn prior(params: &LossParams) -> LossModel {
        LossModel {
            no_load_wh: 0.0,
            linear: params.prior_loss_fraction,
            quadratic_per_wh: 0.0,
            slot_offsets_wh: vec![0.0; SLOTS],
            slot_load_wh: Vec::new(),
            slot_sigma_wh: Vec::new(),
            typical_load_wh: 0.0,
            seen_residual_wh: 0.0,
            sigma_wh: 0.0,
            sigma_fraction: params.prior_sigma_fraction,
            samples: 0,
        }
    }

    /// Whether it was learned from the node's own history.
    pub fn is_learned(&self) -> bool {
        self.samples > 0
    }

    /// Whether it has the history the cumulative test needs.
    pub fn supports_cusum(&self, params: &LossParams) -> bool {
        self.samples >= params.cusum_min_history
    }

    /// Learns a model from `samples` (windows not flagged, with good coverage); falls back to
    /// the prior when there are fewer than `min_history`.
    pub fn fit(samples: &[ResidualSample], params: &LossParams) -> LossModel {
        let usable: Vec<&ResidualSample> = samples
            .iter()
            .filter(|s| s.load_wh.is_finite() && s.residual_wh.is_finite() && s.load_wh > 0.0)
            .collect();
        if usable.len() < params.min_history {
            return LossModel::prior(params);
        }
        // Load and time of day move together (evening peaks, night troughs), so a loss slope
        // fitted across the day would trade places with the calendar offsets and extrapolate
        // wildly to an unusual load. The slope is therefore learned from how the residual moves
        // with the load *within* each half hour across days (a fixed-effects regression), pulled
        // towards the prior loss share where the days barely differ; each half hour's intercept
        // is then the robust level of what the slope leaves.
        let mut weights = vec![1.0; usable.len()];
        let mut fit = SlotFit::default();
        for _ in 0..6 {
            fit = SlotFit::solve(&usable, &weights, params);
            let deviations: Vec<f64> = usable
                .iter()
                .map(|s| s.residual_wh - fit.predict(s))
                .collect();
            let scale = (1.4826 * mad(&deviations)).max(1e-9);
            for (w, d) in weights.iter_mut().zip(&deviations) {
                let u = d.abs() / scale;
                *w = if u <= params.huber_k {
                    1.0
                } else {
                    params.huber_k / u
                };
            }
        }
        let base = [fit.level, fit.linear, fit.quadratic];
        let offsets: Vec<f64> = fit.intercepts.iter().map(|a| a - fit.level).collect();
        let deviations: Vec<f64> = usable
            .iter()
            .map(|s| {
                s.residual_wh - eval_base(&base, s.load_wh) - offsets[usize::from(s.slot) % SLOTS]
            })
            .collect();
        // The spread that matters is the tail's: a MAD fitted to the bulk underestimates the
        // rare large deviations (a missed reading, a clock jump) that a per-window test meets.
        // Take the larger of the MAD's sigma and the 99th percentile's (|dev| / 2.576).
        let sigma = (1.4826 * mad(&deviations)).max(quantile_abs(&deviations, 0.99) / 2.576);
        let mut by_slot: Vec<Vec<f64>> = vec![Vec::new(); SLOTS];
        for (s, d) in usable.iter().zip(&deviations) {
            by_slot[usize::from(s.slot) % SLOTS].push(*d);
        }
        // A half hour's own spread, from at least three days of it (six windows).
        let slot_sigma: Vec<f64> = by_slot
            .iter()
            .map(|d| {
                if d.len() >= 6 {
                    quantile_abs(d, 0.9) / 1.645
                } else {
                    0.0
                }
            })
            .collect();
        LossModel {
            no_load_wh: base[0],
            linear: base[1],
            quadratic_per_wh: base[2],
            slot_offsets_wh: offsets,
            slot_load_wh: fit.slot_load,
            slot_sigma_wh: slot_sigma,
            typical_load_wh: median(&usable.iter().map(|s| s.load_wh).collect::<Vec<_>>()),
            seen_residual_wh: quantile_abs(
                &usable
                    .iter()
                    .map(|s| s.residual_wh.max(0.0))
                    .collect::<Vec<_>>(),
                0.99,
            ),
            sigma_wh: sigma,
            sigma_fraction: 0.0,
            samples: usable.len(),
        }
    }

    /// The residual expected for a load of `load_wh` in a window starting in `slot`, capped at
    /// `max_loss_fraction` of the largest of this load, the node's typical load and its usual
    /// load in its busiest half hour, or at what the node was seen to lose in its training
    /// windows (`seen_residual_wh`) where that is more. The busiest half hour counts because street lighting on
    /// a small transformer draws more than its homes at night (a 4 kW row of lamps over eleven
    /// homes using 1 to 3 kW): capped at the night's load, the lamps the model learned showed
    /// as an excess every evening. A theft already running at start-up never teaches the model
    /// anyway unless the node balances for hours every day (`CALENDAR_QUIET_WINDOWS` in the
    /// service); the cap is the second guard.
    pub fn expected(&self, load_wh: f64, slot: u8, params: &LossParams) -> f64 {
        let base =
            self.no_load_wh + self.linear * load_wh + self.quadratic_per_wh * load_wh * load_wh;
        let busiest = self.slot_load_wh.iter().copied().fold(0.0f64, f64::max);
        let cap = (params.max_loss_fraction * load_wh.abs().max(self.typical_load_wh).max(busiest))
            .max(self.seen_residual_wh);
        let offset = self
            .slot_offsets_wh
            .get(usize::from(slot) % SLOTS)
            .copied()
            .unwrap_or(0.0);
        (base + offset).min(cap)
    }

    /// How far the expected residual may be off because the load departs from the node's
    /// usual load in `slot` (`slope_uncertainty` of the departure), Wh. Such an error is the
    /// same from one window to the next while the load stays unusual: a bias, not noise.
    pub fn extrapolation(&self, load_wh: f64, slot: u8, params: &LossParams) -> f64 {
        self.slot_load_wh
            .get(usize::from(slot) % SLOTS)
            .map_or(0.0, |usual| {
                params.slope_uncertainty * (load_wh - usual).abs()
            })
    }

    /// The residual's spread for a load of `load_wh` in `slot`, never below the floors, wider
    /// when the load is unusual for the time of day.
    pub fn sigma(&self, load_wh: f64, slot: u8, params: &LossParams) -> f64 {
        let extrapolation = self.extrapolation(load_wh, slot, params);
        let slot_sigma = self
            .slot_sigma_wh
            .get(usize::from(slot) % SLOTS)
            .copied()
            .unwrap_or(0.0);
        let learned = (self.sigma_wh.max(slot_sigma) + self.sigma_fraction * load_wh.abs())
            .hypot(extrapolation);
        learned
            .max(params.sigma_floor_fraction * load_wh.abs())
            .max(params.sigma_floor_wh)
    }
}

/// Pseudo-windows of prior weight on the loss slope: with few days of history the slope stays
/// near the prior loss share; with weeks of varied load the node's own data decide.
const SLOPE_PRIOR_WINDOWS: f64 = 12.0;

/// A fitted slope pair and half-hour intercepts.
#[derive(Debug, Default)]
struct SlotFit {
    linear: f64,
    quadratic: f64,
    intercepts: Vec<f64>,
    level: f64,
    slot_load: Vec<f64>,
}

impl SlotFit {
    fn predict(&self, s: &ResidualSample) -> f64 {
        self.intercepts[usize::from(s.slot) % SLOTS]
            + self.linear * s.load_wh
            + self.quadratic * s.load_wh * s.load_wh
    }

    fn solve(samples: &[&ResidualSample], weights: &[f64], params: &LossParams) -> SlotFit {
        // Within-slot means of load, load² and residual.
        let scale = median(&samples.iter().map(|s| s.load_wh).collect::<Vec<_>>()).max(1.0);
        let mut sums = vec![[0.0f64; 4]; SLOTS];
        for (s, w) in samples.iter().zip(weights) {
            let x = s.load_wh / scale;
            let slot = &mut sums[usize::from(s.slot) % SLOTS];
            slot[0] += w;
            slot[1] += w * x;
            slot[2] += w * x * x;
            slot[3] += w * s.residual_wh;
        }
        let mean = |slot: usize, k: usize| {
            if sums[slot][0] > 0.0 {
                sums[slot][k] / sums[slot][0]
            } else {
                0.0
            }
        };
        // Normal equations of the demeaned regression, in scaled units.
        let (mut sxx, mut sxq, mut sqq, mut sxy, mut sqy, mut n) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for (s, w) in samples.iter().zip(weights) {
            let slot = usize::from(s.slot) % SLOTS;
            let x = s.load_wh / scale;
            let dx = x - mean(slot, 1);
            let dq = x * x - mean(slot, 2);
            let dy = s.residual_wh - mean(slot, 3);
            sxx += w * dx * dx;
            sxq += w * dx * dq;
            sqq += w * dq * dq;
            sxy += w * dx * dy;
            sqy += w * dq * dy;
            n += w;
        }
        // Ridge towards the prior: linear share = prior loss share (scaled), quadratic = 0, each
        // worth SLOPE_PRIOR_WINDOWS windows of the average within-slot variation.
        let prior_linear = params.prior_loss_fraction * scale;
        let lx = SLOPE_PRIOR_WINDOWS * (sxx / n.max(1.0)).max(1e-9);
        let lq = SLOPE_PRIOR_WINDOWS * (sqq / n.max(1.0)).max(1e-9);
        let (a11, a12, a22) = (sxx + lx, sxq, sqq + lq);
        let (b1, b2) = (sxy + lx * prior_linear, sqy);
        let det = a11 * a22 - a12 * a12;
        let (mut linear, mut quadratic) = if det.abs() > 1e-12 {
            ((b1 * a22 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det)
        } else {
            (prior_linear, 0.0)
        };
        // Back to Wh and kept physical (losses do not shrink as load grows).
        linear /= scale;
        quadratic /= scale * scale;
        linear = linear.clamp(LINEAR_RANGE.0, LINEAR_RANGE.1);
        quadratic = quadratic.max(0.0);
        // Each half hour's intercept: the median of what the slope leaves (the overall level
        // where the half hour has too few windows). Not shrunk: a shrunk intercept under-learns
        // a street-lighting circuit by the shrinkage, a bias the cumulative test would add up.
        let mut by_slot: Vec<Vec<f64>> = vec![Vec::new(); SLOTS];
        for s in samples {
            by_slot[usize::from(s.slot) % SLOTS]
                .push(s.residual_wh - linear * s.load_wh - quadratic * s.load_wh * s.load_wh);
        }
        let all: Vec<f64> = by_slot.iter().flatten().copied().collect();
        let level = median(&all);
        // A half hour seen on fewer than two days borrows its neighbours' windows too: one odd
        // window (the first of a deployment, a meter's outage) must not set an intercept alone.
        let intercepts = (0..SLOTS)
            .map(|slot| {
                let own = &by_slot[slot];
                if own.len() >= 4 {
                    return median(own);
                }
                let around: Vec<f64> = [(slot + SLOTS - 1) % SLOTS, slot, (slot + 1) % SLOTS]
                    .iter()
                    .flat_map(|s| by_slot[*s].iter().copied())
                    .collect();
                if around.len() < params.offset_min_points.max(3) {
                    return level;
                }
                median(&around)
            })
            .collect();
        let slot_load = (0..SLOTS).map(|slot| mean(slot, 1) * scale).collect();
        SlotFit {
            linear,
            quadratic,
            intercepts,
            level,
            slot_load,
        }
    }
}

fn eval_base(base: &[f64; 3], input: f64) -> f64 {
    base[0] + base[1] * input + base[2] * input * input
}

/// The `q` quantile of |values|.
fn quantile_abs(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values
        .iter()
        .map(|x| x.abs())
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// A node's excess, window by window, above a model learned from `samples[..history_end]`
/// only: what the node lost beyond what it used to, judged against a yardstick that a later
/// theft cannot move. `drivers` are the per-window energies of the node's large fed meters
/// (aligned with `samples`): each meter's own error is a share of its own energy, so where a
/// plant or a farm switches on and off the residual moves with that meter, not with the total
/// load; what the loss model leaves is regressed on them (and a constant) over the same
/// history. `None` when
/// that history is too short to learn from.
pub fn excess_over_history(
    samples: &[Option<ResidualSample>],
    drivers: &[&[Option<f64>]],
    history_end: usize,
    params: &LossParams,
) -> Option<Vec<Option<f64>>> {
    let end = history_end.min(samples.len());
    let history: Vec<ResidualSample> = samples[..end].iter().flatten().copied().collect();
    let model = LossModel::fit(&history, params);
    if !model.is_learned() {
        return None;
    }
    let excess: Vec<Option<f64>> = samples
        .iter()
        .map(|s| s.map(|s| s.residual_wh - model.expected(s.load_wh, s.slot, params)))
        .collect();
    // A constant beside the drivers: where a large meter is off, the loss model's
    // compromise between its on and off levels is what is left.
    let row = |i: usize| -> Option<Vec<f64>> {
        std::iter::once(Some(1.0))
            .chain(
                drivers
                    .iter()
                    .map(|d| d.get(i).copied().flatten().filter(|e| e.is_finite())),
            )
            .collect()
    };
    let (rows, y): (Vec<Vec<f64>>, Vec<f64>) =
        (0..end).filter_map(|i| Some((row(i)?, excess[i]?))).unzip();
    let Some(beta) = (!drivers.is_empty() && rows.len() >= params.min_history)
        .then(|| crate::stats::least_squares(&rows, &y, DRIVER_RIDGE))
        .flatten()
    else {
        return Some(excess);
    };
    Some(
        excess
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let e = (*e)?;
                // A window where a driver is unknown keeps the loss model's excess.
                Some(row(i).map_or(e, |r| {
                    e - r.iter().zip(&beta).map(|(x, b)| x * b).sum::<f64>()
                }))
            })
            .collect(),
    )
}

/// Ridge of the drivers' regression, as a share of each scaled column's mean square: enough to
/// keep two meters that always move together from trading huge opposite coefficients.
const DRIVER_RIDGE: f64 = 1e-3;

/// Median absolute deviation from the median.
pub fn mad(values: &[f64]) -> f64 {
    let m = median(values);
    let deviations: Vec<f64> = values.iter().map(|v| (v - m).abs()).collect();
    median(&deviations)
}

/// The median (0 for no values).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Least and largest share of the load the linear term may take: meter bias (an input meter
/// reading low, customer meters reading high) can make it slightly negative; losses do not
/// shrink as load grows.
const LINEAR_RANGE: (f64, f64) = (-0.05, 0.20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lamps_drawing_more_than_a_small_transformers_night_load_are_expected_in_full() {
        // Eleven homes: 300 Wh a window at night, 1,500 in the evening peak; 1,000 Wh of street
        // lighting from 16:00 to 02:00 UTC.
        let mut samples = Vec::new();
        for d in 0..4u64 {
            for w in 0..96u64 {
                let hour = w / 4;
                let load = if (14..20).contains(&hour) {
                    1_500.0
                } else {
                    300.0
                };
                let lamps = if !(2..16).contains(&hour) {
                    1_000.0
                } else {
                    0.0
                };
                let wobble = ((d * 96 + w) * 37 % 11) as f64 - 5.0;
                samples.push(ResidualSample {
                    load_wh: load + wobble,
                    residual_wh: lamps + 0.03 * load + wobble * 0.1,
                    slot: (w / 2) as u8,
                });
            }
        }
        let params = LossParams::default();
        let model = LossModel::fit(&samples, &params);
        assert!(model.is_learned());
        let night = model.expected(300.0, 46, &params);
        assert!(
            (night - 1_009.0).abs() < 60.0,
            "lamps at 23:00 over a 300 Wh load: expected {night}"
        );
        let day = model.expected(300.0, 20, &params);
        assert!(day.abs() < 60.0, "no lamps at 10:00: expected {day}");
    }

    /// A feeder whose load swings over the day, with 0.3 % no-load loss, I²R loss, a meter bias
    /// and street lighting from 18:00 to 01:00 UTC.
    fn history(days: usize) -> Vec<ResidualSample> {
        let mut out = Vec::new();
        let mut seed = 7u64;
        let mut noise = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        for d in 0..days {
            for w in 0..96 {
                let hour = (w / 4) as u8;
                let slot = (w / 2) as u8;
                let phase = (w as f64 / 96.0) * std::f64::consts::TAU;
                let input = 250_000.0
                    * (1.0 + 0.4 * phase.sin())
                    * (0.93 + 0.15 * ((d * 3) % 7) as f64 / 7.0);
                let losses = 600.0 + 0.002 * input + 2.0e-7 * input * input;
                let lighting = if !(1..18).contains(&hour) {
                    1500.0
                } else {
                    0.0
                };
                out.push(ResidualSample {
                    load_wh: input,
                    residual_wh: losses + lighting + 400.0 * noise(),
                    slot,
                });
            }
        }
        out
    }

    #[test]
    fn the_learned_model_explains_losses_and_street_lighting() {
        let p = LossParams::default();
        let samples = history(7);
        let model = LossModel::fit(&samples, &p);
        assert!(model.is_learned());
        let mut worst: f64 = 0.0;
        for s in &samples {
            worst = worst.max((s.residual_wh - model.expected(s.load_wh, s.slot, &p)).abs());
        }
        // Losses swing over 20 kWh per window with the load and lighting adds 1.5 kWh; noise is
        // uniform in ±200 Wh. The model must leave a spread of the noise's order, its worst
        // window within four of its own sigmas (the quadratic term is only partly identifiable
        // from a week whose days differ by a few per cent).
        assert!(model.sigma_wh < 300.0, "sigma {}", model.sigma_wh);
        assert!(
            worst < 4.0 * model.sigma_wh.max(150.0),
            "worst deviation {worst}"
        );
        // Lighting (18:00-01:00) is told from daytime; how it splits between the constant, the
        // load terms and the offsets does not matter (load and hour are collinear here).
        let lit = model.slot_offsets_wh[40] - model.slot_offsets_wh[18];
        assert!(lit > 500.0, "lighting learned: {:?}", model.slot_offsets_wh);
    }

    #[test]
    fn excess_over_history_shows_a_theft_the_history_before_it_never_had() {
        // Ten days; from day 7 on, 2 kWh per window (about 1 % of the load) leaves the node.
        let p = LossParams::default();
        let samples: Vec<Option<ResidualSample>> = history(10)
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                if i >= 7 * 96 {
                    s.residual_wh += 2_000.0;
                }
                Some(s)
            })
            .collect();
        let excess = excess_over_history(&samples, &[], 7 * 96, &p).expect("a week to learn from");
        let mean_of = |r: std::ops::Range<usize>| {
            let v: Vec<f64> = excess[r].iter().flatten().copied().collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        // The days learned from stay near zero; the theft stands out whole, where a model
        // learned from every day would have absorbed part of it.
        assert!(mean_of(0..7 * 96).abs() < 150.0, "{}", mean_of(0..7 * 96));
        let after = mean_of(7 * 96..10 * 96);
        assert!((after - 2_000.0).abs() < 400.0, "theft seen as {after}");
        let all: Vec<ResidualSample> = samples.iter().flatten().copied().collect();
        let adaptive = LossModel::fit(&all, &p);
        let absorbed: f64 = samples[7 * 96..]
            .iter()
            .flatten()
            .map(|s| s.residual_wh - adaptive.expected(s.load_wh, s.slot, &p))
            .sum::<f64>()
            / (3 * 96) as f64;
        assert!(absorbed < after, "adaptive {absorbed}, frozen {after}");
        // Too little history: nothing to judge against.
        assert!(excess_over_history(&samples, &[], 10, &p).is_none());
    }

    #[test]
    fn a_large_meter_switching_on_and_off_is_regressed_out_of_the_excess() {
        // A feeder of homes (about 40 kWh a window) and a farm of 250 kWh a window that runs
        // some days and not others; the farm's meter reads 1 % low, so the feeder's residual
        // moves by 2.5 kWh a window with it. From day 10, 500 Wh a window is stolen.
        let p = LossParams::default();
        let mut state = 7u64;
        let mut noise = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let days = 14;
        let mut samples = Vec::new();
        let mut farm = Vec::new();
        for d in 0..days {
            let running = (d * 5 + 3) % 7 < 4;
            for w in 0..96 {
                let slot = (w / 2) as u8;
                let phase = (w as f64 / 96.0) * std::f64::consts::TAU;
                let homes = 40_000.0 * (1.0 + 0.4 * phase.sin());
                let farm_true = if running { 250_000.0 } else { 0.0 };
                let farm_read = 0.99 * farm_true;
                let load = homes + farm_read;
                let theft = if d >= 10 { 500.0 } else { 0.0 };
                let residual = 300.0
                    + 1.0e-7 * load * load
                    + (farm_true - farm_read)
                    + theft
                    + 100.0 * noise();
                samples.push(Some(ResidualSample {
                    load_wh: load,
                    residual_wh: residual,
                    slot,
                }));
                farm.push(Some(farm_read));
            }
        }
        let history_end = 10 * 96;
        let spread_after = |excess: &[Option<f64>]| {
            let v: Vec<f64> = excess[history_end..].iter().flatten().copied().collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            (
                m,
                (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt(),
            )
        };
        let plain = excess_over_history(&samples, &[], history_end, &p).expect("learned");
        let with_farm =
            excess_over_history(&samples, &[farm.as_slice()], history_end, &p).expect("learned");
        let (m0, s0) = spread_after(&plain);
        let (m1, s1) = spread_after(&with_farm);
        assert!(
            (m1 - 500.0).abs() < 150.0,
            "theft seen as {m1} (plain {m0})"
        );
        // What the half-hour slope cannot follow of a load that jumps six-fold remains, but
        // the farm's own switching no longer sets the spread.
        assert!(
            s1 < 0.67 * s0,
            "spread {s1} with the farm's meter, {s0} without"
        );
    }

    #[test]
    fn a_few_diverted_windows_do_not_pull_the_model_up() {
        let p = LossParams::default();
        let mut samples = history(7);
        for s in samples.iter_mut().step_by(10) {
            s.residual_wh += 20_000.0; // 8 % diverted in one window out of ten
        }
        let clean = LossModel::fit(&history(7), &p);
        let dirty = LossModel::fit(&samples, &p);
        let at = 250_000.0;
        let shift = dirty.expected(at, 12, &p) - clean.expected(at, 12, &p);
        assert!(shift.abs() < 800.0, "shift {shift}");
    }

    #[test]
    fn without_history_the_prior_is_wide_and_losses_are_capped() {
        let p = LossParams::default();
        let model = LossModel::fit(&history(0), &p);
        assert!(!model.is_learned());
        assert!((model.expected(10_000.0, 3, &p) - 600.0).abs() < 1e-9);
        assert!((model.sigma(10_000.0, 3, &p) - 1000.0).abs() < 1e-9);
        let absurd = LossModel {
            linear: 0.9,
            ..LossModel::prior(&p)
        };
        let absurd = LossModel {
            linear: 1.5,
            ..absurd
        };
        assert!((absurd.expected(10_000.0, 3, &p) - 10_000.0).abs() < 1e-9);
    }

    #[test]
    fn an_unusual_load_is_extrapolated_with_a_physical_slope() {
        // A feeder whose farm runs every night: 270 kWh per window at night, losses 3.7 %.
        // One night the farm is off (175 kWh): the expected residual must follow the load, not
        // a slope that only made sense across the day.
        let p = LossParams::default();
        let mut samples = Vec::new();
        for d in 0..3 {
            for w in 0..96usize {
                let night = w < 24;
                let load =
                    if night { 270_000.0 } else { 120_000.0 } + 1000.0 * ((w * 7 + d) % 5) as f64;
                samples.push(ResidualSample {
                    load_wh: load,
                    residual_wh: 500.0 + 0.037 * load + if w % 48 > 40 { 1200.0 } else { 0.0 },
                    slot: (w / 2) as u8,
                });
            }
        }
        let model = LossModel::fit(&samples, &p);
        let expected = model.expected(175_000.0, 5, &p);
        let truth = 500.0 + 0.037 * 175_000.0;
        assert!(
            (expected - truth).abs() < 0.15 * truth,
            "expected {expected}, truth {truth}: {model:?}"
        );
    }

    #[test]
    fn a_flat_load_still_fits() {
        let p = LossParams::default();
        let samples: Vec<ResidualSample> = (0..200)
            .map(|i| ResidualSample {
                load_wh: 100_000.0,
                residual_wh: 3000.0 + (i % 5) as f64,
                slot: (i % 48) as u8,
            })
            .collect();
        let model = LossModel::fit(&samples, &p);
        assert!((model.expected(100_000.0, 5, &p) - 3002.0).abs() < 5.0);
    }
}
