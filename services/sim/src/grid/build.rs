//! Building the grid from the configuration.
//!
//! Per region: substations, each with feeders, each with distribution transformers (some with
//! input meters); households and commercial premises spread unevenly over the transformers
//! (or the feeders when there are none), industrial plants and licensed farms directly on
//! feeders. Every random choice comes from the region's grid stream or the entity's own
//! streams, so the same configuration always builds the same grid.

use gridwatch_core::ids::{GatewayId, LicenceId, MeterId, NodeId};
use gridwatch_core::registry::{MeterClass, MeterRole};

use super::{Consumer, Farm, Grid, GridMeter, GridNode, GridRegion, NodeKind, ReadingSchedule};
use crate::calendar::Clock;
use crate::config::{NodeLossConfig, RegionConfig, SimConfig};
use crate::error::SimError;
use crate::lighting::StreetLighting;
use crate::loads::{Commercial, ConsumerLoad, Household, Industrial, LoadModel, MiningFarm};
use crate::losses::NodeLoss;
use crate::meters::Measurement;
use crate::purchases::PurchaseBook;
use crate::rng::{self, Purpose, Stream};
use crate::weather::interpolate_monthly;

/// Spread of how many consumers hang on one transformer (log-sigma of its weight).
const LEAF_WEIGHT_LOG_SIGMA: f64 = 0.4;
/// How long meters have been counting when the run starts, years, `[min, max]`.
const METER_AGE_YEARS: [f64; 2] = [0.2, 8.0];
/// Hours in a year.
const HOURS_PER_YEAR: f64 = 8_760.0;
/// Names of licence holders (fictional) and the five accredited pools.
const HOLDERS: [&str; 8] = [
    "Qazaq Hash LLP",
    "Altai Compute LLP",
    "Irtysh Digital LLP",
    "Steppe Blocks LLP",
    "Oskemen Data Park LLP",
    "Ertis Mining LLP",
    "Saryarka Hashpower LLP",
    "Tarbagatai Nodes LLP",
];
const ACCREDITED_POOLS: u32 = 5;

fn id_error(what: &str, id: &str) -> SimError {
    SimError::config(format!("{what} id {id:?} is not a valid identifier"))
}

fn node_id(id: String) -> Result<NodeId, SimError> {
    NodeId::parse(&id).map_err(|_| id_error("node", &id))
}

fn meter_id(id: String) -> Result<MeterId, SimError> {
    MeterId::parse(&id).map_err(|_| id_error("meter", &id))
}

/// Counters of ids shared by all regions.
#[derive(Default)]
struct Numbering {
    consumer_meters: u32,
    farms: u32,
}

impl Grid {
    pub(crate) fn build(config: &SimConfig, clock: &Clock) -> Result<Grid, SimError> {
        let mut grid = Grid {
            regions: Vec::new(),
            nodes: Vec::new(),
            meters: Vec::new(),
            consumers: Vec::new(),
            gateways: Vec::new(),
            farms: Vec::new(),
        };
        let mut numbering = Numbering::default();
        for (region_index, region) in config.regions.iter().enumerate() {
            grid.build_region(config, clock, region_index, region, &mut numbering)?;
        }
        grid.size_nodes(config);
        Ok(grid)
    }

    fn add_node(
        &mut self,
        id: String,
        region: usize,
        kind: NodeKind,
        parent: Option<usize>,
        metered: bool,
        config: &SimConfig,
    ) -> Result<usize, SimError> {
        let node = self.nodes.len();
        let id = node_id(id)?;
        let input_meter = if metered {
            let meter = self.meters.len();
            let key = meter as u64;
            self.meters.push(GridMeter {
                id: meter_id(format!("{id}-IN"))?,
                node,
                role: MeterRole::Input,
                class: MeterClass::Boundary,
                accuracy_pct: config.meters.boundary_accuracy_pct,
                gateway: None,
                consumer: None,
                farm: None,
                // The register's starting value is set once the node's load is known.
                measurement: Measurement::new(
                    &config.meters,
                    config.meters.boundary_accuracy_pct,
                    0.0,
                    rng::stream(config.seed, key, Purpose::Measurement),
                ),
                schedule: ReadingSchedule::default(),
            });
            Some(meter)
        } else {
            None
        };
        self.nodes.push(GridNode {
            id,
            region,
            kind,
            parent,
            input_meter,
            // Sized once its consumers are known.
            loss: NodeLoss::new(
                &config.losses,
                &config.losses.feeder,
                0.0,
                f64::from(config.interval_minutes),
                rng::stream(config.seed, node as u64, Purpose::Losses),
            ),
            lighting: None,
            diversions: Vec::new(),
        });
        Ok(node)
    }

