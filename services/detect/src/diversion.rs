//! Diversion: a node's residual far above what its loss model expects.
//!
//! Two tests share a false-alarm budget, stated as "one false case per N node-days"
//! (`false_case_every_node_days`, default 10,000: a 2,000-node region sees about one false case
//! every five days; the acceptance grid of 20 nodes about one every 500 days):
//!
//! - a per-window test for large diversions: the standardised excess `z` above a threshold
//!   `z*` with one-sided tail probability (half the budget) / (windows per day);
//!   with the default budget z* ≈ 4.9, which with the spread floor of 0.5 % of throughput puts
//!   the single-window floor at about 2.5 %, as DOMAIN.md predicts for class 0.5S/1 meters. A
//!   50 MW diversion is hundreds of sigmas: flagged in the first window it shows in.
//! - a one-sided CUSUM on the same `z` (clamped to ±4 so a single outlier cannot carry it) with
//!   reference `k` (default 0.5: tuned to shifts of one sigma) and a threshold `h` from
//!   Siegmund's approximation of the in-control run length (the other half of the budget).
//!   With the defaults h ≈ 12.6, and a persistent theft of d sigmas is flagged after about
//!   (h + 1.166) / (d - k) windows: 3 % of a feeder whose residual spreads 1 % is caught in
//!   about 1.5 hours, 1.5 % in about 3.5 hours.
//!
//! A window beyond z* but below `immediate_z` (default 15) opens a case only if the next window
//! confirms it (z ≥ `confirm_z`, default 3): single-window artefacts — a street-lighting circuit
//! switching on before the model has learned it, energy moved between two windows by a missed
//! reading — do not become cases, at the price of one window's delay for moderate diversions.
//!
//! - a daily cumulative test for slow theft ([`DailyState`]): at each day's end, the day's
//!   excess as a share of the load delivered, standardised by the node's own day-to-day spread
//!   (learned on its clean days, floored at `daily_sigma_floor_fraction`), enters a CUSUM with
//!   reference `daily_k` (0.5) and a threshold from the same approximation for one false case
//!   per `daily_false_case_every_node_days` (default 30,000; h ≈ 8.5). A theft of 1 % on a node
//!   whose daily share spreads 0.2 % is 5 daily sigmas: flagged after about two days; 0.5 %
//!   after about four. It runs against the frozen yardstick (the detector's models), so the
//!   theft it adds up is never learned as loss. Its cases end by the daily rule too: when
//!   the days are back below half the case's own mean share (`daily_end_h`, two days at most).
//!   With the default budgets the three tests together raise about one false case per 7,500
//!   node-days.
//!
//! A case ends when a second, downward CUSUM (reference `end_k`, threshold `end_h`) says the
//! excess is back to normal: about `end_h / end_k` windows (2 hours by default) after the theft
//! stops, and the case's end is dated back to where that statistic left zero. Its energy is the
//! sum of the excess over its windows up to that point. Windows without enough data
//! (`min_coverage`) neither flag nor clear a case; `gap_windows` of them in a row open a data
//! gap instead.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// Tuning of the diversion tests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiversionParams {
    /// The false-alarm budget: one false case per this many node-days (default 10,000).
    pub false_case_every_node_days: f64,
    /// CUSUM reference value in sigmas (default 0.5).
    pub cusum_k: f64,
    /// Per-window z is clamped to ±this before entering the CUSUM (default 4).
    pub z_clamp: f64,
    /// Reference of the downward CUSUM that ends a case, in sigmas (default 0.5: halfway between
    /// "normal" and a one-sigma theft).
    pub end_k: f64,
    /// Threshold of the downward CUSUM (default 4: a case ends about 8 windows after its excess
    /// returns to normal; a theft of one sigma or more ends one spuriously about once in tens of
    /// thousands of windows).
    pub end_h: f64,
    /// A window must also exceed this share of the node's input to be flagged alone
    /// (default 0.01), so that a very quiet node is not flagged for a statistically significant
    /// but trivial excess.
    pub min_excess_fraction: f64,
    /// A CUSUM case also needs its mean excess to reach this share of the load delivered
    /// meanwhile (default 0.02): the smallest persistent diversion reported is 2 % of a node's
    /// throughput. Below it, the systematic errors of class 0.5 and 1 meters, which shift with
    /// the mix of loads (a weekend, a holiday), cannot be told from theft.
    pub min_cusum_fraction: f64,
    /// Least coverage (share of fed energy read rather than imputed) to test a window
    /// (default 0.9).
    pub min_coverage: f64,
    /// Consecutive windows without enough data that open a data gap (default 4).
    pub gap_windows: u32,
    /// A window this many sigmas beyond its expected residual opens a case on its own
    /// (default 15: a gross diversion such as 50 MW is flagged in the first window it shows in).
    pub immediate_z: f64,
    /// A window beyond the threshold but below `immediate_z` opens a case only if the next
    /// window stands at least this many sigmas above expected too (default 3).
    pub confirm_z: f64,
    /// The daily test's false-alarm budget: one false case per this many node-days
    /// (default 30,000).
    pub daily_false_case_every_node_days: f64,
    /// Reference of the daily CUSUM, in daily sigmas (default 0.5).
    pub daily_k: f64,
    /// Least day-to-day spread of a node's daily excess share assumed (default 0.002: 0.2 % of
    /// the day's load), so that a node whose days happened to agree closely is not judged
    /// against a spread its meters' class errors cannot promise.
    pub daily_sigma_floor_fraction: f64,
    /// Clean days a node's daily spread is learned on before the daily test runs (default 7:
    /// one of each weekday).
    pub daily_min_days: u32,
    /// Smallest mean excess share the daily test reports (default 0.004: 0.4 % of the load).
    pub daily_min_fraction: f64,
    /// Share of a day's windows that must have been tested for the day to count (default 0.9).
    pub daily_min_tested: f64,
    /// Threshold of the downward daily CUSUM that ends a daily case (default 2).
    pub daily_end_h: f64,
}

