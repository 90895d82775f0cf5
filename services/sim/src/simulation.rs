//! The stepping engine: one call, one interval.
//!
//! Each step computes the physics of the next interval first (a meter whose clock is late reads
//! a few seconds into it), then has every meter read its register at the current interval's
//! end, sends the readings through the network, lets farms buy, adds to the injections' energy,
//! and hands back what to publish now. Nothing of past intervals is kept but what the network
//! still holds, so a month of 10,000 meters streams in constant memory.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use gridwatch_core::ids::{GatewayId, MeterId};
use gridwatch_core::registry::{MeterRole, RegistryDocument};

use crate::calendar::Clock;
use crate::config::SimConfig;
use crate::error::SimError;
use crate::flows::{self, Flows};
use crate::grid::Grid;
use crate::loads::ConsumerKind;
use crate::network::{Network, Pending};
use crate::payload::{self, GatewayElement};
use crate::purchases::Purchase;
use crate::scenarios::{install_all, Watches};
use crate::truth::{GroundTruth, IntervalTruth, MeterTruth, NodeTruth};

/// Where a message is published.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutTopic {
    /// `<root>/meters/{id}/readings`: one reading object.
    Meter(MeterId),
    /// `<root>/gateways/{id}/readings`: an array of readings.
    Gateway(GatewayId),
}

/// The MQTT topic of `topic` under `root` (such as `gridwatch/v1`, without a trailing slash).
pub fn topic_string(root: &str, topic: &OutTopic) -> String {
    match topic {
        OutTopic::Meter(id) => format!("{root}/meters/{id}/readings"),
        OutTopic::Gateway(id) => format!("{root}/gateways/{id}/readings"),
    }
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    /// Its topic.
    pub topic: OutTopic,
    /// Its payload: exactly the JSON of CONTRACT §2.
    pub payload: Vec<u8>,
}

/// What one step produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// The interval's end: the nominal time of its readings, and the time to publish.
    pub at: DateTime<Utc>,
    /// Messages to publish now, in this order: readings held back earlier (late, bursts after
    /// a silence, duplicates), then this interval's readings; single meters first, then gateway
    /// arrays. In the last interval the network also delivers everything it still holds.
    pub messages: Vec<OutMessage>,
    /// Purchases to submit now (CONTRACT §3), over-cap attempts first.
    pub purchases: Vec<Purchase>,
    /// The interval's true flows, for tests.
    pub truth: IntervalTruth,
}

/// A running simulation.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    clock: Clock,
    grid: Grid,
    registry: RegistryDocument,
    network: Network,
    watches: Watches,
    truth: GroundTruth,
    injection_wh: Vec<f64>,
    injection_until: Vec<u64>,
    current: Flows,
    next_index: u64,
    finished: bool,
    meter_lookup: HashMap<MeterId, usize>,
}

