//! The shipped broker configuration (deploy/mosquitto: mosquitto.conf, gridwatch.acl, plus
//! simulator.acl as every test broker has it) with real credentials: a meter logs in as its
//! meter id, a data concentrator as its gateway id, the services as themselves.
//!
//! Mosquitto refuses a QoS 1 publish it does not authorise silently (MQTT 3.1.1: it still sends
//! the PUBACK), so a denial is shown by its absence: the denied messages are published and
//! acknowledged first, then a message that is allowed; once an authorised subscriber (or
//! ingest) has the allowed one, it would have had the denied ones before it, since the broker
//! routes a message before acknowledging it and delivers one connection's messages in order.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::support::broker::{INGEST_USER, MARKET_USER, PASSWORD_SUFFIX, SIMULATOR_USER};
use crate::support::ingest::{config, InProcess};
use crate::support::registry::seed_meters;
use crate::support::{eventually, unique_name, Broker, Publisher, TestDb};

const WAIT: Duration = Duration::from_secs(30);

/// What a subscriber that must receive nothing is given to prove it (after the authorised
/// subscriber has had everything published before).
const SILENCE: Duration = Duration::from_millis(500);

const READINGS: &str = "gridwatch/v1/meters/+/readings";
const GATEWAY_READINGS: &str = "gridwatch/v1/gateways/+/readings";
const PURCHASES: &str = "gridwatch/v1/market/purchases";

fn meter_topic(meter: &str) -> String {
    format!("gridwatch/v1/meters/{meter}/readings")
}

fn gateway_topic(gateway: &str) -> String {
    format!("gridwatch/v1/gateways/{gateway}/readings")
}

fn reading(interval: u32) -> String {
    format!(
        r#"{{"ts":"2026-11-01T{:02}:{:02}:00Z","energy_wh":{}}}"#,
        interval / 4,
        (interval % 4) * 15,
        1000 + interval
    )
}

fn element(meter: &str, interval: u32) -> String {
    format!(
        r#"{{"meter_id":"{meter}","ts":"2026-11-01T{:02}:{:02}:00Z","energy_wh":{}}}"#,
        interval / 4,
        (interval % 4) * 15,
        1000 + interval
    )
}

const PURCHASE: &str = r#"{"id":"P-1","licence":"KZ-MIN-042","energy_wh":1000,"delivery_start":"2026-11-01T00:00:00Z","delivery_end":"2026-11-01T01:00:00Z","price_kzt":10.3}"#;

/// A client that subscribes with QoS 1 and keeps what it receives, in order.
struct Subscriber {
    client: AsyncClient,
    received: mpsc::UnboundedReceiver<(String, String)>,
    /// What the broker answered to each filter: granted QoS, or refused.
    granted: Vec<rumqttc::SubscribeReasonCode>,
    task: JoinHandle<()>,
}

impl Subscriber {
    async fn connect(port: u16, user: &str, filters: &[&str]) -> Subscriber {
        let mut options = MqttOptions::new(unique_name("sub"), "127.0.0.1", port);
        options
            .set_credentials(user, format!("{user}{PASSWORD_SUFFIX}"))
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, received) = mpsc::unbounded_channel();
        let (suback_tx, mut suback) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = String::from_utf8_lossy(&p.payload).into_owned();
                        let _ = tx.send((p.topic, payload));
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let _ = suback_tx.send(ack.return_codes);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        client
            .subscribe_many(
                filters
                    .iter()
                    .map(|f| SubscribeFilter::new((*f).to_owned(), QoS::AtLeastOnce)),
            )
            .await
            .expect("subscribe queued");
        let granted = tokio::time::timeout(WAIT, suback.recv())
            .await
            .unwrap_or_else(|_| panic!("{user} connected and got a SUBACK within {WAIT:?}"))
            .expect("subscriber task alive");
        Subscriber {
            client,
            received,
            granted,
            task,
        }
    }

    /// Everything received up to and including the first message on `topic` with `payload`.
    async fn until(&mut self, topic: &str, payload: &str) -> Vec<(String, String)> {
        let mut got = Vec::new();
        loop {
            let message = tokio::time::timeout(WAIT, self.received.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("{topic} {payload} not received within {WAIT:?}; had {got:?}")
                })
                .expect("subscriber task alive");
            let last = message.0 == topic && message.1 == payload;
            got.push(message);
            if last {
                return got;
            }
        }
    }

    /// What arrives within [`SILENCE`].
    async fn drain(&mut self) -> Vec<(String, String)> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + SILENCE;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, self.received.recv()).await
        {
            got.push(message);
        }
        got
    }

    async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        self.task.abort();
    }
}