    fn build_region(
        &mut self,
        config: &SimConfig,
        clock: &Clock,
        region_index: usize,
        region: &RegionConfig,
        numbering: &mut Numbering,
    ) -> Result<(), SimError> {
        let mut rng = rng::stream(config.seed, region_index as u64, Purpose::Grid);
        let prefix = &region.id_prefix;
        let mut roots = Vec::new();
        let mut feeders = Vec::new();
        let mut leaves = Vec::new();
        let mut transformer_number = 1;
        for s in 1..=region.substations {
            let substation = self.add_node(
                format!("{prefix}-SUB-{s:02}"),
                region_index,
                NodeKind::Substation,
                None,
                true,
                config,
            )?;
            roots.push(substation);
            for f in 0..region.feeders_per_substation {
                let number = (s - 1) * region.feeders_per_substation + f + 1;
                let feeder = self.add_node(
                    format!("{prefix}-F-{number:03}"),
                    region_index,
                    NodeKind::Feeder,
                    Some(substation),
                    true,
                    config,
                )?;
                feeders.push(feeder);
                if region.transformers_per_feeder == 0 {
                    leaves.push(feeder);
                }
                for _ in 0..region.transformers_per_feeder {
                    let metered = rng::chance(&mut rng, region.metered_transformer_share);
                    let transformer = self.add_node(
                        format!("{prefix}-T-{transformer_number:04}"),
                        region_index,
                        NodeKind::Transformer,
                        Some(feeder),
                        metered,
                        config,
                    )?;
                    transformer_number += 1;
                    leaves.push(transformer);
                }
            }
        }
        self.regions.push(GridRegion {
            id: region.id.clone(),
            name: region.name.clone(),
            tariff_kzt_per_kwh: region.tariff_kzt_per_kwh,
            timezone: region.timezone.clone(),
            roots,
        });

        // Street lighting on some of the lowest nodes.
        for &leaf in &leaves {
            let mut lights = rng::stream(config.seed, leaf as u64, Purpose::Lighting);
            if rng::chance(&mut lights, config.street_lighting.node_share) {
                self.nodes[leaf].lighting =
                    Some(StreetLighting::new(&config.street_lighting, &mut lights));
            }
        }

        // Gateways: one data concentrator per transformer (or feeder, when there are none).
        let gateway_of: Vec<Option<usize>> = leaves
            .iter()
            .map(|&leaf| {
                let gateway = self.gateways.len();
                let id = format!("GW-{}", self.nodes[leaf].id);
                GatewayId::parse(&id).ok().map(|g| {
                    self.gateways.push(g);
                    gateway
                })
            })
            .collect();

        // Households and commercial premises, spread unevenly over the leaves.
        let weights: Vec<f64> = leaves
            .iter()
            .map(|_| rng::log_normal(&mut rng, 1.0, LEAF_WEIGHT_LOG_SIGMA))
            .collect();
        let total_weight: f64 = weights.iter().sum();
        let reference_temperature_c = interpolate_monthly(
            &config.climate.monthly_mean_c,
            f64::from(chrono::Datelike::ordinal0(
                &clock.local(clock.start()).date(),
            )),
        );
        let step_minutes = f64::from(config.interval_minutes);
        for (class, count) in [
            (MeterClass::Household, region.households),
            (MeterClass::Commercial, region.commercial),
        ] {
            for _ in 0..count {
                let mut pick = rng::uniform(&mut rng, [0.0, total_weight]);
                let mut slot = 0;
                while slot + 1 < leaves.len() && pick >= weights[slot] {
                    pick -= weights[slot];
                    slot += 1;
                }
                let via_gateway = rng::chance(&mut rng, config.network.gateway_share);
                let on_transformer = self.nodes[leaves[slot]].kind == NodeKind::Transformer;
                let gateway = if via_gateway && (on_transformer || class == MeterClass::Household) {
                    gateway_of[slot]
                } else {
                    None
                };
                self.add_consumer(
                    config,
                    numbering,
                    class,
                    leaves[slot],
                    gateway,
                    |traits, load, _| {
                        if class == MeterClass::Household {
                            LoadModel::Household(Household::new(
                                &config.households,
                                step_minutes,
                                reference_temperature_c,
                                traits,
                                load,
                            ))
                        } else {
                            LoadModel::Commercial(Commercial::new(
                                &config.commercial,
                                step_minutes,
                                traits,
                                load,
                            ))
                        }
                    },
                )?;
            }
        }

        // Industrial plants and farms directly on feeders, spread over them.
        let offset =
            (rng::uniform(&mut rng, [0.0, feeders.len() as f64]) as usize).min(feeders.len() - 1);
        for i in 0..region.industrial as usize {
            let feeder = feeders[(offset + i) % feeders.len()];
            self.add_consumer(
                config,
                numbering,
                MeterClass::Industrial,
                feeder,
                None,
                |traits, load, _| {
                    LoadModel::Industrial(Industrial::new(
                        &config.industrial,
                        step_minutes,
                        traits,
                        load,
                    ))
                },
            )?;
        }
        for f in 0..region.mining_farms as usize {
            let feeder = feeders[(f * feeders.len() / region.mining_farms.max(1) as usize
                + feeders.len() / 2)
                % feeders.len()];
            let consumer = self.add_consumer(
                config,
                numbering,
                MeterClass::Mining,
                feeder,
                None,
                |traits, load, plan| {
                    LoadModel::Mining(Box::new(MiningFarm::new(
                        &config.mining,
                        step_minutes,
                        traits,
                        load,
                        plan,
                    )))
                },
            )?;
            numbering.farms += 1;
            let number = numbering.farms;
            let licence = format!("KZ-MIN-{number:03}");
            let licence = LicenceId::parse(&licence).map_err(|_| id_error("licence", &licence))?;
            let farm = self.farms.len();
            let meter = self.consumers[consumer].meter;
            self.meters[meter].farm = Some(farm);
            self.farms.push(Farm {
                consumer,
                region: region_index,
                book: PurchaseBook::new(licence.clone(), region.tariff_kzt_per_kwh),
                licence,
                holder: HOLDERS[(number as usize - 1) % HOLDERS.len()].to_string(),
                pool: format!("pool-{}", (number - 1) % ACCREDITED_POOLS + 1),
            });
        }
        Ok(())
    }

