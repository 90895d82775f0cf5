//! Windowing: every instant lies in exactly one window, windows tile time, and they are
//! aligned to the Unix epoch (so to UTC midnight whenever their length divides a day).

use chrono::{DateTime, Duration, Timelike, Utc};
use proptest::prelude::*;

use gridwatch_detect::window::{Window, WindowSpec};

/// Window lengths the detector is configured with, and arbitrary ones up to a day.
fn spec() -> impl Strategy<Value = WindowSpec> {
    prop_oneof![
        prop::sample::select(vec![60, 300, 900, 1800, 3600, 86_400]),
        1..=86_400i64,
    ]
    .prop_map(|seconds| WindowSpec { seconds })
}

/// Any instant from 1906 to 2096, to the nanosecond (before the epoch too).
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (-2_000_000_000i64..4_000_000_000, 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
        DateTime::from_timestamp(secs, nanos).expect("within chrono's range")
    })
}

fn contains(w: &Window, t: DateTime<Utc>) -> bool {
    w.start <= t && t < w.end
}

proptest! {
    #![proptest_config(super::config())]

    #[test]
    fn every_instant_lies_in_the_window_containing_it(spec in spec(), t in instant()) {
        let w = spec.containing(t);
        prop_assert!(contains(&w, t), "{t} not in {w:?}");
        prop_assert_eq!(w.end - w.start, spec.length());
        // The window is the same whichever of its instants asks for it.
        prop_assert_eq!(spec.containing(w.start), w);
        prop_assert_eq!(spec.containing(w.end - Duration::nanoseconds(1)), w);
        prop_assert_eq!(spec.containing(w.end), spec.next(w));
    }

    #[test]
    fn windows_are_aligned_to_the_epoch_and_so_to_utc_midnight(spec in spec(), t in instant()) {
        let w = spec.containing(t);
        prop_assert_eq!(w.start.timestamp().rem_euclid(spec.seconds), 0);
        prop_assert_eq!(w.start.nanosecond(), 0);
        if 86_400 % spec.seconds == 0 {
            let midnight = t
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc();
            prop_assert_eq!(spec.containing(midnight).start, midnight);
            let day = spec.between(midnight, midnight + Duration::days(1));
            prop_assert_eq!(day.len() as i64, spec.per_day());
            prop_assert_eq!(day.last().map(|w| w.end), Some(midnight + Duration::days(1)));
        }
    }

    #[test]
    fn between_tiles_the_span_without_gaps_or_overlaps(
        spec in spec(),
        from in instant(),
        span_secs in 0i64..3 * 86_400,
    ) {
        let to = from + Duration::seconds(span_secs);
        let windows = spec.between(from, to);
        let first = spec.containing(from);
        match (windows.first(), windows.last()) {
            (Some(head), Some(last)) => {
                prop_assert_eq!(*head, first);
                prop_assert!(last.end <= to);
                // Whole windows only, and all of them: the next one would end after `to`.
                prop_assert!(spec.next(*last).end > to);
            }
            _ => prop_assert!(first.end > to, "no window listed but {first:?} ends by {to}"),
        }
        for pair in windows.windows(2) {
            prop_assert_eq!(pair[0].end, pair[1].start, "gap or overlap");
            prop_assert_eq!(spec.next(pair[0]), pair[1]);
        }
    }

    #[test]
    fn every_instant_of_a_tiled_span_falls_in_exactly_one_window(
        spec in spec(),
        from in instant(),
        windows_wanted in 1i64..50,
        position in 0.0f64..1.0,
    ) {
        let to = spec.containing(from).start + Duration::seconds(spec.seconds * windows_wanted);
        let windows = spec.between(from, to);
        prop_assert_eq!(windows.len() as i64, windows_wanted);
        let (Some(head), Some(last)) = (windows.first(), windows.last()) else {
            unreachable!("at least one window was asked for");
        };
        let covered_ns = (last.end - head.start).num_nanoseconds().expect("short span");
        let t = head.start + Duration::nanoseconds((covered_ns as f64 * position) as i64);
        let holding: Vec<&Window> = windows.iter().filter(|w| contains(w, t)).collect();
        prop_assert_eq!(holding.len(), 1, "{} windows hold {}", holding.len(), t);
        prop_assert_eq!(*holding[0], spec.containing(t));
    }
}
