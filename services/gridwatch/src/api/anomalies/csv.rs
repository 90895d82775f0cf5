//! Anomalies as CSV (RFC 4180: comma separated, CRLF line ends, fields with a comma, quote or
//! line break in double quotes, quotes doubled), safe to open in a spreadsheet: a text cell
//! starting with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with `'`, so that
//! no spreadsheet reads it as a formula (CSV injection).

use chrono::{DateTime, SecondsFormat, Utc};

use crate::anomalies::query::Anomaly;

/// The header row's columns.
pub const COLUMNS: &[&str] = &[
    "id",
    "kind",
    "region",
    "node",
    "meter",
    "licence",
    "started_at",
    "ended_at",
    "detected_at",
    "energy_wh",
    "loss_kzt",
    "score",
    "confidence",
    "priority_kzt",
    "severity",
    "status",
    "suspects",
    "summary",
];

/// A text cell, guarded against formulas and quoted as RFC 4180 requires.
pub fn text_cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    quoted(guarded)
}

fn quoted(text: String) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn number(x: f64) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        String::new()
    }
}

/// One anomaly's row, with its line end.
pub fn row(a: &Anomaly) -> String {
    let optional = |v: &Option<String>| v.as_deref().map(text_cell).unwrap_or_default();
    let cells = [
        text_cell(&a.id),
        text_cell(&a.kind),
        optional(&a.region),
        optional(&a.node),
        optional(&a.meter),
        optional(&a.licence),
        time(a.started_at),
        a.ended_at.map(time).unwrap_or_default(),
        time(a.detected_at),
        a.energy_wh.to_string(),
        number(a.loss_kzt),
        number(a.score),
        number(a.confidence),
        number(a.priority_kzt),
        text_cell(&a.severity),
        text_cell(&a.status),
        text_cell(&a.suspects.join(" ")),
        text_cell(a.evidence["summary"].as_str().unwrap_or("")),
    ];
    let mut line = cells.join(",");
    line.push_str("\r\n");
    line
}

/// The header row, with its line end.
pub fn header() -> String {
    format!("{}\r\n", COLUMNS.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(text_cell("plain"), "plain");
        assert_eq!(text_cell("a,b"), "\"a,b\"");
        assert_eq!(text_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(text_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(text_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(text_cell("+1"), "'+1");
        assert_eq!(text_cell("-1"), "'-1");
        assert_eq!(text_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text_cell("\tx"), "'\tx");
        assert_eq!(text_cell(""), "");
        assert_eq!(number(f64::NAN), "");
        assert_eq!(number(515123.6), "515123.6");
    }
}
