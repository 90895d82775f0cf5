//! Local time, day types and what every load needs to know about an interval.
//!
//! Loads follow local civil time (people wake at 7 local, not 7 UTC), while readings are labelled
//! in UTC. The clock turns an interval's index into a [`StepContext`] that every model shares:
//! local hour, day type (workday, Saturday, Sunday or holiday), season, temperature, dusk and
//! dawn.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};

use crate::config::SimConfig;
use crate::sun;
use crate::weather::Weather;

/// Public holidays of Kazakhstan with a fixed date (month, day). Loads treat them as Sundays,
/// as BDEW does with German holidays. Kurban Ait moves with the lunar calendar and is left out.
const KAZAKHSTAN_HOLIDAYS: [(u32, u32); 15] = [
    (1, 1),   // New Year
    (1, 2),   // New Year
    (1, 7),   // Orthodox Christmas
    (3, 8),   // International Women's Day
    (3, 21),  // Nauryz
    (3, 22),  // Nauryz
    (3, 23),  // Nauryz
    (5, 1),   // Unity Day
    (5, 7),   // Defender of the Fatherland Day
    (5, 9),   // Victory Day
    (7, 6),   // Capital Day
    (8, 30),  // Constitution Day
    (10, 25), // Republic Day
    (12, 16), // Independence Day
    (12, 17), // Independence Day (second day until 2022, still a common day off)
];

/// The three day types of the BDEW standard load profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DayType {
    /// Monday to Friday.
    Workday = 0,
    /// Saturday.
    Saturday = 1,
    /// Sunday or public holiday.
    SundayOrHoliday = 2,
}

/// The three seasons of the 1999 BDEW profiles (G1, G5 and the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Season {
    /// 1 November to 20 March.
    Winter = 0,
    /// 21 March to 14 May and 15 September to 31 October.
    Transition = 1,
    /// 15 May to 14 September.
    Summer = 2,
}

/// What every model knows about one interval.
#[derive(Debug, Clone)]
pub(crate) struct StepContext {
    /// The interval's index since the start of the run.
    pub index: u64,
    /// The interval's length in hours.
    pub hours: f64,
    /// Local time of the interval's start, hours since local midnight.
    pub local_start_hour: f64,
    /// Local time of the interval's midpoint, hours since local midnight of the start's date.
    pub local_mid_hour: f64,
    /// Local date of the interval's start, as days since 1970-01-01 (to notice a new day).
    pub local_day: i64,
    /// Day type of the local date.
    pub day_type: DayType,
    /// Whether the local date is a public holiday (its day type is then Sunday's).
    pub holiday: bool,
    /// Month of the local date, 0 for January.
    pub month0: usize,
    /// Day of the year of the local date, 1 for 1 January.
    pub day_of_year: u32,
    /// Season of the local date.
    pub season: Season,
    /// Outdoor temperature, °C.
    pub temperature_c: f64,
    /// Outdoor temperature smoothed over about half a day: what a building's heating follows.
    pub smoothed_temperature_c: f64,
    /// Mean temperature of the local day, °C (a day-ahead forecast for planners).
    pub day_mean_temperature_c: f64,
    /// Local time of sunrise on the local date, hours.
    pub sunrise_local_hour: f64,
    /// Local time of sunset on the local date, hours.
    pub sunset_local_hour: f64,
}

/// Turns interval indices into times and contexts.
#[derive(Debug)]
pub(crate) struct Clock {
    start: DateTime<Utc>,
    step_minutes: u32,
    intervals: u64,
    utc_offset_minutes: i32,
    latitude_deg: f64,
    longitude_deg: f64,
    weather: Weather,
}

impl Clock {
    pub(crate) fn new(config: &SimConfig) -> Clock {
        let intervals_per_day = u64::from(24 * 60 / config.interval_minutes);
        let intervals = u64::from(config.days) * intervals_per_day;
        let mut clock = Clock {
            start: config.start,
            step_minutes: config.interval_minutes,
            intervals,
            utc_offset_minutes: config.utc_offset_minutes,
            latitude_deg: config.climate.latitude_deg,
            longitude_deg: config.climate.longitude_deg,
            weather: Weather::empty(),
        };
        clock.weather = Weather::generate(config, &clock);
        clock
    }

    /// Intervals in the run.
    pub(crate) fn intervals(&self) -> u64 {
        self.intervals
    }

    /// Minutes in an interval.
    pub(crate) fn step_minutes(&self) -> u32 {
        self.step_minutes
    }

    /// Hours in an interval.
    pub(crate) fn step_hours(&self) -> f64 {
        f64::from(self.step_minutes) / 60.0
    }

    /// Intervals in a day.
    pub(crate) fn intervals_per_day(&self) -> u64 {
        u64::from(24 * 60 / self.step_minutes)
    }

    /// Start of the run.
    pub(crate) fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// Start of interval `index` (may be past the run's end, for look-ahead).
    pub(crate) fn interval_start(&self, index: i64) -> DateTime<Utc> {
        self.start + Duration::minutes(index * i64::from(self.step_minutes))
    }

    /// End of interval `index`: the nominal time of its readings.
    pub(crate) fn interval_end(&self, index: u64) -> DateTime<Utc> {
        self.interval_start(index as i64 + 1)
    }

