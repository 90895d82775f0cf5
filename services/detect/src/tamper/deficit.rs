//! A drop in a meter's reported energy, confirmed by its node's residual rising as much.
//!
//! The drop is a changepoint in the logarithm of the meter's daily energy: attacks scale
//! consumption (h1, h3, h4) or remove part of it (h2, caps, subtraction), which shifts the
//! log level, and a household's day-to-day spread is about constant in log terms. It is
//! measured against the meter's peers ([`peer_factors`]): weather, a holiday or a silent
//! concentrator moves every home of a node at once. The level before is a median and its
//! spread a MAD, so a party or a day away does not set the baseline. The node's side is its
//! daily residual above a loss model learned before the drop ([`clean_history_end`],
//! `loss::excess_over_history`): before the drop it is noise around its own level; over the
//! drop its median day must rise, significantly, by `min_match_ratio` to `max_match_ratio`
//! times what the meter stopped reporting.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{daily_sums, day_start, kwh, on_meter, TamperParams};
use crate::finding::Finding;
use crate::profile::MeterProfile;
use crate::stats::{mad_sigma, mean, median, rank_correlation, round};
use crate::suspects::{MIN_PEERS, PEER_FACTOR_RANGE};

/// Smallest log spread assumed for a meter's daily energy (5 %): a very regular meter must
/// not make every small change "significant".
const MIN_LOG_SPREAD: f64 = 0.05;
/// The evidence a day must exceed to count towards a drop when placing its onset, in
/// spreads: a normal day's meter and node evidence sum to 0 plus or minus 1.4, so it counts
/// against (one in thirteen days counts for); an attacked day's, unless very mild, counts
/// for.
const ONSET_REFERENCE: f64 = 2.0;
/// How far from the meter's own changepoint, in days, the evidence may place the onset.
const ONSET_SEARCH_DAYS: usize = 3;
/// Asymptotic standard error of a median, in standard deviations, times the square root of n.
const MEDIAN_SE: f64 = 1.2533;

/// A drop found in daily energies: days `onset..end` are low.
#[derive(Debug, Clone, Copy)]
struct Drop {
    onset: usize,
    end: usize,
    recovered: bool,
    z: f64,
    before_log: f64,
    after_log: f64,
}

/// The most significant sustained drop of the daily log energies `logs`.
///
/// Significance comes from medians (robust to a party or a day away), but medians barely
/// care on which side of the onset two days fall; among the significant onsets, the one kept
/// is where two levels fit the days best (least squares, each day's residual capped at 4
/// spreads so that an outlier day cannot pull it). The node's residual is not used here: it
/// is tested once the onset is placed, and placing the onset where the node happens to be
/// high would make that test find what it looked for.
fn find_drop(logs: &[Option<f64>], params: &TamperParams) -> Option<Drop> {
    let n = logs.len();
    let min_before = params.baseline_days.max(2) as usize;
    let min_after = params.min_drop_days.max(1) as usize;
    // (onset, z, level before, level after, spread) of every onset with a large enough drop.
    let candidates: Vec<(usize, f64, f64, f64, f64)> = (min_before..=n.saturating_sub(min_after))
        .filter_map(|k| {
            let (z, mb, ma, spread) = drop_stats(logs, k, n, params)?;
            Some((k, z, mb, ma, spread))
        })
        .collect();
    let strongest = candidates
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let cap = 4.0 * strongest.4;
    let misfit = |c: &(usize, f64, f64, f64, f64)| -> f64 {
        logs.iter()
            .enumerate()
            .filter_map(|(d, l)| {
                let centre = if d < c.0 { c.2 } else { c.3 };
                l.map(|l| (l - centre).clamp(-cap, cap).powi(2))
            })
            .sum::<f64>()
    };
    let (onset, z, before_log, after_log, _) = candidates
        .iter()
        .filter(|c| c.1 >= params.drop_z.min(strongest.1))
        .min_by(|a, b| misfit(a).total_cmp(&misfit(b)))
        .copied()
        .unwrap_or(strongest);
    let mut drop = Drop {
        onset,
        end: n,
        recovered: false,
        z,
        before_log,
        after_log,
    };
    // Recovery: from some day on, at least three known days, every one back within two
    // spreads of the old level and their median within half a spread (good days in a row
    // happen under h1's random factors and under a cap on quiet days). The drop is then
    // judged on its own days only.
    let spread = {
        let before: Vec<f64> = logs[..drop.onset].iter().flatten().copied().collect();
        mad_sigma(&before).unwrap_or(0.0).max(MIN_LOG_SPREAD)
    };
    let recovered_from = |m: usize| {
        let tail: Vec<f64> = logs[m..].iter().flatten().copied().collect();
        tail.len() >= 3
            && tail.iter().all(|l| *l >= drop.before_log - 2.0 * spread)
            && median(&tail).is_some_and(|l| l >= drop.before_log - 0.5 * spread)
    };
    if let Some(m) = (drop.onset + min_after..n).find(|m| recovered_from(*m)) {
        if let Some((z, mb, ma, _)) = drop_stats(logs, drop.onset, m, params) {
            drop = Drop {
                onset: drop.onset,
                end: m,
                recovered: true,
                z,
                before_log: mb,
                after_log: ma,
            };
        }
    }
    (drop.z >= params.drop_z).then_some(drop)
}

