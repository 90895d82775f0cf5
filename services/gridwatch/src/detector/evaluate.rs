//! Evaluating a run of windows for one region: energies, node balances, the diversion tests,
//! and the cases they open, grow and close.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use tokio_postgres::Transaction;

use gridwatch_core::registry::{MeterClass, MeterRole};
use gridwatch_detect::balance::balance;
use gridwatch_detect::diversion::{step, Case, NodeState, Thresholds, WindowInput};
use gridwatch_detect::loss::LossModel;
use gridwatch_detect::window::{Window, WindowSpec};

use super::cases::{raise_diversion, raise_gap, withdraw_unraised, CaseEvent};
use super::grid::{Grid, RegionInfo};
use super::moves::Lookup;
use super::readings;
use super::series::MeterSeries;
use crate::config::DetectorConfig;

/// What the detector keeps about a region between cycles.
pub struct RegionState {
    /// End of the last window evaluated.
    pub evaluated_until: Option<DateTime<Utc>>,
    /// Newest reading time seen.
    pub newest: Option<DateTime<Utc>>,
    /// Node states after the last window evaluated, by node key (`None`: read them from the
    /// database).
    pub states: Option<HashMap<i32, NodeState>>,
    /// Recent meter energies.
    pub series: MeterSeries,
    /// Energy unaccounted at the region's roots in the last window, Wh.
    pub unaccounted_wh: f64,
    /// Start of the first window evaluated in the region (`None`: read it).
    pub evaluated_from: Option<DateTime<Utc>>,
    /// Balanced nodes (ids) evaluated for longer than `on_priors_after_hours` and still judged
    /// on the prior loss model in the last window.
    pub on_priors: Vec<String>,
    /// The loss models and meter variabilities of the day being evaluated, kept between
    /// cycles (`None`: load or fit them).
    pub day_models: Option<DayModels>,
}

/// What a day's windows are judged with: fixed by the days before it, so it is read once per
/// day rather than once per cycle (reading 2,000 nodes' models and 100,000 meters'
/// variabilities cost about 0.4 s, a fifth of a national shard's window).
#[derive(Debug, Clone)]
pub struct DayModels {
    /// The day.
    pub day: NaiveDate,
    /// Loss model by node key.
    pub models: HashMap<i32, LossModel>,
    /// Each meter's window-to-window variation over the day before, by meter key.
    pub variability: HashMap<i32, f64>,
}

/// Everything an evaluation reads.
pub struct Context<'a> {
    /// Detector configuration.
    pub cfg: &'a DetectorConfig,
    /// Window cutting.
    pub spec: WindowSpec,
    /// Test thresholds.
    pub thresholds: Thresholds,
    /// The registry.
    pub grid: &'a Grid,
    /// Anomalies created in this cycle's transaction (kind, region, severity), counted in
    /// `gridwatch_anomalies_raised_total` once it commits.
    pub raised: &'a std::sync::Mutex<Vec<[String; 3]>>,
}

impl Context<'_> {
    /// Raises `condition` (creates or updates its anomaly) and notes a creation for the metrics.
    pub async fn raise(
        &self,
        tx: &Transaction<'_>,
        condition: &crate::anomalies::NewAnomaly,
        actor: &str,
    ) -> Result<crate::anomalies::Raised, tokio_postgres::Error> {
        let raised = crate::anomalies::raise(tx, condition, actor).await?;
        if raised.new {
            if let Ok(mut created) = self.raised.lock() {
                created.push([
                    condition.kind.as_str().to_owned(),
                    condition.region.clone().unwrap_or_default(),
                    condition.severity.as_str().to_owned(),
                ]);
            }
        }
        Ok(raised)
    }
}

/// The absolute number of the window starting at `start`.
pub fn window_number(spec: &WindowSpec, start: DateTime<Utc>) -> i64 {
    start.timestamp().div_euclid(spec.seconds)
}

