//! Tampering that moves no daily energy and only shows in the shape of a meter's day.
//!
//! - A flat line at the daily mean (Jokar h5): whole days of constant readings, the level
//!   changing from one day to the next (each day is reported at its own mean). An empty
//!   home's standby can be smooth for hours, but it ramps with the day and sits far below
//!   the meter's usual level; a constant load is flat for days at one level; a bridged data
//!   gap is flat for at most the 6 hours the service bridges.
//! - A day reversed in time (Jokar h6): from some day on, each day fits the meter's usual
//!   day (the days just before) mirrored about some hour much better than the usual day
//!   itself, while before it the usual day fitted. The mirror's axis is unknown (the local
//!   noon in UTC, or whatever the device uses), so all 24 are tried, and the evidence must be
//!   strong and hold on most days to count. A reversal only reorders the hours: the reversed
//!   days keep the usual days' energy (within `reversal_level_tolerance`). Days are compared
//!   less their straight-line drift:
//!   a home heated electrically follows the weather through the day, and a week of days
//!   cooling mirrors a week of days warming without any device.

use serde_json::json;

use super::{on_meter, TamperParams};
use crate::finding::Finding;
use crate::hourly::{mean_day, StepSeries};
use crate::profile::MeterProfile;
use crate::stats::{correlation, mean, median, round, std_dev};

/// Longest flat run that is still one reported day, hours: two days at nearly the same mean
/// merge into one run, longer is a constant load.
const MAX_FLAT_RUN_HOURS: f64 = 50.0;

/// Flat lines at the daily mean.
pub(super) fn flat_lines(p: &MeterProfile, params: &TamperParams) -> Vec<Finding> {
    let n = p.energy_wh.len();
    let window_hours = p.spec.seconds.max(1) as f64 / 3600.0;
    let min_windows = ((params.min_flat_hours / window_hours).ceil() as usize).max(2);
    let max_windows = (MAX_FLAT_RUN_HOURS / window_hours) as usize;
    // Maximal runs of positive readings within a band: constant, not a slow ramp.
    let mut runs: Vec<(usize, usize, f64)> = Vec::new();
    let mut i = 0;
    while i < n {
        let Some(first) = p.energy_wh[i].filter(|e| *e > 0.0) else {
            i += 1;
            continue;
        };
        let (mut low, mut high, mut sum) = (first, first, first);
        let mut j = i + 1;
        while let Some(e) = p.energy_wh.get(j).copied().flatten() {
            let (lo, hi) = (low.min(e), high.max(e));
            let level = (sum + e) / (j + 1 - i) as f64;
            let band = params
                .flat_tolerance_wh
                .max(params.flat_tolerance_share * level);
            if e <= 0.0 || hi - lo > band {
                break;
            }
            (low, high, sum) = (lo, hi, sum + e);
            j += 1;
        }
        if j - i >= min_windows {
            runs.push((i, j, sum / (j - i) as f64));
        }
        i = j.max(i + 1);
    }
    // The meter's usual level: the median of its daily means.
    let per_day = p.spec.per_day().max(1) as usize;
    let daily: Vec<f64> = p
        .energy_wh
        .chunks(per_day)
        .filter_map(|d| mean(&d.iter().flatten().copied().collect::<Vec<_>>()))
        .collect();
    let Some(usual_wh) = median(&daily) else {
        return Vec::new();
    };
    let runs: Vec<(usize, usize, f64)> = runs
        .into_iter()
        .filter(|r| r.1 - r.0 <= max_windows && r.2 >= params.min_flat_level_share * usual_wh)
        .collect();
    // Runs a window or two apart (a new day's level) are one condition.
    let mut groups: Vec<Vec<(usize, usize, f64)>> = Vec::new();
    for r in runs {
        match groups.last_mut() {
            Some(g) if g.last().is_some_and(|l| r.0 <= l.1 + 2) => g.push(r),
            _ => groups.push(vec![r]),
        }
    }
    // Today's flat day is not over: a flat tail reaching the end of the data continues the
    // condition before it.
    let mut tail_start = n;
    while tail_start > 1
        && matches!(
            (p.energy_wh[tail_start - 1], p.energy_wh[tail_start - 2]),
            (Some(a), Some(b)) if a > 0.0 && (a - b).abs() <= params.flat_tolerance_wh.max(params.flat_tolerance_share * a)
        )
    {
        tail_start -= 1;
    }
    if let Some(g) = groups.last_mut() {
        if let Some(l) = g.last().copied() {
            if tail_start.saturating_sub(1) <= l.1 + 2 && l.1 < n && tail_start < n {
                let level = mean(
                    &p.energy_wh[tail_start - 1..n]
                        .iter()
                        .flatten()
                        .copied()
                        .collect::<Vec<_>>(),
                )
                .unwrap_or(0.0);
                g.push((tail_start - 1, n, level));
            }
        }
    }
    groups
        .into_iter()
        // One flat day is a coincidence or an estimate; h5 reports every day at its mean,
        // and the days' means differ.
        .filter(|g| {
            let distinct = g.windows(2).any(|w| {
                (w[0].2 - w[1].2).abs()
                    > params
                        .flat_tolerance_wh
                        .max(params.flat_tolerance_share * w[0].2)
            });
            g.len() >= 2 && distinct
        })
        .filter_map(|g| {
            let (first, last) = (g.first()?.0, g.last()?.1);
            let hours: f64 = g.iter().map(|r| (r.1 - r.0) as f64 * window_hours).sum();
            let runs_json: Vec<serde_json::Value> = g
                .iter()
                .take(31)
                .map(|r| {
                    json!({
                        "start": p.window(r.0).start,
                        "hours": round((r.1 - r.0) as f64 * window_hours, 2),
                        "level_w": (r.2 / window_hours).round(),
                    })
                })
                .collect();
            Some(Finding {
                started_at: p.window(first).start,
                ended_at: (last + 2 < n).then(|| p.window(last).start),
                energy_wh: 0.0,
                score: round(hours, 2),
                confidence: 0.7,
                evidence: json!({
                    "signal": "flat_line_at_usual_level",
                    "why": "whole days of identical readings at about the meter's usual level, each day at its own level (Jokar h5: a day reported at its mean). Moves no daily energy: it flags a device, not a loss. Estimated readings filled in by a head-end look the same.",
                    "score": "flat_hours",
                    "flat_hours": round(hours, 2),
                    "usual_power_w": (usual_wh / window_hours).round(),
                    "runs": runs_json,
                    "thresholds": {
                        "min_flat_hours": params.min_flat_hours,
                        "min_flat_level_share": params.min_flat_level_share,
                        "flat_tolerance_wh": params.flat_tolerance_wh,
                        "flat_tolerance_share": params.flat_tolerance_share,
                    },
                }),
                ..on_meter(p)
            })
        })
        .collect()
}

