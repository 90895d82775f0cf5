//! Per-meter energy per window, from cumulative registers.
//!
//! A register is read at irregular times (clocks drift, messages are lost, some arrive late);
//! the energy of a window is the register at its end minus the register at its start, each
//! interpolated linearly between the nearest readings on either side. A lost message therefore
//! loses no energy: the next reading carries it, and interpolation spreads it over the gap.
//! Gaps longer than `max_gap` are not bridged (the window is unknown, not zero).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::window::Window;

/// One reading of a cumulative register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterReading {
    /// When it was read.
    pub ts: DateTime<Utc>,
    /// The register, in Wh.
    pub energy_wh: i64,
}

/// A meter's energy in one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowEnergy {
    /// Energy in Wh (negative where the register ran backwards); `None` when a boundary could
    /// not be read or interpolated.
    pub energy_wh: Option<f64>,
    /// Whether a boundary was interpolated rather than read.
    pub interpolated: bool,
    /// Whether the register decreased between two readings touching this window: tamper
    /// evidence (a register never runs backwards on its own).
    pub backwards: bool,
}

/// The register at `at`, read or interpolated from `readings` (sorted by time), bridging at most
/// `max_gap` between the readings around it. Returns (value, interpolated).
pub fn register_at(
    readings: &[RegisterReading],
    at: DateTime<Utc>,
    max_gap: Duration,
) -> Option<(f64, bool)> {
    register_near(readings, at, max_gap, Duration::zero())
}

/// As [`register_at`], with a reading within `tolerance` of `at` counting as read there: the
/// value is still interpolated to `at` (a head-end that stamps its poll time, seconds after the
/// boundary, moves a few seconds' energy between neighbouring windows, which interpolation
/// undoes), but it is not flagged, so it carries no interpolation error into the balance.
pub fn register_near(
    readings: &[RegisterReading],
    at: DateTime<Utc>,
    max_gap: Duration,
    tolerance: Duration,
) -> Option<(f64, bool)> {
    let after = readings.partition_point(|r| r.ts < at);
    if let Some(exact) = readings.get(after).filter(|r| r.ts == at) {
        return Some((exact.energy_wh as f64, false));
    }
    let next = readings.get(after)?;
    let previous = readings.get(after.checked_sub(1)?)?;
    let span = next.ts - previous.ts;
    if span > max_gap || span <= Duration::zero() {
        return None;
    }
    let fraction = (at - previous.ts).num_milliseconds() as f64 / span.num_milliseconds() as f64;
    let value = previous.energy_wh as f64 + fraction * (next.energy_wh - previous.energy_wh) as f64;
    let near = (at - previous.ts) <= tolerance || (next.ts - at) <= tolerance;
    Some((value, !near))
}

/// The energy of each of `windows` (sorted, contiguous or not) from `readings` (sorted by time;
/// readings outside the windows are used for interpolation).
pub fn window_energies(
    readings: &[RegisterReading],
    windows: &[Window],
    max_gap: Duration,
) -> Vec<WindowEnergy> {
    window_energies_within(readings, windows, max_gap, Duration::zero())
}

/// As [`window_energies`], a boundary read within `tolerance` counting as read
/// ([`register_near`]).
pub fn window_energies_within(
    readings: &[RegisterReading],
    windows: &[Window],
    max_gap: Duration,
    tolerance: Duration,
) -> Vec<WindowEnergy> {
    windows
        .iter()
        .map(|w| {
            let start = register_near(readings, w.start, max_gap, tolerance);
            let end = register_near(readings, w.end, max_gap, tolerance);
            let backwards = ran_backwards(readings, w);
            match (start, end) {
                (Some((s, si)), Some((e, ei))) => WindowEnergy {
                    energy_wh: Some(e - s),
                    interpolated: si || ei,
                    backwards,
                },
                _ => WindowEnergy {
                    energy_wh: None,
                    interpolated: false,
                    backwards,
                },
            }
        })
        .collect()
}

