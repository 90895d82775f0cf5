//! A PostgreSQL server of the test's own (initdb, pg_ctl), standing for the new server a backup
//! is restored onto after the old one is lost: it has none of the old server's roles.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::commands::succeed;
use crate::support::TempDir;

/// A running server on 127.0.0.1, stopped and deleted when dropped.
pub(crate) struct Server {
    /// Its TCP port.
    pub port: u16,
    /// PostgreSQL's programs (pg_ctl, to stop it).
    bin: PathBuf,
    data: PathBuf,
    // Dropped after the server is stopped (Drop::drop runs before the fields drop).
    _dir: TempDir,
}

/// As root (tests in a container), PostgreSQL's server programs run as the `postgres` user:
/// initdb and postgres refuse to run as root.
fn as_server_user(bin: &Path, program: &str) -> std::process::Command {
    if is_root() {
        let mut command = std::process::Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        std::process::Command::new(bin.join(program))
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Server {
    /// Initialises and starts a server with superuser `postgres` and trust authentication on
    /// 127.0.0.1 (it listens nowhere else).
    pub(crate) async fn start(bin: &Path) -> Server {
        let dir = TempDir::new("gw-pg");
        if is_root() {
            let mut chown = Command::new("chown");
            chown.arg("postgres").arg(dir.path());
            succeed(chown).await;
        }
        let data = dir.path().join("data");
        let mut initdb = as_server_user(bin, "initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        succeed(initdb.into()).await;
        let port = gridwatch::localbroker::free_port().expect("a free port");
        let mut start = as_server_user(bin, "pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.path().display()
            ))
            .args(["-w", "-t", "60", "start"]);
        let out = crate::commands::output(start.into()).await;
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
        );
        Server {
            port,
            bin: bin.to_owned(),
            data,
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let mut stop = as_server_user(&self.bin, "pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let _ = stop.status();
    }
}
