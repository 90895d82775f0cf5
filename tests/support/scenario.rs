//! Running a simulated scenario end to end: the simulator publishes over MQTT to ingest, the
//! detector and the API running in this process, against a database and a broker of the test's
//! own; then the anomalies are read back. [`run`] does it all; [`start`] and the steps of
//! [`Started`] let a test watch the services while the scenario runs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gridwatch::config::{Config, Secret};
use gridwatch::services::{self, Running, Service};
use gridwatch::simulate::{feed, wait_until_consuming, Backlog, FeedOptions, Upload};
use gridwatch_sim::{GroundTruth, SimConfig, Simulation};
use tokio_postgres::Client;

use super::broker::{INGEST_USER, PASSWORD_SUFFIX, SIMULATOR_USER};
use super::{unique_name, workspace_root, Broker, TestDb};

/// An anomaly as stored.
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub id: String,
    pub kind: String,
    pub node: Option<String>,
    pub meter: Option<String>,
    pub licence: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub energy_wh: i64,
    pub loss_kzt: f64,
    pub severity: String,
    pub suspects: Vec<String>,
    pub withdrawn: bool,
}

/// What a scenario run produced.
pub struct Outcome {
    pub db: TestDb,
    pub truth: GroundTruth,
    pub anomalies: Vec<Anomaly>,
    pub end: DateTime<Utc>,
}

impl Outcome {
    /// Anomalies of `kind` that were not withdrawn.
    pub fn of_kind(&self, kind: &str) -> Vec<&Anomaly> {
        self.anomalies
            .iter()
            .filter(|a| a.kind == kind && !a.withdrawn)
            .collect()
    }
}

/// The services' configuration for a test.
pub fn config(db: &TestDb, broker: &Broker) -> Config {
    let mut config = Config {
        database_url: db.secret(),
        tokens_file: workspace_root().join("deploy/tokens.dev.toml"),
        ..Config::default()
    };
    config.http_addr.set_port(0);
    config.metrics_addr.set_port(0);
    config.mqtt.url = Secret::new(broker.ingest_url());
    config.mqtt.client_id = unique_name("ingest");
    config.detector.poll_ms = 100;
    // A replay at full speed: a source silent for 20 s of wall time has ended its stream.
    config.detector.source_silence_secs = 20;
    config
}

/// Runs `sim` through MQTT, ingest and the detector; waits (bounded by `limit`) until the
/// detector has evaluated everything the watermark allows.
pub async fn run(sim: SimConfig, limit: Duration) -> Outcome {
    let mut started = start(sim).await;
    started.publish().await;
    started.settle(limit).await;
    started.finish().await
}

/// A scenario whose services run: started, its registry imported, ingest subscribed, nothing
/// published yet. Tests that watch the services from outside while the scenario runs (a real
/// Prometheus scraping `/metrics`) use the steps of [`run`] one by one.
pub struct Started {
    /// The services' configuration (the broker's and the database's addresses, port 0 for HTTP).
    pub config: Config,
    /// Ingest, the detector and the API, in this process.
    pub running: Running,
    pub simulation: Simulation,
    /// A connection to the test's database.
    pub client: Client,
    pub broker: Broker,
    // Dropped last: the database outlives every connection to it.
    pub db: TestDb,
}

/// Sends the services' warnings and errors to the test's captured output, shown on failure
/// (`GRIDWATCH_TEST_LOG` sets another filter).
pub fn init_test_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GRIDWATCH_TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Starts the database, the broker and the services for `sim`, imports its registry and waits
/// until ingest consumes.
pub async fn start(sim: SimConfig) -> Started {
    init_test_logs();
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    let config = config(&db, &broker);
    let running = services::start(&config, &[Service::Ingest, Service::Detect, Service::Api])
        .await
        .expect("services start");
    let simulation = Simulation::new(sim).expect("a valid simulation");
    let mut client = db.client().await;
    gridwatch::registry::store::import_document(&mut client, simulation.registry(), "test")
        .await
        .expect("the simulated registry is accepted");
    let password = format!("{SIMULATOR_USER}{PASSWORD_SUFFIX}");
    wait_until_consuming(
        &client,
        broker.port,
        SIMULATOR_USER,
        &password,
        &config.mqtt.topic_root,
    )
    .await
    .expect("ingest subscribes");
    Started {
        config,
        running,
        simulation,
        client,
        broker,
        db,
    }
}

impl Started {
    /// Where the services serve HTTP, `/metrics` included (the API runs).
    pub fn http_addr(&self) -> SocketAddr {
        self.running.http_addr
    }

    /// Publishes the whole simulation over MQTT, as fast as the broker takes it.
    pub async fn publish(&mut self) {
        self.publish_as(Upload::Live).await;
    }

