//! Topology changes (docs/CONTRACT.md section 4, `topology_change`): consumers fed from another
//! node than the registry says.
//!
//! When a diversion case opens at node A, the other balanced nodes of the region are searched
//! for an equal and opposite fall that started with it (`gridwatch_detect::shift`); the moved
//! meters are named by a regression of the shift on the losing node's consumer meters. Found,
//! the shift is one `topology_change` anomaly (node A, `evidence.from_node` B, the moved meters
//! as suspects) and no diversion: the moves are kept in `detector_moves`, the windows from the
//! shift's start are judged again with the moved meters counted on A, and A's remaining
//! residual is still tested for theft. While a young rise at A is mirrored at another node but
//! too short to name the meters (`ShiftParams::min_windows`), its diversion waits.
//!
//! A move applies until the registry puts the meter on A (an investigator confirmed the
//! change and applied it); from then on the registry itself balances the nodes right.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use tokio_postgres::Transaction;

use gridwatch_core::anomaly::{Kind, Severity};
use gridwatch_core::registry::MeterRole;
use gridwatch_detect::shift::{explain, opposite, Mirror, Shift};
use gridwatch_detect::topology::BalanceTerms;

use super::cases::ACTOR;
use super::evaluate::{window_number, Context, RegionState};
use super::grid::RegionInfo;
use crate::anomalies::NewAnomaly;

/// A consumer meter the detector counts on another node than the registry's.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// The meter (topology index).
    pub meter: usize,
    /// The node the registry puts it on (where its energy was missing).
    pub from_node: usize,
    /// The node that feeds it.
    pub to_node: usize,
    /// First window it is fed from `to_node`.
    pub since: DateTime<Utc>,
    /// The `topology_change` anomaly that named it.
    pub anomaly_id: String,
}

/// The region's moves still to apply: those whose meter the registry has not put on the node
/// that feeds it.
pub async fn load(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
) -> Result<Vec<Move>, tokio_postgres::Error> {
    let grid = ctx.grid;
    let meter_of: HashMap<i32, usize> = region
        .meters
        .iter()
        .zip(&region.meter_keys)
        .map(|(&m, &k)| (k, m))
        .collect();
    let node_of: HashMap<i32, usize> = grid
        .node_keys
        .iter()
        .enumerate()
        .map(|(i, &k)| (k, i))
        .collect();
    let rows = tx
        .query(
            "SELECT meter_key, from_node_key, to_node_key, since, anomaly_id FROM detector_moves
             WHERE region_key = $1 ORDER BY since, meter_key",
            &[&region.key],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let meter = *meter_of.get(&r.get::<_, i32>(0))?;
            let from_node = *node_of.get(&r.get::<_, i32>(1))?;
            let to_node = *node_of.get(&r.get::<_, i32>(2))?;
            (grid.topology.meters[meter].node != to_node).then(|| Move {
                meter,
                from_node,
                to_node,
                since: r.get(3),
                anomaly_id: r.get(4),
            })
        })
        .collect())
}

/// A region's balance terms (node, terms), parents first.
pub type Balanced = Vec<(usize, BalanceTerms)>;

/// The region's balance terms with the moves applied, by the first window each set of moves
/// applies from (ascending): a window uses the last entry starting at or before it, or the
/// registry's terms before the first.
pub fn terms_by_since(
    ctx: &Context<'_>,
    region: &RegionInfo,
    moves: &[Move],
) -> Vec<(DateTime<Utc>, Balanced)> {
    let mut starts: Vec<DateTime<Utc>> = moves.iter().map(|m| m.since).collect();
    starts.sort_unstable();
    starts.dedup();
    starts
        .into_iter()
        .map(|since| {
            let applied: Vec<(usize, usize)> = moves
                .iter()
                .filter(|m| m.since <= since)
                .map(|m| (m.meter, m.to_node))
                .collect();
            let topology = ctx.grid.topology.with_moves(&applied);
            let balanced = region
                .balanced
                .iter()
                .map(|(n, registered)| {
                    (
                        *n,
                        topology
                            .balance_terms(*n)
                            .unwrap_or_else(|| registered.clone()),
                    )
                })
                .collect();
            (since, balanced)
        })
        .collect()
}

