//! The simulator's daily load shapes: the project's own parametric model, tabulated as hourly
//! means.
//!
//! These shapes are authored for gridwatch. They are modelled on the qualitative features that
//! standard load profiles of households and small businesses are widely known to have (a night
//! trough, a morning and an evening peak at home, business hours in commerce and offices, baking
//! before dawn, more load in the dark and cold half of the year); no published profile table
//! value is reproduced, and every number below is a parameter of this model, chosen by hand.
//! Background reading on what such profiles are (bibliographic only, no values taken from it):
//! Meier, Fünfgeld, Adam, Schieferdecker, "Repräsentative VDEW-Lastprofile", VDEW M-28/99, and
//! BDEW, "Standardlastprofile Strom".
//!
//! Each day is built from a handful of smooth pieces of the local hour `h`:
//! - a constant floor (the load that never stops: fridges, standby, servers, cold stores);
//! - [`Window`]s: a level switched on at `open_h` and off at `close_h`, with logistic edges
//!   `ramp_h` hours wide (being awake at home, business hours, a bakehouse's shift);
//! - [`Bump`]s: Gaussian bumps `height x exp(-(h - centre_h)^2 / (2 width_h^2))`, with the hour
//!   difference taken around the clock so that an evening bump runs smoothly past midnight
//!   (breakfast, lunch, the evening peak, lighting).
//!
//! Seasons enter through a weight `s`, 1 in the darkest and coldest part of the year and 0 in
//! midsummer: monthly tables use a cosine of the month's middle peaking at the winter solstice;
//! the three-season tables use 1 (winter), 0.5 (transition) and 0 (summer). Household parameters
//! are interpolated between a winter and a summer set by `s`; the business shapes add
//! `s`-weighted lighting and heating terms.
//!
//! Units are arbitrary: `profiles.rs` normalises each shape to a yearly mean of 1 and interpolates
//! linearly between hour midpoints. Each stored value is the mean of the model over its hour.
//!
//! Layout: `[month or season][day type: workday, Saturday, Sunday or holiday][local hour]`.

use std::f64::consts::TAU;

/// Twelve months of three day types of 24 hourly values.
pub(super) type MonthlyTable = [[[f32; 24]; 3]; 12];
/// Three seasons (winter, transition, summer) of three day types of 24 hourly values.
pub(super) type SeasonalTable = [[[f32; 24]; 3]; 3];

/// Samples per hour when averaging the model over an hour.
const SAMPLES_PER_HOUR: u32 = 12;

/// A Gaussian bump of load around a time of day.
#[derive(Debug, Clone, Copy)]
struct Bump {
    /// Local hour of the bump's top.
    centre_h: f64,
    /// Standard deviation of the bump, hours (about 2.4 x this is its width at half height).
    width_h: f64,
    /// Height of the top above whatever lies below it (negative for a dip).
    height: f64,
}

impl Bump {
    fn at(&self, hour: f64) -> f64 {
        let d = (hour - self.centre_h + 12.0).rem_euclid(24.0) - 12.0;
        self.height * (-0.5 * (d / self.width_h).powi(2)).exp()
    }

    /// The same bump with its height scaled by `factor`.
    fn scaled(self, factor: f64) -> Bump {
        Bump {
            height: self.height * factor,
            ..self
        }
    }

    /// Linear blend of two bumps: `weight` 1 gives `self`, 0 gives `other`.
    fn blend(self, other: Bump, weight: f64) -> Bump {
        Bump {
            centre_h: lerp(other.centre_h, self.centre_h, weight),
            width_h: lerp(other.width_h, self.width_h, weight),
            height: lerp(other.height, self.height, weight),
        }
    }
}

/// A level switched on and off during the day, with smooth (logistic) edges. Within one day
/// (`open_h` < `close_h`, no wrap past midnight).
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Local hour at which the level is half on.
    open_h: f64,
    /// Local hour at which the level is half off again.
    close_h: f64,
    /// Steepness of the edges, hours (10 % to 90 % of an edge takes about 4.4 x this).
    ramp_h: f64,
    /// The level while fully on.
    height: f64,
}

