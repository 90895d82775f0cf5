//! Running programs as an operator would: `gridwatch` itself and PostgreSQL's tools, each bounded
//! in time and killed if it overruns.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

/// Longest any one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `command` to completion (killed after two minutes) and returns its output.
pub(crate) async fn output(mut command: Command) -> Output {
    let what = format!("{:?}", command.as_std());
    command.kill_on_drop(true);
    tokio::time::timeout(COMMAND_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {COMMAND_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{what} could not start: {e}"))
}

/// Runs `command` and panics, with what it printed, unless it succeeds; returns its stdout.
pub(crate) async fn succeed(command: Command) -> String {
    let what = format!("{:?}", command.as_std());
    let out = output(command).await;
    assert_succeeded(&out, &what);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Panics, with what it printed, unless `what` exited successfully.
pub(crate) fn assert_succeeded(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `gridwatch <args>` against the database at `database_url`.
pub(crate) fn gridwatch(database_url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gridwatch"));
    command
        .args(args)
        .env("GRIDWATCH_DATABASE_URL", database_url)
        .env("GRIDWATCH_LOG", "warn");
    command
}

/// How many migrations `gridwatch migrate` said it applied.
pub(crate) fn applied_count(stdout: &str) -> usize {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Schema up to date ("))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("gridwatch migrate printed no count: {stdout:?}"))
}

/// A PostgreSQL program from `bin`.
pub(crate) fn pg(bin: &Path, program: &str) -> Command {
    Command::new(bin.join(program))
}
