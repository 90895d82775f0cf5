//! Quota overrun: a licensed farm consuming more energy than it bought (DOMAIN.md, point 3).
//!
//! Farms buy ahead of time in blocks of at most 1 MWh, each spread by the ledger over its
//! delivery interval, so an hour's purchases rarely equal the hour's consumption. The rule
//! therefore nets metered against bought over rolling horizons (a day, and a week): a horizon is
//! overrun when its metered energy, reduced by the meter's accuracy (the farm gets the benefit
//! of the doubt), still exceeds its bought energy by more than a tolerance plus one purchase
//! block (a block bought a little early or late may fall on the wrong side of the horizon's
//! edge). The day catches large overruns at once; the week catches small overruns of small
//! farms, for which one block is a large share of a day. Overlapping overrun horizons form one
//! condition; its edges are placed where the cumulative excess turns (see
//! [`crate::spans`]), and its unpaid energy is metered minus bought over it.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use gridwatch_core::{LicenceId, RegionId};

use crate::finding::{Finding, Kind};
use crate::spans::{merge, refine, spans_of_blocks, Span};
use crate::stats::{median, round};

/// One hour of a licence: what its farm meters measured and what it bought for the hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HourQuota {
    /// Start of the hour (UTC, hour-aligned).
    pub start: DateTime<Utc>,
    /// Energy measured by the licence's farm meters in the hour, Wh; `None` when unknown.
    pub metered_wh: Option<f64>,
    /// Energy bought for the hour (purchases spread evenly over their delivery intervals), Wh.
    pub bought_wh: f64,
}

/// Thresholds of the quota rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaParams {
    /// Hours over which metered and bought energy are netted (default 24). It must be at least
    /// the longest delivery interval farms buy for: inside it, buying early or late is not an
    /// overrun. Conditions separated by less than this are one condition.
    pub horizon_hours: u32,
    /// A second, longer netting horizon (default 168: a week). A small farm's purchase is a
    /// large share of its day, so its timing allowance hides a small overrun over a day; over
    /// a week the overrun outgrows it. 0 disables it.
    pub long_horizon_hours: u32,
    /// Excess over bought energy tolerated beyond the meter's accuracy, percent of the
    /// horizon's metered energy (default 0.5). With class 0.5S meters, a large farm is flagged
    /// from about 1 % unpaid; 2 % is flagged within a day. A farm that buys what it draws has a
    /// horizon's excess near 0 plus or minus its meter's error, so a false flag needs a meter
    /// more than twice out of its class.
    pub tolerance_pct: f64,
    /// How many of the farm's typical daily wiggles a horizon's balance may show before it
    /// counts (default 2). Purchases come in blocks delivered over intervals that do not
    /// follow the farm's draw hour by hour, so its cumulative balance (metered minus bought)
    /// wiggles around its trend; a horizon's edge can cut a wiggle anywhere. The wiggle is
    /// measured on the farm's own data (median over UTC days of the range of the day's balance
    /// around its linear trend), so a farm buying hour by hour gets almost no allowance and
    /// one buying lumpy blocks gets what its lumps need. A sustained overrun is a trend, which
    /// this allowance does not absorb: it outgrows it over the long horizon.
    pub timing_allowance_wiggles: f64,
    /// Conditions whose unpaid energy beyond accuracy is below this are not reported, Wh
    /// (default 10,000: about 100 KZT, not worth an investigator's time).
    pub min_unpaid_wh: f64,
    /// Share of a horizon's hours that must have metered energy for it to be judged (default
    /// 0.75); a horizon with less is neither overrun nor clean.
    pub min_coverage: f64,
}

impl Default for QuotaParams {
    fn default() -> Self {
        QuotaParams {
            horizon_hours: 24,
            long_horizon_hours: 168,
            tolerance_pct: 0.5,
            timing_allowance_wiggles: 2.0,
            min_unpaid_wh: 10_000.0,
            min_coverage: 0.75,
        }
    }
}

