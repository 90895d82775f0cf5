//! What an anomaly's evidence is made of: panels of time series, in the units the database
//! keeps (Wh per interval, or percent), and the arithmetic that turns cumulative registers
//! into energy per interval. No I/O here.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// One value of a series at the start of its interval; `None` where there is no data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// The interval's start (UTC).
    pub t: DateTime<Utc>,
    /// The value, in the panel's unit.
    pub value: Option<f64>,
}

/// A named series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// A stable name for programs (`input_wh`, `metered_wh`, ...).
    pub key: &'static str,
    /// What it is, in plain words (the chart's legend).
    pub label: String,
    /// A reference line (expected, capacity) rather than a measurement.
    pub reference: bool,
    /// Its values, oldest first.
    pub points: Vec<Point>,
}

/// The range within which a series is normal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    /// What it is, in plain words.
    pub label: String,
    /// Its bounds per interval.
    pub points: Vec<BandPoint>,
}

/// The bounds of a band for one interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BandPoint {
    /// The interval's start (UTC).
    pub t: DateTime<Utc>,
    /// Lower bound.
    pub low: f64,
    /// Upper bound (above it, the detector counts a window as suspicious).
    pub high: f64,
}

/// What a panel's values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Energy over each interval, in Wh.
    EnergyPerInterval,
    /// A cumulative register, in Wh.
    Register,
    /// A share, in percent.
    Percent,
}

impl Quantity {
    /// The unit of the panel's values.
    pub fn unit(self) -> &'static str {
        match self {
            Quantity::EnergyPerInterval | Quantity::Register => "Wh",
            Quantity::Percent => "%",
        }
    }
}

/// One chart of the evidence: series sharing an axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Panel {
    /// What the panel shows, in plain words.
    pub title: String,
    /// What its values measure.
    pub quantity: Quantity,
    /// `Wh` or `%`.
    pub unit: &'static str,
    /// The length of each interval, in seconds.
    pub interval_seconds: i64,
    /// The series.
    pub series: Vec<Series>,
    /// The normal range, where there is one.
    pub band: Option<Band>,
}

impl Panel {
    /// An empty panel.
    pub fn new(title: impl Into<String>, quantity: Quantity, interval_seconds: i64) -> Panel {
        Panel {
            title: title.into(),
            quantity,
            unit: quantity.unit(),
            interval_seconds,
            series: Vec::new(),
            band: None,
        }
    }

    /// Adds a series.
    pub fn with(
        mut self,
        key: &'static str,
        label: impl Into<String>,
        points: Vec<Point>,
    ) -> Panel {
        self.series.push(Series {
            key,
            label: label.into(),
            reference: false,
            points,
        });
        self
    }

    /// Adds a reference series.
    pub fn with_reference(
        mut self,
        key: &'static str,
        label: impl Into<String>,
        points: Vec<Point>,
    ) -> Panel {
        self.series.push(Series {
            key,
            label: label.into(),
            reference: true,
            points,
        });
        self
    }

    /// Whether any series holds a value.
    pub fn has_data(&self) -> bool {
        self.series
            .iter()
            .any(|s| s.points.iter().any(|p| p.value.is_some()))
            || self.band.as_ref().is_some_and(|b| !b.points.is_empty())
    }
}

/// The period the anomaly covers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Flagged {
    /// When the condition started.
    pub started_at: DateTime<Utc>,
    /// When it stopped; `None` while it lasts.
    pub ended_at: Option<DateTime<Utc>>,
}

/// An anomaly's evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// The anomaly's id.
    pub anomaly: String,
    /// Its kind.
    pub kind: String,
    /// What is shown, in plain words.
    pub title: String,
    /// How to read it, in plain words.
    pub explanation: String,
    /// The detector's own summary, if it wrote one.
    pub summary: Option<String>,
    /// The period shown, from (UTC).
    pub from: DateTime<Utc>,
    /// The period shown, to (UTC).
    pub to: DateTime<Utc>,
    /// The anomaly's own period, highlighted in the chart.
    pub flagged: Flagged,
    /// The offset local times are shown in (`+05:00`).
    pub tz: String,
    /// The charts.
    pub panels: Vec<Panel>,
    /// What is missing or was cut, in plain words.
    pub notes: Vec<String>,
}

/// `[from, from + n x step)` as interval starts.
pub fn grid(from: DateTime<Utc>, step_seconds: i64, n: usize) -> Vec<DateTime<Utc>> {
    (0..n as i64)
        .map(|i| from + Duration::seconds(i * step_seconds))
        .collect()
}

