//! Topology changes: consumers fed from another node than the registry says (a feeder switched,
//! households reconnected to the neighbouring transformer).
//!
//! When consumers registered on node B are fed from node A, A's input meter measures their
//! energy that none of A's registered meters account for, and B's registered meters report
//! energy B's input never delivered: A's excess rises by their energy `M(t)` and B's falls by
//! the same, from the same window. A theft raises one node's excess only. So a rise at A that
//! an equal and opposite fall at B mirrors, window by window, is one event, and the moved
//! meters are those of B whose summed energy follows `M(t)`:
//!
//! 1. [`opposite`]: B's excess over A's case windows is -0.5 to -1.5 times A's, it was not
//!    already low before, and the two move together (correlation of A's with minus B's).
//! 2. [`explain`]: `y(t) = (excess_A(t) - excess_B(t)) / 2` (both nodes' views of `M(t)`,
//!    their loss noise halved) is matched by a greedy forward selection over B's consumer
//!    meters, each entering with coefficient 1 (a moved meter's whole energy moves): at each
//!    step the meter that lowers the residual sum of squares and whose variation follows the
//!    residual's best is added, until none lowers it: this settles how many moved. Homes alike
//!    are interchangeable by level, so the chosen meters are then swapped for unchosen ones
//!    while that lowers the sum of squares of the residual's changes from window to window: a
//!    meter's own ups and downs say whether it moved. Accepted when the selected meters explain
//!    most of `y` both in level and in its variation; otherwise the rise stays a diversion.
//!
//! The service then counts the moved meters on A from the shift's first window, so that the rest
//! of A's residual is still checked for theft.

use serde::{Deserialize, Serialize};

/// Tuning of the topology-change search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShiftParams {
    /// Windows of the rise read before the moved meters are named (default 48: twelve hours of
    /// 15-minute windows, enough for households' own variation to tell them apart). A rise
    /// another node mirrors waits this long before it is raised as a diversion.
    pub min_windows: usize,
    /// Windows read, at most, from the rise's start (default 192: two days).
    pub max_windows: usize,
    /// B's fall over A's rise, least and most (defaults 0.5 and 1.5): both nodes measure the
    /// same energy, each through its own loss noise.
    pub min_ratio: f64,
    /// See `min_ratio`.
    pub max_ratio: f64,
    /// Least correlation of A's excess with minus B's over the rise (default 0.5).
    pub min_correlation: f64,
    /// B's mean excess before the rise, at most this fraction of its mean fall after it
    /// (default 0.3): the fall started with the rise.
    pub max_fall_before: f64,
    /// Share of `y`'s energy and of its variation the selected meters must explain (default
    /// 0.7 each).
    pub min_explained: f64,
    /// Meters selected, at most (default 200).
    pub max_meters: usize,
}

impl Default for ShiftParams {
    fn default() -> Self {
        ShiftParams {
            min_windows: 48,
            max_windows: 192,
            min_ratio: 0.5,
            max_ratio: 1.5,
            min_correlation: 0.5,
            max_fall_before: 0.3,
            min_explained: 0.7,
            max_meters: 200,
        }
    }
}

/// How well B's fall mirrors A's rise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mirror {
    /// B's fall over A's rise (energy).
    pub ratio: f64,
    /// Correlation of A's excess with minus B's.
    pub correlation: f64,
}

/// Whether `loss` (B's excess, Wh per window) mirrors `gain` (A's excess over the same
/// windows), with `before` B's excess in the windows before the rise.
pub fn opposite(gain: &[f64], loss: &[f64], before: &[f64], p: &ShiftParams) -> Option<Mirror> {
    if gain.len() != loss.len() || gain.len() < p.min_windows {
        return None;
    }
    let gained: f64 = gain.iter().sum();
    let lost: f64 = -loss.iter().sum::<f64>();
    if gained <= 0.0 || lost <= 0.0 {
        return None;
    }
    let ratio = lost / gained;
    if !(p.min_ratio..=p.max_ratio).contains(&ratio) {
        return None;
    }
    let mean_fall = lost / loss.len() as f64;
    if !before.is_empty() {
        let mean_before = -before.iter().sum::<f64>() / before.len() as f64;
        if mean_before > p.max_fall_before * mean_fall {
            return None;
        }
    }
    let minus: Vec<f64> = loss.iter().map(|l| -l).collect();
    let correlation = correlation(gain, &minus)?;
    (correlation >= p.min_correlation).then_some(Mirror { ratio, correlation })
}

