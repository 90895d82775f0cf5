//! The JSON on the wire (CONTRACT §2), written by hand: a month of 10,000 meters is 29 million
//! readings, and building a `serde_json::Value` for each would dominate the run time.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// A reading's timestamp as the contract writes it: `2025-10-01T00:15:00Z`.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Writes an integer in decimal.
fn write_integer(out: &mut Vec<u8>, value: i64) {
    let mut digits = [0u8; 20];
    let mut magnitude = value.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[start..]);
}

/// Writes a power with one decimal (`5120.5`, `-3.0`).
fn write_tenths(out: &mut Vec<u8>, value: f32) {
    let tenths = if value.is_finite() {
        (f64::from(value) * 10.0).round() as i64
    } else {
        0
    };
    if tenths < 0 {
        out.push(b'-');
    }
    write_integer(out, tenths.abs() / 10);
    out.push(b'.');
    out.push(b'0' + (tenths.abs() % 10) as u8);
}

/// Writes one reading object; `meter_id` is included for gateway elements.
pub(crate) fn write_reading(
    out: &mut Vec<u8>,
    meter_id: Option<&str>,
    ts: &str,
    energy_wh: i64,
    power_w: f32,
) {
    if let Some(id) = meter_id {
        // Identifiers are `[A-Za-z0-9._-]`: nothing to escape.
        out.extend_from_slice(b"{\"meter_id\":\"");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\",\"ts\":\"");
    } else {
        out.extend_from_slice(b"{\"ts\":\"");
    }
    out.extend_from_slice(ts.as_bytes());
    out.extend_from_slice(b"\",\"energy_wh\":");
    write_integer(out, energy_wh);
    out.extend_from_slice(b",\"power_w\":");
    write_tenths(out, power_w);
    out.push(b'}');
}

/// The payload of a single meter's topic.
pub(crate) fn meter_payload(ts: &str, energy_wh: i64, power_w: f32) -> Vec<u8> {
    let mut out = Vec::with_capacity(72);
    write_reading(&mut out, None, ts, energy_wh, power_w);
    out
}

/// One element of a gateway array.
pub(crate) struct GatewayElement<'a> {
    pub meter_id: &'a str,
    pub ts: &'a str,
    pub energy_wh: i64,
    pub power_w: f32,
}

/// The payload of a gateway's topic: an array of readings, each naming its meter.
pub(crate) fn gateway_payload(elements: &[GatewayElement<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + elements.len() * 112);
    out.push(b'[');
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_reading(&mut out, Some(e.meter_id), e.ts, e.energy_wh, e.power_w);
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_core::reading::{parse_gateway_payload, parse_meter_payload, ReadingBounds};
    use gridwatch_core::MeterId;

    #[test]
    fn payloads_parse_with_the_core_parsers() {
        let at: DateTime<Utc> = "2025-10-01T00:15:00Z".parse().expect("time");
        let ts = timestamp(at);
        assert_eq!(ts, "2025-10-01T00:15:00Z");
        let meter = MeterId::parse("M-000001").expect("id");
        let reading = parse_meter_payload(
            &meter,
            &meter_payload(&ts, 123_456_789, 5120.54),
            &ReadingBounds::unbounded(),
        )
        .expect("valid");
        assert_eq!(reading.energy_wh, 123_456_789);
        assert_eq!(reading.ts, at);
        let batch = gateway_payload(&[
            GatewayElement {
                meter_id: "M-000001",
                ts: &ts,
                energy_wh: 1,
                power_w: -3.0,
            },
            GatewayElement {
                meter_id: "M-000002",
                ts: &ts,
                energy_wh: 2,
                power_w: f32::NAN,
            },
        ]);
        let elements =
            parse_gateway_payload(&batch, 500, &ReadingBounds::unbounded()).expect("array");
        assert_eq!(elements.len(), 2);
        assert!(elements.iter().all(|e| e.result.is_ok()));
    }

    #[test]
    fn numbers_are_written_as_json_numbers() {
        let mut out = Vec::new();
        write_reading(&mut out, Some("M-1"), "T", -42, -0.04);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"meter_id":"M-1","ts":"T","energy_wh":-42,"power_w":0.0}"#
        );
        out.clear();
        write_reading(&mut out, None, "T", 1_234_567_890_123, 5120.56);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"ts":"T","energy_wh":1234567890123,"power_w":5120.6}"#
        );
        out.clear();
        write_tenths(&mut out, -3.25);
        assert_eq!(out, b"-3.3");
    }
}
