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
    /// The most a node's residual may be, as a share of its load, to count as normal however
    /// the model was learned (default 0.35: technical losses of 3-10 % plus street lighting and
    /// the no-load loss of a lightly loaded transformer): a theft present from the first day
    /// larger than this cannot be learned as normal.
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
            max_loss_fraction: 0.35,
            min_history: 64,
            huber_k: 1.5,
            sigma_floor_fraction: 0.005,
            sigma_floor_wh: 50.0,
            offset_min_points: 2,
            cusum_min_history: 192,
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
        let mut offsets = vec![0.0; SLOTS];
        let mut base = [0.0; 3];
        // Load and time of day are correlated (evening peaks, night troughs), so the calendar
        // offsets and the load terms can trade places; alternating fits with the load terms kept
        // physical (losses grow with load) converge on the split in which the offsets carry
        // what is calendar-driven.
        for _ in 0..6 {
            let adjusted: Vec<(f64, f64)> = usable
                .iter()
                .map(|s| {
                    (
                        s.load_wh,
                        s.residual_wh - offsets[usize::from(s.slot) % SLOTS],
                    )
                })
                .collect();
            base = fit_base(&adjusted, params.huber_k);
            offsets = slot_offsets(&usable, &base, params);
        }
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
        LossModel {
            no_load_wh: base[0],
            linear: base[1],
            quadratic_per_wh: base[2],
            slot_offsets_wh: offsets,
            sigma_wh: sigma,
            sigma_fraction: 0.0,
            samples: usable.len(),
        }
    }

    /// The residual expected for a load of `load_wh` in a window starting in `slot`, capped at
    /// `max_loss_fraction` of the load.
    pub fn expected(&self, load_wh: f64, slot: u8, params: &LossParams) -> f64 {
        let base =
            self.no_load_wh + self.linear * load_wh + self.quadratic_per_wh * load_wh * load_wh;
        let cap = params.max_loss_fraction * load_wh.abs();
        let offset = self
            .slot_offsets_wh
            .get(usize::from(slot) % SLOTS)
            .copied()
            .unwrap_or(0.0);
        (base + offset).min(cap)
    }

    /// The residual's spread for a load of `load_wh`, never below the floors.
    pub fn sigma(&self, load_wh: f64, params: &LossParams) -> f64 {
        let learned = self.sigma_wh + self.sigma_fraction * load_wh.abs();
        learned
            .max(params.sigma_floor_fraction * load_wh.abs())
            .max(params.sigma_floor_wh)
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

/// Fits `r = a + c·I + b·I²` by Huber IRLS, in units scaled by the median input for
/// conditioning. Terms the data cannot identify (a load that barely varies) are left out.
fn fit_base(points: &[(f64, f64)], huber_k: f64) -> [f64; 3] {
    let scale = median(&points.iter().map(|p| p.0).collect::<Vec<_>>()).max(1.0);
    let xs: Vec<f64> = points.iter().map(|p| p.0 / scale).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let spread = {
        let mut sorted = xs.clone();
        sorted.sort_by(f64::total_cmp);
        let q = |f: f64| sorted[((sorted.len() - 1) as f64 * f) as usize];
        q(0.9) - q(0.1)
    };
    // With too little variation in load, the slope terms are not identifiable.
    let terms = if spread < 0.05 {
        1
    } else if spread < 0.3 {
        2
    } else {
        3
    };
    let mut weights = vec![1.0; xs.len()];
    let mut theta = [0.0; 3];
    for _ in 0..12 {
        let Some(solution) = weighted_least_squares(&xs, &ys, &weights, terms) else {
            break;
        };
        theta = solution;
        let residuals: Vec<f64> = xs
            .iter()
            .zip(&ys)
            .map(|(x, y)| y - (theta[0] + theta[1] * x + theta[2] * x * x))
            .collect();
        let s = (1.4826 * mad(&residuals)).max(1e-9);
        for (w, r) in weights.iter_mut().zip(&residuals) {
            let u = r.abs() / s;
            *w = if u <= huber_k { 1.0 } else { huber_k / u };
        }
    }
    physical(
        [theta[0], theta[1] / scale, theta[2] / (scale * scale)],
        points,
    )
}

/// Least and largest share of the load the linear term may take: meter bias (an input meter
/// reading low, customer meters reading high) can make it slightly negative; losses do not
/// shrink as load grows.
const LINEAR_RANGE: (f64, f64) = (-0.05, 0.20);

/// Keeps the load terms physical — the linear share within [`LINEAR_RANGE`], the quadratic
/// (I²R) term non-negative — and refits the constant as the median of what remains.
fn physical(base: [f64; 3], points: &[(f64, f64)]) -> [f64; 3] {
    let linear = base[1].clamp(LINEAR_RANGE.0, LINEAR_RANGE.1);
    let quadratic = base[2].max(0.0);
    if linear == base[1] && quadratic == base[2] {
        return base;
    }
    let rest: Vec<f64> = points
        .iter()
        .map(|(x, y)| y - linear * x - quadratic * x * x)
        .collect();
    [median(&rest), linear, quadratic]
}

/// Solves the weighted normal equations for the first `terms` of (1, x, x²).
fn weighted_least_squares(xs: &[f64], ys: &[f64], w: &[f64], terms: usize) -> Option<[f64; 3]> {
    let mut m = [[0.0f64; 4]; 3];
    for ((x, y), wi) in xs.iter().zip(ys).zip(w) {
        let basis = [1.0, *x, x * x];
        for i in 0..terms {
            for j in 0..terms {
                m[i][j] += wi * basis[i] * basis[j];
            }
            m[i][3] += wi * basis[i] * y;
        }
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..terms {
        let pivot = (col..terms).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-12 {
            return None;
        }
        m.swap(col, pivot);
        for row in 0..terms {
            if row != col {
                let f = m[row][col] / m[col][col];
                let pivot_row = m[col];
                for (k, value) in m[row].iter_mut().enumerate().skip(col) {
                    *value -= f * pivot_row[k];
                }
            }
        }
    }
    let mut out = [0.0; 3];
    for i in 0..terms {
        out[i] = m[i][3] / m[i][i];
    }
    Some(out)
}

/// Robust per-slot offsets of what the base model leaves, shrunk towards zero where few.
fn slot_offsets(samples: &[&ResidualSample], base: &[f64; 3], params: &LossParams) -> Vec<f64> {
    let mut by_hour: Vec<Vec<f64>> = vec![Vec::new(); SLOTS];
    for s in samples {
        by_hour[usize::from(s.slot) % SLOTS].push(s.residual_wh - eval_base(base, s.load_wh));
    }
    by_hour
        .iter()
        .map(|values| {
            if values.len() < params.offset_min_points {
                return 0.0;
            }
            // Shrunk towards zero by one pseudo-window: enough to tame a slot with few points,
            // too little to bias a well-observed one.
            let n = values.len() as f64;
            median(values) * n / (n + 1.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
                let input =
                    250_000.0 * (1.0 + 0.4 * phase.sin()) * (1.0 + 0.05 * (d % 7) as f64 / 7.0);
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
        // Noise is uniform in ±200 Wh; the model should leave little more than that.
        assert!(worst < 400.0, "worst deviation {worst}");
        assert!(model.sigma_wh < 250.0, "sigma {}", model.sigma_wh);
        // Lighting (18:00-01:00) is told from daytime; how it splits between the constant, the
        // load terms and the offsets does not matter (load and hour are collinear here).
        let lit = model.slot_offsets_wh[40] - model.slot_offsets_wh[18];
        assert!(lit > 500.0, "lighting learned: {:?}", model.slot_offsets_wh);
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
        assert!((model.sigma(10_000.0, &p) - 1000.0).abs() < 1e-9);
        let absurd = LossModel {
            linear: 0.9,
            ..LossModel::prior(&p)
        };
        assert!((absurd.expected(10_000.0, 3, &p) - 3500.0).abs() < 1e-9);
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
