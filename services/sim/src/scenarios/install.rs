//! Installing scenarios into a grid, and the watches that account for conditions no single
//! flow carries (unpaid energy, a region's mining share).

use gridwatch_core::ids::{LicenceId, MeterId, NodeId};
use gridwatch_core::registry::MeterClass;

use super::Scenario;
use crate::calendar::Clock;
use crate::config::SimConfig;
use crate::error::SimError;
use crate::grid::{Consumer, Grid};
use crate::rng::{self, Purpose, Stream};
use crate::truth::{Injection, InjectionKind};

pub(crate) use super::farms::QuotaWatch;
pub(crate) use super::mining_share::ShareWatch;

/// Conditions accounted by the engine after each interval's flows.
#[derive(Debug, Default)]
pub(crate) struct Watches {
    pub quotas: Vec<QuotaWatch>,
    pub shares: Vec<ShareWatch>,
}

/// What installing needs and produces.
pub(crate) struct Installer<'a> {
    pub config: &'a SimConfig,
    pub clock: &'a Clock,
    pub grid: &'a mut Grid,
    pub injections: Vec<Injection>,
    /// For each injection, the interval at which it ends (exclusive, within the run).
    pub until: Vec<u64>,
    pub watches: Watches,
    scenario_name: &'static str,
    scenario_key: u64,
}

/// Where an injection is.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Place {
    pub region: Option<usize>,
    pub node: Option<usize>,
    pub meter: Option<usize>,
    pub farm: Option<usize>,
}

impl Installer<'_> {
    /// The scenario's own stream for `purpose`, keyed by its parameters and `key`.
    pub(crate) fn stream(&self, key: u64, purpose: Purpose) -> Stream {
        rng::stream(
            self.config.seed,
            self.scenario_key ^ rng::mix64(key),
            purpose,
        )
    }

    /// An error about the scenario being installed.
    pub(crate) fn error(&self, message: impl Into<String>) -> SimError {
        SimError::scenario(self.scenario_name, message)
    }

    /// The interval window `[from, until)` of an onset and optional duration, in hours.
    pub(crate) fn window(
        &self,
        onset_hours: f64,
        duration_hours: Option<f64>,
    ) -> Result<(u64, u64), SimError> {
        if !onset_hours.is_finite() || onset_hours < 0.0 {
            return Err(self.error(format!("onset_hours is {onset_hours}, must be 0 or more")));
        }
        let end = self.clock.intervals();
        let from = self.clock.index_after_hours(onset_hours).min(end);
        let until = match duration_hours {
            Some(d) if !d.is_finite() || d <= 0.0 => {
                return Err(self.error(format!("duration_hours is {d}, must be positive")))
            }
            Some(d) => self.clock.index_after_hours(onset_hours + d).min(end),
            None => end,
        };
        Ok((from, until.max(from)))
    }

    /// The index of a node named by a scenario.
    pub(crate) fn node(&self, id: &NodeId) -> Result<usize, SimError> {
        self.grid
            .node_index(id.as_str())
            .ok_or_else(|| self.error(format!("node {id} is not in the grid")))
    }

    /// The meter index of a consumer meter named by a scenario.
    pub(crate) fn consumer_meter(&self, id: &MeterId) -> Result<usize, SimError> {
        let meter = self
            .grid
            .meter_index(id.as_str())
            .ok_or_else(|| self.error(format!("meter {id} is not in the grid")))?;
        if self.grid.meters[meter].consumer.is_none() {
            return Err(self.error(format!("meter {id} is not a consumer meter")));
        }
        Ok(meter)
    }

    /// Meters of `count` consumers of `class` drawn at random among those that `eligible`
    /// accepts, from the scenario's own stream.
    pub(crate) fn pick_consumers(
        &self,
        class: MeterClass,
        count: usize,
        eligible: impl Fn(&Consumer) -> bool,
    ) -> Result<Vec<usize>, SimError> {
        let mut candidates: Vec<usize> = self
            .grid
            .consumers
            .iter()
            .filter(|c| self.grid.meters[c.meter].class == class && eligible(c))
            .map(|c| c.meter)
            .collect();
        if candidates.len() < count {
            return Err(self.error(format!(
                "wants {count} {} meters, the grid has {} eligible",
                class.as_str(),
                candidates.len()
            )));
        }
        let mut choice = self.stream(0, Purpose::Scenario);
        for i in 0..count {
            let j = i
                + (rng::uniform(&mut choice, [0.0, (candidates.len() - i) as f64]) as usize)
                    .min(candidates.len() - i - 1);
            candidates.swap(i, j);
        }
        candidates.truncate(count);
        Ok(candidates)
    }

    /// The farm of a licence named by a scenario (default: the first).
    pub(crate) fn farm(&self, licence: Option<&LicenceId>) -> Result<usize, SimError> {
        match licence {
            Some(id) => self
                .grid
                .farms
                .iter()
                .position(|f| &f.licence == id)
                .ok_or_else(|| self.error(format!("licence {id} is not in the grid"))),
            None if self.grid.farms.is_empty() => {
                Err(self.error("the grid has no licensed farm (set mining_farms in a region)"))
            }
            None => Ok(0),
        }
    }

    /// Records an injection and returns its index.
    pub(crate) fn inject(
        &mut self,
        kind: InjectionKind,
        place: Place,
        from: u64,
        until: u64,
        details: serde_json::Value,
    ) -> usize {
        let grid = &self.grid;
        let region = place
            .region
            .or_else(|| place.node.map(|n| grid.nodes[n].region))
            .or_else(|| place.farm.map(|f| grid.farms[f].region));
        self.injections.push(Injection {
            kind,
            scenario: self.scenario_name.to_string(),
            region: region.map(|r| grid.regions[r].id.clone()),
            node: place.node.map(|n| grid.nodes[n].id.clone()),
            meter: place.meter.map(|m| grid.meters[m].id.clone()),
            licence: place.farm.map(|f| grid.farms[f].licence.clone()),
            started_at: self.clock.interval_start(from as i64),
            ended_at: None,
            energy_wh: 0,
            details,
        });
        self.until.push(until);
        self.injections.len() - 1
    }
}

