//! The detector on a small grid whose readings are written straight into the database, so that
//! every figure is known exactly: diversions are flagged in their first window with the right
//! energy, clean nodes raise nothing, late readings correct without duplicating, and a restarted
//! detector carries on where it stopped.

mod support;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use gridwatch::config::Config;
use gridwatch::detector::Detector;
use gridwatch::metrics::Metrics;
use support::TestDb;

const HOUSEHOLDS: usize = 20;

fn t0() -> DateTime<Utc> {
    "2026-10-01T00:00:00Z".parse().expect("time")
}

/// A household's energy in window `w` (Wh): a daily shape with morning and evening peaks, and a
/// little deterministic variety per meter.
fn household_wh(meter: usize, w: usize) -> f64 {
    let hour = (w % 96) as f64 / 4.0;
    let base = 60.0 + 10.0 * (meter % 5) as f64;
    let peak = if (7.0..9.0).contains(&hour) {
        120.0
    } else if (18.0..22.0).contains(&hour) {
        200.0
    } else {
        0.0
    };
    base + peak + ((meter * 31 + w * 17) % 23) as f64
}

/// The registry: substation S feeding feeders F1 and F2, each with its own input meter and
/// HOUSEHOLDS households.
async fn seed_grid(db: &TestDb) {
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO regions (id, name, tariff_kzt_per_kwh) VALUES ('r1', 'Test', 10.3);
             INSERT INTO nodes (id, region_key, kind, parent_key)
               SELECT 'S', region_key, 'substation', NULL FROM regions;
             INSERT INTO nodes (id, region_key, kind, parent_key)
               SELECT f, region_key, 'feeder', (SELECT node_key FROM nodes WHERE id = 'S')
               FROM regions, unnest(ARRAY['F1', 'F2']) AS f;
             INSERT INTO meters (id, node_key, role, class, accuracy_pct)
               SELECT id || '-IN', node_key, 'input', 'boundary', 0.5 FROM nodes;
             UPDATE nodes SET input_meter_key = m.meter_key FROM meters m WHERE m.id = nodes.id || '-IN';
             INSERT INTO meters (id, node_key, role, class, accuracy_pct)
               SELECT f || '-M' || lpad(i::text, 3, '0'), (SELECT node_key FROM nodes WHERE id = f),
                      'consumer', 'household', 1.0
               FROM unnest(ARRAY['F1', 'F2']) AS f, generate_series(0, 19) AS i;",
        )
        .await
        .expect("seed the grid");
}

/// Registers of every meter from window `from` to `to` (exclusive), with `diverted(w)` Wh taken
/// from F1 below its input meter in window w. Returns (meter id, ts, register) rows.
fn registers(
    from: usize,
    to: usize,
    diverted: impl Fn(usize) -> f64,
) -> Vec<(String, DateTime<Utc>, i64)> {
    let mut rows = Vec::new();
    let mut totals: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for w in 0..to {
        let mut feeder_in = [0.0f64; 2];
        for (f, feeder) in ["F1", "F2"].iter().enumerate() {
            for h in 0..HOUSEHOLDS {
                let e = household_wh(h + 20 * f, w);
                *totals.entry(format!("{feeder}-M{h:03}")).or_default() += e;
                feeder_in[f] += e;
            }
            // Losses: 100 Wh no-load plus 3 % of the load.
            feeder_in[f] += 100.0 + 0.03 * feeder_in[f];
        }
        feeder_in[0] += diverted(w);
        *totals.entry("F1-IN".into()).or_default() += feeder_in[0];
        *totals.entry("F2-IN".into()).or_default() += feeder_in[1];
        *totals.entry("S-IN".into()).or_default() += 1.01 * (feeder_in[0] + feeder_in[1]) + 50.0;
        if w + 1 >= from {
            let ts = t0() + Duration::minutes(15 * (w as i64 + 1));
            for (id, total) in &totals {
                rows.push((id.clone(), ts, total.round() as i64));
            }
        }
    }
    rows
}

