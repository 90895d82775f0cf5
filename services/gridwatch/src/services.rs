//! Running gridwatch's long-lived services in one process: ingest, the detector and the API
//! share one set of metrics and one shutdown signal. `gridwatch run`, `ingest`, `detect`, `api`
//! and the demo all start services through here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::{api, db, http, ingest};

/// A long-running service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// MQTT readings into PostgreSQL.
    Ingest,
    /// The detector: balances, tests, anomalies.
    Detect,
    /// The HTTP API and the MQTT purchases consumer.
    Api,
}

/// How long a starting service waits for an unreachable database (a server restarting, a
/// network blip while the whole stack comes up) before it gives up and exits with the error.
const DATABASE_PATIENCE: Duration = Duration::from_secs(60);

/// Prepares the database (creation, migrations), retrying with backoff for
/// [`DATABASE_PATIENCE`] while the failure is the connection's; any other failure (a wrong
/// password, a migration refused) is returned at once.
async fn prepare_patiently(config: &Config) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + DATABASE_PATIENCE;
    let mut backoff = Duration::from_millis(200);
    loop {
        let error = match db::prepare(&config.database_url, config.migrate_on_start).await {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        let connection_lost = error
            .chain()
            .filter_map(|e| e.downcast_ref::<tokio_postgres::Error>())
            .any(db::is_connection_error);
        if !connection_lost || tokio::time::Instant::now() + backoff > deadline {
            return Err(error.context("Failed to prepare the database"));
        }
        tracing::warn!(
            error = format!("{error:#}"),
            retry_in_ms = backoff.as_millis() as u64,
            "The database is unreachable at start; retrying."
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Services running in this process.
pub struct Running {
    /// Where HTTP is served (the API, or `/metrics` alone).
    pub http_addr: SocketAddr,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    trigger: Arc<ShutdownTrigger>,
    tasks: JoinSet<anyhow::Result<()>>,
}

/// Prepares the database (creation, migrations) and starts `services`. `/metrics` is served on
/// the API's address when the API runs, else on the metrics address.
pub async fn start(config: &Config, services: &[Service]) -> anyhow::Result<Running> {
    prepare_patiently(config).await?;
    let metrics = Arc::new(Metrics::new());
    let (trigger, stop) = shutdown::channel();
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let http_addr = if services.contains(&Service::Api) {
        let (bound, server) = api::serve(config, metrics.clone(), stop.clone()).await?;
        tasks.spawn(async move {
            server.await.context("The API task failed")?;
            Ok(())
        });
        bound
    } else {
        let (bound, server) = http::serve(
            config.metrics_addr,
            http::metrics_router(metrics.clone()),
            stop.clone(),
        )
        .await?;
        tracing::info!(%bound, "Serving /metrics.");
        tasks.spawn(async move {
            server.await.context("The metrics server task failed")?;
            Ok(())
        });
        bound
    };
    let spawn = |tasks: &mut JoinSet<anyhow::Result<()>>, service: Service, stop: Shutdown| {
        let (config, metrics) = (config.clone(), metrics.clone());
        match service {
            Service::Ingest => {
                tasks.spawn(async move { ingest::run(&config, metrics, stop).await })
            }
            Service::Detect => {
                tasks.spawn(async move { crate::detector::run(&config, metrics, stop).await })
            }
            Service::Api => return,
        };
    };
    for service in services {
        spawn(&mut tasks, *service, stop.clone());
    }
    Ok(Running {
        http_addr,
        metrics,
        trigger: Arc::new(trigger),
        tasks,
    })
}

impl Running {
    /// Asks every service to stop (they finish their open work first).
    pub fn stop(&self) {
        self.trigger.trigger();
    }

    /// A handle that stops the services from elsewhere (a signal handler).
    pub fn stopper(&self) -> Arc<ShutdownTrigger> {
        self.trigger.clone()
    }

    /// Waits until every service has stopped; the first failure stops the others and is
    /// returned.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.map_err(anyhow::Error::new).and_then(|result| result);
            if let Err(error) = result {
                tracing::error!("A service failed; stopping the others: {error:#}");
                self.trigger.trigger();
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
