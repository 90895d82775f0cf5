//! The README's first command, shortened: `gridwatch demo` end to end as a process (its own
//! broker from deploy/mosquitto, its own database, ingest, detector and API), and its report.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{db::server_url, unique_name, workspace_root};

#[test]
fn the_demo_report_names_the_insiders_substation_and_the_rigged_feeders() {
    let database = unique_name("demo");
    let work_dir = std::env::temp_dir().join(&database);
    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_gridwatch"))
        .current_dir(workspace_root())
        .args(["demo", "--exit", "--households", "300", "--days", "6"])
        .args(["--database", &database, "--timeout-secs", "300"])
        .arg("--work-dir")
        .arg(&work_dir)
        .env(
            "GRIDWATCH_DATABASE_URL",
            format!("{}/postgres", server_url()),
        )
        .env("GRIDWATCH_HTTP_ADDR", "127.0.0.1:0")
        .env("GRIDWATCH_METRICS_ADDR", "127.0.0.1:0")
        .env("GRIDWATCH_LOG", "warn")
        .output()
        .expect("the demo runs");
    let report = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    // Leave nothing behind, whatever the outcome.
    let _ = std::fs::remove_dir_all(&work_dir);
    let _ = Command::new("psql")
        .arg(format!("{}/postgres", server_url()))
        .args([
            "-qc",
            &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
        ])
        .output();
    assert!(
        output.status.success(),
        "the demo failed:\n{report}\n{errors}"
    );
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
