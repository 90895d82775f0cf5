//! Suspects of a diversion case: the meters below the node whose reported consumption fell when
//! the residual rose.
//!
//! Each candidate (a consumer meter the node feeds, or a child's input meter — an under-reading
//! boundary meter is how insiders hide a theft) is compared with its own baseline: its mean
//! energy by hour of day over the days before the case. The drop it shows during the case, how
//! much of the case's excess that drop explains, and how well the two move together window by
//! window rank it. A diversion through unmetered taps leaves no meter dropping: then the list is
//! short or empty, and the case points at the wires, which is what an investigator needs to know.

use serde::{Deserialize, Serialize};

/// Tuning of the suspect ranking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuspectParams {
    /// Suspects kept (default 10).
    pub max_suspects: usize,
    /// A drop must stand this many of the meter's own standard errors above zero (default 3).
    pub min_sigmas: f64,
    /// A drop must explain at least this share of the case's excess (default 0.05).
    pub min_share: f64,
}

impl Default for SuspectParams {
    fn default() -> Self {
        SuspectParams {
            max_suspects: 10,
            min_sigmas: 3.0,
            min_share: 0.05,
        }
    }
}

/// A candidate meter's windows: (hour of day, energy Wh) before and during the case.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The meter's id.
    pub meter: &'a str,
    /// Windows before the case (its baseline).
    pub before: &'a [(u8, Option<f64>)],
    /// Windows of the case, aligned with the excess series.
    pub during: &'a [(u8, Option<f64>)],
}

/// A ranked suspect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    /// The meter.
    pub meter: String,
    /// Energy it reported less than its baseline during the case, Wh.
    pub drop_wh: f64,
    /// Share of the case's excess that drop explains.
    pub share: f64,
    /// Correlation of its window-by-window drop with the excess.
    pub correlation: f64,
    /// The ranking score.
    pub score: f64,
}

/// Fewest candidates whose common movement is taken as the weather's (and the calendar's).
pub(crate) const MIN_PEERS: usize = 3;
/// Bounds on the common movement: beyond them, the node's consumers changed for reasons a
/// baseline cannot follow and the raw baselines are kept.
pub(crate) const PEER_FACTOR_RANGE: [f64; 2] = [0.5, 2.0];

/// Ranks candidates against the case's per-window excess (`excess[i]` for `during[i]`).
///
/// Each candidate's baseline is its own hour-of-day mean, scaled by the median of all
/// candidates' during/baseline ratios: a cold snap or a holiday moves every home on the node,
/// a tampered meter drops against its neighbours.
pub fn rank(
    candidates: &[Candidate<'_>],
    excess: &[Option<f64>],
    params: &SuspectParams,
) -> Vec<Suspect> {
    let total_excess: f64 = excess.iter().flatten().sum();
    if total_excess <= 0.0 {
        return Vec::new();
    }
    let baselines: Vec<Option<Baseline>> = candidates.iter().map(Baseline::of).collect();
    let mut ratios: Vec<f64> = candidates
        .iter()
        .zip(&baselines)
        .filter_map(|(c, b)| b.as_ref()?.ratio(c.during))
        .collect();
    let peer_factor = if ratios.len() >= MIN_PEERS {
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        if (PEER_FACTOR_RANGE[0]..=PEER_FACTOR_RANGE[1]).contains(&median) {
            median
        } else {
            1.0
        }
    } else {
        1.0
    };
    let mut suspects: Vec<Suspect> = candidates
        .iter()
        .zip(&baselines)
        .filter_map(|(c, b)| assess(c, b.as_ref()?, peer_factor, excess, total_excess, params))
        .collect();
    suspects.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.drop_wh.total_cmp(&a.drop_wh))
    });
    suspects.truncate(params.max_suspects);
    suspects
}

/// A candidate's hour-of-day baseline and the spread of its windows around it.
struct Baseline {
    sums: [f64; 24],
    counts: [usize; 24],
    overall: f64,
    spread: f64,
}

impl Baseline {
    fn of(c: &Candidate<'_>) -> Option<Baseline> {
        let mut sums = [0.0f64; 24];
        let mut counts = [0usize; 24];
        let mut all = Vec::new();
        for (hour, e) in c.before {
            if let Some(e) = e {
                sums[usize::from(hour % 24)] += e;
                counts[usize::from(hour % 24)] += 1;
                all.push(*e);
            }
        }
        if all.len() < 8 {
            return None;
        }
        let overall = all.iter().sum::<f64>() / all.len() as f64;
        let mut b = Baseline {
            sums,
            counts,
            overall,
            spread: 0.0,
        };
        let deviations: Vec<f64> = c
            .before
            .iter()
            .filter_map(|(h, e)| e.map(|e| e - b.at(*h)))
            .collect();
        let mean = deviations.iter().sum::<f64>() / deviations.len() as f64;
        b.spread = (deviations.iter().map(|d| (d - mean).powi(2)).sum::<f64>()
            / deviations.len() as f64)
            .sqrt();
        Some(b)
    }

    fn at(&self, hour: u8) -> f64 {
        let h = usize::from(hour % 24);
        if self.counts[h] >= 2 {
            self.sums[h] / self.counts[h] as f64
        } else {
            self.overall
        }
    }

