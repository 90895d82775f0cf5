//! Recent per-meter energy per window, kept in memory: what imputation, suspects and the daily
//! analyses read. A ring of the last `capacity` windows per meter, keyed by the meter's database
//! key so that a registry reload keeps it.

use std::collections::HashMap;

/// Days of the same time of day a meter's typical energy is the mean of. A fixed number rather
/// than whatever the ring holds, so that a window's imputation does not depend on how many
/// windows were evaluated after it in the same run.
pub const TYPICAL_DAYS: i64 = 14;

/// Energy per window for recent windows. Windows are numbered absolutely (window start in
/// seconds / window length), so any two processes agree on them.
pub struct MeterSeries {
    capacity: usize,
    per_day: usize,
    slots: HashMap<i32, usize>,
    energy: Vec<f32>,
    backwards: Vec<bool>,
    /// Newest window number written.
    newest: Option<i64>,
}

impl MeterSeries {
    /// A series holding `capacity` windows, `per_day` of them a day.
    pub fn new(capacity: usize, per_day: usize) -> MeterSeries {
        MeterSeries {
            capacity: capacity.max(1),
            per_day: per_day.max(1),
            slots: HashMap::new(),
            energy: Vec::new(),
            backwards: Vec::new(),
            newest: None,
        }
    }

    /// Windows held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Newest window number written.
    pub fn newest(&self) -> Option<i64> {
        self.newest
    }

    /// Oldest window number still held.
    pub fn oldest(&self) -> Option<i64> {
        self.newest.map(|n| n - self.capacity as i64 + 1)
    }

    fn slot(&mut self, meter_key: i32) -> usize {
        if let Some(&s) = self.slots.get(&meter_key) {
            return s;
        }
        let s = self.slots.len();
        self.slots.insert(meter_key, s);
        self.energy
            .extend(std::iter::repeat_n(f32::NAN, self.capacity));
        self.backwards
            .extend(std::iter::repeat_n(false, self.capacity));
        s
    }

    fn index(&self, slot: usize, window: i64) -> usize {
        slot * self.capacity + window.rem_euclid(self.capacity as i64) as usize
    }

    /// Moves the newest window forward to `window`, forgetting what falls out of the ring.
    fn advance(&mut self, window: i64) {
        let from = match self.newest {
            Some(n) if window <= n => return,
            Some(n) => (n + 1).max(window - self.capacity as i64 + 1),
            None => window - self.capacity as i64 + 1,
        };
        for w in from..=window {
            let column = w.rem_euclid(self.capacity as i64) as usize;
            for slot in 0..self.slots.len() {
                self.energy[slot * self.capacity + column] = f32::NAN;
                self.backwards[slot * self.capacity + column] = false;
            }
        }
        self.newest = Some(window);
    }

    /// Records a meter's energy in a window (ignored if older than the ring holds).
    pub fn set(&mut self, meter_key: i32, window: i64, energy_wh: Option<f64>, backwards: bool) {
        self.advance(window);
        if self.oldest().is_some_and(|o| window < o) {
            return;
        }
        let slot = self.slot(meter_key);
        let i = self.index(slot, window);
        self.energy[i] = energy_wh.map_or(f32::NAN, |e| e as f32);
        self.backwards[i] = backwards;
    }

    /// A meter's energy in a window, if held and known.
    pub fn get(&self, meter_key: i32, window: i64) -> Option<f64> {
        let (oldest, newest) = (self.oldest()?, self.newest?);
        if window < oldest || window > newest {
            return None;
        }
        let slot = *self.slots.get(&meter_key)?;
        let e = self.energy[self.index(slot, window)];
        (!e.is_nan()).then_some(f64::from(e))
    }

    /// Whether a meter's register ran backwards in a window.
    pub fn backwards(&self, meter_key: i32, window: i64) -> bool {
        let Some(&slot) = self.slots.get(&meter_key) else {
            return false;
        };
        match (self.oldest(), self.newest) {
            (Some(o), Some(n)) if window >= o && window <= n => {
                self.backwards[self.index(slot, window)]
            }
            _ => false,
        }
    }

    /// How much a meter's energy may change from one window to the next: the 90th percentile
    /// of its window-to-window changes over the day before `window` (Wh). Half of it is the
    /// error scale of a window whose boundary was interpolated across a missed reading: large
    /// for a factory changing shifts, small for a steady farm.
    pub fn variability(&self, meter_key: i32, window: i64) -> Option<f64> {
        let mut changes: Vec<f64> = Vec::new();
        let mut previous: Option<f64> = None;
        for k in (window - self.per_day as i64)..window {
            let current = self.get(meter_key, k);
            if let (Some(a), Some(b)) = (previous, current) {
                changes.push((b - a).abs());
            }
            previous = current;
        }
        if changes.len() < 4 {
            return None;
        }
        changes.sort_by(f64::total_cmp);
        Some(changes[(changes.len() - 1) * 9 / 10])
    }

    /// How far `energy` (an interpolated window's) lies from the nearest different energy of
    /// the meter in the `reach` windows before `window`: the level before a gap, against the
    /// gap's even share. Interpolation spreads a gap's energy evenly; a change of level inside
    /// it (a plant's shift starting) is what it cannot place, and the share differs from the
    /// level before by about half that change, as each window's error may.
    pub fn change_before(
        &self,
        meter_key: i32,
        window: i64,
        energy: f64,
        reach: i64,
    ) -> Option<f64> {
        (1..=reach)
            .filter_map(|d| self.get(meter_key, window - d))
            .map(|v| (v - energy).abs())
            .find(|change| *change > 1.0)
    }

    /// A meter's usual energy for `window`: the mean of the same time of day over the
    /// [`TYPICAL_DAYS`] before, else the mean of its last known windows.
    pub fn typical(&self, meter_key: i32, window: i64) -> Option<f64> {
        let same_time: Vec<f64> = (1..=TYPICAL_DAYS)
            .filter_map(|d| self.get(meter_key, window - d * self.per_day as i64))
            .collect();
        if same_time.len() >= 2 {
            return Some(same_time.iter().sum::<f64>() / same_time.len() as f64);
        }
        let recent: Vec<f64> = (1..=16)
            .filter_map(|d| self.get(meter_key, window - d))
            .collect();
        (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_recent_windows_and_forgets_old_ones() {
        let mut s = MeterSeries::new(8, 4);
        for w in 0..10 {
            s.set(7, w, Some(w as f64), false);
        }
        assert_eq!(s.get(7, 9), Some(9.0));
        assert_eq!(s.get(7, 2), Some(2.0));
        assert_eq!(s.get(7, 1), None, "fell out of the ring");
        assert_eq!(s.get(8, 9), None, "unknown meter");
        // Same time of day (every 4 windows): 5 and 1 are... 1 is gone, 5 is there, 9 too.
        assert_eq!(s.typical(7, 13), Some(7.0), "mean of 9 and 5");
        s.set(7, 20, None, true);
        assert!(s.backwards(7, 20));
        assert_eq!(s.get(7, 9), None, "advancing cleared the ring");
    }
}