    /// Publishes the whole simulation over MQTT as fast as the broker takes it, delivered as
    /// `upload` says (live, or a day per concentrator in turn).
    pub async fn publish_as(&mut self, upload: Upload) {
        let options = FeedOptions {
            mqtt_url: self.broker.url_for(SIMULATOR_USER),
            topic_root: self.config.mqtt.topic_root.clone(),
            publishers: 2,
            speed: None,
            // A full-speed replay must not outrun ingest by more than the broker queues for it
            // (deploy/mosquitto: 2,000,000 messages, beyond which it drops): a month of 2,000
            // homes is 6 million readings, half of them one message each.
            backlog: Some(Backlog {
                database_url: self.config.database_url.clone(),
                max_readings: 1_000_000,
            }),
            upload,
        };
        feed(&mut self.simulation, &options, |_, _| {})
            .await
            .expect("the simulation is published");
    }

    /// The end of the simulated period.
    pub fn end(&self) -> DateTime<Utc> {
        let sim = self.simulation.config();
        sim.start + chrono::Duration::days(i64::from(sim.days))
    }

    /// Waits (bounded by `limit`) until ingest has committed everything it received and the
    /// detector has evaluated everything the watermark allows.
    pub async fn settle(&self, limit: Duration) {
        let (client, running, config) = (&self.client, &self.running, &self.config);
        let target = self.end()
            - chrono::Duration::seconds(config.detector.allowed_lateness_secs)
            - chrono::Duration::minutes(15);
        let deadline = Instant::now() + limit;
        let mut settled = 0;
        let mut last_stored = -1i64;
        loop {
            let stored: i64 = client
                .query_one(
                    "SELECT coalesce(sum(readings_stored), 0)::bigint FROM ingest_counters",
                    &[],
                )
                .await
                .expect("counters")
                .get(0);
            let quiet = running.metrics.ingest.unacked.get() <= 0 && stored == last_stored;
            last_stored = stored;
            let until: Option<DateTime<Utc>> = client
                .query_one("SELECT min(analysed_until) FROM detector_progress", &[])
                .await
                .expect("progress")
                .get(0);
            let pending: i64 = client
                .query_one("SELECT count(*) FROM reading_touches", &[])
                .await
                .expect("touches")
                .get(0);
            if quiet && until.is_some_and(|u| u >= target) && pending == 0 {
                settled += 1;
                if settled >= 2 {
                    break;
                }
            } else {
                settled = 0;
            }
            if Instant::now() >= deadline {
                let recent = client
                    .query(
                        "SELECT ts, count(*) FROM readings WHERE ts >= $1 GROUP BY ts ORDER BY ts",
                        &[&(target - chrono::Duration::hours(1))],
                    )
                    .await
                    .expect("recent readings");
                let recent: Vec<(DateTime<Utc>, i64)> =
                    recent.iter().map(|r| (r.get(0), r.get(1))).collect();
                let rejected = client
                    .query(
                        "SELECT reason, count(*) FROM rejections GROUP BY reason",
                        &[],
                    )
                    .await
                    .map(|rows| {
                        rows.iter()
                            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
                            .collect::<Vec<_>>()
                    });
                eprintln!(
                    "readings of the last hour by time: {recent:?}\nrejections: {rejected:?}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "the detector reached {until:?}, not {target}, within {limit:?} \
                 ({stored} readings stored, {} unacknowledged, {pending} touches pending, \
                 {} detector errors)",
                running.metrics.ingest.unacked.get(),
                running
                    .metrics
                    .detector
                    .errors
                    .with_label_values(&["cycle"])
                    .get()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the services and reads the anomalies back.
    pub async fn finish(self) -> Outcome {
        let end = self.end();
        let Started {
            running,
            simulation,
            client,
            broker,
            db,
            ..
        } = self;
        // The hourly and daily analyses of the last evaluated windows run in the same cycle.
        running.stop();
        running.wait().await.expect("services stop cleanly");
        let _ = INGEST_USER;
        let rows = client
            .query(
                "SELECT id, kind, node, meter, licence, started_at, ended_at, energy_wh, loss_kzt,
                        severity, suspects, evidence ? 'withdrawn'
                 FROM anomalies ORDER BY started_at",
                &[],
            )
            .await
            .expect("anomalies");
        let anomalies = rows
            .iter()
            .map(|r| Anomaly {
                id: r.get(0),
                kind: r.get(1),
                node: r.get(2),
                meter: r.get(3),
                licence: r.get(4),
                started_at: r.get(5),
                ended_at: r.get(6),
                energy_wh: r.get(7),
                loss_kzt: r.get(8),
                severity: r.get(9),
                suspects: r.get(10),
                withdrawn: r.get(11),
            })
            .collect();
        let truth = simulation.ground_truth().clone();
        drop(client);
        drop(broker);
        Outcome {
            db,
            truth,
            anomalies,
            end,
        }
    }
}
