//! What reaches gridwatch: CONTRACT §2 payloads, with the flaws of a real network (lost, late,
//! duplicated, out-of-order, silent for hours, batched by concentrators) but never altered.

mod common;

use std::collections::{HashMap, HashSet};

use common::{readings_of, small_config};
use gridwatch_core::reading::{parse_gateway_payload, parse_meter_payload, ReadingBounds};
use gridwatch_core::topic::Topic;
use gridwatch_sim::config::NetworkConfig;
use gridwatch_sim::{topic_string, OutTopic, SimConfig, Simulation};

#[test]
fn every_payload_parses_with_the_core_parsers_and_topics_are_the_contracts() {
    let mut simulation = Simulation::new(small_config(1)).expect("valid");
    let bounds = ReadingBounds::unbounded();
    let mut gateway_messages = 0;
    let mut largest_batch = 0;
    while let Some(interval) = simulation.next_interval() {
        for message in &interval.messages {
            let topic = topic_string("gridwatch/v1", &message.topic);
            match (
                Topic::parse("gridwatch/v1", &topic).expect("a gridwatch topic"),
                &message.topic,
            ) {
                (Topic::MeterReadings(id), OutTopic::Meter(expected)) => {
                    assert_eq!(&id, expected);
                    parse_meter_payload(&id, &message.payload, &bounds).expect("valid reading");
                }
                (Topic::GatewayReadings(_), OutTopic::Gateway(_)) => {
                    gateway_messages += 1;
                    let elements = parse_gateway_payload(&message.payload, 500, &bounds)
                        .expect("array of at most 500");
                    largest_batch = largest_batch.max(elements.len());
                    assert!(elements.iter().all(|e| e.result.is_ok()));
                }
                (parsed, topic) => panic!("{topic:?} parsed as {parsed:?}"),
            }
        }
    }
    assert!(gateway_messages > 0 && largest_batch > 1);
}

#[test]
fn large_concentrators_split_their_uploads_at_the_batch_limit() {
    let mut config = small_config(1);
    config.network = NetworkConfig {
        gateway_batch_max: 7,
        ..NetworkConfig::perfect()
    };
    let mut simulation = Simulation::new(config).expect("valid");
    let interval = simulation.next_interval().expect("an interval");
    let bounds = ReadingBounds::unbounded();
    let sizes: Vec<usize> = interval
        .messages
        .iter()
        .filter(|m| matches!(m.topic, OutTopic::Gateway(_)))
        .map(|m| {
            parse_gateway_payload(&m.payload, 10_000, &bounds)
                .expect("array")
                .len()
        })
        .collect();
    assert!(
        sizes.iter().all(|&n| n <= 7) && sizes.contains(&7),
        "{sizes:?}"
    );
}

#[test]
fn a_perfect_network_delivers_every_reading_once_on_time() {
    let mut config = small_config(1);
    config.network = NetworkConfig::perfect();
    let mut simulation = Simulation::new(config).expect("valid");
    let meters = simulation.registry().meters.len();
    while let Some(interval) = simulation.next_interval() {
        let readings = readings_of(&interval);
        assert_eq!(readings.len(), meters);
        assert!(readings
            .iter()
            .all(|(_, ts, _)| *ts == interval.at.timestamp()));
        let unique: HashSet<&String> = readings.iter().map(|(m, _, _)| m).collect();
        assert_eq!(unique.len(), meters);
        // What is published is what the meters read.
        let truth: HashMap<String, i64> = simulation
            .registry()
            .meters
            .iter()
            .zip(&interval.truth.meters)
            .map(|(m, t)| (m.id.to_string(), t.register_wh))
            .collect();
        for (meter, _, register) in &readings {
            assert_eq!(truth[meter], *register);
        }
    }
}

