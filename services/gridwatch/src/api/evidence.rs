//! `GET /api/v1/anomalies/{id}/evidence` (JSON) and `.../evidence.svg` (a chart): the data
//! that proves an anomaly, gathered by kind ([`load`]), drawn for people who are not engineers
//! ([`chart`]). Times in the JSON are UTC; the chart speaks the local time of the `tz` query
//! parameter (`+05:00` by default, `+06:00` for the east of Kazakhstan before 2024).

pub mod chart;
pub mod load;
pub mod model;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::FixedOffset;

use super::anomalies::{anomaly_id, pairs};
use super::error::ApiError;
use super::AppState;
use crate::anomalies::query;
use model::Evidence;

/// The offset charts use when `tz` is not given: Kazakhstan's single time zone since 2024.
pub const DEFAULT_TZ: &str = "+05:00";

/// Parses a UTC offset such as `+05:00`, `-03:30` or `Z`. A `+` sent unencoded in a query
/// string arrives as a space, which is read as `+`.
pub fn parse_offset(text: &str) -> Option<(FixedOffset, String)> {
    let text = text.trim_end();
    if text == "Z" || text == "z" {
        return Some((FixedOffset::east_opt(0)?, "+00:00".into()));
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' | b' ' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 14 || minutes > 59 {
        return None;
    }
    let seconds = sign * (hours * 3600 + minutes * 60);
    let label = format!(
        "{}{hours:02}:{minutes:02}",
        if sign < 0 { '-' } else { '+' }
    );
    Some((FixedOffset::east_opt(seconds)?, label))
}

fn offset_of(uri: &Uri) -> Result<(FixedOffset, String), ApiError> {
    let mut tz = None;
    for (name, value) in pairs(uri)? {
        if name != "tz" {
            return Err(ApiError::unprocessable(
                "invalid_filter",
                format!("unknown parameter {name:?}; known: tz"),
            ));
        }
        if tz.replace(value).is_some() {
            return Err(ApiError::unprocessable(
                "invalid_filter",
                "parameter tz is given twice",
            ));
        }
    }
    let text = tz.filter(|t| !t.trim().is_empty());
    let text = text.as_deref().unwrap_or(DEFAULT_TZ);
    parse_offset(text).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_filter",
            format!("tz {text:?} must be a UTC offset such as +05:00 (send + as %2B)"),
        )
    })
}

async fn gather(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
    uri: &Uri,
) -> Result<(Evidence, FixedOffset), ApiError> {
    let id = anomaly_id(path)?;
    let (offset, label) = offset_of(uri)?;
    let client = state.db().await?;
    let anomaly = query::get(&**client, &id)
        .await
        .map_err(|e| ApiError::database("Failed to read an anomaly.", &e))?
        .ok_or_else(super::anomalies::not_found)?;
    let evidence = load::load(&**client, &anomaly, &label)
        .await
        .map_err(|e| ApiError::database("Failed to gather an anomaly's evidence.", &e))?;
    Ok((evidence, offset))
}

/// `GET /api/v1/anomalies/{id}/evidence?tz=+05:00`: the series behind the chart, in Wh (or
/// percent) per interval, times in UTC.
pub async fn evidence_json(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Json<Evidence>, ApiError> {
    gather(&state, path, &uri)
        .await
        .map(|(evidence, _)| Json(evidence))
}

/// `GET /api/v1/anomalies/{id}/evidence.svg?tz=+05:00`: the chart.
pub async fn evidence_svg(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let (evidence, offset) = gather(&state, path, &uri).await?;
    let svg = chart::svg(&evidence, offset)
        .map_err(|e| ApiError::internal("Failed to draw an evidence chart.", e))?;
    let mut response = svg.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml; charset=utf-8"),
    );
    // Opened on its own, the chart may run nothing and load nothing.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_with_or_without_an_encoded_plus() {
        assert_eq!(parse_offset("+05:00").map(|o| o.1), Some("+05:00".into()));
        assert_eq!(parse_offset(" 06:00").map(|o| o.1), Some("+06:00".into()));
        assert_eq!(
            parse_offset("-03:30").map(|o| o.0.local_minus_utc()),
            Some(-(3 * 3600 + 1800))
        );
        assert_eq!(parse_offset("Z").map(|o| o.1), Some("+00:00".into()));
        for bad in [
            "05:00",
            "+5:00",
            "+15:00",
            "+05:60",
            "Asia/Almaty",
            "",
            "+05",
        ] {
            assert!(parse_offset(bad).is_none(), "{bad}");
        }
    }
}
