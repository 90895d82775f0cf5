//! Technical losses of a grid node.
//!
//! loss = no-load part (transformer iron: magnetising the core costs the same at any load)
//!      + load part = k x P² (I²R in conductors and windings), k rising with conductor
//!        temperature (about 0.4 % per kelvin)
//! times a sticky noise for what the model ignores (power factor, phase imbalance, voltage).
//! Each node is sized from its expected load, so a lightly loaded feeder loses little and an
//! overloaded one a lot, as in the field. gridwatch must learn these per node from history.

use crate::config::{LossConfig, NodeLossConfig};
use crate::rng::{self, correlation_per_step, LogNormalAr1, Stream};

/// Smallest rating of a node, W: even an empty feeder has a rated line.
const MIN_RATING_W: f64 = 10_000.0;
/// Reference temperature of conductor resistance, °C.
const RESISTANCE_REFERENCE_C: f64 = 20.0;

/// One node's losses.
#[derive(Debug)]
pub(crate) struct NodeLoss {
    no_load_w: f64,
    load_coeff_per_w: f64,
    resistance_per_k: f64,
    noise: LogNormalAr1,
    rng: Stream,
}

impl NodeLoss {
    /// Sizes a node for `expected_mean_w` of load.
    pub(crate) fn new(
        config: &LossConfig,
        kind: &NodeLossConfig,
        expected_mean_w: f64,
        step_minutes: f64,
        mut rng: Stream,
    ) -> NodeLoss {
        let rating_w =
            (kind.rating_headroom * config.peak_to_mean * expected_mean_w).max(MIN_RATING_W);
        let spread = [1.0 - config.node_spread, 1.0 + config.node_spread];
        let no_load_w = kind.no_load_share_of_rating * rating_w * rng::uniform(&mut rng, spread);
        let load_coeff_per_w =
            kind.load_loss_share_at_rating * rng::uniform(&mut rng, spread) / rating_w;
        let noise = LogNormalAr1::new(
            &mut rng,
            config.noise_log_sigma,
            correlation_per_step(config.noise_correlation_15min, step_minutes),
        );
        NodeLoss {
            no_load_w,
            load_coeff_per_w,
            resistance_per_k: config.resistance_per_k,
            noise,
            rng,
        }
    }

    /// Loss of the interval, W, for `through_w` flowing through the node's conductors.
    pub(crate) fn loss_w(&mut self, through_w: f64, temperature_c: f64) -> f64 {
        let noise = self.noise.next(&mut self.rng);
        let resistance = 1.0 + self.resistance_per_k * (temperature_c - RESISTANCE_REFERENCE_C);
        (self.no_load_w + self.load_coeff_per_w * resistance * through_w * through_w) * noise
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Purpose};

    #[test]
    fn losses_grow_with_the_square_of_the_load() {
        let config = LossConfig::default();
        let mut node = NodeLoss::new(
            &config,
            &config.feeder,
            1e6,
            15.0,
            stream(1, 1, Purpose::Losses),
        );
        let mean = |node: &mut NodeLoss, p: f64| {
            (0..2000).map(|_| node.loss_w(p, 20.0)).sum::<f64>() / 2000.0
        };
        let light = mean(&mut node, 1e6) - mean(&mut node, 0.0);
        let heavy = mean(&mut node, 2e6) - mean(&mut node, 0.0);
        assert!((heavy / light - 4.0).abs() < 0.3, "{heavy} / {light}");
        // At the expected load a feeder loses a few percent.
        let share = mean(&mut node, 1e6) / 1e6;
        assert!((0.005..0.06).contains(&share), "{share}");
    }
}
