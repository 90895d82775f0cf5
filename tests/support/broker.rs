//! A Mosquitto per test, started from the shipped configuration (deploy/mosquitto) with the
//! test's own port, directory, password file and ACL (see gridwatch::localbroker).

use gridwatch::localbroker::LocalBroker;

use super::TempDir;

pub const INGEST_USER: &str = "gridwatch-ingest";
pub const SIMULATOR_USER: &str = "gridwatch-simulator";
pub const MARKET_USER: &str = "gridwatch-market";
pub const PASSWORD_SUFFIX: &str = "-test-pw";

pub struct Broker {
    pub port: u16,
    inner: LocalBroker,
    // Dropped after the broker (fields drop in order).
    _dir: TempDir,
}

impl Broker {
    /// Starts a broker; every user (the three services' and `extra_users`) gets the password
    /// `<name>-test-pw`.
    pub fn start_with_users(extra_users: &[&str]) -> Broker {
        let dir = TempDir::new("gw-broker");
        let passwords: Vec<(String, String)> = [INGEST_USER, SIMULATOR_USER, MARKET_USER]
            .iter()
            .chain(extra_users)
            .map(|u| (u.to_string(), format!("{u}{PASSWORD_SUFFIX}")))
            .collect();
        let users: Vec<(&str, &str)> = passwords
            .iter()
            .map(|(u, p)| (u.as_str(), p.as_str()))
            .collect();
        let inner = LocalBroker::start(
            &super::workspace_root().join("deploy/mosquitto"),
            dir.path(),
            0,
            &users,
        )
        .expect("mosquitto starts (the test command installs it)");
        Broker {
            port: inner.port,
            inner,
            _dir: dir,
        }
    }

    pub fn start() -> Broker {
        Broker::start_with_users(&[])
    }

    /// `mqtt://user:password@127.0.0.1:port`.
    pub fn url_for(&self, user: &str) -> String {
        self.inner.url(user, &format!("{user}{PASSWORD_SUFFIX}"))
    }

    pub fn ingest_url(&self) -> String {
        self.url_for(INGEST_USER)
    }

    /// Stops the broker cleanly (SIGTERM: it saves its persistence file) and starts it again on
    /// the same port.
    pub fn restart(&mut self) {
        self.inner.restart().expect("mosquitto restarts");
    }

    pub fn stop(&mut self) {
        self.inner.stop();
    }

    pub fn log(&self) -> String {
        self.inner.log()
    }
}
