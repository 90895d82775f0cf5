//! A meter profile's mean power per hour (or per window, for windows longer than an hour).
//!
//! Shape analyses (daily cycles, plateaus) look at hours: a quarter-hour carries a kettle or a
//! compressor cycle, an hour already shows what the premises do. Steps are aligned to UTC
//! hours, so the same hour means the same thing however the trailing period slides.

use chrono::{DateTime, Duration, Utc};

use crate::profile::MeterProfile;
use crate::stats::median;

/// Mean power per step of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSeries {
    /// Start of the first step.
    pub start: DateTime<Utc>,
    /// Length of a step, seconds (an hour, or the window length if longer).
    pub step_seconds: i64,
    /// Index in the profile of the first window of the first step.
    pub first_window: usize,
    /// Profile windows per step.
    pub windows_per_step: usize,
    /// Mean power of each step in W; `None` when fewer than half its windows are known.
    pub power_w: Vec<Option<f64>>,
}

impl StepSeries {
    /// Aggregates `profile` into steps of an hour (or of one window, if windows are longer).
    /// Leading windows before the first whole step are skipped, as is a trailing partial step.
    pub fn of(profile: &MeterProfile) -> StepSeries {
        Self::aggregate(profile, |known| {
            known.iter().sum::<f64>() / known.len() as f64
        })
    }

    /// Like [`StepSeries::of`], but each step's power is the median of its windows: one
    /// window's kettle, reboot or clock skew does not move it. For shapes, not energy.
    pub fn of_medians(profile: &MeterProfile) -> StepSeries {
        Self::aggregate(profile, |known| median(known).unwrap_or(0.0))
    }

    fn aggregate(profile: &MeterProfile, level: impl Fn(&[f64]) -> f64) -> StepSeries {
        let window_seconds = profile.spec.seconds.max(1);
        let (step_seconds, windows_per_step) =
            if window_seconds < 3600 && 3600 % window_seconds == 0 {
                (3600, (3600 / window_seconds) as usize)
            } else {
                (window_seconds, 1)
            };
        let offset = profile.start.timestamp().rem_euclid(step_seconds);
        let skip_seconds = if offset == 0 {
            0
        } else {
            step_seconds - offset
        };
        let first_window = (skip_seconds / window_seconds) as usize;
        let start = profile.start + Duration::seconds(first_window as i64 * window_seconds);
        let power_w = profile
            .energy_wh
            .get(first_window..)
            .unwrap_or(&[])
            .chunks_exact(windows_per_step)
            .map(|chunk| {
                let known: Vec<f64> = chunk.iter().flatten().copied().collect();
                (2 * known.len() >= windows_per_step)
                    .then(|| level(&known) * 3600.0 / window_seconds as f64)
            })
            .collect();
        StepSeries {
            start,
            step_seconds,
            first_window,
            windows_per_step,
            power_w,
        }
    }

    /// Steps per day.
    pub fn per_day(&self) -> usize {
        (86_400 / self.step_seconds.max(1)).max(1) as usize
    }

    /// Length of a step in hours.
    pub fn step_hours(&self) -> f64 {
        self.step_seconds as f64 / 3600.0
    }

    /// Start of step `i`.
    pub fn time(&self, i: usize) -> DateTime<Utc> {
        self.start + Duration::seconds(i as i64 * self.step_seconds)
    }

    /// Position of step `i` in the UTC day (0 = the step starting at midnight).
    pub fn slot_of_day(&self, i: usize) -> usize {
        let seconds = self.time(i).timestamp().rem_euclid(86_400);
        (seconds / self.step_seconds.max(1)) as usize % self.per_day()
    }

    /// The profile windows of step `i`.
    pub fn windows(&self, i: usize) -> std::ops::Range<usize> {
        let first = self.first_window + i * self.windows_per_step;
        first..first + self.windows_per_step
    }

    /// The series' whole UTC days, from its first step at midnight.
    pub fn whole_days(&self) -> WholeDays {
        let first = (0..self.power_w.len())
            .find(|i| self.slot_of_day(*i) == 0)
            .unwrap_or(self.power_w.len());
        WholeDays {
            first,
            start: self.time(first),
            days: self.power_w[first..]
                .chunks_exact(self.per_day())
                .map(|d| d.iter().copied().collect::<Option<Vec<f64>>>())
                .collect(),
        }
    }
}

/// A [`StepSeries`]' whole UTC days.
#[derive(Debug, Clone, PartialEq)]
pub struct WholeDays {
    /// Index of the first day's first step.
    pub first: usize,
    /// Start of the first day.
    pub start: DateTime<Utc>,
    /// Each day's mean power per step, W; `None` for a day with a step unknown.
    pub days: Vec<Option<Vec<f64>>>,
}

impl WholeDays {
    /// Start of day `d`.
    pub fn at(&self, d: usize) -> DateTime<Utc> {
        self.start + Duration::days(d as i64)
    }
}

/// The mean of each of the `per_day` steps over `days`.
pub fn mean_day(days: &[&Vec<f64>], per_day: usize) -> Vec<f64> {
    (0..per_day)
        .map(|h| days.iter().map(|d| d[h]).sum::<f64>() / days.len().max(1) as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;
    use gridwatch_core::registry::MeterClass;

    #[test]
    fn quarter_hours_become_hourly_mean_power_aligned_to_utc() {
        let mut p = synth::profile("M-1", MeterClass::Household, "r", &[400.0; 10]);
        p.start += Duration::minutes(30);
        p.energy_wh[3] = None;
        let s = StepSeries::of(&p);
        assert_eq!(s.first_window, 2);
        assert_eq!(s.start.timestamp() % 3600, 0);
        assert_eq!(s.power_w, vec![Some(400.0), Some(400.0)]);
        assert_eq!(s.per_day(), 24);
        assert_eq!(s.slot_of_day(1), 2);
    }
}
