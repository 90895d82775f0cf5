//! The physics of one interval: what every consumer draws, and every node's energy balance.
//!
//! Bottom-up through the physical tree, for each node:
//!   fed      = its physical consumers' draw + its physical children's inputs
//!   through  = fed + street lighting                (what flows in its conductors)
//!   loss     = technical loss of `through`
//!   theft    = diversions tapped right below its input meter (they pass the meter, not the
//!              node's conductors, so they do not change its own losses)
//!   input    = fed + lighting + loss + theft        (conservation, exactly)
//! Theft still flows through the nodes above, and raises their losses, as it would.

use crate::calendar::{Clock, StepContext};
use crate::grid::Grid;
use crate::rng::{self, Stream};

/// The flows of one node, as average powers over the interval, W.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NodeFlow {
    pub input_w: f64,
    pub fed_w: f64,
    pub loss_w: f64,
    pub theft_w: f64,
    pub unmetered_w: f64,
    /// The part of the theft that the node's own input meter is rigged not to see (insider).
    pub hidden_w: f64,
}

/// Everything that happened physically in one interval.
#[derive(Debug, Clone)]
pub(crate) struct Flows {
    pub index: u64,
    pub hours: f64,
    /// True draw of each consumer, W.
    pub consumer_w: Vec<f64>,
    /// What each consumer's meter is shown, W (the true draw unless tampered).
    pub consumer_seen_w: Vec<f64>,
    pub nodes: Vec<NodeFlow>,
    /// Energy to add to injections once this interval is published: (injection, Wh).
    pub injection_wh: Vec<(usize, f64)>,
}

impl Flows {
    /// What the sensing element of meter `meter` sees, W.
    pub(crate) fn seen_w(&self, grid: &Grid, meter: usize) -> f64 {
        let m = &grid.meters[meter];
        match m.consumer {
            Some(c) => self.consumer_seen_w[c],
            None => {
                let flow = &self.nodes[m.node];
                flow.input_w - flow.hidden_w
            }
        }
    }

    /// True energy through meter `meter`'s connection, W.
    pub(crate) fn through_w(&self, grid: &Grid, meter: usize) -> f64 {
        let m = &grid.meters[meter];
        match m.consumer {
            Some(c) => self.consumer_w[c],
            None => self.nodes[m.node].input_w,
        }
    }
}

/// How a diversion draws.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DiversionDraw {
    /// A steady load (illegal farms), with sticky relative variability.
    Flat { power_w: f64, variability: f64 },
    /// A share of what flows through the node (an illegal line feeding homes and workshops).
    ShareOfThrough { share: f64 },
}

/// Energy taken right below a node's input meter.
#[derive(Debug)]
pub(crate) struct Diversion {
    pub injection: usize,
    pub from_index: u64,
    pub until_index: u64,
    pub draw: DiversionDraw,
    /// The meter-tamper injection of the node's input meter, rigged to hide this diversion.
    pub hidden_by: Option<usize>,
    rng: Stream,
    level: f64,
}

/// Correlation of a steady diversion's variability from one interval to the next.
const DIVERSION_CORRELATION: f64 = 0.95;

impl Diversion {
    pub(crate) fn new(
        injection: usize,
        from_index: u64,
        until_index: u64,
        draw: DiversionDraw,
        hidden_by: Option<usize>,
        rng: Stream,
    ) -> Diversion {
        Diversion {
            injection,
            from_index,
            until_index,
            draw,
            hidden_by,
            rng,
            level: 0.0,
        }
    }

    fn power_w(&mut self, index: u64, through_w: f64) -> f64 {
        let rho = DIVERSION_CORRELATION;
        self.level = rho * self.level + (1.0 - rho * rho).sqrt() * rng::normal(&mut self.rng);
        if !(self.from_index..self.until_index).contains(&index) {
            return 0.0;
        }
        match self.draw {
            DiversionDraw::Flat {
                power_w,
                variability,
            } => (power_w * (1.0 + variability * self.level)).max(0.0),
            DiversionDraw::ShareOfThrough { share } => share * through_w,
        }
    }
}

/// Computes interval `context.index`.
pub(crate) fn compute(grid: &mut Grid, clock: &Clock, context: &StepContext) -> Flows {
    let index = context.index;
    let hours = context.hours;
    let mut injection_wh = Vec::new();
    let mut fed_w = vec![0.0; grid.nodes.len()];
    let mut consumer_w = Vec::with_capacity(grid.consumers.len());
    let mut consumer_seen_w = Vec::with_capacity(grid.consumers.len());
    for consumer in &mut grid.consumers {
        if let Some(tamper) = &mut consumer.tamper {
            tamper.prepare(&mut consumer.load, clock, context);
        }
        let sample = consumer.load.sample(context);
        if let (Some(injection), true) = (consumer.load_injection, sample.injected_w > 0.0) {
            injection_wh.push((injection, sample.injected_w * hours));
        }
        let seen = match &mut consumer.tamper {
            Some(tamper) => {
                let seen = tamper.seen_w(context, sample.power_w);
                if seen != sample.power_w {
                    injection_wh.push((tamper.injection, (sample.power_w - seen) * hours));
                }
                seen
            }
            None => sample.power_w,
        };
        let node = consumer.physical_node(index);
        if let Some(relocation) = consumer.relocation {
            if index >= relocation.from_index {
                injection_wh.push((relocation.injection, sample.power_w * hours));
            }
        }
        fed_w[node] += sample.power_w;
        consumer_w.push(sample.power_w);
        consumer_seen_w.push(seen);
    }
    let mut nodes = vec![NodeFlow::default(); grid.nodes.len()];
    for n in (0..grid.nodes.len()).rev() {
        let node = &mut grid.nodes[n];
        let unmetered_w = node.lighting.as_ref().map_or(0.0, |l| l.power_w(context));
        let through_w = fed_w[n] + unmetered_w;
        let loss_w = node.loss.loss_w(through_w, context.temperature_c);
        let mut theft_w = 0.0;
        let mut hidden_w = 0.0;
        for diversion in &mut node.diversions {
            let taken = diversion.power_w(index, through_w);
            if taken > 0.0 {
                injection_wh.push((diversion.injection, taken * hours));
                if let Some(tamper) = diversion.hidden_by {
                    injection_wh.push((tamper, taken * hours));
                    hidden_w += taken;
                }
            }
            theft_w += taken;
        }
        let input_w = through_w + loss_w + theft_w;
        if let Some(parent) = node.parent {
            fed_w[parent] += input_w;
        }
        nodes[n] = NodeFlow {
            input_w,
            fed_w: fed_w[n],
            loss_w,
            theft_w,
            unmetered_w,
            hidden_w,
        };
    }
    Flows {
        index,
        hours,
        consumer_w,
        consumer_seen_w,
        nodes,
        injection_wh,
    }
}