/// The meters that moved, and how well they explain the shift.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// Indices into the candidates, in the order they were selected.
    pub meters: Vec<usize>,
    /// Share of `y`'s energy (sum of squares) they explain.
    pub explained: f64,
    /// Share of `y`'s variation around its mean they explain.
    pub explained_variation: f64,
    /// Their energy over the windows, Wh.
    pub moved_wh: f64,
}

/// The candidates (each meter's energy per window, `None` where unknown, counted as 0) whose
/// sum explains `(gain - loss) / 2 / scale`; `None` when no set explains it well enough.
/// `scale` is 1 plus the nodes' marginal loss: the receiving node's input carries the moved
/// load's losses too, and the losing node's model expects losses on load it no longer carries.
pub fn explain(
    gain: &[f64],
    loss: &[f64],
    candidates: &[Vec<Option<f64>>],
    scale: f64,
    p: &ShiftParams,
) -> Option<Shift> {
    let n = gain.len().min(loss.len());
    if n < p.min_windows || !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let y: Vec<f64> = (0..n).map(|t| 0.5 * (gain[t] - loss[t]) / scale).collect();
    let energy = |c: &Vec<Option<f64>>, t: usize| c.get(t).copied().flatten().unwrap_or(0.0);
    let mut residual = y.clone();
    let mut chosen: Vec<usize> = Vec::new();
    let mut used = vec![false; candidates.len()];
    while chosen.len() < p.max_meters {
        // Of the meters whose whole energy would reduce the residual sum of squares (adding
        // meter j changes it by sum(e^2 - 2 r e)), the one whose variation follows the
        // residual's most closely: by level alone the largest homes would win, while it is a
        // meter's own ups and downs that say it moved.
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(j, _)| !used[*j])
            .filter_map(|(j, c)| {
                let e: Vec<f64> = (0..n).map(|t| energy(c, t)).collect();
                let improvement: f64 = (0..n).map(|t| 2.0 * residual[t] * e[t] - e[t] * e[t]).sum();
                (improvement > 0.0).then(|| (j, correlation(&residual, &e).unwrap_or(0.0)))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((j, _)) = best else {
            break;
        };
        used[j] = true;
        chosen.push(j);
        for (t, r) in residual.iter_mut().enumerate() {
            *r -= energy(&candidates[j], t);
        }
    }
    if chosen.is_empty() {
        return None;
    }
    // The greedy pass settles how many meters moved, but by level homes alike are
    // interchangeable, and a few percent of loss on the moved load tips the choice to larger
    // or smaller ones. Which meters they are is in their own ups and downs: swap a chosen meter
    // for an unchosen one while that lowers the sum of squares of the residual's changes from
    // window to window (bounded passes).
    let delta = |v: &[f64]| -> Vec<f64> { v.windows(2).map(|w| w[1] - w[0]).collect() };
    let changes: Vec<Vec<f64>> = candidates
        .iter()
        .map(|c| delta(&(0..n).map(|t| energy(c, t)).collect::<Vec<_>>()))
        .collect();
    let mut residual_change = delta(&y);
    for &j in &chosen {
        for (r, d) in residual_change.iter_mut().zip(&changes[j]) {
            *r -= d;
        }
    }
    for _ in 0..p.max_meters.min(50) {
        let mut best: Option<(usize, usize, f64)> = None;
        for (slot, &j) in chosen.iter().enumerate() {
            for (k, dk) in changes.iter().enumerate() {
                if used[k] {
                    continue;
                }
                let change: f64 = residual_change
                    .iter()
                    .zip(&changes[j])
                    .zip(dk)
                    .map(|((r, dj), dk)| {
                        let after = r + dj - dk;
                        after * after - r * r
                    })
                    .sum();
                if change < best.map_or(0.0, |b| b.2) {
                    best = Some((slot, k, change));
                }
            }
        }
        let Some((slot, k, _)) = best else {
            break;
        };
        let j = chosen[slot];
        for ((r, dj), dk) in residual_change.iter_mut().zip(&changes[j]).zip(&changes[k]) {
            *r += dj - dk;
        }
        for (t, r) in residual.iter_mut().enumerate() {
            *r += energy(&candidates[j], t) - energy(&candidates[k], t);
        }
        used[j] = false;
        used[k] = true;
        chosen[slot] = k;
    }
    let ss = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
    let centred = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>()
    };
    let explained = 1.0 - ss(&residual) / ss(&y).max(f64::MIN_POSITIVE);
    let variation = centred(&y);
    let explained_variation = if variation > 0.0 {
        1.0 - centred(&residual) / variation
    } else {
        explained
    };
    if explained < p.min_explained || explained_variation < p.min_explained {
        return None;
    }
    let moved_wh = chosen
        .iter()
        .map(|&j| (0..n).map(|t| energy(&candidates[j], t)).sum::<f64>())
        .sum();
    Some(Shift {
        meters: chosen,
        explained,
        explained_variation,
        moved_wh,
    })
}

