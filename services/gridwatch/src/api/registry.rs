//! `GET /api/v1/registry` and `PUT /api/v1/registry` (CONTRACT.md section 1): the same code as
//! `gridwatch registry import` ([`crate::registry::store`]).

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use serde_json::json;

use gridwatch_core::registry::{parse_document, RegistryError};

use super::auth::Caller;
use super::error::ApiError;
use super::extract;
use super::AppState;
use crate::registry::store::{import_document, load_document, ImportError, ImportSummary};

/// Most errors listed in one answer (a broken national document may hold millions).
const MAX_ERRORS_LISTED: usize = 1000;

/// 422 `invalid_registry`, every error naming its entry.
pub fn invalid(errors: &[RegistryError]) -> ApiError {
    let listed = &errors[..errors.len().min(MAX_ERRORS_LISTED)];
    let mut message = format!(
        "the registry document was refused ({} error(s)); nothing was changed: ",
        errors.len()
    );
    message.push_str(
        &listed
            .iter()
            .take(20)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    );
    if errors.len() > 20 {
        message.push_str("; ...");
    }
    ApiError::unprocessable("invalid_registry", message).with_details(json!(listed
        .iter()
        .map(|e| json!({"entry": e.entry, "message": e.message}))
        .collect::<Vec<_>>()))
}

/// `GET /api/v1/registry`: the whole stored registry, as a document.
pub async fn get_registry(State(state): State<AppState>) -> Result<Response, ApiError> {
    let client = state.db().await?;
    let document = load_document(&**client).await.map_err(store_error)?;
    let body = serde_json::to_vec(&document)
        .map_err(|e| ApiError::internal("Failed to serialise the registry.", e))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `PUT /api/v1/registry`: validates and upserts a document, all or nothing.
pub async fn put_registry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportSummary>, ApiError> {
    extract::require_json(&headers)?;
    let body = extract::body(body)?;
    // Parsing tens of megabytes is CPU work: off the async threads.
    let parsed = tokio::task::spawn_blocking(move || {
        parse_document(&body).map_err(|error| {
            let syntax = serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err();
            (error, syntax)
        })
    })
    .await
    .map_err(|e| ApiError::internal("The registry parser panicked.", e))?;
    let document = match parsed {
        Ok(document) => document,
        Err((error, true)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {}", error.message),
            ))
        }
        Err((error, false)) => return Err(invalid(&[error])),
    };
    let mut client = state.db().await?;
    let summary = import_document(&mut client, &document, &caller.name)
        .await
        .map_err(store_error)?;
    tracing::info!(
        actor = %caller.name,
        version = summary.version,
        created_meters = summary.created.meters,
        updated_meters = summary.updated.meters,
        unchanged = summary.unchanged,
        "Imported a registry document."
    );
    Ok(Json(summary))
}

fn store_error(error: ImportError) -> ApiError {
    match error {
        ImportError::Invalid(errors) => invalid(&errors),
        ImportError::Database(e) => ApiError::database("Failed to import the registry.", &e),
        ImportError::Corrupt(message) => {
            ApiError::internal("The stored registry is inconsistent.", message)
        }
    }
}
