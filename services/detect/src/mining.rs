//! Unlicensed mining on household and commercial connections (DOMAIN.md, point 5).
//!
//! Irkutsk's criteria: consumption abnormally high, stable with no daily fluctuation, at least
//! twice that of comparable premises. A rig runs 24/7 at a load factor near 1 (an S19 draws
//! 3,250 W, 78 kWh a day) on top of whatever the premises draw anyway. Over the last `days`
//! days of each meter, the rule looks for a *plateau* in its hourly power (each hour's median
//! window, so that a kettle or a reboot is not an hour): the densest narrow band of hours at a
//! level at least `min_level_ratio` times the comparables' median and `min_excess_w` above
//! it, and the runs of hours at or above that plateau (outages of a few hours bridged). A run
//! is mining-like when
//! - most of its hours sit in the band (`min_near_share`) and almost none fall below it
//!   (`min_floor_share`): a rig holds a floor, a heater's thermostat and night set-back do not;
//! - its typical day has almost no cycle (`max_cycle_ratio`): households and shops live by the
//!   clock, bakeries bake at night, heaters follow the day's temperature;
//! - its daily level does not move from day to day (`max_day_cv`): heating follows the weather,
//!   which changes over days; a rig does not;
//! - its load factor is high (`min_load_factor`);
//! - it lasts (`min_hours`).
//!
//! Two sets of these thresholds apply. After an abrupt onset (`after_onset`: the hour after
//! some window lies above the hour before it by most of a step of at least `min_excess_w`,
//! and the step is not part of the premises' usual day), the step is the strong evidence: a
//! rig is plugged in, while heating follows the cold over hours and its set-back ends every
//! morning. The run is then judged on what was added, the premises' usual day (from the days
//! before) taken out, so a rig on top of storage heaters or a shop's hours is as flat as it
//! is, and the flatness thresholds only need to reject what remains: a rig is flagged two
//! days after its onset. Without a seen onset (`steady`: it began before the data, or rose
//! gradually), flatness is all there is, and a heated home in a calm cold week is flat too,
//! so the thresholds are strict and the run must last the whole week. Profiles longer than
//! `days` keep an onset in sight for longer.
//!
//! Every threshold has to hold: each one alone lets some confounder through, together they
//! describe a constant load added to a connection. The thresholds are ratios (and one power,
//! the size of the smallest step that counts), so they do not depend on the grid, the tariff
//! or the rig's model.

mod plateau;

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use gridwatch_core::registry::MeterClass;
use gridwatch_core::RegionId;

use crate::finding::{Finding, Kind};
use crate::hourly::StepSeries;
use crate::profile::MeterProfile;
use crate::stats::{mean, median, quantile, round};
use plateau::{features, plateau_level, runs, Features, Run};

/// How flat and how long a plateau must be to look like a rig.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flatness {
    /// Smallest share of the run's hours within the plateau band. A household on top of two
    /// rigs leaves the band in its busiest hours only (about 0.9).
    pub min_near_share: f64,
    /// Smallest share of the run's hours at or above the band's floor: reboots and short
    /// outages take a rig below it for a few hours a week; heating drops below it on mild
    /// nights and days.
    pub min_floor_share: f64,
    /// Largest daily cycle: the mean of the 12 highest hours of the run's typical day (the
    /// median of each hour of the day over the run) over the mean of the 12 lowest. A household adds a few hundred watts of cycle to a rig's
    /// thousands (about 1.05 for two rigs); households alone show 1.5 to 3, heated homes 1.03
    /// to 1.2 (set-back, the day's warmth).
    pub max_cycle_ratio: f64,
    /// Largest day-to-day variation: standard deviation over mean of the run's daily medians.
    /// Two rigs under a household vary by about 0.5 %; heating follows the weather (10 % for
    /// 3 K at -15 °C, still 1 to 3 % in a calm week).
    pub max_day_cv: f64,
    /// Smallest load factor: mean power over the 95th percentile of the windows' power (two
    /// rigs under a household: about 0.9).
    pub min_load_factor: f64,
    /// Shortest run, hours.
    pub min_hours: u32,
}