/// The earliest start of moves whose windows have not been judged again with them yet; marks
/// them judged (in the caller's transaction, with the evaluation that re-judges them).
pub async fn rejudge_from(
    tx: &Transaction<'_>,
    region_key: i32,
) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "WITH marked AS (
                 UPDATE detector_moves SET rejudged = true
                 WHERE region_key = $1 AND NOT rejudged RETURNING since)
             SELECT min(since) FROM marked",
            &[&region_key],
        )
        .await?;
    Ok(row.get(0))
}

/// What the search made of a diversion case's rise.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A topology change explains it: the anomaly raised.
    Moved(String),
    /// Another node mirrors it, but the rise is too young to name the meters: raise nothing yet.
    Wait,
    /// Not a topology change: raise the diversion.
    Diversion,
}

/// Looks for the topology change behind the rise that opened a case at `node` at `start`,
/// judged up to `until`. `checkpoint`: whether the full search is due in this evaluation
/// (it reads every balanced node's windows, so an open case is searched at a few ages only);
/// `open`: whether the case still lasts (an ended one never waits).
#[allow(clippy::too_many_arguments)]
pub async fn look_for(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    rs: &RegionState,
    node: usize,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
    checkpoint: bool,
    open: bool,
) -> anyhow::Result<Lookup> {
    let p = &ctx.cfg.topology;
    let len = ctx.spec.length();
    let windows = ((until - start).num_seconds() / ctx.spec.seconds).max(0) as usize;
    let young = windows < p.min_windows;
    if (young && !open) || (!young && !checkpoint) {
        return Ok(Lookup::Diversion);
    }
    let end = until.min(start + len * p.max_windows as i32);
    let before_from = start - len * p.min_windows as i32;
    let grid = ctx.grid;
    let a_key = grid.node_keys[node];
    let own = excess_by_node(tx, &[a_key], start, end).await?;
    let Some(a) = own.get(&a_key) else {
        return Ok(Lookup::Diversion);
    };
    let gained: f64 = a.values().sum();
    if gained <= 0.0 {
        return Ok(Lookup::Diversion);
    }
    // Only nodes whose fall over the same windows is near the rise are read window by window
    // (a region of 2,000 nodes has one or two).
    let near: Vec<i32> = tx
        .query(
            "SELECT node_key FROM detector_node_windows
             WHERE node_key = ANY($1) AND node_key <> $2
               AND window_start >= $3 AND window_start < $4 AND excess_wh IS NOT NULL
             GROUP BY node_key HAVING -sum(excess_wh) BETWEEN $5 AND $6",
            &[
                &region.balanced_keys,
                &a_key,
                &start,
                &end,
                &(p.min_ratio * gained),
                &(p.max_ratio * gained),
            ],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if near.is_empty() {
        return Ok(Lookup::Diversion);
    }
    let series = excess_by_node(tx, &near, before_from, end).await?;
    let starts: Vec<DateTime<Utc>> = ctx
        .spec
        .between(start, end)
        .iter()
        .map(|w| w.start)
        .collect();
    let gain: Vec<f64> = starts
        .iter()
        .map(|t| a.get(t).copied().unwrap_or(0.0))
        .collect();
    let relaxed = gridwatch_detect::shift::ShiftParams {
        min_windows: if young { 4 } else { p.min_windows },
        ..*p
    };
    // The other nodes whose fall mirrors the rise, best first.
    let mut mirrors: Vec<(usize, Mirror, Vec<f64>)> = Vec::new();
    for (other, terms) in &region.balanced {
        let key = grid.node_keys[*other];
        if *other == node {
            continue;
        }
        let Some(b) = series.get(&key) else {
            continue;
        };
        let loss: Vec<f64> = starts
            .iter()
            .map(|t| b.get(t).copied().unwrap_or(0.0))
            .collect();
        let before: Vec<f64> = ctx
            .spec
            .between(before_from, start)
            .iter()
            .filter_map(|w| b.get(&w.start).copied())
            .collect();
        let consumers = terms
            .fed
            .iter()
            .any(|&m| grid.topology.meters[m].role == MeterRole::Consumer);
        if let (true, Some(mirror)) = (consumers, opposite(&gain, &loss, &before, &relaxed)) {
            mirrors.push((*other, mirror, loss));
        }
    }
    if mirrors.is_empty() {
        return Ok(Lookup::Diversion);
    }
    if young {
        return Ok(Lookup::Wait);
    }
    mirrors.sort_by(|x, y| y.1.correlation.total_cmp(&x.1.correlation));
    let moved: Vec<i32> = tx
        .query(
            "SELECT meter_key FROM detector_moves WHERE region_key = $1",
            &[&region.key],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let numbers: Vec<i64> = starts
        .iter()
        .map(|t| window_number(&ctx.spec, *t))
        .collect();
    for (other, mirror, loss) in mirrors.iter().take(3) {
        let Some((_, terms)) = region.balanced.iter().find(|(n, _)| n == other) else {
            continue;
        };
        let meters: Vec<usize> = terms
            .fed
            .iter()
            .copied()
            .filter(|&m| {
                grid.topology.meters[m].role == MeterRole::Consumer
                    && !moved.contains(&grid.meter_keys[m])
            })
            .collect();
        let energies: Vec<Vec<Option<f64>>> = meters
            .iter()
            .map(|&m| {
                let key = grid.meter_keys[m];
                numbers.iter().map(|&k| rs.series.get(key, k)).collect()
            })
            .collect();
        // The two nodes' marginal loss on the moved load (their models' linear share).
        let marginal = |n: usize| {
            rs.day_models
                .as_ref()
                .and_then(|d| d.models.get(&grid.node_keys[n]))
                .map_or(0.0, |m| m.linear.clamp(0.0, 0.2))
        };
        let scale = 1.0 + 0.5 * (marginal(node) + marginal(*other));
        if let Some(shift) = explain(&gain, loss, &energies, scale, p) {
            let moved_meters: Vec<usize> = shift.meters.iter().map(|&j| meters[j]).collect();
            let id = record(
                tx,
                ctx,
                region,
                Found {
                    to_node: node,
                    from_node: *other,
                    since: start,
                    until: end,
                    meters: &moved_meters,
                    shift: &shift,
                    mirror,
                    gained_wh: gain.iter().sum(),
                    lost_wh: -loss.iter().sum::<f64>(),
                },
            )
            .await?;
            return Ok(Lookup::Moved(id));
        }
    }
    Ok(Lookup::Diversion)
}

/// A topology change the search found.
struct Found<'a> {
    to_node: usize,
    from_node: usize,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    meters: &'a [usize],
    shift: &'a Shift,
    mirror: &'a Mirror,
    gained_wh: f64,
    lost_wh: f64,
}

/// Raises the anomaly of a found change and keeps its moves, to be judged again from `since`.
async fn record(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    found: Found<'_>,
) -> anyhow::Result<String> {
    let grid = ctx.grid;
    let to = grid.topology.nodes[found.to_node].id.to_string();
    let from = grid.topology.nodes[found.from_node].id.to_string();
    let suspects: Vec<String> = found
        .meters
        .iter()
        .map(|&m| grid.topology.meters[m].id.to_string())
        .collect();
    let evidence = json!({
        "summary": format!(
            "{} consumer meter(s) registered on {from} appear to be fed from {to}: from {} on, {to} \
             received {:.1} kWh that none of its meters account for while {from} delivered {:.1} kWh \
             less than its meters report, window by window; the named meters' energy explains {:.0} % \
             of the shift. Not a theft: update the registry once confirmed.",
            suspects.len(),
            found.since.to_rfc3339_opts(SecondsFormat::Secs, true),
            found.gained_wh / 1000.0,
            found.lost_wh / 1000.0,
            100.0 * found.shift.explained,
        ),
        "from_node": from,
        "to_node": to,
        "moved_meters": suspects,
        "gained_wh": found.gained_wh.round(),
        "from_node_residual_wh": (-found.lost_wh).round(),
        "ratio": found.mirror.ratio,
        "correlation": found.mirror.correlation,
        "explained": found.shift.explained,
        "explained_variation": found.shift.explained_variation,
        "judged_windows": ((found.until - found.since).num_seconds() / ctx.spec.seconds),
    });
    let condition = NewAnomaly {
        kind: Kind::TopologyChange,
        condition_key: format!(
            "topology_change:{to}:{from}:{}",
            found.since.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        region: Some(region.id.clone()),
        node: Some(to),
        meter: None,
        licence: None,
        started_at: found.since,
        ended_at: None,
        detected_at: Utc::now(),
        energy_wh: found.shift.moved_wh.round() as i64,
        loss_kzt: (found.shift.moved_wh / 1000.0 * region.tariff_kzt_per_kwh * 100.0).round()
            / 100.0,
        score: (found.mirror.correlation * 100.0).round() / 100.0,
        confidence: found.shift.explained.clamp(0.0, 0.99),
        severity: Severity::Info,
        suspects,
        evidence,
    };
    let id = ctx.raise(tx, &condition, ACTOR).await?.id;
    let keys: Vec<i32> = found.meters.iter().map(|&m| grid.meter_keys[m]).collect();
    tx.execute(
        "INSERT INTO detector_moves (meter_key, region_key, from_node_key, to_node_key, since,
             anomaly_id)
         SELECT k, $2, $3, $4, $5, $6 FROM unnest($1::int[]) AS k
         ON CONFLICT (meter_key) DO NOTHING",
        &[
            &keys,
            &region.key,
            &grid.node_keys[found.from_node],
            &grid.node_keys[found.to_node],
            &found.since,
            &id,
        ],
    )
    .await?;
    Ok(id)
}

/// Brings each applied change's anomaly up to `until`: the moved meters' energy since the
/// change (what the registry still counts on the wrong node). Returns their ids.
pub async fn raise_applied(
    tx: &Transaction<'_>,
    moves: &[Move],
    until: DateTime<Utc>,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let mut by_anomaly: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for m in moves {
        by_anomaly.entry(&m.anomaly_id).or_insert(m.since);
    }
    let mut ids = Vec::new();
    for (id, since) in by_anomaly {
        if until <= since {
            continue;
        }
        // The moved meters' registers from the change to `until`; the region's tariff prices it.
        tx.execute(
            "WITH moved AS (
                 SELECT m.meter_key FROM detector_moves m WHERE m.anomaly_id = $1),
             energy AS (
                 SELECT coalesce(sum(hi - lo), 0)::float8 AS wh FROM (
                     SELECT max(r.energy_wh) AS hi, min(r.energy_wh) AS lo
                     FROM readings r JOIN moved USING (meter_key)
                     WHERE r.ts >= $2 AND r.ts <= $3
                     GROUP BY r.meter_key) per_meter)
             UPDATE anomalies a SET
                 energy_wh = greatest(a.energy_wh, round(energy.wh)::bigint),
                 loss_kzt = round((greatest(a.energy_wh, round(energy.wh)::bigint) / 1000.0
                     * g.tariff_kzt_per_kwh)::numeric, 2)::float8,
                 updated_at = now()
             FROM energy, regions g
             WHERE a.id = $1 AND g.id = a.region
               AND a.energy_wh < round(energy.wh)::bigint",
            &[&id, &since, &until],
        )
        .await?;
        ids.push(id.to_string());
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Whether the search is due for a case starting at `start` in an evaluation of windows
/// `[from, until)`: at a few of its ages (in windows), so that an open case costs a handful of
/// searches over its life.
pub fn checkpoint(
    ctx: &Context<'_>,
    start: DateTime<Utc>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> bool {
    let p = &ctx.cfg.topology;
    let len = ctx.spec.length();
    let mut age = p.min_windows.max(1);
    while age <= p.max_windows {
        let at = start + len * age as i32;
        if at > from && at <= until {
            return true;
        }
        age += age / 2;
    }
    false
}

/// Excess per window of `nodes` over `[from, to)`.
async fn excess_by_node(
    tx: &Transaction<'_>,
    nodes: &[i32],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashMap<i32, HashMap<DateTime<Utc>, f64>>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT node_key, window_start, excess_wh FROM detector_node_windows
             WHERE node_key = ANY($1) AND window_start >= $2 AND window_start < $3
               AND excess_wh IS NOT NULL",
            &[&nodes, &from, &to],
        )
        .await?;
    let mut out: HashMap<i32, HashMap<DateTime<Utc>, f64>> = HashMap::new();
    for r in &rows {
        out.entry(r.get(0)).or_default().insert(r.get(1), r.get(2));
    }
    Ok(out)
}