impl Default for DiversionParams {
    fn default() -> Self {
        DiversionParams {
            false_case_every_node_days: 10_000.0,
            cusum_k: 0.5,
            z_clamp: 4.0,
            end_k: 0.5,
            end_h: 4.0,
            min_excess_fraction: 0.01,
            min_cusum_fraction: 0.02,
            min_coverage: 0.9,
            gap_windows: 4,
            immediate_z: 15.0,
            confirm_z: 3.0,
            daily_false_case_every_node_days: 30_000.0,
            daily_k: 0.5,
            daily_sigma_floor_fraction: 0.002,
            daily_min_days: 7,
            daily_min_fraction: 0.004,
            daily_min_tested: 0.9,
            daily_end_h: 2.0,
        }
    }
}

/// Thresholds derived from the budget for a window length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Per-window z threshold.
    pub window_z: f64,
    /// CUSUM threshold.
    pub cusum_h: f64,
    /// Daily CUSUM threshold.
    #[serde(default)]
    pub daily_h: f64,
}

impl DiversionParams {
    /// The thresholds for `windows_per_day` windows a day.
    pub fn thresholds(&self, windows_per_day: f64) -> Thresholds {
        let cases_per_window =
            1.0 / (self.false_case_every_node_days.max(1.0) * windows_per_day.max(1.0));
        let p = (cases_per_window / 2.0).clamp(1e-15, 0.5);
        let window_z = Normal::standard().inverse_cdf(1.0 - p);
        // In-control average run length wanted from the CUSUM alone, in windows.
        let arl0 = 2.0 / cases_per_window;
        Thresholds {
            window_z,
            cusum_h: cusum_threshold(self.cusum_k, arl0),
            daily_h: cusum_threshold(self.daily_k, self.daily_false_case_every_node_days.max(1.0)),
        }
    }
}

/// Siegmund's approximation of a one-sided CUSUM's in-control run length for standard normal
/// observations, reference `k` and threshold `h`.
pub fn siegmund_arl0(k: f64, h: f64) -> f64 {
    let x = 2.0 * k * (h + 1.166);
    ((x).exp() - x - 1.0) / (2.0 * k * k)
}