/// Thresholds of the unlicensed-mining rule. See the module documentation for why each exists.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MiningParams {
    /// Days analysed, ending with the profile (default 7: a rolling week). A plateau must
    /// reach into them; profiles may be longer, which keeps a rig's onset in sight.
    pub days: u32,
    /// Smallest plateau as a multiple of the comparables' median power (default 2: Irkutsk's
    /// "at least twice comparable premises"). Two S19s are about 25 times a household's median.
    pub min_level_ratio: f64,
    /// Smallest plateau above the comparables' median, W (default 1,500: about half of one
    /// mining machine; smaller constant loads are a freezer room or a water heater, and their
    /// money is not worth a field visit). Also the smallest step that counts as an onset.
    pub min_excess_w: f64,
    /// Relative half-width of the plateau band (default 0.10). A rig's draw varies by about
    /// 1 %, the household on top of two rigs by a few percent.
    pub flat_band: f64,
    /// Thresholds for a run that begins with an abrupt step up from the premises' own level,
    /// judged on what was added to the premises' usual day (default: near 0.70, floor 0.85,
    /// cycle 1.12, day-to-day 0.035, load factor 0.75, 48 hours). The step is the strong
    /// evidence: heating grows with the cold over hours and never jumps by kilowatts, so these
    /// only have to reject what a step can also be (a heater switched on at full power still
    /// follows the weather). A rig is flagged two days after it is plugged in.
    pub after_onset: Flatness,
    /// Thresholds for a run without a seen onset (it began before the profile, or rose
    /// gradually) (default: near 0.85, floor 0.93, cycle 1.07, day-to-day 0.015, load factor
    /// 0.80, 168 hours). Only flatness speaks here, and a heated home in a calm, cold week is
    /// flat too: these keep what a steady heater shows (a thermostat's wander, a night
    /// set-back, a few percent of weather) out, at the price of missing rigs under very busy
    /// households once their onset is out of sight. A heater running at its full rating all
    /// week in a long cold spell is a constant load and still passes: see the crate's notes.
    pub steady: Flatness,
    /// Longest gap bridged inside a run, hours (default 6): outages and reboots.
    pub max_outage_hours: u32,
    /// Hours before an onset used as the premises' own baseline (default 72, at least 24 known).
    pub baseline_hours: u32,
    /// Fewest comparable meters (same class and region) for a local median (default 20);
    /// below, the class across all regions is used (and nothing is judged with fewer than 3).
    pub min_comparables: usize,
    /// Smallest share of a meter's windows known over the period (default 0.75).
    pub min_coverage: f64,
}

impl Default for MiningParams {
    fn default() -> Self {
        MiningParams {
            days: 7,
            min_level_ratio: 2.0,
            min_excess_w: 1_500.0,
            flat_band: 0.10,
            after_onset: Flatness {
                min_near_share: 0.70,
                min_floor_share: 0.85,
                max_cycle_ratio: 1.12,
                max_day_cv: 0.035,
                min_load_factor: 0.75,
                min_hours: 48,
            },
            steady: Flatness {
                min_near_share: 0.85,
                min_floor_share: 0.93,
                max_cycle_ratio: 1.07,
                max_day_cv: 0.015,
                min_load_factor: 0.80,
                min_hours: 168,
            },
            max_outage_hours: 6,
            baseline_hours: 72,
            min_comparables: 20,
            min_coverage: 0.75,
        }
    }
}

/// Whether a meter may be judged (and serve as a comparable): an ordinary connection.
fn eligible(p: &MeterProfile) -> bool {
    matches!(p.class, MeterClass::Household | MeterClass::Commercial) && p.licence.is_none()
}

/// The window index where the analysed period of `p` starts.
fn period_start(p: &MeterProfile, days: u32) -> usize {
    let windows = p.spec.per_day().max(1) as usize * days as usize;
    p.energy_wh.len().saturating_sub(windows)
}

