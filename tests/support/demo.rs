//! `gridwatch demo --exit` as a process, shortened, against a database of the test's own: the
//! demo's whole path (its own broker from deploy/mosquitto, ingest, the detector) leaves the
//! anomalies it finds in that database for the test to look at.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::db::server_url;
use super::{unique_name, workspace_root, TempDir, TestDb};

/// What a finished demo left: its database (dropped with it) and its report.
pub struct DemoRun {
    /// The demo's database, holding its registry, readings and anomalies.
    pub db: TestDb,
    /// What the demo printed.
    pub report: String,
}

/// Runs `gridwatch demo --exit` over `households` households and `days` days in a database of
/// its own, and panics if it fails or takes longer than `timeout`. The demo runs in a process
/// group of its own, so that on a timeout the demo and the broker it started are killed
/// together; its work directory is removed whatever the outcome.
pub async fn run(households: u32, days: u32, timeout: Duration) -> DemoRun {
    let db = TestDb::named(unique_name("demo"));
    let work_dir = TempDir::new("demo-work");
    // The demo's own deadline for the detector comes first, so that a slow run ends with its
    // report rather than a kill.
    let detector_secs = timeout.as_secs().saturating_sub(30).max(30);
    let child = Command::new(env!("CARGO_BIN_EXE_gridwatch"))
        .current_dir(workspace_root())
        .args(["demo", "--exit"])
        .args(["--households", &households.to_string()])
        .args(["--days", &days.to_string()])
        .args(["--database", &db.name])
        .args(["--timeout-secs", &detector_secs.to_string()])
        .arg("--work-dir")
        .arg(work_dir.path())
        .env(
            "GRIDWATCH_DATABASE_URL",
            format!("{}/postgres", server_url()),
        )
        .env("GRIDWATCH_HTTP_ADDR", "127.0.0.1:0")
        .env("GRIDWATCH_METRICS_ADDR", "127.0.0.1:0")
        .env("GRIDWATCH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("the demo starts");
    let group = child.id().expect("the demo has a process id");
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.expect("the demo's output can be read"),
        Err(_) => {
            kill_group(group);
            panic!("the demo took longer than {timeout:?}");
        }
    };
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the demo failed ({}):\n{report}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    DemoRun { db, report }
}

/// SIGKILL to every process of the group `group` (the demo and its broker).
fn kill_group(group: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .status();
}
