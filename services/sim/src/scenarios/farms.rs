//! Scenarios on licensed farms: `quota-overrun`, `capacity-exceeded`, `purchase-over-cap`.

use serde_json::json;

use super::install::{Installer, Place};
use super::{CapacityExceeded, PurchaseOverCap, QuotaOverrun};
use crate::error::SimError;
use crate::flows::Flows;
use crate::grid::Grid;
use crate::loads::Unregistered;
use crate::purchases::{OverCapAttempt, Underbuying};
use crate::truth::InjectionKind;

/// Accounts a farm's unpaid energy: what it drew minus what it bought, block by block.
#[derive(Debug)]
pub(crate) struct QuotaWatch {
    farm: usize,
    injection: usize,
    from_block: u64,
    until_block: u64,
    block_intervals: u64,
}

impl QuotaWatch {
    /// Unpaid energy of interval `flows.index`, Wh: true draw minus the interval's even share of
    /// the block's purchases.
    pub(crate) fn observe(&self, grid: &Grid, flows: &Flows) -> Option<(usize, f64)> {
        let block = flows.index / self.block_intervals;
        if !(self.from_block..self.until_block).contains(&block) {
            return None;
        }
        let farm = &grid.farms[self.farm];
        let drawn_wh = flows.consumer_w[farm.consumer] * flows.hours;
        let bought_wh = farm.book.bought_wh(block) as f64 / self.block_intervals as f64;
        Some((self.injection, drawn_wh - bought_wh))
    }
}

fn farm_place(installer: &Installer<'_>, farm: usize) -> Place {
    let consumer = installer.grid.farms[farm].consumer;
    let meter = installer.grid.consumers[consumer].meter;
    Place {
        node: Some(installer.grid.meters[meter].node),
        meter: Some(meter),
        farm: Some(farm),
        ..Place::default()
    }
}

pub(super) fn install_quota_overrun(
    params: &QuotaOverrun,
    installer: &mut Installer<'_>,
) -> Result<(), SimError> {
    if !(params.excess.is_finite() && params.excess > 0.0 && params.excess < 10.0) {
        return Err(installer.error("excess must be between 0 and 10"));
    }
    let farm = installer.farm(params.licence.as_ref())?;
    if installer.grid.farms[farm].book.underbuying.is_some() {
        return Err(installer.error("the licence already under-buys in another scenario"));
    }
    let (from, until) = installer.window(params.onset_hours, params.duration_hours)?;
    let block_intervals = u64::from(
        installer.config.mining.purchase_block_minutes / installer.config.interval_minutes,
    );
    let from_block = from.div_ceil(block_intervals);
    let until_block = until.div_ceil(block_intervals).max(from_block);
    let place = farm_place(installer, farm);
    let injection = installer.inject(
        InjectionKind::QuotaOverrun,
        place,
        from_block * block_intervals,
        (until_block * block_intervals).min(installer.clock.intervals()),
        json!({ "excess": params.excess, "bought_share_of_plan": 1.0 / (1.0 + params.excess) }),
    );
    installer.grid.farms[farm].book.underbuying = Some(Underbuying {
        from_block,
        until_block,
        excess: params.excess,
    });
    installer.watches.quotas.push(QuotaWatch {
        farm,
        injection,
        from_block,
        until_block,
        block_intervals,
    });
    Ok(())
}

pub(super) fn install_capacity_exceeded(
    params: &CapacityExceeded,
    installer: &mut Installer<'_>,
) -> Result<(), SimError> {
    if !(params.excess_share.is_finite() && params.excess_share > 0.0 && params.excess_share < 10.0)
    {
        return Err(installer.error("excess_share must be between 0 and 10"));
    }
    let farm = installer.farm(params.licence.as_ref())?;
    let (from, until) = installer.window(params.onset_hours, params.duration_hours)?;
    let consumer = installer.grid.farms[farm].consumer;
    if installer.grid.consumers[consumer].load_injection.is_some() {
        return Err(installer.error("the farm already runs injected load"));
    }
    let place = farm_place(installer, farm);
    let model = installer.grid.farm_model(farm).ok_or_else(|| {
        SimError::scenario("capacity-exceeded", "the licence's meter is not a farm")
    })?;
    let registered = model.registered_machines();
    let machines = (f64::from(registered) * params.excess_share).ceil() as u32;
    let rated_w = model.rated_w();
    model.changes.unregistered = Some(Unregistered {
        from_index: from,
        until_index: until,
        machines,
        bought: params.bought,
    });
    let injection = installer.inject(
        InjectionKind::CapacityExceeded,
        place,
        from,
        until,
        json!({
            "registered_machines": registered,
            "unregistered_machines": machines,
            "machine_rated_w": rated_w,
            "registered_capacity_w": f64::from(registered) * rated_w,
            "bought": params.bought,
        }),
    );
    installer.grid.consumers[consumer].load_injection = Some(injection);
    Ok(())
}

pub(super) fn install_purchase_over_cap(
    params: &PurchaseOverCap,
    installer: &mut Installer<'_>,
) -> Result<(), SimError> {
    let cap = installer.config.mining.purchase_cap_wh;
    if params.energy_wh <= cap {
        return Err(installer.error(format!("energy_wh must exceed the cap of {cap} Wh")));
    }
    if !(params.spacing_hours.is_finite() && params.spacing_hours >= 0.0) {
        return Err(installer.error("spacing_hours must be 0 or more"));
    }
    let farm = installer.farm(params.licence.as_ref())?;
    for attempt in 0..params.attempts {
        let (at, _) = installer.window(
            params.onset_hours + f64::from(attempt) * params.spacing_hours,
            None,
        )?;
        if at >= installer.clock.intervals() {
            break;
        }
        // Submitted at the end of interval `at`: a point in time.
        let place = farm_place(installer, farm);
        let injection = installer.inject(
            InjectionKind::PurchaseOverCap,
            place,
            at + 1,
            at + 1,
            json!({ "attempted_wh": params.energy_wh, "cap_wh": cap }),
        );
        installer.grid.farms[farm]
            .book
            .over_cap_attempts
            .push(OverCapAttempt {
                at_index: at,
                energy_wh: params.energy_wh,
                injection,
            });
    }
    Ok(())
}