/// Mean power of `p` over its analysed period, W, if enough is known.
fn period_mean_w(p: &MeterProfile, params: &MiningParams) -> Option<f64> {
    let from = period_start(p, params.days);
    let slice = &p.energy_wh[from..];
    let known: Vec<f64> = slice.iter().flatten().copied().collect();
    if slice.is_empty() || (known.len() as f64) < params.min_coverage * slice.len() as f64 {
        return None;
    }
    mean(&known).map(|e| e * 3600.0 / p.spec.seconds.max(1) as f64)
}

/// Median mean power of comparable meters: same class and region, or the class everywhere
/// when the region has fewer than `min_comparables`. Returns (median, count, scope).
fn comparables(
    profiles: &[MeterProfile],
    params: &MiningParams,
) -> HashMap<(MeterClass, RegionId), (f64, usize, &'static str)> {
    let mut local: HashMap<(MeterClass, RegionId), Vec<f64>> = HashMap::new();
    let mut class_wide: HashMap<MeterClass, Vec<f64>> = HashMap::new();
    for p in profiles.iter().filter(|p| eligible(p)) {
        if let Some(m) = period_mean_w(p, params) {
            local
                .entry((p.class, p.region.clone()))
                .or_default()
                .push(m);
            class_wide.entry(p.class).or_default().push(m);
        }
    }
    let mut out = HashMap::new();
    for p in profiles.iter().filter(|p| eligible(p)) {
        let key = (p.class, p.region.clone());
        if out.contains_key(&key) {
            continue;
        }
        let here = local.get(&key).map_or(&[][..], Vec::as_slice);
        let (values, scope) = if here.len() >= params.min_comparables {
            (here, "class_and_region")
        } else {
            (
                class_wide.get(&p.class).map_or(&[][..], Vec::as_slice),
                "class",
            )
        };
        if values.len() >= 3 {
            if let Some(m) = median(values) {
                out.insert(key, (m, values.len(), scope));
            }
        }
    }
    out
}

/// Unlicensed-mining conditions among `profiles` (household and commercial meters without a
/// licence are judged; all of them serve as comparables). Profiles must cover at least the
/// last `params.days` days, plus `baseline_hours` before to measure a rig's pre-onset
/// baseline; they should end at the same time.
pub fn unlicensed_mining(profiles: &[MeterProfile], params: &MiningParams) -> Vec<Finding> {
    let groups = comparables(profiles, params);
    profiles
        .iter()
        .filter(|p| eligible(p))
        .filter(|p| period_mean_w(p, params).is_some())
        .filter_map(|p| {
            let (median_w, count, scope) = *groups.get(&(p.class, p.region.clone()))?;
            Some(judge(p, median_w, count, scope, params))
        })
        .flatten()
        .collect()
}

