//! Scaling out on one machine: the same simulated two-region grid, run once through one ingest
//! and one detector and once through two ingest instances on a shared subscription and two
//! detectors each owning one region, gives the same readings and the same anomalies. This is
//! what docs/SCALING.md relies on when it spreads ingest over replicas and the detector over
//! regions.
//!
//! Both layouts start their detectors once ingest has stored everything (see
//! [`Layout::detect_after_ingest`]): at replay speed, even two runs of one layout can place a
//! case's start a window apart, which would hide what the layout itself changes.

mod support;

use std::time::{Duration, Instant};

use gridwatch::config::Config;
use gridwatch::metrics::Metrics;
use gridwatch::services::Service;
use gridwatch_core::ids::RegionId;
use gridwatch_sim::config::RegionConfig;
use gridwatch_sim::SimConfig;
use prometheus::core::Collector;
use support::cases::{cases, has_case};
use support::layout::{run_with, Instance, Layout};
use support::scenario::Outcome;
use support::unique_name;

const LIMIT: Duration = Duration::from_secs(600);

const EAST: &str = "east-kz";
const PAVLODAR: &str = "pavlodar";

/// Five winter days of two small regions, a theft in each: the East Kazakhstan diversion below
/// the first region's first substation for a day, and in the second region a small diversion on
/// one feeder and its farm consuming more than it bought.
fn two_regions() -> SimConfig {
    let mut config = SimConfig {
        seed: 31,
        days: 5,
        ..SimConfig::default()
    };
    config.regions = vec![
        RegionConfig {
            households: 250,
            commercial: 20,
            industrial: 2,
            mining_farms: 2,
            ..RegionConfig::default()
        },
        RegionConfig {
            id: RegionId::parse(PAVLODAR).expect("a region id"),
            name: "Pavlodar".into(),
            id_prefix: "PV".into(),
            substations: 1,
            feeders_per_substation: 3,
            households: 150,
            commercial: 12,
            industrial: 1,
            mining_farms: 1,
            ..RegionConfig::default()
        },
    ];
    for scenario in [
        serde_json::json!({"name": "east-kazakhstan", "onset_hours": 48, "duration_hours": 24}),
        serde_json::json!({"name": "small-diversion", "feeder": "PV-F-002", "share": 0.05, "onset_hours": 60}),
        // The farms are numbered across regions: the first region's two, then Pavlodar's.
        serde_json::json!({"name": "quota-overrun", "licence": "KZ-MIN-003", "excess": 0.05, "onset_hours": 48}),
    ] {
        config
            .scenarios
            .push(serde_json::from_value(scenario).expect("a valid scenario"));
    }
    config
}

/// One ingest (with the API and its purchases consumer) and one detector over every region.
fn one_of_each() -> Layout {
    Layout {
        instances: vec![
            Instance::new(&[Service::Ingest, Service::Api]),
            Instance::new(&[Service::Detect]),
        ],
        detect_after_ingest: true,
    }
}

/// Two ingest instances sharing the subscription (the API rides along with the first), and a
/// detector per region: four processes of a deployment.
fn sharded() -> Layout {
    let ingest = |name: &'static str| {
        move |config: &mut Config| {
            config.mqtt.client_id = unique_name(name);
            config.mqtt.share_group = Some("ingest".into());
        }
    };
    let detector = |region: &'static str| {
        move |config: &mut Config| config.detector.regions = vec![region.to_owned()]
    };
    Layout {
        instances: vec![
            Instance::new(&[Service::Ingest, Service::Api]).configured(ingest("ingest-a")),
            Instance::new(&[Service::Ingest]).configured(ingest("ingest-b")),
            Instance::new(&[Service::Detect]).configured(detector(EAST)),
            Instance::new(&[Service::Detect]).configured(detector(PAVLODAR)),
        ],
        detect_after_ingest: true,
    }
}

/// How many readings were stored, and the sum of their registers.
async fn stored(outcome: &Outcome) -> (i64, i64) {
    let row = outcome
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*), coalesce(sum(energy_wh), 0)::bigint FROM readings",
            &[],
        )
        .await
        .expect("readings");
    (row.get(0), row.get(1))
}

/// The sum of `gridwatch_anomalies_open` over its label values, as `sum()` in PromQL.
fn open_gauge_sum(metrics: &Metrics) -> i64 {
    metrics
        .detector
        .anomalies_open
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_gauge().get_value() as i64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_ingest_and_detectors_find_what_one_instance_of_each_finds() {
    let started = Instant::now();
    let together = run_with(two_regions(), LIMIT, one_of_each()).await;
    let together_took = started.elapsed();
    let spread = run_with(two_regions(), LIMIT, sharded()).await;
    let (together_metrics, spread_metrics) = (together.metrics, spread.metrics);
    let (together, spread) = (together.outcome, spread.outcome);
    eprintln!(
        "one of each: {together_took:?}; sharded: {:?}",
        started.elapsed() - together_took
    );

    // Both ingest instances took a share of the readings (writers are named `<client id>/<n>`).
    let by_instance = spread
        .db
        .client()
        .await
        .query(
            "SELECT split_part(writer, '_', 1), sum(readings_stored)::bigint
             FROM ingest_counters GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("ingest counters");
    let shares: Vec<(String, i64)> = by_instance.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        shares.len() == 2 && shares.iter().all(|(_, n)| *n > 0),
        "readings stored by instance: {shares:?}"
    );

    // The shared subscription stored every reading once, as the single instance did.
    assert_eq!(stored(&together).await, stored(&spread).await);

    let one = cases(&together.db.client().await).await;
    let two = cases(&spread.db.client().await).await;
    // The injected thefts are among the cases compared, in both regions.
    assert!(
        has_case(&one, "diversion", Some("EK-F-001"), None)
            && has_case(&one, "diversion", Some("PV-F-002"), None)
            && has_case(&one, "quota_overrun", None, Some("KZ-MIN-003")),
        "the injected thefts are found, or the comparison proves little: {one:#?}"
    );
    let only_one: Vec<_> = one.keys().filter(|k| !two.contains_key(*k)).collect();
    let only_two: Vec<_> = two.keys().filter(|k| !one.contains_key(*k)).collect();
    assert!(
        only_one.is_empty() && only_two.is_empty(),
        "cases of one instance only: {only_one:#?}\ncases of the sharded layout only: {only_two:#?}"
    );
    // Energies are compared exactly, no tolerance: a region's balances, cases and analyses are
    // computed by the same code over the same stored readings in the same window order whichever
    // process owns the region, so a shard changes where the arithmetic runs, not its result.
    for (key, energy) in &one {
        let other = &two[key];
        assert_eq!(energy, other, "{key:?}: {energy:?} Wh vs {other:?} Wh");
    }
    eprintln!("{} cases agree", one.len());

    // Prometheus sums the open-anomaly gauges over every detector: each open case is counted
    // once, however many shards export them.
    for (outcome, metrics) in [(&together, &together_metrics), (&spread, &spread_metrics)] {
        let open = outcome
            .db
            .count(
                "SELECT count(*) FROM anomalies
                 WHERE status IN ('open', 'investigating') AND ended_at IS NULL",
            )
            .await;
        let exported: i64 = metrics.iter().map(|m| open_gauge_sum(m)).sum();
        assert_eq!(exported, open, "open anomalies exported by the detectors");
    }
}
