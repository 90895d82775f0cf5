//! A day without a shape (Jokar h4: each reading a random share of the day's mean): from some
//! day on, the meter reports less than usual, and its days no longer resemble its usual day
//! nor one another.
//!
//! Every premises has a day: a home's evening and morning, a shop's hours, a heater's night
//! setback. Day after day, an hour's consumption follows that shape (a household's day
//! correlates with its own usual day at about 0.45 hour by hour, and its days with one
//! another as much). A household whose routine changes (night shifts, a new member) gets a new
//! shape, which its days share; a family away leaves the standby, far below the usual level.
//! A device that reports random shares of the day's mean leaves days with no shape at all, at a
//! good part of the usual level, their hours close to one another (the random shares average
//! out within each hour), and takes the rest: that is what is raised, with what the meter
//! usually reports minus what it reported as its energy. It is the meter's own evidence, so it
//! holds wherever the meter balances (under a feeder where a few kWh a day are lost in the
//! balance's noise).
//! Known confounder: a home left empty with a large load the weather drives hour by hour (a
//! heater without a thermostat's schedule) at a quarter or more of its usual use.

use serde_json::json;

use super::{kwh, on_meter, TamperParams};
use crate::finding::Finding;
use crate::hourly::{mean_day, StepSeries};
use crate::profile::MeterProfile;
use crate::stats::{correlation, mean, median, round, std_dev};

/// A day's median change from one window to the next, as a share of its mean, at least: a
/// day reported flat (register rounding aside) does not move, a household's or a random one's
/// moves by a third or more.
const MIN_MOVEMENT: f64 = 0.05;
/// The onset day's correlation with the usual day, at most this multiple of the run's limit.
const ONSET_FIT_FACTOR: f64 = 2.0;

/// A run of days without a shape.
struct Run {
    /// Its first day.
    onset: usize,
    /// Its days with data.
    days: Vec<usize>,
    /// Whether a day at the usual level ended it.
    ended: bool,
    /// The usual week's days' correlation with one another.
    usual_fit: f64,
    /// The run's days' correlation with one another.
    self_fit: f64,
    /// The run's days' correlation with the usual day.
    to_usual: f64,
    /// The run's days' swing over the usual days'.
    swing_ratio: f64,
    /// Usual daily energy, Wh.
    usual_wh: f64,
    /// Usual energy less reported, over the run, Wh.
    hidden_wh: f64,
}

/// Each day's correlation with the mean of the others, averaged (`None` for fewer than 2).
fn mutual_fit(days: &[&Vec<f64>], per_day: usize) -> Option<f64> {
    if days.len() < 2 {
        return None;
    }
    let fits: Vec<f64> = (0..days.len())
        .filter_map(|i| {
            let others: Vec<&Vec<f64>> = days
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, d)| *d)
                .collect();
            correlation(days[i], &mean_day(&others, per_day))
        })
        .collect();
    mean(&fits)
}

/// A day's swing: the spread of its hours over their mean.
fn swing(day: &[f64]) -> Option<f64> {
    let level = mean(day)?;
    (level > 0.0).then(|| std_dev(day).unwrap_or(0.0) / level)
}

