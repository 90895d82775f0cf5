//! Mining share: a region's licensed mining above its share of the region's input energy (the
//! "70/30" programme of DOMAIN.md: 30 % of new thermal output may go to mining).
//!
//! The programme speaks of a share of energy, so the rule is a ratio over a day: licensed
//! mining energy (the farm meters) against the energy entering the region (its root input
//! meters). Both are metered, so the region gets the benefit of both meters' accuracy: the
//! day is over its share only when the least mining it can have drawn exceeds the share of the
//! most energy that can have entered. [`merge_days`] turns consecutive days over the share
//! into one condition, as CONTRACT.md section 4 wants one anomaly per ongoing condition.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use gridwatch_core::RegionId;

use crate::finding::{Finding, Kind};
use crate::stats::round;

/// One day of a region: (start, input energy Wh, licensed mining energy Wh).
type Day = (DateTime<Utc>, f64, f64);

/// The programme's share and the meters' accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShareParams {
    /// Largest share of the region's input energy that licensed mining may take over a day
    /// (default 0.30: the programme's 30 %). Set per regulation profile.
    pub share: f64,
    /// Accuracy class of the meters on both sides, percent (default 0.5: boundary and farm
    /// meters are class 0.5S). A region is flagged from `share` x (1 + a) / (1 - a), 30.3 %
    /// by default; a region at its share is never flagged by meter error alone.
    pub accuracy_pct: f64,
}

impl Default for ShareParams {
    fn default() -> Self {
        ShareParams {
            share: 0.30,
            accuracy_pct: 0.5,
        }
    }
}

/// The day starting at `day_start` if the region's `licensed_mining_wh` exceeded its share of
/// `input_wh` beyond the meters' accuracy. The finding ends with the day; [`merge_days`] joins
/// consecutive days and leaves the last one open while it reaches the end of the data.
pub fn mining_share(
    region: &RegionId,
    day_start: DateTime<Utc>,
    input_wh: f64,
    licensed_mining_wh: f64,
    params: &ShareParams,
) -> Option<Finding> {
    if !(input_wh.is_finite() && licensed_mining_wh.is_finite()) || input_wh <= 0.0 {
        return None;
    }
    let accuracy = params.accuracy_pct.max(0.0) / 100.0;
    if licensed_mining_wh * (1.0 - accuracy) <= params.share * input_wh * (1.0 + accuracy) {
        return None;
    }
    Some(day_finding(
        region,
        day_start,
        vec![(day_start, input_wh, licensed_mining_wh)],
        params,
    ))
}

/// Joins consecutive days of the same region's [`Kind::MiningShareExceeded`] findings (as made
/// by [`mining_share`]) into one condition each, left open (`ended_at: None`) when it reaches
/// `data_end`, the end of the last day evaluated. Other findings pass through unchanged.
/// `params` must be those the days were found with (they set the merged confidence).
pub fn merge_days(
    findings: Vec<Finding>,
    data_end: DateTime<Utc>,
    params: &ShareParams,
) -> Vec<Finding> {
    let (mut days, mut out): (Vec<Finding>, Vec<Finding>) = findings
        .into_iter()
        .partition(|f| f.kind == Kind::MiningShareExceeded && f.region.is_some());
    days.sort_by(|a, b| (&a.region, a.started_at).cmp(&(&b.region, b.started_at)));
    let mut runs: Vec<(RegionId, Vec<Day>)> = Vec::new();
    for f in days {
        let Some(region) = f.region.clone() else {
            continue;
        };
        let series = daily_series(&f);
        let continues = runs.last().is_some_and(|(r, s)| {
            *r == region
                && s.last()
                    .is_some_and(|d| d.0 + Duration::days(1) >= f.started_at)
        });
        match runs.last_mut() {
            Some((_, s)) if continues => {
                for d in series {
                    if s.iter().all(|x| x.0 != d.0) {
                        s.push(d);
                    }
                }
            }
            _ => runs.push((region, series)),
        }
    }
    for (region, series) in runs {
        let Some(first) = series.first().map(|d| d.0) else {
            continue;
        };
        let mut f = day_finding(&region, first, series, params);
        if f.ended_at.is_some_and(|end| end >= data_end) {
            f.ended_at = None;
        }
        out.push(f);
    }
    out
}