/// The drop from days `..k` to days `k..m` of `logs`: (robust z, level before, level after,
/// pooled spread), if both sides have enough days and the drop is at least `min_drop_share`.
fn drop_stats(
    logs: &[Option<f64>],
    k: usize,
    m: usize,
    params: &TamperParams,
) -> Option<(f64, f64, f64, f64)> {
    let before: Vec<f64> = logs[..k].iter().flatten().copied().collect();
    let after: Vec<f64> = logs[k..m].iter().flatten().copied().collect();
    if before.len() + 1 < params.baseline_days.max(2) as usize
        || after.len() < params.min_drop_days.max(1) as usize
    {
        return None;
    }
    let (mb, ma) = (median(&before)?, median(&after)?);
    // The spread pooled over both sides: an onset placed among normal days leaves them in
    // the "after" side and widens it.
    let residuals: Vec<f64> = before
        .iter()
        .map(|l| l - mb)
        .chain(after.iter().map(|l| l - ma))
        .collect();
    let spread = mad_sigma(&residuals).unwrap_or(0.0).max(MIN_LOG_SPREAD);
    let se = MEDIAN_SE * spread * (1.0 / before.len() as f64 + 1.0 / after.len() as f64).sqrt();
    (1.0 - (ma - mb).exp() >= params.min_drop_share).then_some(((mb - ma) / se, mb, ma, spread))
}

