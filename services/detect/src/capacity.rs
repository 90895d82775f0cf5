//! Capacity exceeded: a licensed farm drawing more than its registered machines can (DOMAIN.md,
//! point 4), which means machines running that nobody registered.
//!
//! A farm's draw is flat, so its average power over a few hours is a precise measurement. Two
//! rules look at the mean power of every rolling block of `min_duration_hours`:
//! - **level**: above the registered capacity (machines x rated power), giving the farm the
//!   benefit of its meter's accuracy and of a tolerance for what is not machines (cooling,
//!   lighting, network, power supplies drawing a little above their rating);
//! - **step**: above the capacity by less than that tolerance, but reached by a step above
//!   anything the farm drew over the preceding days. A farm whose machines are partly in
//!   maintenance can hide unregistered machines under the tolerance; switching them on is a
//!   step that machines returning from an outage or a curtailment do not make (those return
//!   to a level the farm already had).
//!
//! Overlapping flagged blocks form one condition, whose edges are placed where the cumulative
//! excess turns (see [`crate::spans`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use gridwatch_core::{LicenceId, RegionId};

use crate::finding::{Finding, Kind};
use crate::spans::{refine, spans_of_blocks};
use crate::stats::round;
use crate::window::Window;

/// Thresholds of the capacity rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityParams {
    /// Level rule: power above the registered capacity tolerated beyond the meter's accuracy,
    /// percent (default 5). A licensed farm's meter also carries its cooling, lighting and
    /// network (a few percent, more on hot days) and machines drawing up to about 5 % above
    /// their nameplate; below this, an excess is indistinguishable from them. With class 0.5S
    /// meters, 6 % more power than registered is flagged within `min_duration_hours`.
    pub tolerance_pct: f64,
    /// How long the mean power must stay above a threshold, hours (default 6). A farm cannot
    /// exceed its machines' power for hours by accident: start-up surges and meter clock skew
    /// last minutes. Six hours keeps a 10 % excess flagged well within a day.
    pub min_duration_hours: f64,
    /// Step rule: the smallest rise above the farm's highest block over the preceding
    /// `step_history_hours`, percent of capacity (default 5: one machine in twenty switched on
    /// at once; the farm's own wander over a few days is about 1 %).
    pub step_min_pct: f64,
    /// Step rule: how far above the capacity, beyond accuracy, the level reached by the step
    /// must be, percent (default 0: above the registered capacity is what DOMAIN.md names as
    /// the sign of unregistered machines; the step stands in for the level rule's tolerance).
    /// Below capacity, a step is a farm using machines it has registered.
    pub step_tolerance_pct: f64,
    /// Step rule: the history the step is measured against, hours (default 72). Outages,
    /// curtailments and maintenance rarely last longer, so a return from them is not a step
    /// above this history. At least a third of it must be known.
    pub step_history_hours: f64,
    /// Share of a block's windows that must have energy for it to be judged (default 0.75).
    pub min_coverage: f64,
}

impl Default for CapacityParams {
    fn default() -> Self {
        CapacityParams {
            tolerance_pct: 5.0,
            min_duration_hours: 6.0,
            step_min_pct: 5.0,
            step_tolerance_pct: 0.0,
            step_history_hours: 72.0,
            min_coverage: 0.75,
        }
    }
}