/// Days without a shape on `p` (see the module documentation).
pub(super) fn shapeless_days(p: &MeterProfile, params: &TamperParams) -> Vec<Finding> {
    let steps = StepSeries::of(p);
    let per_day = steps.per_day();
    if per_day < 12 {
        return Vec::new();
    }
    let whole = steps.whole_days();
    let (first, days) = (whole.first, &whole.days);
    let energy = |d: &Vec<f64>| d.iter().sum::<f64>() * steps.step_hours();
    // Whether day `d`'s readings move from window to window: a flat line at the day's mean
    // (Jokar h5, another rule's) has no shape either, but hides nothing.
    let moves = |d: usize| {
        let from = first + d * per_day;
        let windows: Vec<f64> = (from..from + per_day)
            .flat_map(|s| steps.windows(s))
            .filter_map(|w| p.energy_wh.get(w).copied().flatten())
            .collect();
        let steps_between: Vec<f64> = windows.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
        matches!(
            (median(&steps_between), mean(&windows)),
            (Some(step), Some(level)) if level > 0.0 && step >= MIN_MOVEMENT * level
        )
    };
    let n = days.len();
    let baseline = params.baseline_days.max(2) as usize;
    let min_days = params.min_shapeless_days.max(2) as usize;
    let max_fit = params.max_shapeless_correlation;
    let run = (baseline..=n.saturating_sub(min_days)).find_map(|k| {
        // The usual day: the week before the onset, with a shape of its own.
        let before: Vec<&Vec<f64>> = days[k - baseline..k].iter().flatten().collect();
        if before.len() * 4 < baseline * 3 {
            return None;
        }
        let usual_fit = mutual_fit(&before, per_day)?;
        if usual_fit < params.min_usual_correlation {
            return None;
        }
        let usual_day = mean_day(&before, per_day);
        let usual_wh = median(&before.iter().map(|d| energy(d)).collect::<Vec<_>>())?;
        if usual_wh <= 0.0 {
            return None;
        }
        // The run from the onset: days below the usual energy by the drop share, above the
        // level of an empty home, their hours close together, moving from window to window;
        // a day without data neither extends nor ends it.
        let usual_swing = median(&before.iter().filter_map(|d| swing(d)).collect::<Vec<_>>())?;
        let low = |d: usize, day: &Vec<f64>| {
            let share = energy(day) / usual_wh;
            share <= 1.0 - params.min_drop_share
                && share >= params.min_shapeless_level_share
                && swing(day).is_some_and(|s| s <= params.max_swing_ratio * usual_swing)
                && moves(d)
        };
        // Its first day without a shape of its own (a normal day that happens to be low is
        // not the onset).
        if !days[k]
            .as_ref()
            .and_then(|d| correlation(d, &usual_day))
            .is_some_and(|c| c <= ONSET_FIT_FACTOR * max_fit)
        {
            return None;
        }
        let mut taken = Vec::new();
        let mut ended = false;
        for (d, day) in days.iter().enumerate().skip(k) {
            match day {
                Some(day) if low(d, day) => taken.push(d),
                Some(_) => {
                    ended = true;
                    break;
                }
                None => {}
            }
        }
        if taken.len() < min_days || taken.first() != Some(&k) {
            return None;
        }
        let run_days: Vec<&Vec<f64>> = taken.iter().filter_map(|&d| days[d].as_ref()).collect();
        let self_fit = mutual_fit(&run_days, per_day)?;
        let to_usual = mean(
            &run_days
                .iter()
                .filter_map(|d| correlation(d, &usual_day))
                .collect::<Vec<_>>(),
        )?;
        if self_fit > max_fit || to_usual > max_fit {
            return None;
        }
        let swing_ratio = median(&run_days.iter().filter_map(|d| swing(d)).collect::<Vec<_>>())?
            / usual_swing.max(1e-9);
        let hidden_wh = run_days.iter().map(|d| usual_wh - energy(d)).sum();
        Some(Run {
            onset: k,
            days: taken,
            ended,
            usual_fit,
            self_fit,
            to_usual,
            swing_ratio,
            usual_wh,
            hidden_wh,
        })
    });
    let Some(run) = run else {
        return Vec::new();
    };
    let last = run.days.last().copied().unwrap_or(run.onset);
    let at = |d: usize| whole.at(d);
    let reported: Vec<serde_json::Value> = run
        .days
        .iter()
        .filter_map(|&d| {
            let day = days[d].as_ref()?;
            Some(json!({ "day_start": at(d), "kwh": kwh(energy(day)) }))
        })
        .collect();
    vec![Finding {
        started_at: at(run.onset),
        ended_at: run.ended.then(|| at(last + 1)),
        energy_wh: run.hidden_wh.max(0.0),
        score: run.days.len() as f64,
        confidence: 0.6,
        evidence: json!({
            "signal": "days_without_shape",
            "why": "from some day on the meter reports less than usual, and its days resemble neither its usual day nor one another, hour by hour, their hours far closer to one another than its usual day's (Jokar h4: each reading a random share of the day's mean). A changed routine keeps a shape of its own; a family away reads the standby. Energy: the usual daily energy minus each such day's. A home left empty with a large load the weather drives hour by hour can look the same.",
            "score": "shapeless_days",
            "shapeless_days": run.days.len(),
            "usual_kwh_a_day": kwh(run.usual_wh),
            "usual_day_self_correlation": round(run.usual_fit, 3),
            "days_self_correlation": round(run.self_fit, 3),
            "days_correlation_with_usual": round(run.to_usual, 3),
            "swing_ratio": round(run.swing_ratio, 3),
            "days": reported,
            "thresholds": {
                "baseline_days": params.baseline_days,
                "min_shapeless_days": params.min_shapeless_days,
                "max_shapeless_correlation": params.max_shapeless_correlation,
                "min_usual_correlation": params.min_usual_correlation,
                "min_drop_share": params.min_drop_share,
                "min_shapeless_level_share": params.min_shapeless_level_share,
                "max_swing_ratio": params.max_swing_ratio,
            },
        }),
        ..on_meter(p)
    }]
}
