//! HTTP: the server every service runs, and the `/metrics` endpoint they all serve.
//!
//! The server is our own accept loop rather than `axum::serve`, which gives hyper no timer and
//! so no header read timeout: a client sending its headers a byte at a time, or opening
//! connections and sending nothing, would hold each connection open forever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower_http::add_extension::AddExtension;

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.encode(),
    )
}

/// A router with `/metrics` and `/healthz`, for services running without the API.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(metrics)
}

/// How long a client of `/metrics` may take to send a request's head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` and serves `router` until `shutdown`, with [`DEFAULT_HEADER_READ_TIMEOUT`];
/// see [`serve_with`].
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_with(addr, router, shutdown, DEFAULT_HEADER_READ_TIMEOUT).await
}

/// Binds `addr` and serves `router` over HTTP/1.1 until `shutdown`; returns the bound address
/// (port 0 picks a free port, as tests do) and the serving task, which ends once every
/// connection has finished its request in flight. Each request carries its TCP peer as
/// `ConnectInfo<SocketAddr>`. A connection whose request head (or, kept alive, whose next
/// request) does not arrive within `header_read_timeout` is closed.
pub async fn serve_with(
    addr: SocketAddr,
    router: Router,
    mut shutdown: Shutdown,
    header_read_timeout: Duration,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("Failed to listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let connections = GracefulShutdown::new();
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        accept_failed(error).await;
                        continue;
                    }
                },
                () = shutdown.wait() => break,
            };
            let service =
                TowerToHyperService::new(AddExtension::new(router.clone(), ConnectInfo(peer)));
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let connection = connections.watch(connection);
            tokio::spawn(async move {
                // Clients that go away, send garbage or are too slow end here: theirs to fix.
                if let Err(error) = connection.await {
                    tracing::debug!(%error, %peer, "An HTTP connection ended with an error.");
                }
            });
        }
        drop(listener);
        connections.shutdown().await;
    });
    Ok((bound, task))
}

/// After a failed accept: a connection reset before it was accepted is the client's affair; a
/// lack of file descriptors or memory is ours, logged, and waited out for a moment rather than
/// retried in a busy loop.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(%error, "Failed to accept an HTTP connection; retrying in a second.");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
