//! A small database with a row in every table: the registry, a day of readings, rejections,
//! purchases, the detector's state, and anomalies with a history of several entries.
//!
//! Plain SQL valid from schema version 4 on, so that the upgrade test can write it before the
//! last migration; anomalies go through gridwatch's own functions so that their history chain
//! is the real one.

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_postgres::Client;

use gridwatch::anomalies::transition::{self, Status};
use gridwatch::anomalies::{create, NewAnomaly, Severity};

use crate::support::TestDb;

/// The rows, written by hand the way the services write them.
const ROWS: &str = r#"
INSERT INTO regions (id, name, tariff_kzt_per_kwh) VALUES ('east-kz', 'East Kazakhstan', 10.3);
INSERT INTO licences (id, holder, pool, registered_machines, machine_rated_w)
    VALUES ('KZ-MIN-042', 'Qazaq Hash LLP', 'pool-3', 1200, 3250);
INSERT INTO nodes (id, region_key, kind) SELECT 'EK-F-001', region_key, 'feeder' FROM regions;
INSERT INTO meters (id, node_key, role, class, accuracy_pct, licence_key, gateway)
    SELECT 'M-000001', node_key, 'consumer', 'household', 1.0, NULL, 'GW-1' FROM nodes
    UNION ALL
    SELECT 'FARM-042', node_key, 'consumer', 'mining', 0.5, (SELECT licence_key FROM licences), NULL
    FROM nodes;
INSERT INTO registry_changes (changed_by, entity, entity_id, action, after)
    VALUES ('admin-1', 'meter', 'M-000001', 'created', '{"id": "M-000001"}');
SELECT gridwatch_ensure_reading_partitions('2025-10-01T00:00:00Z', '2025-10-02T00:00:00Z');
INSERT INTO readings (ts, energy_wh, meter_key, power_w)
    SELECT '2025-10-01T00:00:00Z'::timestamptz + make_interval(mins => 15 * i),
           meter_key * 1000000 + 250 * i, meter_key, 1000.5
    FROM meters, generate_series(0, 95) AS i;
INSERT INTO rejections (received_at, topic, source, meter_id, reading_ts, reason, detail, raw, raw_size)
    VALUES ('2025-10-01T00:16:00Z', 'gridwatch/v1/meters/M-404/readings', 'M-404', 'M-404',
            '2025-10-01T00:15:00Z', 'unknown_meter', 'meter M-404 is not in the registry',
            '\x7b22747322', 5);
INSERT INTO rejection_counts VALUES ('M-404', 'unknown_meter', '2025-10-01T00:00:00Z', 1, 1);
INSERT INTO ingest_counters (writer, readings_stored, rejections, newest_reading_ts)
    VALUES ('ingest-0', 192, 1, '2025-10-01T23:45:00Z');
INSERT INTO reading_touches SELECT region_key, '2025-10-01T23:45:00Z', 2, '2025-10-01T23:45:00Z'
    FROM regions;
INSERT INTO purchases (id, licence_key, energy_wh, delivery_start, delivery_end, price_kzt,
                       profile, cap_wh, channel, submitted_by)
    SELECT 'P-2025-000001', licence_key, 1000000, '2025-10-01T00:00:00Z', '2025-10-01T01:00:00Z',
           10300.0, 'kz-2025', 1000000, 'http', 'market-1'
    FROM licences;
INSERT INTO purchase_attempts (purchase_id, licence, energy_wh, delivery_start, delivery_end,
                               price_kzt, reason, detail, channel, submitted_by)
    VALUES ('P-2025-000002', 'KZ-MIN-042', 2000000, '2025-10-01T01:00:00Z', '2025-10-01T02:00:00Z',
            20600.0, 'purchase_over_cap', '2000000 Wh is over the cap', 'mqtt', 'market-1');
INSERT INTO detector_progress (region_key, watermark, newest_reading_ts, evaluated_until,
                               hourly_until, daily_until)
    SELECT region_key, '2025-10-01T23:30:00Z', '2025-10-01T23:45:00Z', '2025-10-01T23:30:00Z',
           '2025-10-01T23:00:00Z', '2025-10-01T00:00:00Z'
    FROM regions;
INSERT INTO detector_node_windows (node_key, window_start, input_wh, fed_wh, coverage,
    uncertainty_wh, expected_wh, sigma_wh, excess_wh, z, in_case, in_gap, model_learned, state)
    SELECT node_key, '2025-10-01T00:00:00Z', 1000.0, 950.0, 1.0, 2.5, 40.0, 10.0, 10.0, 1.0,
           false, false, false, '{"cusum": 0.5}'
    FROM nodes;
INSERT INTO detector_node_models (node_key, day, model)
    SELECT node_key, '2025-10-01', '{"slope": 0.02}' FROM nodes;
INSERT INTO source_touches (region_key, meter_key, newest_ts)
    SELECT region_key, meter_key, '2025-10-01T23:45:00Z' FROM meters, regions;
INSERT INTO detector_sources (meter_key, region_key, newest_ts, heard_at)
    SELECT meter_key, region_key, '2025-10-01T23:30:00Z', '2025-10-02T00:01:00Z'
    FROM meters, regions;
"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn anomaly(kind: &str, key: &str) -> NewAnomaly {
    NewAnomaly {
        kind: gridwatch::anomalies::store::Kind::parse(kind).expect("a contract kind"),
        condition_key: key.into(),
        region: Some("east-kz".into()),
        node: Some("EK-F-001".into()),
        meter: None,
        licence: None,
        started_at: t("2025-10-01T00:00:00Z"),
        ended_at: None,
        detected_at: t("2025-10-01T00:30:00Z"),
        energy_wh: 1_000_000,
        loss_kzt: 10_300.0,
        score: 5.0,
        confidence: 0.5,
        severity: Severity::High,
        suspects: vec!["M-000001".into()],
        evidence: json!({"summary": format!("{kind} {key}")}),
    }
}

/// Writes the rows and two anomalies, one moved to investigating and on to confirmed: four
/// history entries. Returns the anomalies' ids.
pub(crate) async fn seed(db: &TestDb) -> Vec<String> {
    let mut client = db.client().await;
    client.batch_execute(ROWS).await.expect("seed rows");
    let tx = client.transaction().await.expect("transaction");
    let mut ids = Vec::new();
    for (kind, key) in [("diversion", "seed-diversion"), ("data_gap", "seed-gap")] {
        ids.push(
            create(&tx, &anomaly(kind, key), "detector")
                .await
                .expect("anomaly created")
                .id,
        );
    }
    tx.commit().await.expect("commit");
    move_to(
        &mut client,
        &ids[0],
        Status::Investigating,
        "field visit booked",
    )
    .await;
    move_to(
        &mut client,
        &ids[0],
        Status::Confirmed,
        "bypass found 12 Oct",
    )
    .await;
    ids
}

/// Moves an anomaly on as an investigator would; returns the history entry's `seq`.
pub(crate) async fn move_to(client: &mut Client, id: &str, to: Status, note: &str) -> i64 {
    transition::apply(client, id, to, Some(note), "investigator-1")
        .await
        .unwrap_or_else(|e| panic!("{id} -> {to}: {e}"))
        .seq
}
