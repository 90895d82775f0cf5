//! Tampering that moves no daily energy and only shows in the shape of a meter's day.
//!
//! - A flat line at the daily mean (Jokar h5): consecutive windows reporting the same energy
//!   for half a day or more, at about the meter's usual level, from a meter whose history
//!   moves. An empty home's standby is flat too, but far below the usual level; a bridged data
//!   gap is flat too, but the service bridges at most 6 hours.
//! - A day reversed in time (Jokar h6): each day fits the meter's usual day mirrored about
//!   some hour much better than the usual day itself. The mirror's axis is unknown (it is the
//!   local noon in UTC, or whatever the device uses), so all 24 are tried, and the evidence
//!   must be strong and hold on every day to count.

use serde_json::json;

use super::TamperParams;
use crate::finding::{Finding, Kind};
use crate::hourly::StepSeries;
use crate::profile::MeterProfile;
use crate::stats::{correlation, mean, round, std_dev};

/// Flat lines at the meter's usual level.
pub(super) fn flat_lines(p: &MeterProfile, params: &TamperParams) -> Vec<Finding> {
    let n = p.energy_wh.len();
    let flat_step = |i: usize| -> Option<bool> {
        let (a, b) = (
            p.energy_wh.get(i.checked_sub(1)?).copied()??,
            p.energy_wh[i]?,
        );
        if a <= 0.0 || b <= 0.0 {
            return Some(false);
        }
        Some(
            (a - b).abs()
                <= params
                    .flat_tolerance_wh
                    .max(params.flat_tolerance_share * a.max(b)),
        )
    };
    let window_hours = p.spec.seconds.max(1) as f64 / 3600.0;
    let min_windows = (params.min_flat_hours / window_hours).ceil() as usize;
    // Runs of flat steps, as window ranges.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 1;
    while i < n {
        if flat_step(i) == Some(true) {
            let a = i - 1;
            while i < n && flat_step(i) == Some(true) {
                i += 1;
            }
            if i - a >= min_windows.max(2) {
                runs.push((a, i));
            }
        } else {
            i += 1;
        }
    }
    if runs.is_empty() {
        return Vec::new();
    }
    let in_run = |i: usize| runs.iter().any(|(a, b)| (*a..*b).contains(&i));
    let outside: Vec<f64> = (0..n)
        .filter(|i| !in_run(*i))
        .filter_map(|i| p.energy_wh[i])
        .collect();
    let history_steps: Vec<bool> = (1..n)
        .filter(|i| !in_run(*i) && !in_run(i - 1))
        .filter_map(flat_step)
        .collect();
    let history_flat = if history_steps.is_empty() {
        1.0
    } else {
        history_steps.iter().filter(|f| **f).count() as f64 / history_steps.len() as f64
    };
    let Some(usual_wh) = mean(&outside) else {
        return Vec::new();
    };
    if history_flat > params.max_history_flat_share || history_steps.len() < min_windows * 4 {
        return Vec::new();
    }
    let level = |(a, b): (usize, usize)| {
        mean(
            &p.energy_wh[a..b]
                .iter()
                .flatten()
                .copied()
                .collect::<Vec<_>>(),
        )
        .unwrap_or(0.0)
    };
    let runs: Vec<(usize, usize)> = runs
        .into_iter()
        .filter(|r| level(*r) >= params.min_flat_level_share * usual_wh)
        .collect();
    // Runs a step or two apart (a new day's flat level) are one condition.
    let mut groups: Vec<Vec<(usize, usize)>> = Vec::new();
    for r in runs {
        match groups.last_mut() {
            Some(g) if g.last().is_some_and(|l| r.0 <= l.1 + 2) => g.push(r),
            _ => groups.push(vec![r]),
        }
    }
    // A flat tail reaching the end of the data, too short to count alone, continues the
    // condition before it (today's flat day is not over yet).
    let tail_start = (1..n)
        .rev()
        .take_while(|i| flat_step(*i) == Some(true))
        .last();
    if let (Some(g), Some(t)) = (groups.last_mut(), tail_start) {
        if g.last()
            .is_some_and(|l| t.saturating_sub(1) <= l.1 + 2 && l.1 < n)
        {
            g.push((t - 1, n));
        }
    }
    groups
        .into_iter()
        .filter_map(|g| {
            let (first, last) = (g.first()?.0, g.last()?.1);
            let hours: f64 = g.iter().map(|(a, b)| (b - a) as f64 * window_hours).sum();
            let runs_json: Vec<serde_json::Value> = g
                .iter()
                .take(31)
                .map(|r| {
                    json!({
                        "start": p.window(r.0).start,
                        "hours": round((r.1 - r.0) as f64 * window_hours, 2),
                        "level_w": (level(*r) / window_hours).round(),
                    })
                })
                .collect();
            Some(Finding {
                kind: Kind::MeterTamper,
                region: Some(p.region.clone()),
                node: Some(p.node.clone()),
                meter: Some(p.meter.clone()),
                licence: p.licence.clone(),
                started_at: p.window(first).start,
                ended_at: (last + 2 < n).then(|| p.window(last).start),
                energy_wh: 0.0,
                score: round(hours, 2),
                confidence: if hours >= 48.0 { 0.75 } else { 0.6 },
                suspects: vec![p.meter.to_string()],
                evidence: json!({
                    "signal": "flat_line_at_usual_level",
                    "why": "identical readings for hours at about the meter's usual level, from a meter whose history moves (Jokar h5: a day reported at its mean). Moves no daily energy: it flags a device, not a loss. Estimated readings filled in by a head-end look the same.",
                    "score": "flat_hours",
                    "flat_hours": round(hours, 2),
                    "usual_power_w": (usual_wh / window_hours).round(),
                    "history_flat_share": round(history_flat, 3),
                    "runs": runs_json,
                    "thresholds": {
                        "min_flat_hours": params.min_flat_hours,
                        "min_flat_level_share": params.min_flat_level_share,
                        "max_history_flat_share": params.max_history_flat_share,
                    },
                }),
            })
        })
        .collect()
}