/// The threshold `h` giving an in-control run length of `arl0` windows (bisection).
pub fn cusum_threshold(k: f64, arl0: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 200.0f64);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if siegmund_arl0(k, mid) < arl0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// What the detector knows of a node between windows. Stored with every window evaluated so
/// that a late reading re-runs the node from the window before it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// CUSUM statistic.
    pub cusum: f64,
    /// Window after the CUSUM last stood at zero (where a CUSUM-detected case starts).
    pub cusum_start: Option<DateTime<Utc>>,
    /// Excess accumulated since `cusum_start`, Wh.
    pub cusum_excess_wh: f64,
    /// Load delivered since `cusum_start`, Wh (the CUSUM's case must be a share of it).
    #[serde(default)]
    pub cusum_load_wh: f64,
    /// The open diversion case.
    pub case: Option<Case>,
    /// Consecutive windows without enough data.
    pub insufficient: u32,
    /// Start of the open data gap (or of the insufficient run, before it becomes one).
    pub gap_start: Option<DateTime<Utc>>,
    /// A window beyond the per-window threshold awaiting the next one's confirmation: its
    /// start and excess.
    #[serde(default)]
    pub pending: Option<(DateTime<Utc>, f64)>,
    /// The daily test.
    #[serde(default)]
    pub daily: DailyState,
}

impl NodeState {
    /// Ends the open case, its end dated to where its tail began (else `fallback`), and
    /// starts both cumulative tests afresh.
    fn end_case(&mut self, fallback: DateTime<Utc>) -> Option<EndedCase> {
        let case = self.case.take()?;
        self.daily.reset_run();
        self.cusum = 0.0;
        self.cusum_start = None;
        self.cusum_excess_wh = 0.0;
        self.cusum_load_wh = 0.0;
        Some(EndedCase {
            start: case.start,
            end: case.tail_start.unwrap_or(fallback),
            excess_wh: case.excess_wh.max(0.0),
            max_z: case.max_z,
            flagged_at: case.flagged_at,
        })
    }
}

/// What the daily test knows of a node: the day being added up, the node's day-to-day spread,
/// and its daily CUSUM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DailyState {
    /// Start of the day being added up.
    pub day_start: Option<DateTime<Utc>>,
    /// Its excess so far, Wh.
    pub excess_wh: f64,
    /// Its load delivered so far, Wh.
    pub load_wh: f64,
    /// Its windows seen and tested with a model fit for the cumulative tests.
    pub seen: u32,
    /// Of them, tested.
    pub tested: u32,
    /// Mean square of the daily excess share over the clean days learned.
    pub mean_square: f64,
    /// Clean days learned (capped at 28, the memory of the mean square).
    pub clean_days: u32,
    /// The daily CUSUM.
    pub stat: f64,
    /// Start of the day after the statistic last stood at zero.
    pub start: Option<DateTime<Utc>>,
    /// Excess since `start`, Wh.
    pub run_excess_wh: f64,
    /// Load since `start`, Wh.
    pub run_load_wh: f64,
}

impl DailyState {
    /// The spread of a day's excess share this node has shown, floored.
    pub fn sigma_fraction(&self, params: &DiversionParams) -> f64 {
        self.mean_square
            .max(0.0)
            .sqrt()
            .max(params.daily_sigma_floor_fraction)
    }

    fn reset_run(&mut self) {
        self.stat = 0.0;
        self.start = None;
        self.run_excess_wh = 0.0;
        self.run_load_wh = 0.0;
    }
}

/// An open diversion case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// First window of the case.
    pub start: DateTime<Utc>,
    /// Excess summed over its windows so far (the tail excluded), Wh.
    pub excess_wh: f64,
    /// The downward CUSUM: grows while the excess looks normal.
    pub end_stat: f64,
    /// Start of the window where `end_stat` last left zero: the case's end if it ends.
    pub tail_start: Option<DateTime<Utc>>,
    /// Excess since `tail_start` (added to the case if it resumes), Wh.
    pub tail_excess_wh: f64,
    /// Highest z seen.
    pub max_z: f64,
    /// Windows in the case.
    pub windows: u32,
    /// End of the window whose judgement opened the case: its start to this is how much event
    /// time passed before it was flagged.
    #[serde(default)]
    pub flagged_at: Option<DateTime<Utc>>,
    /// Opened by the daily test: it ends by the daily rule, not the per-window one.
    #[serde(default)]
    pub daily: bool,
    /// Load delivered over the case, Wh (its mean excess share is `excess_wh` over it).
    #[serde(default)]
    pub load_wh: f64,
}

