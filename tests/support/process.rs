//! A `gridwatch` service as a real process, for tests that kill it (SIGKILL), stop it (SIGTERM)
//! and start it again; [`ingest::Process`](super::ingest::Process) is the ingest-only kind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A `gridwatch` service as a real process, killed when dropped.
pub struct ServiceProcess {
    /// `ingest`, `detect`, `api`...
    pub subcommand: &'static str,
    /// Its environment, kept for the restarts.
    env: Vec<(&'static str, String)>,
    /// Where its standard error goes, appended across restarts.
    log: PathBuf,
    child: Child,
    /// How many processes were started, restarts included.
    pub starts: u32,
}

impl ServiceProcess {
    /// Starts `gridwatch <subcommand>` with `env`; its standard error is appended to `log`.
    pub fn start(subcommand: &'static str, env: Vec<(&'static str, String)>, log: &Path) -> Self {
        let child = spawn(subcommand, &env, log);
        ServiceProcess {
            subcommand,
            env,
            log: log.to_owned(),
            child,
            starts: 1,
        }
    }

    /// SIGKILL, then a new process after `down`.
    pub fn kill_and_restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = spawn(self.subcommand, &self.env, &self.log);
        self.starts += 1;
    }

    /// SIGTERM (a clean exit is asserted), then a new process with `key` set to `value`.
    pub fn restart_with(&mut self, key: &'static str, value: String) {
        let status = self.terminate();
        assert!(
            status.success(),
            "gridwatch {} stops cleanly on SIGTERM: {status}",
            self.subcommand
        );
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value));
        self.child = spawn(self.subcommand, &self.env, &self.log);
        self.starts += 1;
    }

    /// Whether the process is still running (a service that exits on its own failed).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("the service exits")
    }
}

fn spawn(subcommand: &str, env: &[(&'static str, String)], log: &Path) -> Child {
    let stderr = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("the service log can be written");
    Command::new(env!("CARGO_BIN_EXE_gridwatch"))
        .arg(subcommand)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("gridwatch {subcommand} starts: {e}"))
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
