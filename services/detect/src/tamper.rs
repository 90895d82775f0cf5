//! Meter tampering seen in a meter's own readings (DOMAIN.md, point 6).
//!
//! What a meter's data can show, by strength of evidence:
//! - **a register running backwards** ([`meter_tamper`]): a register never decreases on its
//!   own. High confidence, raised at once (a fall of more than a week's consumption in one
//!   window is a reset or a replaced meter, and is left out).
//! - **a drop in reported energy matched by the node's residual** ([`residual_match`]): the
//!   meter's daily energy falls (a changepoint in log daily energy, robust to the household's
//!   day-to-day spread) and the node's unexplained residual rises by about as much over the
//!   same days. Each alone is common (holidays, other thefts); together they name the meter.
//!   This is how h1-h4, caps, subtraction and partial zeroing (Jokar et al.) are caught. A
//!   drop alone is not raised: a family on holiday drops as much as an attacked meter.
//! - **a flat line at the daily mean** ([`meter_tamper`], Jokar h5): whole days of identical
//!   readings at about the meter's usual level, each day at its own level. It moves no energy
//!   over a day, so its finding carries 0 Wh: it flags a device, not a loss.
//! - **hours of nothing every day** ([`meter_tamper`], Jokar h2): from some day on, readings
//!   at exactly zero for hours on most days, the rest of each day at its usual level, from a
//!   meter that never read zero that long before. The zeroed hours' usual energy is its loss.
//! - **days without a shape** ([`meter_tamper`], Jokar h4): from some day on, the meter
//!   reports less than usual, and its days, hour by hour, resemble neither its usual day nor
//!   one another. Its loss is the usual daily energy less what each such day reported.
//! - **a day reversed** ([`meter_tamper`], Jokar h6): for five days or more, the day's shape
//!   fits the meter's usual day (the week before) mirrored in time far better than the usual
//!   day itself. It moves no daily energy either; only households with a lopsided day (a
//!   morning and an evening peak) can show it, and only after a week of clean history.
//!
//! Findings of one meter may overlap (a backwards register also drops the daily energy):
//! [`merge_overlapping`] joins them into one condition per meter.

mod deficit;
mod noise;
mod shape;
mod zeros;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::finding::{Finding, Kind};
use crate::profile::MeterProfile;
use crate::stats::{mean, round};

pub use deficit::{
    clean_history_end, daily_ratios, peer_factors, peer_factors_of_each, residual_match,
    shared_rises,
};