impl Window {
    fn at(&self, hour: f64) -> f64 {
        self.height
            * logistic((hour - self.open_h) / self.ramp_h)
            * logistic((self.close_h - hour) / self.ramp_h)
    }

    /// The same window with its level scaled by `factor`.
    fn scaled(self, factor: f64) -> Window {
        Window {
            height: self.height * factor,
            ..self
        }
    }

    /// Linear blend of two windows: `weight` 1 gives `self`, 0 gives `other`.
    fn blend(self, other: Window, weight: f64) -> Window {
        Window {
            open_h: lerp(other.open_h, self.open_h, weight),
            close_h: lerp(other.close_h, self.close_h, weight),
            ramp_h: lerp(other.ramp_h, self.ramp_h, weight),
            height: lerp(other.height, self.height, weight),
        }
    }
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn lerp(a: f64, b: f64, weight: f64) -> f64 {
    a + (b - a) * weight
}

/// 24 hourly means of `shape(local hour)`.
fn hourly(shape: impl Fn(f64) -> f64) -> [f32; 24] {
    let mut hours = [0.0; 24];
    for (hour, value) in hours.iter_mut().enumerate() {
        let sum: f64 = (0..SAMPLES_PER_HOUR)
            .map(|k| shape(hour as f64 + (f64::from(k) + 0.5) / f64::from(SAMPLES_PER_HOUR)))
            .sum();
        *value = (sum / f64::from(SAMPLES_PER_HOUR)) as f32;
    }
    hours
}

/// Position of the winter solstice (about 21 December) in months since 1 January: darkness,
/// which drives lighting and the timing of the evening peak, is greatest there.
const DARKEST_MONTH_POSITION: f64 = 11.67;

/// Season weight of a month (0 for January): 1 at the darkest time of the year, 0 in midsummer.
fn month_winter_weight(month0: usize) -> f64 {
    let middle = month0 as f64 + 0.5;
    0.5 * (1.0 + (TAU * (middle - DARKEST_MONTH_POSITION) / 12.0).cos())
}

/// Season weight of the three-season tables: winter, transition, summer.
const SEASON_WINTER_WEIGHT: [f64; 3] = [1.0, 0.5, 0.0];

// ----------------------------------------------------------------------------------------------
// Households
// ----------------------------------------------------------------------------------------------

/// One day type of the household model, for one end of the year (winter or summer).
#[derive(Debug, Clone, Copy)]
struct HouseholdDay {
    /// Night floor: fridges, freezers, standby, heating pumps, a few night owls.
    floor: f64,
    /// People awake and at home: lights, screens, hot water, between getting up and bedtime.
    awake: Window,
    /// Breakfast and getting ready (kettle, coffee, showers, lights in dark mornings).
    morning: Bump,
    /// Cooking and presence around midday (small on workdays, large at weekends).
    midday: Bump,
    /// Dinner, lighting, television and laundry: the day's peak.
    evening: Bump,
}

impl HouseholdDay {
    fn blend(self, summer: HouseholdDay, winter_weight: f64) -> HouseholdDay {
        HouseholdDay {
            floor: lerp(summer.floor, self.floor, winter_weight),
            awake: self.awake.blend(summer.awake, winter_weight),
            morning: self.morning.blend(summer.morning, winter_weight),
            midday: self.midday.blend(summer.midday, winter_weight),
            evening: self.evening.blend(summer.evening, winter_weight),
        }
    }

