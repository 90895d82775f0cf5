use super::*;
use crate::synth::{self, Rng};
use crate::window::WindowSpec;

fn licence() -> LicenceId {
    LicenceId::parse("KZ-MIN-007").expect("id")
}

/// A farm's 15-minute energies: `registered` S19s with `online` share running at 97 % of their
/// rating, `overhead` for cooling and lighting, 0.4 % noise, a 3-hour outage on day 2, and
/// `extra` unregistered machines in windows `from..until`.
#[allow(clippy::too_many_arguments)]
fn farm(
    seed: u64,
    days: usize,
    registered: u32,
    online: f64,
    overhead: f64,
    extra: u32,
    from: usize,
    until: usize,
) -> (Vec<(Window, Option<f64>)>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let spec = WindowSpec::default();
    let mut w = spec.containing(synth::winter_start());
    let mut share = online;
    let mut out = Vec::new();
    let mut unregistered_wh = Vec::new();
    for i in 0..days * synth::PER_DAY {
        share = (share + 0.002 * rng.normal()).clamp(online - 0.05, online.min(1.0));
        let outage = (2 * synth::PER_DAY + 40..2 * synth::PER_DAY + 52).contains(&i);
        let machines = f64::from(registered) * share
            + if (from..until).contains(&i) {
                f64::from(extra)
            } else {
                0.0
            };
        let power = if outage {
            0.02 * machines * 3_250.0
        } else {
            machines * 3_250.0 * 0.97 * (1.0 + overhead) * (1.0 + 0.004 * rng.normal())
        };
        let extra_w = if (from..until).contains(&i) && !outage {
            f64::from(extra) * 3_250.0 * 0.97 * (1.0 + overhead)
        } else {
            0.0
        };
        out.push((w, Some(power * 0.25)));
        unregistered_wh.push(extra_w * 0.25);
        w = spec.next(w);
    }
    (out, unregistered_wh)
}

fn run(windows: &[(Window, Option<f64>)], registered: u32) -> Vec<Finding> {
    capacity_exceeded(
        &licence(),
        None,
        registered,
        3_250,
        windows,
        0.5,
        &CapacityParams::default(),
    )
}

#[test]
fn a_farm_running_every_registered_machine_with_cooling_is_not_flagged() {
    for seed in 0..30 {
        // All machines online, 1.5 % overhead and 3 % summer cooling: 0.4 % above capacity.
        let (windows, _) = farm(seed, 30, 60 + 37 * seed as u32, 1.0, 0.045, 0, 0, 0);
        assert!(
            run(&windows, 60 + 37 * seed as u32).is_empty(),
            "seed {seed}"
        );
    }
}

#[test]
fn ten_percent_more_machines_are_flagged_within_a_day_with_the_energy_above_capacity() {
    for seed in 0..20 {
        let registered: u32 = [60, 120, 1_000, 15_000][seed as usize % 4];
        let extra = registered.div_ceil(10) + registered / 20; // 10 to 15 % more
        let onset = 5 * synth::PER_DAY + 37;
        let (windows, _) = farm(
            100 + seed,
            8,
            registered,
            0.99,
            0.015,
            extra,
            onset,
            usize::MAX,
        );
        let found = run(&windows[..onset + synth::PER_DAY], registered);
        assert_eq!(found.len(), 1, "seed {seed}: {found:#?}");
        let f = &found[0];
        assert_eq!(f.kind, Kind::CapacityExceeded);
        assert_eq!(f.ended_at, None);
        assert!(
            (f.started_at - windows[onset].0.start).num_minutes().abs() <= 60,
            "seed {seed}: {}",
            f.started_at
        );
        // Energy above capacity, computed from the truth.
        let capacity_wh = f64::from(registered) * 3_250.0 * 0.25;
        let truth: f64 = windows[onset..onset + synth::PER_DAY]
            .iter()
            .map(|(_, e)| (e.unwrap_or(0.0) - capacity_wh).max(0.0))
            .sum();
        assert!(
            (f.energy_wh - truth).abs() <= 0.03 * truth,
            "seed {seed}: {} vs {truth}",
            f.energy_wh
        );
        assert!(
            f.evidence["unregistered_machines_estimate"]
                .as_f64()
                .expect("n")
                >= 1.0
        );
    }
}

