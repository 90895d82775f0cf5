//! Ingest: every MQTT reading into PostgreSQL, at least once, nothing lost, nothing twice.
//!
//! Each test has its own database and its own Mosquitto (started from deploy/mosquitto).

mod support;

use std::time::Duration;

use support::broker::SIMULATOR_USER;
use support::ingest::{config, InProcess, Process};
use support::registry::{add_meters, seed_meters};
use support::{eventually, unique_name, Broker, Publisher, TestDb};

const WAIT: Duration = Duration::from_secs(60);

/// A reading's register value, derived from its meter and interval so tests can check values.
fn energy(meter: usize, interval: usize) -> i64 {
    (meter as i64) * 1_000_000 + (interval as i64) * 250
}

fn ts(interval: usize) -> String {
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").expect("time")
        + chrono::Duration::minutes(15 * interval as i64);
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meter_payload(meter: usize, interval: usize) -> String {
    format!(
        r#"{{"ts":"{}","energy_wh":{},"power_w":{}.5}}"#,
        ts(interval),
        energy(meter, interval),
        meter
    )
}

fn gateway_element(meter: usize, interval: usize) -> String {
    format!(
        r#"{{"meter_id":"M-{meter:06}","ts":"{}","energy_wh":{}}}"#,
        ts(interval),
        energy(meter, interval)
    )
}

/// Publishes `intervals` readings for each meter: even meters on their own topic, odd meters
/// through gateway arrays of up to 50. Returns how many readings were published.
async fn publish_readings(
    publisher: &mut Publisher,
    meters: usize,
    intervals: std::ops::Range<usize>,
) -> usize {
    let mut count = 0;
    for interval in intervals {
        let mut array = Vec::new();
        for meter in 0..meters {
            if meter % 2 == 0 {
                publisher
                    .publish(
                        &format!("gridwatch/v1/meters/M-{meter:06}/readings"),
                        meter_payload(meter, interval),
                    )
                    .await;
            } else {
                array.push(gateway_element(meter, interval));
                if array.len() == 50 {
                    publisher
                        .publish(
                            "gridwatch/v1/gateways/GW-1/readings",
                            format!("[{}]", array.join(",")),
                        )
                        .await;
                    array.clear();
                }
            }
            count += 1;
        }
        if !array.is_empty() {
            publisher
                .publish(
                    "gridwatch/v1/gateways/GW-1/readings",
                    format!("[{}]", array.join(",")),
                )
                .await;
        }
    }
    count
}

/// Every stored reading has the value it was published with, and there are `expected` of them.
async fn assert_stored_exactly(db: &TestDb, expected: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let stored = loop {
        let n = db.count("SELECT count(*) FROM readings").await;
        if n >= expected as i64 {
            break n;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} of {expected} readings stored after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A moment more: anything beyond `expected` would be a duplicate or a stray.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        db.count("SELECT count(*) FROM readings").await,
        expected as i64
    );
    assert_eq!(stored, expected as i64);
    let wrong = db
        .count(
            "SELECT count(*) FROM readings r JOIN meters m USING (meter_key)
             WHERE r.energy_wh <> substr(m.id, 3)::bigint * 1000000
                 + (extract(epoch FROM r.ts - '2026-11-01T00:00:00Z'::timestamptz) / 900)::bigint * 250",
        )
        .await;
    assert_eq!(
        wrong, 0,
        "every reading keeps the value it was published with"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_through_both_topics_are_stored_once_with_their_values() {
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 300).await;
    let ingest = InProcess::start(config(&db, &broker, &unique_name("ingest"))).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    let published = publish_readings(&mut publisher, 300, 0..10).await;
    publisher.flush().await;
    assert_stored_exactly(&db, published).await;
    let power: f32 = db
        .client()
        .await
        .query_one(
            "SELECT power_w FROM readings JOIN meters USING (meter_key) WHERE id = 'M-000002' LIMIT 1",
            &[],
        )
        .await
        .expect("a reading of M-000002")
        .get(0);
    assert_eq!(power, 2.5);
    assert_eq!(db.count("SELECT count(*) FROM rejections").await, 0);
    assert_eq!(
        db.count("SELECT sum(readings_stored)::bigint FROM ingest_counters")
            .await,
        published as i64
    );
    ingest.stop().await;
    publisher.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_reading_is_stored_once_and_a_conflicting_one_is_rejected() {
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 2).await;
    let ingest = InProcess::start(config(&db, &broker, &unique_name("ingest"))).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    let topic = "gridwatch/v1/meters/M-000000/readings";
    publisher.publish(topic, meter_payload(0, 0)).await;
    publisher.publish(topic, meter_payload(0, 0)).await;
    publisher.flush().await;
    eventually(WAIT, "the reading stored", || async {
        (db.count("SELECT count(*) FROM readings").await == 1).then_some(())
    })
    .await;
    publisher.publish(topic, meter_payload(0, 0)).await;
    let conflicting = r#"{"ts":"2026-11-01T00:00:00Z","energy_wh":999}"#;
    publisher.publish(topic, conflicting).await;
    publisher.flush().await;
    eventually(WAIT, "the conflicting duplicate rejected", || async {
        (db.count("SELECT count(*) FROM rejections WHERE reason = 'conflicting_duplicate'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM readings").await, 1);
    assert_eq!(db.count("SELECT energy_wh FROM readings").await, 0);
    let raw: Vec<u8> = db
        .client()
        .await
        .query_one("SELECT raw FROM rejections", &[])
        .await
        .expect("one rejection")
        .get(0);
    assert_eq!(raw, conflicting.as_bytes());
    assert_eq!(ingest.metrics.ingest.duplicates_absorbed.get(), 2);
    ingest.stop().await;
    publisher.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_within_one_array_and_against_stored_readings_are_told_apart() {
    // One gateway array holding a reading, its exact copy and a copy with another value;
    // then an array mixing stored readings, a conflicting copy of a stored one and new ones:
    // each key stored once, each conflicting copy rejected, each exact copy absorbed.
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 4).await;
    let ingest = InProcess::start(config(&db, &broker, &unique_name("ingest"))).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    let topic = "gridwatch/v1/gateways/GW-1/readings";
    let other = |meter: usize, interval: usize| {
        format!(
            r#"{{"meter_id":"M-{meter:06}","ts":"{}","energy_wh":{}}}"#,
            ts(interval),
            energy(meter, interval) + 7
        )
    };
    let first = [
        gateway_element(0, 0),
        gateway_element(0, 0),
        other(0, 0),
        gateway_element(1, 0),
    ];
    publisher
        .publish(topic, format!("[{}]", first.join(",")))
        .await;
    publisher.flush().await;
    eventually(WAIT, "the first array stored", || async {
        (db.count("SELECT count(*) FROM readings").await == 2).then_some(())
    })
    .await;
    let second = [
        gateway_element(1, 0),
        other(1, 0),
        gateway_element(2, 0),
        gateway_element(3, 0),
        gateway_element(0, 1),
    ];
    publisher
        .publish(topic, format!("[{}]", second.join(",")))
        .await;
    publisher.flush().await;
    eventually(WAIT, "the second array stored", || async {
        (db.count("SELECT count(*) FROM readings").await == 5).then_some(())
    })
    .await;
    eventually(WAIT, "both conflicting copies rejected", || async {
        (db.count("SELECT count(*) FROM rejections WHERE reason = 'conflicting_duplicate'")
            .await
            == 2)
            .then_some(())
    })
    .await;
    // The stored values are the first arrivals'.
    for (meter, interval) in [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1)] {
        let stored = db
            .count(&format!(
                "SELECT energy_wh FROM readings r JOIN meters m USING (meter_key)
                 WHERE m.id = 'M-{meter:06}' AND r.ts = '{}'",
                ts(interval)
            ))
            .await;
        assert_eq!(
            stored,
            energy(meter, interval),
            "M-{meter:06} at {interval}"
        );
    }
    assert_eq!(ingest.metrics.ingest.duplicates_absorbed.get(), 2);
    assert_eq!(db.count("SELECT count(*) FROM rejections").await, 2);
    ingest.stop().await;
    publisher.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reason_code_comes_from_a_real_bad_input_and_keeps_its_raw_payload() {
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 2).await;
    let mut config = config(&db, &broker, &unique_name("ingest"));
    config.ingest.max_payload_bytes = 4096;
    let ingest = InProcess::start(config).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    let meter = "gridwatch/v1/meters/M-000000/readings";
    let good = r#"{"meter_id":"M-000001","ts":"2026-11-01T00:00:00Z","energy_wh":5}"#;
    let cases: Vec<(&str, String, &str)> = vec![
        (meter, "{not json".into(), "malformed_json"),
        (
            meter,
            r#"{"ts":"2026-11-01T00:00:00Z","energy_wh":"5"}"#.into(),
            "invalid_field",
        ),
        (
            "gridwatch/v1/meters/M-404/readings",
            r#"{"ts":"2026-11-01T00:00:00Z","energy_wh":5}"#.into(),
            "unknown_meter",
        ),
        (
            meter,
            r#"{"meter_id":"M-000001","ts":"2026-11-01T00:00:00Z","energy_wh":5}"#.into(),
            "topic_mismatch",
        ),
        (
            meter,
            r#"{"ts":"2026-11-01T00:15:00Z","energy_wh":-5}"#.into(),
            "negative_energy",
        ),
        (
            meter,
            r#"{"ts":"1999-01-01T00:00:00Z","energy_wh":5}"#.into(),
            "timestamp_out_of_range",
        ),
        (
            meter,
            format!(
                r#"{{"ts":"2026-11-01T00:30:00Z","energy_wh":5,"pad":"{}"}}"#,
                "x".repeat(5000)
            ),
            "payload_too_large",
        ),
        // One bad element of a gateway array rejects that element only.
        (
            "gridwatch/v1/gateways/GW-9/readings",
            format!(r#"[{good},{{"meter_id":"M-000001","energy_wh":1}}]"#),
            "invalid_field",
        ),
    ];
    for (topic, payload, _) in &cases {
        publisher.publish(topic, payload.clone()).await;
    }
    publisher.flush().await;
    let expected = cases.len() as i64;
    eventually(WAIT, "every rejection stored", || async {
        (db.count("SELECT count(*) FROM rejections").await == expected).then_some(())
    })
    .await;
    let client = db.client().await;
    for (topic, payload, reason) in &cases {
        let element_only = topic.contains("gateways");
        let kept: i64 = client
            .query_one(
                "SELECT count(*) FROM rejections WHERE topic = $1 AND reason = $2
                 AND (raw = $3 OR $4) AND raw_size > 0",
                &[topic, reason, &payload.as_bytes(), &element_only],
            )
            .await
            .expect("query")
            .get(0);
        assert!(kept >= 1, "{reason} for {payload:.60}");
    }
    let element: Vec<u8> = client
        .query_one("SELECT raw FROM rejections WHERE source = 'GW-9'", &[])
        .await
        .expect("the gateway element's rejection")
        .get(0);
    assert_eq!(element, br#"{"meter_id":"M-000001","energy_wh":1}"#);
    // The good element of the same array is stored.
    assert_eq!(db.count("SELECT count(*) FROM readings").await, 1);
    ingest.stop().await;
    publisher.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_killed_with_sigkill_mid_stream_loses_nothing_and_stores_nothing_twice() {
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 200).await;
    let client_id = unique_name("ingest");
    InProcess::create_session(config(&db, &broker, &client_id)).await;
    let mut process = Some(Process::start(&db, &broker, &client_id, &[]));
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    let mut published = 0;
    for round in 0..6 {
        published += publish_readings(&mut publisher, 200, round * 5..round * 5 + 5).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        if let Some(p) = process.take() {
            p.kill();
        }
        process = Some(Process::start(&db, &broker, &client_id, &[]));
    }
    publisher.flush().await;
    assert_stored_exactly(&db, published).await;
    publisher.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_connections_terminated_mid_stream_lose_nothing() {
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 200).await;
    // One writer, so that the connection the first round opened is the one every later
    // batch must find dead.
    let mut cfg = config(&db, &broker, &unique_name("ingest"));
    cfg.ingest.writers = 1;
    let ingest = InProcess::start(cfg).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    let admin = db.client().await;
    let mut published = publish_readings(&mut publisher, 200, 0..4).await;
    publisher.flush().await;
    assert_stored_exactly(&db, published).await;
    for round in 1..6 {
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("terminate connections");
        published += publish_readings(&mut publisher, 200, round * 4..round * 4 + 4).await;
    }
    publisher.flush().await;
    assert_stored_exactly(&db, published).await;
    assert!(
        ingest
            .metrics
            .ingest
            .db_errors
            .with_label_values(&["commit"])
            .get()
            + ingest
                .metrics
                .ingest
                .db_errors
                .with_label_values(&["connect"])
                .get()
            > 0,
        "the terminations were noticed"
    );
    ingest.stop().await;
    publisher.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_holds_readings_until_the_database_returns() {
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 100).await;
    let ingest = InProcess::start(config(&db, &broker, &unique_name("ingest"))).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    let published_before = publish_readings(&mut publisher, 100, 0..2).await;
    publisher.flush().await;
    assert_stored_exactly(&db, published_before).await;
    // The outage: no new connections, existing ones cut.
    let (admin, connection) = tokio_postgres::connect(
        &format!("{}/postgres", support::db::server_url()),
        tokio_postgres::NoTls,
    )
    .await
    .expect("admin connection");
    tokio::spawn(connection);
    let name = &db.name;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
        ))
        .await
        .expect("block");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[name],
        )
        .await
        .expect("terminate");
    let published_during = publish_readings(&mut publisher, 100, 2..8).await;
    publisher.flush().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        ingest.metrics.ingest.unacked.get() > 0,
        "nothing acknowledged while the database is away"
    );
    admin
        .batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
        .await
        .expect("unblock");
    assert_stored_exactly(&db, published_before + published_during).await;
    ingest.stop().await;
    publisher.disconnect().await;
}

/// Readings published while ingest is away: five times Mosquitto's default queue of 1,000 QoS 1
/// messages per offline session, beyond which it drops them.
const READINGS_WHILE_AWAY: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_published_while_ingest_is_away_all_wait_in_the_shipped_brokers_queue() {
    let db = TestDb::migrated().await;
    // The shipped deploy/mosquitto configuration, queue limits included.
    let broker = Broker::start();
    let meters = 500;
    seed_meters(&db, meters).await;
    let client_id = unique_name("ingest");
    // Subscribed once with the persistent client id, then gone: the broker queues for it.
    InProcess::create_session(config(&db, &broker, &client_id)).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    for interval in 0..READINGS_WHILE_AWAY / meters {
        for meter in 0..meters {
            publisher
                .publish(
                    &format!("gridwatch/v1/meters/M-{meter:06}/readings"),
                    meter_payload(meter, interval),
                )
                .await;
        }
    }
    publisher.flush().await;
    assert_eq!(
        db.count("SELECT count(*) FROM readings").await,
        0,
        "ingest is away"
    );
    let ingest = InProcess::start(config(&db, &broker, &client_id)).await;
    assert_stored_exactly(&db, READINGS_WHILE_AWAY).await;
    assert_eq!(
        ingest.metrics.ingest.readings_stored.get(),
        READINGS_WHILE_AWAY as u64
    );
    assert_eq!(db.count("SELECT count(*) FROM rejections").await, 0);
    assert!(
        !broker.log().contains("dropped"),
        "the broker dropped queued messages: {}",
        broker.log()
    );
    ingest.stop().await;
    publisher.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_mid_stream_loses_nothing() {
    let db = TestDb::migrated().await;
    let mut broker = Broker::start();
    seed_meters(&db, 200).await;
    let ingest = InProcess::start(config(&db, &broker, &unique_name("ingest"))).await;
    let mut published = 0;
    for round in 0..3 {
        let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
        published += publish_readings(&mut publisher, 200, round * 4..round * 4 + 4).await;
        publisher.flush().await;
        publisher.disconnect().await;
        broker.restart();
    }
    assert_stored_exactly(&db, published).await;
    // Each restart drops the connection (restarts during a reconnection delay count once).
    assert!(ingest.metrics.ingest.mqtt_reconnects.get() >= 1);
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_shared_subscription_store_everything_once() {
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 200).await;
    let group = unique_name("group");
    let mut a = config(&db, &broker, &unique_name("ingest-a"));
    a.mqtt.share_group = Some(group.clone());
    let mut b = config(&db, &broker, &unique_name("ingest-b"));
    b.mqtt.share_group = Some(group);
    let first = InProcess::start(a).await;
    let second = InProcess::start(b).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    let published = publish_readings(&mut publisher, 200, 0..10).await;
    publisher.flush().await;
    assert_stored_exactly(&db, published).await;
    let by_first = first.metrics.ingest.readings_stored.get();
    let by_second = second.metrics.ingest.readings_stored.get();
    assert_eq!(by_first + by_second, published as u64);
    assert!(
        by_first > 0 && by_second > 0,
        "both instances took a share: {by_first} / {by_second}"
    );
    first.stop().await;
    second.stop().await;
    publisher.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_registered_while_ingest_runs_is_accepted_without_restart() {
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 1).await;
    let ingest = InProcess::start(config(&db, &broker, &unique_name("ingest"))).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    publisher
        .publish("gridwatch/v1/meters/M-000007/readings", meter_payload(7, 0))
        .await;
    publisher.flush().await;
    eventually(WAIT, "the unknown meter rejected", || async {
        (db.count("SELECT count(*) FROM rejections WHERE reason = 'unknown_meter'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    add_meters(&db, &["M-000007".to_owned()]).await;
    publisher
        .publish("gridwatch/v1/meters/M-000007/readings", meter_payload(7, 1))
        .await;
    publisher.flush().await;
    eventually(WAIT, "the new meter's reading stored", || async {
        (db.count("SELECT count(*) FROM readings").await == 1).then_some(())
    })
    .await;
    ingest.stop().await;
    publisher.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_the_open_batch_and_exits_cleanly() {
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 100).await;
    let client_id = unique_name("ingest");
    InProcess::create_session(config(&db, &broker, &client_id)).await;
    // A batch timer far longer than the test: only shutdown can close the batch.
    let process = Process::start(
        &db,
        &broker,
        &client_id,
        &[("GRIDWATCH_INGEST_BATCH_MAX_DELAY_MS", "600000")],
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;
    let published = publish_readings(&mut publisher, 100, 0..3).await;
    publisher.flush().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        db.count("SELECT count(*) FROM readings").await,
        0,
        "the batch is still open"
    );
    let status = process.terminate();
    assert!(status.success(), "clean exit: {status}");
    assert_eq!(
        db.count("SELECT count(*) FROM readings").await,
        published as i64
    );
    // Everything was acknowledged: a new instance on the same session receives nothing again.
    let again = InProcess::start(config(&db, &broker, &client_id)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(again.metrics.ingest.duplicates_absorbed.get(), 0);
    again.stop().await;
    publisher.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_flood_is_sampled_and_counted_and_the_limits_reject_without_disconnecting() {
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    seed_meters(&db, 10_001).await;
    let mut config = config(&db, &broker, &unique_name("ingest"));
    config.ingest.rejections_kept_per_source_hour = 25;
    let kept_bytes = config.ingest.raw_payload_keep_bytes;
    let ingest = InProcess::start(config).await;
    let mut publisher = Publisher::connect(broker.port, SIMULATOR_USER).await;

    // Half of the traffic is garbage from one gateway, every message different.
    let garbage = 400;
    for i in 0..garbage {
        publisher
            .publish(
                &format!("gridwatch/v1/meters/M-{:06}/readings", i % 100),
                meter_payload(i % 100, i / 100),
            )
            .await;
        publisher
            .publish(
                "gridwatch/v1/gateways/GW-EVIL/readings",
                format!("{{garbage number {i}"),
            )
            .await;
    }
    // A gateway array at the contract's limit is stored whole; one element more is rejected
    // whole; a message beyond the payload limit is a rejection keeping its first bytes.
    let array = |interval: usize, elements: usize| {
        let all: Vec<String> = (0..elements)
            .map(|m| gateway_element(m, interval))
            .collect();
        format!("[{}]", all.join(","))
    };
    let big = "gridwatch/v1/gateways/GW-BIG/readings";
    publisher.publish(big, array(10, 10_000)).await;
    publisher.publish(big, array(11, 10_001)).await;
    let huge = format!("[{}]", " ".repeat(2 << 20));
    publisher.publish(big, huge.clone()).await;
    // And readings still flow after all of it.
    publisher
        .publish(
            "gridwatch/v1/meters/M-000000/readings",
            meter_payload(0, 20),
        )
        .await;
    publisher.flush().await;

    let good = garbage + 10_000 + 1;
    assert_stored_exactly(&db, good).await;
    eventually(WAIT, "every rejection counted", || async {
        let counted = db
            .count(
                "SELECT coalesce(sum(rejected), 0)::bigint FROM rejection_counts
                 WHERE source <> '*'",
            )
            .await;
        (counted == garbage as i64 + 2).then_some(())
    })
    .await;
    let client = db.client().await;
    // Per hour of arrival (the run may straddle one), the first 25 are kept row by row.
    let row = client
        .query_one(
            "SELECT sum(rejected)::bigint, sum(kept)::bigint, sum(least(rejected, 25))::bigint
             FROM rejection_counts WHERE source = 'GW-EVIL' AND reason = 'malformed_json'",
            &[],
        )
        .await
        .expect("counts");
    let (rejected, kept, limit): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((rejected, kept), (garbage as i64, limit));
    assert_eq!(
        db.count("SELECT count(*) FROM rejections WHERE source = 'GW-EVIL'")
            .await,
        kept,
        "the flood keeps a sample, row by row, up to the limit"
    );
    let rows = client
        .query(
            "SELECT detail, length(raw), raw_size FROM rejections
             WHERE source = 'GW-BIG' AND reason = 'payload_too_large' ORDER BY rejection_id",
            &[],
        )
        .await
        .expect("rejections");
    assert_eq!(
        rows.len(),
        2,
        "the 10,001-element array and the oversize message"
    );
    let detail: &str = rows[0].get(0);
    assert!(detail.contains("10001"), "{detail}");
    let (raw, size): (i32, i32) = (rows[1].get(1), rows[1].get(2));
    assert_eq!(raw as usize, kept_bytes);
    assert_eq!(size as usize, huge.len());
    assert_eq!(
        ingest.metrics.ingest.mqtt_reconnects.get(),
        0,
        "no message made ingest drop its connection"
    );
    ingest.stop().await;
    publisher.disconnect().await;
}
