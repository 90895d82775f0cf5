//! The analyses that judge meters and licences over hours and days rather than windows: quota
//! overruns and capacity (hourly), unlicensed mining, meter tampering and the regional mining
//! share (daily). They run for every hour (day) end the cycle's windows crossed, in order, and
//! again for an hour (day) end whose windows late readings re-judged, each over a fixed trailing
//! period before its end. Each recomputes its findings from scratch and withdraws what an
//! earlier run of the same period raised and this one does not: the same data gives the same
//! anomalies however it was cut into cycles and however late it came. The hourly analyses run
//! in the windows' transaction; the daily ones, seconds of work for a large region, after it
//! is committed, one transaction per day (`detector_progress.analysed_until`), so that a
//! window's diversion findings never wait for them.

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, TimeDelta, Utc};
use tokio_postgres::Transaction;

use chrono_tz::Tz;
use gridwatch_core::days;
use gridwatch_core::registry::MeterClass;
use gridwatch_core::{LicenceId, MeterId, RegionId};
use gridwatch_detect::capacity::capacity_exceeded;
use gridwatch_detect::finding::{severity, Finding, Kind};
use gridwatch_detect::loss::{excess_over_history, slot_of, ResidualSample};
use gridwatch_detect::mining::unlicensed_mining;
use gridwatch_detect::profile::MeterProfile;
use gridwatch_detect::quota::{quota_overrun, HourQuota};
use gridwatch_detect::share::{merge_days, mining_share};
use gridwatch_detect::tamper::{
    clean_history_end, daily_ratios, merge_overlapping, meter_tamper, peer_factors_of_each,
    residual_match, shared_rises,
};
use gridwatch_detect::window::Window;

use super::cases::ACTOR;
use super::evaluate::{window_number, Context, RegionState};
use super::grid::RegionInfo;
use crate::anomalies::NewAnomaly;
use crate::metrics::Metrics;

/// The evidence field naming the day end whose analysis raised a daily finding.
pub const ANALYSED_UNTIL: &str = "analysed_until";
/// Evidence field: the event time up to which the detector had judged when it flagged the
/// condition: for a diversion, the end of the window that opened its case; for the other
/// kinds, the end of the hour or day judged (updated as later judgements keep it). The
/// `created` entry of an anomaly's history keeps the first value: how much event time passed
/// between the condition's onset and its flag.
pub const JUDGED_UNTIL: &str = "judged_until";

/// Days of history the per-meter analyses look at (mining wants 10 or more, tampering 14).
pub const PROFILE_DAYS: i64 = 14;
/// Hours the licence analyses look back at least (the quota's long horizon is a week, the
/// capacity step rule three days).
const LICENCE_HOURS: i64 = 7 * 24 + 24;

fn floor(t: DateTime<Utc>, unit: TimeDelta) -> DateTime<Utc> {
    t.duration_trunc(unit).unwrap_or(t)
}

/// Runs the hourly analyses due after the windows from `first` to `until` were evaluated, the
/// region having been evaluated until `previous` before them (`first` is earlier when late
/// readings re-judged windows). They are cheap and run in the windows' transaction.
#[allow(clippy::too_many_arguments)]
pub async fn hourly(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    rs: &RegionState,
    previous: Option<DateTime<Utc>>,
    first: DateTime<Utc>,
    until: DateTime<Utc>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    // Every hour end after the first window judged, up to the last.
    let since = previous.unwrap_or(first);
    let first_hour = floor(first, TimeDelta::hours(1)) + Duration::hours(1);
    let last_hour = floor(until, TimeDelta::hours(1));
    if first_hour <= last_hour {
        licences(tx, ctx, region, rs, first_hour, last_hour, since, metrics).await?;
    }
    Ok(())
}

/// The day ends (local midnights in `zone`) after `after` up to `until`, in order: the days
/// whose analyses are due once the windows up to `until` are judged and those up to `after`
/// were analysed.
pub fn day_ends(zone: Tz, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut day = days::start_of_next_day(zone, after);
    let mut out = Vec::new();
    while day <= until {
        out.push(day);
        day = days::start_of_next_day(zone, day);
    }
    out
}

