//! The simulator's winter loads against the published German standard load profiles (BDEW/VDEW
//! 1999): households against H0, commercial premises against G0, per day type, in local time.
//!
//! A population is simulated for four winter weeks; its average day of each type (workday,
//! Saturday, Sunday) is normalised to a mean of 1 and compared with the profile, normalised the
//! same way, quarter-hour by quarter-hour: Pearson correlation of the 96 values, hour of the peak
//! (of the 24 hourly means) and mean absolute difference as a share of the mean. The bounds are
//! what the model meets today, with a margin; the figures are printed (`--nocapture`) and
//! documented in README.md, "Source of the shapes".

mod common;

use std::ops::RangeInclusive;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc, Weekday};
use gridwatch_sim::config::{NetworkConfig, RegionConfig};
use gridwatch_sim::{ConsumerKind, SimConfig, Simulation};

/// H0 and G0, winter, workday / Saturday / Sunday; source and licence in the file's header.
const PROFILES_CSV: &str = include_str!("data/bdew_1999_winter_h0_g0.csv");
/// Quarter-hours in a day.
const QUARTERS: usize = 96;
/// Day types, in the order of the profile columns.
const DAY_TYPES: [&str; 3] = ["workday", "Saturday", "Sunday"];
/// Four whole local weeks, Monday 13 January to Sunday 9 February 2025: BDEW winter, and no
/// public holiday of Kazakhstan (which the simulator treats as Sundays) falls in them.
const DAYS: u32 = 28;

/// A day's 96 quarter-hour values per day type.
type Days = [[f64; QUARTERS]; 3];

/// The profile columns `h0_*` or `g0_*`, each normalised to a mean of 1.
fn published(profile: &str) -> Days {
    let mut lines = PROFILES_CSV
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty());
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let columns: Vec<usize> = ["workday", "saturday", "sunday"]
        .iter()
        .map(|day| {
            let name = format!("{profile}_{day}");
            header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        })
        .collect();
    let mut days = [[0.0; QUARTERS]; 3];
    let mut rows = 0;
    for (quarter, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let expected = format!("{:02}:{:02}", quarter / 4, quarter % 4 * 15);
        assert_eq!(fields[0], expected, "rows in order of the day");
        for (day, &column) in columns.iter().enumerate() {
            days[day][quarter] = fields[column].parse().expect("a number");
        }
        rows += 1;
    }
    assert_eq!(rows, QUARTERS);
    days.map(normalised)
}

fn normalised(day: [f64; QUARTERS]) -> [f64; QUARTERS] {
    let mean = day.iter().sum::<f64>() / QUARTERS as f64;
    day.map(|v| v / mean)
}

/// The groups compared.
#[derive(Clone, Copy)]
enum Group {
    /// Every household.
    Households,
    /// Households without electric heating.
    UnheatedHouseholds,
    /// Every commercial premise (offices, shops, groceries, bakeries).
    Commercial,
}

const GROUPS: [Group; 3] = [
    Group::Households,
    Group::UnheatedHouseholds,
    Group::Commercial,
];