    fn at(&self, hour: f64) -> f64 {
        self.floor
            + self.awake.at(hour)
            + self.morning.at(hour)
            + self.midday.at(hour)
            + self.evening.at(hour)
    }
}

/// Households in the depth of winter, by day type (workday, Saturday, Sunday or holiday). Dark
/// mornings and an early dusk: a marked breakfast bump and a tall evening peak around 18:30.
/// Weekends: people get up later, the morning is broader, and lunch is cooked at home.
#[rustfmt::skip]
const HOUSEHOLD_WINTER: [HouseholdDay; 3] = [
    HouseholdDay {
        floor: 0.35,
        awake: Window { open_h: 6.3, close_h: 23.0, ramp_h: 0.5, height: 0.30 },
        morning: Bump { centre_h: 7.2, width_h: 0.9, height: 0.40 },
        midday: Bump { centre_h: 12.8, width_h: 2.0, height: 0.15 },
        evening: Bump { centre_h: 18.6, width_h: 2.1, height: 0.82 },
    },
    HouseholdDay {
        floor: 0.35,
        awake: Window { open_h: 7.3, close_h: 23.5, ramp_h: 0.7, height: 0.35 },
        morning: Bump { centre_h: 9.0, width_h: 1.5, height: 0.30 },
        midday: Bump { centre_h: 12.8, width_h: 2.2, height: 0.40 },
        evening: Bump { centre_h: 18.6, width_h: 2.2, height: 0.85 },
    },
    HouseholdDay {
        floor: 0.35,
        awake: Window { open_h: 7.8, close_h: 23.0, ramp_h: 0.8, height: 0.35 },
        morning: Bump { centre_h: 9.5, width_h: 1.6, height: 0.30 },
        midday: Bump { centre_h: 12.5, width_h: 1.8, height: 0.55 },
        evening: Bump { centre_h: 18.5, width_h: 2.2, height: 0.85 },
    },
];

/// Households in midsummer, by day type. Light evenings: the evening peak is lower, broader and
/// about two hours later; the whole day is flatter (a higher floor relative to the peaks).
#[rustfmt::skip]
const HOUSEHOLD_SUMMER: [HouseholdDay; 3] = [
    HouseholdDay {
        floor: 0.45,
        awake: Window { open_h: 6.0, close_h: 23.5, ramp_h: 0.5, height: 0.35 },
        morning: Bump { centre_h: 7.0, width_h: 1.0, height: 0.25 },
        midday: Bump { centre_h: 12.8, width_h: 2.2, height: 0.15 },
        evening: Bump { centre_h: 20.5, width_h: 2.3, height: 0.50 },
    },
    HouseholdDay {
        floor: 0.45,
        awake: Window { open_h: 7.0, close_h: 24.0, ramp_h: 0.7, height: 0.38 },
        morning: Bump { centre_h: 9.0, width_h: 1.6, height: 0.22 },
        midday: Bump { centre_h: 12.8, width_h: 2.4, height: 0.30 },
        evening: Bump { centre_h: 20.5, width_h: 2.4, height: 0.45 },
    },
    HouseholdDay {
        floor: 0.45,
        awake: Window { open_h: 7.5, close_h: 23.5, ramp_h: 0.8, height: 0.38 },
        morning: Bump { centre_h: 9.5, width_h: 1.7, height: 0.22 },
        midday: Bump { centre_h: 12.5, width_h: 2.0, height: 0.32 },
        evening: Bump { centre_h: 20.3, width_h: 2.4, height: 0.45 },
    },
];

/// Daily energy of each household day type relative to a workday (workday, Saturday, Sunday or
/// holiday): people spend more of the weekend at home.
const HOUSEHOLD_DAY_TYPE_LEVEL: [f64; 3] = [1.0, 1.06, 1.08];

/// Seasonal swing of household energy: the level is `1 + this x cos(2 pi (day - peak) / 365)`,
/// so winter days draw about (1 + this) / (1 - this) times as much as summer days (lighting,
/// more time indoors, auxiliary heating).
const HOUSEHOLD_SEASONAL_AMPLITUDE: f64 = 0.15;
/// Day of the year with the highest household level (early January: long nights and the cold,
/// which lags the solstice a little).
const HOUSEHOLD_SEASONAL_PEAK_DAY: f64 = 8.0;
/// Days in the seasonal cycle.
const DAYS_PER_YEAR: f64 = 365.0;

/// Households: each month's days, normalised to the day type's level (the seasonal level comes
/// from [`household_level`], by day of the year, so that it has no steps between months).
pub(super) fn household() -> MonthlyTable {
    let mut table = [[[0.0; 24]; 3]; 12];
    for (month0, month) in table.iter_mut().enumerate() {
        let weight = month_winter_weight(month0);
        for (day_type, day) in month.iter_mut().enumerate() {
            let parameters = HOUSEHOLD_WINTER[day_type].blend(HOUSEHOLD_SUMMER[day_type], weight);
            let hours = hourly(|h| parameters.at(h));
            let mean = hours.iter().map(|v| f64::from(*v)).sum::<f64>() / 24.0;
            let scale = HOUSEHOLD_DAY_TYPE_LEVEL[day_type] / mean;
            *day = hours.map(|v| (f64::from(v) * scale) as f32);
        }
    }
    table
}

/// Seasonal level of household consumption on a day of the year (1 for 1 January), mean 1 over
/// the year.
pub(super) fn household_level(day_of_year: u32) -> f64 {
    let angle = TAU * (f64::from(day_of_year) - HOUSEHOLD_SEASONAL_PEAK_DAY) / DAYS_PER_YEAR;
    1.0 + HOUSEHOLD_SEASONAL_AMPLITUDE * angle.cos()
}

// ----------------------------------------------------------------------------------------------
// Commerce in general (shops, services, all trades mixed)
// ----------------------------------------------------------------------------------------------

/// Night floor of commerce: refrigerated counters, servers, security and emergency lighting.
/// Everything else is relative to it.
const COMMERCE_FLOOR: f64 = 1.0;
/// Business hours by day type (workday, Saturday, Sunday or holiday): about twice the floor from
/// 08:00 to 18:00 on workdays, a shorter and lower Saturday, Sunday barely above the floor (a few
/// trades, cleaning, heating kept on).
#[rustfmt::skip]
const COMMERCE_OPEN: [Window; 3] = [
    Window { open_h: 7.6, close_h: 18.4, ramp_h: 0.45, height: 1.0 },
    Window { open_h: 8.2, close_h: 14.8, ramp_h: 0.5, height: 0.7 },
    Window { open_h: 10.0, close_h: 16.0, ramp_h: 0.8, height: 0.1 },
];
/// The busiest late morning and midday hours (customers, kitchens of restaurants), by day type.
#[rustfmt::skip]
const COMMERCE_MIDDAY: [Bump; 3] = [
    Bump { centre_h: 11.5, width_h: 2.0, height: 0.15 },
    Bump { centre_h: 11.0, width_h: 1.5, height: 0.10 },
    Bump { centre_h: 12.5, width_h: 1.5, height: 0.05 },
];
/// Lighting of shop floors and windows after an early dusk, at full winter weight, by day type
/// (scaled by the season weight, absent in summer).
#[rustfmt::skip]
const COMMERCE_DUSK_LIGHTING: [Bump; 3] = [
    Bump { centre_h: 17.0, width_h: 1.3, height: 0.25 },
    Bump { centre_h: 16.0, width_h: 1.3, height: 0.10 },
    Bump { centre_h: 17.0, width_h: 1.5, height: 0.05 },
];
/// Air conditioning and ventilation on summer afternoons, at full summer weight (scaled by one
/// minus the season weight), on days that are open (workday, Saturday; nothing on Sundays).
#[rustfmt::skip]
const COMMERCE_SUMMER_COOLING: [Bump; 3] = [
    Bump { centre_h: 15.0, width_h: 2.5, height: 0.15 },
    Bump { centre_h: 13.0, width_h: 2.0, height: 0.08 },
    Bump { centre_h: 15.0, width_h: 2.0, height: 0.0 },
];
/// Extra load of the whole winter day (space heating auxiliaries, longer lighting), as a share
/// of the day at full winter weight.
const COMMERCE_WINTER_EXTRA: f64 = 0.10;

/// Commerce in general: monthly tables.
pub(super) fn commerce() -> MonthlyTable {
    let mut table = [[[0.0; 24]; 3]; 12];
    for (month0, month) in table.iter_mut().enumerate() {
        let weight = month_winter_weight(month0);
        for (day_type, day) in month.iter_mut().enumerate() {
            let open = COMMERCE_OPEN[day_type];
            let midday = COMMERCE_MIDDAY[day_type];
            let lighting = COMMERCE_DUSK_LIGHTING[day_type].scaled(weight);
            let cooling = COMMERCE_SUMMER_COOLING[day_type].scaled(1.0 - weight);
            let level = 1.0 + COMMERCE_WINTER_EXTRA * weight;
            *day = hourly(|h| {
                level
                    * (COMMERCE_FLOOR + open.at(h) + midday.at(h) + lighting.at(h) + cooling.at(h))
            });
        }
    }
    table
}

// ----------------------------------------------------------------------------------------------
// Offices and workshops open on weekdays
// ----------------------------------------------------------------------------------------------

/// Night and weekend floor of an office: servers, network gear, emergency lights, standby. The
/// working day is relative to it.
const OFFICE_FLOOR: f64 = 0.12;
/// Working hours by day type: a sharp 08:00-18:00 block on workdays (everything switched on at
/// once), a few workshops busy on Saturday mornings, nothing on Sundays.
#[rustfmt::skip]
const OFFICE_OPEN: [Window; 3] = [
    Window { open_h: 7.8, close_h: 17.8, ramp_h: 0.25, height: 1.0 },
    Window { open_h: 8.0, close_h: 12.5, ramp_h: 0.4, height: 0.08 },
    Window { open_h: 9.0, close_h: 15.0, ramp_h: 0.5, height: 0.0 },
];
/// The lunch break: machines and lights partly off around 12:30 (a dip, on workdays only).
#[rustfmt::skip]
const OFFICE_LUNCH: Bump = Bump { centre_h: 12.6, width_h: 0.5, height: -0.10 };
/// Extra share of the working-day load at full winter weight: lighting through dark mornings and
/// afternoons, heating circulation.
const OFFICE_WINTER_EXTRA: f64 = 0.15;

/// Offices and workshops: three seasons.
pub(super) fn office() -> SeasonalTable {
    let mut table = [[[0.0; 24]; 3]; 3];
    for (season, days) in table.iter_mut().enumerate() {
        let weight = SEASON_WINTER_WEIGHT[season];
        for (day_type, day) in days.iter_mut().enumerate() {
            let open = OFFICE_OPEN[day_type].scaled(1.0 + OFFICE_WINTER_EXTRA * weight);
            let lunch = if day_type == 0 {
                OFFICE_LUNCH
            } else {
                OFFICE_LUNCH.scaled(0.0)
            };
            *day = hourly(|h| OFFICE_FLOOR + open.at(h) + lunch.at(h));
        }
    }
    table
}

// ----------------------------------------------------------------------------------------------
// Bakeries (a bakehouse with a shop)
// ----------------------------------------------------------------------------------------------

/// Night floor of a bakery: cold stores, proofers, dough retarders.
const BAKERY_FLOOR: f64 = 0.25;
/// The bakehouse's shift by day type (workday, Saturday, Sunday or holiday): ovens and mixers
/// from about 02:30 to mid-morning; Saturday as busy; Sunday a later, smaller bake.
#[rustfmt::skip]
const BAKERY_BAKEHOUSE: [Window; 3] = [
    Window { open_h: 2.5, close_h: 9.5, ramp_h: 0.5, height: 0.90 },
    Window { open_h: 2.3, close_h: 9.5, ramp_h: 0.5, height: 0.95 },
    Window { open_h: 3.5, close_h: 8.5, ramp_h: 0.5, height: 0.45 },
];
/// The ovens' busiest hours, before the shop opens, by day type.
#[rustfmt::skip]
const BAKERY_PEAK: [Bump; 3] = [
    Bump { centre_h: 5.3, width_h: 1.3, height: 0.50 },
    Bump { centre_h: 5.0, width_h: 1.3, height: 0.55 },
    Bump { centre_h: 6.0, width_h: 1.2, height: 0.25 },
];
/// The shop (lights, display counters, coffee machines, a little baking during the day), by
/// day type: open all day on workdays, until early afternoon on Saturdays, Sunday mornings.
#[rustfmt::skip]
const BAKERY_SHOP: [Window; 3] = [
    Window { open_h: 6.5, close_h: 18.5, ramp_h: 0.5, height: 0.30 },
    Window { open_h: 6.5, close_h: 14.0, ramp_h: 0.5, height: 0.30 },
    Window { open_h: 7.0, close_h: 11.5, ramp_h: 0.5, height: 0.20 },
];
/// Extra share of the whole day at full winter weight (a cold bakehouse, lighting).
const BAKERY_WINTER_EXTRA: f64 = 0.08;

/// Bakeries: three seasons.
pub(super) fn bakery() -> SeasonalTable {
    let mut table = [[[0.0; 24]; 3]; 3];
    for (season, days) in table.iter_mut().enumerate() {
        let level = 1.0 + BAKERY_WINTER_EXTRA * SEASON_WINTER_WEIGHT[season];
        for (day_type, day) in days.iter_mut().enumerate() {
            let bakehouse = BAKERY_BAKEHOUSE[day_type];
            let peak = BAKERY_PEAK[day_type];
            let shop = BAKERY_SHOP[day_type];
            *day = hourly(|h| level * (BAKERY_FLOOR + bakehouse.at(h) + peak.at(h) + shop.at(h)));
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(hours: &[f32; 24]) -> f64 {
        hours.iter().map(|v| f64::from(*v)).sum::<f64>() / 24.0
    }

    fn argmax(hours: &[f32; 24]) -> usize {
        (0..24)
            .max_by(|&a, &b| hours[a].total_cmp(&hours[b]))
            .unwrap_or(0)
    }

    #[test]
    fn household_days_have_a_night_trough_and_an_evening_peak() {
        let table = household();
        for (month0, month) in table.iter().enumerate() {
            for (day_type, day) in month.iter().enumerate() {
                let m = mean(day);
                let trough = day.iter().copied().fold(f32::MAX, f32::min);
                let peak = argmax(day);
                assert!((1..=5).contains(&day.iter().position(|v| *v == trough).unwrap_or(0)));
                assert!(
                    (17..=21).contains(&peak),
                    "{month0} {day_type}: peak at {peak}"
                );
                let trough_share = f64::from(trough) / m;
                assert!((0.3..0.55).contains(&trough_share), "{trough_share}");
            }
        }
        // January workday: trough ~40 % of the mean, evening peak ~1.6-1.8 x.
        let january = &table[0][0];
        let peak_share = f64::from(january[argmax(january)]) / mean(january);
        assert!((1.55..1.9).contains(&peak_share), "{peak_share}");
        // Summer is flatter and peaks later than winter.
        let july = &table[6][0];
        assert!(f64::from(july[argmax(july)]) / mean(july) < peak_share);
        assert!(argmax(july) > argmax(january));
    }

    #[test]
    fn household_level_averages_one_over_the_year() {
        let year: f64 = (1..=365).map(household_level).sum::<f64>() / 365.0;
        assert!((year - 1.0).abs() < 1e-3);
        assert!(household_level(10) > household_level(200) * 1.2);
    }

    #[test]
    fn business_shapes_keep_their_hours() {
        let commerce = commerce();
        let workday = &commerce[3][0];
        let ratio = f64::from(workday[12]) / f64::from(workday[3]);
        assert!((1.8..2.6).contains(&ratio), "commerce midday/night {ratio}");
        let sunday = &commerce[3][2];
        assert!(f64::from(sunday[12]) / f64::from(sunday[3]) < 1.2);
        let office = office();
        for season in &office {
            assert!(season[0][10] > 8.0 * season[2][10]);
            assert!(season[0][21] < 1.1 * season[2][21]);
        }
        let bakery = bakery();
        for season in &bakery {
            assert!(season[0][5] > 2.5 * season[0][15]);
            assert!(season[0][5] > 3.0 * season[0][22]);
            assert!(mean(&season[2]) < mean(&season[1]));
        }
    }
}
