//! A Mosquitto of our own, started from the shipped configuration (deploy/mosquitto) with a
//! chosen port, directory, users and the simulator's ACL: what the demo, the benchmarks and the
//! tests run against, so that they exercise the production queue and in-flight settings.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A running Mosquitto child process.
pub struct LocalBroker {
    /// The TCP port it listens on (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A free TCP port on 127.0.0.1 (racy by nature, good enough for local tools and tests).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalBroker {
    /// Writes a configuration derived from `deploy_dir/mosquitto.conf` into `dir` (created if
    /// needed), with a password file for `users` (name, password) and the shipped ACL plus the
    /// simulator's, then starts Mosquitto on `port` (0: a free one) and waits until it listens.
    pub fn start(
        deploy_dir: &Path,
        dir: &Path,
        port: u16,
        users: &[(&str, &str)],
    ) -> anyhow::Result<LocalBroker> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create the broker directory {dir:?}"))?;
        // Started as root, Mosquitto drops to the `mosquitto` user, which must be able to write
        // its persistence file here.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
        }
        let port = if port == 0 { free_port()? } else { port };
        let shipped = std::fs::read_to_string(deploy_dir.join("mosquitto.conf"))
            .with_context(|| format!("Failed to read {:?}", deploy_dir.join("mosquitto.conf")))?;
        let mut conf = String::new();
        for line in shipped.lines() {
            let key = line.split_whitespace().next().unwrap_or("");
            let replaced = match key {
                "listener" => format!("listener {port} 127.0.0.1"),
                "password_file" => format!("password_file {}", dir.join("passwd").display()),
                "acl_file" => format!("acl_file {}", dir.join("acl").display()),
                "persistence_location" => format!("persistence_location {}/", dir.display()),
                "log_dest" => format!("log_dest file {}", dir.join("broker.log").display()),
                _ => line.to_owned(),
            };
            conf.push_str(&replaced);
            conf.push('\n');
        }
        std::fs::write(dir.join("mosquitto.conf"), conf)?;
        let acl = std::fs::read_to_string(deploy_dir.join("gridwatch.acl"))?
            + "\n"
            + &std::fs::read_to_string(deploy_dir.join("simulator.acl"))?;
        std::fs::write(dir.join("acl"), acl)?;
        let passwd = dir.join("passwd");
        std::fs::write(&passwd, "")?;
        for (user, password) in users {
            let status = Command::new("mosquitto_passwd")
                .arg("-b")
                .arg(&passwd)
                .arg(user)
                .arg(password)
                .stdout(Stdio::null())
                .status()
                .context("Failed to run mosquitto_passwd (is mosquitto installed?)")?;
            if !status.success() {
                bail!("mosquitto_passwd failed for user {user}");
            }
        }
        let mut broker = LocalBroker {
            port,
            dir: dir.to_owned(),
            child: None,
        };
        broker.spawn()?;
        Ok(broker)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("Failed to start mosquitto (is it installed?)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("mosquitto did not start listening: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `mqtt://user:password@127.0.0.1:port`.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("mqtt://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// Stops the broker cleanly (it saves its persistence file) and starts it again.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    /// Stops the broker with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    /// Its working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