/// Thresholds of the tamper analyses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TamperParams {
    /// Backwards windows closer than this are one condition, hours (default 36: a device that
    /// rolls the register back every night is one ongoing condition, still open a day after
    /// its last roll-back).
    pub backwards_merge_hours: f64,
    /// Days of history before a drop, at least (default 7: a household's week, weekends
    /// included). The profile should hold up to 28 days: the more history, the tighter the
    /// baseline.
    pub baseline_days: u32,
    /// Days a drop must last to be judged (default 3): the node's rise is the median of its
    /// days, so that one bad day of a node (a burst of late readings, a switching) cannot
    /// make a match on its own.
    pub min_drop_days: u32,
    /// Smallest drop of the meter's typical daily energy, share (default 0.15): below, a
    /// household's own variation and a tamper are indistinguishable day by day.
    pub min_drop_share: f64,
    /// The meter's drop: robust z of its log daily energy after against before (default 2.5).
    /// Households do change (a member leaves, a new fridge), so this only says the drop is
    /// real, not that it is theft; the node's rise carries the weight.
    pub drop_z: f64,
    /// The node's rise: robust z of its daily residual over the drop (median) against its
    /// days before (default 3.5: about one node-meter pair in 4,000 by chance, before the
    /// correlation and size checks). This is the evidence of theft: energy left the node as
    /// the meter stopped counting it.
    pub node_z: f64,
    /// Smallest node rise as a share of the meter's deficit (default 0.5). More than 1 is
    /// normal when other meters of the node steal too; much less means the node did not lose
    /// what the meter stopped reporting: a holiday, not a tamper.
    pub min_match_ratio: f64,
    /// Largest node rise as a multiple of the meter's deficit (default 3: two or three
    /// tampered homes on one transformer still match). Beyond it the node lost far more than
    /// this meter hid: something else (a diversion, whose case ranks its own suspects) moved
    /// the node, and this meter's drop beside it is a coincidence (a family away while a
    /// node's balance shifted).
    pub max_match_ratio: f64,
    /// Smallest deficit, as a share of what the node delivered over the same windows, that
    /// its balance can confirm (default 0.002). A meter's systematic error is learned with
    /// the loss model, so a balance is steadier from day to day than its meters' accuracy
    /// class; but over the days a match spans, unmetered loads drift with the season (street
    /// lighting as the nights lengthen), and in a 30-day replay of 10,000 homes on transformers
    /// of about 200 homes, 7 honest homes whose use fell by roughly 0.03 % to 0.2 % of their
    /// node's throughput (estimated from the findings' energies and their nodes' daily load)
    /// met such a drift often enough to match. A home's kWh a day under a large
    /// node is left to the meter's own evidence and to the suspects of a diversion case.
    pub min_share_of_node: f64,
    /// Smallest rank correlation, over the profile's days, between the meter's daily deficit
    /// and the node's daily residual (default 0.3; ranks, so that one day of a node's outage
    /// or a burst of late readings cannot hide a match). A tamper moves both together, day by day; a
    /// household's quiet week that happens to meet a noisy week of its node does not (600
    /// clean meters of three weeks gave one such chance match with correlation 0.25).
    pub min_daily_correlation: f64,
    /// Shortest flat run, hours (default 20): h5 reports a whole day at its mean. An empty
    /// home's smooth standby stays level for 16 hours at most before the morning ramps it;
    /// the service bridges gaps of 6 hours by interpolation, which is flat too.
    pub min_flat_hours: f64,
    /// A run is flat when all its readings lie within this share of its level (default
    /// 0.01) or within `flat_tolerance_wh` (register rounding).
    pub flat_tolerance_share: f64,
    /// Absolute flatness tolerance, Wh (default 2: two register roundings of 1 Wh).
    pub flat_tolerance_wh: f64,
    /// A flat run counts only at a level of at least this share of the meter's usual daily
    /// mean power (default 0.5): h5 sits at the day's mean, an empty home's standby far below
    /// it.
    pub min_flat_level_share: f64,
    /// Days a reversal must last (default 5: a weekend's late, long mornings fit a weekday
    /// mirrored better than the weekday itself, so a reversal must hold over working days
    /// too).
    pub min_reversal_days: u32,
    /// Days before a reversal's onset that make the meter's usual day (default 7, three
    /// quarters of them known): the days just before, so that a season's slow drift of the
    /// day's shape does not look like a reversal, and a whole week, so that a weekend is part
    /// of the usual.
    pub reversal_reference_days: u32,
    /// Smallest mean gain in correlation of a reversed day with the usual day mirrored, over
    /// the usual day itself (default 0.5; clean households drifting with the season reach
    /// about 0.3).
    pub min_reversal_gain: f64,
    /// Welch t of that gain, after against before (default 6: the axis of the mirror is
    /// searched among 24 hours and the onset among the days; clean households reached 5 to 6
    /// in simulated months).
    pub reversal_t: f64,
    /// A reversal only reorders a day's hours: the reversed days' median daily energy must
    /// stay within this share of the usual days' (default 0.3: within 0.7 to 1/0.7 of it). A
    /// household's week moves by a tenth or two with the weather; the two honest homes a
    /// simulated month raised as reversed had halved their use (a family away) and nearly
    /// doubled it (a heated home in a cold spell), their drift fitting a mirrored week.
    pub reversal_level_tolerance: f64,
    /// Share of a day's windows that must be known for the day to count (default 0.8).
    pub min_day_coverage: f64,
    /// Shortest run of readings at exactly zero that counts, hours (default 4: Jokar h2's
    /// shortest zeroed stretch; a household's standby never reads zero that long).
    pub min_zero_hours: f64,
    /// Days with such a run, most of the days since the first, before a meter is raised
    /// (default 3).
    pub min_zero_days: u32,
    /// Days without a shape, in a row, before a meter is raised (default 4). A household's
    /// days correlate with its usual day, hour by hour, at about 0.45, but one day in twenty
    /// falls under 0.1; four in a row, each also under the usual energy, is not chance.
    pub min_shapeless_days: u32,
    /// Days are without a shape when, on average over the run, they correlate with the usual
    /// day and with one another at most this much (default 0.2). A day of random readings
    /// scatters around 0 (standard deviation 0.2 for 24 hours, 0.1 averaged over four days:
    /// 2.5 % of such runs exceed 0.2); in a simulated fortnight of 1,000 homes, four-day
    /// averages of both fell under 0.2 for 1 % of homes, none of which also reported 15 % less
    /// on each of those days.
    pub max_shapeless_correlation: f64,
    /// The usual week must have a shape: its days' mean correlation with one another, at least
    /// (default 0.3; 85 % of simulated homes, every heated home, shop and office). A home
    /// whose days never look alike cannot lose its shape.
    pub min_usual_correlation: f64,
    /// Shapeless days count only at or above this share of the usual daily energy (default
    /// 0.25): a family away reads its standby, a tenth or two of its usual use, with no shape
    /// either; Jokar h4 reports about half the usual energy.
    pub min_shapeless_level_share: f64,
    /// A day's swing is the spread of its hours over their mean; a shapeless day counts only
    /// when its swing is at most this share of the usual days' median (default 0.6).
    /// Random shares of a day's mean average out within each hour: Jokar h4 on 15-minute
    /// readings keeps a fifth to a half of a household's swing, while a household's quiet
    /// days keep about all of it (the one simulated home of 2,000 whose month held a
    /// shapeless, low run kept 1.05).
    pub max_swing_ratio: f64,
}

