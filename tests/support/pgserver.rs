//! A PostgreSQL server of the test's own (initdb, pg_ctl) on 127.0.0.1: for what cannot be done
//! to the server the suite shares (restarting it, restoring a backup onto a server that has
//! none of the old one's roles).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::TempDir;

/// Where PostgreSQL's programs of the shared server's major version live: `GRIDWATCH_TEST_PG_BIN`,
/// else the Debian or RHEL layout, else `pg_config --bindir`. pg_dump refuses a server newer
/// than itself, and a dump is best restored by the same version's pg_restore.
pub async fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRIDWATCH_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let url = format!("{}/postgres", super::db::server_url());
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is reachable");
    tokio::spawn(connection);
    let version: String = admin
        .query_one("SHOW server_version_num", &[])
        .await
        .expect("server version")
        .get(0);
    let major = version.parse::<u32>().expect("numeric version") / 10_000;
    let candidates = [
        PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
        PathBuf::from(format!("/usr/pgsql-{major}/bin")),
    ];
    if let Some(dir) = candidates.iter().find(|d| d.join("pg_dump").exists()) {
        return dir.clone();
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .unwrap_or_else(|e| {
            panic!("PostgreSQL {major}'s programs not found (set GRIDWATCH_TEST_PG_BIN): {e}")
        });
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A running server, stopped and deleted when dropped.
pub struct PgServer {
    /// Its TCP port.
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    // Dropped after the server is stopped (Drop::drop runs before the fields drop).
    dir: TempDir,
}

/// As root (tests in a container), PostgreSQL's server programs run as the `postgres` user:
/// initdb and postgres refuse to run as root.
fn as_server_user(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn succeed(mut command: Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} could not run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgServer {
    /// Initialises and starts a server with superuser `postgres` and trust authentication on
    /// 127.0.0.1 (it listens nowhere else).
    pub async fn start(bin: &Path) -> PgServer {
        let bin = bin.to_owned();
        tokio::task::block_in_place(move || {
            let dir = TempDir::new("gw-pg");
            if is_root() {
                let mut chown = Command::new("chown");
                chown.arg("postgres").arg(dir.path());
                succeed(chown, "chown");
            }
            let data = dir.path().join("data");
            let mut initdb = as_server_user(&bin, "initdb");
            initdb.arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]);
            succeed(initdb, "initdb");
            let port = gridwatch::localbroker::free_port().expect("a free port");
            let server = PgServer {
                port,
                bin,
                data,
                dir,
            };
            server.run();
            server
        })
    }

    /// `postgres://postgres@127.0.0.1:PORT`, without a database name.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn run(&self) {
        let mut start = as_server_user(&self.bin, "pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.dir.path().display()
            ))
            .args(["-w", "-t", "60", "start"]);
        let out = start.output().expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    fn stop_immediately(&self) {
        let mut stop = as_server_user(&self.bin, "pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let _ = stop.status();
    }

    /// Stops the server as a crash would (`-m immediate`: no checkpoint, every connection cut),
    /// keeps it down for `down`, and starts it again on the same port (crash recovery replays
    /// its WAL). Blocks.
    pub fn crash_and_restart(&self, down: Duration) {
        self.stop_immediately();
        std::thread::sleep(down);
        self.run();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop_immediately();
    }
}
