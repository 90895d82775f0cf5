//! Chaos: the services keep their promises while they are killed, cut off and restarted.
//!
//! A small simulated grid with two thefts is published over MQTT while a bounded, seeded
//! sequence of faults hits the services, each running as a real `gridwatch` process: ingest,
//! the detector and the API killed with SIGKILL and started again, the broker restarted, the
//! PostgreSQL server crashed and restarted, the database's connections terminated. Once publishing has ended and everything has settled, the
//! run must match an undisturbed run of the same simulation whose detector starts once ingest
//! has stored everything: the very same readings and purchases, the same anomalies (kind,
//! region, subject, start, end and energy, exactly), none raised twice, and an anomaly history
//! that `gridwatch audit verify` accepts.
//!
//! The disturbed run's detector works live, cutting its work into cycles as readings arrive and
//! as it is restarted, while the undisturbed one judges days at a time: the detector finds the
//! same either way. One setting keeps the comparison exact at this replay's speed: the live
//! detector waits longer for late readings ([`LIVE_LATENESS`], which says why) until publishing
//! is over, when it is restarted with the usual lateness to judge the last windows.
//!
//! The disturbed run has a PostgreSQL server of its own (initdb on a free port), so that
//! crashing it (`pg_ctl stop -m immediate`) and starting it again touches no other test of the
//! suite running in parallel.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gridwatch::config::Config;
use gridwatch::services::Service;
use gridwatch::simulate::{feed, wait_until_consuming, FeedOptions, FeedStats};
use gridwatch_sim::config::RegionConfig;
use gridwatch_sim::{SimConfig, Simulation};
use tokio_postgres::Client;

use support::broker::{PASSWORD_SUFFIX, SIMULATOR_USER};
use support::cases::{case_lines, cases, has_case};
use support::layout::{run_with, Instance, Layout};
use support::pgserver::{self, PgServer};
use support::process::ServiceProcess;
use support::{unique_name, workspace_root, Broker, TempDir, TestDb};

/// Seed of the fault schedule: the same seed, the same faults at the same points of the replay.
const FAULT_SEED: u64 = 0x00C4_A055;
/// Another seed, another schedule: `GRIDWATCH_CHAOS_SEED` (decimal), as `scripts/chaos.sh` sets.
const SEED_VAR: &str = "GRIDWATCH_CHAOS_SEED";
/// Faults injected in a run.
const FAULTS: usize = 14;
/// Simulated seconds per real second while the faults run: the four days are published in
/// about fifteen seconds, so that every fault lands while readings flow.
const REPLAY_SPEED: f64 = 23_040.0;
/// How long the disturbed run's detector waits for late readings while publishing lasts:
/// longer than anything is late in this run. A fault holds readings or purchases back for a
/// second or so, which at this replay's speed is hours of event time, and a detector restart
/// longer still: with the default quarter of an hour and the default re-evaluation horizon of a
/// day (under four seconds of this replay), readings held back by a fault at the very start can
/// come later than the horizon, and their windows keep what they were first judged on (a data
/// gap in the first hours was seen). At real speed a second is a second.
const LIVE_LATENESS: Duration = Duration::from_secs(14 * 3600);
/// The setting of the detector's allowed lateness, in seconds.
const LATENESS_VAR: &str = "GRIDWATCH_DETECTOR_ALLOWED_LATENESS_SECS";
/// The whole test's time: a failure is reported before two minutes have passed. A run takes
/// about half a minute on two idle cores.
const BUDGET: Duration = Duration::from_secs(110);

/// Four winter days of a small region with two thefts: the East Kazakhstan diversion below the
/// first substation for a day, and a licensed farm consuming more than it bought.
fn grid() -> SimConfig {
    let mut config = SimConfig {
        seed: 41,
        days: 4,
        ..SimConfig::default()
    };
    config.regions = vec![RegionConfig {
        households: 300,
        commercial: 20,
        industrial: 2,
        mining_farms: 2,
        ..RegionConfig::default()
    }];
    for scenario in [
        serde_json::json!({"name": "east-kazakhstan", "onset_hours": 48, "duration_hours": 24}),
        serde_json::json!({"name": "quota-overrun", "licence": "KZ-MIN-001", "excess": 0.05, "onset_hours": 36}),
    ] {
        config
            .scenarios
            .push(serde_json::from_value(scenario).expect("a valid scenario"));
    }
    config
}

