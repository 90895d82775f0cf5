//! A meter's high plateaus and the features that tell a rig from the loads that look like one.
//!
//! A rig adds a constant power to whatever the premises draw. In hourly power that shows as a
//! plateau: most hours sit in a narrow band just above a floor, the floor never moves from one
//! day to the next, and the daily cycle is only the household's few hundred watts on top.
//! Heating is high and flat-ish too, but it is multiplicative and weather-driven: it moves with
//! the outdoor temperature within the day and from day to day, and drops at night.

use crate::hourly::StepSeries;
use crate::stats::{mean, median, quantile, std_dev};

/// A run of hours at or above a plateau, in step indices of the profile's [`StepSeries`].
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Run {
    /// First step at the plateau.
    pub first: usize,
    /// Last step at the plateau.
    pub last: usize,
}

/// The plateau level: the centre of the densest band of relative half-width `band` among the
/// hours at or above `min_level_w` (the hours a rig could explain). `None` with fewer than
/// `min_hours` such hours.
pub(super) fn plateau_level(
    power_w: &[Option<f64>],
    min_level_w: f64,
    band: f64,
    min_hours: usize,
) -> Option<f64> {
    let mut logs: Vec<f64> = power_w
        .iter()
        .flatten()
        .filter(|p| **p >= min_level_w && **p > 0.0)
        .map(|p| p.ln())
        .collect();
    if logs.len() < min_hours.max(1) {
        return None;
    }
    logs.sort_by(f64::total_cmp);
    let width = (1.0 + band).ln() - (1.0 - band).max(1e-9).ln();
    let (mut best, mut best_range, mut j) = (0, (0, 0), 0);
    for i in 0..logs.len() {
        while j < logs.len() && logs[j] - logs[i] <= width {
            j += 1;
        }
        if j - i > best {
            best = j - i;
            best_range = (i, j);
        }
    }
    median(&logs[best_range.0..best_range.1]).map(f64::exp)
}

/// Runs of steps whose power is at least `floor_w`, bridging gaps (steps below the floor or
/// unknown) of at most `max_gap` steps: a rig's outage or reboot does not end its condition.
pub(super) fn runs(power_w: &[Option<f64>], from: usize, floor_w: f64, max_gap: usize) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for (i, p) in power_w.iter().enumerate().skip(from) {
        if !p.is_some_and(|p| p >= floor_w) {
            continue;
        }
        match out.last_mut() {
            Some(run) if i - run.last <= max_gap + 1 => run.last = i,
            _ => out.push(Run { first: i, last: i }),
        }
    }
    out
}

/// What a plateau looks like over a run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Features {
    /// Mean power over the run's known steps, W.
    pub mean_w: f64,
    /// Share of known steps within the band around the plateau.
    pub near_share: f64,
    /// Share of known steps at or above the band's floor.
    pub floor_share: f64,
    /// Mean of the 12 highest hours of the run's typical day (medians per hour of the day) over
    /// the mean of the 12 lowest.
    pub cycle_ratio: f64,
    /// Day-to-day variation: standard deviation over mean of the daily medians.
    pub day_cv: f64,
    /// Mean power over the 95th percentile of the windows' power.
    pub load_factor: f64,
    /// Known steps in the run.
    pub known_steps: usize,
}

/// The features of `run` around plateau `level_w` with relative half-width `band`. `shape`
/// holds the steps' median power (for the shape), `mean_w` their mean power (for energy),
/// `window_power_w` the windows' power (for the load factor).
pub(super) fn features(
    shape: &StepSeries,
    mean_w: &[Option<f64>],
    run: &Run,
    level_w: f64,
    band: f64,
    window_power_w: &[f64],
) -> Option<Features> {
    let steps = shape;
    let idx: Vec<usize> = (run.first..=run.last)
        .filter(|i| steps.power_w[*i].is_some())
        .collect();
    let values: Vec<f64> = idx.iter().filter_map(|i| steps.power_w[*i]).collect();
    let known = values.len();
    let means: Vec<f64> = idx
        .iter()
        .filter_map(|i| mean_w.get(*i).copied().flatten())
        .collect();
    if known == 0 || means.is_empty() {
        return None;
    }
    let near = values
        .iter()
        .filter(|p| (*p / level_w - 1.0).abs() <= band)
        .count();
    let floor = values
        .iter()
        .filter(|p| **p >= level_w * (1.0 - band))
        .count();

    // The typical day: per step of the UTC day, the median over the run's days (an outage
    // or a kettle on one day does not make a cycle).
    let per_day = steps.per_day();
    let mut by_slot: Vec<Vec<f64>> = vec![Vec::new(); per_day];
    for i in &idx {
        if let Some(p) = steps.power_w[*i] {
            by_slot[steps.slot_of_day(*i)].push(p);
        }
    }
    let mut slots: Vec<f64> = by_slot.iter().filter_map(|v| median(v)).collect();
    slots.sort_by(f64::total_cmp);
    let half = slots.len() / 2;
    let cycle_ratio = match (mean(&slots[..half]), mean(&slots[slots.len() - half..])) {
        (Some(low), Some(high)) if low > 0.0 && half > 0 => high / low,
        _ => f64::INFINITY,
    };

    // Day-to-day: medians of consecutive whole days from the run's start.
    let medians: Vec<f64> = (run.first..=run.last)
        .collect::<Vec<_>>()
        .chunks_exact(per_day)
        .filter_map(|day| {
            let v: Vec<f64> = day.iter().filter_map(|i| steps.power_w[*i]).collect();
            (v.len() * 4 >= per_day * 3).then(|| median(&v)).flatten()
        })
        .collect();
    let day_cv = match (std_dev(&medians), mean(&medians)) {
        (Some(sd), Some(m)) if m > 0.0 => sd / m,
        _ => f64::INFINITY,
    };

    let windows: Vec<f64> = idx
        .iter()
        .flat_map(|i| steps.windows(*i))
        .filter_map(|w| window_power_w.get(w).copied())
        .filter(|p| p.is_finite())
        .collect();
    let load_factor = match (mean(&windows), quantile(&windows, 0.95)) {
        (Some(m), Some(p95)) if p95 > 0.0 => m / p95,
        _ => 0.0,
    };
    Some(Features {
        mean_w: means.iter().sum::<f64>() / means.len() as f64,
        near_share: near as f64 / known as f64,
        floor_share: floor as f64 / known as f64,
        cycle_ratio,
        day_cv,
        load_factor,
        known_steps: known,
    })
}
