//! Turning diversion cases and data gaps into anomalies, with their suspects and evidence.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde_json::json;
use tokio_postgres::Transaction;

use gridwatch_core::registry::MeterRole;
use gridwatch_detect::diversion::{Case, EndedCase};
use gridwatch_detect::finding::{severity, Kind};
use gridwatch_detect::suspects::{rank, Candidate};

use super::evaluate::{average_power_w, window_number, Context, RegionState};
use super::grid::RegionInfo;
use crate::anomalies::{NewAnomaly, Severity};

/// (hour of day, energy Wh) per window.
type HourSeries = Vec<(u8, Option<f64>)>;

/// Who the history names for what the detector does.
pub const ACTOR: &str = "detector";

/// A case or gap to raise.
#[derive(Debug, Clone)]
pub enum CaseEvent {
    /// A diversion case still open after the last window evaluated.
    Open {
        /// The node (topology index).
        node: usize,
        /// The case.
        case: Case,
    },
    /// A diversion case that ended.
    Ended {
        /// The node.
        node: usize,
        /// The case.
        case: EndedCase,
    },
    /// A data gap still open.
    GapOpen {
        /// The node.
        node: usize,
        /// Its first window.
        start: DateTime<Utc>,
    },
    /// A data gap that ended.
    GapEnded {
        /// The node.
        node: usize,
        /// Its first window.
        start: DateTime<Utc>,
        /// Its end.
        end: DateTime<Utc>,
    },
}

