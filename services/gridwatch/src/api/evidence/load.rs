//! Gathering an anomaly's evidence from what the database keeps, by kind:
//!
//! - `diversion`: the node's balance per detector window (`detector_node_windows`): energy in,
//!   energy passed on, their difference against the expected losses and their normal range
//!   (expected ± threshold x sigma), over the case and some time around it;
//! - `data_gap`: the same node's coverage (share of its energy that was read);
//! - `unlicensed_mining`, `meter_tamper`: the meter's energy per hour before and after the
//!   onset, from differences of its cumulative register (and the register itself for tamper);
//! - `quota_overrun`, `capacity_exceeded`, `purchase_over_cap`: the licence's metered energy
//!   per hour against what it bought for each hour (purchases spread evenly over their
//!   delivery, as the ledger counts them) and its registered capacity.
//!
//! Data that is gone (dropped partitions, a meter removed from the registry) gives empty
//! series and a note, never an error.

use chrono::{DateTime, Duration, Utc};
use gridwatch_core::anomaly::Kind;
use tokio_postgres::GenericClient;

use gridwatch_detect::diversion::DiversionParams;

use super::model::{
    add_into, ceil, energy_per_bucket, floor, grid, points, Band, BandPoint, Evidence, Flagged,
    Panel, Point, Quantity,
};
use crate::anomalies::query::Anomaly;

/// The longest period a chart shows, in days.
pub const MAX_DAYS: i64 = 31;
const HOUR: i64 = 3600;

fn clamp(d: Duration, min: Duration, max: Duration) -> Duration {
    d.max(min).min(max)
}

