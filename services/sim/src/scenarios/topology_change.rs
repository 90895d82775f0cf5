//! `topology-change`: a crew moves consumers to a neighbouring feeder and nobody updates the
//! registry. The metered node above their old connection now lacks their energy (its residual
//! falls) and the metered node above their new one carries it unregistered (its residual rises
//! by the same amount). Not a theft: a trap that gridwatch should report as a topology change.

use serde_json::json;

use super::install::{Installer, Place};
use super::TopologyChange;
use crate::error::SimError;
use crate::grid::{NodeKind, Relocation};
use crate::truth::InjectionKind;

pub(super) fn install(
    params: &TopologyChange,
    installer: &mut Installer<'_>,
) -> Result<(), SimError> {
    let grid = &*installer.grid;
    let feeders: Vec<usize> = (0..grid.nodes.len())
        .filter(|&n| grid.nodes[n].kind == NodeKind::Feeder)
        .collect();
    let sibling_of = |feeder: usize| {
        feeders
            .iter()
            .copied()
            .find(|&f| f != feeder && grid.nodes[f].parent == grid.nodes[feeder].parent)
    };
    let from_feeder = match &params.from_feeder {
        Some(id) => installer.node(id)?,
        None => *feeders
            .iter()
            .find(|&&f| sibling_of(f).is_some())
            .ok_or_else(|| installer.error("no feeder has a sibling feeder"))?,
    };
    let to_feeder = match &params.to_feeder {
        Some(id) => installer.node(id)?,
        None => sibling_of(from_feeder)
            .ok_or_else(|| installer.error("the feeder has no sibling feeder"))?,
    };
    if from_feeder == to_feeder {
        return Err(installer.error("from_feeder and to_feeder are the same node"));
    }
    // Leave from the transformer with the most consumers (or the feeder itself), arrive at the
    // first transformer of the other feeder (or the feeder itself).
    let transformers = |feeder: usize| -> Vec<usize> {
        grid.children(feeder)
            .into_iter()
            .filter(|&n| grid.nodes[n].kind == NodeKind::Transformer)
            .collect()
    };
    let from_node = transformers(from_feeder)
        .into_iter()
        .max_by_key(|&t| grid.consumers_on(t).len())
        .unwrap_or(from_feeder);
    let to_node = transformers(to_feeder)
        .into_iter()
        .next()
        .unwrap_or(to_feeder);
    let moved: Vec<usize> = grid
        .consumers_on(from_node)
        .into_iter()
        .filter(|&c| grid.consumers[c].relocation.is_none())
        .take(params.consumers as usize)
        .collect();
    if moved.is_empty() {
        return Err(installer.error(format!(
            "{} has no consumer to move",
            grid.nodes[from_node].id
        )));
    }
    let falls_at = grid
        .metered_ancestor(from_node)
        .map(|n| grid.nodes[n].id.to_string());
    let rises_at = grid
        .metered_ancestor(to_node)
        .map(|n| grid.nodes[n].id.to_string());
    let meters: Vec<String> = moved
        .iter()
        .map(|&c| grid.meters[grid.consumers[c].meter].id.to_string())
        .collect();
    let to_id = grid.nodes[to_node].id.to_string();
    let (from, until) = installer.window(params.onset_hours, None)?;
    let injection = installer.inject(
        InjectionKind::TopologyChange,
        Place {
            node: Some(from_node),
            ..Place::default()
        },
        from,
        until,
        json!({
            "from_node": installer.grid.nodes[from_node].id.to_string(),
            "to_node": to_id,
            "meters": meters,
            "residual_falls_at": falls_at,
            "residual_rises_at": rises_at,
        }),
    );
    for consumer in moved {
        installer.grid.consumers[consumer].relocation = Some(Relocation {
            from_index: from,
            to_node,
            injection,
        });
    }
    Ok(())
}
