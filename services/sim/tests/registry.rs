//! The grid as a registry document: valid for gridwatch, with the ids the contract allows.

mod common;

use gridwatch_core::registry::{validate, MeterClass, MeterRole, RegistryDocument};
use gridwatch_sim::config::RegionConfig;
use gridwatch_sim::{SimConfig, Simulation};

fn registry_of(config: SimConfig) -> RegistryDocument {
    Simulation::new(config).expect("valid").registry().clone()
}

#[test]
fn the_default_grid_passes_the_core_validator() {
    let registry = registry_of(SimConfig::default());
    assert_eq!(validate(&registry, &RegistryDocument::default()), Ok(()));
    assert_eq!(registry.regions.len(), 1);
    assert_eq!(registry.regions[0].id.as_str(), "east-kz");
    assert_eq!(registry.regions[0].name, "East Kazakhstan");
    assert_eq!(registry.regions[0].tariff_kzt_per_kwh, 10.3);
    // The document serialises and parses back as CONTRACT §1 JSON.
    let json = serde_json::to_vec(&registry).expect("serialises");
    let back = gridwatch_core::registry::parse_document(&json).expect("parses");
    assert_eq!(back, registry);
}

#[test]
fn a_multi_region_grid_without_transformers_passes_the_core_validator() {
    let config = SimConfig {
        regions: vec![
            RegionConfig::default(),
            RegionConfig {
                id: gridwatch_core::RegionId::parse("pavlodar").expect("id"),
                name: "Pavlodar".into(),
                id_prefix: "PV".into(),
                substations: 1,
                transformers_per_feeder: 0,
                households: 50,
                mining_farms: 3,
                ..RegionConfig::default()
            },
        ],
        ..SimConfig::default()
    };
    let registry = registry_of(config);
    assert_eq!(validate(&registry, &RegistryDocument::default()), Ok(()));
    assert!(registry.nodes.iter().any(|n| n.id.as_str() == "PV-F-001"));
    assert_eq!(registry.licences.len(), 5);
}

#[test]
fn the_tree_has_boundary_meters_where_the_issue_says() {
    let registry = registry_of(SimConfig::default());
    let kind_of = |kind: &'static str| registry.nodes.iter().filter(move |n| n.kind == kind);
    assert!(kind_of("substation").all(|n| n.parent.is_none() && n.input_meter.is_some()));
    assert!(kind_of("feeder").all(|n| n.input_meter.is_some()));
    let transformers = kind_of("transformer").count();
    let metered = kind_of("transformer")
        .filter(|n| n.input_meter.is_some())
        .count();
    assert!(
        metered > 0 && metered < transformers,
        "{metered} of {transformers}"
    );
    for meter in &registry.meters {
        if meter.role == MeterRole::Input {
            assert_eq!(meter.class, MeterClass::Boundary);
            assert_eq!(meter.accuracy_pct, 0.5);
        }
    }
    assert!(registry.meters.iter().any(|m| m.id.as_str() == "M-000001"));
    assert!(registry.meters.iter().any(|m| m.id.as_str() == "FARM-001"));
    assert!(registry
        .licences
        .iter()
        .all(|l| l.machine_rated_w == 3_250 && l.id.as_str().starts_with("KZ-MIN-")));
}

#[test]
fn meters_behind_a_concentrator_name_their_gateway() {
    let registry = registry_of(SimConfig::default());
    let via_gateway = registry
        .meters
        .iter()
        .filter(|m| m.gateway.is_some())
        .count();
    let consumers = registry
        .meters
        .iter()
        .filter(|m| m.role == MeterRole::Consumer)
        .count();
    let share = via_gateway as f64 / consumers as f64;
    assert!((0.45..0.7).contains(&share), "{share}");
    for meter in registry.meters.iter().filter(|m| m.gateway.is_some()) {
        let gateway = meter.gateway.as_ref().expect("gateway");
        assert_eq!(gateway.as_str(), format!("GW-{}", meter.node));
    }
}

#[test]
fn other_interval_lengths_and_a_clean_scenario_run() {
    for interval_minutes in [5, 60] {
        let config = SimConfig {
            interval_minutes,
            days: 1,
            scenarios: vec![gridwatch_sim::Scenario::Clean],
            ..common::small_config(1)
        };
        let mut simulation = Simulation::new(config).expect("valid");
        let mut intervals = 0;
        while let Some(interval) = simulation.next_interval() {
            assert!(!interval.messages.is_empty());
            intervals += 1;
        }
        assert_eq!(intervals, 24 * 60 / interval_minutes);
        assert!(simulation.ground_truth().injected.is_empty());
    }
}

#[test]
fn scenarios_naming_what_the_grid_lacks_are_refused() {
    let config = SimConfig {
        scenarios: vec![
            serde_json::from_str(r#"{"name": "small-diversion", "feeder": "NOPE"}"#)
                .expect("parses"),
        ],
        ..SimConfig::default()
    };
    let error = Simulation::new(config).expect_err("refused").to_string();
    assert!(
        error.contains("small-diversion") && error.contains("NOPE"),
        "{error}"
    );
    let mut config = SimConfig::default();
    config.regions[0].mining_farms = 0;
    config.scenarios = vec![serde_json::from_str(r#"{"name": "quota-overrun"}"#).expect("parses")];
    let error = Simulation::new(config).expect_err("refused").to_string();
    assert!(error.contains("no licensed farm"), "{error}");
}
