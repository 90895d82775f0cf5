//! A region's local days (docs/CONTRACT.md section 1): daily analyses, daily profiles and the
//! days in evidence start at local midnight in the region's IANA time zone. A day is 24 hours
//! except where daylight saving time changes (23 or 25), and a zone whose midnight does not
//! exist on some day (a change at 00:00) starts that day at the first local time that does.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
pub use chrono_tz::Tz;

/// The IANA time zone `name` names (`Asia/Almaty`, `UTC`), or `None`.
pub fn zone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

/// The local date of `t` in `zone`.
pub fn local_date(zone: Tz, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&zone).date_naive()
}

/// The instant local `date` begins in `zone`.
pub fn day_start(zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    // A gap at midnight: the day begins when the clocks resume (at most a few hours later).
    (0..=4 * 6)
        .find_map(|quarter| {
            zone.from_local_datetime(&(midnight + Duration::minutes(15 * quarter)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| midnight.and_utc())
}

/// Start of the local day containing `t`.
pub fn start_of_day(zone: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    day_start(zone, local_date(zone, t))
}

/// Start of the local day after the one containing `t`.
pub fn start_of_next_day(zone: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    let date = local_date(zone, t);
    date.succ_opt()
        .map_or(t + Duration::days(1), |next| day_start(zone, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn a_fixed_offset_zone_starts_its_days_at_local_midnight() {
        let almaty: Tz = "Asia/Almaty".parse().expect("zone");
        // UTC+5 since March 2024.
        assert_eq!(
            start_of_day(almaty, t("2025-10-01T20:00:00Z")),
            t("2025-10-01T19:00:00Z")
        );
        assert_eq!(
            start_of_day(almaty, t("2025-10-01T18:59:59Z")),
            t("2025-09-30T19:00:00Z")
        );
        assert_eq!(
            start_of_next_day(almaty, t("2025-10-01T18:59:59Z")),
            t("2025-10-01T19:00:00Z")
        );
    }

    #[test]
    fn daylight_saving_days_last_23_and_25_hours() {
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        let spring = start_of_next_day(berlin, t("2025-03-30T01:00:00Z"))
            - start_of_day(berlin, t("2025-03-30T01:00:00Z"));
        let autumn = start_of_next_day(berlin, t("2025-10-26T01:00:00Z"))
            - start_of_day(berlin, t("2025-10-26T01:00:00Z"));
        assert_eq!(spring, Duration::hours(23));
        assert_eq!(autumn, Duration::hours(25));
    }

    #[test]
    fn utc_days_are_utc_days() {
        assert_eq!(
            start_of_day(chrono_tz::UTC, t("2025-10-01T23:59:00Z")),
            t("2025-10-01T00:00:00Z")
        );
    }
}