/// Whether two consecutive readings whose span overlaps `w` show the register decreasing.
fn ran_backwards(readings: &[RegisterReading], w: &Window) -> bool {
    let first = readings
        .partition_point(|r| r.ts < w.start)
        .saturating_sub(1);
    readings[first..]
        .windows(2)
        .take_while(|pair| pair[0].ts < w.end)
        .any(|pair| pair[1].energy_wh < pair[0].energy_wh && pair[1].ts > w.start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowSpec;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn r(ts: &str, energy_wh: i64) -> RegisterReading {
        RegisterReading {
            ts: t(ts),
            energy_wh,
        }
    }

    fn windows(from: &str, to: &str) -> Vec<Window> {
        WindowSpec::default().between(t(from), t(to))
    }

    #[test]
    fn aligned_readings_give_exact_differences() {
        let readings = [
            r("2025-10-01T00:00:00Z", 100),
            r("2025-10-01T00:15:00Z", 160),
            r("2025-10-01T00:30:00Z", 200),
        ];
        let e = window_energies(
            &readings,
            &windows("2025-10-01T00:00:00Z", "2025-10-01T00:30:00Z"),
            Duration::hours(6),
        );
        assert_eq!(e[0].energy_wh, Some(60.0));
        assert_eq!(e[1].energy_wh, Some(40.0));
        assert!(!e[0].interpolated && !e[0].backwards);
    }

    #[test]
    fn a_missed_reading_loses_no_energy() {
        // 00:15 is lost: the two windows share the 100 Wh linearly, and their sum is exact.
        let readings = [
            r("2025-10-01T00:00:00Z", 1000),
            r("2025-10-01T00:30:00Z", 1100),
        ];
        let e = window_energies(
            &readings,
            &windows("2025-10-01T00:00:00Z", "2025-10-01T00:30:00Z"),
            Duration::hours(6),
        );
        assert_eq!(e[0].energy_wh, Some(50.0));
        assert_eq!(e[1].energy_wh, Some(50.0));
        assert!(e[0].interpolated);
    }

    #[test]
    fn clock_skew_moves_energy_between_neighbours_only() {
        let readings = [
            r("2025-10-01T00:00:03Z", 1003),
            r("2025-10-01T00:15:03Z", 1903),
            r("2025-10-01T00:30:03Z", 2803),
        ];
        let e = window_energies(
            &readings,
            &windows("2025-10-01T00:15:00Z", "2025-10-01T00:30:00Z"),
            Duration::hours(6),
        );
        let v = e[0].energy_wh.expect("interpolated");
        assert!((v - 900.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn a_poll_time_stamp_within_the_tolerance_counts_as_read() {
        let readings = [
            r("2025-09-30T23:45:10Z", 120),
            r("2025-10-01T00:00:20Z", 1020),
            r("2025-10-01T00:15:40Z", 1940),
            r("2025-10-01T00:31:30Z", 2890),
        ];
        let w = windows("2025-10-01T00:00:00Z", "2025-10-01T00:30:00Z");
        let e = window_energies_within(&readings, &w, Duration::hours(6), Duration::seconds(60));
        assert!(
            !e[0].interpolated,
            "00:00:20 and 00:15:40 are within a minute"
        );
        assert!(e[1].interpolated, "00:31:30 is not");
        assert!(
            e[0].energy_wh.is_some_and(|v| (v - 900.0).abs() < 20.0),
            "{e:?}"
        );
        let strict = window_energies(&readings, &w, Duration::hours(6));
        assert!(strict[0].interpolated);
        assert_eq!(
            strict[0].energy_wh, e[0].energy_wh,
            "same value, flagged or not"
        );
    }

    #[test]
    fn gaps_longer_than_the_limit_are_unknown_not_zero() {
        let readings = [r("2025-10-01T00:00:00Z", 0), r("2025-10-01T08:00:00Z", 800)];
        let e = window_energies(
            &readings,
            &windows("2025-10-01T01:00:00Z", "2025-10-01T01:15:00Z"),
            Duration::hours(6),
        );
        assert_eq!(e[0].energy_wh, None);
        let e = window_energies(
            &readings,
            &windows("2025-10-01T01:00:00Z", "2025-10-01T01:15:00Z"),
            Duration::hours(8),
        );
        assert_eq!(e[0].energy_wh, Some(25.0));
    }

    #[test]
    fn a_register_running_backwards_is_flagged_and_shows_negative_energy() {
        let readings = [
            r("2025-10-01T00:00:00Z", 500),
            r("2025-10-01T00:15:00Z", 400),
            r("2025-10-01T00:30:00Z", 450),
        ];
        let e = window_energies(
            &readings,
            &windows("2025-10-01T00:00:00Z", "2025-10-01T00:30:00Z"),
            Duration::hours(6),
        );
        assert_eq!(e[0].energy_wh, Some(-100.0));
        assert!(e[0].backwards);
        assert!(!e[1].backwards);
    }
}
