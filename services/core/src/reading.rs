//! Meter readings and the parsers that turn MQTT payloads into them.
//!
//! Parsing happens once, at the edge: what comes out is either a [`Reading`] that every later
//! stage can trust, or a [`Rejection`] with the contract's reason code. A gateway array is split
//! into its elements first, so that one bad element rejects that element only.

use std::borrow::Cow;
use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ids::MeterId;
use crate::rejection::{ReasonCode, Rejection};

/// Largest instantaneous power accepted, in watts (1 GW: no single meter reads more).
pub const MAX_POWER_W: f64 = 1e9;

/// One reading of a meter's cumulative import register (OBIS 1-0:1.8.0).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The meter, as named by the topic or the gateway element.
    pub meter_id: MeterId,
    /// When the meter took the reading (event time), in UTC.
    pub ts: DateTime<Utc>,
    /// The register, in watt-hours; never negative.
    pub energy_wh: i64,
    /// Instantaneous power, in watts, when the meter sends it.
    pub power_w: Option<f32>,
}

/// The range of timestamps accepted, computed by the caller from its clock and configuration.
#[derive(Debug, Clone, Copy)]
pub struct ReadingBounds {
    /// Readings older than this are `timestamp_out_of_range`.
    pub earliest: DateTime<Utc>,
    /// Readings newer than this (clock skew beyond tolerance) are `timestamp_out_of_range`.
    pub latest: DateTime<Utc>,
}

impl ReadingBounds {
    /// Accepts any timestamp chrono can represent (for tests and offline tools).
    pub fn unbounded() -> Self {
        ReadingBounds {
            earliest: DateTime::<Utc>::MIN_UTC,
            latest: DateTime::<Utc>::MAX_UTC,
        }
    }
}

/// The wire shape of a reading, before checks. Unknown fields are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireReading<'a> {
    #[serde(borrow, default)]
    meter_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    energy_wh: i64,
    #[serde(default)]
    power_w: Option<f64>,
}

/// The rejection of `text`, which failed to parse with `error`. A type error met before the
/// parser reached a syntax error (`{garbage` where an array was expected) is still malformed
/// JSON: the text is checked whole before it is called an invalid field.
fn json_rejection(text: &str, error: &serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(syntax) => Rejection::new(ReasonCode::MalformedJson, syntax.to_string()),
            Ok(_) => Rejection::new(ReasonCode::InvalidField, error.to_string()),
        },
        Category::Syntax | Category::Eof | Category::Io => {
            Rejection::new(ReasonCode::MalformedJson, error.to_string())
        }
    }
}

/// Checks a wire reading whose meter is `meter_id` (already known valid or not).
fn check(
    wire: WireReading<'_>,
    meter_id: Result<MeterId, Rejection>,
    bounds: &ReadingBounds,
) -> Result<Reading, Rejection> {
    let meter_id = meter_id?;
    let named = Some(meter_id.as_str());
    let ts = DateTime::parse_from_rfc3339(&wire.ts)
        .map_err(|e| {
            Rejection::new(
                ReasonCode::InvalidField,
                format!(
                    "field `ts` must be an RFC 3339 time with a zone, got {:?}: {e}",
                    wire.ts
                ),
            )
            .with_meter(named)
        })?
        .with_timezone(&Utc);
    if ts < bounds.earliest || ts > bounds.latest {
        return Err(Rejection::new(
            ReasonCode::TimestampOutOfRange,
            format!(
                "ts {} is outside the accepted range {} .. {}",
                ts.to_rfc3339(),
                bounds.earliest.to_rfc3339(),
                bounds.latest.to_rfc3339()
            ),
        )
        .with_meter(named)
        .with_ts(Some(ts)));
    }
    if wire.energy_wh < 0 {
        return Err(Rejection::new(
            ReasonCode::NegativeEnergy,
            format!(
                "energy_wh is {}, a register is never negative",
                wire.energy_wh
            ),
        )
        .with_meter(named)
        .with_ts(Some(ts)));
    }
    let power_w = match wire.power_w {
        Some(p) if !p.is_finite() || p.abs() > MAX_POWER_W => {
            return Err(Rejection::new(
                ReasonCode::InvalidField,
                format!("power_w {p} is outside +-{MAX_POWER_W} W"),
            )
            .with_meter(named)
            .with_ts(Some(ts)))
        }
        Some(p) => Some(p as f32),
        None => None,
    };
    Ok(Reading {
        meter_id,
        ts,
        energy_wh: wire.energy_wh,
        power_w,
    })
}

