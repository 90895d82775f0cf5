//! Readings: the meter and gateway payload parsers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use gridwatch_core::reading::{
    parse_gateway_payload, parse_meter_payload, Reading, ReadingBounds, MAX_POWER_W,
};
use gridwatch_core::{MeterId, ReasonCode, Rejection};

use super::{ensure, fingerprint, shape, Outcome, Violation};

/// The meter whose topic the single-reading payloads arrive on (the corpus's meter).
const TOPIC_METER: &str = "M-000001";
/// The contract's largest gateway array.
const MAX_ELEMENTS: usize = 10_000;

/// No bounds, and the bounds of a deployment (2020 to 2030).
fn bounds() -> (ReadingBounds, ReadingBounds) {
    let at = |s: &str| s.parse::<DateTime<Utc>>().expect("a valid time");
    (
        ReadingBounds::unbounded(),
        ReadingBounds {
            earliest: at("2020-01-01T00:00:00Z"),
            latest: at("2030-01-01T00:00:00Z"),
        },
    )
}

/// What holds of every reading the parsers accept.
fn check_reading(r: &Reading, bounds: &ReadingBounds) -> Result<(), Violation> {
    ensure(r.energy_wh >= 0, || {
        format!("accepted a negative register: {r:?}")
    })?;
    ensure(bounds.earliest <= r.ts && r.ts <= bounds.latest, || {
        format!("accepted a reading outside its bounds: {r:?}")
    })?;
    ensure(
        r.power_w
            .is_none_or(|p| p.is_finite() && f64::from(p).abs() <= MAX_POWER_W),
        || format!("accepted an impossible power: {r:?}"),
    )
}

/// What holds of every rejection: one of the `allowed` reasons, with a detail, and text the
/// rejections store can keep (PostgreSQL's text columns refuse the NUL character).
fn check_rejection(rejection: &Rejection, allowed: &[ReasonCode]) -> Result<(), Violation> {
    ensure(allowed.contains(&rejection.reason), || {
        format!("unexpected reason {}: {rejection:?}", rejection.reason)
    })?;
    ensure(!rejection.detail.is_empty(), || {
        format!("a rejection without detail: {rejection:?}")
    })?;
    ensure(
        !rejection.detail.contains('\0')
            && !rejection
                .meter_id
                .as_deref()
                .is_some_and(|m| m.contains('\0')),
        || {
            format!("a rejection's text holds a NUL, which the rejections store cannot keep: {rejection:?}")
        },
    )
}

fn outcome_of(result: &Result<Reading, Rejection>) -> [&str; 2] {
    match result {
        Ok(r) if r.power_w.is_some() => ["ok", "power"],
        Ok(_) => ["ok", ""],
        Err(rejection) => [rejection.reason.as_str(), shape(&rejection.detail)],
    }
}

/// The reading written back as the canonical payload a meter would send.
fn canonical(r: &Reading) -> Vec<u8> {
    let mut payload = json!({
        "meter_id": r.meter_id.as_str(),
        "ts": r.ts.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "energy_wh": r.energy_wh,
    });
    if let Some(p) = r.power_w {
        // Widened exactly, so that parsing and narrowing again gives the same f32.
        payload["power_w"] = json!(f64::from(p));
    }
    payload.to_string().into_bytes()
}