/// Writes readings the way ingest does (partitions, rows, the detector's work queue).
async fn store(db: &TestDb, rows: &[(String, DateTime<Utc>, i64)]) {
    let client = db.client().await;
    let from = rows.iter().map(|r| r.1).min().expect("rows");
    let to = rows.iter().map(|r| r.1).max().expect("rows");
    client
        .execute(
            "SELECT gridwatch_ensure_reading_partitions($1, $2)",
            &[&from, &to],
        )
        .await
        .expect("partitions");
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let ts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.1).collect();
    let energy: Vec<i64> = rows.iter().map(|r| r.2).collect();
    client
        .execute(
            "INSERT INTO readings (ts, energy_wh, meter_key)
             SELECT u.ts, u.e, m.meter_key FROM unnest($1::text[], $2::timestamptz[], $3::bigint[]) AS u(id, ts, e)
             JOIN meters m ON m.id = u.id
             ON CONFLICT DO NOTHING",
            &[&ids, &ts, &energy],
        )
        .await
        .expect("readings");
    client
        .execute(
            "INSERT INTO reading_touches (region_key, minute, readings, newest_ts)
             SELECT (SELECT region_key FROM regions), date_trunc('minute', t), count(*), max(t)
             FROM unnest($1::timestamptz[]) AS t GROUP BY 2",
            &[&ts],
        )
        .await
        .expect("touches");
}

async fn run_detector(detector: &mut Detector, db: &TestDb) {
    let mut client = db.client().await;
    for _ in 0..200 {
        if !detector.cycle(&mut client).await.expect("a detector cycle") {
            return;
        }
    }
    panic!("the detector did not settle");
}

fn detector_for(db: &TestDb) -> Detector {
    detector_with(db, Arc::new(Metrics::new()))
}