fn interval_words(seconds: i64) -> String {
    match seconds {
        3600 => "hour".into(),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

fn base(anomaly: &Anomaly, tz: &str, title: String, explanation: String) -> Evidence {
    Evidence {
        anomaly: anomaly.id.clone(),
        kind: anomaly.kind.clone(),
        title,
        explanation,
        summary: anomaly.evidence["summary"].as_str().map(str::to_owned),
        from: anomaly.started_at,
        to: anomaly.ended_at.unwrap_or(anomaly.started_at),
        flagged: Flagged {
            started_at: anomaly.started_at,
            ended_at: anomaly.ended_at,
        },
        tz: tz.to_owned(),
        panels: Vec::new(),
        notes: Vec::new(),
    }
}

/// The evidence of `anomaly`, with local times labelled `tz` (`+05:00`).
pub async fn load(
    client: &impl GenericClient,
    anomaly: &Anomaly,
    tz: &str,
) -> Result<Evidence, tokio_postgres::Error> {
    let generic = || {
        Ok(base(
            anomaly,
            tz,
            format!("{} anomaly", anomaly.kind.replace('_', " ")),
            "gridwatch draws no chart for this kind of anomaly yet: the figures the detector \
             used are in the anomaly's recorded evidence."
                .into(),
        ))
    };
    // Every kind is placed here: the compiler asks where a new one is drawn.
    let Some(kind) = Kind::parse(&anomaly.kind) else {
        return generic();
    };
    match kind {
        Kind::Diversion | Kind::DataGap | Kind::TopologyChange => {
            node_balance(client, anomaly, tz).await
        }
        Kind::UnlicensedMining | Kind::MeterTamper => meter_profile(client, anomaly, tz).await,
        Kind::QuotaOverrun | Kind::CapacityExceeded | Kind::PurchaseOverCap => {
            farm(client, anomaly, tz).await
        }
        Kind::MiningShareExceeded => generic(),
    }
}

/// The last index holding data in any of `columns`, plus one (0 when none does).
fn used_len(columns: &[&[Option<f64>]]) -> usize {
    columns
        .iter()
        .filter_map(|c| c.iter().rposition(Option::is_some))
        .max()
        .map_or(0, |i| i + 1)
}

/// The buckets worth showing, of `n` from `from`: from the first holding data to the last
/// complete one (the bucket of the last reading is still filling and would show a false drop).
fn shown(
    columns: &[&[Option<f64>]],
    last_reading: Option<DateTime<Utc>>,
    from: DateTime<Utc>,
    n: usize,
) -> std::ops::Range<usize> {
    let first = columns
        .iter()
        .filter_map(|c| c.iter().position(Option::is_some))
        .min()
        .unwrap_or(0);
    let complete = last_reading.map_or(0, |t| {
        (t - from).num_seconds().div_euclid(HOUR).clamp(0, n as i64) as usize
    });
    first..used_len(columns).min(complete).max(first)
}

fn slice(values: &[Option<f64>], range: &std::ops::Range<usize>) -> Vec<Option<f64>> {
    values
        .get(range.clone())
        .map(<[_]>::to_vec)
        .unwrap_or_default()
}

async fn node_balance(
    client: &impl GenericClient,
    anomaly: &Anomaly,
    tz: &str,
) -> Result<Evidence, tokio_postgres::Error> {
    let gap = anomaly.kind == "data_gap";
    let node = anomaly.node.clone().unwrap_or_default();
    let node_kind: String = client
        .query_opt("SELECT kind FROM nodes WHERE id = $1", &[&node])
        .await?
        .map_or_else(|| "node".into(), |row| row.get(0));
    let what = format!("{node_kind} {node}");
    let (title, explanation) = if anomaly.kind == Kind::TopologyChange.as_str() {
        let from = anomaly.evidence["from_node"]
            .as_str()
            .unwrap_or("another node");
        (
            format!("Consumers registered on {from} are fed from {what}"),
            format!(
                "From the start of the shaded period the {node_kind} received energy that none of                  the meters registered on it accounted for, while {from} delivered less than its                  registered meters reported, by the same amount window by window. The named                  meters' consumption explains the shift: they are connected to {node} now. This                  is not a theft; once it is confirmed, the registry should put them on {node}.                  The charts count them where they are fed, so what remains is checked for theft                  as usual."
            ),
        )
    } else if gap {
        (
            format!("Too little of {what} could be read to check it for theft"),
            format!(
                "A {node_kind} can be checked only when its input meter and most of the meters \
                 it feeds report. The top chart shows the share of its energy that was read; in \
                 the shaded period it was too low, so theft there could not be seen."
            ),
        )
    } else {
        (
            format!("Energy went missing on {what}"),
            format!(
                "The top chart compares the energy measured going into the {node_kind} with the \
                 energy its customers' meters and the lines below it recorded. The bottom chart \
                 shows the difference, the energy that went missing, against what lines and \
                 transformers normally lose (the grey band is the normal range). In the shaded \
                 period the missing energy stayed above that range: electricity was taken \
                 without being metered."
            ),
        )
    };
    let mut evidence = base(anomaly, tz, title, explanation);
    let start = anomaly.started_at;
    let end = anomaly.ended_at.unwrap_or(start + Duration::days(MAX_DAYS));
    let context = clamp(
        anomaly.ended_at.map_or(Duration::days(2), |e| e - start),
        Duration::hours(6),
        Duration::days(2),
    );
    let from = start - context;
    let to = (end + context).min(from + Duration::days(MAX_DAYS));
    let rows = client
        .query(
            "SELECT w.window_start, w.input_wh, w.fed_wh, w.expected_wh, w.sigma_wh, w.coverage
             FROM detector_node_windows w JOIN nodes n ON n.node_key = w.node_key
             WHERE n.id = $1 AND w.window_start >= $2 AND w.window_start < $3
             ORDER BY w.window_start",
            &[&node, &from, &to],
        )
        .await?;
    let starts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.get(0)).collect();
    let step = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).num_seconds())
        .filter(|s| *s > 0)
        .min()
        .unwrap_or(900);
    let first = starts
        .first()
        .map_or(floor(from, step), |t| floor(*t, step));
    let last = starts.last().copied().unwrap_or(first);
    let n = (((last - first).num_seconds() / step) + 1).max(0) as usize;
    let slots = grid(first, step, n);
    let (mut input, mut fed, mut expected, mut sigma, mut coverage) = (
        vec![None; n],
        vec![None; n],
        vec![None; n],
        vec![None; n],
        vec![None; n],
    );
    for row in &rows {
        let t: DateTime<Utc> = row.get(0);
        let i = ((t - first).num_seconds() / step) as usize;
        if i < n {
            input[i] = row.get::<_, Option<f64>>(1);
            fed[i] = Some(row.get::<_, f64>(2));
            expected[i] = Some(row.get::<_, f64>(3));
            sigma[i] = Some(row.get::<_, f64>(4));
            coverage[i] = Some(row.get::<_, f64>(5) * 100.0);
        }
    }
    let z = anomaly.evidence["test"]["window_z_threshold"]
        .as_f64()
        .unwrap_or_else(|| {
            DiversionParams::default()
                .thresholds(86_400.0 / step as f64)
                .window_z
        });
    let missing: Vec<Option<f64>> = input
        .iter()
        .zip(&fed)
        .map(|(i, f)| Some((*i)? - (*f)?))
        .collect();
    let per = interval_words(step);
    let flows = Panel::new(
        format!("Energy into the {node_kind} and energy it passed on, per {per}"),
        Quantity::EnergyPerInterval,
        step,
    )
    .with(
        "input_wh",
        "Energy in (its input meter)",
        points(&slots, &input),
    )
    .with(
        "fed_wh",
        "Energy passed on (customers and lines below)",
        points(&slots, &fed),
    );
    let mut losses = Panel::new(
        format!("Energy that went missing, per {per}, against normal losses"),
        Quantity::EnergyPerInterval,
        step,
    )
    .with(
        "missing_wh",
        "Missing: energy in minus energy passed on",
        points(&slots, &missing),
    )
    .with_reference(
        "expected_loss_wh",
        "Expected losses of lines and transformers",
        points(&slots, &expected),
    );
    losses.band = Some(Band {
        label: format!("Normal range of losses (expected ± {z:.1} standard deviations)"),
        points: slots
            .iter()
            .zip(expected.iter().zip(&sigma))
            .filter_map(|(t, (e, s))| {
                let (e, s) = ((*e)?, (*s)?);
                Some(BandPoint {
                    t: *t,
                    low: e - z * s,
                    high: e + z * s,
                })
            })
            .collect(),
    });
    if gap {
        let share = Panel::new(
            format!("Share of the {node_kind}'s energy that was read, per {per}"),
            Quantity::Percent,
            step,
        )
        .with("coverage_pct", "Energy read (%)", points(&slots, &coverage));
        evidence.panels = vec![share, flows];
    } else {
        evidence.panels = vec![flows, losses];
    }
    evidence.from = first;
    evidence.to = first + Duration::seconds(step * n as i64);
    if rows.is_empty() {
        evidence.notes.push(format!(
            "No balance of {what} is stored for this period (the detector has not evaluated it, \
             or its data was removed)."
        ));
    }
    Ok(evidence)
}