/// Runs the daily analyses of the day ending at `day_end` (every meter's mining and tamper
/// analyses, the regional mining share) and withdraws what an earlier run of that day raised
/// and this one does not. A day's analysis reads the windows before its end only, so it is the
/// same whether it runs at once or days later.
pub async fn daily(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    rs: &RegionState,
    day_end: DateTime<Utc>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut raised = meters(tx, ctx, region, rs, day_end).await?;
    raised.extend(share(tx, ctx, region, rs, day_end, metrics).await?);
    super::cases::withdraw_unraised_daily_findings(tx, &region.id, day_end, &raised).await?;
    tracing::debug!(
        region = %region.id,
        day_end = %day_end,
        ms = started.elapsed().as_millis() as u64,
        "Analysed a day's meters."
    );
    Ok(())
}

/// Energy of `keys` summed per window over `windows` (None where any is unknown).
fn summed(
    rs: &RegionState,
    ctx: &Context<'_>,
    keys: &[i32],
    windows: &[Window],
) -> Vec<Option<f64>> {
    windows
        .iter()
        .map(|w| {
            let k = window_number(&ctx.spec, w.start);
            keys.iter()
                .map(|key| rs.series.get(*key, k))
                .sum::<Option<f64>>()
        })
        .collect()
}

/// Judges every licence of the region at each hour end from `first_end` to `last_end`: each
/// judgement reads the [`LICENCE_HOURS`] before its hour end, so that it is the same whether it
/// runs at that hour or in a replay days later.
#[allow(clippy::too_many_arguments)]
async fn licences(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    rs: &RegionState,
    first_end: DateTime<Utc>,
    last_end: DateTime<Utc>,
    since: DateTime<Utc>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let grid = ctx.grid;
    let span = Duration::hours(LICENCE_HOURS);
    let from = first_end - span;
    let oldest = rs
        .series
        .oldest()
        .map(|k| DateTime::<Utc>::from_timestamp(k * ctx.spec.seconds, 0).unwrap_or(from))
        .unwrap_or(from);
    let from = from.max(floor(oldest, TimeDelta::hours(1)) + Duration::hours(1));
    let to = last_end;
    if from >= to {
        return Ok(());
    }
    let windows = ctx.spec.between(from, to);
    let per_hour = (3600 / ctx.spec.seconds).max(1) as usize;
    let region_id = RegionId::parse(&region.id).ok();
    for licence in grid.licences.values() {
        if licence.region.as_deref() != Some(region.id.as_str()) || licence.meters.is_empty() {
            continue;
        }
        let Ok(licence_id) = LicenceId::parse(&licence.id) else {
            continue;
        };
        let keys: Vec<i32> = licence.meters.iter().map(|&m| grid.meter_keys[m]).collect();
        let accuracy = licence
            .meters
            .iter()
            .map(|&m| grid.topology.meters[m].accuracy_pct)
            .fold(0.0, f64::max);
        let energy = summed(rs, ctx, &keys, &windows);
        let bought = bought_per_hour(tx, &licence.id, from, to).await?;
        let hours: Vec<HourQuota> = energy
            .chunks(per_hour)
            .zip(&bought)
            .map(|(chunk, (start, bought_wh))| HourQuota {
                start: *start,
                metered_wh: chunk.iter().copied().sum::<Option<f64>>(),
                bought_wh: *bought_wh,
            })
            .collect();
        let window_energy: Vec<(Window, Option<f64>)> = windows
            .iter()
            .copied()
            .zip(energy.iter().copied())
            .collect();
        let mut end = first_end.max(from + Duration::hours(1));
        while end <= last_end {
            let start = (end - span).max(from);
            let in_hours = |t: DateTime<Utc>| t >= start && t < end;
            let judged: Vec<HourQuota> = hours
                .iter()
                .filter(|h| in_hours(h.start))
                .copied()
                .collect();
            let judged_windows: Vec<(Window, Option<f64>)> = window_energy
                .iter()
                .filter(|(w, _)| in_hours(w.start))
                .copied()
                .collect();
            let mut findings = quota_overrun(
                &licence_id,
                region_id.as_ref(),
                &judged,
                accuracy,
                &ctx.cfg.quota,
            );
            for finding in &mut findings {
                unpaid_since_its_start(tx, ctx, region, &keys, finding, end).await?;
            }
            findings.extend(capacity_exceeded(
                &licence_id,
                region_id.as_ref(),
                licence.registered_machines,
                licence.machine_rated_w,
                &judged_windows,
                accuracy,
                &ctx.cfg.capacity,
            ));
            let mut raised = Vec::new();
            for finding in &findings {
                raised.push(raise_finding(tx, ctx, region, finding, None, end).await?);
            }
            // The period is judged again whole at every hour: a purchase that arrived late (the
            // API or the market feed was down) or a late reading can undo an overrun raised
            // before it. Such an anomaly is withdrawn, never left standing.
            super::cases::withdraw_unraised_licence_findings(tx, &licence.id, start, &raised)
                .await?;
            end += Duration::hours(1);
        }
        // What the hours new since the last run metered and bought.
        for (h, q) in hours.iter().enumerate() {
            if q.start + Duration::hours(1) > since {
                if let Some(m) = q.metered_wh {
                    metrics
                        .detector
                        .licence_metered_wh
                        .with_label_values(&[&licence.id])
                        .inc_by(m.max(0.0));
                }
                metrics
                    .detector
                    .licence_bought_wh
                    .with_label_values(&[&licence.id])
                    .inc_by(bought.get(h).map_or(0.0, |b| b.1.max(0.0)));
            }
        }
    }
    Ok(())
}

