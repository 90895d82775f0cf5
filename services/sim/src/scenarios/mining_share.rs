//! `mining-share`: a region whose licensed mining exceeds its share of the region's energy.
//!
//! The region's farms get licences for more machines and commission them at the onset, enough
//! for licensed mining to reach `target_share` of the region's input energy (estimated from the
//! consumers' expected loads). Every farm stays within its licence and buys what it draws: only
//! the regional share is broken. The watch measures, per UTC day, licensed mining against the
//! region's true input, and counts the excess over `threshold_share` as the injection's energy.

use serde_json::json;

use super::install::{Installer, Place};
use super::MiningShare;
use crate::error::SimError;
use crate::flows::Flows;
use crate::grid::Grid;
use crate::loads::LoadModel;
use crate::truth::{Injection, InjectionKind};

/// Share of technical losses and lighting added to the expected non-mining load.
const EXPECTED_OVERHEAD_SHARE: f64 = 0.06;

/// Accounts a region's licensed-mining share per UTC day.
#[derive(Debug)]
pub(crate) struct ShareWatch {
    region: usize,
    injection: usize,
    threshold_share: f64,
    from_index: u64,
    until_index: u64,
    day: Option<i64>,
    mining_wh: f64,
    input_wh: f64,
}

impl ShareWatch {
    /// Adds an interval; when a UTC day closes, returns its excess energy (Wh) and records the
    /// day's share in the injection's details.
    pub(crate) fn observe(
        &mut self,
        grid: &Grid,
        flows: &Flows,
        utc_day: i64,
        injections: &mut [Injection],
    ) -> Option<(usize, f64)> {
        if !(self.from_index..self.until_index).contains(&flows.index) {
            return self.close_day(injections);
        }
        let mut excess = None;
        if self.day.is_some_and(|d| d != utc_day) {
            excess = self.close_day(injections);
        }
        self.day = Some(utc_day);
        let region = &grid.regions[self.region];
        self.input_wh += region
            .roots
            .iter()
            .map(|&r| flows.nodes[r].input_w)
            .sum::<f64>()
            * flows.hours;
        self.mining_wh += grid
            .farms
            .iter()
            .filter(|f| f.region == self.region)
            .map(|f| flows.consumer_w[f.consumer])
            .sum::<f64>()
            * flows.hours;
        excess
    }

    /// Closes the day in progress (also at the end of the run).
    pub(crate) fn close_day(&mut self, injections: &mut [Injection]) -> Option<(usize, f64)> {
        let day = self.day.take()?;
        let share = if self.input_wh > 0.0 {
            self.mining_wh / self.input_wh
        } else {
            0.0
        };
        let excess = (self.mining_wh - self.threshold_share * self.input_wh).max(0.0);
        if let Some(days) = injections[self.injection].details["days"].as_array_mut() {
            let date = chrono::DateTime::from_timestamp(day * 86_400, 0)
                .map(|d| d.date_naive().to_string());
            days.push(json!({
                "utc_date": date,
                "mining_wh": self.mining_wh.round(),
                "input_wh": self.input_wh.round(),
                "share": share,
                "excess_wh": excess.round(),
            }));
        }
        self.mining_wh = 0.0;
        self.input_wh = 0.0;
        Some((self.injection, excess))
    }
}

pub(super) fn install(params: &MiningShare, installer: &mut Installer<'_>) -> Result<(), SimError> {
    if !(0.0 < params.target_share && params.target_share < 0.95) {
        return Err(installer.error("target_share must be between 0 and 0.95"));
    }
    if !(0.0 < params.threshold_share && params.threshold_share < 1.0) {
        return Err(installer.error("threshold_share must be between 0 and 1"));
    }
    let region = match &params.region {
        Some(id) => installer
            .grid
            .regions
            .iter()
            .position(|r| &r.id == id)
            .ok_or_else(|| installer.error(format!("region {id} is not in the grid")))?,
        None => 0,
    };
    let farms: Vec<usize> = (0..installer.grid.farms.len())
        .filter(|&f| installer.grid.farms[f].region == region)
        .collect();
    if farms.is_empty() {
        return Err(installer.error("the region has no licensed farm (set mining_farms)"));
    }
    let grid = &mut *installer.grid;
    let other_w: f64 = grid
        .consumers
        .iter()
        .filter(|c| {
            grid.nodes[c.node].region == region && !matches!(c.load.model, LoadModel::Mining(_))
        })
        .map(|c| c.load.model.nominal_mean_w())
        .sum::<f64>()
        * (1.0 + EXPECTED_OVERHEAD_SHARE);
    let target_mining_w = params.target_share / (1.0 - params.target_share) * other_w;
    let installed: Vec<(u32, f64)> = farms
        .iter()
        .filter_map(|&f| {
            grid.farm_model(f)
                .map(|m| (m.installed_machines(), m.nominal_machine_w()))
        })
        .collect();
    let installed_total: f64 = installed.iter().map(|(n, _)| f64::from(*n)).sum();
    let (from, until) = installer.window(params.onset_hours, params.duration_hours)?;
    let mut machines_by_licence = serde_json::Map::new();
    for (&farm, &(installed_machines, machine_w)) in farms.iter().zip(&installed) {
        let share_of_region = f64::from(installed_machines) / installed_total.max(1.0);
        let wanted = (target_mining_w * share_of_region / machine_w.max(1.0)).ceil() as u32;
        let machines = wanted.max(installed_machines);
        if let Some(model) = installer.grid.farm_model(farm) {
            model.changes.expansion = Some((from, machines));
            let registered = model.registered_machines().max(machines);
            model.set_registered_machines(registered);
        }
        machines_by_licence.insert(
            installer.grid.farms[farm].licence.to_string(),
            json!(machines),
        );
    }
    let injection = installer.inject(
        InjectionKind::MiningShareExceeded,
        Place {
            region: Some(region),
            ..Place::default()
        },
        from,
        until,
        json!({
            "target_share": params.target_share,
            "threshold_share": params.threshold_share,
            "machines_after_onset": machines_by_licence,
            "days": [],
        }),
    );
    installer.watches.shares.push(ShareWatch {
        region,
        injection,
        threshold_share: params.threshold_share,
        from_index: from,
        until_index: until,
        day: None,
        mining_wh: 0.0,
        input_wh: 0.0,
    });
    Ok(())
}
