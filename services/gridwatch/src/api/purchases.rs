//! `POST /api/v1/purchases` (CONTRACT.md section 3): the same code as the MQTT topic
//! ([`crate::ledger`]).

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;

use super::auth::Caller;
use super::error::ApiError;
use super::extract;
use super::AppState;
use crate::ledger::{self, Channel, PurchaseError, Refusal, Submission};

fn refused(state: &AppState, refusal: Refusal) -> ApiError {
    state
        .metrics
        .api
        .purchases
        .with_label_values(&[refusal.code.as_str()])
        .inc();
    ApiError::new(
        StatusCode::from_u16(refusal.code.http_status())
            .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
        refusal.code.as_str(),
        refusal.message,
    )
}

/// `POST /api/v1/purchases`: 201 with the stored purchase, 200 for the same purchase again,
/// 409 for its id with other content, 422 when refused (`purchase_over_cap`, `unknown_licence`,
/// invalid fields).
pub async fn post_purchase(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    extract::require_json(&headers)?;
    let body = extract::body(body)?;
    let request = ledger::parse(&body).map_err(|refusal| refused(&state, refusal))?;
    let mut client = state.db().await?;
    let submission = Submission {
        actor: &caller.name,
        channel: Channel::Http,
    };
    match ledger::submit(&mut client, &state.regulation, &request, submission).await {
        Ok(outcome) => {
            let (status, label) = if outcome.created {
                (StatusCode::CREATED, "accepted")
            } else {
                (StatusCode::OK, "duplicate")
            };
            state
                .metrics
                .api
                .purchases
                .with_label_values(&[label])
                .inc();
            Ok((status, Json(outcome.purchase)).into_response())
        }
        Err(PurchaseError::Refused(refusal)) => Err(refused(&state, refusal)),
        Err(PurchaseError::Database(error)) => {
            Err(ApiError::database("Failed to store a purchase.", &error))
        }
    }
}