    /// Adds a consumer and its meter; `model` builds its load from its traits stream, its load
    /// stream and its plan stream.
    fn add_consumer(
        &mut self,
        config: &SimConfig,
        numbering: &mut Numbering,
        class: MeterClass,
        node: usize,
        gateway: Option<usize>,
        model: impl FnOnce(&mut Stream, Stream, Stream) -> LoadModel,
    ) -> Result<usize, SimError> {
        let meter = self.meters.len();
        let key = meter as u64;
        let id = if class == MeterClass::Mining {
            format!("FARM-{:03}", numbering.farms + 1)
        } else {
            numbering.consumer_meters += 1;
            format!("M-{:06}", numbering.consumer_meters)
        };
        let mut traits = rng::stream(config.seed, key, Purpose::LoadTraits);
        let load = model(
            &mut traits,
            rng::stream(config.seed, key, Purpose::Load),
            rng::stream(config.seed, key, Purpose::FarmPlan),
        );
        let meters = &config.meters;
        let accuracy_pct = match class {
            MeterClass::Household if rng::chance(&mut traits, meters.household_class2_share) => 2.0,
            MeterClass::Household => meters.household_accuracy_pct,
            MeterClass::Commercial => meters.commercial_accuracy_pct,
            MeterClass::Industrial => meters.industrial_accuracy_pct,
            MeterClass::Mining => meters.mining_accuracy_pct,
            MeterClass::Boundary => meters.boundary_accuracy_pct,
        };
        let initial = initial_register_wh(config, key, load.nominal_mean_w());
        let consumer = self.consumers.len();
        let schedule = if class == MeterClass::Household {
            reading_schedule(config, key)
        } else {
            ReadingSchedule::default()
        };
        self.meters.push(GridMeter {
            id: meter_id(id)?,
            node,
            role: MeterRole::Consumer,
            class,
            accuracy_pct,
            gateway,
            consumer: Some(consumer),
            farm: None,
            measurement: Measurement::new(
                meters,
                accuracy_pct,
                initial,
                rng::stream(config.seed, key, Purpose::Measurement),
            )
            .delayed(schedule.delay_s),
            schedule,
        });
        self.consumers.push(Consumer {
            meter,
            node,
            load: ConsumerLoad::new(load),
            load_injection: None,
            tamper: None,
            relocation: None,
        });
        Ok(consumer)
    }