/// The overrun conditions of `licence` in `hours` (sorted by start; missing hours are unknown).
/// `accuracy_pct` is the accuracy class of its farm meters.
pub fn quota_overrun(
    licence: &LicenceId,
    region: Option<&RegionId>,
    hours: &[HourQuota],
    accuracy_pct: f64,
    params: &QuotaParams,
) -> Vec<Finding> {
    let Some(first) = hours.first().map(|h| h.start) else {
        return Vec::new();
    };
    // Dense by time, so that a missing hour is a hole, not a shift.
    let n = hours
        .iter()
        .map(|h| (h.start - first).num_hours() + 1)
        .max()
        .unwrap_or(0)
        .max(0) as usize;
    let mut metered: Vec<Option<f64>> = vec![None; n];
    let mut bought = vec![0.0; n];
    for h in hours {
        let i = (h.start - first).num_hours();
        if let Ok(i) = usize::try_from(i) {
            if i < n {
                metered[i] = h.metered_wh.filter(|m| m.is_finite());
                bought[i] = if h.bought_wh.is_finite() {
                    h.bought_wh
                } else {
                    0.0
                };
            }
        }
    }
    let accuracy = accuracy_pct.max(0.0) / 100.0;
    let tolerance = params.tolerance_pct.max(0.0) / 100.0;
    let horizon = params.horizon_hours.max(1) as usize;

    // Per hour, the excess beyond accuracy, to place a condition's edges. Unknown hours and
    // outages (the farm drawing less than half its usual) say nothing about whether the farm
    // pays for what it draws: they count 0 here, though their energy counts in the condition.
    let known: Vec<f64> = metered.iter().flatten().copied().collect();
    let usual = median(&known).unwrap_or(0.0);
    let z: Vec<f64> = (0..n)
        .map(|i| match metered[i] {
            Some(m) if m >= 0.5 * usual => m * (1.0 - accuracy) - bought[i],
            _ => 0.0,
        })
        .collect();
    // A horizon is overrun when, beyond accuracy, tolerance and purchase timing, metered
    // energy exceeds bought energy. Each horizon length gives its flagged spans.
    let timing_allowance =
        params.timing_allowance_wiggles.max(0.0) * daily_wiggle(first, &metered, &bought);
    let overrun = |block: std::ops::Range<usize>, length: usize| {
        let known: Vec<usize> = block.filter(|i| metered[*i].is_some()).collect();
        if (known.len() as f64) < params.min_coverage * length as f64 {
            return false;
        }
        let m: f64 = known.iter().filter_map(|i| metered[*i]).sum();
        let b: f64 = known.iter().map(|i| bought[*i]).sum();
        m * (1.0 - accuracy) - b > tolerance * m + timing_allowance
    };
    let mut coarse: Vec<Span> = Vec::new();
    let mut last_flagged = false;
    let long = params.long_horizon_hours as usize;
    for length in [horizon, long].into_iter().filter(|l| *l > 0) {
        let flagged: Vec<bool> = (0..n)
            .map(|t| t + 1 >= length && overrun(t + 1 - length..t + 1, length))
            .collect();
        last_flagged |= flagged.last().copied().unwrap_or(false);
        coarse.extend(spans_of_blocks(&flagged, length, horizon));
    }
    let coarse = merge(coarse, horizon);
    let slack = horizon.max(long);

    let time = |i: usize| first + Duration::hours(i as i64);
    coarse
        .into_iter()
        .filter_map(|coarse| {
            let ongoing = last_flagged && coarse.end == n;
            let mut span = refine(&z, coarse, slack, ongoing);
            let began_before = span.start == 0;
            // A condition starts at its first metered hour, not in the unknown hours before it
            // (the period judged can begin before the farm's first reading).
            while span.start < span.end && metered[span.start].is_none() {
                span.start += 1;
            }
            let idx = span.start..span.end;
            let m: f64 = idx.clone().filter_map(|i| metered[i]).sum();
            let b: f64 = idx.clone().filter(|i| metered[*i].is_some()).map(|i| bought[i]).sum();
            let unpaid = m - b;
            let beyond = m * (1.0 - accuracy) - b;
            // The horizons passed the tolerance; over the whole condition, outages inside it
            // (energy bought and not drawn) count as credit, and what remains must still
            // exceed the purchase timing allowance.
            if beyond <= timing_allowance || beyond < params.min_unpaid_wh.max(0.0) {
                return None;
            }
            let excess_pct = if b > 0.0 { 100.0 * unpaid / b } else { 100.0 };
            let threshold_pct = 100.0 * (accuracy + tolerance);
            let daily: Vec<serde_json::Value> = idx
                .clone()
                .collect::<Vec<_>>()
                .chunk_by(|a, b| time(*a).date_naive() == time(*b).date_naive())
                .map(|day| {
                    let dm: f64 = day.iter().filter_map(|i| metered[*i]).sum();
                    let db: f64 = day.iter().filter(|i| metered[**i].is_some()).map(|i| bought[*i]).sum();
                    json!({"day": time(day[0]).date_naive().to_string(),
                           "metered_wh": dm.round(), "bought_wh": db.round()})
                })
                .collect();
            Some(Finding {
                kind: Kind::QuotaOverrun,
                region: region.cloned(),
                node: None,
                meter: None,
                licence: Some(licence.clone()),
                started_at: time(span.start),
                ended_at: (!ongoing).then(|| time(span.end)),
                energy_wh: unpaid.max(0.0),
                score: round(excess_pct, 3),
                confidence: (1.0 - 0.5 * threshold_pct / excess_pct.max(1e-9)).clamp(0.5, 0.99),
                suspects: Vec::new(),
                evidence: json!({
                    "rule": "metered energy x (1 - accuracy) above bought energy by more than the tolerance and the purchase timing allowance, netted over rolling horizons",
                    "score": "excess_pct: unpaid energy as a percentage of bought energy over the condition",
                    "metered_wh": m.round(),
                    "bought_wh": b.round(),
                    "unpaid_wh": unpaid.round(),
                    "accuracy_allowance_wh": (m * accuracy).round(),
                    "unpaid_beyond_accuracy_wh": beyond.round(),
                    "excess_pct": round(excess_pct, 3),
                    "threshold_pct": round(threshold_pct, 3),
                    "accuracy_pct": accuracy_pct,
                    "tolerance_pct": params.tolerance_pct,
                    "horizon_hours": horizon,
                    "long_horizon_hours": long,
                    "timing_allowance_wh": timing_allowance.round(),
                    "hours": span.end - span.start,
                    "hours_without_metered_energy": idx.filter(|i| metered[*i].is_none()).count(),
                    "began_before_period": began_before,
                    "daily": daily,
                }),
            })
        })
        .collect()
}