/// One condition over `days` (start, input, mining), ending after the last day.
fn day_finding(
    region: &RegionId,
    started_at: DateTime<Utc>,
    days: Vec<Day>,
    params: &ShareParams,
) -> Finding {
    let input: f64 = days.iter().map(|d| d.1).sum();
    let mining: f64 = days.iter().map(|d| d.2).sum();
    let accuracy = params.accuracy_pct.max(0.0) / 100.0;
    let share_pct = 100.0 * mining / input.max(1e-9);
    let threshold_pct = 100.0 * params.share * (1.0 + accuracy) / (1.0 - accuracy).max(1e-9);
    let end = days
        .last()
        .map_or(started_at, |d| d.0)
        .checked_add_signed(Duration::days(1))
        .unwrap_or(started_at);
    Finding {
        kind: Kind::MiningShareExceeded,
        region: Some(region.clone()),
        node: None,
        meter: None,
        licence: None,
        started_at,
        ended_at: Some(end),
        energy_wh: (mining - params.share * input).max(0.0),
        score: round(share_pct, 3),
        // 0.5 at the threshold, +0.05 per percent (relative) above it: both sides are
        // metered, so beyond accuracy the only doubt left is the registry's licence list.
        confidence: (0.5 + 5.0 * (share_pct / threshold_pct - 1.0)).clamp(0.5, 0.99),
        suspects: Vec::new(),
        evidence: json!({
            "rule": "licensed mining energy x (1 - accuracy) above share x region input energy x (1 + accuracy), per day",
            "score": "share_pct: licensed mining as a percentage of the region's input energy over the condition",
            "share_pct": round(share_pct, 3),
            "allowed_share_pct": 100.0 * params.share,
            "threshold_pct": round(threshold_pct, 3),
            "input_wh": input.round(),
            "licensed_mining_wh": mining.round(),
            "mining_above_share_wh": (mining - params.share * input).max(0.0).round(),
            "accuracy_pct": params.accuracy_pct,
            "daily": days.iter().map(|d| json!({
                "day_start": d.0,
                "input_wh": d.1.round(),
                "licensed_mining_wh": d.2.round(),
                "share_pct": round(100.0 * d.2 / d.1.max(1e-9), 3),
            })).collect::<Vec<_>>(),
        }),
    }
}

/// The (start, input, mining) days of a finding made by [`day_finding`].
fn daily_series(f: &Finding) -> Vec<Day> {
    f.evidence["daily"]
        .as_array()
        .map(|days| {
            days.iter()
                .filter_map(|d| {
                    Some((
                        serde_json::from_value(d["day_start"].clone()).ok()?,
                        d["input_wh"].as_f64()?,
                        d["licensed_mining_wh"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> RegionId {
        RegionId::parse("east-kz").expect("id")
    }

    fn day(n: i64) -> DateTime<Utc> {
        "2025-10-01T00:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("time")
            + Duration::days(n)
    }

    #[test]
    fn a_region_at_or_below_its_share_is_not_flagged_even_with_meter_error() {
        let p = ShareParams::default();
        assert!(mining_share(&region(), day(0), 1e9, 0.30e9, &p).is_none());
        // 30.2 %: within what two class 0.5 meters can make of exactly 30 %.
        assert!(mining_share(&region(), day(0), 1e9, 0.302e9, &p).is_none());
        assert!(mining_share(&region(), day(0), 0.0, 1e9, &p).is_none());
    }

    #[test]
    fn a_region_over_its_share_is_flagged_with_the_energy_above_it() {
        let p = ShareParams::default();
        let f = mining_share(&region(), day(0), 1e9, 0.35e9, &p).expect("over");
        assert_eq!(f.kind, Kind::MiningShareExceeded);
        assert_eq!(f.region, Some(region()));
        assert!((f.energy_wh - 0.05e9).abs() < 1.0);
        assert!((f.score - 35.0).abs() < 1e-9);
        assert_eq!(f.ended_at, Some(day(1)));
        assert!(f.confidence > 0.9);
        let strict = ShareParams { share: 0.25, ..p };
        let f = mining_share(&region(), day(0), 1e9, 0.28e9, &strict).expect("over");
        assert!((f.energy_wh - 0.03e9).abs() < 1.0);
    }

    #[test]
    fn consecutive_days_merge_into_one_condition_open_at_the_end_of_the_data() {
        let p = ShareParams::default();
        let days: Vec<Finding> = [0, 1, 2, 5, 6]
            .iter()
            .filter_map(|d| mining_share(&region(), day(*d), 1e9, 0.32e9, &p))
            .collect();
        let other = RegionId::parse("west").expect("id");
        let mut all = days;
        all.push(mining_share(&other, day(2), 1e9, 0.5e9, &p).expect("over"));
        let merged = merge_days(all, day(7), &p);
        assert_eq!(merged.len(), 3);
        let east: Vec<&Finding> = merged
            .iter()
            .filter(|f| f.region == Some(region()))
            .collect();
        assert_eq!(east[0].started_at, day(0));
        assert_eq!(east[0].ended_at, Some(day(3)));
        assert!((east[0].energy_wh - 3.0 * 0.02e9).abs() < 10.0);
        assert_eq!(east[1].started_at, day(5));
        assert_eq!(east[1].ended_at, None);
        assert_eq!(east[1].evidence["daily"].as_array().map(Vec::len), Some(2));
        // Merging is idempotent: merged findings merge into themselves.
        let again = merge_days(merged.clone(), day(7), &p);
        assert_eq!(again.len(), 3);
        assert!(again
            .iter()
            .any(|f| f.started_at == day(0) && f.ended_at == Some(day(3))));
    }
}
