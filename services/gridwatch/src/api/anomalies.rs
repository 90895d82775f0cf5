//! The auditors' routes (CONTRACT.md section 4):
//!
//! - `GET /api/v1/anomalies`: filters `kind`, `region`, `node`, `meter`, `licence`, `suspect`,
//!   `status`, `severity` (comma-separated lists allowed for kind, status and severity),
//!   `from`/`to` (overlap with the anomaly's period), `sort=newest|priority`, `limit`
//!   (1 to 1,000, default 100), `cursor`; `{"items": [...], "next_cursor": ... | null}`;
//! - `GET /api/v1/anomalies.csv`: the same filters, every match (up to 100,000) as CSV;
//! - `GET /api/v1/anomalies/{id}`: one anomaly with its history and the statuses it may move
//!   to;
//! - `POST /api/v1/anomalies/{id}/transitions`: `{"to": "...", "note": "..."}`, recorded with
//!   the token's name ([`crate::anomalies::transition`] holds the table).
//!
//! A refused filter is 422 naming the parameter; an id that cannot be an identifier is 400
//! `invalid_id`; an unknown one is 404 `not_found`.

pub mod csv;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use gridwatch_core::ids::check_identifier;

use super::auth::Caller;
use super::error::ApiError;
use super::{extract, AppState};
use crate::anomalies::query::{self, Anomaly, HistoryEntry, Limits, ListQuery, PAGE_LIMITS};
use crate::anomalies::transition::{self, Refusal, Status, TransitionError};

/// The CSV export's limits: every match, up to this many rows.
pub const CSV_LIMITS: Limits = Limits {
    default: 100_000,
    max: 100_000,
};

/// The query string as name-value pairs (percent-decoded), or 400 `invalid_query`.
pub fn pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|rejection| ApiError::invalid_query(rejection.body_text()))
}

/// The `{id}` of a path: 400 `invalid_id` unless it is an identifier (CONTRACT.md
/// conventions), which an anomaly id always is.
pub fn anomaly_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|rejection| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", rejection.body_text())
    })?;
    check_identifier(&id).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("{id:?} is not an anomaly id: {e}"),
        )
    })?;
    Ok(id)
}

/// 404 for an anomaly id nobody raised.
pub fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no anomaly has this id")
}

fn parse(uri: &Uri, limits: Limits) -> Result<ListQuery, ApiError> {
    ListQuery::parse(&pairs(uri)?, limits)
        .map_err(|error| ApiError::unprocessable(error.code, error.message))
}