/// A run of hours at or above a meter's plateau, with what the rule needs to judge it.
#[derive(Debug, Clone)]
struct Candidate {
    run: Run,
    features: Features,
    level_w: f64,
    /// The premises' mean power before an abrupt onset, if one is seen.
    baseline_w: Option<f64>,
    /// Whether the run reaches back to the start of the profile.
    from_profile_start: bool,
    ongoing: bool,
    /// Each threshold and whether the run meets it.
    checks: [(&'static str, bool); 7],
}

/// The runs of one meter at or above its plateau that reach into the analysed period
/// (starting at step `from`), judged against every threshold. The plateau is the period's;
/// the runs and their features extend as far back as the profile shows them. `steps` holds
/// the hours' median power (shapes), `means` their mean power (energy).
fn candidates(
    p: &MeterProfile,
    steps: &StepSeries,
    means: &StepSeries,
    from: usize,
    comparables_w: f64,
    params: &MiningParams,
) -> Vec<Candidate> {
    let hour = steps.step_hours().max(1e-9);
    let to_steps = |hours: u32| ((f64::from(hours) / hour).ceil() as usize).max(1);
    let period = &steps.power_w[from..];
    let min_level_w =
        (params.min_level_ratio * comparables_w).max(comparables_w + params.min_excess_w);
    let band = params.flat_band.clamp(0.0, 0.9);
    let shortest = params.after_onset.min_hours.min(params.steady.min_hours);
    let Some(level_w) = plateau_level(period, min_level_w, band, to_steps(shortest) / 2) else {
        return Vec::new();
    };
    let floor_w = level_w * (1.0 - band);
    let window_power: Vec<f64> = p
        .energy_wh
        .iter()
        .map(|e| e.map_or(f64::NAN, |e| e * 3600.0 / p.spec.seconds.max(1) as f64))
        .collect();
    let max_gap = to_steps(params.max_outage_hours);
    let n = steps.power_w.len();
    runs(&steps.power_w, 0, floor_w, max_gap)
        .into_iter()
        .filter(|run| run.last >= from)
        .filter_map(|run| {
            let raw = features(steps, &means.power_w, &run, level_w, band, &window_power)?;
            // What was added at the run's start: the premises' own usual day (storage heaters
            // charging at night, a heater's set-back ending at dawn, a shop's opening hours)
            // taken out, so that a daily jump is not an onset and a rig on top of a daily
            // cycle is as flat as it is.
            let added = without_usual_day(
                steps,
                &means.power_w,
                &window_power,
                run.first,
                to_steps(params.baseline_hours),
            );
            // The added shape's level over the run (once: the onset and the features use it).
            let added_level = added.as_ref().and_then(|(shape, _, _)| {
                median(
                    &shape.power_w[run.first..=run.last]
                        .iter()
                        .flatten()
                        .copied()
                        .collect::<Vec<_>>(),
                )
            });
            let baseline_w =
                added
                    .as_ref()
                    .zip(added_level)
                    .and_then(|((shape, _, windows), level)| {
                        onset(shape, &run, level, windows, params)?;
                        // The premises' own mean power before the onset, for the energy.
                        let want = to_steps(params.baseline_hours);
                        mean(
                            &means.power_w[run.first.saturating_sub(want)..run.first]
                                .iter()
                                .flatten()
                                .copied()
                                .collect::<Vec<_>>(),
                        )
                    });
            let f = match (&added, added_level, baseline_w) {
                (Some((shape, mean_w, windows)), Some(level), Some(_)) => {
                    let f = features(shape, mean_w, &run, level, band, windows)?;
                    Features {
                        mean_w: raw.mean_w,
                        ..f
                    }
                }
                _ => raw,
            };
            let t = if baseline_w.is_some() {
                &params.after_onset
            } else {
                &params.steady
            };
            let checks = [
                (
                    "duration_hours",
                    run.last + 1 - run.first >= to_steps(t.min_hours),
                ),
                (
                    "level_ratio",
                    f.mean_w >= params.min_level_ratio * comparables_w,
                ),
                ("near_share", f.near_share >= t.min_near_share),
                ("floor_share", f.floor_share >= t.min_floor_share),
                ("cycle_ratio", f.cycle_ratio <= t.max_cycle_ratio),
                ("day_cv", f.day_cv <= t.max_day_cv),
                ("load_factor", f.load_factor >= t.min_load_factor),
            ];
            Some(Candidate {
                from_profile_start: run.first == 0,
                ongoing: n - 1 - run.last <= max_gap,
                run,
                features: f,
                level_w,
                baseline_w,
                checks,
            })
        })
        .collect()
}

/// `steps` (hourly medians), `means` (hourly means) and `window_power_w` less the premises'
/// usual day: per hour of the day, the median over the `baseline_steps` before `onset`, the
/// day's average added back so that levels keep their meaning. `None` when some hour of the
/// day has no value before the onset.
fn without_usual_day(
    steps: &StepSeries,
    means: &[Option<f64>],
    window_power_w: &[f64],
    onset: usize,
    baseline_steps: usize,
) -> Option<(StepSeries, Vec<Option<f64>>, Vec<f64>)> {
    let per_day = steps.per_day();
    let mut by_slot: Vec<Vec<f64>> = vec![Vec::new(); per_day];
    for i in onset.saturating_sub(baseline_steps)..onset {
        if let Some(p) = steps.power_w[i] {
            by_slot[steps.slot_of_day(i)].push(p);
        }
    }
    let usual: Vec<f64> = by_slot.iter().map(|v| median(v)).collect::<Option<_>>()?;
    let average = usual.iter().sum::<f64>() / per_day as f64;
    let adjust = |i: usize, p: f64| p - usual[steps.slot_of_day(i)] + average;
    let mut shape = steps.clone();
    for (i, p) in shape.power_w.iter_mut().enumerate() {
        *p = p.map(|p| adjust(i, p));
    }
    let mean_w = means
        .iter()
        .enumerate()
        .map(|(i, p)| p.map(|p| adjust(i, p)))
        .collect();
    let per_step = steps.windows_per_step.max(1);
    let windows = window_power_w
        .iter()
        .enumerate()
        .map(|(w, p)| match w.checked_sub(steps.first_window) {
            Some(k) if k / per_step < steps.power_w.len() => adjust(k / per_step, *p),
            _ => f64::NAN,
        })
        .collect();
    Some((shape, mean_w, windows))
}

/// The start (step index) of the analysed period of `steps`.
fn period_step(p: &MeterProfile, steps: &StepSeries, params: &MiningParams) -> usize {
    let period_time = p.end() - Duration::days(i64::from(params.days));
    (0..steps.power_w.len())
        .find(|i| steps.time(*i) >= period_time)
        .unwrap_or(steps.power_w.len())
}

/// The mining-like runs of one meter, given its comparables' median power.
fn judge(
    p: &MeterProfile,
    comparables_w: f64,
    comparables: usize,
    scope: &str,
    params: &MiningParams,
) -> Vec<Finding> {
    // Shapes from each hour's median window (a kettle or a reboot is one window), energy
    // from the means.
    let steps = StepSeries::of_medians(p);
    let means = StepSeries::of(p);
    let from = period_step(p, &steps, params);
    candidates(p, &steps, &means, from, comparables_w, params)
        .into_iter()
        .filter(|c| c.checks.iter().all(|(_, ok)| *ok))
        .map(|c| {
            finding(
                p,
                &steps,
                &c,
                comparables_w,
                comparables,
                scope,
                from,
                params,
            )
        })
        .collect()
}

/// The premises' own level before a run (mean power, W) when the run begins with an abrupt
/// step up from it: at least 24 known hours before, a step of at least `min_excess_w`, the
/// four hours before the onset hour still within a quarter of the way from the old level to
/// the plateau, and most of the step taken at once: the low quartile of the hour after some
/// window at least 0.6 of the step above the high quartile of the hour before it
/// (`window_power_w`). A rig is plugged in; a heater's load follows the cold over hours, and
/// the end of its night set-back lifts it by a tenth.
fn onset(
    steps: &StepSeries,
    run: &Run,
    level_w: f64,
    window_power_w: &[f64],
    params: &MiningParams,
) -> Option<f64> {
    let hour = steps.step_hours().max(1e-9);
    let approach = ((4.0 / hour).ceil() as usize).max(1);
    let last_before = run.first.checked_sub(1)?;
    let want = ((f64::from(params.baseline_hours) / hour).ceil() as usize).max(1);
    let before: Vec<f64> = steps.power_w[run.first.saturating_sub(want)..last_before]
        .iter()
        .flatten()
        .copied()
        .collect();
    if (before.len() as f64) * hour < 24.0 {
        return None;
    }
    let baseline = mean(&before)?;
    let typical = median(&before)?;
    let step_w = level_w - typical;
    let near: Vec<f64> = steps.power_w[last_before.saturating_sub(approach)..last_before]
        .iter()
        .flatten()
        .copied()
        .collect();
    let approached = mean(&near).is_some_and(|m| m <= typical + 0.25 * step_w);
    // The jump itself: the hour after some window lies above the hour before it by most of
    // the step, low quartile against high quartile (a rig lifts the floor at once; kettles
    // and a heater's slow rise do not), from the hour before the run's first hour to its
    // end.
    let per_hour = steps.windows_per_step.max(1);
    let quartile = |r: std::ops::Range<usize>, q: f64| -> Option<f64> {
        let v: Vec<f64> = r
            .filter_map(|w| window_power_w.get(w).copied())
            .filter(|x| x.is_finite())
            .collect();
        if v.len() * 2 < per_hour {
            return None;
        }
        quantile(&v, q)
    };
    let windows = steps.windows(last_before).start..steps.windows(run.first).end;
    let jump = windows
        .filter_map(|w| {
            let after = quartile(w..w + per_hour, 0.25)?;
            let before = quartile(w.checked_sub(per_hour)?..w, 0.75)?;
            Some(after - before)
        })
        .fold(f64::MIN, f64::max);
    (step_w >= params.min_excess_w && approached && jump >= 0.6 * step_w).then_some(baseline)
}

/// The first window, from the start of `step`'s predecessor, from which every known window up
/// to the end of `step` is at or above `floor_w`: where the rig was switched on.
fn first_window_at_level(p: &MeterProfile, steps: &StepSeries, step: usize, floor_w: f64) -> usize {
    let range = steps.windows(step.saturating_sub(1)).start..steps.windows(step).end;
    let at = |w: usize| {
        // Unknown windows do not break the run (the MSRV predates `Option::is_none_or`).
        !matches!(
            p.energy_wh.get(w).copied().flatten(),
            Some(e) if e * 3600.0 / (p.spec.seconds.max(1) as f64) < floor_w
        )
    };
    range
        .clone()
        .find(|w| (*w..range.end).all(at))
        .unwrap_or(steps.windows(step).start)
}

/// The window after the last one, from `step`, whose power is at or above `floor_w` with every
/// known window before it in `step`: where the rig was switched off.
fn end_window_at_level(p: &MeterProfile, steps: &StepSeries, step: usize, floor_w: f64) -> usize {
    let range = steps.windows(step).start..steps.windows(step + 1).end.min(p.energy_wh.len());
    let below = |w: usize| {
        p.energy_wh
            .get(w)
            .copied()
            .flatten()
            .is_some_and(|e| e * 3600.0 / (p.spec.seconds.max(1) as f64) < floor_w)
    };
    range.clone().find(|w| below(*w)).unwrap_or(range.end)
}

/// The finding for a run that met every threshold.
#[allow(clippy::too_many_arguments)]
fn finding(
    p: &MeterProfile,
    steps: &StepSeries,
    c: &Candidate,
    comparables_w: f64,
    comparables: usize,
    scope: &str,
    from: usize,
    params: &MiningParams,
) -> Finding {
    let (run, f, level_w, baseline_w) = (&c.run, &c.features, c.level_w, c.baseline_w);
    let t = if baseline_w.is_some() {
        &params.after_onset
    } else {
        &params.steady
    };
    let floor_w = level_w * (1.0 - params.flat_band.clamp(0.0, 0.9));
    // Where the run begins in the data: an onset, a gradual rise, or the first window given
    // (then the condition began earlier, and the evidence says so).
    let started_at = if c.from_profile_start {
        steps.time(0)
    } else {
        p.window(first_window_at_level(p, steps, run.first, floor_w))
            .start
    };
    let ended_at: Option<DateTime<Utc>> = (!c.ongoing).then(|| {
        p.window(end_window_at_level(p, steps, run.last, floor_w))
            .start
    });
    let until = ended_at.unwrap_or_else(|| p.end());
    let hours = (until - started_at).num_seconds().max(0) as f64 / 3600.0;
    // The rig's power: the run's mean above the premises' own earlier level, else above what
    // comparable premises draw.
    let baseline = baseline_w.unwrap_or(comparables_w);
    let excess_w = (f.mean_w - baseline).max(0.0);
    // Margins: how far inside each threshold the run is, 0 at the threshold, 1 far inside.
    let margins = [
        (f.near_share - t.min_near_share) / (1.0 - t.min_near_share).max(1e-9),
        (f.floor_share - t.min_floor_share) / (1.0 - t.min_floor_share).max(1e-9),
        (t.max_cycle_ratio - f.cycle_ratio) / (t.max_cycle_ratio - 1.0).max(1e-9),
        (t.max_day_cv - f.day_cv) / t.max_day_cv.max(1e-9),
        (f.load_factor - t.min_load_factor) / (1.0 - t.min_load_factor).max(1e-9),
    ];
    let margin = margins.iter().copied().fold(1.0, f64::min).clamp(0.0, 1.0);
    // An abrupt step to a flat plateau is a rig or a constant heater switched on for days;
    // flatness alone is also a heater at full power in a cold spell.
    let confidence = if baseline_w.is_some() { 0.8 } else { 0.6 } + 0.19 * margin;
    let per_day = p.spec.per_day().max(1) as usize;
    let period_from = period_start(p, params.days);
    let daily: Vec<serde_json::Value> = p.energy_wh[period_from..]
        .chunks(per_day)
        .enumerate()
        .map(|(d, day)| {
            let known: Vec<f64> = day.iter().flatten().copied().collect();
            json!({
                "day_start": p.window(period_from + d * per_day).start,
                "kwh_per_day": mean(&known).map(|e| round(e * per_day as f64 / 1000.0, 2)),
            })
        })
        .collect();
    let onset = match (baseline_w.is_some(), c.from_profile_start) {
        (true, _) => "abrupt step up from the premises' own level",
        (false, true) => "before the data analysed: started_at is the first window given",
        (false, false) => "gradual rise",
    };
    Finding {
        kind: Kind::UnlicensedMining,
        region: Some(p.region.clone()),
        node: Some(p.node.clone()),
        meter: Some(p.meter.clone()),
        licence: None,
        started_at,
        ended_at,
        energy_wh: excess_w * hours,
        score: round(f.mean_w / comparables_w.max(1e-9), 2),
        confidence,
        suspects: vec![p.meter.to_string()],
        evidence: json!({
            "score": "level_ratio: the condition's mean power over the comparables' median",
            "onset": onset,
            "began_before_period": run.first < from,
            "plateau_w": level_w.round(),
            "mean_power_w": f.mean_w.round(),
            "baseline_w": baseline.round(),
            "baseline_source": if baseline_w.is_some() { "premises_before_onset" } else { "comparables_median" },
            "excess_w": excess_w.round(),
            "excess_kwh_per_day": round(excess_w * 24.0 / 1000.0, 1),
            "machines_at_3250_w": round(excess_w / 3250.0, 1),
            "comparables_median_w": comparables_w.round(),
            "comparables": comparables,
            "comparables_scope": scope,
            "hours": round(hours, 2),
            "features": {
                "level_ratio": round(f.mean_w / comparables_w.max(1e-9), 2),
                "near_share": round(f.near_share, 3),
                "floor_share": round(f.floor_share, 3),
                "cycle_ratio": round(f.cycle_ratio, 3),
                "day_cv": round(f.day_cv, 4),
                "load_factor": round(f.load_factor, 3),
            },
            "thresholds": {
                "set": if baseline_w.is_some() { "after_onset" } else { "steady" },
                "min_level_ratio": params.min_level_ratio,
                "min_excess_w": params.min_excess_w,
                "flat_band": params.flat_band,
                "min_near_share": t.min_near_share,
                "min_floor_share": t.min_floor_share,
                "max_cycle_ratio": t.max_cycle_ratio,
                "max_day_cv": t.max_day_cv,
                "min_load_factor": t.min_load_factor,
                "min_hours": t.min_hours,
            },
            "daily": daily,
        }),
    }
}

#[cfg(test)]
mod tests;