/// A meter's register readings in `[from, to)`, one reading earlier included so that the
/// first hour has its difference.
async fn register(
    client: &impl GenericClient,
    meter: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, i64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT r.ts, r.energy_wh FROM readings r
             WHERE r.meter_key = (SELECT meter_key FROM meters WHERE id = $1)
               AND r.ts >= $2 AND r.ts < $3
             ORDER BY r.ts
             LIMIT 200000",
            &[&meter, &(from - Duration::hours(1)), &to],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

async fn meter_profile(
    client: &impl GenericClient,
    anomaly: &Anomaly,
    tz: &str,
) -> Result<Evidence, tokio_postgres::Error> {
    let tamper = anomaly.kind == "meter_tamper";
    let meter = anomaly.meter.clone().unwrap_or_default();
    let (title, explanation) = if tamper {
        (
            format!("Meter {meter}: its readings show tampering"),
            "A meter's register only ever counts up. The top chart shows the electricity it \
             recorded each hour, the bottom one the register itself; from the shaded period on \
             it ran backwards, stopped or jumped in a way no real consumption explains."
                .to_owned(),
        )
    } else {
        (
            format!("Meter {meter}: its consumption changed to a mining-like profile"),
            "The chart shows the electricity the meter recorded each hour, before and after the \
             shaded period. A household uses more in the evening and less at night; \
             cryptocurrency mining machines draw the same high power day and night. From the \
             shaded period on, this meter looks like the second."
                .to_owned(),
        )
    };
    let mut evidence = base(anomaly, tz, title, explanation);
    let start = anomaly.started_at;
    let lasted = anomaly.ended_at.map_or(Duration::days(7), |e| e - start);
    let before = clamp(lasted, Duration::days(2), Duration::days(7));
    let from = floor(start - before, HOUR);
    let end = anomaly
        .ended_at
        .map_or(from + Duration::days(MAX_DAYS), |e| {
            e + before.min(Duration::days(2))
        });
    let to = ceil(end.min(from + Duration::days(MAX_DAYS)), HOUR);
    let readings = register(client, &meter, from, to).await?;
    let n = ((to - from).num_seconds() / HOUR) as usize;
    let energy = energy_per_bucket(&readings, from, HOUR, n);
    let mut level: Vec<Option<f64>> = vec![None; n];
    for (t, wh) in &readings {
        let i = (*t - from).num_seconds().div_euclid(HOUR);
        if (0..n as i64).contains(&i) {
            level[i as usize] = Some(*wh as f64);
        }
    }
    let range = shown(&[&energy, &level], readings.last().map(|r| r.0), from, n);
    let onset = ((start - from).num_seconds() / HOUR).max(0) as usize;
    let earlier: Vec<f64> = energy.iter().take(onset).flatten().copied().collect();
    let (energy, level) = (slice(&energy, &range), slice(&level, &range));
    let shown_from = from + Duration::hours(range.start as i64);
    let slots = grid(shown_from, HOUR, range.len());
    let mut profile = Panel::new(
        format!("Electricity recorded by meter {meter}, per hour"),
        Quantity::EnergyPerInterval,
        HOUR,
    )
    .with("energy_wh", "Electricity used", points(&slots, &energy));
    if earlier.len() >= 6 {
        let typical = earlier.iter().sum::<f64>() / earlier.len() as f64;
        profile = profile.with_reference(
            "typical_before_wh",
            "Its average hour before the shaded period",
            slots
                .iter()
                .map(|t| Point {
                    t: *t,
                    value: Some(typical),
                })
                .collect(),
        );
    }
    evidence.panels.push(profile);
    if tamper {
        evidence.panels.push(
            Panel::new(
                format!("Register of meter {meter} (it should only go up)"),
                Quantity::Register,
                HOUR,
            )
            .with(
                "register_wh",
                "Register reading, last of each hour",
                points(&slots, &level),
            ),
        );
    }
    evidence.from = shown_from;
    evidence.to = shown_from + Duration::hours(range.len() as i64);
    if readings.is_empty() {
        evidence.notes.push(format!(
            "No readings of meter {meter} are stored for this period (it was silent, removed \
             from the registry, or its readings were deleted under the retention policy)."
        ));
    }
    Ok(evidence)
}

/// Energy bought by `licence` for each hour of `slots`, each purchase spread evenly over its
/// delivery interval.
async fn bought_per_hour(
    client: &impl GenericClient,
    licence_key: i32,
    from: DateTime<Utc>,
    n: usize,
) -> Result<Vec<Option<f64>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT ((extract(epoch FROM h - $2) / 3600)::int),
                    sum(p.energy_wh::float8
                        * extract(epoch FROM least(p.delivery_end, h + interval '1 hour')
                                             - greatest(p.delivery_start, h))::float8
                        / extract(epoch FROM p.delivery_end - p.delivery_start)::float8)
             FROM generate_series($2::timestamptz, $2::timestamptz + ($3::int - 1) * interval '1 hour',
                                  interval '1 hour') AS h
             JOIN purchases p ON p.licence_key = $1
                 AND p.delivery_start < h + interval '1 hour' AND p.delivery_end > h
             GROUP BY h",
            &[&licence_key, &from, &(n as i32)],
        )
        .await?;
    let mut out = vec![Some(0.0); n];
    for row in &rows {
        let i: i32 = row.get(0);
        if let Some(slot) = out.get_mut(i.max(0) as usize) {
            *slot = row.get::<_, Option<f64>>(1).or(Some(0.0));
        }
    }
    Ok(out)
}