/// What can go wrong in production, short of losing the PostgreSQL server's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// `gridwatch ingest` killed with SIGKILL mid-batch, started again.
    KillIngest,
    /// `gridwatch detect` killed with SIGKILL mid-cycle, started again.
    KillDetector,
    /// `gridwatch api` (and its purchases consumer) killed with SIGKILL, started again.
    KillApi,
    /// Mosquitto stopped and started again on the same port (it keeps its persistence file).
    RestartBroker,
    /// Every connection to the test's database terminated by the server.
    TerminateConnections,
    /// The PostgreSQL server stopped as a crash would (no checkpoint, every connection cut),
    /// down for a moment, and started again (crash recovery).
    RestartPostgres,
}

/// SplitMix64: a few lines, and the schedule does not change with a dependency's version.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `range`.
    fn below(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }
}

/// One fault of the schedule: after how many published intervals, what, and for how long a
/// killed process stays down.
#[derive(Debug, Clone, Copy)]
struct Planned {
    after_intervals: u64,
    fault: Fault,
    down: Duration,
}

/// [`FAULTS`] faults, every kind at least twice, in a seeded order, at seeded points between the
/// first and the last few intervals of the replay.
fn schedule(seed: u64, intervals: u64) -> Vec<Planned> {
    use Fault::*;
    let mut rng = SplitMix(seed);
    let mut kinds = vec![
        KillIngest,
        KillIngest,
        KillIngest,
        KillDetector,
        KillDetector,
        KillDetector,
        KillApi,
        KillApi,
        RestartBroker,
        RestartBroker,
        TerminateConnections,
        TerminateConnections,
        RestartPostgres,
        RestartPostgres,
    ];
    assert_eq!(kinds.len(), FAULTS);
    for i in (1..kinds.len()).rev() {
        let j = rng.below(0..i as u64 + 1) as usize;
        kinds.swap(i, j);
    }
    let mut points: Vec<u64> = (0..FAULTS).map(|_| rng.below(8..intervals - 8)).collect();
    points.sort_unstable();
    points
        .into_iter()
        .zip(kinds)
        .map(|(after_intervals, fault)| Planned {
            after_intervals,
            fault,
            down: Duration::from_millis(rng.below(0..800)),
        })
        .collect()
}

/// Ingest, the detector and the API, one process each, and where their logs go.
struct Services {
    ingest: ServiceProcess,
    detector: ServiceProcess,
    api: ServiceProcess,
    // Removed after the processes stop (fields drop in order).
    logs: TempDir,
}

impl Services {
    fn start(db: &TestDb, broker: &Broker) -> Services {
        let logs = TempDir::new("gw-chaos-logs");
        let common = |client_id: String| {
            vec![
                ("GRIDWATCH_DATABASE_URL", db.url.clone()),
                ("GRIDWATCH_MQTT_URL", broker.ingest_url()),
                ("GRIDWATCH_MQTT_CLIENT_ID", client_id),
                ("GRIDWATCH_HTTP_ADDR", "127.0.0.1:0".to_owned()),
                ("GRIDWATCH_METRICS_ADDR", "127.0.0.1:0".to_owned()),
                (
                    "GRIDWATCH_TOKENS_FILE",
                    workspace_root()
                        .join("deploy/tokens.dev.toml")
                        .display()
                        .to_string(),
                ),
                ("GRIDWATCH_DETECTOR_POLL_MS", "100".to_owned()),
                ("GRIDWATCH_DETECTOR_SOURCE_SILENCE_SECS", "20".to_owned()),
                ("GRIDWATCH_LOG", "warn".to_owned()),
                ("NO_COLOR", "1".to_owned()),
            ]
        };
        // Stable client ids: a restarted process resumes its persistent session, and with it the
        // messages the broker kept while it was down.
        let ingest = ServiceProcess::start(
            "ingest",
            common(unique_name("ingest")),
            &logs.path().join("ingest.log"),
        );
        let mut detector_env = common(unique_name("detector"));
        detector_env.push((LATENESS_VAR, LIVE_LATENESS.as_secs().to_string()));
        let detector =
            ServiceProcess::start("detect", detector_env, &logs.path().join("detect.log"));
        let api = ServiceProcess::start(
            "api",
            common(unique_name("api")),
            &logs.path().join("api.log"),
        );
        Services {
            ingest,
            detector,
            api,
            logs,
        }
    }

    fn all(&mut self) -> [&mut ServiceProcess; 3] {
        [&mut self.ingest, &mut self.detector, &mut self.api]
    }

    /// The warnings and errors the services logged, the last lines of each.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for name in ["ingest", "detect", "api"] {
            let text = std::fs::read_to_string(self.logs.path().join(format!("{name}.log")))
                .unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "--- gridwatch {name} ({} lines) ---\n",
                lines.len()
            ));
            for line in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails());
        }
    }
}

