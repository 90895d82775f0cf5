//! A Mosquitto per test, started from the shipped configuration (deploy/mosquitto) with the
//! test's own port, directory, password file and ACL.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::TempDir;

pub const INGEST_USER: &str = "gridwatch-ingest";
pub const SIMULATOR_USER: &str = "gridwatch-simulator";
pub const MARKET_USER: &str = "gridwatch-market";
pub const PASSWORD_SUFFIX: &str = "-test-pw";

pub struct Broker {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Broker {
    /// Starts a broker; `extra_users` get a password (`<name>-test-pw`) and only the shipped ACL.
    pub fn start_with_users(extra_users: &[&str]) -> Broker {
        let dir = TempDir::new("gw-broker");
        // Started as root, Mosquitto drops to the `mosquitto` user: that user must be able to
        // write its persistence file and log here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("broker dir permissions");
        let root = super::workspace_root().join("deploy/mosquitto");
        let port = free_port();
        let shipped =
            std::fs::read_to_string(root.join("mosquitto.conf")).expect("shipped mosquitto.conf");
        let mut conf = String::new();
        for line in shipped.lines() {
            let key = line.split_whitespace().next().unwrap_or("");
            let replaced = match key {
                "listener" => format!("listener {port} 127.0.0.1"),
                "password_file" => format!("password_file {}", dir.path().join("passwd").display()),
                "acl_file" => format!("acl_file {}", dir.path().join("acl").display()),
                "persistence_location" => format!("persistence_location {}/", dir.path().display()),
                "log_dest" => format!("log_dest file {}", dir.path().join("broker.log").display()),
                _ => line.to_owned(),
            };
            conf.push_str(&replaced);
            conf.push('\n');
        }
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write conf");
        let acl = std::fs::read_to_string(root.join("gridwatch.acl")).expect("shipped acl")
            + "\n"
            + &std::fs::read_to_string(root.join("simulator.acl")).expect("simulator acl");
        std::fs::write(dir.path().join("acl"), acl).expect("write acl");
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "").expect("create passwd");
        for user in [INGEST_USER, SIMULATOR_USER, MARKET_USER]
            .iter()
            .chain(extra_users)
        {
            let status = Command::new("mosquitto_passwd")
                .arg("-b")
                .arg(&passwd)
                .arg(user)
                .arg(format!("{user}{PASSWORD_SUFFIX}"))
                .status()
                .expect("mosquitto_passwd runs");
            assert!(status.success(), "mosquitto_passwd failed for {user}");
        }
        let mut broker = Broker {
            port,
            dir,
            child: None,
        };
        broker.spawn();
        broker
    }

    pub fn start() -> Broker {
        Broker::start_with_users(&[])
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts (see README: the test command installs it)");
        self.child = Some(child);
        // Wait until it accepts connections.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `mqtt://user:password@127.0.0.1:port`.
    pub fn url_for(&self, user: &str) -> String {
        format!(
            "mqtt://{user}:{user}{PASSWORD_SUFFIX}@127.0.0.1:{}",
            self.port
        )
    }

    pub fn ingest_url(&self) -> String {
        self.url_for(INGEST_USER)
    }

    /// Stops the broker cleanly (SIGTERM: it saves its persistence file) and starts it again on
    /// the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
