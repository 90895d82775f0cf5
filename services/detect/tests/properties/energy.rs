//! Register interpolation: energy is conserved whatever readings are lost (within the
//! interpolation's `max_gap`), gaps beyond it are unknown rather than zero, and neither the
//! order readings arrive in nor their redelivery changes a window's energy.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::sample::Index;

use gridwatch_detect::energy::{window_energies, RegisterReading, WindowEnergy};
use gridwatch_detect::window::{Window, WindowSpec};

/// A meter's register over a run of whole windows: read exactly at the run's first and last
/// boundaries and every `step` (with jitter, as meter clocks drift) in between.
#[derive(Debug, Clone)]
struct Register {
    readings: Vec<RegisterReading>,
    /// Whether each reading is lost in transit (never the first or the last: they bound the run).
    lost: Vec<bool>,
    windows: Vec<Window>,
    max_gap: Duration,
}

/// One interior reading: where it falls in its step, what the meter drew since the previous
/// reading, and whether it is lost.
type Interior = (f64, u16, bool);

fn register() -> impl Strategy<Value = Register> {
    (
        0i64..3650,                                       // days after 2020-01-01
        0i64..96,                                         // first window of the day
        1i64..=96,                                        // windows in the run
        prop::sample::select(vec![60i64, 300, 450, 900]), // seconds between readings
        30i64..=360,                                      // max_gap, minutes
        0i64..1_000_000_000_000,                          // the register at the start, Wh
    )
        .prop_flat_map(|(day, first, count, step, gap_minutes, start_wh)| {
            let readings = (count * 900 / step) as usize + 1;
            (
                Just((day, first, count, step, gap_minutes, start_wh)),
                prop::collection::vec((0.0f64..1.0, 0u16..5000, any::<bool>()), readings),
            )
        })
        .prop_map(
            |((day, first, count, step, gap_minutes, start_wh), interior)| {
                build(day, first, count, step, gap_minutes, start_wh, &interior)
            },
        )
}

fn build(
    day: i64,
    first_window: i64,
    count: i64,
    step: i64,
    gap_minutes: i64,
    start_wh: i64,
    interior: &[Interior],
) -> Register {
    let spec = WindowSpec::default();
    let epoch: DateTime<Utc> = "2020-01-01T00:00:00Z".parse().expect("time");
    let start = epoch + Duration::days(day) + spec.length() * first_window as i32;
    let end = start + spec.length() * count as i32;
    let mut readings = vec![RegisterReading {
        ts: start,
        energy_wh: start_wh,
    }];
    let mut lost = vec![false];
    let mut energy_wh = start_wh;
    for (k, &(jitter, drawn_wh, is_lost)) in interior.iter().enumerate() {
        let ts = start
            + Duration::seconds(step * (k as i64 + 1))
            + Duration::milliseconds((jitter * step as f64 * 1000.0) as i64);
        energy_wh += i64::from(drawn_wh);
        if ts >= end {
            break;
        }
        readings.push(RegisterReading { ts, energy_wh });
        lost.push(is_lost);
    }
    readings.push(RegisterReading {
        ts: end,
        energy_wh: energy_wh + 1,
    });
    lost.push(false);
    Register {
        readings,
        lost,
        windows: spec.between(start, end),
        max_gap: Duration::minutes(gap_minutes),
    }
}

/// The readings left when those marked lost are dropped, except where dropping one would open
/// a gap longer than `max_gap` (consecutive readings are at most two steps, 30 minutes, apart,
/// and `max_gap` is at least that, so this always leaves a bridgeable series).
fn lose_readings(register: &Register) -> Vec<RegisterReading> {
    let all = &register.readings;
    let mut kept = vec![all[0]];
    for i in 1..all.len() {
        let last_kept = kept[kept.len() - 1];
        let must_keep = match all.get(i + 1) {
            None => true,
            Some(following) => following.ts - last_kept.ts > register.max_gap,
        };
        if must_keep || !register.lost[i] {
            kept.push(all[i]);
        }
    }
    kept
}

/// Whether the register can be known at `at`: read there, or bridged by readings around it no
/// more than `max_gap` apart (the rule of `register_at`, restated independently).
fn knowable(readings: &[RegisterReading], at: DateTime<Utc>, max_gap: Duration) -> bool {
    let before = readings.iter().filter(|r| r.ts < at).map(|r| r.ts).max();
    let after = readings.iter().filter(|r| r.ts > at).map(|r| r.ts).min();
    readings.iter().any(|r| r.ts == at)
        || matches!((before, after), (Some(b), Some(a)) if a - b <= max_gap)
}

