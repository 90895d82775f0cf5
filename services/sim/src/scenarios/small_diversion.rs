//! `small-diversion`: a share of one feeder's energy taken persistently (an illegal line
//! feeding a few homes and workshops), below the single-window detection floor.

use serde_json::json;

use super::install::{Installer, Place};
use super::SmallDiversion;
use crate::error::SimError;
use crate::flows::{Diversion, DiversionDraw};
use crate::grid::NodeKind;
use crate::rng::{self, Purpose};
use crate::truth::InjectionKind;

pub(super) fn install(
    params: &SmallDiversion,
    installer: &mut Installer<'_>,
) -> Result<(), SimError> {
    if !(params.share.is_finite() && params.share > 0.0 && params.share < 1.0) {
        return Err(installer.error("share must be between 0 and 1"));
    }
    let feeder = match &params.feeder {
        Some(id) => installer.node(id)?,
        None => {
            let feeders: Vec<usize> = (0..installer.grid.nodes.len())
                .filter(|&n| installer.grid.nodes[n].kind == NodeKind::Feeder)
                .collect();
            let mut choice = installer.stream(0, Purpose::Scenario);
            let pick = rng::uniform(&mut choice, [0.0, feeders.len() as f64]) as usize;
            *feeders
                .get(pick.min(feeders.len().saturating_sub(1)))
                .ok_or_else(|| installer.error("the grid has no feeder"))?
        }
    };
    let (from, until) = installer.window(params.onset_hours, params.duration_hours)?;
    let injection = installer.inject(
        InjectionKind::Diversion,
        Place {
            node: Some(feeder),
            ..Place::default()
        },
        from,
        until,
        json!({
            "share": params.share,
            "profile": "share_of_feeder_load",
            "visible_at": installer.grid.nodes[feeder].id.to_string(),
        }),
    );
    let rng = installer.stream(feeder as u64, Purpose::Diversion);
    installer.grid.nodes[feeder].diversions.push(Diversion::new(
        injection,
        from,
        until,
        DiversionDraw::ShareOfThrough {
            share: params.share,
        },
        None,
        rng,
    ));
    Ok(())
}
