//! The HTTP API (`gridwatch api`, also inside `gridwatch run`): the registry, purchases, the
//! compliance calculator, rejections, anomalies with their evidence and life cycle, the
//! auditors' web page, status, metrics and the OpenAPI document.
//!
//! ```text
//!  request ─> trace ─> metrics ─> JSON errors ─> route ─> timeout ─> lockout, auth
//!          ─> announced body size ─> handler
//! ```
//! - [`routes`]: the one table of routes (path, method, role, limits);
//! - [`auth`]: bearer tokens and roles; [`lockout`]: addresses that fail too many token
//!   checks; [`error`]: the error shape; [`extract`]: bodies and query strings, refused in that
//!   shape;
//! - one module per resource: [`status`], [`registry`], [`purchases`], [`calculator`],
//!   [`rejections`], [`anomalies`], [`evidence`]; [`web`]: the auditors' page at `/`;
//!   [`openapi`]: the document, built from the route table.
//!
//! The same service consumes purchases from MQTT ([`crate::ledger::mqtt`]), through the same
//! code as `POST /api/v1/purchases`.

pub mod anomalies;
pub mod auth;
pub mod calculator;
pub mod error;
pub mod evidence;
pub mod extract;
pub mod lockout;
pub mod observe;
pub mod openapi;
pub mod purchases;
pub mod registry;
pub mod rejections;
pub mod routes;
pub mod status;
pub mod web;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::{middleware, Router};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tower_http::timeout::TimeoutLayer;

use gridwatch_core::regulation::Regulation;

use crate::config::{ApiConfig, Config};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use auth::{Guard, Tokens};
use error::ApiError;
use lockout::{Lockout, LockoutPolicy};
use routes::{BodySize, Deadline, ROUTES};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Database connections.
    pub pool: Pool,
    /// The configured tokens.
    pub tokens: Arc<Tokens>,
    /// The regulation profiles.
    pub regulation: Arc<Regulation>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and timeouts.
    pub limits: Arc<ApiConfig>,
    /// Client addresses that failed token checks, shared by every route.
    pub lockout: Arc<Lockout>,
}

/// A pooled database connection.
pub type PooledClient = deadpool_postgres::Object;

impl AppState {
    /// Loads the tokens file and the regulation profiles, and sets up the connection pool
    /// (connections open on first use). Fails, saying which, if a file is missing or invalid.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<AppState> {
        let tokens = Tokens::load(&config.tokens_file)?;
        let regulation = crate::ledger::regulation::load(config.api.regulation_file.as_deref())?;
        let pg = tokio_postgres::Config::from_str(config.database_url.expose())
            .context("GRIDWATCH_DATABASE_URL is not a valid PostgreSQL URL")?;
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.api.db_pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .context("Failed to set up the database pool")?;
        Ok(AppState {
            pool,
            tokens: Arc::new(tokens),
            regulation: Arc::new(regulation),
            metrics,
            limits: Arc::new(config.api.clone()),
            lockout: Arc::new(Lockout::new(LockoutPolicy {
                max_failures: config.api.auth_failure_limit,
                window: Duration::from_secs(config.api.auth_failure_window_secs),
                max_tracked: config.api.auth_failure_tracked_addresses,
            })),
        })
    }

    /// A connection from the pool, or 503 when the database cannot be reached.
    pub async fn db(&self) -> Result<PooledClient, ApiError> {
        self.pool.get().await.map_err(|error| {
            tracing::warn!(%error, "Failed to get a database connection.");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; retry later",
            )
        })
    }
}

/// The API's router: every route of [`ROUTES`] with its guard, body limit and timeout, and the
/// layers every request goes through.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for spec in ROUTES {
        let guard = Guard {
            access: spec.access,
            tokens: state.tokens.clone(),
            metrics: state.metrics.clone(),
            lockout: state.lockout.clone(),
            trusted_proxy_hops: state.limits.trusted_proxy_hops,
        };
        let limit = match spec.body {
            BodySize::Small => state.limits.body_limit_bytes,
            BodySize::Registry => state.limits.registry_body_limit_bytes,
        };
        let timeout = Duration::from_secs(match spec.deadline {
            Deadline::Normal => state.limits.request_timeout_secs,
            Deadline::Long => state.limits.registry_timeout_secs,
        });
        let endpoint = routes::handler(spec)
            .layer(DefaultBodyLimit::max(limit))
            .route_layer(middleware::from_fn_with_state(
                limit,
                extract::refuse_announced_oversize,
            ))
            .route_layer(middleware::from_fn_with_state(guard, auth::authorize))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                timeout,
            ));
        router = router.route(spec.path, endpoint);
    }
    router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            observe::count_requests,
        ))
        .layer(observe::trace_layer())
        .with_state(state)
}

/// Starts the API on `config.http_addr` (port 0 picks a free port) and, if configured, the
/// MQTT purchases consumer; both stop on `shutdown`. Returns the bound address and a task that
/// ends when both have stopped.
pub async fn serve(
    config: &Config,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let state = AppState::new(config, metrics.clone())?;
    let regulation = state.regulation.clone();
    let (bound, server) = crate::http::serve_with(
        config.http_addr,
        router(state),
        shutdown.clone(),
        Duration::from_secs(config.api.header_read_timeout_secs),
    )
    .await?;
    tracing::info!(%bound, "Serving the HTTP API.");
    let purchases = config.api.mqtt_purchases.then(|| {
        tokio::spawn(crate::ledger::mqtt::run(
            config.clone(),
            regulation,
            metrics,
            shutdown,
        ))
    });
    let task = tokio::spawn(async move {
        let _ = server.await;
        if let Some(purchases) = purchases {
            match purchases.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!("The MQTT purchases consumer failed: {error:#}"),
                Err(error) => tracing::error!(%error, "The MQTT purchases consumer panicked."),
            }
        }
    });
    Ok((bound, task))
}
