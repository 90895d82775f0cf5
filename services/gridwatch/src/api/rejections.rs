//! `GET /api/v1/rejections`: what could not be stored (CONTRACT.md section 2), newest first,
//! with cursor pagination.
//!
//! The cursor is opaque to clients: URL-safe base64 of `<received_at in µs>:<rejection_id>`,
//! the position of the last item of the previous page in the (received_at, rejection_id) order.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use gridwatch_core::ReasonCode;

use super::error::ApiError;
use super::extract;
use super::AppState;

/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;
/// Most items per page.
pub const MAX_LIMIT: i64 = 1000;

#[derive(Deserialize)]
struct RejectionsQuery {
    reason: Option<String>,
    meter: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// One rejection.
#[derive(Debug, Serialize)]
pub struct RejectionItem {
    /// Its number in the store.
    pub id: i64,
    /// When the payload arrived.
    pub received_at: DateTime<Utc>,
    /// The MQTT topic it came on.
    pub topic: String,
    /// The meter, gateway or `market` its topic names.
    pub source: String,
    /// The meter the payload names, as written.
    pub meter_id: Option<String>,
    /// The reading's time, where it could be parsed.
    pub reading_ts: Option<DateTime<Utc>>,
    /// The reason code.
    pub reason: String,
    /// What was wrong, for people.
    pub detail: String,
    /// The payload as kept (up to 64 KiB): text when it is UTF-8, else base64.
    pub raw: String,
    /// `utf8` or `base64`: how `raw` is written.
    pub raw_encoding: &'static str,
    /// The payload's full size in bytes.
    pub raw_size: i32,
    /// Whether `raw` holds only the payload's first 64 KiB.
    pub raw_truncated: bool,
}

/// A page.
#[derive(Debug, Serialize)]
pub struct RejectionPage {
    /// Newest first.
    pub items: Vec<RejectionItem>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Encodes a position as a cursor.
pub fn encode_cursor(received_at: DateTime<Utc>, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", received_at.timestamp_micros()))
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, i64)> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (micros, id) = text.split_once(':')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, id.parse().ok()?))
}

fn time(name: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    extract::present(value)
        .map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    ApiError::invalid_query(format!(
                        "{name} {text:?} must be an RFC 3339 time with a zone: {e}"
                    ))
                })
        })
        .transpose()
}

/// `GET /api/v1/rejections?reason=&meter=&from=&to=&limit=&cursor=`
pub async fn list_rejections(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<RejectionPage>, ApiError> {
    let query: RejectionsQuery = extract::query(&uri)?;
    let reason = extract::present(query.reason);
    if let Some(reason) = &reason {
        if ReasonCode::parse(reason).is_none() {
            let known: Vec<&str> = ReasonCode::ALL.iter().map(|r| r.as_str()).collect();
            return Err(ApiError::invalid_query(format!(
                "reason {reason:?} is not a reason code; known: {}",
                known.join(", ")
            )));
        }
    }
    let meter = extract::present(query.meter);
    if meter
        .as_ref()
        .is_some_and(|m| m.len() > 256 || m.contains('\0'))
    {
        return Err(ApiError::invalid_query(
            "meter is at most 256 bytes, without NUL characters",
        ));
    }
    let from = time("from", query.from)?;
    let to = time("to", query.to)?;
    let limit = match extract::present(query.limit) {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_query(format!(
                    "limit {text:?} must be a whole number from 1 to {MAX_LIMIT}"
                )))
            }
        },
    };
    let after = match extract::present(query.cursor) {
        None => None,
        Some(text) => Some(decode_cursor(&text).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "cursor is not one this API returned",
            )
        })?),
    };
    let (after_at, after_id) = after.unzip();
    let client = state.db().await?;
    let rows = client
        .query(
            "SELECT rejection_id, received_at, topic, source, meter_id, reading_ts, reason,
                    detail, raw, raw_size
             FROM rejections
             WHERE ($1::text IS NULL OR reason = $1)
               AND ($2::text IS NULL OR meter_id = $2)
               AND ($3::timestamptz IS NULL OR received_at >= $3)
               AND ($4::timestamptz IS NULL OR received_at < $4)
               AND ($5::timestamptz IS NULL OR (received_at, rejection_id) < ($5, $6::bigint))
             ORDER BY received_at DESC, rejection_id DESC
             LIMIT $7",
            &[
                &reason,
                &meter,
                &from,
                &to,
                &after_at,
                &after_id,
                &(limit + 1),
            ],
        )
        .await
        .map_err(|e| ApiError::database("Failed to list rejections.", &e))?;
    let more = rows.len() as i64 > limit;
    let items: Vec<RejectionItem> = rows
        .iter()
        .take(limit as usize)
        .map(|row| {
            let raw: &[u8] = row.get(8);
            let raw_size: i32 = row.get(9);
            let (raw_text, encoding) = match std::str::from_utf8(raw) {
                Ok(text) => (text.to_owned(), "utf8"),
                Err(_) => (STANDARD.encode(raw), "base64"),
            };
            RejectionItem {
                id: row.get(0),
                received_at: row.get(1),
                topic: row.get(2),
                source: row.get(3),
                meter_id: row.get(4),
                reading_ts: row.get(5),
                reason: row.get(6),
                detail: row.get(7),
                raw: raw_text,
                raw_encoding: encoding,
                raw_size,
                raw_truncated: (raw.len() as i64) < i64::from(raw_size),
            }
        })
        .collect();
    let next_cursor = if more {
        items.last().map(|i| encode_cursor(i.received_at, i.id))
    } else {
        None
    };
    Ok(Json(RejectionPage { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::parse_from_rfc3339("2025-10-01T00:15:00.123456Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(decode_cursor(&encode_cursor(at, 42)), Some((at, 42)));
        for bad in ["", "x", "!!!", "MTI", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OjE"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