    /// End of the run.
    pub(crate) fn end(&self) -> DateTime<Utc> {
        self.interval_start(self.intervals as i64)
    }

    /// The first interval that starts at or after `hours` into the run.
    pub(crate) fn index_after_hours(&self, hours: f64) -> u64 {
        let minutes = (hours.max(0.0) * 60.0).ceil();
        (minutes / f64::from(self.step_minutes)).ceil() as u64
    }

    /// Local date and time of a UTC instant.
    pub(crate) fn local(&self, at: DateTime<Utc>) -> chrono::NaiveDateTime {
        at.naive_utc() + Duration::minutes(i64::from(self.utc_offset_minutes))
    }

    /// UTC offset in hours.
    pub(crate) fn utc_offset_hours(&self) -> f64 {
        f64::from(self.utc_offset_minutes) / 60.0
    }

    /// Everything a model needs about interval `index`.
    pub(crate) fn context(&self, index: u64) -> StepContext {
        let start = self.interval_start(index as i64);
        let local_start = self.local(start);
        let date = local_start.date();
        let local_start_hour = hours_since_midnight(local_start);
        let hours = self.step_hours();
        let (sunrise_utc_h, sunset_utc_h) =
            sun::sunrise_sunset_utc_hours(date.ordinal(), self.latitude_deg, self.longitude_deg);
        let offset = self.utc_offset_hours();
        StepContext {
            index,
            hours,
            local_start_hour,
            local_mid_hour: local_start_hour + hours / 2.0,
            local_day: days_since_epoch(date),
            day_type: day_type(date),
            holiday: is_holiday(date),
            month0: date.month0() as usize,
            day_of_year: date.ordinal(),
            season: season(date),
            temperature_c: self.weather.temperature(index as i64),
            smoothed_temperature_c: self.weather.smoothed(index as i64),
            day_mean_temperature_c: self.weather.day_mean(days_since_epoch(date)),
            sunrise_local_hour: sunrise_utc_h + offset,
            sunset_local_hour: sunset_utc_h + offset,
        }
    }
}

/// Hours since midnight of a local time.
pub(crate) fn hours_since_midnight(at: chrono::NaiveDateTime) -> f64 {
    use chrono::Timelike;
    f64::from(at.num_seconds_from_midnight()) / 3600.0
}

/// Days since 1970-01-01.
pub(crate) fn days_since_epoch(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) - 719_163
}

/// Whether a local date is a public holiday.
pub(crate) fn is_holiday(date: NaiveDate) -> bool {
    KAZAKHSTAN_HOLIDAYS.contains(&(date.month(), date.day()))
}

/// The BDEW day type of a local date.
pub(crate) fn day_type(date: NaiveDate) -> DayType {
    if date.weekday() == Weekday::Sun || is_holiday(date) {
        DayType::SundayOrHoliday
    } else if date.weekday() == Weekday::Sat {
        DayType::Saturday
    } else {
        DayType::Workday
    }
}

/// The 1999 BDEW season of a local date.
pub(crate) fn season(date: NaiveDate) -> Season {
    match (date.month(), date.day()) {
        (11 | 12 | 1 | 2, _) => Season::Winter,
        (3, day) if day <= 20 => Season::Winter,
        (5, day) if day >= 15 => Season::Summer,
        (6..=8, _) => Season::Summer,
        (9, day) if day <= 14 => Season::Summer,
        _ => Season::Transition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn day_types_follow_weekends_and_holidays() {
        assert_eq!(day_type(date(2025, 1, 13)), DayType::Workday); // Monday
        assert_eq!(day_type(date(2025, 1, 18)), DayType::Saturday);
        assert_eq!(day_type(date(2025, 1, 19)), DayType::SundayOrHoliday);
        assert_eq!(day_type(date(2025, 3, 21)), DayType::SundayOrHoliday); // Nauryz, a Friday
    }

    #[test]
    fn seasons_follow_the_bdew_calendar() {
        assert_eq!(season(date(2025, 3, 20)), Season::Winter);
        assert_eq!(season(date(2025, 3, 21)), Season::Transition);
        assert_eq!(season(date(2025, 5, 15)), Season::Summer);
        assert_eq!(season(date(2025, 9, 15)), Season::Transition);
        assert_eq!(season(date(2025, 11, 1)), Season::Winter);
    }

    #[test]
    fn contexts_are_in_local_time() {
        let config = SimConfig::default(); // starts 2025-01-13T00:00Z = 05:00 local
        let clock = Clock::new(&config);
        let first = clock.context(0);
        assert!((first.local_start_hour - 5.0).abs() < 1e-9);
        assert_eq!(first.day_type, DayType::Workday);
        // Ust-Kamenogorsk in mid-January at UTC+5: sunrise about 07:20, sunset about 15:55.
        assert!(
            (first.sunrise_local_hour - 7.35).abs() < 0.3,
            "{}",
            first.sunrise_local_hour
        );
        assert!(
            (first.sunset_local_hour - 15.9).abs() < 0.3,
            "{}",
            first.sunset_local_hour
        );
        assert_eq!(clock.intervals(), 7 * 96);
    }
}