/// Node states after the window ending at `until`, as stored with it.
pub async fn load_states(
    tx: &Transaction<'_>,
    node_keys: &[i32],
    last_window_start: DateTime<Utc>,
) -> Result<HashMap<i32, NodeState>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT node_key, state FROM detector_node_windows
             WHERE node_key = ANY($1) AND window_start = $2",
            &[&node_keys, &last_window_start],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let state: serde_json::Value = row.get(1);
            Some((row.get::<_, i32>(0), serde_json::from_value(state).ok()?))
        })
        .collect())
}

/// Evaluates `windows` (contiguous, in order) for `region`, starting from `states` (the node
/// states after the window before the first). Returns the states after the last window.
pub async fn evaluate(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    rs: &mut RegionState,
    windows: &[Window],
    mut states: HashMap<i32, NodeState>,
) -> anyhow::Result<HashMap<i32, NodeState>> {
    let grid = ctx.grid;
    let meter_keys = &region.meter_keys;
    let started = std::time::Instant::now();
    let energies = readings::energies(
        tx,
        meter_keys,
        windows,
        Duration::hours(ctx.cfg.max_gap_hours),
        Duration::seconds(ctx.cfg.boundary_tolerance_secs),
    )
    .await?;
    tracing::debug!(region = %region.id, windows = windows.len(), ms = started.elapsed().as_millis() as u64, "Read the windows' energies.");
    // Windows before an interpolated one in which the level before its gap is looked for:
    // the longest gap bridged and the window before it.
    let gap_reach = ctx.cfg.max_gap_hours * 3600 / ctx.spec.seconds.max(1) + 1;
    let numbers: Vec<i64> = windows
        .iter()
        .map(|w| window_number(&ctx.spec, w.start))
        .collect();
    for (i, k) in numbers.iter().enumerate() {
        for &key in meter_keys {
            rs.series
                .set(key, *k, energies.get(key, i), energies.backwards(key, i));
        }
    }

    let node_keys = &region.balanced_keys;
    if rs.evaluated_from.is_none() {
        rs.evaluated_from = tx
            .query_one(
                "SELECT min(window_start) FROM detector_node_windows WHERE node_key = ANY($1)",
                &[node_keys],
            )
            .await?
            .get::<_, Option<DateTime<Utc>>>(0)
            .or(windows.first().map(|w| w.start));
    }
    if let (Some(first), Some(until)) = (windows.first(), rs.evaluated_until) {
        if first.start < until {
            super::models::forget_after(tx, node_keys, first.start).await?;
            // Late readings before the kept day change what it was judged with.
            if rs
                .day_models
                .as_ref()
                .is_some_and(|d| d.day > first.start.date_naive())
            {
                rs.day_models = None;
            }
        }
    }
    // Consumers found fed from another node count there from the change on.
    let moves = super::moves::load(tx, ctx, region).await?;
    let moved_terms = super::moves::terms_by_since(ctx, region, &moves);
    let mut events: Vec<CaseEvent> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let balanced = moved_terms
            .iter()
            .rev()
            .find(|(since, _)| *since <= w.start)
            .map_or(&region.balanced, |(_, terms)| terms);
        let day = w.start.date_naive();
        ensure_day_models(tx, ctx, region, rs, day).await?;
        let Some(DayModels {
            models,
            variability,
            ..
        }) = rs.day_models.as_ref()
        else {
            continue;
        };
        let k = numbers[i];
        let variability_of = |key: i32| -> Option<f64> {
            variability
                .get(&key)
                .copied()
                .or_else(|| rs.series.variability(key, k))
        };
        let class_means = class_means(grid, region, &energies, i);
        let slot = gridwatch_detect::loss::slot_of(w.start);
        let mut rows = Rows::default();
        for (node, terms) in balanced {
            let nk = grid.node_keys[*node];
            let b = balance(
                terms,
                |m| {
                    let key = grid.meter_keys[m];
                    let (e, interpolated) = energies.get_flagged(key, i)?;
                    // A missed boundary reading shares the energy of two windows: the error
                    // is up to half their difference. A meter's usual variation bounds it for an
                    // aggregate (a child node's input), unless its level changed across the gap
                    // by more (a plant's Monday shift after a quiet Sunday): where inside the
                    // gap it changed is unknown. A single consumer can also stop or start at
                    // once (a farm's outage), so a quarter of its energy is the least assumed.
                    let sd = if !interpolated {
                        0.0
                    } else {
                        let change = rs.series.change_before(key, k, e, gap_reach).unwrap_or(0.0);
                        let usual = variability_of(key).map(|v| (0.5 * v).max(change));
                        if grid.topology.meters[m].role == MeterRole::Input {
                            usual.unwrap_or(0.25 * e.abs())
                        } else {
                            usual.map_or(0.25 * e.abs(), |v| v.max(0.25 * e.abs()))
                        }
                    };
                    Some((e, sd))
                },
                |m| {
                    let key = grid.meter_keys[m];
                    let typical = rs
                        .series
                        .typical(key, k)
                        .or_else(|| class_means.get(&grid.topology.meters[m].class).copied())?;
                    let sd = variability_of(key).unwrap_or(0.5 * typical.abs());
                    Some((typical, sd))
                },
            );
            let prior;
            let model = match models.get(&nk) {
                Some(model) => model,
                None => {
                    prior = LossModel::prior(&ctx.cfg.loss);
                    &prior
                }
            };
            let input = WindowInput {
                start: w.start,
                end: w.end,
                input_wh: b.input_wh,
                fed_wh: b.fed_wh,
                coverage: b.coverage,
                expected_wh: model.expected(b.fed_wh, slot, &ctx.cfg.loss),
                sigma_wh: model
                    .sigma(b.fed_wh, slot, &ctx.cfg.loss)
                    .hypot(b.uncertainty_wh),
                // Interpolated and imputed energies err the same way for hours (a gap's even
                // share runs above the meter's real use in one part of the gap and below it in
                // the rest): a bias too, which the cumulative test must not add up. A 30-day
                // replay opened a 3-hour info diversion of 40 kWh on a feeder while one of its
                // meters was bridged across an afternoon gap, each window's excess inside the
                // interpolation's error.
                bias_allowance_wh: model
                    .extrapolation(b.fed_wh, slot, &ctx.cfg.loss)
                    .hypot(b.uncertainty_wh),
                learned: model.supports_cusum(&ctx.cfg.loss),
                learned_model: model.is_learned(),
                day_start: gridwatch_core::days::start_of_day(region.zone, w.start),
            };
            let state = states.entry(nk).or_default();
            let outcome = step(state, &input, &ctx.cfg.diversion, &ctx.thresholds);
            if let Some(ended) = outcome.ended.clone() {
                events.push(CaseEvent::Ended {
                    node: *node,
                    case: ended,
                });
            }
            if let Some((start, end)) = outcome.gap_ended {
                events.push(CaseEvent::GapEnded {
                    node: *node,
                    start,
                    end,
                });
            }
            rows.push(
                nk,
                w.start,
                &input,
                &outcome,
                state,
                model.is_learned(),
                b.uncertainty_wh,
            );
        }
        rows.write(tx).await?;
        // Unaccounted energy at the region's roots, for the operators' dashboard; nodes whose
        // training starves, for the operators' alert.
        if i + 1 == windows.len() {
            let young = rs
                .evaluated_from
                .is_none_or(|f| w.start - f < Duration::hours(ctx.cfg.on_priors_after_hours));
            rs.on_priors = if young {
                Vec::new()
            } else {
                balanced
                    .iter()
                    .map(|(n, _)| *n)
                    .filter(|n| rows.learned_of(grid.node_keys[*n]) == Some(false))
                    .map(|n| grid.topology.nodes[n].id.to_string())
                    .collect()
            };
            rs.unaccounted_wh = region
                .roots
                .iter()
                .filter_map(|root| rows.excess_of(grid.node_keys[*root]))
                .map(|e| e.max(0.0))
                .sum();
        }
    }
    for (node, _) in &region.balanced {
        let nk = grid.node_keys[*node];
        if let Some(state) = states.get(&nk) {
            if let Some(case) = &state.case {
                events.push(CaseEvent::Open {
                    node: *node,
                    case: case.clone(),
                });
            }
            // A gap at the leading edge may only be readings still on their way: raise it once
            // it is six hours of event time old (a replay at full speed outruns ingest by
            // hours; gaps are for information, not urgent).
            if state.insufficient >= ctx.cfg.diversion.gap_windows {
                if let (Some(start), Some(last)) = (state.gap_start, windows.last()) {
                    if start <= last.end - Duration::hours(6) {
                        events.push(CaseEvent::GapOpen { node: *node, start });
                    }
                }
            }
        }
    }
    tracing::debug!(region = %region.id, ms = started.elapsed().as_millis() as u64, "Evaluated the windows.");
    let last_end = windows.last().map(|w| w.end);
    let mut raised = Vec::new();
    let first_start = windows.first().map(|w| w.start);
    for event in &events {
        let id = match event.rise(last_end) {
            Some((node, start, until, open)) => {
                let due = first_start
                    .is_some_and(|from| super::moves::checkpoint(ctx, start, from, until) || !open);
                match super::moves::look_for(tx, ctx, region, rs, node, start, until, due, open)
                    .await?
                {
                    Lookup::Moved(id) => id,
                    Lookup::Wait => continue,
                    Lookup::Diversion => {
                        raise_diversion(tx, ctx, region, rs, event, last_end).await?
                    }
                }
            }
            None => raise_gap(tx, ctx, region, event).await?,
        };
        raised.push(id);
    }
    if let Some(until) = last_end {
        raised.extend(super::moves::raise_applied(tx, &moves, until).await?);
    }
    if let Some(first) = windows.first() {
        withdraw_unraised(tx, region, first.start, &raised).await?;
    }
    Ok(states)
}