impl Default for TamperParams {
    fn default() -> Self {
        TamperParams {
            backwards_merge_hours: 36.0,
            baseline_days: 7,
            min_drop_days: 3,
            min_drop_share: 0.15,
            drop_z: 2.5,
            node_z: 3.5,
            min_match_ratio: 0.5,
            max_match_ratio: 3.0,
            min_share_of_node: 0.002,
            min_daily_correlation: 0.3,
            min_flat_hours: 20.0,
            flat_tolerance_share: 0.01,
            flat_tolerance_wh: 2.0,
            min_flat_level_share: 0.5,
            min_reversal_days: 5,
            reversal_reference_days: 7,
            min_reversal_gain: 0.5,
            reversal_t: 6.0,
            reversal_level_tolerance: 0.3,
            min_day_coverage: 0.8,
            min_zero_hours: 4.0,
            min_zero_days: 3,
            min_shapeless_days: 4,
            max_shapeless_correlation: 0.2,
            min_usual_correlation: 0.3,
            min_shapeless_level_share: 0.25,
            max_swing_ratio: 0.6,
        }
    }
}

/// Tampering evidence in `profile` alone: registers running backwards, flat lines at the
/// daily mean, hours of nothing every day, days without a shape, reversed days. The profile should hold `baseline_days` or more of history.
pub fn meter_tamper(profile: &MeterProfile, params: &TamperParams) -> Vec<Finding> {
    let mut out = backwards(profile, params);
    out.extend(shape::flat_lines(profile, params));
    out.extend(zeros::zero_runs(profile, params));
    out.extend(noise::shapeless_days(profile, params));
    out.extend(shape::reversal(profile, params));
    out
}

