//! `GET /api/v1/status` (CONTRACT.md section 5), `/metrics` and `/healthz`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;

use super::error::ApiError;
use super::AppState;

/// What a client polls to know how far detection has come.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Every anomaly about data before it is visible; `null` until the detector has run.
    pub watermark: Option<DateTime<Utc>>,
    /// Readings stored since the start.
    pub readings_total: i64,
    /// Payloads rejected by ingest, plus purchases refused by the ledger.
    pub rejections_total: i64,
    /// Anomalies `open` or `investigating`.
    pub open_anomalies: i64,
}

/// The watermark: the least advanced region's (the detector writes one row per region).
pub async fn watermark(
    client: &impl GenericClient,
) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT min(watermark) FROM detector_progress", &[])
        .await?
        .get(0))
}

/// Reads the status.
pub async fn read(client: &impl GenericClient) -> Result<Status, tokio_postgres::Error> {
    let watermark = watermark(client).await?;
    let row = client
        .query_one(
            "SELECT (SELECT coalesce(sum(readings_stored), 0)::bigint FROM ingest_counters),
                    (SELECT coalesce(sum(rejections), 0)::bigint FROM ingest_counters)
                      + (SELECT count(*) FROM purchase_attempts),
                    (SELECT count(*) FROM anomalies WHERE status IN ('open', 'investigating'))",
            &[],
        )
        .await?;
    Ok(Status {
        watermark,
        readings_total: row.get(0),
        rejections_total: row.get(1),
        open_anomalies: row.get(2),
    })
}

/// `GET /api/v1/status`.
pub async fn status(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let client = state.db().await?;
    read(&**client)
        .await
        .map(Json)
        .map_err(|e| ApiError::database("Failed to read the status.", &e))
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::http::metrics_handler(State(Arc::clone(&state.metrics))).await
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}