/// Makes `rs.day_models` the models and meter error scales of `day`: kept ones, stored ones,
/// else fitted now from the days before it (`models::for_day`) and stored.
pub async fn ensure_day_models(
    tx: &Transaction<'_>,
    ctx: &Context<'_>,
    region: &RegionInfo,
    rs: &mut RegionState,
    day: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    let node_keys = &region.balanced_keys;
    let kept = rs
        .day_models
        .as_ref()
        .is_some_and(|d| d.day == day && node_keys.iter().all(|k| d.models.contains_key(k)));
    if kept {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let yardstick = super::models::Yardstick {
        history_days: ctx.cfg.history_days,
        immediate_z: ctx.cfg.diversion.immediate_z,
        cusum_h: ctx.thresholds.cusum_h,
        daily_h: ctx.thresholds.daily_h,
    };
    let models = super::models::for_day(tx, node_keys, day, &ctx.cfg.loss, &yardstick).await?;
    // Each meter's window-to-window variation over the day before this one: the error scale
    // of an interpolated or imputed window (per day, so that it does not depend on where a run
    // of windows starts). A meter without that day (a young deployment, a new meter) is
    // measured over the day before each window instead.
    let day_start = window_number(
        &ctx.spec,
        day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
    );
    let variability = region
        .meter_keys
        .iter()
        .filter_map(|&key| Some((key, rs.series.variability(key, day_start)?)))
        .collect();
    tracing::debug!(region = %region.id, %day, ms = started.elapsed().as_millis() as u64, "Loaded the day's models.");
    rs.day_models = Some(DayModels {
        day,
        models,
        variability,
    });
    Ok(())
}

/// Mean energy per class of the region's consumer meters with data in window `i`: the last
/// resort for imputing a silent meter that has no history.
fn class_means(
    grid: &Grid,
    region: &RegionInfo,
    energies: &readings::Energies,
    i: usize,
) -> HashMap<MeterClass, f64> {
    let mut sums: HashMap<MeterClass, (f64, usize)> = HashMap::new();
    for &m in &region.meters {
        let meter = &grid.topology.meters[m];
        if let Some(e) = energies.get(grid.meter_keys[m], i) {
            let entry = sums.entry(meter.class).or_default();
            entry.0 += e;
            entry.1 += 1;
        }
    }
    sums.into_iter()
        .filter(|(_, (_, n))| *n >= 3)
        .map(|(class, (sum, n))| (class, sum / n as f64))
        .collect()
}

/// One window's rows for `detector_node_windows`, written in one statement.
#[derive(Default)]
struct Rows {
    node: Vec<i32>,
    start: Vec<DateTime<Utc>>,
    input: Vec<Option<f64>>,
    fed: Vec<f64>,
    coverage: Vec<f64>,
    expected: Vec<f64>,
    sigma: Vec<f64>,
    excess: Vec<Option<f64>>,
    z: Vec<Option<f64>>,
    in_case: Vec<bool>,
    in_gap: Vec<bool>,
    learned: Vec<bool>,
    uncertainty: Vec<f64>,
    state: Vec<serde_json::Value>,
}

impl Rows {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        node: i32,
        start: DateTime<Utc>,
        input: &WindowInput,
        outcome: &gridwatch_detect::diversion::WindowOutcome,
        state: &NodeState,
        model_learned: bool,
        uncertainty_wh: f64,
    ) {
        self.uncertainty.push(uncertainty_wh);
        self.node.push(node);
        self.start.push(start);
        self.input.push(input.input_wh);
        self.fed.push(input.fed_wh);
        self.coverage.push(input.coverage);
        self.expected.push(input.expected_wh);
        self.sigma.push(input.sigma_wh);
        self.excess.push(outcome.excess_wh);
        self.z.push(outcome.z.map(|z| z.clamp(-1e12, 1e12)));
        self.in_case.push(outcome.in_case);
        self.in_gap.push(outcome.in_gap);
        self.learned.push(model_learned);
        self.state
            .push(serde_json::to_value(state).unwrap_or_default());
    }

    fn learned_of(&self, node: i32) -> Option<bool> {
        let i = self.node.iter().position(|n| *n == node)?;
        Some(self.learned[i])
    }

    fn excess_of(&self, node: i32) -> Option<f64> {
        let i = self.node.iter().position(|n| *n == node)?;
        self.excess[i]
    }

    async fn write(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        if self.node.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO detector_node_windows (node_key, window_start, input_wh, fed_wh,
                 coverage, expected_wh, sigma_wh, excess_wh, z, in_case, in_gap, state,
                 model_learned, uncertainty_wh)
             SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::float8[], $4::float8[],
                 $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::float8[],
                 $10::bool[], $11::bool[], $12::jsonb[], $13::bool[], $14::float8[])
             ON CONFLICT (node_key, window_start) DO UPDATE SET
                 input_wh = EXCLUDED.input_wh, fed_wh = EXCLUDED.fed_wh,
                 coverage = EXCLUDED.coverage, expected_wh = EXCLUDED.expected_wh,
                 sigma_wh = EXCLUDED.sigma_wh, excess_wh = EXCLUDED.excess_wh, z = EXCLUDED.z,
                 in_case = EXCLUDED.in_case, in_gap = EXCLUDED.in_gap, state = EXCLUDED.state,
                 model_learned = EXCLUDED.model_learned, uncertainty_wh = EXCLUDED.uncertainty_wh",
            &[
                &self.node,
                &self.start,
                &self.input,
                &self.fed,
                &self.coverage,
                &self.expected,
                &self.sigma,
                &self.excess,
                &self.z,
                &self.in_case,
                &self.in_gap,
                &self.state,
                &self.learned,
                &self.uncertainty,
            ],
        )
        .await?;
        Ok(())
    }
}

/// A case's average power, W.
pub fn average_power_w(case_energy_wh: f64, start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
    let hours = (end - start).num_seconds() as f64 / 3600.0;
    if hours > 0.0 {
        case_energy_wh / hours
    } else {
        0.0
    }
}

/// The open case's start and energy, for callers outside this module.
pub fn case_energy(case: &Case) -> f64 {
    case.excess_wh.max(0.0)
}