/// The windows whose register ran backwards, grouped into conditions.
fn backwards(p: &MeterProfile, params: &TamperParams) -> Vec<Finding> {
    let ran_back = |i: usize| p.backwards.get(i).copied().unwrap_or(false);
    // The usual energy of each window of the day, from the windows that did not run back:
    // what the meter should have counted instead.
    let per_day = p.spec.per_day().max(1) as usize;
    let usual: Vec<f64> = (0..per_day)
        .map(|slot| {
            let v: Vec<f64> = (slot..p.energy_wh.len())
                .step_by(per_day)
                .filter(|i| !ran_back(*i))
                .filter_map(|i| p.energy_wh[i])
                .collect();
            mean(&v).unwrap_or(0.0).max(0.0)
        })
        .collect();
    // A register that falls by more than a week of the meter's consumption in one window was
    // reset or replaced, not rolled back by a device (which runs it back at the rate of the
    // consumption it hides): not a tamper finding.
    let usual_day: f64 = usual.iter().sum();
    let reset = |i: usize| p.energy_wh[i].is_some_and(|e| -e > 7.0 * usual_day.max(1.0));
    let flagged: Vec<usize> = (0..p.energy_wh.len())
        .filter(|i| ran_back(*i) && !reset(*i))
        .collect();
    let gap = (params.backwards_merge_hours * 3600.0 / p.spec.seconds.max(1) as f64) as usize;
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in flagged {
        match groups.last_mut() {
            Some(g) if g.last().is_some_and(|last| i - last <= gap.max(1)) => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    let n = p.energy_wh.len();
    groups
        .into_iter()
        .filter_map(|g| {
            let (first, last) = (*g.first()?, *g.last()?);
            let rolled_back: f64 = g
                .iter()
                .filter_map(|i| p.energy_wh[*i])
                .map(|e| (-e).max(0.0))
                .sum();
            let unreported: f64 = g
                .iter()
                .filter_map(|i| p.energy_wh[*i].map(|e| (usual[*i % per_day] - e).max(0.0)))
                .sum();
            let ongoing = n - 1 - last <= gap;
            Some(Finding {
                started_at: p.window(first).start,
                ended_at: (!ongoing).then(|| p.window(last).end),
                energy_wh: unreported.max(rolled_back),
                score: g.len() as f64,
                confidence: 0.95,
                evidence: json!({
                    "signal": "register_backwards",
                    "why": "a cumulative register never decreases on its own (a replaced meter's reset is the exception)",
                    "score": "backwards_windows: windows in which the register decreased",
                    "backwards_windows": g.len(),
                    "rolled_back_wh": rolled_back.round(),
                    "unreported_wh": unreported.round(),
                    "estimate": "the usual energy of each backwards window minus what it reported",
                    "first_window": p.window(first).start,
                    "last_window": p.window(last).start,
                }),
                ..on_meter(p)
            })
        })
        .collect()
}

/// A tamper finding on `p`'s meter, naming the meter as its one suspect; the caller sets
/// the period, energy, score, confidence and evidence (`Finding { .., ..on_meter(p) }`).
fn on_meter(p: &MeterProfile) -> Finding {
    Finding {
        kind: Kind::MeterTamper,
        region: Some(p.region.clone()),
        node: Some(p.node.clone()),
        meter: Some(p.meter.clone()),
        licence: p.licence.clone(),
        started_at: p.start,
        ended_at: None,
        energy_wh: 0.0,
        score: 0.0,
        confidence: 0.0,
        suspects: vec![p.meter.to_string()],
        evidence: serde_json::Value::Null,
    }
}

/// Joins [`Kind::MeterTamper`] findings of the same meter whose periods overlap or touch into
/// one: the earliest start, the latest end (open if any is open), the largest energy, score
/// and confidence, and every signal's evidence. Other findings pass through unchanged, and
/// the order of meters is kept.
pub fn merge_overlapping(findings: Vec<Finding>) -> Vec<Finding> {
    let (tamper, mut out): (Vec<Finding>, Vec<Finding>) = findings
        .into_iter()
        .partition(|f| f.kind == Kind::MeterTamper && f.meter.is_some());
    let mut merged: Vec<Finding> = Vec::new();
    let mut sorted = tamper;
    sorted.sort_by(|a, b| (&a.meter, a.started_at).cmp(&(&b.meter, b.started_at)));
    let end_of = |f: &Finding| f.ended_at.unwrap_or(DateTime::<Utc>::MAX_UTC);
    for f in sorted {
        match merged.last_mut() {
            Some(m) if m.meter == f.meter && f.started_at <= end_of(m) => {
                let signals = |e: &serde_json::Value| match e.get("signals") {
                    Some(serde_json::Value::Array(s)) => s.clone(),
                    _ => vec![e.clone()],
                };
                let mut all = signals(&m.evidence);
                all.extend(signals(&f.evidence));
                m.ended_at = match (m.ended_at, f.ended_at) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                m.energy_wh = m.energy_wh.max(f.energy_wh);
                m.score = m.score.max(f.score);
                m.confidence = m.confidence.max(f.confidence);
                for s in f.suspects {
                    if !m.suspects.contains(&s) {
                        m.suspects.push(s);
                    }
                }
                m.evidence = json!({ "signals": all });
            }
            _ => merged.push(f),
        }
    }
    out.extend(merged);
    out
}

/// Daily sums of `values` over the profile's UTC days, scaled up for missing windows, or
/// `None` for a day with less than `min_coverage` known. Returns (day start index, sums).
pub(crate) fn daily_sums(
    p: &MeterProfile,
    values: &[Option<f64>],
    min_coverage: f64,
) -> (usize, Vec<Option<f64>>) {
    let per_day = p.spec.per_day().max(1) as usize;
    let offset = p.start.timestamp().rem_euclid(86_400) / p.spec.seconds.max(1);
    let first = (per_day - offset as usize % per_day) % per_day;
    let sums = values
        .get(first..)
        .unwrap_or(&[])
        .chunks_exact(per_day)
        .map(|day| {
            let known: Vec<f64> = day.iter().flatten().copied().collect();
            (known.len() as f64 >= min_coverage * per_day as f64)
                .then(|| known.iter().sum::<f64>() * per_day as f64 / known.len() as f64)
        })
        .collect();
    (first, sums)
}

/// The start of day `d` of [`daily_sums`].
pub(crate) fn day_start(p: &MeterProfile, first: usize, d: usize) -> DateTime<Utc> {
    p.window(first).start + Duration::days(d as i64)
}

/// Rounded kWh, for evidence.
pub(crate) fn kwh(wh: f64) -> f64 {
    round(wh / 1000.0, 3)
}

#[cfg(test)]
mod tests;