#[test]
fn a_condition_that_stopped_ends_where_the_machines_were_switched_off() {
    let (from, until) = (3 * synth::PER_DAY + 10, 6 * synth::PER_DAY + 50);
    let (windows, _) = farm(5, 10, 200, 0.97, 0.015, 40, from, until);
    let found = run(&windows, 200);
    assert_eq!(found.len(), 1, "{found:#?}");
    let end = found[0].ended_at.expect("ended");
    assert!(
        (end - windows[until].0.start).num_minutes().abs() <= 60,
        "{end}"
    );
    assert!(
        (found[0].started_at - windows[from].0.start)
            .num_minutes()
            .abs()
            <= 60
    );
}

#[test]
fn an_ongoing_condition_keeps_its_start_as_the_period_slides() {
    let onset = 4 * synth::PER_DAY + 3;
    let (windows, _) = farm(9, 10, 300, 0.97, 0.015, 45, onset, usize::MAX);
    let starts: Vec<_> = [0, 96, 200, 300]
        .iter()
        .map(|s| {
            let found = run(&windows[*s..], 300);
            assert_eq!(found.len(), 1);
            found[0].started_at
        })
        .collect();
    assert!(starts.windows(2).all(|w| w[0] == w[1]), "{starts:?}");
}

/// A farm whose share of machines online follows `online` (per window), without wander.
fn farm_with(
    seed: u64,
    days: usize,
    registered: u32,
    online: &dyn Fn(usize) -> f64,
    overhead: f64,
    extra: &dyn Fn(usize) -> u32,
) -> Vec<(Window, Option<f64>)> {
    let mut rng = Rng::new(seed);
    let spec = WindowSpec::default();
    let mut w = spec.containing(synth::winter_start());
    let mut out = Vec::new();
    for i in 0..days * synth::PER_DAY {
        let machines = f64::from(registered) * online(i) + f64::from(extra(i));
        let power = machines * 3_250.0 * 0.97 * (1.0 + overhead) * (1.0 + 0.004 * rng.normal());
        out.push((w, Some(power * 0.25)));
        w = spec.next(w);
    }
    out
}

#[test]
fn unregistered_machines_hidden_under_the_tolerance_are_flagged_by_their_step() {
    // 88 % of the registered machines online, then 15 % more machines: 1.4 % above capacity,
    // under the level rule's tolerance, but a step above anything of the previous days.
    let onset = 5 * synth::PER_DAY + 20;
    let windows = farm_with(11, 8, 100, &|_| 0.88, 0.015, &|i| {
        if i >= onset {
            15
        } else {
            0
        }
    });
    let found = run(&windows[..onset + synth::PER_DAY], 100);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].evidence["rule"], "step");
    assert!(
        (found[0].started_at - windows[onset].0.start)
            .num_minutes()
            .abs()
            <= 60
    );
    let above_pre_step = found[0].evidence["energy_above_power_before_wh"]
        .as_f64()
        .expect("energy");
    // 15 machines x 3,250 W x 0.97 x 1.015 for a day, less the accuracy allowance.
    let truth = 15.0 * 3_250.0 * 0.97 * 1.015 * 24.0;
    assert!(
        (above_pre_step - truth).abs() < 0.1 * truth,
        "{above_pre_step} vs {truth}"
    );
}

#[test]
fn machines_returning_from_maintenance_outages_and_curtailment_are_not_a_step() {
    // A hot summer (4.5 % cooling and overhead), 88 % online for days, then everything back;
    // an outage and evening curtailments on top.
    let back = 6 * synth::PER_DAY + 30;
    let windows = farm_with(
        12,
        14,
        150,
        &|i| {
            let outage = (9 * synth::PER_DAY..9 * synth::PER_DAY + 16).contains(&i);
            let curtailed = i % synth::PER_DAY >= 48
                && i % synth::PER_DAY < 64
                && (i / synth::PER_DAY).is_multiple_of(3);
            let share = if i < back { 0.88 } else { 0.99 };
            share
                * if outage {
                    0.02
                } else if curtailed {
                    0.6
                } else {
                    1.0
                }
        },
        0.045,
        &|_| 0,
    );
    assert!(run(&windows, 150).is_empty());
}

#[test]
fn a_licence_without_machines_exceeds_with_any_load() {
    let (windows, _) = farm(2, 2, 10, 0.97, 0.015, 0, 0, 0);
    let found = run(&windows, 0);
    assert_eq!(found.len(), 1);
    assert!(found[0].score > 0.0 && found[0].score.is_finite());
}