    /// Sizes every node's losses from the load expected through it, and starts input meters'
    /// registers at a plausible age.
    fn size_nodes(&mut self, config: &SimConfig) {
        let mut expected_w = vec![0.0; self.nodes.len()];
        for consumer in &self.consumers {
            expected_w[consumer.node] += consumer.load.model.nominal_mean_w();
        }
        for n in (0..self.nodes.len()).rev() {
            if let Some(lighting) = &self.nodes[n].lighting {
                // Lamps burn about half the time over a year.
                expected_w[n] += 0.5 * lighting.installed_w();
            }
            if let Some(parent) = self.nodes[n].parent {
                expected_w[parent] += expected_w[n];
            }
        }
        for (n, node) in self.nodes.iter_mut().enumerate() {
            let kind: &NodeLossConfig = match node.kind {
                NodeKind::Substation => &config.losses.substation,
                NodeKind::Feeder => &config.losses.feeder,
                NodeKind::Transformer => &config.losses.transformer,
            };
            node.loss = NodeLoss::new(
                &config.losses,
                kind,
                expected_w[n],
                f64::from(config.interval_minutes),
                rng::stream(config.seed, n as u64, Purpose::Losses),
            );
            if let Some(meter) = node.input_meter {
                let initial = initial_register_wh(config, meter as u64, expected_w[n]);
                self.meters[meter].measurement = Measurement::new(
                    &config.meters,
                    self.meters[meter].accuracy_pct,
                    initial,
                    rng::stream(config.seed, meter as u64, Purpose::Measurement),
                );
            }
        }
    }
}

/// A register value for a meter that has counted `mean_w` for a few years.
/// A household meter's reading schedule, from its own stream (so that the default of every
/// meter read at every boundary draws nothing and changes no other stream).
fn reading_schedule(config: &SimConfig, key: u64) -> ReadingSchedule {
    let meters = &config.meters;
    let mut schedule = ReadingSchedule::default();
    if meters.household_poll_stamped_share <= 0.0
        && meters.household_half_hourly_share <= 0.0
        && meters.household_hourly_share <= 0.0
    {
        return schedule;
    }
    let mut rng = rng::stream(config.seed, key, Purpose::Schedule);
    let profile = rng::uniform(&mut rng, [0.0, 1.0]);
    let minutes = if profile < meters.household_half_hourly_share {
        30
    } else if profile < meters.household_half_hourly_share + meters.household_hourly_share {
        60
    } else {
        config.interval_minutes
    };
    if minutes % config.interval_minutes.max(1) == 0 {
        schedule.every = (minutes / config.interval_minutes.max(1)).max(1);
    }
    if rng::chance(&mut rng, meters.household_poll_stamped_share) {
        schedule.delay_s = rng::uniform(&mut rng, meters.poll_delay_s).round() as u32;
    }
    schedule
}

fn initial_register_wh(config: &SimConfig, key: u64, mean_w: f64) -> f64 {
    let mut rng = rng::stream(config.seed, key, Purpose::InitialRegister);
    (rng::uniform(&mut rng, METER_AGE_YEARS) * HOURS_PER_YEAR * mean_w.max(0.0)).floor()
}
