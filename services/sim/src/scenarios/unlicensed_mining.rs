//! `unlicensed-mining`: rigs plugged in behind household meters, running 24/7 from the onset.
//! The meter registers them (the theft is of the licence, not of the energy): the home's
//! consumption turns high, flat and without a daily cycle, as Irkutsk's criteria describe.

use serde_json::json;

use super::install::{Installer, Place};
use super::UnlicensedMining;
use crate::error::SimError;
use crate::loads::Rigs;
use crate::rng::Purpose;
use crate::truth::InjectionKind;
use gridwatch_core::registry::MeterClass;

pub(super) fn install(
    params: &UnlicensedMining,
    installer: &mut Installer<'_>,
) -> Result<(), SimError> {
    if !(params.rig_w.is_finite() && params.rig_w > 0.0) {
        return Err(installer.error("rig_w must be positive"));
    }
    let meters = if params.meters.is_empty() {
        installer.pick_consumers(MeterClass::Household, params.count as usize, |c| {
            c.load.rigs.is_none()
        })?
    } else {
        params
            .meters
            .iter()
            .map(|id| installer.consumer_meter(id))
            .collect::<Result<Vec<_>, _>>()?
    };
    let (from, until) = installer.window(params.onset_hours, params.duration_hours)?;
    for meter in meters {
        let Some(consumer) = installer.grid.meters[meter].consumer else {
            continue;
        };
        if installer.grid.consumers[consumer].load_injection.is_some() {
            return Err(installer.error(format!(
                "meter {} already carries injected load",
                installer.grid.meters[meter].id
            )));
        }
        let node = installer.grid.meters[meter].node;
        let injection = installer.inject(
            InjectionKind::UnlicensedMining,
            Place {
                node: Some(node),
                meter: Some(meter),
                ..Place::default()
            },
            from,
            until,
            json!({ "rigs": params.rigs, "rig_w": params.rig_w }),
        );
        let rng = installer.stream(meter as u64, Purpose::Rigs);
        let consumer = &mut installer.grid.consumers[consumer];
        consumer.load.rigs = Some(Rigs::new(params.rigs, params.rig_w, from, until, rng));
        consumer.load_injection = Some(injection);
    }
    Ok(())
}