/// Terminates every other connection to the database `client` is connected to; returns how many.
async fn terminate_connections(client: &Client) -> i64 {
    client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("connections terminated")
        .get(0)
}

/// What a run stored: readings and purchases, each as a count and a digest of every row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    readings: i64,
    readings_energy_wh: i64,
    /// md5 of every (meter, time, register), in order: the same set, not only the same sums.
    readings_digest: String,
    purchases: i64,
    purchases_digest: String,
    /// Purchases refused (over the cap, say). Payloads that are no purchase at all, such as
    /// the probes of `wait_until_consuming`, are kept each time they come and not counted.
    refused_purchases: i64,
}

async fn stored(client: &Client) -> Stored {
    let readings = client
        .query_one(
            "SELECT count(*), coalesce(sum(r.energy_wh), 0)::bigint,
                    md5(coalesce(string_agg(m.id || '@' || extract(epoch FROM r.ts)::bigint
                                            || '=' || r.energy_wh, ',' ORDER BY m.id, r.ts), ''))
             FROM readings r JOIN meters m USING (meter_key)",
            &[],
        )
        .await
        .expect("readings");
    let purchases = client
        .query_one(
            "SELECT count(*), md5(coalesce(string_agg(id || '=' || energy_wh, ',' ORDER BY id), '')),
                    (SELECT count(*) FROM purchase_attempts WHERE purchase_id IS NOT NULL)
             FROM purchases",
            &[],
        )
        .await
        .expect("purchases");
    Stored {
        readings: readings.get(0),
        readings_energy_wh: readings.get(1),
        readings_digest: readings.get(2),
        purchases: purchases.get(0),
        purchases_digest: purchases.get(1),
        refused_purchases: purchases.get(2),
    }
}

/// The end of the last window the detector must have evaluated once everything is stored.
fn settled_target(sim: &SimConfig) -> DateTime<Utc> {
    let config = Config::default();
    sim.start + chrono::Duration::days(i64::from(sim.days))
        - chrono::Duration::seconds(config.detector.allowed_lateness_secs)
        - chrono::Duration::minutes(15)
}

