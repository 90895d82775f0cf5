//! Running a scenario with its services spread over several instances, as over the processes of
//! a deployment: ingest replicas on a shared subscription, detectors each owning some regions.
//! The steps are [`scenario`](super::scenario)'s; what differs is that there are several
//! [`Running`]s to start, to wait for and to stop, and that the wait counts every region.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gridwatch::config::Config;
use gridwatch::metrics::Metrics;
use gridwatch::services::{self, Running, Service};
use gridwatch::simulate::wait_until_consuming;
use gridwatch_sim::{SimConfig, Simulation};

use super::broker::{PASSWORD_SUFFIX, SIMULATOR_USER};
use super::scenario::{config, Outcome, Started};
use super::{eventually, Broker, TestDb};

/// One `services::start` of a [`Layout`], standing for one process: the services it runs and
/// how its configuration differs from the test's (each instance already gets its own MQTT client
/// id, and port 0 for HTTP and metrics).
pub struct Instance {
    pub services: Vec<Service>,
    configure: Box<dyn Fn(&mut Config)>,
}

impl Instance {
    /// An instance running `services` with the test's configuration.
    pub fn new(services: &[Service]) -> Instance {
        Instance {
            services: services.to_vec(),
            configure: Box::new(|_| {}),
        }
    }

    /// The same instance with `configure` applied to its configuration.
    pub fn configured(self, configure: impl Fn(&mut Config) + 'static) -> Instance {
        Instance {
            configure: Box::new(configure),
            ..self
        }
    }
}

/// How a run's services are spread over instances sharing the test's database and broker. The
/// first instance should run ingest and the API: it is [`Started::running`], whose address tests
/// use.
pub struct Layout {
    pub instances: Vec<Instance>,
    /// Start the instances that detect only once ingest has stored everything published, so that
    /// the detectors replay stored history, as after a restart. Live, at replay speed (days of
    /// readings a second), concurrent batches commit hours of event time out of order, windows
    /// are first evaluated on part of their readings and re-evaluated, and two runs of the same
    /// layout can differ by a window at a case's start: a comparison of layouts needs this.
    pub detect_after_ingest: bool,
}

/// What a run of a layout produced.
pub struct Spread {
    pub outcome: Outcome,
    /// Each instance's metrics, in the layout's order, as they were when the services stopped.
    pub metrics: Vec<Arc<Metrics>>,
}

/// Like [`scenario::run`](super::scenario::run), with the services spread over `layout`. The
/// layout must run ingest somewhere and detect every region of `sim` somewhere, or the wait
/// fails after `limit`.
pub async fn run_with(sim: SimConfig, limit: Duration, layout: Layout) -> Spread {
    let deferred =
        |i: &Instance| layout.detect_after_ingest && i.services.contains(&Service::Detect);
    let (later, now): (Vec<_>, Vec<_>) = layout
        .instances
        .into_iter()
        .enumerate()
        .partition(|(_, i)| deferred(i));
    assert!(
        later
            .iter()
            .all(|(_, i)| !i.services.contains(&Service::Ingest)),
        "an instance that detects after ingest cannot ingest"
    );
    let mut order: Vec<usize> = now.iter().map(|(n, _)| *n).collect();
    let now: Vec<Instance> = now.into_iter().map(|(_, i)| i).collect();
    let (mut started, mut others) = start_with(sim, now).await;
    started.publish().await;
    if !later.is_empty() {
        wait_until_stored(&started, &others, limit).await;
        for (n, instance) in &later {
            let (_, running) = start_instance(&started.db, &started.broker, instance).await;
            others.push(running);
            order.push(*n);
        }
    }
    settle_all(&started, &others, limit).await;
    let mut metrics: Vec<(usize, Arc<Metrics>)> = order
        .into_iter()
        .zip(std::iter::once(&started.running).chain(&others))
        .map(|(n, running)| (n, running.metrics.clone()))
        .collect();
    metrics.sort_by_key(|(n, _)| *n);
    // Stop the other instances first: `finish` stops the first one and reads the anomalies.
    for instance in &others {
        instance.stop();
    }
    for instance in others {
        instance.wait().await.expect("services stop cleanly");
    }
    Spread {
        outcome: started.finish().await,
        metrics: metrics.into_iter().map(|(_, m)| m).collect(),
    }
}

/// Starts one instance against the test's database and broker.
async fn start_instance(db: &TestDb, broker: &Broker, instance: &Instance) -> (Config, Running) {
    let mut config = config(db, broker);
    (instance.configure)(&mut config);
    let running = services::start(&config, &instance.services)
        .await
        .expect("services start");
    (config, running)
}

