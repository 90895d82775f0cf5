use super::*;
use crate::synth::{self, Rng, PER_DAY};
use gridwatch_core::registry::MeterClass;

/// Windows between UTC and local midnight (UTC+5).
const LOCAL_SHIFT: usize = 20;

#[derive(Debug, Clone, Copy)]
enum Attack {
    H1,
    H2,
    H3,
    H4,
    H5,
    H6,
    Cap(f64),
    Subtract(f64),
}

/// What a tampered meter reports from local day `from_day` on (Jokar et al.'s attacks, applied
/// to each local day of true powers `x`).
fn attacked(rng: &mut Rng, x: &[f64], from_day: usize, attack: Attack) -> Vec<f64> {
    let mut out = x.to_vec();
    let mean_w = x.iter().sum::<f64>() / x.len() as f64;
    let mut start = from_day * PER_DAY - LOCAL_SHIFT;
    while start < x.len() {
        // The last day may be cut short by the end of the data.
        let len = PER_DAY.min(x.len() - start);
        let day = &x[start..start + len];
        let day_mean = day.iter().sum::<f64>() / len as f64;
        let alpha = rng.range(0.1, 0.8);
        let (a, b) = {
            let a = rng.range(0.0, 80.0) as usize;
            (a, (a + 16 + rng.range(0.0, 40.0) as usize).min(PER_DAY))
        };
        for (j, v) in out[start..start + len].iter_mut().enumerate() {
            let t = day[j];
            *v = match attack {
                Attack::H1 => alpha * t,
                Attack::H2 => {
                    if (a..b).contains(&j) {
                        0.0
                    } else {
                        t
                    }
                }
                Attack::H3 => rng.range(0.1, 0.8) * t,
                Attack::H4 => rng.range(0.1, 0.8) * day_mean,
                Attack::H5 => day_mean,
                Attack::H6 => day[len - 1 - j],
                Attack::Cap(share) => t.min(share * mean_w),
                Attack::Subtract(share) => (t - share * mean_w).max(0.0),
            };
        }
        start += PER_DAY;
    }
    out
}

/// A meter's profile from reported powers, registers rounded to whole Wh as a real meter's.
fn meter(id: &str, reported_w: &[f64]) -> MeterProfile {
    let mut p = synth::profile(id, MeterClass::Household, "east-kz", reported_w);
    let mut register = 0.0f64;
    let mut last = 0.0f64;
    for e in p.energy_wh.iter_mut() {
        register += e.unwrap_or(0.0);
        let now = register.round();
        *e = Some(now - last);
        last = now;
    }
    p
}

/// A node's residual above its expected loss: the energy its tampered meters hide, plus the
/// loss model's error, white and wandering over half a day: about 0.5 kWh a day, 0.5 % of a
/// transformer feeding twenty homes.
fn node_excess(rng: &mut Rng, hidden_wh: &[f64]) -> Vec<Option<f64>> {
    let mut drift = 0.0;
    hidden_wh
        .iter()
        .map(|h| {
            drift = 0.98 * drift + 0.2 * rng.normal();
            Some(h + 10.0 * rng.normal() + 8.0 * drift)
        })
        .collect()
}

fn hidden(truth_w: &[f64], reported_w: &[f64]) -> Vec<f64> {
    truth_w
        .iter()
        .zip(reported_w)
        .map(|(t, r)| (t - r) * 0.25)
        .collect()
}

fn home(seed: u64, days: usize) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mean = 240.0 * (0.4 * rng.normal()).exp();
    synth::household(&mut rng, days, mean)
}

/// A household of mean power `mean_w`.
fn home_of(seed: u64, days: usize, mean_w: f64) -> Vec<f64> {
    synth::household(&mut Rng::new(seed), days, mean_w)
}