/// Waits until the disturbed run has stored what the undisturbed one did: anything still short
/// of it at `deadline` was lost.
async fn wait_until_stored(client: &Client, expected: &Stored, deadline: Instant) {
    loop {
        let now = stored(client).await;
        if now == *expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not everything published was stored in time:\n stored   {now:?}\n expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the detector has evaluated every region up to `target` with nothing left queued,
/// twice in a row.
async fn wait_until_detected(client: &Client, target: DateTime<Utc>, deadline: Instant) {
    let mut settled = 0;
    loop {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM regions),
                        (SELECT count(*) FROM detector_progress WHERE analysed_until >= $1),
                        (SELECT min(analysed_until) FROM detector_progress),
                        (SELECT count(*) FROM reading_touches)",
                &[&target],
            )
            .await
            .expect("progress");
        let (regions, done, pending): (i64, i64, i64) = (row.get(0), row.get(1), row.get(3));
        let least: Option<DateTime<Utc>> = row.get(2);
        settled = if done == regions && pending == 0 {
            settled + 1
        } else {
            0
        };
        if settled >= 2 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {regions} regions evaluated to {target} in time (the least to {least:?}; \
             {pending} touches pending)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The undisturbed run: ingest with the API, then a detector started once everything is stored
/// (see [`Layout::detect_after_ingest`]), all in this process.
async fn undisturbed(sim: SimConfig, limit: Duration) -> (TestDb, Stored) {
    let layout = Layout {
        instances: vec![
            Instance::new(&[Service::Ingest, Service::Api]),
            Instance::new(&[Service::Detect]),
        ],
        detect_after_ingest: true,
    };
    let spread = run_with(sim, limit, layout).await;
    let db = spread.outcome.db;
    let client = db.client().await;
    let stored = stored(&client).await;
    drop(client);
    (db, stored)
}

/// How the disturbed run went.
struct Disturbed {
    db: TestDb,
    /// The run's own server; dropped after its database.
    _server: PgServer,
    published: FeedStats,
    injected: BTreeMap<Fault, u32>,
    terminated_connections: i64,
    /// How far the detector had evaluated when publishing ended.
    live_until: Option<DateTime<Utc>>,
    /// Processes started per service, restarts included.
    starts: Vec<(&'static str, u32)>,
    took: Duration,
}

/// Publishes `sim` to the services running as processes while [`schedule`] hits them; returns
/// once publishing is over and every fault has been injected (the services still run).
async fn publish_under_faults(
    sim: SimConfig,
    (broker, server): (&mut Broker, &PgServer),
    services: &mut Services,
    db: &TestDb,
    client: &mut Client,
    deadline: Instant,
) -> (FeedStats, BTreeMap<Fault, u32>, i64) {
    let mut simulation = Simulation::new(sim).expect("a valid simulation");
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FAULT_SEED);
    eprintln!("chaos: fault seed {seed}");
    let plan = schedule(seed, simulation.intervals());
    let root = Config::default().mqtt.topic_root;
    let password = format!("{SIMULATOR_USER}{PASSWORD_SUFFIX}");
    // From here on the broker keeps everything published for ingest's and the purchases
    // consumer's persistent sessions, whichever process holds them.
    wait_until_consuming(&*client, broker.port, SIMULATOR_USER, &password, &root)
        .await
        .expect("ingest and the purchases consumer subscribe");
    let options = FeedOptions {
        mqtt_url: broker.url_for(SIMULATOR_USER),
        topic_root: root,
        publishers: 2,
        speed: Some(REPLAY_SPEED),
        backlog: None,
        upload: gridwatch::simulate::Upload::Live,
    };
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);
    let feeding = tokio::spawn(async move {
        feed(&mut simulation, &options, |done, _| {
            let _ = progress_tx.send(done);
        })
        .await
    });
    let mut injected: BTreeMap<Fault, u32> = BTreeMap::new();
    let mut terminated = 0;
    for planned in plan {
        if progress
            .wait_for(|done| *done >= planned.after_intervals)
            .await
            .is_err()
        {
            break;
        }
        eprintln!(
            "chaos: after interval {}: {:?}{}",
            planned.after_intervals,
            planned.fault,
            match planned.fault {
                Fault::KillIngest
                | Fault::KillDetector
                | Fault::KillApi
                | Fault::RestartPostgres => format!(", down {:?}", planned.down),
                _ => String::new(),
            }
        );
        // The restarts block (a process to wait for, a port to poll): off the async workers.
        tokio::task::block_in_place(|| match planned.fault {
            Fault::KillIngest => services.ingest.kill_and_restart(planned.down),
            Fault::KillDetector => services.detector.kill_and_restart(planned.down),
            Fault::KillApi => services.api.kill_and_restart(planned.down),
            Fault::RestartBroker => broker.restart(),
            Fault::RestartPostgres => server.crash_and_restart(planned.down),
            Fault::TerminateConnections => {}
        });
        match planned.fault {
            Fault::TerminateConnections => terminated += terminate_connections(client).await,
            // The test's own connection went down with the server.
            Fault::RestartPostgres => *client = db.client().await,
            _ => {}
        }
        *injected.entry(planned.fault).or_default() += 1;
    }
    let published =
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), feeding)
            .await
            .expect("the broker acknowledged every publish")
            .expect("the feed task joins")
            .expect("the simulation is published");
    (published, injected, terminated)
}

/// The disturbed run: the services as processes, faults while publishing, then the wait until
/// it has stored what `expected` holds and its detector has caught up.
async fn disturbed(sim: SimConfig, expected: &Stored, deadline: Instant) -> Disturbed {
    let started = Instant::now();
    let target = settled_target(&sim);
    let server = PgServer::start(&pgserver::bin_dir().await).await;
    let db = TestDb::migrated_on(&server.url()).await;
    let mut broker = Broker::start();
    let mut client = db.client().await;
    let registry = Simulation::new(sim.clone())
        .expect("a valid simulation")
        .registry()
        .clone();
    gridwatch::registry::store::import_document(&mut client, &registry, "test")
        .await
        .expect("the simulated registry is accepted");
    let mut services = Services::start(&db, &broker);
    let (published, injected, terminated_connections) = publish_under_faults(
        sim,
        (&mut broker, &server),
        &mut services,
        &db,
        &mut client,
        deadline,
    )
    .await;
    for service in services.all() {
        assert!(
            service.running(),
            "gridwatch {} kept running between faults",
            service.subcommand
        );
    }
    let live_until: Option<DateTime<Utc>> = client
        .query_one("SELECT min(analysed_until) FROM detector_progress", &[])
        .await
        .expect("progress")
        .get(0);
    wait_until_stored(&client, expected, deadline).await;
    // Everything is stored: the detector judges the last windows with the usual lateness, as
    // the undisturbed run's did. A planned restart, so a clean one.
    let lateness = Config::default().detector.allowed_lateness_secs;
    services
        .detector
        .restart_with(LATENESS_VAR, lateness.to_string());
    wait_until_detected(&client, target, deadline).await;
    for service in services.all() {
        let status = service.terminate();
        assert!(
            status.success(),
            "gridwatch {} stops cleanly on SIGTERM: {status}",
            service.subcommand
        );
    }
    let starts = services
        .all()
        .map(|s| (s.subcommand, s.starts))
        .into_iter()
        .collect();
    drop(services);
    drop(client);
    Disturbed {
        db,
        _server: server,
        published,
        injected,
        terminated_connections,
        live_until,
        starts,
        took: started.elapsed(),
    }
}