#[test]
fn the_default_network_loses_delays_duplicates_and_reorders_but_never_alters() {
    let config = small_config(4);
    let perfect = SimConfig {
        network: NetworkConfig::perfect(),
        ..config.clone()
    };
    let mut flawed = Simulation::new(config).expect("valid");
    let mut clean = Simulation::new(perfect).expect("valid");
    let meters = flawed.registry().meters.len();
    let mut expected: HashMap<(String, i64), i64> = HashMap::new();
    let mut delivered: HashMap<(String, i64), u32> = HashMap::new();
    let mut newest: HashMap<String, i64> = HashMap::new();
    let (mut late, mut out_of_order, mut bursts, mut intervals) = (0, 0, 0, 0);
    while let (Some(a), Some(b)) = (flawed.next_interval(), clean.next_interval()) {
        intervals += 1;
        for (meter, ts, register) in readings_of(&b) {
            expected.insert((meter, ts), register);
        }
        let mut late_by_meter: HashMap<String, u32> = HashMap::new();
        for (meter, ts, register) in readings_of(&a) {
            // Every delivered value is the one the meter read (the perfect twin's).
            assert_eq!(
                expected.get(&(meter.clone(), ts)),
                Some(&register),
                "{meter} at {ts}"
            );
            *delivered.entry((meter.clone(), ts)).or_default() += 1;
            if ts < a.at.timestamp() {
                late += 1;
                *late_by_meter.entry(meter.clone()).or_default() += 1;
            }
            let newest_ts = newest.entry(meter).or_insert(ts);
            if ts < *newest_ts {
                out_of_order += 1;
            }
            *newest_ts = (*newest_ts).max(ts);
        }
        bursts += late_by_meter.values().filter(|&&n| n >= 4).count();
    }
    let total = meters * intervals;
    let unique = delivered.len();
    let duplicates: u32 = delivered.values().map(|n| n - 1).sum();
    let delivered_share = unique as f64 / total as f64;
    assert!(
        (0.95..0.995).contains(&delivered_share),
        "{delivered_share}"
    );
    assert!(duplicates > 0, "no duplicate");
    assert!(late as f64 > 0.01 * total as f64, "{late} late of {total}");
    assert!(out_of_order > 0, "no reading arrived after a newer one");
    assert!(bursts > 0, "no meter came back from a silence with a burst");
}

#[test]
fn slower_profiles_and_poll_time_stamps_follow_the_configured_shares() {
    let mut config = small_config(3);
    config.network = NetworkConfig::perfect();
    config.meters.household_half_hourly_share = 0.3;
    config.meters.household_hourly_share = 0.2;
    config.meters.household_poll_stamped_share = 0.5;
    let mut simulation = Simulation::new(config).expect("valid");
    let households_ids: HashSet<String> = simulation
        .registry()
        .meters
        .iter()
        .filter(|m| m.class == gridwatch_core::registry::MeterClass::Household)
        .map(|m| m.id.to_string())
        .collect();
    let mut per_meter: HashMap<String, Vec<i64>> = HashMap::new();
    while let Some(interval) = simulation.next_interval() {
        for (meter, ts, _) in readings_of(&interval) {
            per_meter.entry(meter).or_default().push(ts);
        }
    }
    let (mut quarter, mut half, mut hour, mut stamped, mut households) = (0, 0, 0, 0, 0);
    for (meter, stamps) in &per_meter {
        if !households_ids.contains(meter) {
            continue;
        }
        let step = stamps.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(0);
        let offset = stamps[0].rem_euclid(900);
        assert!(
            offset == 0 || (3..=55).contains(&offset),
            "{meter} stamped {offset} s after the boundary"
        );
        households += 1;
        stamped += usize::from(offset > 0);
        match step {
            900 => quarter += 1,
            1800 => half += 1,
            3600 => hour += 1,
            other => panic!("{meter} reads every {other} s"),
        }
    }
    let share = |n: usize| n as f64 / households as f64;
    assert!(households >= 50, "{households}");
    assert!(
        (share(half) - 0.3).abs() < 0.15,
        "half-hourly {half} of {households}"
    );
    assert!(
        (share(hour) - 0.2).abs() < 0.15,
        "hourly {hour} of {households}"
    );
    assert!(
        quarter > 0 && (share(stamped) - 0.5).abs() < 0.2,
        "stamped {stamped}"
    );
}