/// A refused purchase (the `attempt` a `purchase_over_cap` anomaly records) spread per hour.
fn refused_per_hour(
    evidence: &serde_json::Value,
    from: DateTime<Utc>,
    n: usize,
) -> Option<Vec<Option<f64>>> {
    let attempt = &evidence["attempt"];
    let energy = attempt["energy_wh"].as_f64()?;
    let parse = |v: &serde_json::Value| {
        DateTime::parse_from_rfc3339(v.as_str()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let (start, end) = (
        parse(&attempt["delivery_start"])?,
        parse(&attempt["delivery_end"])?,
    );
    let seconds = (end - start).num_seconds();
    if seconds <= 0 {
        return None;
    }
    Some(
        grid(from, HOUR, n)
            .iter()
            .map(|h| {
                let overlap =
                    ((end.min(*h + Duration::hours(1)) - start.max(*h)).num_seconds()).max(0);
                (overlap > 0).then(|| energy * overlap as f64 / seconds as f64)
            })
            .collect(),
    )
}

async fn farm(
    client: &impl GenericClient,
    anomaly: &Anomaly,
    tz: &str,
) -> Result<Evidence, tokio_postgres::Error> {
    let licence = anomaly.licence.clone().unwrap_or_default();
    let found = client
        .query_opt(
            "SELECT licence_key, holder, registered_machines::float8 * machine_rated_w::float8
             FROM licences WHERE id = $1",
            &[&licence],
        )
        .await?;
    let holder: String = found.as_ref().map_or_else(String::new, |r| r.get(1));
    let who = if holder.is_empty() {
        format!("Mining farm {licence}")
    } else {
        format!("Mining farm {licence} ({holder})")
    };
    let (title, explanation) = match anomaly.kind.as_str() {
        "capacity_exceeded" => (
            format!("Mining farm {licence} drew more power than its registered machines can"),
            "The chart shows the electricity the farm's meters recorded each hour against the \
             most its registered machines can draw (dashed). Above that line, machines that were \
             never registered are running.",
        ),
        "purchase_over_cap" => (
            format!("Mining farm {licence} tried to buy more than one purchase may hold"),
            "A licensed farm must buy its electricity on the market, in purchases no larger than \
             the regulation's cap. The farm tried to buy more than the cap in one purchase; it was \
             refused (orange). The other lines compare what its meters recorded with what it did \
             buy, hour by hour.",
        ),
        _ => (
            format!("Mining farm {licence} used more electricity than it bought"),
            "A licensed farm may use only the electricity it bought on the market. The chart \
             compares, hour by hour, what its meters recorded with what it bought for that hour. \
             Where the first runs above the second, in the shaded period, it used electricity it \
             did not buy.",
        ),
    };
    let mut evidence = base(anomaly, tz, title, explanation.into());
    let start = anomaly.started_at;
    let lasted = anomaly.ended_at.map_or(Duration::days(7), |e| e - start);
    let around = clamp(lasted, Duration::days(1), Duration::days(7));
    let from = floor(start - around, HOUR);
    let end = anomaly
        .ended_at
        .map_or(from + Duration::days(MAX_DAYS), |e| {
            e + around.min(Duration::days(1))
        });
    let to = ceil(end.min(from + Duration::days(MAX_DAYS)), HOUR);
    let n = ((to - from).num_seconds() / HOUR) as usize;
    let Some(found) = found else {
        evidence.from = from;
        evidence.to = to;
        evidence.notes.push(format!(
            "Licence {licence} is not in the registry: there is nothing to chart."
        ));
        return Ok(evidence);
    };
    let licence_key: i32 = found.get(0);
    let capacity_w: f64 = found.get(2);
    let rows = client
        .query(
            "SELECT r.meter_key, r.ts, r.energy_wh FROM readings r
             JOIN meters m ON m.meter_key = r.meter_key
             WHERE m.licence_key = $1 AND r.ts >= $2 AND r.ts < $3
             ORDER BY r.meter_key, r.ts
             LIMIT 1000000",
            &[&licence_key, &(from - Duration::hours(1)), &to],
        )
        .await?;
    let mut metered: Vec<Option<f64>> = vec![None; n];
    let mut i = 0;
    while i < rows.len() {
        let key: i32 = rows[i].get(0);
        let mut one = Vec::new();
        while i < rows.len() && rows[i].get::<_, i32>(0) == key {
            one.push((rows[i].get(1), rows[i].get(2)));
            i += 1;
        }
        add_into(&mut metered, &energy_per_bucket(&one, from, HOUR, n));
    }
    let bought = bought_per_hour(client, licence_key, from, n).await?;
    let refused = refused_per_hour(&anomaly.evidence, from, n);
    // From the first reading (or the anomaly's start) to the last complete hour, keeping at
    // least the anomaly's own period.
    let last_reading = rows.iter().map(|r| r.get::<_, DateTime<Utc>>(1)).max();
    let index = |t: DateTime<Utc>| (((t - from).num_seconds() / HOUR).max(0) as usize).min(n);
    let data = shown(&[&metered], last_reading, from, n);
    let range = data.start.min(index(start))
        ..data
            .end
            .max(index(ceil(anomaly.ended_at.unwrap_or(start), HOUR)));
    let (metered, bought) = (slice(&metered, &range), slice(&bought, &range));
    let refused = refused.map(|r| slice(&r, &range));
    let shown_from = from + Duration::hours(range.start as i64);
    let slots = grid(shown_from, HOUR, range.len());
    let mut panel = Panel::new(
        format!("{who}, per hour"),
        Quantity::EnergyPerInterval,
        HOUR,
    )
    .with(
        "metered_wh",
        "Electricity used (its meters)",
        points(&slots, &metered),
    )
    .with(
        "bought_wh",
        "Electricity bought (its purchases)",
        points(&slots, &bought),
    );
    if let Some(refused) = refused {
        panel = panel.with(
            "refused_wh",
            "Refused purchase (above the cap)",
            points(&slots, &refused),
        );
    }
    panel = panel.with_reference(
        "capacity_wh",
        "Most its registered machines can draw",
        slots
            .iter()
            .map(|t| Point {
                t: *t,
                value: Some(capacity_w),
            })
            .collect(),
    );
    evidence.panels.push(panel);
    evidence.from = shown_from;
    evidence.to = shown_from + Duration::hours(range.len() as i64);
    if rows.is_empty() {
        evidence.notes.push(format!(
            "No readings of the meters of licence {licence} are stored for this period."
        ));
    }
    Ok(evidence)
}
