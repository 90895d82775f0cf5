//! Standard load profiles as shapes: relative power (1 = the profile's yearly mean) at a local
//! time of a given day.
//!
//! A standard load profile is the average of many consumers of a kind, so it is smooth; the
//! household, commercial and industrial models add each consumer's individuality around it. The
//! shapes are the project's own parametric model (`profile_data.rs`), tabulated once as hourly
//! means.

use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};

use super::profile_data::{self, MonthlyTable, SeasonalTable};
use crate::calendar::{self, DayType, Season};

/// The kinds of load shape the simulator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StandardProfile {
    /// Households, by month and day type, with a smooth seasonal level over the year.
    Household,
    /// Commerce in general (shops, services), by month and day type.
    Commerce,
    /// Offices and workshops open on weekdays 8-18, by season and day type.
    Office,
    /// Bakeries baking before dawn, by season and day type.
    Bakery,
}

/// Where a day sits in the calendar, as the profiles see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProfileDay {
    /// Month, 0 for January.
    pub month0: usize,
    /// Season (winter, transition, summer).
    pub season: Season,
    /// Day type.
    pub day_type: DayType,
    /// Day of the year, 1 for 1 January.
    pub day_of_year: u32,
}

/// Year over which the shapes are normalised (not a leap year; holidays as in Kazakhstan).
const NORMALISATION_YEAR: i32 = 2025;

/// The model's tables, computed once.
struct Tables {
    household: MonthlyTable,
    commerce: MonthlyTable,
    office: SeasonalTable,
    bakery: SeasonalTable,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| Tables {
        household: profile_data::household(),
        commerce: profile_data::commerce(),
        office: profile_data::office(),
        bakery: profile_data::bakery(),
    })
}

impl StandardProfile {
    const ALL: [StandardProfile; 4] = [
        StandardProfile::Household,
        StandardProfile::Commerce,
        StandardProfile::Office,
        StandardProfile::Bakery,
    ];

    /// The table's day of 24 hourly values.
    fn hours(self, day: &ProfileDay) -> &'static [f32; 24] {
        let day_type = day.day_type as usize;
        let tables = tables();
        match self {
            StandardProfile::Household => &monthly(&tables.household, day.month0)[day_type],
            StandardProfile::Commerce => &monthly(&tables.commerce, day.month0)[day_type],
            StandardProfile::Office => &seasonal(&tables.office, day.season)[day_type],
            StandardProfile::Bakery => &seasonal(&tables.bakery, day.season)[day_type],
        }
    }

    /// The profile's value in its own unit, interpolated linearly between hour midpoints.
    fn raw(self, day: &ProfileDay, local_hour: f64) -> f64 {
        let hours = self.hours(day);
        let position = local_hour.rem_euclid(24.0) - 0.5;
        let below = position.floor();
        let weight = position - below;
        let hour_below = (below as i64).rem_euclid(24) as usize;
        let hour_above = (hour_below + 1) % 24;
        let value =
            (1.0 - weight) * f64::from(hours[hour_below]) + weight * f64::from(hours[hour_above]);
        match self {
            StandardProfile::Household => value * profile_data::household_level(day.day_of_year),
            _ => value,
        }
    }

    /// Relative power at `local_hour` of `day`: 1 is the profile's mean over a year.
    pub(crate) fn relative(self, day: &ProfileDay, local_hour: f64) -> f64 {
        self.raw(day, local_hour) / yearly_means()[self as usize]
    }
}

fn monthly(table: &MonthlyTable, month0: usize) -> &[[f32; 24]; 3] {
    &table[month0.min(11)]
}

fn seasonal(table: &SeasonalTable, season: Season) -> &[[f32; 24]; 3] {
    &table[season as usize]
}

/// Yearly mean of each profile's raw values, computed once.
fn yearly_means() -> &'static [f64; 4] {
    static MEANS: OnceLock<[f64; 4]> = OnceLock::new();
    MEANS.get_or_init(|| {
        let mut means = [1.0; 4];
        for profile in StandardProfile::ALL {
            let mut sum = 0.0;
            let mut count = 0.0;
            let mut date = NaiveDate::from_ymd_opt(NORMALISATION_YEAR, 1, 1);
            while let Some(day) = date.filter(|d| d.year() == NORMALISATION_YEAR) {
                let profile_day = ProfileDay {
                    month0: day.month0() as usize,
                    season: calendar::season(day),
                    day_type: calendar::day_type(day),
                    day_of_year: day.ordinal(),
                };
                for hour in 0..24 {
                    sum += profile.raw(&profile_day, f64::from(hour) + 0.5);
                    count += 1.0;
                }
                date = day.succ_opt();
            }
            if sum > 0.0 {
                means[profile as usize] = sum / count;
            }
        }
        means
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(month0: usize, day_type: DayType) -> ProfileDay {
        ProfileDay {
            month0,
            season: if !(2..=9).contains(&month0) {
                Season::Winter
            } else {
                Season::Summer
            },
            day_type,
            day_of_year: month0 as u32 * 30 + 15,
        }
    }

    #[test]
    fn household_profile_peaks_in_the_evening_and_is_higher_in_winter() {
        let january = day(0, DayType::Workday);
        let evening = StandardProfile::Household.relative(&january, 18.5);
        let night = StandardProfile::Household.relative(&january, 3.5);
        assert!(evening / night > 2.5, "{evening} / {night}");
        let july = day(6, DayType::Workday);
        let mean = |d: &ProfileDay| {
            (0..24)
                .map(|h| StandardProfile::Household.relative(d, f64::from(h) + 0.5))
                .sum::<f64>()
                / 24.0
        };
        assert!(mean(&january) > mean(&july) * 1.15);
        assert!((0.7..1.4).contains(&mean(&january)));
    }

    #[test]
    fn offices_are_closed_on_sundays_and_bakeries_bake_before_dawn() {
        let workday = day(0, DayType::Workday);
        let sunday = day(0, DayType::SundayOrHoliday);
        assert!(
            StandardProfile::Office.relative(&workday, 10.5)
                > 8.0 * StandardProfile::Office.relative(&sunday, 10.5)
        );
        assert!(
            StandardProfile::Bakery.relative(&workday, 5.5)
                > 3.0 * StandardProfile::Bakery.relative(&workday, 22.5)
        );
    }

    #[test]
    fn interpolation_is_continuous_across_hours() {
        let d = day(3, DayType::Saturday);
        for quarter in 0..96 {
            let h = f64::from(quarter) / 4.0;
            let jump = (StandardProfile::Commerce.relative(&d, h + 0.01)
                - StandardProfile::Commerce.relative(&d, h))
            .abs();
            assert!(jump < 0.05, "at {h}: {jump}");
        }
    }
}
