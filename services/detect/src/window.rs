//! Event-time windows: fixed length, aligned to the Unix epoch (hence to UTC midnight for any
//! length dividing a day).

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// A half-open interval of event time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

/// How windows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Window length in seconds (default 900: 15 minutes).
    pub seconds: i64,
}

impl Default for WindowSpec {
    fn default() -> Self {
        WindowSpec { seconds: 900 }
    }
}

impl WindowSpec {
    /// The window length.
    pub fn length(&self) -> Duration {
        Duration::seconds(self.seconds)
    }

    /// Windows per day (96 for 15 minutes).
    pub fn per_day(&self) -> i64 {
        86_400 / self.seconds.max(1)
    }

    /// The window containing `t`.
    pub fn containing(&self, t: DateTime<Utc>) -> Window {
        let secs = t.timestamp();
        let start = secs - secs.rem_euclid(self.seconds);
        self.starting_at_epoch(start)
    }

    /// The window starting at `start_secs` (Unix seconds, assumed aligned).
    fn starting_at_epoch(&self, start_secs: i64) -> Window {
        let start = Utc
            .timestamp_opt(start_secs, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        Window {
            start,
            end: start + self.length(),
        }
    }

    /// The window after `w`.
    pub fn next(&self, w: Window) -> Window {
        Window {
            start: w.end,
            end: w.end + self.length(),
        }
    }

    /// The windows from the one containing `from` up to the last one ending at or before `to`.
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Window> {
        let mut out = Vec::new();
        let mut w = self.containing(from);
        while w.end <= to {
            out.push(w);
            w = self.next(w);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn windows_are_aligned_to_utc_quarter_hours() {
        let spec = WindowSpec::default();
        let w = spec.containing(t("2025-10-01T00:22:13Z"));
        assert_eq!(w.start, t("2025-10-01T00:15:00Z"));
        assert_eq!(w.end, t("2025-10-01T00:30:00Z"));
        assert_eq!(
            spec.containing(t("2025-10-01T00:30:00Z")).start,
            t("2025-10-01T00:30:00Z")
        );
        assert_eq!(spec.per_day(), 96);
    }

    #[test]
    fn between_lists_whole_windows_only() {
        let spec = WindowSpec::default();
        let ws = spec.between(t("2025-10-01T00:00:00Z"), t("2025-10-01T01:10:00Z"));
        assert_eq!(ws.len(), 4);
        assert_eq!(ws[3].end, t("2025-10-01T01:00:00Z"));
    }
}
