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
}

impl NodeBalance {
    /// Input minus fed, when the input is known.
    pub fn residual_wh(&self) -> Option<f64> {
        self.input_wh.map(|i| i - self.fed_wh)
    }
}

/// Balances one window. `energy(m)` is meter m's energy in the window (`None` unknown) and
/// `typical(m)` its usual energy for such a window, used to impute an unknown one (`None` when
/// nothing is known of it: then the window cannot count as covered).
pub fn balance(
    terms: &BalanceTerms,
    energy: impl Fn(usize) -> Option<f64>,
    typical: impl Fn(usize) -> Option<f64>,
) -> NodeBalance {
    let input_wh = energy(terms.input);
    let mut known = 0.0;
    let mut imputed = 0.0;
    let mut imputed_meters = 0;
    let mut unknown_meters = 0;
    for &m in &terms.fed {
        match energy(m) {
            Some(e) => known += e,
            None => {
                match typical(m) {
                    Some(t) => imputed += t.max(0.0),
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
        let energy = [Some(1000.0), Some(300.0), Some(500.0), None];
        let typical = [None, None, None, Some(100.0)];
        let b = balance(&terms, |m| energy[m], |m| typical[m]);
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
        let b = balance(&terms, |m| [None, Some(5.0)][m], |_| None);
        assert_eq!(b.residual_wh(), None);
        let unknown = balance(&terms, |m| [Some(9.0), None][m], |_| None);
        assert_eq!(unknown.coverage, 0.0);
    }
}
