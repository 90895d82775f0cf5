//! A node's energy balance in one window: input minus what it feeds.
//!
//! A fed meter whose energy is unknown for the window (a gap too long to interpolate) is
//! imputed from its own typical energy, and the share of fed energy imputed is the window's
//! coverage deficit: a window balanced mostly on guesses is a data gap, never a diversion.

use serde::{Deserialize, Serialize};

use crate::topology::BalanceTerms;

/// The balance of one node in one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NodeBalance {
    /// Energy entering through the input meter, in Wh (`None`: unknown).
    pub input_wh: Option<f64>,
    /// Energy delivered to what the node feeds, in Wh (known plus imputed).
    pub fed_wh: f64,
    /// Share of `fed_wh` that was read rather than imputed, in [0, 1].
    pub coverage: f64,
    /// Fed meters imputed for lack of data.
    pub imputed_meters: u32,
    /// How uncertain the balance is beyond the model's own spread, Wh (one standard deviation
    /// of the interpolation and imputation errors the caller declared).
    pub uncertainty_wh: f64,
}

impl NodeBalance {
    /// Input minus fed, when the input is known.
    pub fn residual_wh(&self) -> Option<f64> {
        self.input_wh.map(|i| i - self.fed_wh)
    }
}

/// Balances one window. `energy(m)` is meter m's energy in the window and the standard
/// deviation of its error (zero when both boundaries were read, larger when one was interpolated
/// across a missed reading), `None` when unknown; `typical(m)` is its usual energy for such a
/// window and the error of using it instead, to impute an unknown one (`None` when nothing is
/// known of it: then the window cannot count as covered). Errors of different meters are
/// independent and add in quadrature.
pub fn balance(
    terms: &BalanceTerms,
    energy: impl Fn(usize) -> Option<(f64, f64)>,
    typical: impl Fn(usize) -> Option<(f64, f64)>,
) -> NodeBalance {
    let input = energy(terms.input);
    let input_wh = input.map(|(e, _)| e);
    let mut variance = input.map_or(0.0, |(_, sd)| sd * sd);
    let mut known = 0.0;
    let mut imputed = 0.0;
    let mut imputed_meters = 0;
    let mut unknown_meters = 0;
    for &m in &terms.fed {
        match energy(m) {
            Some((e, sd)) => {
                known += e;
                variance += sd * sd;
            }
            None => {
                match typical(m) {
                    Some((t, sd)) => {
                        imputed += t.max(0.0);
                        variance += sd * sd;
                    }
                    None => unknown_meters += 1,
                }
                imputed_meters += 1;
            }
        }
    }
    let fed_wh = known + imputed;
    let coverage = if imputed_meters == 0 {
        1.0
    } else if unknown_meters > 0 {
        // Something fed is missing and nothing says how much it takes.
        0.0
    } else if fed_wh.abs() > f64::EPSILON {
        (1.0 - imputed / fed_wh.abs()).clamp(0.0, 1.0)
    } else {
        0.0
    };
    NodeBalance {
        input_wh,
        fed_wh,
        coverage,
        imputed_meters,
        uncertainty_wh: variance.sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_is_input_minus_fed_with_imputation_lowering_coverage() {
        let terms = BalanceTerms {
            input: 0,
            fed: vec![1, 2, 3],
        };
        let energy = [
            Some((1000.0, 0.0)),
            Some((300.0, 30.0)),
            Some((500.0, 0.0)),
            None,
        ];
        let typical = [None, None, None, Some((100.0, 40.0))];
        let b = balance(&terms, |m| energy[m], |m| typical[m]);
        assert!((b.uncertainty_wh - 50.0).abs() < 1e-9);
        assert_eq!(b.input_wh, Some(1000.0));
        assert_eq!(b.fed_wh, 900.0);
        assert_eq!(b.residual_wh(), Some(100.0));
        assert!((b.coverage - (1.0 - 100.0 / 900.0)).abs() < 1e-12);
        assert_eq!(b.imputed_meters, 1);
    }

    #[test]
    fn an_unknown_input_leaves_no_residual() {
        let terms = BalanceTerms {
            input: 0,
            fed: vec![1],
        };
        let b = balance(&terms, |m| [None, Some((5.0, 0.0))][m], |_| None);
        assert_eq!(b.residual_wh(), None);
        let unknown = balance(&terms, |m| [Some((9.0, 0.0)), None][m], |_| None);
        assert_eq!(unknown.coverage, 0.0);
    }
}