/// `parse_meter_payload` on the topic of [`TOPIC_METER`].
pub fn meter_payload(input: &[u8]) -> Result<Vec<Outcome>, Violation> {
    use ReasonCode::*;
    let topic = MeterId::parse(TOPIC_METER).expect("a valid identifier");
    let (unbounded, bounded) = bounds();
    let open = parse_meter_payload(&topic, input, &unbounded);
    let closed = parse_meter_payload(&topic, input, &bounded);
    for (result, bounds) in [(&open, &unbounded), (&closed, &bounded)] {
        match result {
            Ok(r) => {
                check_reading(r, bounds)?;
                ensure(r.meter_id == topic, || {
                    format!("a reading of another meter on {TOPIC_METER}'s topic: {r:?}")
                })?;
            }
            Err(rejection) => check_rejection(
                rejection,
                &[
                    MalformedJson,
                    InvalidField,
                    TopicMismatch,
                    NegativeEnergy,
                    TimestampOutOfRange,
                ],
            )?,
        }
    }
    match (&open, &closed) {
        (Ok(a), Ok(b)) => ensure(a == b, || {
            format!("bounds changed the reading: {a:?} {b:?}")
        })?,
        (Ok(_), Err(b)) | (Err(_), Err(b)) if b.reason == TimestampOutOfRange => {}
        (Err(a), Err(b)) => ensure(a == b, || {
            format!("bounds changed the rejection: {a:?} {b:?}")
        })?,
        (a, b) => {
            return Err(Violation(format!(
                "narrower bounds accepted more: {a:?} {b:?}"
            )))
        }
    }
    // A reading within a deployment's bounds survives being written back and read again.
    if let Ok(r) = &closed {
        let again = parse_meter_payload(&topic, &canonical(r), &bounded);
        ensure(again.as_ref() == Ok(r), || {
            format!("{r:?} does not round-trip: {again:?}")
        })?;
    }
    Ok(vec![fingerprint(outcome_of(&closed))])
}

/// `parse_gateway_payload` with the contract's element limit.
pub fn gateway_payload(input: &[u8]) -> Result<Vec<Outcome>, Violation> {
    use ReasonCode::*;
    let (_, bounds) = bounds();
    let elements = match parse_gateway_payload(input, MAX_ELEMENTS, &bounds) {
        Ok(elements) => elements,
        Err(rejection) => {
            check_rejection(&rejection, &[MalformedJson, InvalidField, PayloadTooLarge])?;
            return Ok(vec![fingerprint([
                "whole",
                rejection.reason.as_str(),
                shape(&rejection.detail),
            ])]);
        }
    };
    let text = std::str::from_utf8(input)
        .map_err(|e| Violation(format!("accepted a payload that is not UTF-8: {e}")))?;
    let mut previous_end = 0;
    let mut outcomes = Vec::new();
    for element in &elements {
        let span = element.span.clone();
        let element_text = text.get(span.clone()).ok_or_else(|| {
            Violation(format!(
                "span {span:?} is not a slice of the {} byte payload",
                text.len()
            ))
        })?;
        ensure(span.start >= previous_end, || {
            format!("span {span:?} overlaps the previous element's")
        })?;
        previous_end = span.end;
        match &element.result {
            Ok(r) => check_reading(r, &bounds)?,
            Err(rejection) => check_rejection(
                rejection,
                &[
                    InvalidField,
                    NegativeEnergy,
                    TimestampOutOfRange,
                    MalformedJson,
                ],
            )?,
        }
        // An element is judged alone: the same text in an array of its own gets the same result.
        let alone = parse_gateway_payload(format!("[{element_text}]").as_bytes(), 1, &bounds);
        ensure(
            alone
                .as_ref()
                .is_ok_and(|a| a.len() == 1 && a[0].result == element.result),
            || {
                format!(
                    "element {element_text:?} alone gives {alone:?}, in the array {:?}",
                    element.result
                )
            },
        )?;
        outcomes.push(fingerprint(outcome_of(&element.result)));
    }
    if !elements.is_empty() {
        let fewer = parse_gateway_payload(input, elements.len() - 1, &bounds);
        ensure(
            fewer.as_ref().is_err_and(|r| r.reason == PayloadTooLarge),
            || {
                format!(
                    "{} elements passed a limit of one fewer: {fewer:?}",
                    elements.len()
                )
            },
        )?;
    }
    let size = match elements.len() {
        0 => "empty",
        1 => "one",
        2..=9 => "a few",
        _ => "many",
    };
    outcomes.push(fingerprint(["size", size]));
    Ok(outcomes)
}