#[test]
fn a_register_running_backwards_is_flagged_at_once_with_what_it_hid() {
    let days = 10;
    let x = home(1, days);
    let mut reported = x.clone();
    let mut flags = vec![false; x.len()];
    // From day 5, three night hours (local 01:00-04:00) each night run the register back.
    for d in 5..days {
        for i in d * PER_DAY - LOCAL_SHIFT + 4..d * PER_DAY - LOCAL_SHIFT + 16 {
            reported[i] = -x[i];
            flags[i] = true;
        }
    }
    let mut p = meter("M-BACK", &reported);
    p.backwards = flags.clone();
    let found = meter_tamper(&p, &TamperParams::default());
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    let first = flags.iter().position(|b| *b).expect("flag");
    assert_eq!(f.started_at, p.window(first).start);
    assert_eq!(f.ended_at, None);
    assert_eq!(f.confidence, 0.95);
    // Hidden: what was used plus what was rolled back.
    let truth: f64 = (0..x.len())
        .filter(|i| flags[*i])
        .map(|i| 2.0 * x[i] * 0.25)
        .sum();
    assert!(
        (f.energy_wh - truth).abs() < 0.3 * truth,
        "{} vs {truth}",
        f.energy_wh
    );
}

#[test]
fn a_flat_line_at_the_daily_mean_is_flagged_without_energy() {
    for seed in 0..10 {
        let days = 14;
        let x = home(10 + seed, days);
        let reported = attacked(&mut Rng::new(seed), &x, 9, Attack::H5);
        let p = meter("M-FLAT", &reported);
        let found = meter_tamper(&p, &TamperParams::default());
        assert_eq!(found.len(), 1, "seed {seed}: {found:#?}");
        let f = &found[0];
        assert_eq!(f.evidence["signal"], "flat_line_at_usual_level");
        assert_eq!(f.energy_wh, 0.0);
        assert_eq!(f.ended_at, None);
        let onset = p.window(9 * PER_DAY - LOCAL_SHIFT).start;
        assert!(
            (f.started_at - onset).num_minutes().abs() <= 15,
            "seed {seed}: {}",
            f.started_at
        );
    }
}

#[test]
fn empty_homes_and_bridged_gaps_are_not_flat_lines() {
    let days = 14;
    let x = home(30, days);
    let mut reported = x.clone();
    // Five days away: only standby, 35 W, left.
    for v in reported[5 * PER_DAY..10 * PER_DAY].iter_mut() {
        *v = 35.0;
    }
    // A six-hour gap bridged by interpolation: equal windows.
    let gap = 11 * PER_DAY + 10..11 * PER_DAY + 34;
    let bridged = reported[gap.clone()].iter().sum::<f64>() / gap.len() as f64;
    for v in reported[gap].iter_mut() {
        *v = bridged;
    }
    let p = meter("M-AWAY", &reported);
    assert!(meter_tamper(&p, &TamperParams::default()).is_empty());
}

#[test]
fn reversed_days_are_flagged_on_most_households() {
    let mut caught = 0;
    for seed in 0..20 {
        let days = 21;
        let x = home(40 + seed, days);
        let reported = attacked(&mut Rng::new(seed), &x, 12, Attack::H6);
        let p = meter("M-REV", &reported);
        let found = meter_tamper(&p, &TamperParams::default());
        if let Some(f) = found
            .iter()
            .find(|f| f.evidence["signal"] == "day_reversed")
        {
            caught += 1;
            let onset = p.window(12 * PER_DAY - LOCAL_SHIFT).start;
            assert!(
                // Days are judged whole: the onset is placed within a day or so.
                (f.started_at - onset).num_hours().abs() <= 30,
                "{}",
                f.started_at
            );
            assert_eq!(f.energy_wh, 0.0);
        }
    }
    eprintln!("reversal caught {caught}/20");
    assert!(caught >= 14, "caught {caught}/20");
}

#[test]
fn days_that_fit_a_mirror_but_lost_half_their_energy_are_not_a_reversal() {
    // A reversal reorders a day's hours and keeps its energy: the same reversed days at half
    // the level are a change of routine (or another tamper, which the drop match judges).
    for seed in 0..20 {
        let x = home(40 + seed, 21);
        let reversed = attacked(&mut Rng::new(seed), &x, 12, Attack::H6);
        let halved = scaled_from(&reversed, 12, 0.5);
        let found = findings_of(&meter("M-AWAY", &halved), "day_reversed");
        assert!(found.is_empty(), "seed {seed}: {found:#?}");
    }
}