/// Where the drop began, from the evidence of each day: the meter's log energy below its old
/// level and the node's residual above its own (each in spreads, capped at 4), and hours of
/// zero readings from a meter that never had them in its first `baseline_days` (a household
/// always draws its standby). The onset is Page's CUSUM estimate: where the sum of each
/// day's evidence less [`ONSET_REFERENCE`] is largest, so that mild days of a varying attack
/// count for what they show. It is searched within [`ONSET_SEARCH_DAYS`] of the meter's own
/// changepoint: the node helps place an onset the meter found, it does not choose one (the
/// node's rise is then tested there, and a free search would find its noise's peak).
fn onset_by_evidence(
    logs: &[Option<f64>],
    zeros: &[f64],
    node: &[Option<f64>],
    drop: &Drop,
    params: &TamperParams,
) -> usize {
    // References from the `baseline_days` right before the changepoint only: the onset must
    // not move as the profile's start slides.
    let k = drop.onset;
    let from = k.saturating_sub(params.baseline_days.max(2) as usize);
    let before_logs: Vec<f64> = logs[from..k].iter().flatten().copied().collect();
    let meter_spread = mad_sigma(&before_logs).unwrap_or(0.0).max(MIN_LOG_SPREAD);
    let meter_level = median(&before_logs).unwrap_or(drop.before_log);
    let before_node: Vec<f64> = node[from.min(node.len())..k.min(node.len())]
        .iter()
        .flatten()
        .copied()
        .collect();
    let node_level = median(&before_node).unwrap_or(0.0);
    let node_spread = mad_sigma(&before_node).unwrap_or(0.0).max(1.0);
    let zeros_before = zeros[from.min(zeros.len())..k.min(zeros.len())]
        .iter()
        .copied()
        .fold(0.0, f64::max);
    let evidence: Vec<f64> = (0..logs.len())
        .map(|d| {
            let m = logs[d].map_or(0.0, |l| ((meter_level - l) / meter_spread).clamp(-4.0, 4.0));
            let r = node
                .get(d)
                .copied()
                .flatten()
                .map_or(0.0, |r| ((r - node_level) / node_spread).clamp(-4.0, 4.0));
            let z = zeros.get(d).map_or(0.0, |z| {
                if zeros_before < 1.0 / 96.0 && *z >= 1.0 / 24.0 {
                    3.0
                } else {
                    0.0
                }
            });
            m + r + z
        })
        .collect();
    let lo = (params.baseline_days.max(2) as usize).max(k.saturating_sub(ONSET_SEARCH_DAYS));
    let hi = (k + ONSET_SEARCH_DAYS)
        .min(
            drop.end
                .saturating_sub(params.min_drop_days.max(1) as usize),
        )
        .max(lo);
    let mut best = (k, f64::MIN);
    for candidate in lo..=hi {
        let score: f64 = evidence[candidate.min(drop.end)..drop.end]
            .iter()
            .map(|e| e - ONSET_REFERENCE)
            .sum();
        if score > best.1 {
            best = (candidate, score);
        }
    }
    best.0
}

/// The logarithms of daily energies, each floored at 2 % of the meter's typical day (a day
/// near zero must not weigh like minus infinity), less the logarithm of its peers' common
/// movement that day ([`peer_factors`]).
fn daily_logs(daily: &[Option<f64>], peers: &[Option<f64>]) -> Option<Vec<Option<f64>>> {
    let typical = median(&daily.iter().flatten().copied().collect::<Vec<_>>())?;
    let floor = (0.02 * typical).max(1.0);
    Some(
        daily
            .iter()
            .enumerate()
            .map(|(d, e)| {
                let common = peers.get(d).copied().flatten().unwrap_or(1.0);
                e.map(|e| e.max(floor).ln() - common.ln())
            })
            .collect(),
    )
}

/// A meter's daily energy against its own typical day (the median over the profile), day by
/// day: what [`peer_factors`] compares across the meters of a node.
pub fn daily_ratios(profile: &MeterProfile, params: &TamperParams) -> Vec<Option<f64>> {
    let (_, daily) = daily_sums(profile, &profile.energy_wh, params.min_day_coverage);
    let Some(typical) =
        median(&daily.iter().flatten().copied().collect::<Vec<_>>()).filter(|t| *t > 0.0)
    else {
        return vec![None; daily.len()];
    };
    daily.iter().map(|d| d.map(|d| d / typical)).collect()
}

/// The common movement of a meter's peers (the other consumers balanced at its node), day
/// by day: the median of their [`daily_ratios`], where at least [`MIN_PEERS`] are known, and
/// within [`PEER_FACTOR_RANGE`]. A cold snap, a holiday, or a concentrator that fell silent
/// moves every home of a transformer at once; a tampered meter drops against its neighbours.
pub fn peer_factors(peers: &[&[Option<f64>]]) -> Vec<Option<f64>> {
    let days = peers.iter().map(|p| p.len()).max().unwrap_or(0);
    (0..days)
        .map(|d| {
            let known: Vec<f64> = peers
                .iter()
                .filter_map(|p| p.get(d).copied().flatten())
                .collect();
            if known.len() < MIN_PEERS {
                return None;
            }
            median(&known).map(|m| m.clamp(PEER_FACTOR_RANGE[0], PEER_FACTOR_RANGE[1]))
        })
        .collect()
}

