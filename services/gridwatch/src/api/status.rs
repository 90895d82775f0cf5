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
    /// How far the event time of the least advanced region has come: what its sources have
    /// reported, less the allowed lateness; `null` until the detector has run.
    pub watermark: Option<DateTime<Utc>>,
    /// Every window ending at or before it has been evaluated, in every region, so every
    /// window-level anomaly about data before it is visible; `null` while a region with meters
    /// has not started.
    pub evaluated_until: Option<DateTime<Utc>>,
    /// Every daily analysis of days ending at or before it is visible, in every region; `null`
    /// while a region with meters has not started.
    pub analysed_until: Option<DateTime<Utc>>,
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

/// How far the detector has come: the least advanced region's `evaluated_until` and
/// `analysed_until`, each `None` while a region with meters has none yet.
pub async fn progress(
    client: &impl GenericClient,
) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT CASE WHEN bool_and(p.evaluated_until IS NOT NULL)
                         THEN min(p.evaluated_until) END,
                    CASE WHEN bool_and(p.analysed_until IS NOT NULL)
                         THEN min(p.analysed_until) END
             FROM regions r LEFT JOIN detector_progress p ON p.region_key = r.region_key
             WHERE EXISTS (SELECT FROM meters m JOIN nodes n ON n.node_key = m.node_key
                           WHERE n.region_key = r.region_key)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Reads the status.
pub async fn read(client: &impl GenericClient) -> Result<Status, tokio_postgres::Error> {
    let watermark = watermark(client).await?;
    let (evaluated_until, analysed_until) = progress(client).await?;
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
        evaluated_until,
        analysed_until,
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