/// One window's data for a node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowInput {
    /// Window start.
    pub start: DateTime<Utc>,
    /// Window end.
    pub end: DateTime<Utc>,
    /// Input energy, Wh (`None`: unknown).
    pub input_wh: Option<f64>,
    /// Fed energy, Wh.
    pub fed_wh: f64,
    /// Coverage of the fed energy.
    pub coverage: f64,
    /// Expected residual (loss model), Wh.
    pub expected_wh: f64,
    /// Spread of the residual, Wh.
    pub sigma_wh: f64,
    /// How far the expected residual may be off because the load is unusual for the time of
    /// day, Wh (`LossModel::extrapolation`), combined with the error of interpolated and
    /// imputed energies: biases that last while the load (the gap) does, so the cumulative
    /// test counts only excess beyond them (a diversion does not move the load delivered, so
    /// it is not discounted).
    pub bias_allowance_wh: f64,
    /// Whether the node's model has enough history for the cumulative test (priors and young
    /// models miss calendar effects such as street lighting, which a CUSUM would accumulate).
    pub learned: bool,
    /// Whether the model is the node's own at all (false: the cold-start priors).
    pub learned_model: bool,
    /// Start of the day the window belongs to (the region's local day): where the daily test
    /// closes one day and begins the next.
    pub day_start: DateTime<Utc>,
}

/// What one window did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowOutcome {
    /// Residual minus expected, Wh (`None` when the window could not be tested).
    pub excess_wh: Option<f64>,
    /// Standardised excess.
    pub z: Option<f64>,
    /// Whether the window is part of an open case.
    pub in_case: bool,
    /// A case that ended with this window's arrival (its last diverting window ended earlier).
    pub ended: Option<EndedCase>,
    /// Whether the window is part of an open data gap.
    pub in_gap: bool,
    /// A data gap that ended at this window's start.
    pub gap_ended: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// A case that is over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndedCase {
    /// Its first window's start.
    pub start: DateTime<Utc>,
    /// End of its last diverting window.
    pub end: DateTime<Utc>,
    /// Energy diverted, Wh.
    pub excess_wh: f64,
    /// Highest z.
    pub max_z: f64,
    /// End of the window whose judgement opened it.
    #[serde(default)]
    pub flagged_at: Option<DateTime<Utc>>,
}

