//! Hours of nothing, every day (Jokar h2): a device zeroes the register for a stretch of each
//! day (at least four hours) and lets it count normally otherwise.
//!
//! A household always draws something: a fridge, a router, standby. A meter whose week before
//! never read zero for even half that long, and that from some day on reads exactly zero for
//! hours on most days while the rest of each such day keeps its usual level, is not a family
//! away (a home left empty reads low all day, not zero for part of it and normal otherwise) nor
//! a home switched off at the main breaker (zero all day). The energy is what the meter
//! usually reports over the zeroed windows. Its own readings are the evidence, wherever it is
//! balanced: this is how h2 is caught under a node whose balance cannot see a few kWh a day.
//! Known confounder: a rooftop solar installation behind an import-only register reads zero
//! at midday on sunny days; one installed within the profile's weeks looks like this.

use serde_json::json;

use super::{daily_sums, day_start, kwh, on_meter, TamperParams};
use crate::finding::Finding;
use crate::profile::MeterProfile;
use crate::stats::{mean, round};

/// Share of its usual energy the rest of a zeroed day must keep (a home away reads low all day).
const REST_OF_DAY_SHARE: f64 = 0.5;
/// Hours of a zeroed day that must still count (a home switched off reads zero all day).
const REST_OF_DAY_HOURS: f64 = 2.0;

/// Maximal runs of windows read as exactly zero: (first window, length).
fn zero_runs_of(energy: &[Option<f64>]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, e) in energy.iter().enumerate() {
        match (matches!(e, Some(v) if *v <= 0.0), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i - s));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, energy.len() - s));
    }
    runs
}

/// Daily zero runs on `p` (see the module documentation).
pub(super) fn zero_runs(p: &MeterProfile, params: &TamperParams) -> Vec<Finding> {
    let per_day = p.spec.per_day().max(1) as usize;
    let window_hours = p.spec.seconds.max(1) as f64 / 3600.0;
    let min_run = ((params.min_zero_hours / window_hours).ceil() as usize).max(2);
    let baseline = params.baseline_days.max(2) as usize;
    let (first, daily) = daily_sums(p, &p.energy_wh, params.min_day_coverage);
    let days = daily.len();
    if days <= baseline {
        return Vec::new();
    }
    let day = |d: usize| &p.energy_wh[first + d * per_day..first + (d + 1) * per_day];
    // Runs by the day they start in (a device's stretch may cross midnight).
    let runs: Vec<(usize, usize, usize)> = zero_runs_of(&p.energy_wh)
        .into_iter()
        .filter(|&(start, _)| start >= first && start < first + days * per_day)
        .map(|(start, len)| ((start - first) / per_day, (start - first) % per_day, len))
        .collect();
    // The baseline week: never zero for half the shortest run, and its usual energy per window.
    if runs
        .iter()
        .any(|&(d, _, len)| d < baseline && len * 2 >= min_run)
    {
        return Vec::new();
    }
    let usual: Vec<f64> = (0..per_day)
        .map(|j| {
            let v: Vec<f64> = (0..baseline).filter_map(|d| day(d)[j]).collect();
            mean(&v).unwrap_or(0.0)
        })
        .collect();
    // Windows inside a long zero run.
    let mut zero = vec![false; p.energy_wh.len()];
    for &(d, start, len) in &runs {
        if len >= min_run {
            let from = first + d * per_day + start;
            for z in zero.iter_mut().skip(from).take(len) {
                *z = true;
            }
        }
    }
    // Days after the baseline with such windows, and the rest of the day (at least
    // REST_OF_DAY_HOURS of it) at its usual level: (day, first zero window of the day, zero
    // windows, usual energy of those windows).
    let min_rest = (REST_OF_DAY_HOURS / window_hours).ceil() as usize;
    let zeroed: Vec<(usize, usize, usize, f64)> = (baseline..days)
        .filter_map(|d| {
            let at = |j: usize| first + d * per_day + j;
            let zeroes: Vec<usize> = (0..per_day).filter(|&j| zero[at(j)]).collect();
            let start = *zeroes.first()?;
            let rest: Vec<usize> = (0..per_day).filter(|&j| !zero[at(j)]).collect();
            let reported: f64 = rest.iter().filter_map(|&j| day(d)[j]).sum();
            let expected: f64 = rest.iter().map(|&j| usual[j]).sum();
            let hidden: f64 = zeroes.iter().map(|&j| usual[j]).sum();
            (rest.len() >= min_rest
                && expected > 0.0
                && reported >= REST_OF_DAY_SHARE * expected
                && hidden > 0.0)
                .then_some((d, start, zeroes.len(), hidden))
        })
        .collect();
    let Some(&(first_day, first_start, _, _)) = zeroed.first() else {
        return Vec::new();
    };
    let since = days - first_day;
    if zeroed.len() < params.min_zero_days.max(1) as usize || zeroed.len() * 2 < since {
        return Vec::new();
    }
    let (last_day, last_start, last_len, _) = zeroed[zeroed.len() - 1];
    // Over when the last two days kept counting.
    let ended = last_day + 2 < days;
    let energy: f64 = zeroed.iter().map(|z| z.3).sum();
    let hours: Vec<serde_json::Value> = zeroed
        .iter()
        .map(|&(d, start, len, hidden)| {
            json!({
                "day_start": day_start(p, first, d),
                "zero_from": p.window(first + d * per_day + start).start,
                "zero_hours": round(len as f64 * window_hours, 2),
                "usual_kwh_in_those_hours": kwh(hidden),
            })
        })
        .collect();
    vec![Finding {
        started_at: p.window(first + first_day * per_day + first_start).start,
        ended_at: ended.then(|| {
            p.window(first + last_day * per_day + last_start + last_len)
                .start
        }),
        energy_wh: energy,
        score: zeroed.len() as f64,
        confidence: 0.75,
        evidence: json!({
            "signal": "daily_zero_runs",
            "why": "from some day on the meter reads exactly nothing for hours on most days, while the rest of each such day keeps its usual level; the week before it never read nothing for even half as long (Jokar h2: a device zeroing the register for part of the day). Energy: what the meter usually reports over the zeroed hours. A rooftop solar installation behind an import-only register can look the same.",
            "score": "zeroed_days",
            "zeroed_days": zeroed.len(),
            "days_since_first": since,
            "days": hours,
            "thresholds": {
                "min_zero_hours": params.min_zero_hours,
                "min_zero_days": params.min_zero_days,
                "baseline_days": params.baseline_days,
                "rest_of_day_share": REST_OF_DAY_SHARE,
                "rest_of_day_hours": REST_OF_DAY_HOURS,
            },
        }),
        ..on_meter(p)
    }]
}
