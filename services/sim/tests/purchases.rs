//! Licensed farms buy their energy a little ahead, in transactions within the cap, priced at
//! the region's tariff (CONTRACT §3).

mod common;

use chrono::Duration;
use common::small_config;
use gridwatch_sim::{Purchase, SimConfig, Simulation};

#[test]
fn farms_buy_ahead_within_the_cap_and_cover_what_they_draw() {
    let config = SimConfig {
        regions: vec![gridwatch_sim::config::RegionConfig {
            mining_farms: 3,
            ..small_config(3).regions[0].clone()
        }],
        ..small_config(3)
    };
    let cap = config.mining.purchase_cap_wh;
    let mut simulation = Simulation::new(config).expect("valid");
    let registry = simulation.registry().clone();
    let farms: Vec<usize> = registry
        .meters
        .iter()
        .enumerate()
        .filter(|(_, m)| m.licence.is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(farms.len(), 3);
    let mut drawn = 0.0;
    let mut purchases: Vec<Purchase> = Vec::new();
    let mut first = true;
    while let Some(interval) = simulation.next_interval() {
        drawn += farms
            .iter()
            .map(|&m| interval.truth.meters[m].consumed_wh)
            .sum::<f64>();
        for purchase in &interval.purchases {
            assert!(purchase.energy_wh > 0 && purchase.energy_wh <= cap);
            assert_eq!(
                purchase.delivery_end - purchase.delivery_start,
                Duration::hours(1)
            );
            // Bought an hour ahead (the very first blocks as soon as the run starts).
            assert!(first || purchase.delivery_start - interval.at >= Duration::hours(1));
            let price = purchase.energy_wh as f64 / 1_000.0 * 10.3;
            assert!((purchase.price_kzt - price).abs() < 0.01, "{purchase:?}");
        }
        first = false;
        purchases.extend(interval.purchases);
    }
    let bought: i64 = purchases.iter().map(|p| p.energy_wh).sum();
    let ratio = bought as f64 / drawn;
    assert!(
        (1.0..1.06).contains(&ratio),
        "bought {ratio} of what was drawn"
    );
    let mut ids: Vec<&str> = purchases.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), purchases.len());
    // The contract's JSON shape, field for field.
    let json = serde_json::to_value(&purchases[0]).expect("json");
    let mut fields: Vec<&String> = json.as_object().expect("object").keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "delivery_end",
            "delivery_start",
            "energy_wh",
            "id",
            "licence",
            "price_kzt"
        ]
    );
    assert!(json["delivery_start"]
        .as_str()
        .expect("a time")
        .ends_with('Z'));
}

#[test]
fn a_farm_larger_than_the_cap_per_block_splits_its_purchases() {
    let mut config = small_config(1);
    config.mining.registered_machines = [600.0, 600.0];
    let mut simulation = Simulation::new(config).expect("valid");
    let interval = simulation.next_interval().expect("an interval");
    let block = interval.purchases[0].delivery_start;
    let licence = interval.purchases[0].licence.clone();
    let same_block: Vec<&Purchase> = interval
        .purchases
        .iter()
        .filter(|p| p.delivery_start == block && p.licence == licence)
        .collect();
    // 600 machines x about 3.1 kW = 1.9 MWh an hour: two transactions, one at the cap.
    assert_eq!(same_block.len(), 2);
    assert!(same_block.iter().any(|p| p.energy_wh == 1_000_000));
}
