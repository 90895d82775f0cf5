//! The README's first command, shortened: `gridwatch demo` end to end as a process (its own
//! broker from deploy/mosquitto, its own database, ingest, detector and API), and its report.

mod support;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_report_names_the_insiders_substation_and_the_rigged_feeders() {
    let started = std::time::Instant::now();
    // The demo's own detector deadline is 300 s; its database and work directory go with it.
    let demo = support::demo::run(300, 6, Duration::from_secs(330)).await;
    let report = demo.report;
    assert!(
        started.elapsed() < Duration::from_secs(400),
        "bounded by its own timeout"
    );
    let diversion = report
        .lines()
        .skip_while(|l| !(l.contains("CRITICAL") && l.contains("diversion")))
        .take(12)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        diversion.contains("node EK-SUB-01"),
        "the diversion is raised at the substation above the rigged feeders:\n{report}"
    );
    for feeder in ["EK-F-001-IN", "EK-F-002-IN", "EK-F-003-IN", "EK-F-004-IN"] {
        assert!(
            diversion.contains(feeder),
            "the rigged input meter {feeder} is named:\n{report}"
        );
    }
    assert!(report.contains("unlicensed_mining"), "{report}");
    assert!(report.contains("quota_overrun"), "{report}");
    assert!(
        report.contains("two years"),
        "the two-year projection is printed:\n{report}"
    );
    assert!(report.contains("/api/v1/anomalies"), "{report}");
}
