//! Request bodies and query strings, refused in the contract's error shape (axum's own
//! extractors answer in plain text).

use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than this route accepts",
    )
}

/// The body, or 413 `payload_too_large` beyond the route's limit (400 if it could not be read).
pub fn body(result: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    result.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("failed to read the request body: {}", rejection.body_text()),
            )
        }
    })
}

/// 415 unless the body is declared as JSON (`application/json`, parameters allowed).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match declared.as_deref() {
        Some("application/json") => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON, sent with `Content-Type: application/json`",
        )),
    }
}

/// The query string as `T`, or 400 `invalid_query` naming what is wrong.
pub fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::invalid_query(rejection.body_text()))
}

/// An empty query parameter counts as absent (`?reason=&meter=M-1`).
pub fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// 413 `payload_too_large` at once for a request whose `Content-Length` exceeds the route's
/// limit (the state): without it, the body would be read up to the limit, or, never sent,
/// waited for until the request timeout.
pub async fn refuse_announced_oversize(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        return too_large().into_response();
    }
    next.run(request).await
}