/// Advances a node's state by one window.
pub fn step(
    state: &mut NodeState,
    w: &WindowInput,
    params: &DiversionParams,
    thresholds: &Thresholds,
) -> WindowOutcome {
    let mut outcome = WindowOutcome {
        excess_wh: None,
        z: None,
        in_case: state.case.is_some(),
        ended: None,
        in_gap: false,
        gap_ended: None,
    };
    if state.daily.day_start != Some(w.day_start) {
        if state.daily.day_start.is_some() {
            match close_day(state, params, thresholds, w) {
                DayClose::Flagged => outcome.in_case = true,
                DayClose::Ended(ended) => {
                    outcome.ended = Some(ended);
                    outcome.in_case = false;
                }
                DayClose::Nothing => {}
            }
        }
        let d = &mut state.daily;
        d.day_start = Some(w.day_start);
        d.excess_wh = 0.0;
        d.load_wh = 0.0;
        d.seen = 0;
        d.tested = 0;
    }
    state.daily.seen += 1;
    let testable = w.input_wh.filter(|_| w.coverage >= params.min_coverage);
    let Some(input) = testable else {
        state.insufficient += 1;
        if state.gap_start.is_none() {
            state.gap_start = Some(w.start);
        }
        outcome.in_gap = state.insufficient >= params.gap_windows;
        return outcome;
    };
    if state.insufficient >= params.gap_windows {
        if let Some(start) = state.gap_start {
            outcome.gap_ended = Some((start, w.start));
        }
    }
    state.insufficient = 0;
    state.gap_start = None;

    let excess = (input - w.fed_wh) - w.expected_wh;
    let z = excess / w.sigma_wh.max(1e-9);
    outcome.excess_wh = Some(excess);
    outcome.z = Some(z);
    if w.learned {
        state.daily.tested += 1;
        state.daily.excess_wh += excess;
        state.daily.load_wh += w.fed_wh.abs();
    }

    // CUSUM (only once the node's model is its own).
    if w.learned {
        if state.cusum <= 0.0 {
            state.cusum_start = Some(w.start);
            state.cusum_excess_wh = 0.0;
            state.cusum_load_wh = 0.0;
        }
        let beyond_bias = excess.signum() * (excess.abs() - w.bias_allowance_wh.max(0.0)).max(0.0);
        let z_cusum = beyond_bias / w.sigma_wh.max(1e-9);
        state.cusum = (state.cusum + z_cusum.clamp(-params.z_clamp, params.z_clamp)
            - params.cusum_k)
            .max(0.0);
        state.cusum_excess_wh += excess;
        state.cusum_load_wh += w.fed_wh.abs();
        if state.cusum <= 0.0 {
            state.cusum_start = None;
            state.cusum_excess_wh = 0.0;
            state.cusum_load_wh = 0.0;
        }
    } else {
        state.cusum = 0.0;
        state.cusum_start = None;
        state.cusum_excess_wh = 0.0;
        state.cusum_load_wh = 0.0;
    }

    let above = z > thresholds.window_z && excess > params.min_excess_fraction * input.abs();
    // A window far beyond the threshold opens a case alone; one just beyond it needs the next
    // window to confirm (a single window can be an artefact: a lamp circuit switched on, energy
    // moved between two windows by a missed reading), and then the case starts at the first.
    let pending = state.pending.take();
    let confirmed = pending.filter(|_| z >= params.confirm_z);
    // Under the cold-start priors only a gross diversion is flagged, at once: the priors know
    // nothing of the node's no-load loss or street lighting, which on a lightly loaded node at
    // night can be half its load.
    let confirmed = confirmed.filter(|_| w.learned_model);
    let window_flag = (above && z >= params.immediate_z) || confirmed.is_some();
    if above && !window_flag && state.case.is_none() && w.learned_model {
        state.pending = Some((w.start, excess));
    }
    // The CUSUM finds persistent shifts however small; a case needs the shift to matter too:
    // its mean excess at least `min_cusum_fraction` of the load (a model's slight bias on an
    // unusual day must not become a case).
    let cusum_flag = state.cusum > thresholds.cusum_h
        && state.cusum_excess_wh >= params.min_cusum_fraction * state.cusum_load_wh;

    match state.case.as_mut() {
        None if window_flag || cusum_flag => {
            // A CUSUM case started where the statistic last left zero: its energy counts from
            // there. A per-window case starts now, or at the window this one confirmed.
            let (start, excess_wh) = match (window_flag, confirmed, state.cusum_start) {
                (true, Some((first, first_excess)), _) => (first, first_excess + excess),
                (true, None, _) => (w.start, excess),
                (false, _, Some(start)) => (start, state.cusum_excess_wh),
                (false, _, None) => (w.start, excess),
            };
            state.case = Some(Case {
                start,
                excess_wh,
                end_stat: 0.0,
                tail_start: None,
                tail_excess_wh: 0.0,
                max_z: z,
                windows: 1,
                flagged_at: Some(w.end),
                daily: false,
                load_wh: state.cusum_load_wh.max(w.fed_wh.abs()),
            });
            outcome.in_case = true;
        }
        None => {}
        Some(case) if case.daily => {
            // The daily rule ends it (at a day's close); every window adds to it meanwhile.
            case.max_z = case.max_z.max(z);
            case.windows += 1;
            case.excess_wh += excess;
            case.load_wh += w.fed_wh.abs();
            outcome.in_case = true;
        }
        Some(case) => {
            case.max_z = case.max_z.max(z);
            case.windows += 1;
            case.load_wh += w.fed_wh.abs();
            let end_stat = if window_flag {
                0.0
            } else {
                (case.end_stat + params.end_k - z.clamp(-params.z_clamp, params.z_clamp)).max(0.0)
            };
            if end_stat <= 0.0 {
                // Still diverting: the tail, if any, was part of the case after all.
                case.excess_wh += case.tail_excess_wh + excess;
                case.tail_excess_wh = 0.0;
                case.tail_start = None;
            } else {
                if case.end_stat <= 0.0 {
                    case.tail_start = Some(w.start);
                }
                case.tail_excess_wh += excess;
            }
            case.end_stat = end_stat;
            if case.end_stat > params.end_h {
                outcome.ended = state.end_case(w.start);
                outcome.in_case = false;
                return outcome;
            }
            outcome.in_case = true;
        }
    }
    outcome
}