/// [`peer_factors`] of each member of a node against all the others (`members[i]` left out for
/// member `i`), in one sort per day rather than one per member and day: a feeder where a
/// thousand homes balance would otherwise sort a thousand ratios a thousand times a day.
pub fn peer_factors_of_each(members: &[&[Option<f64>]]) -> Vec<Vec<Option<f64>>> {
    let days = members.iter().map(|p| p.len()).max().unwrap_or(0);
    let mut out = vec![Vec::with_capacity(days); members.len()];
    for d in 0..days {
        let value = |i: usize| {
            members[i]
                .get(d)
                .copied()
                .flatten()
                .filter(|v| v.is_finite())
        };
        let mut known: Vec<f64> = (0..members.len()).filter_map(value).collect();
        known.sort_by(f64::total_cmp);
        for (i, factors) in out.iter_mut().enumerate() {
            // The others' sorted values: all of them, less one copy of the member's own.
            let skip = value(i).map(|v| known.partition_point(|k| k.total_cmp(&v).is_lt()));
            let count = known.len() - usize::from(skip.is_some());
            let at = |j: usize| match skip {
                Some(s) if j >= s => known[j + 1],
                _ => known[j],
            };
            factors.push((count >= MIN_PEERS).then(|| {
                let position = 0.5 * (count - 1) as f64;
                let below = position.floor() as usize;
                let above = (below + 1).min(count - 1);
                let m = at(below) + (position - below as f64) * (at(above) - at(below));
                m.clamp(PEER_FACTOR_RANGE[0], PEER_FACTOR_RANGE[1])
            }));
        }
    }
    out
}

/// If `profile`'s reported daily energy, against its peers' common movement (`peers`, from
/// [`peer_factors`]; empty without peers), shows a significant sustained drop (the meter's
/// half of [`residual_match`]), the window of the profile before which its node's history is
/// free of it: the drop's first day less the days [`residual_match`] may move its onset back
/// by. The node's yardstick is learned from the windows before it, so that a tamper too small
/// to open a diversion case is not learned as the node's loss by the time it is judged.
pub fn clean_history_end(
    profile: &MeterProfile,
    peers: &[Option<f64>],
    params: &TamperParams,
) -> Option<usize> {
    let per_day = profile.spec.per_day().max(1) as usize;
    let (first, daily) = daily_sums(profile, &profile.energy_wh, params.min_day_coverage);
    let drop = find_drop(&daily_logs(&daily, peers)?, params)?;
    Some(first + drop.onset.saturating_sub(ONSET_SEARCH_DAYS) * per_day)
}