/// Parses the payload of `<root>/meters/{topic_meter}/readings`: one reading object.
///
/// `meter_id` may appear in the payload and must then equal the topic's (`topic_mismatch`).
pub fn parse_meter_payload(
    topic_meter: &MeterId,
    payload: &[u8],
    bounds: &ReadingBounds,
) -> Result<Reading, Rejection> {
    let text = std::str::from_utf8(payload).map_err(|e| {
        Rejection::new(
            ReasonCode::MalformedJson,
            format!("payload is not UTF-8: {e}"),
        )
        .with_meter(Some(topic_meter.as_str()))
    })?;
    let wire: WireReading<'_> = serde_json::from_str(text)
        .map_err(|e| json_rejection(text, &e).with_meter(Some(topic_meter.as_str())))?;
    let meter_id = match wire.meter_id.as_deref() {
        Some(named) if named != topic_meter.as_str() => Err(Rejection::new(
            ReasonCode::TopicMismatch,
            format!(
                "payload names meter {named:?} but was published on meter {topic_meter}'s topic"
            ),
        )
        .with_meter(Some(named))),
        _ => Ok(topic_meter.clone()),
    };
    check(wire, meter_id, bounds)
}

/// One element of a gateway array: where it sits in the payload and what it parsed to.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayElement {
    /// Byte range of the element's JSON text within the payload (kept as the raw payload of a
    /// rejection, so that an auditor sees exactly what the concentrator sent).
    pub span: Range<usize>,
    /// The reading, or why this element is rejected.
    pub result: Result<Reading, Rejection>,
}

/// Parses the payload of `<root>/gateways/{gateway}/readings`: an array of reading objects,
/// each naming its `meter_id`, at most `max_elements` of them.
///
/// The outer `Err` rejects the whole message (not JSON, not an array, too many elements); an
/// element's own `Err` rejects that element only.
pub fn parse_gateway_payload(
    payload: &[u8],
    max_elements: usize,
    bounds: &ReadingBounds,
) -> Result<Vec<GatewayElement>, Rejection> {
    let text = std::str::from_utf8(payload).map_err(|e| {
        Rejection::new(
            ReasonCode::MalformedJson,
            format!("payload is not UTF-8: {e}"),
        )
    })?;
    let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
        let mut rejection = json_rejection(text, &e);
        if rejection.reason == ReasonCode::InvalidField {
            rejection.detail = format!("a gateway payload must be a JSON array of readings: {e}");
        }
        rejection
    })?;
    if elements.len() > max_elements {
        return Err(Rejection::new(
            ReasonCode::PayloadTooLarge,
            format!(
                "gateway array has {} elements, at most {max_elements} are accepted",
                elements.len()
            ),
        ));
    }
    let base = text.as_ptr() as usize;
    Ok(elements
        .into_iter()
        .map(|raw| {
            let start = raw.get().as_ptr() as usize - base;
            GatewayElement {
                span: start..start + raw.get().len(),
                result: parse_gateway_element(raw.get(), bounds),
            }
        })
        .collect())
}