impl Simulation {
    /// Builds the grid, installs the scenarios and prepares the first interval.
    pub fn new(config: SimConfig) -> Result<Simulation, SimError> {
        config.validate()?;
        let clock = Clock::new(&config);
        let mut grid = Grid::build(&config, &clock)?;
        let (injected, injection_until, watches) = install_all(&config, &clock, &mut grid)?;
        let registry = grid.registry();
        let meter_lookup = grid
            .meters
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i))
            .collect();
        let network = Network::new(
            &config.network,
            config.seed,
            f64::from(config.interval_minutes),
            grid.meters
                .iter()
                .map(|m| (m.role == MeterRole::Input, m.gateway)),
            grid.gateways.len(),
        );
        let current = flows::compute(&mut grid, &clock, &clock.context(0));
        let truth = GroundTruth {
            seed: config.seed,
            config: config.clone(),
            injected,
        };
        Ok(Simulation {
            injection_wh: vec![0.0; truth.injected.len()],
            injection_until,
            config,
            clock,
            grid,
            registry,
            network,
            watches,
            truth,
            current,
            next_index: 0,
            finished: false,
            meter_lookup,
        })
    }

    /// The grid as a CONTRACT §1 registry document (as the operator registered it: a
    /// topology-change scenario does not update it).
    pub fn registry(&self) -> &RegistryDocument {
        &self.registry
    }

    /// The configuration of the run.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// What was injected; complete once [`Simulation::next_interval`] has returned `None`,
    /// partial (energies so far) before.
    pub fn ground_truth(&self) -> &GroundTruth {
        &self.truth
    }

    /// Intervals in the run.
    pub fn intervals(&self) -> u64 {
        self.clock.intervals()
    }

    /// What kind of consumer a meter serves (`None` for an input meter or an unknown id).
    pub fn consumer_kind(&self, meter: &MeterId) -> Option<ConsumerKind> {
        let index = *self.meter_lookup.get(meter)?;
        let consumer = self.grid.meters[index].consumer?;
        Some(self.grid.consumers[consumer].load.model.kind())
    }

    /// Steps one interval; `None` after the last.
    pub fn next_interval(&mut self) -> Option<Interval> {
        let index = self.next_index;
        if index >= self.clock.intervals() {
            self.finish();
            return None;
        }
        let hours = self.clock.step_hours();
        let at = self.clock.interval_end(index);
        let upcoming = flows::compute(&mut self.grid, &self.clock, &self.clock.context(index + 1));

        self.network.begin(index);
        let mut delivered = self.network.released(index);
        let mut meters = Vec::with_capacity(self.grid.meters.len());
        for m in 0..self.grid.meters.len() {
            let seen_w = self.current.seen_w(&self.grid, m);
            let next_seen_w = upcoming.seen_w(&self.grid, m);
            let reading = self.grid.meters[m]
                .measurement
                .register(seen_w, next_seen_w, hours);
            meters.push(MeterTruth {
                consumed_wh: self.current.through_w(&self.grid, m) * hours,
                seen_wh: seen_w * hours,
                registered_wh: reading.registered_wh,
                register_wh: reading.register_wh,
            });
            // A meter storing a slower profile is read at its own boundaries only.
            let every = u64::from(self.grid.meters[m].schedule.every.max(1));
            if !(index + 1).is_multiple_of(every) {
                continue;
            }
            let pending = Pending {
                meter: m as u32,
                label: index as u32,
                register_wh: reading.register_wh,
                power_w: reading.power_w as f32,
            };
            self.network.send(index, pending, &mut delivered);
        }
        let last = index + 1 == self.clock.intervals();
        if last {
            delivered.extend(self.network.flush());
        }

        let purchases = self.purchases(index);
        self.account(index);

        let interval = Interval {
            at,
            messages: self.messages(index, &delivered),
            purchases,
            truth: IntervalTruth {
                start: self.clock.interval_start(index as i64),
                end: at,
                nodes: self
                    .current
                    .nodes
                    .iter()
                    .map(|f| NodeTruth {
                        input_wh: f.input_w * hours,
                        fed_wh: f.fed_w * hours,
                        technical_loss_wh: f.loss_w * hours,
                        theft_wh: f.theft_w * hours,
                        unmetered_wh: f.unmetered_w * hours,
                    })
                    .collect(),
                meters,
            },
        };
        self.current = upcoming;
        self.next_index += 1;
        if last {
            self.finish();
        }
        Some(interval)
    }

    /// Purchases due at the end of interval `index`; over-cap attempts add their excess to
    /// their injection.
    fn purchases(&mut self, index: u64) -> Vec<Purchase> {
        let cap = self.config.mining.purchase_cap_wh;
        let mut purchases = Vec::new();
        let grid = &mut self.grid;
        for farm in &mut grid.farms {
            let crate::loads::LoadModel::Mining(model) =
                &mut grid.consumers[farm.consumer].load.model
            else {
                continue;
            };
            let (bought, attempts) = farm
                .book
                .due(model, &self.clock, &self.config.mining, index);
            for (injection, attempt) in attempts {
                self.injection_wh[injection] += (attempt.energy_wh - cap) as f64;
                purchases.push(attempt);
            }
            purchases.extend(bought);
        }
        purchases
    }

    /// Adds interval `index`'s energies to the injections.
    fn account(&mut self, index: u64) {
        for &(injection, wh) in &self.current.injection_wh {
            self.injection_wh[injection] += wh;
        }
        for watch in &self.watches.quotas {
            if let Some((injection, wh)) = watch.observe(&self.grid, &self.current) {
                self.injection_wh[injection] += wh;
            }
        }
        let utc_day = self
            .clock
            .interval_start(index as i64)
            .timestamp()
            .div_euclid(86_400);
        for watch in &mut self.watches.shares {
            if let Some((injection, wh)) =
                watch.observe(&self.grid, &self.current, utc_day, &mut self.truth.injected)
            {
                self.injection_wh[injection] += wh;
            }
        }
        for (i, injection) in self.truth.injected.iter_mut().enumerate() {
            injection.energy_wh = self.injection_wh[i].round() as i64;
            if injection.ended_at.is_none()
                && self.injection_until[i] <= index + 1
                && self.injection_until[i] < self.clock.intervals()
            {
                injection.ended_at =
                    Some(self.clock.interval_start(self.injection_until[i] as i64));
            }
        }
    }

    /// Closes what is still open at the end of the run.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        for watch in &mut self.watches.shares {
            if let Some((injection, wh)) = watch.close_day(&mut self.truth.injected) {
                self.injection_wh[injection] += wh;
            }
        }
        let end = self.clock.end();
        for (i, injection) in self.truth.injected.iter_mut().enumerate() {
            injection.energy_wh = self.injection_wh[i].round() as i64;
            if injection.ended_at.is_none() {
                let until = self.injection_until[i].min(self.clock.intervals());
                injection.ended_at = Some(self.clock.interval_start(until as i64).min(end));
            }
        }
    }

    /// The messages carrying `delivered`, published at the end of interval `index`.
    fn messages(&self, index: u64, delivered: &[Pending]) -> Vec<OutMessage> {
        let now_ts = payload::timestamp(self.clock.interval_end(index));
        // A head-end that stamps its poll time labels the reading seconds after the boundary.
        let ts_of = |meter: u32, label: u32| -> Cow<'_, str> {
            let delay_s = self.grid.meters[meter as usize].schedule.delay_s;
            if u64::from(label) == index && delay_s == 0 {
                Cow::Borrowed(now_ts.as_str())
            } else {
                Cow::Owned(payload::timestamp(
                    self.clock.interval_end(u64::from(label))
                        + chrono::Duration::seconds(i64::from(delay_s)),
                ))
            }
        };
        let mut messages = Vec::with_capacity(delivered.len());
        let mut by_gateway: Vec<Vec<&Pending>> = vec![Vec::new(); self.grid.gateways.len()];
        for reading in delivered {
            let meter = &self.grid.meters[reading.meter as usize];
            match meter.gateway {
                Some(gateway) => by_gateway[gateway].push(reading),
                None => messages.push(OutMessage {
                    topic: OutTopic::Meter(meter.id.clone()),
                    payload: payload::meter_payload(
                        &ts_of(reading.meter, reading.label),
                        reading.register_wh,
                        reading.power_w,
                    ),
                }),
            }
        }
        let batch_max = self.config.network.gateway_batch_max.max(1) as usize;
        for (gateway, readings) in by_gateway.iter().enumerate() {
            for batch in readings.chunks(batch_max) {
                let stamps: Vec<Cow<'_, str>> =
                    batch.iter().map(|r| ts_of(r.meter, r.label)).collect();
                let elements: Vec<GatewayElement<'_>> = batch
                    .iter()
                    .zip(&stamps)
                    .map(|(r, ts)| GatewayElement {
                        meter_id: self.grid.meters[r.meter as usize].id.as_str(),
                        ts,
                        energy_wh: r.register_wh,
                        power_w: r.power_w,
                    })
                    .collect();
                messages.push(OutMessage {
                    topic: OutTopic::Gateway(self.grid.gateways[gateway].clone()),
                    payload: payload::gateway_payload(&elements),
                });
            }
        }
        messages
    }
}