impl Group {
    fn contains(self, kind: &ConsumerKind) -> bool {
        match self {
            Group::Households => matches!(kind, ConsumerKind::Household { .. }),
            Group::UnheatedHouseholds => matches!(
                kind,
                ConsumerKind::Household {
                    electric_heating: false,
                    ..
                }
            ),
            Group::Commercial => matches!(
                kind,
                ConsumerKind::Office
                    | ConsumerKind::Shop
                    | ConsumerKind::Grocery
                    | ConsumerKind::Bakery
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Group::Households => "households vs H0",
            Group::UnheatedHouseholds => "unheated households vs H0",
            Group::Commercial => "commercial vs G0",
        }
    }
}

/// What the simulated population drew, per group (in the order of [`GROUPS`]).
struct Simulated {
    /// The average day of each type, normalised to a mean of 1.
    days: Vec<Days>,
    /// Meters in the group.
    meters: Vec<usize>,
    /// Energy of the whole run, Wh.
    energy_wh: Vec<f64>,
}

fn simulated() -> Simulated {
    let defaults = SimConfig::default();
    let local_midnight: DateTime<Utc> = Utc
        .with_ymd_and_hms(2025, 1, 13, 0, 0, 0)
        .single()
        .expect("a date")
        - Duration::minutes(i64::from(defaults.utc_offset_minutes));
    let config = SimConfig {
        start: local_midnight,
        days: DAYS,
        regions: vec![RegionConfig {
            substations: 1,
            feeders_per_substation: 2,
            transformers_per_feeder: 4,
            households: 400,
            commercial: 48,
            industrial: 0,
            mining_farms: 0,
            ..RegionConfig::default()
        }],
        network: NetworkConfig::perfect(),
        ..defaults
    };
    let offset = Duration::minutes(i64::from(config.utc_offset_minutes));
    let mut simulation = Simulation::new(config).expect("valid");
    let members: Vec<Vec<usize>> = GROUPS
        .iter()
        .map(|group| common::consumers_where(&simulation, |kind| group.contains(&kind)))
        .collect();
    let mut sums = vec![[[0.0; QUARTERS]; 3]; GROUPS.len()];
    let mut counts = [[0u32; QUARTERS]; 3];
    while let Some(interval) = simulation.next_interval() {
        let local = (interval.truth.start + offset).naive_utc();
        let quarter = (local.hour() * 4 + local.minute() / 15) as usize;
        let day = match local.weekday() {
            Weekday::Sat => 1,
            Weekday::Sun => 2,
            _ => 0,
        };
        counts[day][quarter] += 1;
        for (sum, meters) in sums.iter_mut().zip(&members) {
            sum[day][quarter] += meters
                .iter()
                .map(|&m| interval.truth.meters[m].consumed_wh)
                .sum::<f64>();
        }
    }
    for day in &counts {
        assert!(day.iter().all(|&n| n == day[0] && n >= 4), "whole days");
    }
    let energy_wh = sums.iter().map(|sum| sum.iter().flatten().sum()).collect();
    let days = sums
        .into_iter()
        .map(|sum| {
            let mut days = [[0.0; QUARTERS]; 3];
            for d in 0..3 {
                for q in 0..QUARTERS {
                    days[d][q] = sum[d][q] / f64::from(counts[d][q]);
                }
            }
            days.map(normalised)
        })
        .collect();
    Simulated {
        days,
        meters: members.iter().map(Vec::len).collect(),
        energy_wh,
    }
}

/// How a simulated day compares with a published one.
#[derive(Debug)]
struct Comparison {
    /// Pearson correlation of the 96 quarter-hour values.
    correlation: f64,
    /// Local hour (start) of the highest hourly mean, simulated and published.
    peak_hour: (usize, usize),
    /// Mean absolute difference of the normalised values, as a share of their mean (1).
    mean_abs_difference: f64,
}

fn peak_hour(day: &[f64; QUARTERS]) -> usize {
    let hourly: Vec<f64> = day.chunks(4).map(|q| q.iter().sum::<f64>()).collect();
    (0..24)
        .max_by(|&a, &b| hourly[a].total_cmp(&hourly[b]))
        .expect("hours")
}

fn compare(simulated: &[f64; QUARTERS], published: &[f64; QUARTERS]) -> Comparison {
    let n = QUARTERS as f64;
    let mean_s = simulated.iter().sum::<f64>() / n;
    let mean_p = published.iter().sum::<f64>() / n;
    let (mut cov, mut var_s, mut var_p, mut abs) = (0.0, 0.0, 0.0, 0.0);
    for (s, p) in simulated.iter().zip(published) {
        cov += (s - mean_s) * (p - mean_p);
        var_s += (s - mean_s).powi(2);
        var_p += (p - mean_p).powi(2);
        abs += (s - p).abs();
    }
    Comparison {
        correlation: cov / (var_s * var_p).sqrt(),
        peak_hour: (peak_hour(simulated), peak_hour(published)),
        mean_abs_difference: abs / n / mean_p,
    }
}

/// What the model meets today (seed 42), with a margin: lowest correlation, highest mean
/// absolute difference, and the hours in which the simulated peak falls.
struct Bounds {
    min_correlation: f64,
    max_mean_abs_difference: f64,
    peak_hours: RangeInclusive<usize>,
}

/// Per group (in the order of [`GROUPS`]) and day type. Measured (r, difference, peak): all
/// households 0.63 / 29.6 % / 18, 0.91 / 29.6 % / 18, 0.84 / 32.2 % / 18; unheated households
/// 0.88 / 17.3 % / 18, 0.97 / 12.9 % / 18, 0.88 / 20.0 % / 18; commercial 0.91 / 23.3 % / 9,
/// 0.78 / 26.5 % / 9, -0.06 / 23.1 % / 11. Where the model departs from the profiles on purpose
/// (H0's Sunday lunch peak, G0's closed Sunday), the bounds only keep the departure from growing.
#[rustfmt::skip]
const BOUNDS: [[Bounds; 3]; 3] = [
    [
        Bounds { min_correlation: 0.55, max_mean_abs_difference: 0.36, peak_hours: 17..=20 },
        Bounds { min_correlation: 0.85, max_mean_abs_difference: 0.36, peak_hours: 17..=20 },
        Bounds { min_correlation: 0.75, max_mean_abs_difference: 0.38, peak_hours: 17..=20 },
    ],
    [
        Bounds { min_correlation: 0.85, max_mean_abs_difference: 0.21, peak_hours: 17..=20 },
        Bounds { min_correlation: 0.94, max_mean_abs_difference: 0.16, peak_hours: 17..=20 },
        Bounds { min_correlation: 0.84, max_mean_abs_difference: 0.24, peak_hours: 17..=20 },
    ],
    [
        Bounds { min_correlation: 0.85, max_mean_abs_difference: 0.29, peak_hours: 8..=11 },
        Bounds { min_correlation: 0.65, max_mean_abs_difference: 0.32, peak_hours: 8..=11 },
        Bounds { min_correlation: -0.3, max_mean_abs_difference: 0.29, peak_hours: 9..=12 },
    ],
];

/// 24 hourly means of a normalised day, for printing.
fn hourly(day: &[f64; QUARTERS]) -> String {
    day.chunks(4)
        .map(|q| format!("{:.2}", q.iter().sum::<f64>() / 4.0))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn winter_shapes_follow_the_published_standard_load_profiles() {
    let h0 = published("h0");
    let g0 = published("g0");
    let simulated = simulated();
    let heated = simulated.meters[0] - simulated.meters[1];
    let heated_share = 1.0 - simulated.energy_wh[1] / simulated.energy_wh[0];
    println!(
        "electrically heated homes: {heated} of {}, {:.0} % of the households' energy",
        simulated.meters[0],
        100.0 * heated_share
    );
    let mut failures = Vec::new();
    let mut comparisons = Vec::new();
    for (g, group) in GROUPS.iter().enumerate() {
        let reference = match group {
            Group::Commercial => &g0,
            _ => &h0,
        };
        for (d, day) in DAY_TYPES.iter().enumerate() {
            let c = compare(&simulated.days[g][d], &reference[d]);
            println!(
                "{:<27} {:<8} ({:>3} meters): r {:.3}, peak {:02}:00 (profile {:02}:00), \
                 mean |difference| {:.1} % of the mean",
                group.name(),
                day,
                simulated.meters[g],
                c.correlation,
                c.peak_hour.0,
                c.peak_hour.1,
                100.0 * c.mean_abs_difference
            );
            println!("    simulated {}", hourly(&simulated.days[g][d]));
            println!("    profile   {}", hourly(&reference[d]));
            let bounds = &BOUNDS[g][d];
            if c.correlation < bounds.min_correlation
                || c.mean_abs_difference > bounds.max_mean_abs_difference
                || !bounds.peak_hours.contains(&c.peak_hour.0)
            {
                failures.push(format!("{} {day}: {c:?}", group.name()));
            }
            comparisons.push(c);
        }
    }
    assert!(failures.is_empty(), "outside the bounds: {failures:#?}");
    // A few heated homes draw a large share of a Kazakh winter's household energy, and H0 has no
    // electric heating in it: without them the homes fit H0 better on every day type.
    assert!(
        heated > 0 && heated_share > 0.2,
        "heated homes {heated_share}"
    );
    for d in 0..3 {
        let (all, unheated) = (&comparisons[d], &comparisons[3 + d]);
        assert!(unheated.correlation > all.correlation, "{}", DAY_TYPES[d]);
        assert!(unheated.mean_abs_difference < all.mean_abs_difference);
    }
}