/// A tamper condition on `profile` when its reported energy dropped and its node's residual
/// above expected loss (`node_excess_wh`, one value per window of the profile, `None` where
/// the node could not be balanced) rose by at least `min_match_ratio` of the drop over the
/// same days. The drop is judged against the meter's peers' common movement (`peers`, from
/// [`peer_factors`]; empty without peers). The profile should hold `baseline_days` (up to 28)
/// of history before the drop; a drop whose onset has left the profile is no longer seen.
///
/// `node_load_wh` (aligned with the profile; empty when unknown) is what the node delivered:
/// a deficit below `min_share_of_node` of it over the same windows is within what the node's
/// balance itself can be wrong by, and is not confirmed.
pub fn residual_match(
    profile: &MeterProfile,
    node_excess_wh: &[Option<f64>],
    node_load_wh: &[Option<f64>],
    peers: &[Option<f64>],
    params: &TamperParams,
) -> Option<Finding> {
    let p = profile;
    let per_day = p.spec.per_day().max(1) as usize;
    let (first, daily) = daily_sums(p, &p.energy_wh, params.min_day_coverage);
    let node: Vec<Option<f64>> = (0..p.energy_wh.len())
        .map(|i| {
            node_excess_wh
                .get(i)
                .copied()
                .flatten()
                .filter(|x| x.is_finite())
        })
        .collect();
    let (_, node_daily) = daily_sums(p, &node, params.min_day_coverage);
    let logs = daily_logs(&daily, peers)?;
    let mut drop = find_drop(&logs, params)?;
    let zero_days: Vec<f64> = (0..daily.len())
        .map(|d| {
            let day = &p.energy_wh[first + d * per_day..first + (d + 1) * per_day];
            day.iter().flatten().filter(|e| **e <= 0.0).count() as f64 / per_day as f64
        })
        .collect();
    let onset = onset_by_evidence(&logs, &zero_days, &node_daily, &drop, params);
    if onset != drop.onset {
        let before: Vec<f64> = logs[..onset].iter().flatten().copied().collect();
        let after: Vec<f64> = logs[onset..drop.end].iter().flatten().copied().collect();
        if let (Some(mb), Some(ma)) = (median(&before), median(&after)) {
            drop.onset = onset;
            drop.before_log = mb;
            drop.after_log = ma;
        }
    }

    // The meter's usual energy per window of the day, from the `baseline_days` before the
    // drop: a fixed stretch, so that the edges and the energy do not move as the profile's
    // start slides.
    let window = |d: usize, j: usize| first + d * per_day + j;
    let baseline_from = drop
        .onset
        .saturating_sub(params.baseline_days.max(2) as usize);
    let usual: Vec<f64> = (0..per_day)
        .map(|j| {
            let v: Vec<f64> = (baseline_from..drop.onset)
                .filter_map(|d| p.energy_wh.get(window(d, j)).copied().flatten())
                .collect();
            mean(&v).unwrap_or(0.0)
        })
        .collect();
    let deficit = |i: usize| -> Option<f64> {
        let e = p.energy_wh.get(i).copied().flatten()?;
        Some(usual[(i - first) % per_day] - e)
    };
    // Edges at window resolution: the changepoint of the deficit's mean between no deficit
    // and the drop's, searched a day either side of the day edges.
    // The deficit's rate from the first days of the drop (fixed once they are in).
    let usual_day: f64 = usual.iter().sum();
    let first_days: Vec<f64> = daily[drop.onset..drop.end.min(drop.onset + 3)]
        .iter()
        .flatten()
        .copied()
        .collect();
    let rate = (usual_day - median(&first_days).unwrap_or(usual_day)).max(0.0) / per_day as f64;
    let start = {
        let lo = window(drop.onset.saturating_sub(1), 0);
        let hi = window(drop.onset + 1, 0).min(p.energy_wh.len());
        let mut best = (lo, f64::MIN);
        let mut acc = 0.0;
        for i in (lo..hi).rev() {
            acc += deficit(i).map_or(0.0, |d| d - 0.5 * rate);
            if acc > best.1 {
                best = (i, acc);
            }
        }
        best.0.max(first)
    };
    let end = if drop.recovered {
        let lo = window(drop.end.saturating_sub(1), 0).max(start + 1);
        let hi = window(drop.end + 1, 0).min(p.energy_wh.len());
        let mut best = (lo, f64::MIN);
        let mut acc = 0.0;
        for i in lo..hi {
            acc += deficit(i).map_or(0.0, |d| d - 0.5 * rate);
            if acc > best.1 {
                best = (i + 1, acc);
            }
        }
        best.0
    } else {
        p.energy_wh.len()
    };

    // What the meter stopped reporting, and what the node lost, over the same windows.
    // The energy is measured against a longer history (up to four weeks before the drop):
    // a household's weeks vary by 10 to 15 %, and one week is a noisy yardstick.
    let long_from = drop.onset.saturating_sub(28);
    let long_usual: Vec<f64> = (0..per_day)
        .map(|j| {
            let v: Vec<f64> = (long_from..drop.onset)
                .filter_map(|d| p.energy_wh.get(window(d, j)).copied().flatten())
                .collect();
            mean(&v).unwrap_or(0.0)
        })
        .collect();
    let cond = start..end;
    let known: Vec<f64> = cond
        .clone()
        .filter_map(|i| {
            let e = p.energy_wh.get(i).copied().flatten()?;
            Some(long_usual[(i - first) % per_day] - e)
        })
        .collect();
    if known.is_empty() {
        return None;
    }
    let windows = (end - start) as f64;
    let meter_deficit = known.iter().sum::<f64>() * windows / known.len() as f64;
    let load: Vec<f64> = cond
        .clone()
        .filter_map(|i| node_load_wh.get(i).copied().flatten())
        .collect();
    if let Some(load) = mean(&load) {
        if meter_deficit < params.min_share_of_node * load * windows {
            return None;
        }
    }
    // The node's usual residual over the same week as the meter's usual energy: the days just
    // before the drop, so that a node already drifting (a loss model meeting loads it never
    // saw) shows that drift in its spread instead of a rise that starts with the drop.
    let before_node: Vec<f64> = node_daily[baseline_from..drop.onset]
        .iter()
        .flatten()
        .copied()
        .collect();
    let after_node: Vec<f64> = node_daily[drop.onset..drop.end]
        .iter()
        .flatten()
        .copied()
        .collect();
    if before_node.len() < 3 || after_node.is_empty() || meter_deficit <= 0.0 {
        return None;
    }
    let node_level = median(&before_node)?;
    let node_spread = mad_sigma(&before_node)
        .unwrap_or(0.0)
        .max(0.01 * node_level.abs())
        .max(1.0);
    let node_z = (median(&after_node)? - node_level)
        / (MEDIAN_SE
            * node_spread
            * (1.0 / after_node.len() as f64 + 1.0 / before_node.len() as f64).sqrt());
    let node_known: Vec<f64> = cond.clone().filter_map(|i| node[i]).collect();
    if node_known.is_empty() {
        return None;
    }
    let node_rise = (node_known.iter().sum::<f64>() / node_known.len() as f64
        - node_level / per_day as f64)
        * windows;
    let ratio = node_rise / meter_deficit;
    if node_z < params.node_z || ratio < params.min_match_ratio || ratio > params.max_match_ratio {
        return None;
    }

    // Supporting signs: the node's daily residual follows the meter's daily deficit, and
    // what the meter still reports has lost its usual shape or gained zeros.
    let day_pairs: Vec<(f64, f64)> = daily
        .iter()
        .zip(&node_daily)
        .filter_map(|(d, r)| Some((usual_day - (*d)?, (*r)?)))
        .collect();
    let follow = rank_correlation(
        &day_pairs.iter().map(|x| x.0).collect::<Vec<_>>(),
        &day_pairs.iter().map(|x| x.1).collect::<Vec<_>>(),
    )
    .unwrap_or(0.0);
    let zeros = |r: std::ops::Range<usize>| {
        let v: Vec<f64> = r
            .filter_map(|i| p.energy_wh.get(i).copied().flatten())
            .collect();
        if v.is_empty() {
            0.0
        } else {
            v.iter().filter(|e| **e <= 0.0).count() as f64 / v.len() as f64
        }
    };
    if follow < params.min_daily_correlation {
        return None;
    }
    // Confidence: 0.6 for a match at the thresholds, more as the node's rise is clearer, as
    // it equals what the meter hid (the meter then explains the whole loss) and as it follows
    // the meter day by day; less when the node lost far more than the meter hid (another
    // meter, or a diversion, may explain it, and this meter's drop may be a coincidence).
    let size_fit = if (0.7..=1.5).contains(&ratio) {
        0.1
    } else if ratio > 2.0 {
        -0.1
    } else {
        0.0
    };
    let confidence = (0.6
        + 0.15 * ((node_z - params.node_z) / params.node_z.max(1e-9)).clamp(0.0, 1.0)
        + size_fit
        + 0.1 * follow.clamp(0.0, 1.0))
    .clamp(0.5, 0.95);
    let days_shown = daily.len().saturating_sub(28);
    let series: Vec<serde_json::Value> = (days_shown..daily.len())
        .map(|d| {
            json!({
                "day_start": day_start(p, first, d),
                "reported_kwh": daily[d].map(kwh),
                "node_excess_kwh": node_daily.get(d).copied().flatten().map(kwh),
            })
        })
        .collect();
    Some(Finding {
        started_at: p.window(start).start,
        ended_at: drop.recovered.then(|| p.window(end).start),
        energy_wh: meter_deficit,
        score: round(drop.z.min(node_z), 2),
        confidence,
        evidence: json!({
            "signal": "drop_matched_by_node_residual",
            "why": "the meter's reported energy fell and its node's unexplained residual rose by a comparable amount over the same days",
            "score": "min(meter_drop_z, node_rise_z)",
            "baseline_kwh_per_day": kwh(drop.before_log.exp()),
            "reported_kwh_per_day": kwh(drop.after_log.exp()),
            "drop_share": round(1.0 - (drop.after_log - drop.before_log).exp(), 3),
            "meter_drop_z": round(drop.z, 2),
            "unreported_wh": meter_deficit.round(),
            "node_rise_wh": node_rise.round(),
            "node_rise_z": round(node_z, 2),
            "node_rise_over_deficit": round(ratio, 3),
            "daily_correlation": round(follow, 3),
            "zero_windows_share_before": round(zeros(first..start), 3),
            "zero_windows_share_during": round(zeros(start..end), 3),
            "thresholds": {
                "drop_z": params.drop_z,
                "node_z": params.node_z,
                "min_match_ratio": params.min_match_ratio,
                "max_match_ratio": params.max_match_ratio,
                "min_share_of_node": params.min_share_of_node,
                "min_daily_correlation": params.min_daily_correlation,
                "min_drop_share": params.min_drop_share,
            },
            "daily": series,
        }),
        ..on_meter(p)
    })
}

