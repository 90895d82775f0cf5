//! Sunrise and sunset, for street lighting switched by photocells.
//!
//! NOAA's "general solar position calculations" (fractional-year series for the equation of
//! time and the declination), accurate to a minute or two: more than photocells need.

use std::f64::consts::PI;

/// Zenith of the sun's centre at sunrise and sunset, degrees (refraction and the disc's radius).
const SUNRISE_ZENITH_DEG: f64 = 90.833;

/// Sunrise and sunset of a day of the year, hours UTC (may fall outside 0..24 far east or
/// west). At polar day or night both collapse to solar noon.
pub(crate) fn sunrise_sunset_utc_hours(
    day_of_year: u32,
    latitude_deg: f64,
    longitude_deg: f64,
) -> (f64, f64) {
    let gamma = 2.0 * PI / 365.0 * (f64::from(day_of_year) - 1.0);
    let equation_of_time_min = 229.18
        * (0.000075 + 0.001868 * gamma.cos()
            - 0.032077 * gamma.sin()
            - 0.014615 * (2.0 * gamma).cos()
            - 0.040849 * (2.0 * gamma).sin());
    let declination = 0.006918 - 0.399912 * gamma.cos() + 0.070257 * gamma.sin()
        - 0.006758 * (2.0 * gamma).cos()
        + 0.000907 * (2.0 * gamma).sin()
        - 0.002697 * (3.0 * gamma).cos()
        + 0.00148 * (3.0 * gamma).sin();
    let latitude = latitude_deg.to_radians();
    let cos_hour_angle = SUNRISE_ZENITH_DEG.to_radians().cos()
        / (latitude.cos() * declination.cos())
        - latitude.tan() * declination.tan();
    let hour_angle_deg = cos_hour_angle.clamp(-1.0, 1.0).acos().to_degrees();
    let solar_noon_min = 720.0 - 4.0 * longitude_deg - equation_of_time_min;
    (
        (solar_noon_min - 4.0 * hour_angle_deg) / 60.0,
        (solar_noon_min + 4.0 * hour_angle_deg) / 60.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ust_kamenogorsk_days_are_short_in_winter_and_long_in_summer() {
        let (rise, set) = sunrise_sunset_utc_hours(13, 49.95, 82.61);
        let winter_day = set - rise;
        let (rise, set) = sunrise_sunset_utc_hours(172, 49.95, 82.61);
        let summer_day = set - rise;
        assert!((winter_day - 8.5).abs() < 0.3, "{winter_day}");
        assert!((summer_day - 16.1).abs() < 0.3, "{summer_day}");
    }
}