fn parse_gateway_element(element: &str, bounds: &ReadingBounds) -> Result<Reading, Rejection> {
    let wire: WireReading<'_> =
        serde_json::from_str(element).map_err(|e| json_rejection(element, &e))?;
    let meter_id = match wire.meter_id.as_deref() {
        None => Err(Rejection::new(
            ReasonCode::InvalidField,
            "missing field `meter_id`: each element of a gateway array names its meter",
        )),
        Some(named) => MeterId::parse(named).map_err(|e| {
            Rejection::new(
                ReasonCode::InvalidField,
                format!("field `meter_id` {named:?} is not a valid identifier: {e}"),
            )
            .with_meter(Some(named))
        }),
    };
    check(wire, meter_id, bounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(id: &str) -> MeterId {
        MeterId::parse(id).expect("valid id")
    }

    fn reason(r: Result<Reading, Rejection>) -> ReasonCode {
        r.expect_err("expected a rejection").reason
    }

    #[test]
    fn contract_payload_parses() {
        let r = parse_meter_payload(
            &meter("M-1"),
            br#"{"ts": "2025-10-01T00:15:00Z", "energy_wh": 123456789, "power_w": 5120.5}"#,
            &ReadingBounds::unbounded(),
        )
        .expect("valid reading");
        assert_eq!(r.meter_id.as_str(), "M-1");
        assert_eq!(r.ts.to_rfc3339(), "2025-10-01T00:15:00+00:00");
        assert_eq!(r.energy_wh, 123_456_789);
        assert_eq!(r.power_w, Some(5120.5));
    }

    #[test]
    fn offsets_are_converted_to_utc_and_power_is_optional() {
        let r = parse_meter_payload(
            &meter("M-1"),
            br#"{"meter_id":"M-1","ts":"2025-10-01T06:15:00+06:00","energy_wh":0}"#,
            &ReadingBounds::unbounded(),
        )
        .expect("valid reading");
        assert_eq!(r.ts.to_rfc3339(), "2025-10-01T00:15:00+00:00");
        assert_eq!(r.power_w, None);
    }

    #[test]
    fn each_bad_meter_payload_gets_its_reason() {
        let m = meter("M-1");
        let b = ReadingBounds::unbounded();
        let cases: [(&[u8], ReasonCode); 12] = [
            (b"{not json", ReasonCode::MalformedJson),
            (b"[not json", ReasonCode::MalformedJson),
            (b"\xff\xfe", ReasonCode::MalformedJson),
            (b"", ReasonCode::MalformedJson),
            (
                br#"{"ts":"2025-10-01T00:15:00Z"}"#,
                ReasonCode::InvalidField,
            ),
            (
                br#"{"ts":"2025-10-01T00:15:00Z","energy_wh":1,"x":1}"#,
                ReasonCode::InvalidField,
            ),
            (
                br#"{"ts":"2025-10-01T00:15:00Z","energy_wh":1.5}"#,
                ReasonCode::InvalidField,
            ),
            (
                br#"{"ts":"2025-10-01T00:15:00","energy_wh":1}"#,
                ReasonCode::InvalidField,
            ),
            (br#"[1,2]"#, ReasonCode::InvalidField),
            (
                br#"{"ts":"2025-10-01T00:15:00Z","energy_wh":-1}"#,
                ReasonCode::NegativeEnergy,
            ),
            (
                br#"{"meter_id":"M-2","ts":"2025-10-01T00:15:00Z","energy_wh":1}"#,
                ReasonCode::TopicMismatch,
            ),
            (
                br#"{"ts":"2025-10-01T00:15:00Z","energy_wh":1,"power_w":1e300}"#,
                ReasonCode::InvalidField,
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(
                reason(parse_meter_payload(&m, payload, &b)),
                expected,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn timestamps_outside_the_bounds_are_out_of_range() {
        let bounds = ReadingBounds {
            earliest: "2025-01-01T00:00:00Z".parse().expect("time"),
            latest: "2025-12-31T00:00:00Z".parse().expect("time"),
        };
        let m = meter("M-1");
        for ts in ["2024-12-31T23:59:59Z", "2026-01-01T00:00:00Z"] {
            let payload = format!(r#"{{"ts":"{ts}","energy_wh":1}}"#);
            assert_eq!(
                reason(parse_meter_payload(&m, payload.as_bytes(), &bounds)),
                ReasonCode::TimestampOutOfRange
            );
        }
    }

    #[test]
    fn one_bad_gateway_element_rejects_that_element_only() {
        let payload = br#"[
            {"meter_id":"M-1","ts":"2025-10-01T00:15:00Z","energy_wh":10},
            {"meter_id":"M-2","ts":"2025-10-01T00:15:00Z","energy_wh":-5},
            {"ts":"2025-10-01T00:15:00Z","energy_wh":7},
            {"meter_id":"bad id","ts":"2025-10-01T00:15:00Z","energy_wh":7},
            42,
            {"meter_id":"M-3","ts":"2025-10-01T00:15:00Z","energy_wh":11,"power_w":null}
        ]"#;
        let elements =
            parse_gateway_payload(payload, 10, &ReadingBounds::unbounded()).expect("an array");
        let reasons: Vec<Option<ReasonCode>> = elements
            .iter()
            .map(|e| e.result.as_ref().err().map(|r| r.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                None,
                Some(ReasonCode::NegativeEnergy),
                Some(ReasonCode::InvalidField),
                Some(ReasonCode::InvalidField),
                Some(ReasonCode::InvalidField),
                None
            ]
        );
        let text = std::str::from_utf8(payload).expect("utf-8");
        assert_eq!(&text[elements[4].span.clone()], "42");
        assert!(text[elements[1].span.clone()].contains("\"M-2\""));
        assert_eq!(
            elements[5]
                .result
                .as_ref()
                .expect("valid")
                .meter_id
                .as_str(),
            "M-3"
        );
    }

    #[test]
    fn gateway_payload_that_is_not_an_array_or_too_long_is_rejected_whole() {
        let b = ReadingBounds::unbounded();
        let not_array = parse_gateway_payload(br#"{"a":1}"#, 10, &b).expect_err("rejected");
        assert_eq!(not_array.reason, ReasonCode::InvalidField);
        let broken = parse_gateway_payload(b"[{", 10, &b).expect_err("rejected");
        assert_eq!(broken.reason, ReasonCode::MalformedJson);
        // Not JSON at all, though the first byte already says it is not an array.
        let garbage = parse_gateway_payload(b"{garbage", 10, &b).expect_err("rejected");
        assert_eq!(garbage.reason, ReasonCode::MalformedJson);
        let long = parse_gateway_payload(b"[1,2,3]", 2, &b).expect_err("rejected");
        assert_eq!(long.reason, ReasonCode::PayloadTooLarge);
    }
}