    /// What the candidate reported during the case over what its baseline expected.
    fn ratio(&self, during: &[(u8, Option<f64>)]) -> Option<f64> {
        let (mut seen, mut expected) = (0.0, 0.0);
        for (hour, e) in during {
            if let Some(e) = e {
                seen += e;
                expected += self.at(*hour);
            }
        }
        (expected > 0.0).then(|| seen / expected)
    }
}

fn assess(
    c: &Candidate<'_>,
    b: &Baseline,
    peer_factor: f64,
    excess: &[Option<f64>],
    total_excess: f64,
    params: &SuspectParams,
) -> Option<Suspect> {
    let baseline = |hour: u8| b.at(hour) * peer_factor;
    let spread = b.spread;
    let mut drop = 0.0;
    let mut known = 0usize;
    let mut pairs = Vec::new();
    for ((hour, e), x) in c.during.iter().zip(excess) {
        if let Some(e) = e {
            let d = baseline(*hour) - e;
            drop += d;
            known += 1;
            if let Some(x) = x {
                pairs.push((d, *x));
            }
        }
    }
    if known == 0 {
        return None;
    }
    let standard_error = spread.max(1.0) * (known as f64).sqrt();
    let share = drop / total_excess;
    if drop < params.min_sigmas * standard_error || share < params.min_share {
        return None;
    }
    let correlation = pearson(&pairs);
    Some(Suspect {
        meter: c.meter.to_owned(),
        drop_wh: drop,
        share,
        correlation,
        score: share.min(1.5) * (0.5 + 0.5 * correlation.max(0.0)),
    })
}

fn pearson(pairs: &[(f64, f64)]) -> f64 {
    let n = pairs.len() as f64;
    if n < 3.0 {
        return 0.0;
    }
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        // A constant drop against a constant excess: as aligned as it gets.
        return if sxx <= 0.0 && syy <= 0.0 { 1.0 } else { 0.0 };
    }
    sxy / (sxx * syy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(level: impl Fn(u8) -> f64, days: usize) -> Vec<(u8, Option<f64>)> {
        (0..days * 96)
            .map(|i| {
                let hour = ((i % 96) / 4) as u8;
                (hour, Some(level(hour) + ((i * 7919) % 13) as f64))
            })
            .collect()
    }

    #[test]
    fn the_meter_that_dropped_by_the_excess_leads() {
        let household = |h: u8| {
            if (7..9).contains(&h) || (18..22).contains(&h) {
                300.0
            } else {
                80.0
            }
        };
        let before = day(household, 7);
        let honest_during = day(household, 1);
        // The tampered meter reports half of what it uses.
        let tampered_during: Vec<(u8, Option<f64>)> = day(household, 1)
            .into_iter()
            .map(|(h, e)| (h, e.map(|e| e * 0.5)))
            .collect();
        let excess: Vec<Option<f64>> = day(household, 1)
            .iter()
            .map(|(_, e)| e.map(|e| e * 0.5))
            .collect();
        let candidates = [
            Candidate {
                meter: "M-1",
                before: &before,
                during: &honest_during,
            },
            Candidate {
                meter: "M-2",
                before: &before,
                during: &tampered_during,
            },
            Candidate {
                meter: "M-3",
                before: &before,
                during: &honest_during,
            },
        ];
        let ranked = rank(&candidates, &excess, &SuspectParams::default());
        assert_eq!(ranked.first().map(|s| s.meter.as_str()), Some("M-2"));
        assert_eq!(ranked.len(), 1, "{ranked:?}");
        assert!((ranked[0].share - 1.0).abs() < 0.1, "{ranked:?}");
    }

    #[test]
    fn a_mild_spell_lowers_every_home_and_only_the_tampered_one_is_named() {
        let household = |h: u8| if (17..23).contains(&h) { 400.0 } else { 150.0 };
        let before = day(household, 7);
        // Every home uses 20 % less during the case (warmer days); one reports 40 % of that.
        let warmer = |share: f64| -> Vec<(u8, Option<f64>)> {
            day(household, 2)
                .into_iter()
                .map(|(h, e)| (h, e.map(|e| e * 0.8 * share)))
                .collect()
        };
        let honest = warmer(1.0);
        let tampered = warmer(0.4);
        let excess: Vec<Option<f64>> = day(household, 2)
            .iter()
            .map(|(_, e)| e.map(|e| e * 0.8 * 0.6))
            .collect();
        let ids = ["M-1", "M-2", "M-3", "M-4", "M-5"];
        let candidates: Vec<Candidate<'_>> = ids
            .iter()
            .map(|id| Candidate {
                meter: id,
                before: &before,
                during: if *id == "M-4" { &tampered } else { &honest },
            })
            .collect();
        let ranked = rank(&candidates, &excess, &SuspectParams::default());
        let named: Vec<&str> = ranked.iter().map(|s| s.meter.as_str()).collect();
        assert_eq!(named, ["M-4"], "{ranked:?}");
        assert!((ranked[0].share - 1.0).abs() < 0.1, "{ranked:?}");
    }

    #[test]
    fn unmetered_taps_leave_no_suspect() {
        let flat = |_h: u8| 100.0;
        let before = day(flat, 7);
        let during = day(flat, 1);
        let excess = vec![Some(5000.0); during.len()];
        let candidates = [Candidate {
            meter: "M-1",
            before: &before,
            during: &during,
        }];
        assert!(rank(&candidates, &excess, &SuspectParams::default()).is_empty());
    }
}