fn detector_with(db: &TestDb, metrics: Arc<Metrics>) -> Detector {
    let config = Config {
        database_url: db.secret(),
        ..Config::default()
    };
    Detector::new(config, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diversion_is_flagged_in_its_first_window_with_its_energy_and_nothing_else_is_raised() {
    let db = TestDb::migrated().await;
    seed_grid(&db).await;
    // Two clean days to learn from, then 20 kWh per window (80 kW) taken below F1 for 4 hours.
    let onset = 2 * 96 + 48;
    let theft = |w: usize| {
        if (onset..onset + 16).contains(&w) {
            20_000.0
        } else {
            0.0
        }
    };
    let end = 3 * 96;
    store(&db, &registers(0, end, theft)).await;
    let metrics = Arc::new(Metrics::new());
    let mut detector = detector_with(&db, metrics.clone());
    run_detector(&mut detector, &db).await;
    let raised = |kind: &str, severity: &str| {
        metrics
            .detector
            .anomalies_raised
            .with_label_values(&[kind, "r1", severity])
            .get()
    };
    let diversions: u64 = ["info", "low", "medium", "high", "critical"]
        .iter()
        .map(|severity| raised("diversion", severity))
        .sum();
    assert_eq!(diversions, 1, "the creation is counted once");

    let client = db.client().await;
    let rows = client
        .query(
            "SELECT kind, node, started_at, ended_at, energy_wh, severity, loss_kzt FROM anomalies
             WHERE kind <> 'data_gap' ORDER BY started_at",
            &[],
        )
        .await
        .expect("anomalies");
    assert_eq!(rows.len(), 1, "one anomaly: {rows:?}");
    let row = &rows[0];
    assert_eq!(row.get::<_, &str>(0), "diversion");
    assert_eq!(row.get::<_, &str>(1), "F1");
    let started: DateTime<Utc> = row.get(2);
    assert_eq!(
        started,
        t0() + Duration::minutes(15 * onset as i64),
        "flagged from its first window"
    );
    let ended: Option<DateTime<Utc>> = row.get(3);
    assert_eq!(
        ended,
        Some(t0() + Duration::minutes(15 * (onset + 16) as i64))
    );
    let energy: i64 = row.get(4);
    let truth = 16.0 * 20_000.0;
    assert!(
        (energy as f64 - truth).abs() / truth < 0.05,
        "energy {energy} vs {truth}"
    );
    let loss: f64 = row.get(6);
    assert!((loss - energy as f64 / 1000.0 * 10.3).abs() < 0.01);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_readings_correct_the_anomaly_and_a_restarted_detector_creates_no_duplicate() {
    let db = TestDb::migrated().await;
    seed_grid(&db).await;
    let onset = 2 * 96 + 8;
    let theft = |w: usize| if w >= onset { 20_000.0 } else { 0.0 };
    // Everything up to the onset and a few hours after, except F2's meters in the last hour:
    // they arrive late.
    let first = registers(0, onset + 12, theft);
    let (late, now): (Vec<_>, Vec<_>) = first.into_iter().partition(|r| {
        r.0.starts_with("F2-M") && r.1 > t0() + Duration::minutes(15 * (onset as i64 + 8))
    });
    store(&db, &now).await;
    let mut detector = detector_for(&db);
    run_detector(&mut detector, &db).await;
    store(&db, &late).await;
    run_detector(&mut detector, &db).await;
    // A new detector process (restart) with more data.
    let mut restarted = detector_for(&db);
    store(&db, &registers(onset + 12, onset + 24, theft)).await;
    run_detector(&mut restarted, &db).await;

    let diversions = db
        .count("SELECT count(*) FROM anomalies WHERE kind = 'diversion'")
        .await;
    assert_eq!(diversions, 1, "one ongoing condition is one anomaly");
    let energy = db
        .count("SELECT energy_wh FROM anomalies WHERE kind = 'diversion'")
        .await;
    // Evaluated up to the watermark: (onset + 24) windows of data minus the lateness of one.
    let truth = 23.0 * 20_000.0;
    assert!(
        (energy as f64 - truth).abs() / truth < 0.05,
        "energy {energy} vs {truth}"
    );
    let node = db
        .count("SELECT count(*) FROM anomalies WHERE kind = 'diversion' AND node = 'F1' AND ended_at IS NULL")
        .await;
    assert_eq!(node, 1);
    let history = db.count("SELECT count(*) FROM anomaly_history").await;
    assert!(history >= 2, "creation and updates are chained: {history}");
}

/// A farm licensed for 20 machines, metered by `FARM` (class 0.5) under feeder F2.
async fn add_farm(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "INSERT INTO licences (id, holder, registered_machines, machine_rated_w)
               VALUES ('KZ-MIN-T', 'Test farm', 20, 3250);
             INSERT INTO meters (id, node_key, role, class, accuracy_pct, licence_key)
               SELECT 'FARM', (SELECT node_key FROM nodes WHERE id = 'F2'), 'consumer',
                      'mining', 0.5, licence_key FROM licences;",
        )
        .await
        .expect("a licensed farm");
}

/// The farm's register drawing 40 kW (10 kWh a window), read at the boundaries of windows
/// `from` to `to`.
fn farm_registers(from: usize, to: usize) -> Vec<(String, DateTime<Utc>, i64)> {
    (from..=to)
        .map(|w| {
            let ts = t0() + Duration::minutes(15 * w as i64);
            ("FARM".to_string(), ts, 10_000 * w as i64)
        })
        .collect()
}

/// The farm buys `wh` a day, delivered evenly over each of its first `days` days.
async fn buy_daily(db: &TestDb, wh: i64, days: usize) {
    db.client()
        .await
        .execute(
            "INSERT INTO purchases (id, licence_key, energy_wh, delivery_start, delivery_end,
                                    price_kzt, profile, cap_wh, channel, submitted_by)
             SELECT 'P-' || d, licence_key, $2, $1::timestamptz + d * interval '1 day',
                    $1::timestamptz + (d + 1) * interval '1 day', 0, 'flat', 1000000, 'http', 'test'
             FROM licences, generate_series(0, $3::int - 1) AS d",
            &[&t0(), &wh, &(days as i32)],
        )
        .await
        .expect("purchases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overrun_that_late_purchases_cover_is_withdrawn() {
    let db = TestDb::migrated().await;
    seed_grid(&db).await;
    add_farm(&db).await;
    // The farm draws 40 kW (10 kWh a window) and nothing is bought yet: the market feed is down.
    let with_farm = |from: usize, to: usize| {
        let mut rows = registers(from, to, |_| 0.0);
        rows.extend(farm_registers(from, to));
        rows
    };
    let first = 2 * 96 + 8;
    store(&db, &with_farm(0, first)).await;
    let mut detector = detector_for(&db);
    run_detector(&mut detector, &db).await;
    let standing = "SELECT count(*) FROM anomalies
                    WHERE kind = 'quota_overrun' AND NOT evidence ? 'withdrawn'";
    assert!(
        db.count(standing).await > 0,
        "unbought energy is an overrun"
    );

    // The purchases arrive late: 1 MWh a day covers 960 kWh of use.
    buy_daily(&db, 1_000_000, 4).await;
    // The next hours' readings make the detector judge the licence's period again.
    store(&db, &with_farm(first, first + 8)).await;
    run_detector(&mut detector, &db).await;
    assert_eq!(
        db.count(standing).await,
        0,
        "the overrun the purchases cover is withdrawn"
    );
    let withdrawn = db
        .count(
            "SELECT count(*) FROM anomalies
             WHERE kind = 'quota_overrun' AND evidence ? 'withdrawn' AND energy_wh = 0",
        )
        .await;
    assert!(withdrawn > 0, "kept, withdrawn, with its reason");
    // Withdrawn is a status: not open, out of the status count, with the detector's
    // transition and its reason in the history.
    let not_withdrawn = db
        .count(
            "SELECT count(*) FROM anomalies
             WHERE kind = 'quota_overrun' AND evidence ? 'withdrawn' AND status <> 'withdrawn'",
        )
        .await;
    assert_eq!(not_withdrawn, 0, "every withdrawn overrun has the status");
    let transitions = db
        .count(
            "SELECT count(*) FROM anomaly_history h JOIN anomalies a ON a.id = h.anomaly_id
             WHERE a.kind = 'quota_overrun' AND h.action = 'transition' AND h.actor = 'detector'
               AND h.from_status = 'open' AND h.to_status = 'withdrawn' AND h.note <> ''",
        )
        .await;
    assert_eq!(transitions, withdrawn, "each withdrawal is in the history");
    let open = db
        .count("SELECT count(*) FROM anomalies WHERE kind = 'quota_overrun' AND status = 'open'")
        .await;
    assert_eq!(open, 0, "no overrun left open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overrun_longer_than_the_week_judged_counts_every_unpaid_hour() {
    let db = TestDb::migrated().await;
    seed_grid(&db).await;
    let client = db.client().await;
    add_farm(&db).await;
    // Twelve days of a farm drawing 40 kW (960 kWh a day) that buys 900 kWh a day: 60 kWh a
    // day unpaid, 2.5 kWh an hour, longer than the week the quota rule judges at each hour.
    let days = 12;
    let windows = days * 96;
    let mut rows = registers(0, windows, |_| 0.0);
    rows.extend(farm_registers(0, windows));
    store(&db, &rows).await;
    buy_daily(&db, 900_000, days).await;
    let mut detector = detector_for(&db);
    run_detector(&mut detector, &db).await;
    let rows = client
        .query(
            "SELECT started_at, energy_wh,
                    (SELECT max(evaluated_until) FROM detector_progress)
             FROM anomalies WHERE kind = 'quota_overrun' AND NOT evidence ? 'withdrawn'",
            &[],
        )
        .await
        .expect("anomalies");
    assert_eq!(rows.len(), 1, "one condition, one anomaly");
    let started: chrono::DateTime<chrono::Utc> = rows[0].get(0);
    let energy: i64 = rows[0].get(1);
    let until: chrono::DateTime<chrono::Utc> = rows[0].get(2);
    assert!(
        started >= t0(),
        "the condition starts with the data: {started}"
    );
    let hours = (until - started).num_hours() as f64;
    assert!(
        hours > 8.0 * 24.0,
        "the condition outlasts the week judged: {hours} h"
    );
    let expected = 2_500.0 * hours;
    assert!(
        (energy as f64 - expected).abs() <= 0.03 * expected,
        "{energy} Wh unpaid over {hours} h, expected about {expected:.0}"
    );
}

/// `rows` with the registers of RIG-1: a home like its neighbours until window `onset`, then
/// one 3,250 W machine around the clock, up to window `windows`.
fn with_rig(
    mut rows: Vec<(String, DateTime<Utc>, i64)>,
    onset: usize,
    windows: usize,
) -> Vec<(String, DateTime<Utc>, i64)> {
    let mut register = 0.0;
    rows.push(("RIG-1".to_string(), t0(), 0));
    for w in 0..windows {
        register += if w < onset { household_wh(7, w) } else { 812.5 };
        let ts = t0() + Duration::minutes(15 * (w as i64 + 1));
        rows.push(("RIG-1".to_string(), ts, register.round() as i64));
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlicensed_mining_longer_than_the_profile_read_counts_its_whole_energy() {
    let db = TestDb::migrated().await;
    seed_grid(&db).await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO meters (id, node_key, role, class, accuracy_pct)
               SELECT 'RIG-1', node_key, 'consumer', 'household', 1.0 FROM nodes WHERE id = 'F2'",
        )
        .await
        .expect("a household that will mine");
    // A home like its neighbours for three days, then one 3,250 W machine around the clock for
    // seventeen more: longer than the two weeks the daily analysis reads.
    let days = 20;
    let onset = 3 * 96;
    let windows = days * 96;
    store(
        &db,
        &with_rig(registers(0, windows, |_| 0.0), onset, windows),
    )
    .await;
    let mut detector = detector_for(&db);
    run_detector(&mut detector, &db).await;
    let rows = client
        .query(
            "SELECT started_at, ended_at, energy_wh, (evidence->>'excess_w')::float8,
                    (evidence->>'analysed_until')::timestamptz
             FROM anomalies WHERE kind = 'unlicensed_mining' AND meter = 'RIG-1'
               AND NOT evidence ? 'withdrawn'",
            &[],
        )
        .await
        .expect("anomalies");
    assert_eq!(rows.len(), 1, "one condition, one anomaly");
    let started: DateTime<Utc> = rows[0].get(0);
    let ended: Option<DateTime<Utc>> = rows[0].get(1);
    let energy: i64 = rows[0].get(2);
    let excess_w: f64 = rows[0].get(3);
    let until: DateTime<Utc> = rows[0].get(4);
    assert!(ended.is_none(), "still mining");
    let onset_at = t0() + Duration::minutes(15 * onset as i64);
    assert!(
        (started - onset_at).num_hours().abs() <= 24,
        "started {started}, the rig came on {onset_at}"
    );
    let hours = (until - started).num_seconds() as f64 / 3600.0;
    assert!(hours > 14.0 * 24.0, "{hours} h: longer than the profile");
    let expected = excess_w * hours;
    assert!(
        (energy as f64 - expected).abs() <= 0.02 * expected,
        "{energy} Wh over {hours} h at {excess_w} W above the baseline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_in_another_time_zone_is_analysed_by_its_local_days() {
    let db = TestDb::migrated().await;
    seed_grid(&db).await;
    let client = db.client().await;
    // Tashkent keeps UTC+5 all year: its days start at 19:00 UTC.
    client
        .batch_execute(
            "UPDATE regions SET timezone = 'Asia/Tashkent';
             INSERT INTO meters (id, node_key, role, class, accuracy_pct)
               SELECT 'RIG-1', node_key, 'consumer', 'household', 1.0 FROM nodes WHERE id = 'F2'",
        )
        .await
        .expect("a time zone and a household that will mine");
    let windows = 20 * 96;
    let onset = 3 * 96;
    store(
        &db,
        &with_rig(registers(0, windows, |_| 0.0), onset, windows),
    )
    .await;
    let mut detector = detector_for(&db);
    run_detector(&mut detector, &db).await;
    let row = client
        .query_one(
            "SELECT evaluated_until, analysed_until FROM detector_progress",
            &[],
        )
        .await
        .expect("progress");
    let evaluated: DateTime<Utc> = row.get(0);
    let analysed: Option<DateTime<Utc>> = row.get(1);
    assert_eq!(analysed, Some(evaluated), "every whole local day analysed");
    let days: Vec<DateTime<Utc>> = client
        .query(
            "SELECT DISTINCT (evidence->>'analysed_until')::timestamptz FROM anomalies
             WHERE kind = 'unlicensed_mining' AND meter = 'RIG-1'",
            &[],
        )
        .await
        .expect("anomalies")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!days.is_empty(), "the rig is found");
    for day_end in &days {
        assert_eq!(
            day_end.format("%H:%M").to_string(),
            "19:00",
            "{day_end}: a day of the region ends at local midnight, 19:00 UTC"
        );
    }
}

/// A uniform number in [0, 1) from two integers (splitmix64): independent per home and window.
fn uniform(a: u64, b: u64) -> f64 {
    let mut z = (a << 32 ^ b).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Registers as [`registers`], with F2's households `moved` fed from F1 from window `onset` on
/// (the registry still puts them on F2) and `theft(w)` Wh taken below F1 in window w.
fn registers_with_moved(
    to: usize,
    moved: &[usize],
    onset: usize,
    theft: impl Fn(usize) -> f64,
) -> Vec<(String, DateTime<Utc>, i64)> {
    let mut rows = Vec::new();
    let mut totals: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for w in 0..to {
        let mut feeder_in = [0.0f64; 2];
        for (f, feeder) in ["F1", "F2"].iter().enumerate() {
            for h in 0..HOUSEHOLDS {
                // Each home's own ups and downs (a kettle, a washing machine), as a real one has.
                let e = household_wh(h + 20 * f, w) + 60.0 * uniform((h + 20 * f) as u64, w as u64);
                *totals.entry(format!("{feeder}-M{h:03}")).or_default() += e;
                let fed_by = if f == 1 && w >= onset && moved.contains(&h) {
                    0
                } else {
                    f
                };
                feeder_in[fed_by] += e;
            }
        }
        for load in &mut feeder_in {
            *load += 100.0 + 0.03 * *load;
        }
        feeder_in[0] += theft(w);
        *totals.entry("F1-IN".into()).or_default() += feeder_in[0];
        *totals.entry("F2-IN".into()).or_default() += feeder_in[1];
        *totals.entry("S-IN".into()).or_default() += 1.01 * (feeder_in[0] + feeder_in[1]) + 50.0;
        let ts = t0() + Duration::minutes(15 * (w as i64 + 1));
        for (id, total) in &totals {
            rows.push((id.clone(), ts, total.round() as i64));
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn households_moved_to_the_next_feeder_are_one_topology_change_and_theft_is_still_seen() {
    let db = TestDb::migrated().await;
    seed_grid(&db).await;
    // Five of F2's homes are switched onto F1 at noon of the third day; the registry is not
    // told. On the fifth day 20 kWh per window (80 kW) is taken below F1 for four hours.
    let moved = [2usize, 5, 9, 13, 17];
    let onset = 2 * 96 + 48;
    let theft_at = 4 * 96 + 72;
    let theft = |w: usize| {
        if (theft_at..theft_at + 16).contains(&w) {
            20_000.0
        } else {
            0.0
        }
    };
    store(&db, &registers_with_moved(6 * 96, &moved, onset, theft)).await;
    let mut detector = detector_for(&db);
    run_detector(&mut detector, &db).await;
    let client = db.client().await;
    let changes = client
        .query(
            "SELECT node, evidence->>'from_node', suspects, started_at, status FROM anomalies
             WHERE kind = 'topology_change'",
            &[],
        )
        .await
        .expect("anomalies");
    assert_eq!(changes.len(), 1, "one change: {changes:?}");
    let change = &changes[0];
    assert_eq!(
        change.get::<_, &str>(0),
        "F1",
        "the node whose balance gained"
    );
    assert_eq!(change.get::<_, &str>(1), "F2", "the node that lost");
    let mut suspects: Vec<String> = change.get(2);
    suspects.sort();
    let expected: Vec<String> = moved.iter().map(|h| format!("F2-M{h:03}")).collect();
    assert_eq!(suspects, expected, "the meters that moved");
    let started: DateTime<Utc> = change.get(3);
    assert_eq!(started, t0() + Duration::minutes(15 * onset as i64));
    assert_eq!(change.get::<_, &str>(4), "open");

    let diversions = client
        .query(
            "SELECT node, started_at, ended_at, energy_wh, status FROM anomalies
             WHERE kind = 'diversion' AND status <> 'withdrawn'",
            &[],
        )
        .await
        .expect("diversions");
    assert_eq!(diversions.len(), 1, "only the theft: {diversions:?}");
    let theft_row = &diversions[0];
    assert_eq!(theft_row.get::<_, &str>(0), "F1");
    let started: DateTime<Utc> = theft_row.get(1);
    assert_eq!(started, t0() + Duration::minutes(15 * theft_at as i64));
    let energy: i64 = theft_row.get(3);
    let truth = 16.0 * 20_000.0;
    assert!(
        (energy as f64 - truth).abs() / truth < 0.05,
        "energy {energy} vs {truth}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_every_window_is_flagged_is_reported_still_on_priors_after_two_days() {
    let db = TestDb::migrated().await;
    seed_grid(&db).await;
    // F1 loses 6 kWh a window, more than it delivers, from the first reading: none of its
    // windows is clean, so its loss model never leaves the prior. F2 learns as usual.
    store(&db, &registers(0, 3 * 96, |_| 6_000.0)).await;
    let metrics = Arc::new(Metrics::new());
    let mut detector = detector_with(&db, metrics.clone());
    run_detector(&mut detector, &db).await;
    let on_priors = metrics
        .detector
        .nodes_on_priors
        .with_label_values(&["r1"])
        .get();
    assert_eq!(on_priors, 1, "F1 only");
    let learned = db
        .count(
            "SELECT count(*) FROM detector_node_windows w JOIN nodes n USING (node_key)
             WHERE n.id = 'F2' AND w.model_learned
               AND w.window_start >= '2026-10-03T23:00:00Z'",
        )
        .await;
    assert!(learned > 0, "F2 learned its own model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_under_reading_feeder_meter_shows_below_its_band_in_the_evidence_above_it() {
    let db = TestDb::migrated().await;
    seed_grid(&db).await;
    // From noon of the third day F1's input meter records 20 kWh a window less than flows
    // through it: the substation above sees energy vanish, F1 itself a residual below its band.
    let onset = 2 * 96 + 48;
    let mut rows = registers(0, 3 * 96 + 16, |_| 0.0);
    for (id, ts, register) in &mut rows {
        let w = ((*ts - t0()).num_minutes() / 15) as usize;
        if id == "F1-IN" && w > onset {
            *register -= 20_000 * (w - onset) as i64;
        }
    }
    store(&db, &rows).await;
    let mut detector = detector_for(&db);
    run_detector(&mut detector, &db).await;
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT suspects, evidence->'nodes_below_band' FROM anomalies
             WHERE kind = 'diversion' AND node = 'S' AND status <> 'withdrawn'",
            &[],
        )
        .await
        .expect("a case at the substation");
    let suspects: Vec<String> = row.get(0);
    let below: serde_json::Value = row.get(1);
    assert_eq!(below[0]["node"], "F1", "{below}");
    assert_eq!(below[0]["relation"], "below");
    assert_eq!(below[0]["input_meter"], "F1-IN");
    assert!(
        below[0]["residual_wh"].as_f64().unwrap_or(0.0) < -100_000.0,
        "{below}"
    );
    assert_eq!(below.as_array().map(Vec::len), Some(1), "F2 is in its band");
    assert_eq!(suspects.first().map(String::as_str), Some("F1-IN"));
    let f1 = db
        .count("SELECT count(*) FROM anomalies WHERE node = 'F1' AND status <> 'withdrawn'")
        .await;
    assert_eq!(f1, 0, "a residual below the band is not a theft at F1");
}