/// Installs every scenario of the configuration, in order.
pub(crate) fn install_all(
    config: &SimConfig,
    clock: &Clock,
    grid: &mut Grid,
) -> Result<(Vec<Injection>, Vec<u64>, Watches), SimError> {
    let mut installer = Installer {
        config,
        clock,
        grid,
        injections: Vec::new(),
        until: Vec::new(),
        watches: Watches::default(),
        scenario_name: "clean",
        scenario_key: 0,
    };
    let mut seen_keys = std::collections::HashMap::new();
    for scenario in &config.scenarios {
        let text = serde_json::to_string(scenario).unwrap_or_default();
        // Two identical scenarios in one list get distinct streams by occurrence.
        let occurrence = seen_keys.entry(text.clone()).or_insert(0u64);
        installer.scenario_key = rng::text_key(&text) ^ rng::mix64(*occurrence);
        *occurrence += 1;
        installer.scenario_name = scenario.name();
        match scenario {
            Scenario::Clean => {}
            Scenario::EastKazakhstan(p) => super::east_kazakhstan::install(p, &mut installer)?,
            Scenario::SmallDiversion(p) => super::small_diversion::install(p, &mut installer)?,
            Scenario::Tamper(p) => super::tamper::install(p, &mut installer)?,
            Scenario::UnlicensedMining(p) => super::unlicensed_mining::install(p, &mut installer)?,
            Scenario::QuotaOverrun(p) => super::farms::install_quota_overrun(p, &mut installer)?,
            Scenario::CapacityExceeded(p) => {
                super::farms::install_capacity_exceeded(p, &mut installer)?
            }
            Scenario::PurchaseOverCap(p) => {
                super::farms::install_purchase_over_cap(p, &mut installer)?
            }
            Scenario::MiningShare(p) => super::mining_share::install(p, &mut installer)?,
            Scenario::TopologyChange(p) => super::topology_change::install(p, &mut installer)?,
        }
    }
    Ok((installer.injections, installer.until, installer.watches))
}