/// What closing a day did.
enum DayClose {
    Nothing,
    Flagged,
    Ended(EndedCase),
}

/// Closes the day being added up: the daily test judges it, a daily case may end, and a clean
/// day teaches the node's day-to-day spread. `next` is the first window of the next day.
fn close_day(
    state: &mut NodeState,
    params: &DiversionParams,
    thresholds: &Thresholds,
    next: &WindowInput,
) -> DayClose {
    let d = &mut state.daily;
    let Some(day) = d.day_start else {
        return DayClose::Nothing;
    };
    let counts = d.seen > 0
        && f64::from(d.tested) >= params.daily_min_tested * f64::from(d.seen)
        && d.load_wh > 0.0;
    if !counts {
        // A day without enough tested windows neither moves nor breaks the test.
        return DayClose::Nothing;
    }
    let share = d.excess_wh / d.load_wh;
    let sigma = d.sigma_fraction(params);
    let u = (share / sigma).clamp(-params.z_clamp, params.z_clamp);
    match state.case.as_mut() {
        Some(case) if case.daily => {
            // Back to normal: days below half the case's own mean share.
            let mean = (case.excess_wh - d.excess_wh) / (case.load_wh - d.load_wh).max(1.0);
            let end_stat = (case.end_stat + (0.5 * mean - share) / sigma).max(0.0);
            if end_stat <= 0.0 {
                case.excess_wh += case.tail_excess_wh;
                case.tail_excess_wh = 0.0;
                case.tail_start = None;
            } else {
                if case.end_stat <= 0.0 {
                    case.tail_start = Some(day);
                }
                case.tail_excess_wh += d.excess_wh;
                case.excess_wh -= d.excess_wh;
            }
            case.end_stat = end_stat;
            if end_stat > params.daily_end_h {
                return match state.end_case(next.day_start) {
                    Some(ended) => DayClose::Ended(ended),
                    None => DayClose::Nothing,
                };
            }
            return DayClose::Nothing;
        }
        Some(_) => {
            // A case of the window tests is open: it accounts for the excess.
            d.reset_run();
            return DayClose::Nothing;
        }
        None => {}
    }
    let learning = d.clean_days < params.daily_min_days;
    let quiet_before = d.stat <= 0.0;
    let mut flagged = false;
    if !learning {
        if d.stat <= 0.0 {
            d.start = Some(day);
            d.run_excess_wh = 0.0;
            d.run_load_wh = 0.0;
        }
        d.stat = (d.stat + u - params.daily_k).max(0.0);
        d.run_excess_wh += d.excess_wh;
        d.run_load_wh += d.load_wh;
        if d.stat <= 0.0 {
            d.reset_run();
        }
        flagged = d.stat > thresholds.daily_h
            && d.run_excess_wh >= params.daily_min_fraction * d.run_load_wh;
    }
    // A day with no excess building up teaches the spread (an outlier day only while
    // learning, so one holiday cannot make the node deaf for a month).
    if learning || (quiet_before && d.stat <= 0.0 && u.abs() < 3.0) {
        d.clean_days = (d.clean_days + 1).min(28);
        d.mean_square += (share * share - d.mean_square) / f64::from(d.clean_days);
    }
    if !flagged {
        return DayClose::Nothing;
    }
    let start = d.start.unwrap_or(day);
    state.case = Some(Case {
        start,
        excess_wh: d.run_excess_wh,
        end_stat: 0.0,
        tail_start: None,
        tail_excess_wh: 0.0,
        max_z: 0.0,
        windows: 0,
        flagged_at: Some(next.day_start),
        daily: true,
        load_wh: d.run_load_wh,
    });
    d.reset_run();
    DayClose::Flagged
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t0() -> DateTime<Utc> {
        "2025-10-01T00:00:00Z".parse().expect("time")
    }

    fn day_of(t: DateTime<Utc>) -> DateTime<Utc> {
        t.date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
    }

    fn run(residuals: &[Option<f64>], learned: bool) -> (Vec<WindowOutcome>, NodeState) {
        run_with_bias(residuals, learned, 0.0)
    }

    fn run_with_bias(
        residuals: &[Option<f64>],
        learned: bool,
        bias_allowance_wh: f64,
    ) -> (Vec<WindowOutcome>, NodeState) {
        let p = DiversionParams::default();
        let th = p.thresholds(96.0);
        let mut state = NodeState::default();
        let outcomes = residuals
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let start = t0() + Duration::minutes(15 * i as i64);
                let w = WindowInput {
                    start,
                    end: start + Duration::minutes(15),
                    input_wh: r.map(|_| 100_000.0),
                    fed_wh: 100_000.0 - 3000.0 - r.unwrap_or(0.0),
                    coverage: 1.0,
                    expected_wh: 3000.0,
                    sigma_wh: 1000.0,
                    bias_allowance_wh,
                    learned,
                    learned_model: learned,
                    day_start: day_of(start),
                };
                step(&mut state, &w, &p, &th)
            })
            .collect();
        (outcomes, state)
    }

    #[test]
    fn thresholds_follow_the_budget() {
        let th = DiversionParams::default().thresholds(96.0);
        assert!((th.window_z - 4.88).abs() < 0.02, "{}", th.window_z);
        assert!((th.cusum_h - 12.6).abs() < 0.2, "{}", th.cusum_h);
        let arl = siegmund_arl0(0.5, th.cusum_h);
        assert!((arl - 2.0 * 10_000.0 * 96.0).abs() / arl < 1e-3);
    }

    #[test]
    fn a_single_window_just_beyond_the_threshold_needs_confirmation() {
        let mut r = vec![Some(0.0); 10];
        r.push(Some(6000.0)); // 6 sigmas, once
        r.extend(vec![Some(0.0); 10]);
        let (out, _) = run(&r, true);
        assert!(
            out.iter().all(|o| !o.in_case),
            "an isolated window is not a case"
        );
        let mut r = vec![Some(0.0); 10];
        r.extend(vec![Some(6000.0); 10]);
        let (out, state) = run(&r, true);
        assert!(
            !out[10].in_case && out[11].in_case,
            "confirmed by the next window"
        );
        let case = state.case.expect("open");
        assert_eq!(
            case.start,
            t0() + Duration::minutes(150),
            "dated from the first window"
        );
        assert!((case.excess_wh - 10.0 * 6000.0).abs() < 1.0);
    }

    #[test]
    fn a_large_diversion_is_flagged_in_its_first_window_and_its_energy_summed() {
        // Noise-free node, then 20 windows of 50 % diverted, then normal again.
        let mut r = vec![Some(0.0); 10];
        r.extend(vec![Some(50_000.0); 20]);
        r.extend(vec![Some(0.0); 12]);
        let (out, state) = run(&r, true);
        assert!(!out[9].in_case);
        assert!(out[10].in_case, "flagged in the first diverting window");
        let ended = out
            .iter()
            .find_map(|o| o.ended.clone())
            .expect("the case ends");
        assert_eq!(ended.start, t0() + Duration::minutes(150));
        assert_eq!(ended.end, t0() + Duration::minutes(450));
        assert!((ended.excess_wh - 20.0 * 50_000.0).abs() < 1.0);
        assert!(state.case.is_none());
    }

    #[test]
    fn a_small_persistent_diversion_is_caught_by_the_cusum() {
        // 2 sigmas of excess (2 % of throughput): below the per-window threshold.
        let mut r = vec![Some(0.0); 20];
        r.extend(vec![Some(2000.0); 40]);
        let (out, state) = run(&r, true);
        let first = out.iter().position(|o| o.in_case).expect("caught");
        assert!(first > 20 && first < 20 + 12, "caught at window {first}");
        let case = state.case.expect("still open");
        assert_eq!(case.start, t0() + Duration::minutes(15 * 20));
        assert!((case.excess_wh - 40.0 * 2000.0).abs() < 1.0);
    }

    #[test]
    fn an_excess_the_loads_departure_explains_does_not_accumulate() {
        // 2.5 % of throughput above expected for sixteen hours, while the load is so unusual
        // for the time of day that the model's slope may be off by as much: no case. The same
        // excess beyond that allowance is caught as before.
        let mut r = vec![Some(0.0); 20];
        r.extend(vec![Some(2500.0); 64]);
        let (out, state) = run_with_bias(&r, true, 2500.0);
        assert!(out.iter().all(|o| !o.in_case) && state.case.is_none());
        let (out, _) = run_with_bias(&r, true, 500.0);
        assert!(
            out.iter().any(|o| o.in_case),
            "2 sigmas beyond the allowance"
        );
    }

    #[test]
    fn without_a_learned_model_only_the_window_test_runs() {
        let mut r = vec![Some(0.0); 5];
        r.extend(vec![Some(2000.0); 40]);
        let (out, _) = run(&r, false);
        assert!(out.iter().all(|o| !o.in_case));
    }

    #[test]
    fn missing_data_opens_a_gap_and_never_a_case() {
        let mut r = vec![Some(0.0); 3];
        r.extend(vec![None; 6]);
        r.extend(vec![Some(0.0); 2]);
        let (out, _) = run(&r, true);
        assert!(out.iter().all(|o| !o.in_case));
        assert!(out[6].in_gap && !out[5].in_gap);
        let gap = out[9].gap_ended.expect("gap closed");
        assert_eq!(
            gap,
            (t0() + Duration::minutes(45), t0() + Duration::minutes(135))
        );
    }

    /// Deterministic pseudo-normal noise (sum of uniforms), one sigma.
    fn noise(seed: u64) -> impl FnMut() -> f64 {
        let mut seed = seed;
        move || {
            let mut s = 0.0;
            for _ in 0..12 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s += (seed >> 11) as f64 / (1u64 << 53) as f64;
            }
            s - 6.0
        }
    }

    #[test]
    fn daily_thresholds_follow_their_budget() {
        let th = DiversionParams::default().thresholds(96.0);
        assert!((th.daily_h - 8.4).abs() < 0.3, "{}", th.daily_h);
    }

    #[test]
    fn a_one_percent_theft_is_caught_by_the_daily_test_and_ends_with_it() {
        // Each window's residual spreads 1 % of the load: 1 % a window is one sigma, which the
        // window CUSUM sees but may not report (below `min_cusum_fraction`).
        let mut normal = noise(5);
        let days = 10 + 12 + 6;
        let r: Vec<Option<f64>> = (0..96 * days)
            .map(|i| {
                let theft = if (96 * 10..96 * 22).contains(&i) {
                    1000.0
                } else {
                    0.0
                };
                Some(1000.0 * normal() + theft)
            })
            .collect();
        let (out, state) = run(&r, true);
        let first = out.iter().position(|o| o.in_case).expect("caught");
        assert!(
            (96 * 10..=96 * 17).contains(&first),
            "flagged on day {:.1}",
            first as f64 / 96.0
        );
        let ended = out
            .iter()
            .find_map(|o| o.ended.clone())
            .expect("the case ends after the theft");
        assert_eq!(
            ended.start,
            t0() + Duration::days(10),
            "dated from the onset"
        );
        assert_eq!(
            ended.end,
            t0() + Duration::days(22),
            "dated to the theft's end"
        );
        // The noise summed over the case's 1,152 windows spreads 3 % of its energy.
        let truth = 96.0 * 12.0 * 1000.0;
        assert!(
            (ended.excess_wh - truth).abs() / truth < 0.1,
            "{} Wh of {truth}",
            ended.excess_wh
        );
        assert!(state.case.is_none());
        assert_eq!(out.iter().filter(|o| o.ended.is_some()).count(), 1);
    }

    #[test]
    fn daily_noise_and_a_weekly_rhythm_raise_nothing_over_ten_years() {
        // Windows spreading 1 % and days whose share also moves by 0.15 % with the weekday.
        let mut normal = noise(23);
        let r: Vec<Option<f64>> = (0..96 * 3650)
            .map(|i| {
                let weekday = (i / 96) % 7;
                let rhythm = if weekday >= 5 { 150.0 } else { -60.0 };
                Some(1000.0 * normal() + rhythm)
            })
            .collect();
        let (out, _) = run(&r, true);
        assert_eq!(out.iter().filter(|o| o.in_case).count(), 0);
    }

    #[test]
    fn noise_alone_raises_nothing_over_a_year_of_windows() {
        let mut normal = noise(11);
        let r: Vec<Option<f64>> = (0..96 * 365).map(|_| Some(1000.0 * normal())).collect();
        let (out, _) = run(&r, true);
        assert_eq!(out.iter().filter(|o| o.in_case).count(), 0);
    }
}