/// Starts the database, the broker and the instances of `layout`, imports the registry and
/// waits until every ingest instance has subscribed. Returns the first instance inside
/// [`Started`] and the others beside it.
async fn start_with(sim: SimConfig, layout: Vec<Instance>) -> (Started, Vec<Running>) {
    super::scenario::init_test_logs();
    let db = TestDb::migrated().await;
    let broker = Broker::start();
    let mut instances = Vec::new();
    for instance in &layout {
        instances.push(start_instance(&db, &broker, instance).await);
    }
    // With a shared subscription the broker splits the load only between the members subscribed
    // when a message arrives: wait for every ingest instance, not only the first to consume.
    for (instance, (_, running)) in layout.iter().zip(&instances) {
        if !instance.services.contains(&Service::Ingest) {
            continue;
        }
        eventually(
            Duration::from_secs(30),
            "every ingest subscribed",
            || async { (running.metrics.ingest.mqtt_subscribed.get() == 1).then_some(()) },
        )
        .await;
    }
    let simulation = Simulation::new(sim).expect("a valid simulation");
    let mut client = db.client().await;
    gridwatch::registry::store::import_document(&mut client, simulation.registry(), "test")
        .await
        .expect("the simulated registry is accepted");
    let mut instances = instances.into_iter();
    let (config, running) = instances.next().expect("a layout has an instance");
    let password = format!("{SIMULATOR_USER}{PASSWORD_SUFFIX}");
    wait_until_consuming(
        &client,
        broker.port,
        SIMULATOR_USER,
        &password,
        &config.mqtt.topic_root,
    )
    .await
    .expect("ingest consumes");
    let others = instances.map(|(_, running)| running).collect();
    let started = Started {
        config,
        running,
        simulation,
        client,
        broker,
        db,
    };
    (started, others)
}

/// Waits (bounded by `limit`) until no instance holds unacknowledged messages, the stored count
/// is still, nothing is queued for the detectors and every region's progress has reached the end
/// of the run less the allowed lateness and a window. Regions are counted: a region without a
/// progress row has not started, which `min(analysed_until)` over the rows would not see.
async fn settle_all(started: &Started, others: &[Running], limit: Duration) {
    let all: Vec<&Running> = std::iter::once(&started.running).chain(others).collect();
    let unacked = || -> i64 { all.iter().map(|r| r.metrics.ingest.unacked.get()).sum() };
    let target = started.end()
        - chrono::Duration::seconds(started.config.detector.allowed_lateness_secs)
        - chrono::Duration::minutes(15);
    let deadline = Instant::now() + limit;
    let mut settled = 0;
    let mut last_stored = -1i64;
    loop {
        let row = started
            .client
            .query_one(
                "SELECT (SELECT coalesce(sum(readings_stored), 0)::bigint FROM ingest_counters),
                        (SELECT count(*) FROM regions),
                        (SELECT count(*) FROM detector_progress WHERE analysed_until >= $1),
                        (SELECT min(analysed_until) FROM detector_progress),
                        (SELECT count(*) FROM reading_touches)",
                &[&target],
            )
            .await
            .expect("progress");
        let stored: i64 = row.get(0);
        let (regions, done): (i64, i64) = (row.get(1), row.get(2));
        let least: Option<DateTime<Utc>> = row.get(3);
        let pending: i64 = row.get(4);
        let quiet = unacked() <= 0 && stored == last_stored;
        last_stored = stored;
        if quiet && done == regions && pending == 0 {
            settled += 1;
            if settled >= 2 {
                return;
            }
        } else {
            settled = 0;
        }
        let errors: u64 = all
            .iter()
            .map(|r| {
                r.metrics
                    .detector
                    .errors
                    .with_label_values(&["cycle"])
                    .get()
            })
            .sum();
        assert!(
            Instant::now() < deadline,
            "{done} of {regions} regions evaluated to {target} within {limit:?} (the least to \
             {least:?}; {stored} readings stored, {} unacknowledged, {pending} touches pending, \
             {errors} detector errors)",
            unacked(),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (bounded by `limit`) until ingest has stored everything published: no instance holds
/// unacknowledged messages and neither the readings nor the purchases (the API's consumer) have
/// moved for a second.
async fn wait_until_stored(started: &Started, others: &[Running], limit: Duration) {
    let all: Vec<&Running> = std::iter::once(&started.running).chain(others).collect();
    let deadline = Instant::now() + limit;
    let mut still = 0;
    let mut last = (-1i64, -1i64);
    loop {
        let row = started
            .client
            .query_one(
                "SELECT (SELECT coalesce(sum(readings_stored), 0)::bigint FROM ingest_counters),
                        (SELECT count(*) FROM purchases) + (SELECT count(*) FROM purchase_attempts)",
                &[],
            )
            .await
            .expect("counters");
        let now: (i64, i64) = (row.get(0), row.get(1));
        let unacked: i64 = all.iter().map(|r| r.metrics.ingest.unacked.get()).sum();
        still = if unacked <= 0 && now == last {
            still + 1
        } else {
            0
        };
        if still >= 5 {
            return;
        }
        last = now;
        assert!(
            Instant::now() < deadline,
            "ingest still busy after {limit:?}: {now:?} readings and purchases, {unacked} unacknowledged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