/// Matches of drops against their nodes' rises ([`residual_match`]), each with the node it
/// balances at, judged together: a node's rise that one meter's deficit explains cannot also
/// confirm a neighbour whose own use fell at the same time. At each node, the matches are taken
/// in order of how closely the node followed the meter day by day (then of confidence); each
/// next one must still match by `min_match_ratio` once the deficits of those already taken,
/// over the time they overlap it, are subtracted from its node's rise. Two meters tampered at
/// once both keep their match (the node lost both deficits); an honest neighbour's coincident
/// drop does not. Periods still open run to `until`.
pub fn shared_rises(
    matches: Vec<(usize, Finding)>,
    until: DateTime<Utc>,
    params: &TamperParams,
) -> Vec<Finding> {
    let number = |f: &Finding, key: &str| f.evidence.get(key).and_then(|v| v.as_f64());
    let mut by_node: Vec<(usize, Vec<Finding>)> = Vec::new();
    for (node, f) in matches {
        match by_node.iter_mut().find(|(n, _)| *n == node) {
            Some((_, group)) => group.push(f),
            None => by_node.push((node, vec![f])),
        }
    }
    let mut out = Vec::new();
    for (_, mut group) in by_node {
        group.sort_by(|a, b| {
            let key = |f: &Finding| (number(f, "daily_correlation").unwrap_or(0.0), f.confidence);
            key(b)
                .partial_cmp(&key(a))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        // Taken so far: (start, end, deficit per second).
        let mut taken: Vec<(DateTime<Utc>, DateTime<Utc>, f64)> = Vec::new();
        for f in group {
            let start = f.started_at;
            let end = f.ended_at.unwrap_or(until).max(start);
            let seconds = (end - start).num_seconds().max(1) as f64;
            let explained: f64 = taken
                .iter()
                .map(|(s, e, rate)| {
                    let overlap = (end.min(*e) - start.max(*s)).num_seconds().max(0) as f64;
                    rate * overlap
                })
                .sum();
            let (Some(rise), Some(deficit)) =
                (number(&f, "node_rise_wh"), number(&f, "unreported_wh"))
            else {
                continue;
            };
            if deficit <= 0.0 || (rise - explained) / deficit < params.min_match_ratio {
                continue;
            }
            taken.push((start, end, deficit / seconds));
            out.push(f);
        }
    }
    out
}