#[test]
fn a_heated_home_whose_days_drift_the_other_way_is_not_reversed() {
    // A home heated electrically has little shape of its own: its day follows the weather,
    // here cooling through each day for a week, then warming through each day (a cold front
    // passed). Mirrored, one ramp fits the other: the days "reverse" without any device.
    for seed in 0..20 {
        let mut rng = Rng::new(7_000 + seed);
        let days = 21;
        let x: Vec<f64> = (0..days * PER_DAY)
            .map(|i| {
                let (d, t) = (i / PER_DAY, (i % PER_DAY) as f64 / PER_DAY as f64 - 0.5);
                let slope = if d < 12 { -600.0 } else { 500.0 };
                (2_000.0 + slope * t + 150.0 * rng.normal()).max(0.0)
            })
            .collect();
        let p = meter("M-HEATED", &x);
        let found = findings_of(&p, "day_reversed");
        assert!(found.is_empty(), "seed {seed}: {found:#?}");
    }
}

#[test]
fn clean_households_show_no_tampering() {
    let params = TamperParams::default();
    for seed in 0..300 {
        let days = 21;
        let x = home(1_000 + seed, days);
        let p = meter("M-CLEAN", &x);
        let found = meter_tamper(&p, &params);
        assert!(found.is_empty(), "seed {seed}: {found:#?}");
        let excess = node_excess(&mut Rng::new(seed), &vec![0.0; x.len()]);
        assert!(
            residual_match(&p, &excess, &[], &[], &params).is_none(),
            "seed {seed}"
        );
    }
}

#[test]
fn drops_matched_by_the_node_residual_are_flagged_with_the_hidden_energy() {
    // Households of about 240 W at a node whose residual wanders by about 0.5 kWh a day, a
    // week after the attack began: (attack, how many of 20 must be caught). Small drops (a
    // cap at the mean power, zeroing a few hours) hide a kWh a day or two, near the node's
    // noise, and are caught less often (h2 also has its own rule, hours of nothing every day).
    let attacks = [
        (Attack::H1, 16),
        (Attack::H2, 6),
        (Attack::H3, 16),
        (Attack::H4, 18),
        (Attack::Cap(1.0), 6),
        (Attack::Subtract(0.4), 9),
    ];
    for (k, (attack, expected)) in attacks.iter().enumerate() {
        let mut caught = 0;
        let mut errors = Vec::new();
        let mut onset_errors = Vec::new();
        for seed in 0..20 {
            let days = 21;
            let x = home(2_000 + 100 * k as u64 + seed, days);
            let mut rng = Rng::new(seed);
            let reported = attacked(&mut rng, &x, 14, *attack);
            let hid = hidden(&x, &reported);
            let excess = node_excess(&mut rng, &hid);
            let p = meter("M-TAMPER", &reported);
            let Some(f) = residual_match(&p, &excess, &[], &[], &TamperParams::default()) else {
                continue;
            };
            caught += 1;
            let onset = p.window(14 * PER_DAY - LOCAL_SHIFT).start;
            onset_errors.push((f.started_at - onset).num_hours().abs());
            assert_eq!(f.ended_at, None, "{attack:?} seed {seed}");
            assert_eq!(f.suspects, vec!["M-TAMPER".to_string()]);
            assert!(f.confidence >= 0.6);
            let truth: f64 = hid.iter().sum();
            errors.push(f.energy_wh / truth - 1.0);
        }
        errors.sort_by(f64::total_cmp);
        onset_errors.sort();
        let median_error = errors.get(errors.len() / 2).copied().unwrap_or(0.0);
        eprintln!("{attack:?}: caught {caught}/20, energy errors {errors:.2?}, onset errors {onset_errors:?}");
        assert!(caught >= *expected, "{attack:?}: caught {caught}/20");
        // The baseline is the household's own past, and its weeks vary by 10 to 15 %; a cap
        // at the mean power bites only on busy days, and its few kWh are estimated as loosely
        // as the days it bit on.
        let bound = if matches!(attack, Attack::Cap(_)) {
            0.35
        } else {
            0.2
        };
        assert!(median_error.abs() < bound, "{attack:?}: {errors:?}");
        // The onset within hours, or days when the first attacked days were mild (h1 draws
        // its factor per day; a cap only bites on busy days).
        assert!(
            onset_errors[onset_errors.len() / 2] <= 12,
            "{attack:?}: {onset_errors:?}"
        );
        assert!(
            onset_errors.iter().all(|e| *e <= 120),
            "{attack:?}: {onset_errors:?}"
        );
    }
}

