//! Running ingest in a test: in-process (fast, observable) or as the real binary (killable).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use gridwatch::config::{Config, Secret};
use gridwatch::metrics::Metrics;
use gridwatch::shutdown::{self, ShutdownTrigger};

use super::{Broker, TestDb};

/// The configuration a test's ingest uses.
pub fn config(db: &TestDb, broker: &Broker, client_id: &str) -> Config {
    let mut config = Config {
        database_url: db.secret(),
        ..Config::default()
    };
    config.mqtt.url = Secret::new(broker.ingest_url());
    config.mqtt.client_id = client_id.to_owned();
    config.mqtt.reconnect_min_ms = 50;
    config.mqtt.reconnect_max_ms = 500;
    config
}

/// Ingest running in this process.
pub struct InProcess {
    pub metrics: Arc<Metrics>,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    /// Starts ingest and waits until its subscriptions are granted (from then on, the broker
    /// keeps every reading for its session).
    pub async fn start(config: Config) -> InProcess {
        let metrics = Arc::new(Metrics::new());
        let (trigger, stop) = shutdown::channel();
        let m = metrics.clone();
        let task = tokio::spawn(async move { gridwatch::ingest::run(&config, m, stop).await });
        let subscribed = metrics.clone();
        super::eventually(
            std::time::Duration::from_secs(30),
            "ingest subscribed",
            || {
                let done = subscribed.ingest.mqtt_subscribed.get() == 1;
                async move { done.then_some(()) }
            },
        )
        .await;
        InProcess {
            metrics,
            trigger,
            task,
        }
    }

    /// Creates the persistent session of `client_id` (subscribed, then disconnected), so that
    /// the broker keeps readings for processes started later with that id.
    pub async fn create_session(config: Config) {
        InProcess::start(config).await.stop().await;
    }

    /// Stops it the way SIGTERM does, and waits.
    pub async fn stop(self) {
        self.trigger.trigger();
        self.task
            .await
            .expect("ingest task joins")
            .expect("ingest stops without error");
    }
}

/// Ingest as a real `gridwatch ingest` process.
pub struct Process {
    child: Child,
}

impl Process {
    pub fn start(
        db: &TestDb,
        broker: &Broker,
        client_id: &str,
        extra_env: &[(&str, &str)],
    ) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gridwatch"));
        command
            .arg("ingest")
            .env("GRIDWATCH_DATABASE_URL", &db.url)
            .env("GRIDWATCH_MQTT_URL", broker.ingest_url())
            .env("GRIDWATCH_MQTT_CLIENT_ID", client_id)
            .env("GRIDWATCH_METRICS_ADDR", "127.0.0.1:0")
            .env("GRIDWATCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        Process {
            child: command.spawn().expect("gridwatch ingest starts"),
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("ingest exits")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