/// An overrun that began before the week judged grows while it lasts: its unpaid energy is
/// metered minus bought since the start its anomaly already has (the registers give the metered
/// energy over any period), not only over the week.
async fn unpaid_since_its_start(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    keys: &[i32],
    finding: &mut Finding,
    period_end: DateTime<Utc>,
) -> anyhow::Result<()> {
    if finding.kind != Kind::QuotaOverrun
        || finding.evidence["began_before_period"] != serde_json::Value::Bool(true)
    {
        return Ok(());
    }
    let Some(licence) = finding.licence.as_ref().map(LicenceId::to_string) else {
        return Ok(());
    };
    let Some((start, _)) = standing(tx, region, finding).await? else {
        return Ok(());
    };
    let end = finding.ended_at.unwrap_or(period_end);
    if start >= finding.started_at || end <= start {
        return Ok(());
    }
    // From the farm's first reading in the condition: hours before it metered nothing, and the
    // quota rule counts purchases only for hours with metered energy.
    let first: Option<DateTime<Utc>> = tx
        .query_one(
            "SELECT min(ts) FROM readings WHERE meter_key = ANY($1) AND ts >= $2 AND ts < $3",
            &[&keys, &start, &end],
        )
        .await?
        .get(0);
    let Some(start) = first else {
        return Ok(());
    };
    if end <= start {
        return Ok(());
    }
    let whole = [Window { start, end }];
    let energies = super::readings::energies(
        tx,
        keys,
        &whole,
        Duration::hours(ctx.cfg.max_gap_hours),
        Duration::seconds(ctx.cfg.boundary_tolerance_secs),
    )
    .await?;
    let Some(metered) = keys
        .iter()
        .map(|k| energies.get(*k, 0))
        .sum::<Option<f64>>()
    else {
        return Ok(());
    };
    let bought: f64 = bought_per_hour(tx, &licence, start, end)
        .await?
        .iter()
        .map(|(_, b)| b)
        .sum();
    let unpaid = (metered - bought).max(0.0);
    finding.energy_wh = finding.energy_wh.max(unpaid);
    if let serde_json::Value::Object(map) = &mut finding.evidence {
        map.insert("since_start_metered_wh".into(), metered.round().into());
        map.insert("since_start_bought_wh".into(), bought.round().into());
    }
    Ok(())
}

