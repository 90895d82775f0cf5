//! `east-kazakhstan`: tens of megawatts diverted below a substation's boundary meter, spread
//! over several feeders, for illegal farms (steady, 24/7).
//!
//! Each diverted feeder gets a tap right below its input meter, so the feeder's own balance
//! shows the theft in the first window. In the insider variant the feeder input meters are
//! rigged to under-read by exactly what is taken: every feeder balances, and only the
//! substation's meter above still sees the energy leave (the case was run by utility staff).

use serde_json::json;

use super::install::{Installer, Place};
use super::EastKazakhstan;
use crate::error::SimError;
use crate::flows::{Diversion, DiversionDraw};
use crate::grid::NodeKind;
use crate::rng::Purpose;
use crate::truth::InjectionKind;

pub(super) fn install(
    params: &EastKazakhstan,
    installer: &mut Installer<'_>,
) -> Result<(), SimError> {
    if !(params.power_w.is_finite() && params.power_w > 0.0) {
        return Err(installer.error("power_w must be positive"));
    }
    if !(0.0..=0.5).contains(&params.variability) {
        return Err(installer.error("variability must be between 0 and 0.5"));
    }
    let substation = match &params.substation {
        Some(id) => installer.node(id)?,
        None => installer.grid.regions[0].roots[0],
    };
    if installer.grid.nodes[substation].kind != NodeKind::Substation {
        return Err(installer.error(format!(
            "{} is not a substation",
            installer.grid.nodes[substation].id
        )));
    }
    let feeders: Vec<usize> = installer
        .grid
        .children(substation)
        .into_iter()
        .filter(|&n| installer.grid.nodes[n].kind == NodeKind::Feeder)
        .take(params.feeders.max(1) as usize)
        .collect();
    if feeders.is_empty() {
        return Err(installer.error("the substation has no feeder"));
    }
    let (from, until) = installer.window(params.onset_hours, params.duration_hours)?;
    let per_feeder_w = params.power_w / feeders.len() as f64;
    let rigged = if params.insider {
        params.insider_feeders.map_or(feeders.len(), |n| n as usize)
    } else {
        0
    };
    let substation_id = installer.grid.nodes[substation].id.to_string();
    for (i, &feeder) in feeders.iter().enumerate() {
        let input_meter = installer.grid.nodes[feeder].input_meter;
        let hidden = i < rigged && input_meter.is_some();
        let visible_at = if hidden {
            substation_id.clone()
        } else {
            installer.grid.nodes[feeder].id.to_string()
        };
        let diversion = installer.inject(
            InjectionKind::Diversion,
            Place {
                node: Some(feeder),
                ..Place::default()
            },
            from,
            until,
            json!({
                "substation": substation_id,
                "power_w": per_feeder_w,
                "profile": "flat",
                "insider": hidden,
                "visible_at": visible_at,
                "tampered_meter": if hidden { input_meter.map(|m| installer.grid.meters[m].id.to_string()) } else { None },
            }),
        );
        let hidden_by = if hidden {
            Some(installer.inject(
                InjectionKind::MeterTamper,
                Place {
                    node: Some(feeder),
                    meter: input_meter,
                    ..Place::default()
                },
                from,
                until,
                json!({
                    "attack": "insider-under-read",
                    "hides": "diversion",
                    "visible_at": substation_id,
                }),
            ))
        } else {
            None
        };
        let rng = installer.stream(feeder as u64, Purpose::Diversion);
        installer.grid.nodes[feeder].diversions.push(Diversion::new(
            diversion,
            from,
            until,
            DiversionDraw::Flat {
                power_w: per_feeder_w,
                variability: params.variability,
            },
            hidden_by,
            rng,
        ));
    }
    Ok(())
}