fn pair(topic: &str, payload: &str) -> (String, String) {
    (topic.to_owned(), payload.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meters_credentials_publish_its_own_readings_and_nothing_else() {
    let broker = Broker::start_with_users(&["M-000001", "M-000002"]);
    let mut observer = Subscriber::connect(
        broker.port,
        INGEST_USER,
        &[READINGS, GATEWAY_READINGS, PURCHASES],
    )
    .await;
    let mut meter = Publisher::connect(broker.port, "M-000001").await;
    let denied = [
        (meter_topic("M-000002"), reading(0)),
        (
            gateway_topic("M-000002"),
            format!("[{}]", element("M-000002", 0)),
        ),
        (
            gateway_topic("GW-1"),
            format!("[{}]", element("M-000001", 0)),
        ),
        (PURCHASES.to_owned(), PURCHASE.to_owned()),
    ];
    for (topic, payload) in &denied {
        meter.publish(topic, payload.clone()).await;
    }
    meter.flush().await;
    let own = meter_topic("M-000001");
    meter.publish(&own, reading(1)).await;
    meter.flush().await;

    assert_eq!(
        observer.until(&own, &reading(1)).await,
        vec![pair(&own, &reading(1))],
        "only the meter's own reading reaches the broker's subscribers; its log:\n{}",
        broker.log()
    );
    meter.disconnect().await;
    observer.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_reads_nothing_and_the_services_publish_no_readings() {
    let broker = Broker::start_with_users(&["M-000001"]);
    let mut observer = Subscriber::connect(
        broker.port,
        INGEST_USER,
        &[READINGS, GATEWAY_READINGS, PURCHASES],
    )
    .await;
    // A meter trying to read its neighbours, everything, and even its own topic (write-only).
    // Mosquitto 2.0 grants these subscriptions and checks each message against the ACL when it
    // would deliver it, so the SUBACK proves nothing: what arrives does.
    let mut snoop = Subscriber::connect(
        broker.port,
        "M-000001",
        &[
            READINGS,
            &meter_topic("M-000002"),
            &meter_topic("M-000001"),
            GATEWAY_READINGS,
            PURCHASES,
            "#",
        ],
    )
    .await;

    // Ingest's account only reads; the market's only publishes purchases. Not even under their
    // own names, which the ACL's patterns for meters and gateways would otherwise allow.
    for user in [INGEST_USER, MARKET_USER] {
        let mut service = Publisher::connect(broker.port, user).await;
        let array = format!("[{}]", element("M-000002", 0));
        for topic in [meter_topic("M-000002"), meter_topic(user)] {
            service.publish(&topic, reading(0)).await;
        }
        for topic in [gateway_topic("GW-1"), gateway_topic(user)] {
            service.publish(&topic, array.clone()).await;
        }
        if user == INGEST_USER {
            service.publish(PURCHASES, PURCHASE).await;
        }
        service.flush().await;
        service.disconnect().await;
    }

    // What the meter would like to read, published by the one client allowed to publish it all.
    let mut simulator = Publisher::connect(broker.port, SIMULATOR_USER).await;
    let published = vec![
        pair(&meter_topic("M-000002"), &reading(1)),
        pair(&meter_topic("M-000001"), &reading(1)),
        pair(
            &gateway_topic("GW-1"),
            &format!("[{}]", element("M-000002", 2)),
        ),
        pair(PURCHASES, PURCHASE),
    ];
    for (topic, payload) in &published {
        simulator.publish(topic, payload.clone()).await;
    }
    simulator.flush().await;

    assert_eq!(
        observer.until(PURCHASES, PURCHASE).await,
        published,
        "ingest's subscription has the simulator's messages and none of the services'"
    );
    assert_eq!(
        snoop.drain().await,
        Vec::<(String, String)>::new(),
        "a meter receives nothing (its subscriptions were answered {:?})",
        snoop.granted
    );
    simulator.disconnect().await;
    observer.disconnect().await;
    snoop.disconnect().await;
}

/// The rejections stored, as (source, meter_id, reason), sorted.
async fn rejections(db: &TestDb) -> Vec<(String, Option<String>, String)> {
    let mut rows: Vec<(String, Option<String>, String)> = db
        .client()
        .await
        .query("SELECT source, meter_id, reason FROM rejections", &[])
        .await
        .expect("rejections")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    rows.sort();
    rows
}

/// The readings stored, as (meter, energy_wh), sorted.
async fn readings(db: &TestDb) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> = db
        .client()
        .await
        .query(
            "SELECT m.id, r.energy_wh FROM readings r JOIN meters m USING (meter_key)",
            &[],
        )
        .await
        .expect("readings")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_or_gateway_cannot_report_for_another_through_ingest() {
    let db = TestDb::migrated().await;
    seed_meters(&db, 3).await;
    // M-000002 reports through its data concentrator GW-2 (the registry's `gateway`).
    db.client()
        .await
        .execute(
            "UPDATE meters SET gateway = 'GW-2' WHERE id = 'M-000002'",
            &[],
        )
        .await
        .expect("register the gateway");
    let broker = Broker::start_with_users(&["M-000001", "GW-1"]);
    let ingest = InProcess::start(config(&db, &broker, &unique_name("ingest"))).await;

    let mut meter = Publisher::connect(broker.port, "M-000001").await;
    // Stored: its own reading.
    meter.publish(&meter_topic("M-000001"), reading(0)).await;
    // topic_mismatch (CONTRACT section 2): the payload names another meter.
    meter
        .publish(&meter_topic("M-000001"), element("M-000002", 1))
        .await;
    // Refused by the broker: another meter's topic, another gateway's.
    meter.publish(&meter_topic("M-000002"), reading(2)).await;
    meter
        .publish(
            &gateway_topic("GW-1"),
            format!("[{}]", element("M-000000", 2)),
        )
        .await;
    // Allowed by the ACL (every client may publish an array under its own name), but a meter
    // speaks only for itself: its own element is stored, its neighbours' are topic_mismatch.
    meter
        .publish(
            &gateway_topic("M-000001"),
            format!(
                "[{},{},{}]",
                element("M-000001", 3),
                element("M-000000", 3),
                element("M-000002", 3)
            ),
        )
        .await;
    meter.flush().await;

    let mut gateway = Publisher::connect(broker.port, "GW-1").await;
    // Stored: a meter with no registered gateway. topic_mismatch: one registered with GW-2.
    gateway
        .publish(
            &gateway_topic("GW-1"),
            format!("[{},{}]", element("M-000000", 4), element("M-000002", 4)),
        )
        .await;
    // Refused by the broker: another gateway's topic.
    gateway
        .publish(
            &gateway_topic("GW-2"),
            format!("[{}]", element("M-000002", 5)),
        )
        .await;
    gateway.flush().await;

    // Published last: once it is stored, ingest has received everything the broker let through.
    let mut simulator = Publisher::connect(broker.port, SIMULATOR_USER).await;
    simulator
        .publish(&meter_topic("M-000000"), reading(9))
        .await;
    simulator.flush().await;

    let expected_readings = vec![
        ("M-000000".to_owned(), 1004),
        ("M-000000".to_owned(), 1009),
        ("M-000001".to_owned(), 1000),
        ("M-000001".to_owned(), 1003),
    ];
    let mismatch = |source: &str, meter: &str| {
        (
            source.to_owned(),
            Some(meter.to_owned()),
            "topic_mismatch".to_owned(),
        )
    };
    let expected_rejections = vec![
        mismatch("GW-1", "M-000002"),
        mismatch("M-000001", "M-000000"),
        mismatch("M-000001", "M-000002"),
        mismatch("M-000001", "M-000002"),
    ];
    // Eight readings got through the broker; each ends as a reading or a rejection.
    eventually(
        WAIT,
        "every reading that got through stored or rejected",
        || async { (readings(&db).await.len() + rejections(&db).await.len() >= 8).then_some(()) },
    )
    .await;
    assert_eq!(readings(&db).await, expected_readings);
    assert_eq!(rejections(&db).await, expected_rejections);
    let received: u64 = ["meter", "gateway", "other"]
        .iter()
        .map(|kind| {
            ingest
                .metrics
                .ingest
                .messages
                .with_label_values(&[kind])
                .get()
        })
        .sum();
    assert_eq!(
        received, 5,
        "ingest received the five messages the broker let through, none of the three refused"
    );
    ingest.stop().await;
    meter.disconnect().await;
    gateway.disconnect().await;
    simulator.disconnect().await;
}
