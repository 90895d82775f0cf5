//! The loads are not toys: a month of January, checked against what real ones look like.

mod common;

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{Datelike, Duration, Weekday};
use gridwatch_core::registry::MeterClass;
use gridwatch_sim::config::RegionConfig;
use gridwatch_sim::scenarios::UnlicensedMining;
use gridwatch_sim::{ConsumerKind, Scenario, SimConfig, Simulation};

/// Local time offset of East Kazakhstan, hours.
const UTC_OFFSET_H: i64 = 5;
/// Irkutsk's first tariff tier: 94 % of households stay under it.
const TIER_KWH_PER_MONTH: f64 = 3_900.0;

/// A month of one meter, by local hour.
struct MeterMonth {
    kind: ConsumerKind,
    class: MeterClass,
    /// Energy of each local hour, Wh, in order.
    hourly_wh: Vec<f64>,
    /// Local date and hour of each entry of `hourly_wh`.
    hours: Vec<(chrono::NaiveDate, u32)>,
    /// Average power of each interval, W.
    interval_w: Vec<f64>,
    rigs: bool,
}

fn month() -> &'static Vec<MeterMonth> {
    static MONTH: OnceLock<Vec<MeterMonth>> = OnceLock::new();
    MONTH.get_or_init(|| {
        let config = SimConfig {
            days: 30,
            regions: vec![RegionConfig {
                substations: 1,
                feeders_per_substation: 4,
                transformers_per_feeder: 3,
                households: 300,
                commercial: 40,
                industrial: 4,
                mining_farms: 2,
                ..RegionConfig::default()
            }],
            scenarios: vec![Scenario::UnlicensedMining(UnlicensedMining {
                onset_hours: 0.0,
                count: 3,
                ..UnlicensedMining::default()
            })],
            ..SimConfig::default()
        };
        let mut simulation = Simulation::new(config).expect("valid");
        let rigged: Vec<String> = simulation
            .ground_truth()
            .injected
            .iter()
            .filter_map(|i| i.meter.as_ref().map(ToString::to_string))
            .collect();
        let registry = simulation.registry().clone();
        let mut months: Vec<MeterMonth> = registry
            .meters
            .iter()
            .filter_map(|m| {
                Some(MeterMonth {
                    kind: simulation.consumer_kind(&m.id)?,
                    class: m.class,
                    hourly_wh: Vec::new(),
                    hours: Vec::new(),
                    interval_w: Vec::new(),
                    rigs: rigged.contains(&m.id.to_string()),
                })
            })
            .collect();
        let consumers = common::consumers_where(&simulation, |_| true);
        while let Some(interval) = simulation.next_interval() {
            let local = (interval.truth.start + Duration::hours(UTC_OFFSET_H)).naive_utc();
            let key = (local.date(), chrono::Timelike::hour(&local));
            let hours = interval
                .truth
                .end
                .signed_duration_since(interval.truth.start)
                .num_minutes() as f64
                / 60.0;
            for (month, &m) in months.iter_mut().zip(&consumers) {
                let wh = interval.truth.meters[m].consumed_wh;
                month.interval_w.push(wh / hours);
                if month.hours.last() != Some(&key) {
                    month.hours.push(key);
                    month.hourly_wh.push(0.0);
                }
                if let Some(last) = month.hourly_wh.last_mut() {
                    *last += wh;
                }
            }
        }
        months
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn is_plain_home(kind: &ConsumerKind) -> bool {
    matches!(
        kind,
        ConsumerKind::Household {
            electric_heating: false,
            high_use: false,
            ..
        }
    )
}

fn is_heated_home(kind: &ConsumerKind) -> bool {
    matches!(
        kind,
        ConsumerKind::Household {
            electric_heating: true,
            storage_heating: false,
            ..
        }
    )
}

/// Peak-hour over trough-hour energy of each whole local day of a meter.
fn daily_peak_to_trough(meter: &MeterMonth) -> Vec<f64> {
    let mut days: HashMap<chrono::NaiveDate, Vec<f64>> = HashMap::new();
    for (&(date, _), &wh) in meter.hours.iter().zip(&meter.hourly_wh) {
        days.entry(date).or_default().push(wh);
    }
    days.values()
        .filter(|hours| hours.len() == 24)
        .map(|hours| {
            let max = hours.iter().copied().fold(0.0, f64::max);
            let min = hours.iter().copied().fold(f64::MAX, f64::min);
            max / min.max(1.0)
        })
        .collect()
}

fn mean_w(meter: &MeterMonth) -> f64 {
    meter.interval_w.iter().sum::<f64>() / meter.interval_w.len() as f64
}

#[test]
fn households_peak_in_the_evening_and_dip_at_night() {
    let homes: Vec<&MeterMonth> = month()
        .iter()
        .filter(|m| is_plain_home(&m.kind) && !m.rigs)
        .collect();
    assert!(homes.len() > 200);
    // One home's day swings a lot.
    let ratios: Vec<f64> = homes.iter().flat_map(|m| daily_peak_to_trough(m)).collect();
    let individual = median(ratios);
    assert!(
        (3.0..30.0).contains(&individual),
        "a home's peak/trough {individual}"
    );
    // Together they draw the standard profile's shape: an evening peak, a night trough.
    let mut by_hour = [0.0; 24];
    for home in &homes {
        for (&(_, hour), &wh) in home.hours.iter().zip(&home.hourly_wh) {
            by_hour[hour as usize] += wh;
        }
    }
    let peak_hour = (0..24)
        .max_by(|&a, &b| by_hour[a].total_cmp(&by_hour[b]))
        .expect("hours");
    let trough_hour = (0..24)
        .min_by(|&a, &b| by_hour[a].total_cmp(&by_hour[b]))
        .expect("hours");
    let aggregate = by_hour[peak_hour] / by_hour[trough_hour];
    assert!((17..=22).contains(&peak_hour), "peak at {peak_hour}");
    assert!((1..=5).contains(&trough_hour), "trough at {trough_hour}");
    assert!(
        (1.8..4.0).contains(&aggregate),
        "aggregate peak/trough {aggregate}"
    );
}

#[test]
fn household_monthly_energy_is_plausible() {
    let homes: Vec<&MeterMonth> = month()
        .iter()
        .filter(|m| m.class == MeterClass::Household && !m.rigs)
        .collect();
    let monthly_kwh = |m: &MeterMonth| m.hourly_wh.iter().sum::<f64>() / 1_000.0;
    let under_tier = homes
        .iter()
        .filter(|m| monthly_kwh(m) < TIER_KWH_PER_MONTH)
        .count() as f64
        / homes.len() as f64;
    assert!(
        under_tier >= 0.9,
        "{under_tier} under {TIER_KWH_PER_MONTH} kWh"
    );
    assert!(
        under_tier < 1.0,
        "no home above the tier in a Kazakh January: heating is missing"
    );
    let plain = median(
        homes
            .iter()
            .filter(|m| is_plain_home(&m.kind))
            .map(|m| monthly_kwh(m))
            .collect(),
    );
    assert!(
        (150.0..400.0).contains(&plain),
        "typical home {plain} kWh/month"
    );
    let heated: Vec<f64> = homes
        .iter()
        .filter(|m| is_heated_home(&m.kind))
        .map(|m| monthly_kwh(m))
        .collect();
    assert!(!heated.is_empty());
    let heated = median(heated);
    assert!(
        (1_200.0..6_000.0).contains(&heated),
        "electrically heated home {heated} kWh/month"
    );
}

#[test]
fn electric_heating_is_flatter_and_higher_in_winter() {
    let homes = month();
    let plain: Vec<&MeterMonth> = homes
        .iter()
        .filter(|m| is_plain_home(&m.kind) && !m.rigs)
        .collect();
    let heated: Vec<&MeterMonth> = homes
        .iter()
        .filter(|m| is_heated_home(&m.kind) && !m.rigs)
        .collect();
    let swing = |group: &[&MeterMonth]| {
        median(group.iter().flat_map(|m| daily_peak_to_trough(m)).collect())
    };
    let level = |group: &[&MeterMonth]| median(group.iter().map(|m| mean_w(m)).collect());
    assert!(
        swing(&heated) < 0.5 * swing(&plain),
        "heated {} vs plain {}",
        swing(&heated),
        swing(&plain)
    );
    assert!(
        level(&heated) > 4.0 * level(&plain),
        "heated {} W vs plain {} W",
        level(&heated),
        level(&plain)
    );
    // Still not a rig: a heated home's day keeps a swing (setbacks, thermostats, cooking).
    assert!(swing(&heated) > 1.2);
}

#[test]
fn rigs_on_a_home_look_like_mining_flat_and_far_above_the_neighbours() {
    let homes = month();
    let plain_level = median(
        homes
            .iter()
            .filter(|m| is_plain_home(&m.kind) && !m.rigs)
            .map(mean_w)
            .collect(),
    );
    for rigged in homes.iter().filter(|m| m.rigs) {
        assert!(mean_w(rigged) > 2.0 * plain_level);
        let swing = median(daily_peak_to_trough(rigged));
        assert!(swing < 1.5, "rigged home swings {swing}");
    }
}

#[test]
fn commercial_premises_follow_business_hours_and_the_week() {
    let homes = month();
    let energy_on = |kind: ConsumerKind, pick: &dyn Fn(chrono::NaiveDate, u32) -> bool| -> f64 {
        homes
            .iter()
            .filter(|m| m.kind == kind)
            .flat_map(|m| m.hours.iter().zip(&m.hourly_wh))
            .filter(|(&(date, hour), _)| pick(date, hour))
            .map(|(_, wh)| wh)
            .sum()
    };
    let wednesday = |d: chrono::NaiveDate, _| d.weekday() == Weekday::Wed;
    let sunday = |d: chrono::NaiveDate, _| d.weekday() == Weekday::Sun;
    let office_ratio =
        energy_on(ConsumerKind::Office, &sunday) / energy_on(ConsumerKind::Office, &wednesday);
    assert!(
        office_ratio < 0.4,
        "offices on Sunday: {office_ratio} of a Wednesday"
    );
    let business = |_, hour: u32| (9..18).contains(&hour);
    let night = |_, hour: u32| hour < 5;
    assert!(
        energy_on(ConsumerKind::Office, &business)
            > 4.0 * energy_on(ConsumerKind::Office, &night) * 9.0 / 5.0
    );
    // Groceries never stop refrigerating.
    let grocery_night = energy_on(ConsumerKind::Grocery, &night) / 5.0;
    let grocery_day = energy_on(ConsumerKind::Grocery, &business) / 9.0;
    assert!(
        grocery_night > 0.3 * grocery_day,
        "{grocery_night} vs {grocery_day}"
    );
    // Bakeries bake before dawn.
    let early = |_, hour: u32| (3..9).contains(&hour);
    let evening = |_, hour: u32| (17..23).contains(&hour);
    assert!(
        energy_on(ConsumerKind::Bakery, &early) > 1.5 * energy_on(ConsumerKind::Bakery, &evening)
    );
}

/// How far above its licence (registered machines x rated power) a licensed farm may draw: the
/// interval noise (log-sigma 0.4 %) and the cooling of warm weather (0.15 % a kelvin above 0 °C)
/// on top of the 1.5 % facility overhead, while machines draw 97 % of their rating and at most
/// 99 % of them run. In a winter month that leaves a farm below its licence; the tolerance
/// covers the noise's tail.
const LICENCE_POWER_TOLERANCE: f64 = 0.02;
/// Below this share of its typical power a farm is in an outage (what is left is control and
/// lighting: 2 % of its load).
const OUTAGE_BELOW_SHARE_OF_TYPICAL: f64 = 0.1;
/// A curtailed farm keeps 50-70 % of its load in the evening peak; a farm's online share
/// wanders only within 88-99 %, so no other interval falls into this band.
const CURTAILED_SHARE_OF_TYPICAL: std::ops::Range<f64> = 0.4..0.8;
/// The evening-peak window of curtailment, local hours.
const CURTAILMENT_LOCAL_HOURS: std::ops::Range<u32> = 17..21;

/// Thirty winter days (from 13 January) of one licensed farm.
struct FarmMonth {
    /// Registered machines x rated power of its licence, W.
    licensed_w: f64,
    /// Each interval's local start time and average power, W.
    power: Vec<(chrono::NaiveDateTime, f64)>,
}

fn farm_month() -> Vec<FarmMonth> {
    let config = SimConfig {
        // 6 farms x 30 days: about 9 outages (5 % a farm-day) and, with most of January's days
        // colder than -10 °C, dozens of curtailed evenings (30 % of those days).
        days: 30,
        regions: vec![RegionConfig {
            substations: 1,
            feeders_per_substation: 2,
            transformers_per_feeder: 1,
            households: 20,
            commercial: 2,
            industrial: 0,
            mining_farms: 6,
            ..RegionConfig::default()
        }],
        ..SimConfig::default()
    };
    let mut simulation = Simulation::new(config).expect("valid");
    let registry = simulation.registry().clone();
    // Each farm's meter (its index in the registry) and its month.
    let mut farms: Vec<(usize, FarmMonth)> = registry
        .meters
        .iter()
        .enumerate()
        .filter(|(_, m)| simulation.consumer_kind(&m.id) == Some(ConsumerKind::LicensedMiningFarm))
        .map(|(i, m)| {
            let licence = registry
                .licences
                .iter()
                .find(|l| Some(&l.id) == m.licence.as_ref())
                .expect("a farm's meter names its licence");
            let licensed_w =
                f64::from(licence.registered_machines) * f64::from(licence.machine_rated_w);
            let month = FarmMonth {
                licensed_w,
                power: Vec::new(),
            };
            (i, month)
        })
        .collect();
    while let Some(interval) = simulation.next_interval() {
        let local = (interval.truth.start + Duration::hours(UTC_OFFSET_H)).naive_utc();
        let hours = (interval.truth.end - interval.truth.start).num_minutes() as f64 / 60.0;
        for (m, farm) in &mut farms {
            farm.power
                .push((local, interval.truth.meters[*m].consumed_wh / hours));
        }
    }
    farms.into_iter().map(|(_, farm)| farm).collect()
}

#[test]
fn licensed_farms_run_near_flat_with_outages_and_curtailment_as_exceptions() {
    let farms = farm_month();
    assert_eq!(farms.len(), 6);
    let mut outages = 0;
    let mut curtailed_evenings = std::collections::BTreeSet::new();
    for (farm, FarmMonth { licensed_w, power }) in farms.iter().enumerate() {
        let interval_w: Vec<f64> = power.iter().map(|(_, w)| *w).collect();
        let typical = median(interval_w.clone());
        let near = interval_w
            .iter()
            .filter(|w| (**w / typical - 1.0).abs() < 0.05)
            .count();
        let share_near = near as f64 / interval_w.len() as f64;
        assert!(
            share_near > 0.8,
            "{share_near} of intervals within 5 % of typical"
        );
        let deviations: Vec<f64> = interval_w
            .iter()
            .map(|w| (w / typical - 1.0).abs())
            .collect();
        assert!(median(deviations) < 0.02);
        // Registered machines x rated power is never exceeded by more than the tolerance.
        let highest = interval_w.iter().copied().fold(0.0, f64::max);
        assert!(
            highest <= licensed_w * (1.0 + LICENCE_POWER_TOLERANCE),
            "farm {farm} drew {highest} W against a licence of {licensed_w} W"
        );
        assert!(
            interval_w.iter().all(|w| *w > 0.0),
            "a farm never draws nothing"
        );
        // Outages: runs of intervals near zero. Curtailment: the evening peak cut to 50-70 %,
        // and nowhere else.
        let mut in_outage = false;
        for &(local, w) in power {
            let share = w / typical;
            let out = share < OUTAGE_BELOW_SHARE_OF_TYPICAL;
            if out && !in_outage {
                outages += 1;
            }
            in_outage = out;
            if CURTAILED_SHARE_OF_TYPICAL.contains(&share) {
                assert!(
                    CURTAILMENT_LOCAL_HOURS.contains(&chrono::Timelike::hour(&local)),
                    "farm {farm} at {share:.2} of its typical power at {local}, outside the evening peak"
                );
                curtailed_evenings.insert((farm, local.date()));
            }
        }
    }
    assert!(outages >= 1, "no farm had an outage in a month");
    assert!(
        !curtailed_evenings.is_empty(),
        "no farm was curtailed in a January"
    );
}

/// How much more a population of homes draws on a weekend day than on a workday: the shape's
/// 7 % (the mean of Saturday's 6 % and Sunday's 8 %) on the four fifths of their energy that
/// follow it, give or take the homes' day-to-day variation over four weeks.
const WEEKEND_MORE_THAN_WORKDAY: std::ops::Range<f64> = 0.04..0.065;

/// Four whole local weeks (Monday 13 January to Sunday 9 February 2025, no public holiday) of
/// plain homes (no electric heating, not high-use, so the weather does not blur the week): each
/// local date's energy, Wh, summed over the homes.
fn household_weeks() -> Vec<(chrono::NaiveDate, f64)> {
    let start = chrono::DateTime::parse_from_rfc3339("2025-01-12T19:00:00Z")
        .expect("a time")
        .with_timezone(&chrono::Utc);
    let config = SimConfig {
        start,
        days: 28,
        regions: vec![RegionConfig {
            substations: 1,
            feeders_per_substation: 2,
            transformers_per_feeder: 3,
            households: 600,
            commercial: 0,
            industrial: 0,
            mining_farms: 0,
            ..RegionConfig::default()
        }],
        ..SimConfig::default()
    };
    let mut simulation = Simulation::new(config).expect("valid");
    let homes = common::consumers_where(&simulation, |k| is_plain_home(&k));
    assert!(homes.len() > 450, "{} plain homes", homes.len());
    let mut days: Vec<(chrono::NaiveDate, f64)> = Vec::new();
    while let Some(interval) = simulation.next_interval() {
        let date = (interval.truth.start + Duration::hours(UTC_OFFSET_H)).date_naive();
        let wh: f64 = homes
            .iter()
            .map(|&m| interval.truth.meters[m].consumed_wh)
            .sum();
        match days.last_mut() {
            Some((last, total)) if *last == date => *total += wh,
            _ => days.push((date, wh)),
        }
    }
    days
}

#[test]
fn households_draw_more_at_weekends_than_on_workdays() {
    let days = household_weeks();
    assert_eq!(days.len(), 28);
    assert_eq!(days[0].0.weekday(), Weekday::Mon);
    let mean = |pick: &dyn Fn(Weekday) -> bool| {
        let picked: Vec<f64> = days
            .iter()
            .filter(|(d, _)| pick(d.weekday()))
            .map(|(_, wh)| *wh)
            .collect();
        picked.iter().sum::<f64>() / picked.len() as f64
    };
    let workday = mean(&|d| !matches!(d, Weekday::Sat | Weekday::Sun));
    let saturday = mean(&|d| d == Weekday::Sat) / workday - 1.0;
    let sunday = mean(&|d| d == Weekday::Sun) / workday - 1.0;
    let weekend = mean(&|d| matches!(d, Weekday::Sat | Weekday::Sun)) / workday - 1.0;
    // The shape's weekend days hold 6 % (Saturday) and 8 % (Sunday) more energy than a
    // workday's; standby (about a fifth of a home's energy) does not follow the shape, so the
    // homes draw about 5 % more on a weekend day, more on Sundays than on Saturdays.
    assert!(
        WEEKEND_MORE_THAN_WORKDAY.contains(&weekend),
        "weekend days draw {:.2} % more than workdays",
        weekend * 100.0
    );
    assert!(
        0.0 < saturday && saturday < sunday,
        "Saturday {:.2} %, Sunday {:.2} % more than a workday",
        saturday * 100.0,
        sunday * 100.0
    );
    assert!(
        sunday < 0.08,
        "Sunday {:.2} % more: above the shape's own 8 %",
        sunday * 100.0
    );
}