/// `t` rounded down to a multiple of `step_seconds` since the epoch.
pub fn floor(t: DateTime<Utc>, step_seconds: i64) -> DateTime<Utc> {
    let secs = t.timestamp().div_euclid(step_seconds) * step_seconds;
    DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

/// `t` rounded up to a multiple of `step_seconds` since the epoch.
pub fn ceil(t: DateTime<Utc>, step_seconds: i64) -> DateTime<Utc> {
    let down = floor(t, step_seconds);
    if down == t {
        t
    } else {
        down + Duration::seconds(step_seconds)
    }
}

/// Energy per bucket of `n` buckets of `step_seconds` from `from`, from one meter's cumulative
/// register readings `(ts, energy_wh)` in time order. The energy between two consecutive
/// readings is spread over the time between them, so a missed reading or a coarser reporting
/// interval moves no energy between buckets. A register that ran backwards gives a negative
/// value: that is evidence, not an error. Buckets no pair of readings covers are `None`.
pub fn energy_per_bucket(
    readings: &[(DateTime<Utc>, i64)],
    from: DateTime<Utc>,
    step_seconds: i64,
    n: usize,
) -> Vec<Option<f64>> {
    let mut out: Vec<Option<f64>> = vec![None; n];
    let step = step_seconds.max(1) as f64;
    let origin = from.timestamp_micros() as f64 / 1e6;
    for pair in readings.windows(2) {
        let (t0, e0) = pair[0];
        let (t1, e1) = pair[1];
        let (s0, s1) = (
            t0.timestamp_micros() as f64 / 1e6 - origin,
            t1.timestamp_micros() as f64 / 1e6 - origin,
        );
        if s1 <= s0 {
            continue;
        }
        let delta = (e1 - e0) as f64;
        let first = (s0 / step).floor().max(0.0) as usize;
        let last = ((s1 / step).ceil() as usize).min(n);
        for (i, slot) in out.iter_mut().enumerate().take(last).skip(first) {
            let (b0, b1) = (i as f64 * step, (i + 1) as f64 * step);
            let overlap = s1.min(b1) - s0.max(b0);
            if overlap > 0.0 {
                *slot = Some(slot.unwrap_or(0.0) + delta * overlap / (s1 - s0));
            }
        }
    }
    out
}

/// Adds `b` into `a`, bucket by bucket (`None` + x = x).
pub fn add_into(a: &mut [Option<f64>], b: &[Option<f64>]) {
    for (x, y) in a.iter_mut().zip(b) {
        if let Some(y) = y {
            *x = Some(x.unwrap_or(0.0) + y);
        }
    }
}

/// Zips interval starts and values into points.
pub fn points(starts: &[DateTime<Utc>], values: &[Option<f64>]) -> Vec<Point> {
    starts
        .iter()
        .zip(values)
        .map(|(t, v)| Point { t: *t, value: *v })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn register_differences_are_spread_over_their_hours() {
        let readings = [
            (at("2025-10-01T00:00:00Z"), 1000),
            (at("2025-10-01T00:30:00Z"), 1500),
            (at("2025-10-01T01:30:00Z"), 2500),
            (at("2025-10-01T01:45:00Z"), 2400),
        ];
        let e = energy_per_bucket(&readings, at("2025-10-01T00:00:00Z"), 3600, 3);
        assert_eq!(e[0], Some(1000.0));
        // 500 of the second pair, then a register that ran back by 100.
        assert_eq!(e[1], Some(400.0));
        assert_eq!(e[2], None);
    }

    #[test]
    fn readings_before_the_grid_count_only_for_their_overlap() {
        let readings = [
            (at("2025-09-30T23:00:00Z"), 0),
            (at("2025-10-01T01:00:00Z"), 2000),
        ];
        let e = energy_per_bucket(&readings, at("2025-10-01T00:00:00Z"), 3600, 2);
        assert_eq!(e, vec![Some(1000.0), None]);
        assert_eq!(
            energy_per_bucket(&readings[..1], readings[0].0, 3600, 2),
            vec![None, None]
        );
    }

    #[test]
    fn rounding_to_the_grid() {
        let t = at("2025-10-01T10:17:00Z");
        assert_eq!(floor(t, 900), at("2025-10-01T10:15:00Z"));
        assert_eq!(ceil(t, 3600), at("2025-10-01T11:00:00Z"));
        assert_eq!(
            ceil(at("2025-10-01T11:00:00Z"), 3600),
            at("2025-10-01T11:00:00Z")
        );
        let mut a = vec![None, Some(1.0)];
        add_into(&mut a, &[Some(2.0), None]);
        assert_eq!(a, vec![Some(2.0), Some(1.0)]);
    }
}