/// The standing anomaly of `finding`'s kind and subject that covers its start: (start, energy).
async fn standing(
    tx: &Transaction<'_>,
    region: &RegionInfo,
    finding: &Finding,
) -> Result<Option<(DateTime<Utc>, i64)>, tokio_postgres::Error> {
    let row = tx
        .query_opt(
            "SELECT started_at, energy_wh FROM anomalies
             WHERE kind = $1 AND region IS NOT DISTINCT FROM $2
               AND meter IS NOT DISTINCT FROM $3 AND licence IS NOT DISTINCT FROM $4
               AND started_at <= $5 AND (ended_at IS NULL OR ended_at >= $5)
               AND NOT evidence ? 'withdrawn'
             ORDER BY started_at LIMIT 1",
            &[
                &finding.kind.as_str(),
                &Some(region.id.clone()),
                &finding.meter.as_ref().map(MeterId::to_string),
                &finding.licence.as_ref().map(LicenceId::to_string),
                &finding.started_at,
            ],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// A licence's purchases spread evenly over their delivery intervals, per hour of `[from, to)`.
async fn bought_per_hour(
    tx: &Transaction<'_>,
    licence: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, f64)>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT h, coalesce(sum(
                 p.energy_wh::float8
                 * extract(epoch FROM least(p.delivery_end, h + interval '1 hour')
                                    - greatest(p.delivery_start, h))::float8
                 / extract(epoch FROM p.delivery_end - p.delivery_start)::float8), 0)::float8
             FROM generate_series($2::timestamptz, $3::timestamptz - interval '1 hour', interval '1 hour') AS h
             LEFT JOIN (purchases p JOIN licences l ON l.licence_key = p.licence_key AND l.id = $1)
               ON p.delivery_start < h + interval '1 hour' AND p.delivery_end > h
             GROUP BY h ORDER BY h",
            &[&licence, &from, &to],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The per-meter analyses over the `PROFILE_DAYS` before `day_end`; returns the anomalies raised.
async fn meters(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    rs: &RegionState,
    day_end: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let grid = ctx.grid;
    // Two weeks, or as much as the region has been evaluated for (a young deployment).
    let evaluated_from: Option<DateTime<Utc>> = tx
        .query_one(
            "SELECT min(window_start) FROM detector_node_windows WHERE node_key = ANY($1)",
            &[&region.balanced_keys],
        )
        .await?
        .get(0);
    let start = days::start_of_day(region.zone, day_end - Duration::days(PROFILE_DAYS))
        .max(evaluated_from.map_or(day_end, |f| days::start_of_day(region.zone, f)));
    if start >= day_end {
        return Ok(Vec::new());
    }
    let first = window_number(&ctx.spec, start);
    let count = ((day_end - start).num_seconds() / ctx.spec.seconds).max(0) as usize;
    let Ok(region_id) = RegionId::parse(&region.id) else {
        return Ok(Vec::new());
    };
    let consumer_meters: Vec<usize> = region
        .meters
        .iter()
        .copied()
        .filter(|&m| grid.topology.meters[m].role == gridwatch_core::registry::MeterRole::Consumer)
        .collect();
    let profiles: Vec<MeterProfile> = super::on_every_core(&consumer_meters, |_, &m| {
        let meter = &grid.topology.meters[m];
        let key = grid.meter_keys[m];
        MeterProfile {
            meter: meter.id.clone(),
            class: meter.class,
            node: grid.topology.nodes[meter.node].id.clone(),
            region: region_id.clone(),
            licence: meter.licence.clone(),
            accuracy_pct: meter.accuracy_pct,
            spec: ctx.spec,
            start,
            energy_wh: (0..count as i64)
                .map(|i| rs.series.get(key, first + i))
                .collect(),
            backwards: (0..count as i64)
                .map(|i| rs.series.backwards(key, first + i))
                .collect(),
        }
    });

    let mut findings = unlicensed_mining(&profiles, &ctx.cfg.mining);

    // Tampering: in each meter's own profile, and, for a meter whose reported energy dropped,
    // that drop against the residual of the node where it balances. Every balanced node is
    // asked, in a diversion case or not: a household's h1 or subtraction takes a few per cent
    // of a small transformer's energy, too little to open a case, but its node's residual
    // rises as much as the meter's reports fall. The rise is measured above a loss model
    // learned from the node's windows before the drop only: the detector's daily models learn
    // from every window no case flagged, and would have learned such a theft as loss.
    // A drop is judged against the common movement of the other consumers balanced at the
    // same node: weather, a holiday or a silent concentrator moves them all at once.
    let consumers: Vec<(&MeterProfile, usize)> = profiles
        .iter()
        .zip(consumer_meters.iter().copied())
        .filter(|(p, _)| !(p.class == MeterClass::Mining && p.licence.is_some()))
        .collect();
    let placed: Vec<(Option<usize>, Vec<Option<f64>>)> =
        super::on_every_core(&consumers, |_, (p, m)| {
            (balancing_node(grid, *m), daily_ratios(p, &ctx.cfg.tamper))
        });
    let mut at_node: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, (node, _)) in placed.iter().enumerate() {
        if let Some(node) = node {
            at_node.entry(*node).or_default().push(i);
        }
    }
    // Each consumer's peers: the others balanced at its node.
    let mut peers: Vec<Vec<Option<f64>>> = vec![Vec::new(); consumers.len()];
    for members in at_node.values() {
        let ratios: Vec<&[Option<f64>]> = members.iter().map(|&j| placed[j].1.as_slice()).collect();
        for (&j, common) in members.iter().zip(peer_factors_of_each(&ratios)) {
            peers[j] = common;
        }
    }
    // Each meter's own analyses are independent: they run on every core.
    let params = ctx.cfg.tamper;
    let judged = super::on_every_core(&consumers, |i, (profile, _)| {
        let found = meter_tamper(profile, &params);
        let drop = placed[i].0.and_then(|node| {
            clean_history_end(profile, &peers[i], &params).map(|end| (node, end, peers[i].clone()))
        });
        (found, drop)
    });
    let mut tamper = Vec::new();
    let mut dropped = Vec::new();
    for ((found, drop), (profile, _)) in judged.into_iter().zip(&consumers) {
        tamper.extend(found);
        if let Some((node, history_end, common)) = drop {
            dropped.push((*profile, node, history_end, common));
        }
    }
    let mut nodes: Vec<usize> = dropped.iter().map(|d| d.1).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let samples = node_samples(tx, ctx, &nodes, start, day_end).await?;
    let drivers: HashMap<usize, Vec<Vec<Option<f64>>>> = nodes
        .iter()
        .map(|&n| (n, large_fed_meters(grid, region, rs, n, first, count)))
        .collect();
    let mut yardsticks: HashMap<(usize, usize), Option<Vec<Option<f64>>>> = HashMap::new();
    let mut matches = Vec::new();
    for (profile, node, history_end, common) in dropped {
        let Some(series) = samples.get(&node) else {
            continue;
        };
        let excess = yardsticks.entry((node, history_end)).or_insert_with(|| {
            let drivers: Vec<&[Option<f64>]> = drivers
                .get(&node)
                .into_iter()
                .flatten()
                .map(Vec::as_slice)
                .collect();
            excess_over_history(series, &drivers, history_end, &ctx.cfg.loss)
        });
        let load: Vec<Option<f64>> = series.iter().map(|s| s.map(|s| s.load_wh)).collect();
        if let Some(found) = excess
            .as_deref()
            .and_then(|excess| residual_match(profile, excess, &load, &common, &ctx.cfg.tamper))
        {
            matches.push((node, found));
        }
    }
    // A node's rise confirms only as many deficits as it lost.
    tamper.extend(shared_rises(matches, day_end, &ctx.cfg.tamper));
    findings.extend(merge_overlapping(tamper));
    let mut raised = Vec::new();
    for finding in &findings {
        raised.push(raise_finding(tx, ctx, region, finding, Some(day_end), day_end).await?);
    }
    Ok(raised)
}

/// Least share of a node's fed energy a meter must carry to be one of its drivers.
const DRIVER_SHARE: f64 = 0.05;
/// Most drivers per node: the largest.
const MAX_DRIVERS: usize = 8;

/// The per-window energies, over `count` windows from window number `first`, of the meters a
/// node feeds that carry at least [`DRIVER_SHARE`] of its energy (child input meters,
/// industrial, commercial and farm meters; households aside: a home's share of a small
/// transformer is its own use, not a meter error worth learning), the largest
/// [`MAX_DRIVERS`]. A plant or a farm switching on and off moves the node's residual by its
/// own meter's error, which the node's total load cannot tell.
fn large_fed_meters(
    grid: &super::grid::Grid,
    region: &RegionInfo,
    rs: &RegionState,
    node: usize,
    first: i64,
    count: usize,
) -> Vec<Vec<Option<f64>>> {
    let Some((_, terms)) = region.balanced.iter().find(|(n, _)| *n == node) else {
        return Vec::new();
    };
    let series = |m: usize| -> Vec<Option<f64>> {
        let key = grid.meter_keys[m];
        (0..count as i64)
            .map(|i| rs.series.get(key, first + i))
            .collect()
    };
    let mean = |v: &[Option<f64>]| {
        let known: Vec<f64> = v.iter().flatten().copied().collect();
        known.iter().sum::<f64>() / known.len().max(1) as f64
    };
    let fed: Vec<(usize, Vec<Option<f64>>, f64)> = terms
        .fed
        .iter()
        .map(|&m| {
            let s = series(m);
            let e = mean(&s);
            (m, s, e)
        })
        .collect();
    let total: f64 = fed.iter().map(|f| f.2).sum();
    let mut large: Vec<(usize, Vec<Option<f64>>, f64)> = fed
        .into_iter()
        .filter(|(m, _, e)| {
            grid.topology.meters[*m].class != MeterClass::Household && *e >= DRIVER_SHARE * total
        })
        .collect();
    large.sort_by(|a, b| b.2.total_cmp(&a.2));
    large
        .into_iter()
        .take(MAX_DRIVERS)
        .filter(|_| total > 0.0)
        .map(|(_, s, _)| s)
        .collect()
}

/// The nearest node at or above a meter's that has an input meter (where its energy balances).
fn balancing_node(grid: &super::grid::Grid, meter: usize) -> Option<usize> {
    let mut node = Some(grid.topology.meters[meter].node);
    while let Some(n) = node {
        if grid.topology.nodes[n].input_meter.is_some() {
            return Some(n);
        }
        node = grid.topology.nodes[n].parent;
    }
    None
}

/// Per node (topology index), its balance per window of `[from, to)` as the loss model reads
/// it (load delivered, input less fed, half hour), where its input was known.
async fn node_samples(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    nodes: &[usize],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashMap<usize, Vec<Option<ResidualSample>>>, tokio_postgres::Error> {
    let grid = ctx.grid;
    let first = window_number(&ctx.spec, from);
    let count = ((to - from).num_seconds() / ctx.spec.seconds).max(0) as usize;
    let keys: Vec<i32> = nodes.iter().map(|&n| grid.node_keys[n]).collect();
    let rows = tx
        .query(
            "SELECT node_key, window_start, fed_wh, input_wh - fed_wh FROM detector_node_windows
             WHERE node_key = ANY($1) AND window_start >= $2 AND window_start < $3
               AND input_wh IS NOT NULL",
            &[&keys, &from, &to],
        )
        .await?;
    let mut by_key: HashMap<i32, Vec<Option<ResidualSample>>> = HashMap::new();
    for row in rows {
        let key: i32 = row.get(0);
        let start: DateTime<Utc> = row.get(1);
        let series = by_key.entry(key).or_insert_with(|| vec![None; count]);
        let i = window_number(&ctx.spec, start) - first;
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| series.get_mut(i)) {
            *slot = Some(ResidualSample {
                load_wh: row.get(2),
                residual_wh: row.get(3),
                slot: slot_of(start),
            });
        }
    }
    Ok(nodes
        .iter()
        .filter_map(|&n| by_key.remove(&grid.node_keys[n]).map(|s| (n, s)))
        .collect())
}

/// The regional licensed-mining share, per day over the week before `day_end`; returns the
/// anomalies raised.
async fn share(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    rs: &RegionState,
    day_end: DateTime<Utc>,
    metrics: &Metrics,
) -> anyhow::Result<Vec<String>> {
    let grid = ctx.grid;
    let Ok(region_id) = RegionId::parse(&region.id) else {
        return Ok(Vec::new());
    };
    let roots: Vec<i32> = region
        .roots
        .iter()
        .filter_map(|&n| grid.topology.nodes[n].input_meter)
        .map(|m| grid.meter_keys[m])
        .collect();
    let mining: Vec<i32> = region
        .meters
        .iter()
        .copied()
        .filter(|&m| grid.is_licensed_mining(m))
        .map(|m| grid.meter_keys[m])
        .collect();
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    let days = 7;
    let mut findings: Vec<Finding> = Vec::new();
    for d in (1..=days).rev() {
        let day_start = days::start_of_day(region.zone, day_end - Duration::days(d));
        let windows = ctx
            .spec
            .between(day_start, days::start_of_next_day(region.zone, day_start));
        let input: Option<f64> = summed(rs, ctx, &roots, &windows).into_iter().sum();
        let mined: f64 = summed(rs, ctx, &mining, &windows)
            .into_iter()
            .flatten()
            .sum();
        let Some(input) = input else { continue };
        if d == 1 && input > 0.0 {
            metrics
                .detector
                .region_mining_share
                .with_label_values(&[&region.id])
                .set(mined / input);
        }
        if let Some(found) = mining_share(&region_id, day_start, input, mined, &ctx.cfg.share) {
            findings.push(found);
        }
    }
    let mut raised = Vec::new();
    for finding in merge_days(findings, day_end, &ctx.cfg.share) {
        raised.push(raise_finding(tx, ctx, region, &finding, Some(day_end), day_end).await?);
    }
    Ok(raised)
}

/// Raises a finding as an anomaly. A condition that began before the period analysed keeps the
/// start (and at least the energy) its anomaly already has. A daily analysis names the day end
/// it ran for in the evidence (`analysed_until`): a later run for the same day withdraws what
/// it no longer finds. Every finding names the event time judged up to (`judged_until`).
async fn raise_finding(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    finding: &Finding,
    analysed_until: Option<DateTime<Utc>>,
    judged_until: DateTime<Utc>,
) -> anyhow::Result<String> {
    let subject = finding
        .meter
        .as_ref()
        .map(MeterId::to_string)
        .or_else(|| finding.licence.as_ref().map(LicenceId::to_string))
        .or_else(|| finding.node.as_ref().map(ToString::to_string))
        .unwrap_or_else(|| region.id.clone());
    let mut started_at = finding.started_at;
    let mut energy_wh = finding.energy_wh.max(0.0);
    if finding.evidence["began_before_period"] == serde_json::Value::Bool(true) {
        if let Some((start, energy)) = standing(tx, region, finding).await? {
            started_at = start;
            energy_wh = energy_wh.max(energy as f64);
            // A rig's excess power, estimated over the profile read, runs since the start its
            // anomaly already has: the energy is that power over the whole condition.
            let excess_w = finding.evidence["excess_w"].as_f64();
            if let (Kind::UnlicensedMining, Some(excess_w), Some(until)) =
                (finding.kind, excess_w, finding.ended_at.or(analysed_until))
            {
                let hours = (until - started_at).num_seconds().max(0) as f64 / 3600.0;
                energy_wh = energy_wh.max(excess_w.max(0.0) * hours);
            }
        }
    }
    let loss_kzt = energy_wh / 1000.0 * region.tariff_kzt_per_kwh;
    let thresholds = gridwatch_detect::finding::SeverityThresholds::default();
    let level = severity(finding.kind, loss_kzt, 0.0, &thresholds);
    let condition = NewAnomaly {
        kind: finding.kind,
        condition_key: format!(
            "{}:{subject}:{}",
            finding.kind.as_str(),
            started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        region: Some(region.id.clone()),
        node: finding.node.as_ref().map(ToString::to_string),
        meter: finding.meter.as_ref().map(MeterId::to_string),
        licence: finding.licence.as_ref().map(LicenceId::to_string),
        started_at,
        ended_at: finding.ended_at,
        detected_at: Utc::now(),
        energy_wh: energy_wh.round() as i64,
        loss_kzt: (loss_kzt * 100.0).round() / 100.0,
        score: (finding.score * 100.0).round() / 100.0,
        confidence: finding.confidence,
        severity: level,
        suspects: finding.suspects.clone(),
        evidence: match finding.evidence.clone() {
            serde_json::Value::Object(mut map) => {
                if let Some(day_end) = analysed_until {
                    map.insert(
                        ANALYSED_UNTIL.into(),
                        day_end.to_rfc3339_opts(SecondsFormat::Secs, true).into(),
                    );
                }
                map.insert(
                    JUDGED_UNTIL.into(),
                    judged_until
                        .to_rfc3339_opts(SecondsFormat::Secs, true)
                        .into(),
                );
                serde_json::Value::Object(map)
            }
            evidence => evidence,
        },
    };
    Ok(ctx.raise(tx, &condition, ACTOR).await?.id)
}