/// The strongest reversal found: (t, axis, onset day, mean gain, gains from the reference's
/// first day, that first day).
type Reversal = (f64, usize, usize, f64, Vec<Option<f64>>, usize);

/// Days reversed in time against the meter's usual day.
/// A day less its least-squares straight line over the day's steps.
fn detrended(day: &[f64]) -> Vec<f64> {
    let n = day.len() as f64;
    let mid = (n - 1.0) / 2.0;
    let spread: f64 = (0..day.len()).map(|i| (i as f64 - mid).powi(2)).sum();
    let level = day.iter().sum::<f64>() / n.max(1.0);
    let slope = if spread > 0.0 {
        day.iter()
            .enumerate()
            .map(|(i, v)| (i as f64 - mid) * (v - level))
            .sum::<f64>()
            / spread
    } else {
        0.0
    };
    day.iter()
        .enumerate()
        .map(|(i, v)| v - level - slope * (i as f64 - mid))
        .collect()
}

pub(super) fn reversal(p: &MeterProfile, params: &TamperParams) -> Vec<Finding> {
    let steps = StepSeries::of(p);
    let per_day = steps.per_day();
    if per_day < 12 {
        return Vec::new();
    }
    let whole = steps.whole_days();
    let days: Vec<Option<Vec<f64>>> = whole
        .days
        .iter()
        .map(|d| d.as_deref().map(detrended))
        .collect();
    let n = days.len();
    let reference_days = params.reversal_reference_days.max(2) as usize;
    let min_after = params.min_reversal_days.max(1) as usize;
    let mut best: Option<Reversal> = None;
    for k in reference_days..=n.saturating_sub(min_after) {
        // The usual day: the days just before the candidate onset (a fixed stretch, so that
        // the seasons' slow drift of a day's shape does not look like a reversal).
        let from = k.saturating_sub(reference_days);
        let known: Vec<&Vec<f64>> = days[from..k].iter().flatten().collect();
        if known.len() * 4 < reference_days * 3 {
            continue;
        }
        let reference = mean_day(&known, per_day);
        let direct: Vec<Option<f64>> = days[from..]
            .iter()
            .map(|d| correlation(d.as_ref()?, &reference))
            .collect();
        // Cheap screen: a reversal makes the days after fit the usual day much worse.
        let (before_fit, after_fit) = (
            mean(
                &direct[..k - from]
                    .iter()
                    .flatten()
                    .copied()
                    .collect::<Vec<_>>(),
            ),
            mean(
                &direct[k - from..]
                    .iter()
                    .flatten()
                    .copied()
                    .collect::<Vec<_>>(),
            ),
        );
        if !matches!((before_fit, after_fit), (Some(b), Some(a)) if a < b - 0.3) {
            continue;
        }
        for axis in 0..per_day {
            let mirror: Vec<f64> = detrended(
                &(0..per_day)
                    .map(|h| reference[(axis + per_day - h) % per_day])
                    .collect::<Vec<_>>(),
            );
            // A day about symmetric around this axis: reversing it changes nothing.
            if !matches!(correlation(&reference, &mirror), Some(c) if c <= 0.5) {
                continue;
            }
            let gains: Vec<Option<f64>> = days[from..]
                .iter()
                .zip(&direct)
                .map(|(d, c)| Some(correlation(d.as_ref()?, &mirror)? - (*c)?))
                .collect();
            let before: Vec<f64> = gains[..k - from].iter().flatten().copied().collect();
            let after: Vec<f64> = gains[k - from..].iter().flatten().copied().collect();
            // Most reversed days fit the mirror better (a day away from home fits neither).
            let fitting = after.iter().filter(|g| **g > 0.0).count();
            if before.len() < 2 || after.len() < min_after || fitting * 5 < after.len() * 4 {
                continue;
            }
            let (Some(mb), Some(ma)) = (mean(&before), mean(&after)) else {
                continue;
            };
            // And fit the mirror well, not just less badly (a flat or chaotic day fits
            // neither, and a mirror then wins by chance).
            let mirror_fit: Vec<f64> = days[k..]
                .iter()
                .filter_map(|d| correlation(d.as_ref()?, &mirror))
                .collect();
            if mean(&mirror_fit).is_some_and(|f| f < 0.3) {
                continue;
            }
            let var = |v: &[f64]| std_dev(v).unwrap_or(0.0).powi(2).max(0.01);
            let t = (ma - mb)
                / (var(&before) / before.len() as f64 + var(&after) / after.len() as f64).sqrt();
            if ma >= params.min_reversal_gain
                && t >= params.reversal_t
                && !matches!(&best, Some(b) if b.0 >= t)
            {
                best = Some((t, axis, k, ma, gains, from));
            }
        }
    }
    let Some((t, axis, k, gain, gains, from)) = best else {
        return Vec::new();
    };
    // A reversal only reorders a day's hours: its energy stays the usual days'. A home whose
    // routine changed (a family away, a cold spell) can fit a mirrored week by its drift.
    let level = |range: std::ops::Range<usize>| {
        median(
            &whole.days[range]
                .iter()
                .flatten()
                .filter_map(|d| mean(d))
                .collect::<Vec<_>>(),
        )
    };
    let least = 1.0 - params.reversal_level_tolerance.clamp(0.0, 0.99);
    if !matches!((level(k..n), level(from..k)), (Some(a), Some(b)) if b > 0.0 && a >= least * b && a * least <= b)
    {
        return Vec::new();
    }
    // The onset placed on the first day that fits the mirror better (the strongest t may
    // have taken a normal day into the "after" side), and the end after the last day that
    // fits it by half the gain.
    let k = (k..n)
        .find(|d| gains[d - from].is_some_and(|g| g > 0.0))
        .unwrap_or(k);
    let last = (k..n)
        .rev()
        .find(|d| gains[d - from].is_some_and(|g| g > 0.5 * gain))
        .unwrap_or(k);
    let at = |d: usize| whole.at(d);
    vec![Finding {
        started_at: at(k),
        ended_at: (last + 2 < n).then(|| at(last + 1)),
        energy_wh: 0.0,
        score: round(t, 2),
        confidence: 0.6,
        evidence: json!({
            "signal": "day_reversed",
            "why": "each day fits the meter's usual day mirrored in time much better than the usual day (Jokar h6). Moves no daily energy: it flags a device, not a loss.",
            "score": "welch_t of the gain in correlation with the mirrored usual day, after against before",
            "mirror_axis_utc_hour": round(axis as f64 * steps.step_hours() / 2.0, 1),
            "mean_gain": round(gain, 3),
            "days_reversed": last + 1 - k,
            "gains_from": at(from),
            "gains": gains.iter().map(|g| g.map(|g| round(g, 3))).collect::<Vec<_>>(),
            "thresholds": {
                "min_reversal_gain": params.min_reversal_gain,
                "reversal_t": params.reversal_t,
                "min_reversal_days": params.min_reversal_days,
            },
        }),
        ..on_meter(p)
    }]
}