fn correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let ma = a[..n].iter().sum::<f64>() / n as f64;
    let mb = b[..n].iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for t in 0..n {
        let (da, db) = (a[t] - ma, b[t] - mb);
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A uniform number in [-0.5, 0.5) from two integers (splitmix64).
    fn hash(a: usize, b: usize) -> f64 {
        let mut z = (a as u64) << 32 ^ b as u64;
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }

    /// A household-like energy per window: evening peak, and a meter's own wobble.
    fn home(meter: usize, t: usize) -> f64 {
        let hour = (t % 96) as f64 / 4.0;
        let peak = if (18.0..22.0).contains(&hour) {
            150.0
        } else {
            0.0
        };
        (60.0 + peak + 80.0 * hash(meter, t) + 5.0 * (meter % 4) as f64).max(0.0)
    }

    fn noise(seed: usize, t: usize) -> f64 {
        20.0 * hash(1000 + seed, t)
    }

    fn homes(n: usize, windows: usize) -> Vec<Vec<Option<f64>>> {
        (0..n)
            .map(|m| (0..windows).map(|t| Some(home(m, t))).collect())
            .collect()
    }

    #[test]
    fn ten_moved_homes_are_named_among_sixty() {
        let windows = 96;
        let candidates = homes(60, windows);
        let moved = [3usize, 8, 11, 17, 23, 30, 41, 44, 52, 58];
        let m = |t: usize| moved.iter().map(|&j| home(j, t)).sum::<f64>();
        let gain: Vec<f64> = (0..windows).map(|t| m(t) + noise(1, t)).collect();
        let loss: Vec<f64> = (0..windows).map(|t| -m(t) + noise(2, t)).collect();
        let p = ShiftParams::default();
        let mirror = opposite(&gain, &loss, &[noise(3, 0), noise(3, 1)], &p).expect("mirrored");
        assert!((0.9..1.1).contains(&mirror.ratio), "{mirror:?}");
        let shift = explain(&gain, &loss, &candidates, 1.0, &p).expect("explained");
        let mut named = shift.meters.clone();
        named.sort_unstable();
        assert_eq!(named, moved, "{shift:?}");
        assert!(shift.explained > 0.95, "{shift:?}");
    }

    #[test]
    fn a_theft_at_one_node_is_not_a_shift() {
        let windows = 64;
        let gain: Vec<f64> = (0..windows).map(|t| 800.0 + noise(1, t)).collect();
        let loss: Vec<f64> = (0..windows).map(|t| noise(2, t)).collect();
        assert_eq!(opposite(&gain, &loss, &[], &ShiftParams::default()), None);
    }

    #[test]
    fn a_flat_rise_no_meter_follows_is_not_explained() {
        // A constant 2 kW bypass at A while B's loss model happens to run low: the homes' daily
        // shape does not follow a flat line.
        let windows = 96;
        let candidates = homes(60, windows);
        let gain: Vec<f64> = (0..windows).map(|t| 500.0 + noise(1, t)).collect();
        let loss: Vec<f64> = (0..windows).map(|t| -500.0 + noise(2, t)).collect();
        assert_eq!(
            explain(&gain, &loss, &candidates, 1.0, &ShiftParams::default()),
            None
        );
    }

    #[test]
    fn a_fall_that_began_before_the_rise_is_not_its_mirror() {
        let windows = 32;
        let gain: Vec<f64> = (0..windows).map(|t| home(1, t) * 5.0).collect();
        let loss: Vec<f64> = gain.iter().map(|g| -g).collect();
        let before = vec![-300.0; 16];
        assert_eq!(
            opposite(&gain, &loss, &before, &ShiftParams::default()),
            None
        );
    }
}