#[test]
fn a_holiday_is_not_a_tamper_when_the_node_lost_nothing() {
    let params = TamperParams::default();
    for seed in 0..50 {
        let days = 21;
        let x = home(3_000 + seed, days);
        let mut reported = x.clone();
        for v in reported[14 * PER_DAY..].iter_mut() {
            *v = 40.0 + 0.1 * *v;
        }
        let p = meter("M-AWAY", &reported);
        let excess = node_excess(&mut Rng::new(seed), &vec![0.0; x.len()]);
        assert!(
            residual_match(&p, &excess, &[], &[], &params).is_none(),
            "seed {seed}"
        );
    }
}

#[test]
fn a_tamper_keeps_its_start_as_the_period_slides_and_ends_when_removed() {
    // A home using 12 kWh a day: what it hides is well above the node's noise.
    let days = 30;
    let x = home_of(4_000, days, 500.0);
    let mut rng = Rng::new(4);
    let mut reported = attacked(&mut rng, &x, 12, Attack::H1);
    let removed = 22 * PER_DAY - LOCAL_SHIFT;
    reported[removed..].copy_from_slice(&x[removed..]);
    let hid = hidden(&x, &reported);
    let excess = node_excess(&mut rng, &hid);
    let full = meter("M-SLIDE", &reported);
    // Profiles ending every few days; each keeps a week of history before the onset (the
    // baseline), which is all the function needs to see the drop.
    let mut starts = Vec::new();
    for (a, b) in [(0, 17), (2, 19), (4, 21), (5, 26), (5, 30)] {
        let (a, b) = (a * PER_DAY, b * PER_DAY);
        let mut p = full.clone();
        p.start = full.window(a).start;
        p.energy_wh = full.energy_wh[a..b].to_vec();
        p.backwards = full.backwards[a..b].to_vec();
        let f = residual_match(&p, &excess[a..b], &[], &[], &TamperParams::default())
            .unwrap_or_else(|| panic!("slice {a}..{b} not matched"));
        starts.push(f.started_at);
        if b >= 26 * PER_DAY {
            let end = f.ended_at.expect("ended");
            assert!(
                (end - full.window(removed).start).num_hours().abs() <= 12,
                "{end}"
            );
        } else {
            assert_eq!(f.ended_at, None);
        }
    }
    assert!(starts.windows(2).all(|w| w[0] == w[1]), "{starts:?}");
}