/// The conditions where the licence's meters (their summed energy per window in `windows`,
/// sorted and contiguous; `None` where unknown) drew more than `registered_machines` x
/// `machine_rated_w`. `accuracy_pct` is the accuracy class of the licence's meters.
pub fn capacity_exceeded(
    licence: &LicenceId,
    region: Option<&RegionId>,
    registered_machines: u32,
    machine_rated_w: u32,
    windows: &[(Window, Option<f64>)],
    accuracy_pct: f64,
    params: &CapacityParams,
) -> Vec<Finding> {
    let Some((first, _)) = windows.first() else {
        return Vec::new();
    };
    let n = windows.len();
    let capacity_w = f64::from(registered_machines) * f64::from(machine_rated_w);
    let rated_w = f64::from(machine_rated_w.max(1));
    let hours = |w: &Window| (w.end - w.start).num_milliseconds() as f64 / 3_600_000.0;
    let window_hours = hours(first).max(1e-9);
    let capacity_wh: Vec<f64> = windows.iter().map(|(w, _)| capacity_w * hours(w)).collect();
    let energy: Vec<Option<f64>> = windows
        .iter()
        .map(|(_, e)| e.filter(|e| e.is_finite()))
        .collect();
    let accuracy = accuracy_pct.max(0.0) / 100.0;
    let tolerance = params.tolerance_pct.max(0.0) / 100.0;
    let step_tolerance = params.step_tolerance_pct.max(0.0) / 100.0;
    let step_min = params.step_min_pct.max(0.0) / 100.0;
    let block = ((params.min_duration_hours / window_hours).ceil() as usize).max(1);
    let history = ((params.step_history_hours / window_hours).ceil() as usize).max(1);

    // Each block's power beyond accuracy, as a multiple of capacity (of one machine for a
    // licence without capacity, which any load exceeds).
    let unit_wh: Vec<f64> = (0..n)
        .map(|i| {
            if capacity_w > 0.0 {
                capacity_wh[i]
            } else {
                rated_w * hours(&windows[i].0)
            }
        })
        .collect();
    let level: Vec<Option<f64>> = (0..n)
        .map(|t| {
            let known: Vec<usize> = (t + 1).checked_sub(block).map_or(Vec::new(), |s| {
                (s..t + 1).filter(|i| energy[*i].is_some()).collect()
            });
            if known.is_empty() || (known.len() as f64) < params.min_coverage * block as f64 {
                return None;
            }
            let e: f64 = known.iter().filter_map(|i| energy[*i]).sum();
            let u: f64 = known.iter().map(|i| unit_wh[*i]).sum();
            Some(e * (1.0 - accuracy) / u)
        })
        .collect();
    let over_level = |r: f64| capacity_w <= 0.0 || r > 1.0 + tolerance;
    // The step rule is sticky: once a step above the history is seen, the condition lasts
    // while the level stays above capacity and above the pre-step reference by half the step.
    let mut flagged = vec![false; n];
    let mut step_reference: Vec<Option<f64>> = vec![None; n];
    let mut reference: Option<f64> = None;
    for t in 0..n {
        let Some(r) = level[t] else {
            continue;
        };
        if over_level(r) {
            flagged[t] = true;
        }
        let above_capacity = r > 1.0 + step_tolerance;
        reference = match reference {
            Some(x) if above_capacity && r - x >= 0.5 * step_min => Some(x),
            _ => {
                let prior: Vec<f64> = (t + 1)
                    .checked_sub(block + history)
                    .map_or(Vec::new(), |s| {
                        level[s..t + 1 - block].iter().flatten().copied().collect()
                    });
                let enough = prior.len() as f64 * 3.0 >= history as f64;
                let prior_max = prior.iter().copied().fold(f64::MIN, f64::max);
                (enough && above_capacity && r - prior_max >= step_min).then_some(prior_max)
            }
        };
        if reference.is_some() {
            flagged[t] = true;
            step_reference[t] = reference;
        }
    }

    let last_flagged = flagged.last().copied().unwrap_or(false);
    let time = |i: usize| -> DateTime<Utc> {
        windows
            .get(i)
            .map_or_else(|| windows[n - 1].0.end, |(w, _)| w.start)
    };
    spans_of_blocks(&flagged, block, block)
        .into_iter()
        .filter_map(|coarse| {
            let ongoing = last_flagged && coarse.end == n;
            // The step's reference, if the step rule flagged any block of the span.
            let step_ref = (coarse.start..coarse.end)
                .filter_map(|t| step_reference[t])
                .fold(None, |acc: Option<f64>, x| Some(acc.map_or(x, |a| a.min(x))));
            let by_level = (coarse.start..coarse.end).any(|t| level[t].is_some_and(over_level));
            // Edges where the level moved: halfway between what the farm drew before and the
            // threshold of the rule that flagged it.
            let edge_level = match (by_level, step_ref) {
                (true, _) | (false, None) => 1.0 + 0.5 * tolerance,
                (false, Some(x)) => 0.5 * (x + 1.0 + step_tolerance),
            };
            let z: Vec<f64> = (0..n)
                .map(|i| energy[i].map_or(0.0, |e| e * (1.0 - accuracy) - unit_wh[i] * edge_level))
                .collect();
            let span = refine(&z, coarse, block, ongoing);
            let idx = span.start..span.end;
            let known: Vec<usize> = idx.clone().filter(|i| energy[*i].is_some()).collect();
            let e: f64 = known.iter().filter_map(|i| energy[*i]).sum();
            let u: f64 = known.iter().map(|i| unit_wh[*i]).sum();
            let known_hours: f64 = known.iter().map(|i| hours(&windows[*i].0)).sum();
            let r = if u > 0.0 { e * (1.0 - accuracy) / u } else { 0.0 };
            let holds = over_level(r) || step_ref.is_some_and(|_| r > 1.0 + step_tolerance);
            if known_hours <= 0.0 || !holds {
                return None;
            }
            let above: f64 = known
                .iter()
                .filter_map(|i| energy[*i].map(|e| (e - capacity_wh[*i]).max(0.0)))
                .sum();
            let mean_w = e / known_hours;
            let excess_pct = 100.0 * (mean_w / (if capacity_w > 0.0 { capacity_w } else { rated_w }) - if capacity_w > 0.0 { 1.0 } else { 0.0 });
            let (rule, threshold_pct) = if by_level || step_ref.is_none() {
                ("level", 100.0 * (accuracy + tolerance))
            } else {
                ("step", 100.0 * (accuracy + step_tolerance))
            };
            // What the farm drew before the condition (the history the step rule looks at),
            // and the energy above it: the added machines' energy, which the energy above
            // capacity understates when some registered machines are idle.
            let before = span.start.saturating_sub(history)..span.start;
            let before_known: Vec<usize> = before.filter(|i| energy[*i].is_some()).collect();
            let before_hours: f64 = before_known.iter().map(|i| hours(&windows[*i].0)).sum();
            let pre_w = (before_hours * 3.0 >= params.step_history_hours).then(|| {
                before_known.iter().filter_map(|i| energy[*i]).sum::<f64>() / before_hours
            });
            let above_pre = pre_w.map(|w| {
                known
                    .iter()
                    .filter_map(|i| energy[*i].map(|e| (e - w * hours(&windows[*i].0)).max(0.0)))
                    .sum::<f64>()
            });
            let daily: Vec<serde_json::Value> = idx
                .clone()
                .collect::<Vec<_>>()
                .chunk_by(|a, b| time(*a).date_naive() == time(*b).date_naive())
                .map(|day| {
                    let de: f64 = day.iter().filter_map(|i| energy[*i]).sum();
                    let dh: f64 = day
                        .iter()
                        .filter(|i| energy[**i].is_some())
                        .map(|i| hours(&windows[*i].0))
                        .sum();
                    json!({"day": time(day[0]).date_naive().to_string(),
                           "mean_power_w": if dh > 0.0 { (de / dh).round() } else { 0.0 }})
                })
                .collect();
            Some(Finding {
                kind: Kind::CapacityExceeded,
                region: region.cloned(),
                node: None,
                meter: None,
                licence: Some(licence.clone()),
                started_at: time(span.start),
                ended_at: (!ongoing).then(|| time(span.end)),
                energy_wh: above,
                score: round(excess_pct, 3),
                confidence: if rule == "level" {
                    (1.0 - 0.5 * threshold_pct / excess_pct.max(1e-9)).clamp(0.5, 0.99)
                } else {
                    // Under the tolerance the excess could still be cooling on a hot day.
                    0.5
                },
                suspects: Vec::new(),
                evidence: json!({
                    "rule": rule,
                    "rules": "level: mean power over every rolling block of min_duration_hours, less the meter's accuracy, above registered machines x rated power plus the tolerance; step: above capacity plus step_tolerance_pct, reached by a rise of step_min_pct of capacity above the farm's highest block over step_history_hours",
                    "score": "excess_pct: mean power over the condition above the registered capacity, percent",
                    "registered_machines": registered_machines,
                    "machine_rated_w": machine_rated_w,
                    "capacity_w": capacity_w,
                    "threshold_pct": round(threshold_pct, 3),
                    "mean_power_w": mean_w.round(),
                    "excess_pct": round(excess_pct, 3),
                    "implied_machines": round(mean_w / rated_w, 1),
                    "unregistered_machines_estimate": ((mean_w - capacity_w).max(0.0) / rated_w).round(),
                    "energy_above_capacity_wh": above.round(),
                    "power_before_w": pre_w.map(f64::round),
                    "energy_above_power_before_wh": above_pre.map(f64::round),
                    "accuracy_pct": accuracy_pct,
                    "tolerance_pct": params.tolerance_pct,
                    "min_duration_hours": params.min_duration_hours,
                    "hours": round(known_hours, 2),
                    "began_before_period": span.start == 0,
                    "daily": daily,
                }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