impl CaseEvent {
    /// A diversion case's rise: (node, first window, judged up to, still open); `None` for a
    /// data gap. An open case is judged up to `last_end`, the end of the run evaluated.
    pub fn rise(
        &self,
        last_end: Option<DateTime<Utc>>,
    ) -> Option<(usize, DateTime<Utc>, DateTime<Utc>, bool)> {
        match self {
            CaseEvent::Open { node, case } => {
                Some((*node, case.start, last_end.unwrap_or(case.start), true))
            }
            CaseEvent::Ended { node, case } => Some((*node, case.start, case.end, false)),
            CaseEvent::GapOpen { .. } | CaseEvent::GapEnded { .. } => None,
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Confidence of a diversion from how far its strongest window stood beyond the per-window
/// threshold: 0.6 for a case only the cumulative test caught, rising to 0.99 for one ten times
/// beyond.
fn diversion_confidence(max_z: f64, threshold: f64) -> f64 {
    if max_z <= threshold {
        0.6
    } else {
        (0.7 + 0.29 * ((max_z / threshold).ln() / 10f64.ln()).min(1.0)).min(0.99)
    }
}

/// Raises (creates or updates) the anomaly of a diversion case.
pub async fn raise_diversion(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    rs: &RegionState,
    event: &CaseEvent,
    last_end: Option<DateTime<Utc>>,
) -> anyhow::Result<String> {
    let (node, start, end, energy_wh, max_z, flagged_at) = match event {
        CaseEvent::Open { node, case } => (
            *node,
            case.start,
            None,
            case.excess_wh.max(0.0),
            case.max_z,
            case.flagged_at,
        ),
        CaseEvent::Ended { node, case } => (
            *node,
            case.start,
            Some(case.end),
            case.excess_wh,
            case.max_z,
            case.flagged_at,
        ),
        _ => anyhow::bail!("not a diversion event"),
    };
    let grid = ctx.grid;
    let node_id = grid.topology.nodes[node].id.to_string();
    let until = end.or(last_end).unwrap_or(start);
    let power_w = average_power_w(energy_wh, start, until.max(start + ctx.spec.length()));
    let loss_kzt = energy_wh / 1000.0 * region.tariff_kzt_per_kwh;
    let severity = severity(Kind::Diversion, loss_kzt, power_w, &ctx.cfg.severity);

    // Suspects: the meters this node feeds, each against its own days before the case.
    let terms = region
        .balanced
        .iter()
        .find(|(n, _)| *n == node)
        .map(|(_, t)| t.clone());
    let mut suspects = Vec::new();
    let mut boundary_to_verify: Vec<String> = Vec::new();
    if let Some(terms) = terms {
        // A small theft near the detection limit shows as a chain of cases that open and end;
        // the meters are judged over the whole chain of the past week, against the week before
        // it, so that a later case does not take the tampered days as its baseline.
        let chain_start = chain_start(tx, grid.node_keys[node], start)
            .await?
            .unwrap_or(start);
        let first = window_number(&ctx.spec, chain_start);
        let last = window_number(&ctx.spec, until) - 1;
        let before_from = first - 7 * ctx.spec.per_day();
        let hour_of = |k: i64| ((k * ctx.spec.seconds).rem_euclid(86_400) / 3600) as u8;
        let excess: Vec<Option<f64>> =
            excess_series(tx, grid.node_keys[node], chain_start, until).await?;
        let series: Vec<(String, HourSeries, HourSeries)> = terms
            .fed
            .iter()
            .map(|&m| {
                let key = grid.meter_keys[m];
                let before = (before_from..first)
                    .map(|k| (hour_of(k), rs.series.get(key, k)))
                    .collect();
                let during = (first..=last)
                    .map(|k| (hour_of(k), rs.series.get(key, k)))
                    .collect();
                (grid.topology.meters[m].id.to_string(), before, during)
            })
            .collect();
        let candidates: Vec<Candidate<'_>> = series
            .iter()
            .map(|(id, before, during)| Candidate {
                meter: id,
                before,
                during,
            })
            .collect();
        suspects = rank(&candidates, &excess, &ctx.cfg.suspects);
        // When consumers' drops do not explain the residual, the boundary meters below the node
        // are the place to look: an input meter rigged to under-read hides exactly such a
        // residual from its own node (the East Kazakhstan insiders' method). List them, largest
        // flow first, as meters to verify in the field.
        let explained: f64 = suspects.iter().map(|s| s.share.max(0.0)).sum();
        if explained < 0.5 {
            let mut boundary: Vec<(String, f64)> = terms
                .fed
                .iter()
                .filter(|&&m| grid.topology.meters[m].role == MeterRole::Input)
                .map(|&m| {
                    let key = grid.meter_keys[m];
                    let flow: f64 = (first..=last).filter_map(|k| rs.series.get(key, k)).sum();
                    (grid.topology.meters[m].id.to_string(), flow)
                })
                .filter(|(id, _)| !suspects.iter().any(|s| &s.meter == id))
                .collect();
            boundary.sort_by(|a, b| b.1.total_cmp(&a.1));
            boundary_to_verify = boundary.into_iter().map(|(id, _)| id).collect();
        }
    }
    // The other sign: nodes near this one whose residual ran below their band over the case.
    // A node below its parent whose residual falls while the parent's rises has an input meter
    // that under-reads (the insider's rigged meter: it hides the parent's loss from the child's
    // own balance); a sibling whose residual falls by as much received load that moved away.
    let below = below_band(tx, ctx, region, node, start, until).await?;
    for b in below.iter().rev() {
        if let Some(meter) = &b.input_meter {
            if b.relation == "below" {
                boundary_to_verify.retain(|m| m != meter);
                boundary_to_verify.insert(0, meter.clone());
            }
        }
    }
    let evidence = json!({
        "nodes_below_band": below.iter().map(|b| json!({
            "node": b.node,
            "relation": b.relation,
            "residual_wh": b.residual_wh.round(),
            "sigmas": (b.sigmas * 10.0).round() / 10.0,
            "input_meter": b.input_meter,
        })).collect::<Vec<_>>(),
        "summary": format!(
            "Node {node_id} received {:.1} MWh more than it delivered and lost in the case's windows \
             ({:.2} MW on average); its strongest window stood {:.1} standard deviations above the \
             expected losses.",
            energy_wh / 1e6, power_w / 1e6, max_z),
        "test": {
            "window_z_threshold": ctx.thresholds.window_z,
            "cusum_threshold": ctx.thresholds.cusum_h,
            "max_z": max_z,
            "false_case_every_node_days": ctx.cfg.diversion.false_case_every_node_days,
        },
        "average_power_w": power_w,
        "tariff_kzt_per_kwh": region.tariff_kzt_per_kwh,
        "suspects": suspects,
        "boundary_meters_to_verify": boundary_to_verify,
        "series": "per-window input, fed, expected loss and band: GET /api/v1/anomalies/{id}/evidence",
        super::analyses::JUDGED_UNTIL: rfc3339(flagged_at.or(last_end).unwrap_or(until)),
    });
    let condition = NewAnomaly {
        kind: Kind::Diversion,
        condition_key: format!("diversion:{node_id}:{}", rfc3339(start)),
        region: Some(region.id.clone()),
        node: Some(node_id),
        meter: None,
        licence: None,
        started_at: start,
        ended_at: end,
        detected_at: Utc::now(),
        energy_wh: energy_wh.round() as i64,
        loss_kzt: (loss_kzt * 100.0).round() / 100.0,
        score: (max_z * 100.0).round() / 100.0,
        confidence: diversion_confidence(max_z, ctx.thresholds.window_z),
        severity,
        suspects: suspects
            .iter()
            .map(|s| s.meter.clone())
            .chain(boundary_to_verify.iter().cloned())
            .collect(),
        evidence,
    };
    Ok(ctx.raise(tx, &condition, ACTOR).await?.id)
}

/// A node whose residual ran below its band while a case's residual rose.
struct BelowBand {
    node: String,
    /// `below` (inside the case's node) or `beside` (elsewhere under the same parent).
    relation: &'static str,
    residual_wh: f64,
    sigmas: f64,
    input_meter: Option<String>,
}

/// How far below its band a node's summed residual must run to be named (in its own sigmas):
/// three, as for a suspect meter.
const BELOW_BAND_SIGMAS: f64 = 3.0;

/// The balanced nodes inside `node` (its metered descendants) and beside it (its parent's other
/// metered descendants) whose residual over `[start, until)` (the last two days at most) ran
/// more than `BELOW_BAND_SIGMAS` below what their loss model expects, most negative first.
async fn below_band(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    node: usize,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<BelowBand>, tokio_postgres::Error> {
    let topology = &ctx.grid.topology;
    let descendants = |root: usize| {
        let mut out = Vec::new();
        let mut stack = topology.nodes[root].children.clone();
        while let Some(n) = stack.pop() {
            out.push(n);
            stack.extend(&topology.nodes[n].children);
        }
        out
    };
    let inside = descendants(node);
    let beside: Vec<usize> = topology.nodes[node]
        .parent
        .map(|p| {
            descendants(p)
                .into_iter()
                .filter(|n| *n != node && !inside.contains(n))
                .collect()
        })
        .unwrap_or_default();
    let balanced: Vec<(usize, &'static str)> = inside
        .iter()
        .map(|&n| (n, "below"))
        .chain(beside.iter().map(|&n| (n, "beside")))
        .filter(|(n, _)| region.balanced.iter().any(|(b, _)| b == n))
        .collect();
    if balanced.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<i32> = balanced
        .iter()
        .map(|(n, _)| ctx.grid.node_keys[*n])
        .collect();
    let from = start.max(until - chrono::Duration::days(2));
    let rows = tx
        .query(
            "SELECT node_key, sum(excess_wh), sqrt(sum(sigma_wh * sigma_wh)) FROM detector_node_windows
             WHERE node_key = ANY($1) AND window_start >= $2 AND window_start < $3
               AND excess_wh IS NOT NULL
             GROUP BY node_key HAVING sum(excess_wh) < -$4::float8 * sqrt(sum(sigma_wh * sigma_wh))",
            &[&keys, &from, &until, &BELOW_BAND_SIGMAS],
        )
        .await?;
    let mut out: Vec<BelowBand> = rows
        .iter()
        .filter_map(|r| {
            let key: i32 = r.get(0);
            let (n, relation) = balanced[keys.iter().position(|k| *k == key)?];
            let residual_wh: f64 = r.get(1);
            let sigma: f64 = r.get(2);
            Some(BelowBand {
                node: topology.nodes[n].id.to_string(),
                relation,
                residual_wh,
                sigmas: if sigma > 0.0 {
                    -residual_wh / sigma
                } else {
                    0.0
                },
                input_meter: topology.nodes[n]
                    .input_meter
                    .map(|m| topology.meters[m].id.to_string()),
            })
        })
        .collect();
    out.sort_by(|a, b| a.residual_wh.total_cmp(&b.residual_wh));
    Ok(out)
}

/// The node's excess per window over `[start, end)`.
/// The first window of the node flagged in a case during the week before `start`, if any.
async fn chain_start(
    tx: &Transaction<'_>,
    node_key: i32,
    start: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "SELECT min(window_start) FROM detector_node_windows
             WHERE node_key = $1 AND in_case
               AND window_start >= $2::timestamptz - interval '7 days'
               AND window_start < $2::timestamptz",
            &[&node_key, &start],
        )
        .await?;
    Ok(row.get(0))
}

async fn excess_series(
    tx: &Transaction<'_>,
    node_key: i32,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Option<f64>>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT excess_wh FROM detector_node_windows
             WHERE node_key = $1 AND window_start >= $2 AND window_start < $3
             ORDER BY window_start",
            &[&node_key, &start, &end],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Raises the anomaly of a data gap.
pub async fn raise_gap(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    event: &CaseEvent,
) -> anyhow::Result<String> {
    let (node, start, end) = match event {
        CaseEvent::GapOpen { node, start } => (*node, *start, None),
        CaseEvent::GapEnded { node, start, end } => (*node, *start, Some(*end)),
        _ => anyhow::bail!("not a data gap event"),
    };
    let node_id = ctx.grid.topology.nodes[node].id.to_string();
    let condition = NewAnomaly {
        kind: Kind::DataGap,
        condition_key: format!("data_gap:{node_id}:{}", rfc3339(start)),
        region: Some(region.id.clone()),
        node: Some(node_id.clone()),
        meter: None,
        licence: None,
        started_at: start,
        ended_at: end,
        detected_at: Utc::now(),
        energy_wh: 0,
        loss_kzt: 0.0,
        score: 0.0,
        confidence: 1.0,
        severity: Severity::Info,
        suspects: Vec::new(),
        evidence: json!({
            "summary": format!(
                "Node {node_id} could not be balanced from {} : its input meter was silent or \
                 less than {:.0} % of the energy it feeds was read. No diversion can be raised \
                 on it meanwhile.",
                rfc3339(start), ctx.cfg.diversion.min_coverage * 100.0),
            "hour_started": start.hour(),
        }),
    };
    Ok(ctx.raise(tx, &condition, ACTOR).await?.id)
}

/// Withdraws the quota and capacity anomalies of `licence` that started in the period judged
/// again from `from` and that this judgement did not raise again.
pub async fn withdraw_unraised_licence_findings(
    tx: &Transaction<'_>,
    licence: &str,
    from: DateTime<Utc>,
    raised: &[String],
) -> Result<(), tokio_postgres::Error> {
    withdraw(
        tx,
        Subject::Licence(licence),
        &["quota_overrun", "capacity_exceeded"],
        Scope::StartedFrom(from),
        raised,
        "Purchases or readings that arrived later showed this condition did not hold.",
    )
    .await
}

/// After the daily analyses for the day ending at `day_end` ran again (late readings re-judged
/// its windows), withdraws the region's findings an earlier run for that day raised and this one
/// did not.
pub async fn withdraw_unraised_daily_findings(
    tx: &Transaction<'_>,
    region: &str,
    day_end: DateTime<Utc>,
    raised: &[String],
) -> Result<(), tokio_postgres::Error> {
    withdraw(
        tx,
        Subject::Region(region),
        &["unlicensed_mining", "meter_tamper", "mining_share_exceeded"],
        Scope::AnalysedUntil(day_end),
        raised,
        "Readings that arrived late showed this condition did not hold.",
    )
    .await
}

/// Whose anomalies a withdrawal looks at.
enum Subject<'a> {
    Region(&'a str),
    Licence(&'a str),
}

/// Which of them: those that started at or after a time, or those last raised by the daily
/// analysis of a day.
enum Scope {
    StartedFrom(DateTime<Utc>),
    AnalysedUntil(DateTime<Utc>),
}

/// Withdraws the anomalies of `kinds`, `subject` and `scope` that are not in `raised` and still
/// stand: kept, with no energy, a zero-length period and `reason` in their evidence. One that
/// was `open` or `investigating` becomes `withdrawn` (CONTRACT.md section 4: it leaves the open
/// queue, the counts and the alerts), a transition by the detector with `reason` as its note;
/// an auditor's verdict (`confirmed`, `dismissed`) stands, and the change is an update. Either
/// way the history records it.
async fn withdraw(
    tx: &Transaction<'_>,
    subject: Subject<'_>,
    kinds: &[&str],
    scope: Scope,
    raised: &[String],
    reason: &str,
) -> Result<(), tokio_postgres::Error> {
    let (column, id) = match subject {
        Subject::Region(id) => ("region", id),
        Subject::Licence(id) => ("licence", id),
    };
    let (condition, at) = match scope {
        Scope::StartedFrom(from) => ("a.started_at >= $3::timestamptz".to_owned(), from),
        Scope::AnalysedUntil(day_end) => (
            format!(
                "a.evidence ->> '{}'
                     = to_char($3::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                super::analyses::ANALYSED_UNTIL
            ),
            day_end,
        ),
    };
    let rows = tx
        .query(
            &format!(
                "WITH old AS (
                     SELECT a.id, a.status FROM anomalies a
                     WHERE a.{column} = $1 AND a.kind = ANY($2) AND {condition}
                       AND NOT (a.id = ANY($4))
                       AND a.ended_at IS DISTINCT FROM a.started_at
                       AND NOT a.evidence ? 'withdrawn'
                     FOR UPDATE)
                 UPDATE anomalies a SET ended_at = a.started_at, energy_wh = 0, loss_kzt = 0,
                     severity = 'info', updated_at = now(),
                     status = CASE WHEN old.status IN ('open', 'investigating')
                                   THEN 'withdrawn' ELSE old.status END,
                     evidence = a.evidence || jsonb_build_object('withdrawn', $5::text)
                 FROM old WHERE a.id = old.id
                 RETURNING a.id, old.status, a.status"
            ),
            &[&id, &kinds, &at, &raised, &reason],
        )
        .await?;
    for row in rows {
        let id: String = row.get(0);
        let from: String = row.get(1);
        let to: String = row.get(2);
        let (action, note) = if from == to {
            ("updated", None)
        } else {
            ("transition", Some(reason))
        };
        tx.execute(
            &format!(
                "SELECT gridwatch_record_history(a.id, $2, $3, $4, a.status, $5, {})
                 FROM anomalies a WHERE a.id = $1",
                crate::anomalies::store::ANOMALY_JSON
            ),
            &[&id, &ACTOR, &action, &from, &note],
        )
        .await?;
    }
    Ok(())
}

/// After a run of windows from `from`, closes the diversion and data-gap anomalies of the
/// region's nodes that started in the run but that it no longer raises: late readings showed the
/// condition was not there (readings still on their way when the window was first judged). They
/// are kept, with no energy, a zero-length period and the reason in their evidence; their history
/// records the change.
pub async fn withdraw_unraised(
    tx: &Transaction<'_>,
    region: &RegionInfo,
    from: DateTime<Utc>,
    raised: &[String],
) -> Result<(), tokio_postgres::Error> {
    withdraw(
        tx,
        Subject::Region(&region.id),
        &["diversion", "data_gap"],
        Scope::StartedFrom(from),
        raised,
        "Readings that arrived late showed this condition did not hold.",
    )
    .await
}