/// Days reversed in time against the meter's usual day.
pub(super) fn reversal(p: &MeterProfile, params: &TamperParams) -> Vec<Finding> {
    let steps = StepSeries::of(p);
    let per_day = steps.per_day();
    if per_day < 12 {
        return Vec::new();
    }
    // Whole UTC days of hourly power.
    let first = (0..steps.power_w.len())
        .find(|i| steps.slot_of_day(*i) == 0)
        .unwrap_or(steps.power_w.len());
    let days: Vec<Option<Vec<f64>>> = steps.power_w[first..]
        .chunks_exact(per_day)
        .map(|d| d.iter().copied().collect::<Option<Vec<f64>>>())
        .collect();
    let n = days.len();
    let baseline = params.baseline_days.max(3) as usize;
    let min_after = params.min_reversal_days.max(1) as usize;
    if n < baseline + min_after {
        return Vec::new();
    }
    let reference: Vec<f64> = (0..per_day)
        .map(|h| {
            mean(
                &days[..baseline]
                    .iter()
                    .flatten()
                    .map(|d| d[h])
                    .collect::<Vec<_>>(),
            )
        })
        .collect::<Option<Vec<f64>>>()
        .unwrap_or_default();
    if reference.len() != per_day {
        return Vec::new();
    }
    let mirrored = |axis: usize| -> Vec<f64> {
        (0..per_day)
            .map(|h| reference[(axis + per_day - h) % per_day])
            .collect()
    };
    // (t, axis, onset, gain, gains per day, misfit)
    #[allow(clippy::type_complexity)]
    let mut best: Option<(f64, usize, usize, f64, Vec<Option<f64>>, f64)> = None;
    for axis in 0..per_day {
        let mirror = mirrored(axis);
        // A day about symmetric around this axis: reversing it changes nothing.
        if !matches!(correlation(&reference, &mirror), Some(c) if c <= 0.5) {
            continue;
        }
        let gains: Vec<Option<f64>> = days
            .iter()
            .map(|d| {
                let d = d.as_ref()?;
                Some(correlation(d, &mirror)? - correlation(d, &reference)?)
            })
            .collect();
        for k in baseline..=n - min_after {
            let before: Vec<f64> = gains[..k].iter().flatten().copied().collect();
            let after: Vec<f64> = gains[k..].iter().flatten().copied().collect();
            // Most reversed days must fit the mirror better (a day away from home fits
            // neither).
            let fitting = after.iter().filter(|g| **g > 0.0).count();
            if before.len() < 3 || after.len() < min_after || fitting * 5 < after.len() * 4 {
                continue;
            }
            let (Some(mb), Some(ma)) = (mean(&before), mean(&after)) else {
                continue;
            };
            let var = |v: &[f64]| std_dev(v).unwrap_or(0.0).powi(2).max(0.01);
            let t = (ma - mb)
                / (var(&before) / before.len() as f64 + var(&after) / after.len() as f64).sqrt();
            if ma < params.min_reversal_gain || t < params.reversal_t {
                continue;
            }
            // Among significant onsets of the best axis, keep the one where the two levels
            // fit the days best: t barely cares on which side of the onset a day falls.
            let misfit: f64 = gains
                .iter()
                .enumerate()
                .filter_map(|(d, g)| g.map(|g| (g - if d < k { mb } else { ma }).powi(2)))
                .sum();
            let better = match &best {
                None => true,
                Some(b) if b.1 != axis => t > b.0,
                Some(b) => misfit < b.5,
            };
            if better {
                let t_axis = best
                    .as_ref()
                    .filter(|b| b.1 == axis)
                    .map_or(t, |b| b.0.max(t));
                best = Some((t_axis, axis, k, ma, gains.clone(), misfit));
            }
        }
    }
    let Some((t, axis, k, gain, gains, _)) = best else {
        return Vec::new();
    };
    // It ends after the last day that still fits the mirror better than by half the gain.
    let last = (k..n)
        .rev()
        .find(|d| gains[*d].is_some_and(|g| g > 0.5 * gain))
        .unwrap_or(k);
    let day0 = steps.time(first);
    let at = |d: usize| day0 + chrono::Duration::days(d as i64);
    vec![Finding {
        kind: Kind::MeterTamper,
        region: Some(p.region.clone()),
        node: Some(p.node.clone()),
        meter: Some(p.meter.clone()),
        licence: p.licence.clone(),
        started_at: at(k),
        ended_at: (last + 2 < n).then(|| at(last + 1)),
        energy_wh: 0.0,
        score: round(t, 2),
        confidence: 0.6,
        suspects: vec![p.meter.to_string()],
        evidence: json!({
            "signal": "day_reversed",
            "why": "each day fits the meter's usual day mirrored in time much better than the usual day (Jokar h6). Moves no daily energy: it flags a device, not a loss.",
            "score": "welch_t of the gain in correlation with the mirrored usual day, after against before",
            "mirror_axis_utc_hour": round(axis as f64 * steps.step_hours() / 2.0, 1),
            "mean_gain": round(gain, 3),
            "days_reversed": last + 1 - k,
            "gains": gains.iter().map(|g| g.map(|g| round(g, 3))).collect::<Vec<_>>(),
            "thresholds": {
                "min_reversal_gain": params.min_reversal_gain,
                "reversal_t": params.reversal_t,
                "min_reversal_days": params.min_reversal_days,
            },
        }),
    }]
}