fn energy_of(energies: &[WindowEnergy]) -> Vec<Option<f64>> {
    energies.iter().map(|e| e.energy_wh).collect()
}

proptest! {
    #![proptest_config(super::config())]

    #[test]
    fn energy_is_conserved_whatever_readings_are_lost_within_max_gap(register in register()) {
        let kept = lose_readings(&register);
        let energies = window_energies(&kept, &register.windows, register.max_gap);
        let first = kept[0].energy_wh;
        let last = kept[kept.len() - 1].energy_wh;
        let mut total_wh = 0.0;
        for (w, e) in register.windows.iter().zip(&energies) {
            let wh = e.energy_wh.ok_or_else(|| {
                TestCaseError::fail(format!("window {w:?} unknown though every gap is bridged"))
            })?;
            prop_assert!(wh >= 0.0, "a register that never decreases gave {wh} Wh in {w:?}");
            prop_assert!(!e.backwards);
            total_wh += wh;
        }
        let expected_wh = (last - first) as f64;
        // Boundaries telescope exactly (each is computed once per side, identically); what is
        // left is the rounding of the sum, far below one watt-hour.
        let tolerance = 4.0 * f64::EPSILON * last as f64 * energies.len() as f64 + 1e-9;
        prop_assert!(
            (total_wh - expected_wh).abs() <= tolerance,
            "windows add up to {total_wh} Wh, the register moved {expected_wh} Wh"
        );
    }

    #[test]
    fn a_window_is_unknown_exactly_when_a_boundary_lies_in_a_gap_longer_than_max_gap(
        register in register(),
        gap_minutes in 5i64..120,
    ) {
        // Any readings lost, however long the gaps they open.
        let kept: Vec<RegisterReading> = register
            .readings
            .iter()
            .zip(&register.lost)
            .filter(|(_, lost)| !**lost)
            .map(|(r, _)| *r)
            .collect();
        let max_gap = Duration::minutes(gap_minutes);
        let energies = window_energies(&kept, &register.windows, max_gap);
        for (w, e) in register.windows.iter().zip(&energies) {
            let known = knowable(&kept, w.start, max_gap) && knowable(&kept, w.end, max_gap);
            prop_assert_eq!(e.energy_wh.is_some(), known, "window {:?}", w);
        }
    }

    #[test]
    fn redelivered_readings_change_nothing(
        register in register(),
        redelivered in prop::collection::vec(any::<Index>(), 1..20),
    ) {
        let mut with_duplicates = register.readings.clone();
        for index in &redelivered {
            let i = index.index(with_duplicates.len());
            with_duplicates.insert(i, with_duplicates[i]);
        }
        let once = window_energies(&register.readings, &register.windows, register.max_gap);
        let twice = window_energies(&with_duplicates, &register.windows, register.max_gap);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn readings_arriving_in_any_order_give_the_same_energies_once_ordered_by_time(
        (register, arrival) in register().prop_flat_map(|r| {
            let arrival = Just(r.readings.clone()).prop_shuffle();
            (Just(r), arrival)
        }),
    ) {
        // `window_energies` takes readings sorted by time: the loader reads them with
        // `ORDER BY meter_key, ts`, whatever order they arrived in. This states that contract;
        // the function does not sort on its own.
        let mut stored = arrival;
        stored.sort_by_key(|r| r.ts);
        prop_assert_eq!(
            energy_of(&window_energies(&stored, &register.windows, register.max_gap)),
            energy_of(&window_energies(&register.readings, &register.windows, register.max_gap))
        );
    }

    #[test]
    fn a_window_s_energy_does_not_depend_on_the_other_windows_asked(
        (register, asked) in register().prop_flat_map(|r| {
            let asked = Just(r.windows.clone()).prop_shuffle();
            (Just(r), asked)
        }),
        how_many in any::<Index>(),
    ) {
        let all = window_energies(&register.readings, &register.windows, register.max_gap);
        let asked = &asked[..how_many.index(asked.len()) + 1];
        let some = window_energies(&register.readings, asked, register.max_gap);
        for (w, e) in asked.iter().zip(&some) {
            let i = register.windows.iter().position(|x| x == w).expect("one of the run");
            prop_assert_eq!(*e, all[i], "window {:?}", w);
        }
    }
}