/// The farm's typical daily wiggle of its cumulative balance (metered minus bought) around its
/// trend, Wh: the median over UTC days (with at least 20 known hours) of the range of the
/// balance's residual from a straight line fitted over the day. Days keep the estimate stable
/// as the period slides; the median ignores the day of an outage.
fn daily_wiggle(first: DateTime<Utc>, metered: &[Option<f64>], bought: &[f64]) -> f64 {
    let day_of = |i: usize| (first + Duration::hours(i as i64)).date_naive();
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < metered.len() {
        let day = day_of(i);
        let mut points: Vec<(f64, f64)> = Vec::new();
        let mut balance = 0.0;
        while i < metered.len() && day_of(i) == day {
            if let Some(m) = metered[i] {
                balance += m - bought[i];
                points.push((i as f64, balance));
            }
            i += 1;
        }
        if points.len() < 20 {
            continue;
        }
        let n = points.len() as f64;
        let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
        let my = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let residuals: Vec<f64> = points
            .iter()
            .map(|p| p.1 - my - slope * (p.0 - mx))
            .collect();
        let high = residuals.iter().copied().fold(f64::MIN, f64::max);
        let low = residuals.iter().copied().fold(f64::MAX, f64::min);
        ranges.push(high - low);
    }
    median(&ranges).unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