/// `gridwatch audit verify` against `db`: its exit status and what it printed.
fn audit_verify(db: &TestDb) -> (ExitStatus, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gridwatch"))
        .args(["audit", "verify"])
        .env("GRIDWATCH_DATABASE_URL", &db.url)
        .env("GRIDWATCH_LOG", "warn")
        .output()
        .expect("gridwatch audit verify runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_disconnected_services_store_every_reading_once_and_find_the_same_thefts() {
    let started = Instant::now();
    let deadline = started + BUDGET;
    let (reference_db, expected) = undisturbed(grid(), BUDGET).await;
    let reference_took = started.elapsed();
    eprintln!("chaos: the undisturbed run took {reference_took:.1?}");
    let chaos = disturbed(grid(), &expected, deadline).await;

    // Every reading and purchase stored exactly once: the disturbed run waited for the very
    // same rows, and a duplicate would show in the counts.
    let chaos_client = chaos.db.client().await;
    let reference_client = reference_db.client().await;
    let stored_chaos = stored(&chaos_client).await;
    assert_eq!(stored_chaos, expected);

    let expected_cases = cases(&reference_client).await;
    let found_cases = cases(&chaos_client).await;
    assert!(
        has_case(&expected_cases, "diversion", Some("EK-F-001"), None)
            && has_case(&expected_cases, "quota_overrun", None, Some("KZ-MIN-001")),
        "the injected thefts are found undisturbed, or the comparison proves little: {expected_cases:#?}"
    );
    let twice: Vec<_> = found_cases.iter().filter(|(_, e)| e.len() > 1).collect();
    assert!(twice.is_empty(), "cases raised twice: {twice:#?}");
    let missing: Vec<_> = expected_cases
        .keys()
        .filter(|k| !found_cases.contains_key(*k))
        .collect();
    let extra: Vec<_> = found_cases
        .keys()
        .filter(|k| !expected_cases.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "cases of the undisturbed run only:{}\ncases of the disturbed run only:{}\ncases of both:{}",
        case_lines(missing.iter().copied()),
        case_lines(extra.iter().copied()),
        case_lines(expected_cases.keys().filter(|k| found_cases.contains_key(*k)))
    );
    for (key, energy) in &expected_cases {
        assert_eq!(
            energy, &found_cases[key],
            "{key:?}: energy undisturbed vs disturbed"
        );
    }

    let (status, report) = audit_verify(&chaos.db);
    assert!(
        status.success(),
        "gridwatch audit verify: {status}\n{report}"
    );

    eprintln!(
        "chaos: undisturbed run {reference_took:.1?}, disturbed run {:.1?}, test {:.1?}",
        chaos.took,
        started.elapsed()
    );
    eprintln!(
        "chaos: faults injected: {:?}; {} database connections terminated; processes started: {:?}",
        chaos.injected, chaos.terminated_connections, chaos.starts
    );
    eprintln!(
        "chaos: the detector had evaluated to {:?} when publishing ended",
        chaos.live_until
    );
    eprintln!(
        "chaos: published {} messages, {} readings (duplicates included), {} purchases; \
         stored {} readings ({} Wh), {} purchases, {} refused, as undisturbed",
        chaos.published.messages,
        chaos.published.readings,
        chaos.published.purchases,
        stored_chaos.readings,
        stored_chaos.readings_energy_wh,
        stored_chaos.purchases,
        stored_chaos.refused_purchases
    );
    let withdrawn = "SELECT count(*) FROM anomalies WHERE evidence ? 'withdrawn'";
    eprintln!(
        "chaos: anomalies expected {}, found {} (withdrawn, left out: {} and {}): {:?}",
        expected_cases.len(),
        found_cases.len(),
        reference_db.count(withdrawn).await,
        chaos.db.count(withdrawn).await,
        expected_cases
            .keys()
            .map(|k| format!(
                "{} {}",
                k.0,
                k.2.as_deref().or(k.4.as_deref()).unwrap_or("-")
            ))
            .collect::<Vec<_>>()
    );
    eprint!("chaos: audit verify:\n{report}");
}