/// A page of anomalies.
#[derive(Debug, Serialize)]
pub struct AnomalyPage {
    /// In the requested order.
    pub items: Vec<Anomaly>,
    /// Pass as `cursor` (with the same `sort`) for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/anomalies`.
pub async fn list_anomalies(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<AnomalyPage>, ApiError> {
    let query = parse(&uri, PAGE_LIMITS)?;
    let client = state.db().await?;
    let page = query::list(&**client, &query)
        .await
        .map_err(|e| ApiError::database("Failed to list anomalies.", &e))?;
    Ok(Json(AnomalyPage {
        items: page.items,
        next_cursor: page.next.map(|p| p.encode()),
    }))
}

/// `GET /api/v1/anomalies.csv`: a header row, then one row per anomaly. When more than
/// `limit` match, the `X-Next-Cursor` header holds the cursor of the rest.
pub async fn export_csv(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let query = parse(&uri, CSV_LIMITS)?;
    let client = state.db().await?;
    let page = query::list(&**client, &query)
        .await
        .map_err(|e| ApiError::database("Failed to export anomalies.", &e))?;
    let mut body = csv::header();
    for anomaly in &page.items {
        body.push_str(&csv::row(anomaly));
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"anomalies.csv\""),
    );
    if let Some(next) = page
        .next
        .and_then(|p| HeaderValue::from_str(&p.encode()).ok())
    {
        headers.insert("x-next-cursor", next);
    }
    Ok(response)
}

/// Where an anomaly's other resources are.
#[derive(Debug, Serialize)]
pub struct Links {
    /// Its evidence as JSON.
    pub evidence: String,
    /// Its evidence as an SVG chart.
    pub evidence_svg: String,
    /// Where to POST a transition.
    pub transitions: String,
}

/// One anomaly with its history.
#[derive(Debug, Serialize)]
pub struct AnomalyDetail {
    /// The anomaly.
    #[serde(flatten)]
    pub anomaly: Anomaly,
    /// Every entry of its tamper-evident history, oldest first.
    pub history: Vec<HistoryEntry>,
    /// The statuses it may move to now.
    pub next_statuses: Vec<&'static str>,
    /// Its evidence and transitions.
    pub links: Links,
}

async fn detail(state: &AppState, id: &str) -> Result<AnomalyDetail, ApiError> {
    let client = state.db().await?;
    let anomaly = query::get(&**client, id)
        .await
        .map_err(|e| ApiError::database("Failed to read an anomaly.", &e))?
        .ok_or_else(not_found)?;
    let history = query::history(&**client, id)
        .await
        .map_err(|e| ApiError::database("Failed to read an anomaly's history.", &e))?;
    let next_statuses = Status::parse(&anomaly.status)
        .map(transition::allowed_from)
        .unwrap_or_default()
        .into_iter()
        .map(Status::as_str)
        .collect();
    let base = format!("/api/v1/anomalies/{id}");
    Ok(AnomalyDetail {
        anomaly,
        history,
        next_statuses,
        links: Links {
            evidence: format!("{base}/evidence"),
            evidence_svg: format!("{base}/evidence.svg"),
            transitions: format!("{base}/transitions"),
        },
    })
}

/// `GET /api/v1/anomalies/{id}`.
pub async fn get_anomaly(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AnomalyDetail>, ApiError> {
    let id = anomaly_id(path)?;
    detail(&state, &id).await.map(Json)
}

/// The body of a transition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionRequest {
    to: String,
    #[serde(default)]
    note: Option<String>,
}

fn invalid_field(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_field", message)
}

/// `POST /api/v1/anomalies/{id}/transitions`: 200 with the anomaly and its history; 409
/// `invalid_transition` naming from and to; 422 `note_required` or `invalid_field`.
pub async fn post_transition(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AnomalyDetail>, ApiError> {
    let id = anomaly_id(path)?;
    extract::require_json(&headers)?;
    let body = extract::body(body)?;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not JSON: {e}"),
        )
    })?;
    let request: TransitionRequest = serde_json::from_value(value).map_err(|e| {
        invalid_field(format!(
            "the body must be {{\"to\": \"<status>\", \"note\": \"...\"}}: {e}"
        ))
    })?;
    let to = Status::parse(&request.to).ok_or_else(|| {
        invalid_field(format!(
            "to {:?} is not a status; statuses: {}",
            request.to,
            query::STATUSES.join(", ")
        ))
    })?;
    let note = transition::clean_note(request.note.as_deref()).map_err(invalid_field)?;
    let mut client = state.db().await?;
    match transition::apply(&mut client, &id, to, note.as_deref(), &caller.name).await {
        Ok(done) => {
            tracing::info!(
                anomaly = %id,
                from = done.from.as_str(),
                to = done.to.as_str(),
                actor = %caller.name,
                seq = done.seq,
                "An anomaly changed status."
            );
        }
        Err(TransitionError::NotFound) => return Err(not_found()),
        Err(TransitionError::Refused(refusal @ Refusal::Invalid { .. })) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "invalid_transition",
                refusal.to_string(),
            ))
        }
        Err(TransitionError::Refused(refusal @ Refusal::NoteRequired { .. })) => {
            return Err(ApiError::unprocessable(
                "note_required",
                refusal.to_string(),
            ))
        }
        Err(TransitionError::Database(error)) => {
            return Err(ApiError::database("Failed to record a transition.", &error))
        }
    }
    drop(client);
    detail(&state, &id).await.map(Json)
}
