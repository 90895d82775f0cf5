//! How readings travel: lost, late, duplicated, silenced for hours, batched by concentrators.
//!
//! Every reading leaves its meter at its nominal time. The network then decides, from the
//! meter's own stream, whether it is lost, delivered now, delivered late (up to hours, hence out
//! of order), or delivered twice. A meter or its gateway can fall silent for hours: its readings
//! are then lost or kept and delivered in a burst when the link comes back. None of this changes
//! a value: what arrives is exactly what the meter read.

use std::collections::BTreeMap;

use crate::config::NetworkConfig;
use crate::rng::{self, Purpose, Stream};

/// A reading on its way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pending {
    pub meter: u32,
    /// Index of the interval whose end labels the reading.
    pub label: u32,
    pub register_wh: i64,
    pub power_w: f32,
}

#[derive(Debug)]
struct Link {
    rng: Stream,
    reliable: bool,
    gateway: Option<usize>,
    silent_until: u64,
    silence_lost: bool,
}

#[derive(Debug)]
struct GatewayLink {
    rng: Stream,
    silent_until: u64,
    silence_lost: bool,
}

/// The delivery network of a run.
#[derive(Debug)]
pub(crate) struct Network {
    config: NetworkConfig,
    steps_per_day: f64,
    steps_per_hour: f64,
    links: Vec<Link>,
    gateways: Vec<GatewayLink>,
    queue: BTreeMap<u64, Vec<Pending>>,
}

impl Network {
    /// `meters`: for each meter, whether its link is a reliable boundary link and its gateway.
    pub(crate) fn new(
        config: &NetworkConfig,
        seed: u64,
        step_minutes: f64,
        meters: impl Iterator<Item = (bool, Option<usize>)>,
        gateways: usize,
    ) -> Network {
        let links = meters
            .enumerate()
            .map(|(m, (reliable, gateway))| Link {
                rng: rng::stream(seed, m as u64, Purpose::Network),
                reliable,
                gateway,
                silent_until: 0,
                silence_lost: false,
            })
            .collect();
        let gateways = (0..gateways)
            .map(|g| GatewayLink {
                rng: rng::stream(seed, g as u64, Purpose::Gateway),
                silent_until: 0,
                silence_lost: false,
            })
            .collect();
        Network {
            config: config.clone(),
            steps_per_day: 24.0 * 60.0 / step_minutes,
            steps_per_hour: 60.0 / step_minutes,
            links,
            gateways,
            queue: BTreeMap::new(),
        }
    }

    /// Starts interval `index`: gateways may fall silent.
    pub(crate) fn begin(&mut self, index: u64) {
        let chance = self.config.gateway_outage_chance_per_day / self.steps_per_day;
        for gateway in &mut self.gateways {
            let starts = rng::chance(&mut gateway.rng, chance);
            let hours = rng::uniform(&mut gateway.rng, self.config.outage_hours);
            let lost = rng::chance(&mut gateway.rng, self.config.outage_lost_share);
            if starts && index >= gateway.silent_until {
                gateway.silent_until = index + 1 + (hours * self.steps_per_hour).round() as u64;
                gateway.silence_lost = lost;
            }
        }
    }

    /// Sends a reading produced at interval `index`; returns it if it is delivered now (the
    /// caller publishes it). A duplicate due now is returned twice.
    pub(crate) fn send(&mut self, index: u64, reading: Pending, delivered_now: &mut Vec<Pending>) {
        let config = &self.config;
        let link = &mut self.links[reading.meter as usize];
        let starts_silence = rng::chance(
            &mut link.rng,
            config.meter_outage_chance_per_day / self.steps_per_day,
        );
        let silence_hours = rng::uniform(&mut link.rng, config.outage_hours);
        let silence_lost = rng::chance(&mut link.rng, config.outage_lost_share);
        let missing = rng::chance(
            &mut link.rng,
            if link.reliable {
                config.boundary_missing_share
            } else {
                config.missing_share
            },
        );
        let late = rng::chance(&mut link.rng, config.late_share);
        let delay_minutes = rng::uniform(&mut link.rng, [0.0, config.late_max_minutes]);
        let duplicate = rng::chance(&mut link.rng, config.duplicate_share);
        let duplicate_delay_minutes =
            rng::uniform(&mut link.rng, [0.0, config.duplicate_max_delay_minutes]);

        if starts_silence && index >= link.silent_until {
            link.silent_until = index + 1 + (silence_hours * self.steps_per_hour).round() as u64;
            link.silence_lost = silence_lost;
        }
        let mut silent_until = None;
        let mut lost = false;
        if index < link.silent_until {
            silent_until = Some(link.silent_until);
            lost |= link.silence_lost;
        }
        if let Some(gateway) = link.gateway.and_then(|g| self.gateways.get(g)) {
            if index < gateway.silent_until {
                silent_until = Some(silent_until.unwrap_or(0).max(gateway.silent_until));
                lost |= gateway.silence_lost;
            }
        }
        let step_minutes = 60.0 / self.steps_per_hour;
        let due = match silent_until {
            _ if lost || missing => return,
            Some(until) => until,
            None if late => index + 1 + (delay_minutes / step_minutes).floor() as u64,
            None => index,
        };
        self.deliver(index, due, reading, delivered_now);
        if duplicate {
            let again = due + (duplicate_delay_minutes / step_minutes).round() as u64;
            self.deliver(index, again, reading, delivered_now);
        }
    }

    fn deliver(
        &mut self,
        index: u64,
        due: u64,
        reading: Pending,
        delivered_now: &mut Vec<Pending>,
    ) {
        if due <= index {
            delivered_now.push(reading);
        } else {
            self.queue.entry(due).or_default().push(reading);
        }
    }

    /// Readings held back earlier and delivered at interval `index`.
    pub(crate) fn released(&mut self, index: u64) -> Vec<Pending> {
        self.queue.remove(&index).unwrap_or_default()
    }

    /// Every reading still on its way, in the order it was due: the run is ending and the
    /// network delivers what it holds.
    pub(crate) fn flush(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.queue)
            .into_values()
            .flatten()
            .collect()
    }
}