#[test]
fn findings_of_one_meter_that_overlap_merge_into_one() {
    let days = 14;
    let x = home(5_000, days);
    let mut reported = attacked(&mut Rng::new(5), &x, 8, Attack::H1);
    let mut flags = vec![false; x.len()];
    for i in 9 * PER_DAY..9 * PER_DAY + 8 {
        reported[i] = -x[i];
        flags[i] = true;
    }
    let hid = hidden(&x, &reported);
    let excess = node_excess(&mut Rng::new(6), &hid);
    let mut p = meter("M-BOTH", &reported);
    p.backwards = flags;
    let mut all = meter_tamper(&p, &TamperParams::default());
    all.extend(residual_match(
        &p,
        &excess,
        &[],
        &[],
        &TamperParams::default(),
    ));
    assert_eq!(all.len(), 2, "{all:#?}");
    let merged = merge_overlapping(all);
    assert_eq!(merged.len(), 1);
    assert_eq!(
        merged[0].evidence["signals"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(merged[0].confidence, 0.95);
}

#[test]
#[ignore = "calibration: prints the match statistics of attacks and of clean meters"]
fn calibration() {
    let show = |label: &str, f: &Finding, onset: Option<chrono::DateTime<chrono::Utc>>| {
        eprintln!(
            "{label}: mz {} nz {} corr {} ratio {} onset_err_h {:?} ended {:?}",
            f.evidence["meter_drop_z"],
            f.evidence["node_rise_z"],
            f.evidence["daily_correlation"],
            f.evidence["node_rise_over_deficit"],
            onset.map(|o| (f.started_at - o).num_hours()),
            f.ended_at
        )
    };
    let loose = TamperParams::default();
    let attacks = [
        Attack::H1,
        Attack::H2,
        Attack::H3,
        Attack::H4,
        Attack::Cap(1.0),
        Attack::Subtract(0.4),
    ];
    for (k, attack) in attacks.iter().enumerate() {
        for seed in 0..20 {
            let days = 21;
            let x = home(2_000 + 100 * k as u64 + seed, days);
            let mut rng = Rng::new(seed);
            let reported = attacked(&mut rng, &x, 14, *attack);
            let hid = hidden(&x, &reported);
            let excess = node_excess(&mut rng, &hid);
            let p = meter("M", &reported);
            match residual_match(&p, &excess, &[], &[], &loose) {
                Some(f) => show(
                    &format!("{attack:?}"),
                    &f,
                    Some(p.window(14 * PER_DAY - LOCAL_SHIFT).start),
                ),
                None => eprintln!("{attack:?}: missed"),
            }
        }
    }
    for seed in 0..600 {
        let days = 21;
        let x = home(1_000 + seed, days);
        let p = meter("M", &x);
        let excess = node_excess(&mut Rng::new(seed), &vec![0.0; x.len()]);
        if let Some(f) = residual_match(&p, &excess, &[], &[], &loose) {
            show("CLEAN", &f, None);
        }
    }
}

#[test]
fn a_replaced_meter_starting_again_from_zero_is_not_a_tamper() {
    let days = 10;
    let x = home(6_000, days);
    let mut p = meter("M-NEW", &x);
    // The register fell from 5,000 kWh to 0: one window of -5,000 kWh.
    p.energy_wh[400] = Some(-5_000_000.0);
    p.backwards[400] = true;
    assert!(meter_tamper(&p, &TamperParams::default()).is_empty());
}

/// `reported_w` scaled by `factor` from local day `from_day` on.
fn scaled_from(reported_w: &[f64], from_day: usize, factor: f64) -> Vec<f64> {
    let from = from_day * PER_DAY - LOCAL_SHIFT;
    reported_w
        .iter()
        .enumerate()
        .map(|(i, v)| if i >= from { v * factor } else { *v })
        .collect()
}

#[test]
fn a_drop_every_home_of_the_node_shares_is_not_a_tamper() {
    // From day 14 every home of a node uses 35 % less (a warm spell, a holiday, a
    // concentrator whose readings are late): each drop is real, none is a tamper.
    let params = TamperParams::default();
    let days = 21;
    let peers: Vec<Vec<Option<f64>>> = (0..4)
        .map(|k| {
            daily_ratios(
                &meter("M-PEER", &scaled_from(&home(7_100 + k, days), 14, 0.65)),
                &params,
            )
        })
        .collect();
    let refs: Vec<&[Option<f64>]> = peers.iter().map(Vec::as_slice).collect();
    let common = peer_factors(&refs);
    let (mut alone, mut among_peers) = (0, 0);
    for seed in 0..10 {
        let x = home(7_000 + seed, days);
        let p = meter("M-WARM", &scaled_from(&x, 14, 0.65));
        if clean_history_end(&p, &[], &params).is_some() {
            alone += 1;
        }
        // Against its peers, what is left is the home's own day-to-day spread.
        if clean_history_end(&p, &common, &params).is_some() {
            among_peers += 1;
        }
    }
    assert!(alone >= 8, "alone, the drop shows ({alone}/10)");
    assert!(
        among_peers <= 2,
        "among its peers, the drop is common ({among_peers}/10)"
    );
    // Among peers that did not move, a tampered meter still drops.
    let flat: Vec<Vec<Option<f64>>> = (0..4)
        .map(|k| daily_ratios(&meter("M-PEER", &home(7_100 + k, days)), &params))
        .collect();
    let refs: Vec<&[Option<f64>]> = flat.iter().map(Vec::as_slice).collect();
    let common = peer_factors(&refs);
    let x = home(7_050, days);
    let reported = attacked(&mut Rng::new(3), &x, 14, Attack::H4);
    let p = meter("M-TAMPER", &reported);
    assert!(clean_history_end(&p, &common, &params).is_some());
    let excess = node_excess(&mut Rng::new(3), &hidden(&x, &reported));
    assert!(residual_match(&p, &excess, &[], &common, &params).is_some());
}

#[test]
fn a_node_rise_far_beyond_the_meters_drop_is_not_its_tamper() {
    // The same drops, matched when the node rises by what the meter hid, not when it rises
    // five times as much: then something else moved the node.
    let params = TamperParams::default();
    let mut matched = 0;
    for seed in 0..20 {
        let x = home(7_300 + seed, 21);
        let reported = attacked(&mut Rng::new(seed), &x, 14, Attack::H4);
        let hid = hidden(&x, &reported);
        let p = meter("M-BESIDE", &reported);
        if residual_match(
            &p,
            &node_excess(&mut Rng::new(seed), &hid),
            &[],
            &[],
            &params,
        )
        .is_none()
        {
            continue;
        }
        matched += 1;
        // Under a node delivering a thousand times the home's use, the same deficit is
        // within what the node's balance can be wrong by.
        let huge: Vec<Option<f64>> = x.iter().map(|w| Some(1_000.0 * w / 4.0)).collect();
        assert!(
            residual_match(
                &p,
                &node_excess(&mut Rng::new(seed), &hid),
                &huge,
                &[],
                &params
            )
            .is_none(),
            "seed {seed}"
        );
        let five: Vec<f64> = hid.iter().map(|h| 5.0 * h).collect();
        assert!(
            residual_match(
                &p,
                &node_excess(&mut Rng::new(seed), &five),
                &[],
                &[],
                &params
            )
            .is_none(),
            "seed {seed}"
        );
    }
    assert!(matched >= 15, "matched {matched}/20");
}

/// The findings of `p` from its own profile with evidence `signal`.
fn findings_of(p: &MeterProfile, signal: &str) -> Vec<Finding> {
    meter_tamper(p, &TamperParams::default())
        .into_iter()
        .filter(|f| f.evidence["signal"] == signal)
        .collect()
}

/// The findings of `p` from its daily zero runs.
fn zeroed_findings(p: &MeterProfile) -> Vec<Finding> {
    findings_of(p, "daily_zero_runs")
}

#[test]
fn hours_of_nothing_every_day_are_raised_with_the_energy_they_hid() {
    // Jokar h2 from day 14 of 21: at least four hours at zero each day.
    let mut caught = 0;
    let mut errors = Vec::new();
    for seed in 0..10 {
        let x = home(7_400 + seed, 21);
        let reported = attacked(&mut Rng::new(seed), &x, 14, Attack::H2);
        let found = zeroed_findings(&meter("M-ZERO", &reported));
        let Some(f) = found.first() else {
            continue;
        };
        caught += 1;
        assert_eq!(f.suspects, vec!["M-ZERO".to_string()]);
        assert_eq!(f.ended_at, None, "seed {seed}: still going");
        let truth: f64 = hidden(&x, &reported).iter().sum();
        errors.push(f.energy_wh / truth - 1.0);
    }
    errors.sort_by(f64::total_cmp);
    eprintln!("h2 by zero runs: caught {caught}/10, energy errors {errors:.2?}");
    assert!(caught >= 9, "caught {caught}/10");
    let median = errors[errors.len() / 2];
    assert!(median.abs() < 0.3, "median energy error {median}");
}

#[test]
fn homes_away_switched_off_or_honest_never_read_as_zeroed() {
    for seed in 0..40 {
        let x = home(7_500 + seed, 21);
        assert!(
            zeroed_findings(&meter("M-HONEST", &x)).is_empty(),
            "seed {seed}"
        );
        // Away from day 14: standby only, low all day.
        let away = scaled_from(&x, 14, 0.15);
        assert!(
            zeroed_findings(&meter("M-AWAY", &away)).is_empty(),
            "seed {seed}"
        );
    }
    // Switched off at the main breaker for whole days: zero all day, nothing else normal.
    let x = home(7_600, 21);
    let off = scaled_from(&x, 14, 0.0);
    assert!(zeroed_findings(&meter("M-OFF", &off)).is_empty());
}

/// The findings of `p` from days without a shape.
fn shapeless_findings(p: &MeterProfile) -> Vec<Finding> {
    findings_of(p, "days_without_shape")
}

#[test]
fn days_without_a_shape_are_raised_with_the_energy_they_hid() {
    // Jokar h4 from day 14 of 21: each reading a random share (0.1-0.8) of the day's mean.
    let mut caught = 0;
    let mut errors = Vec::new();
    for seed in 0..20 {
        let x = home(7_700 + seed, 21);
        let reported = attacked(&mut Rng::new(seed), &x, 14, Attack::H4);
        let p = meter("M-NOISE", &reported);
        let Some(f) = shapeless_findings(&p).into_iter().next() else {
            continue;
        };
        caught += 1;
        assert_eq!(f.suspects, vec!["M-NOISE".to_string()]);
        assert_eq!(f.ended_at, None, "seed {seed}: still going");
        // Days are judged whole, and a first attacked day that happens to keep some shape
        // is left out: the onset is placed within two days.
        let onset = p.window(14 * PER_DAY - LOCAL_SHIFT).start;
        assert!(
            (f.started_at - onset).num_hours().abs() <= 48,
            "seed {seed}: {}",
            f.started_at
        );
        // The truth over the days the finding covers.
        let from = ((f.started_at - p.start).num_minutes() / 15) as usize;
        let truth: f64 = hidden(&x, &reported)[from..].iter().sum();
        errors.push(f.energy_wh / truth - 1.0);
    }
    errors.sort_by(f64::total_cmp);
    eprintln!("h4 by days without a shape: caught {caught}/20, energy errors {errors:.2?}");
    assert!(caught >= 16, "caught {caught}/20");
    let median = errors[errors.len() / 2];
    assert!(median.abs() < 0.2, "median energy error {median}");
}

#[test]
fn a_home_away_or_with_a_new_routine_keeps_a_shape() {
    for seed in 0..40 {
        let x = home(7_800 + seed, 21);
        // Away from day 14: the standby, a tenth or two of the usual use.
        let away = scaled_from(&x, 14, 0.15);
        assert!(
            shapeless_findings(&meter("M-AWAY", &away)).is_empty(),
            "seed {seed}"
        );
        // Night shifts from day 14: the day moved by eight hours, a fifth less energy.
        let mut shifted = x.clone();
        let from = 14 * PER_DAY;
        for (i, v) in shifted.iter_mut().enumerate().skip(from) {
            *v = 0.8 * x[from + (i - from + 32) % (x.len() - from)];
        }
        assert!(
            shapeless_findings(&meter("M-SHIFT", &shifted)).is_empty(),
            "seed {seed}"
        );
    }
}

#[test]
fn a_stopped_device_ends_the_condition() {
    // h4 on days 9 to 16 of 21, the meter honest again after.
    let mut raised = 0;
    for seed in 0..10 {
        let x = home(7_900 + seed, 21);
        let mut reported = attacked(&mut Rng::new(seed), &x, 9, Attack::H4);
        let back = 16 * PER_DAY - LOCAL_SHIFT;
        reported[back..].copy_from_slice(&x[back..]);
        let p = meter("M-STOP", &reported);
        let f = shapeless_findings(&p);
        let Some(f) = f.first() else {
            continue;
        };
        raised += 1;
        let ended = f.ended_at.expect("ended");
        assert!(
            (ended - p.window(back).start).num_hours().abs() <= 24,
            "seed {seed}: {ended}"
        );
    }
    assert!(raised >= 8, "raised {raised}/10");
}

/// A drop matched at a node: `days` days from `from_day`, the meter's deficit and the node's
/// rise over them, kWh, and how closely the node followed the meter.
fn matched(
    meter: &str,
    from_day: i64,
    days: i64,
    deficit_kwh: f64,
    rise_kwh: f64,
    follow: f64,
) -> Finding {
    let start = synth::winter_start() + Duration::days(from_day);
    Finding {
        kind: Kind::MeterTamper,
        region: None,
        node: None,
        meter: Some(gridwatch_core::MeterId::parse(meter).expect("id")),
        licence: None,
        started_at: start,
        ended_at: Some(start + Duration::days(days)),
        energy_wh: deficit_kwh * 1000.0,
        score: 4.0,
        confidence: 0.8,
        suspects: vec![meter.to_string()],
        evidence: json!({
            "signal": "drop_matched_by_node_residual",
            "unreported_wh": deficit_kwh * 1000.0,
            "node_rise_wh": rise_kwh * 1000.0,
            "daily_correlation": follow,
        }),
    }
}

#[test]
fn a_node_rise_confirms_only_as_many_deficits_as_it_lost() {
    let params = TamperParams::default();
    let until = synth::winter_start() + Duration::days(30);
    let names = |found: Vec<Finding>| -> Vec<String> {
        found
            .into_iter()
            .filter_map(|f| f.meter.map(|m| m.to_string()))
            .collect()
    };
    // A tampered meter hides 3 kWh a day for 10 days, and its node lost as much; a neighbour's
    // own use fell by 2.5 kWh a day over 8 of those days, and over them the node lost the
    // tampered meter's 24 kWh: it is not the neighbour's.
    let tampered = matched("M-T", 10, 10, 30.0, 31.0, 0.8);
    let neighbour = matched("M-N", 12, 8, 20.0, 25.0, 0.5);
    assert_eq!(
        names(shared_rises(
            vec![(1, neighbour.clone()), (1, tampered.clone())],
            until,
            &params
        )),
        vec!["M-T"]
    );
    // At another node, each is confirmed by its own node.
    assert_eq!(
        names(shared_rises(
            vec![(1, tampered.clone()), (2, neighbour)],
            until,
            &params
        ))
        .len(),
        2
    );
    // Two meters tampered at once: the node lost both deficits, both are kept.
    let second = matched("M-2", 12, 8, 20.0, 45.0, 0.6);
    assert_eq!(
        names(shared_rises(
            vec![(1, tampered), (1, second)],
            until,
            &params
        )),
        vec!["M-T", "M-2"]
    );
}

#[test]
fn peer_factors_of_each_member_leave_that_member_out() {
    let mut rng = Rng::new(11);
    for size in [0usize, 1, 2, 3, 4, 5, 8, 31] {
        let members: Vec<Vec<Option<f64>>> = (0..size)
            .map(|i| {
                (0..14)
                    .map(|d| {
                        // Unknown days, ties and values beyond the clamp.
                        match (i + d) % 7 {
                            0 => None,
                            1 => Some(1.0),
                            _ => Some((0.8 * rng.normal()).exp()),
                        }
                    })
                    .collect()
            })
            .collect();
        let slices: Vec<&[Option<f64>]> = members.iter().map(Vec::as_slice).collect();
        let each = peer_factors_of_each(&slices);
        assert_eq!(each.len(), size);
        for (i, factors) in each.iter().enumerate() {
            let others: Vec<&[Option<f64>]> = slices
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, s)| *s)
                .collect();
            let expected = peer_factors(&others);
            assert_eq!(factors.len(), 14);
            for (d, (a, b)) in factors
                .iter()
                .zip(expected.iter().chain(std::iter::repeat(&None)))
                .enumerate()
            {
                match (a, b) {
                    (Some(a), Some(b)) => assert!(
                        (a - b).abs() < 1e-12,
                        "size {size} member {i} day {d}: {a} {b}"
                    ),
                    (None, None) => {}
                    _ => panic!("size {size} member {i} day {d}: {a:?} {b:?}"),
                }
            }
        }
    }
}
