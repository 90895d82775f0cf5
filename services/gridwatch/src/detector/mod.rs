//! The detector service: event-time evaluation of every region's windows, turning what
//! `gridwatch-detect` finds into anomalies.
//!
//! Each cycle, first in one transaction: take the work ingest queued (`reading_touches`: which
//! minutes of event time received readings), move each region's watermark (newest reading time
//! minus the allowed lateness), re-evaluate windows that received late readings (re-running their
//! nodes' tests from the window before, with the stored state), evaluate the windows the
//! watermark has passed, run the hourly analyses, and raise or update anomalies. A crash rolls
//! it back, the queued work included, so a restarted detector redoes exactly that part. Then, once
//! it is committed, the daily analyses it made due, one transaction per day
//! (`detector_progress.analysed_until`), and the next day's models. Progress, node states and
//! loss models are stored, so replaying a month at full speed gives the anomalies living through
//! it gives.

pub mod analyses;
pub mod cases;
pub mod evaluate;
pub mod grid;
pub mod models;
pub mod moves;
pub mod readings;
pub mod series;
pub mod sources;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use tokio_postgres::Client;

use gridwatch_detect::window::{Window, WindowSpec};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use evaluate::{evaluate, load_states, window_number, Context, RegionState};
use grid::Grid;
use series::MeterSeries;

/// A region's stored progress: newest reading time seen, end of the last window evaluated,
/// event time up to which the daily analyses are done, the watermark.
type Progress = (
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// Days of per-meter windows the readers of the in-memory series look back from the newest
/// window evaluated (the daily analyses and imputation two weeks, suspects a week before a
/// case's week). The ring holds them plus a run of windows and its re-evaluation, so that the
/// first window of a long run sees the same history as a window evaluated on its own.
const SERIES_DAYS: usize = 15;

/// The detector of one process.
pub struct Detector {
    config: Config,
    metrics: Arc<Metrics>,
    spec: WindowSpec,
    grid: Option<Grid>,
    regions: HashMap<String, RegionState>,
    /// Loss in tenge of each region's anomalies at the last cycle.
    loss_seen: HashMap<String, f64>,
    /// How long the last cycle took.
    last_cycle: CycleTimes,
}

/// How long a cycle's two parts took, seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CycleTimes {
    /// Evaluating the windows (and the hourly analyses) until their transaction committed:
    /// when a window's diversion findings become visible.
    pub windows_secs: f64,
    /// The daily analyses due after them (zero in a cycle that crossed no day end).
    pub analyses_secs: f64,
}

impl Detector {
    /// A detector with `config`.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Detector {
        let spec = WindowSpec {
            seconds: i64::from(config.detector.window_minutes) * 60,
        };
        Detector {
            config,
            metrics,
            spec,
            grid: None,
            regions: HashMap::new(),
            loss_seen: HashMap::new(),
            last_cycle: CycleTimes::default(),
        }
    }

    fn lateness(&self) -> Duration {
        Duration::seconds(self.config.detector.allowed_lateness_secs)
    }

    /// Reloads the registry when its version moved.
    async fn refresh_grid(&mut self, client: &mut Client) -> anyhow::Result<()> {
        let version: i64 = client
            .query_one("SELECT version FROM registry_state", &[])
            .await?
            .get(0);
        if self.grid.as_ref().is_some_and(|g| g.version == version) {
            return Ok(());
        }
        let grid = Grid::load(client, &self.config.detector.regions).await?;
        tracing::info!(
            version = grid.version,
            regions = grid.regions.len(),
            nodes = grid.topology.nodes.len(),
            meters = grid.topology.meters.len(),
            "Loaded the registry."
        );
        // Node states are keyed by database keys and reloaded from the stored windows; meter
        // series are keyed by meter key and survive.
        for state in self.regions.values_mut() {
            state.states = None;
        }
        // Every series an alert or a dashboard takes `increase()` of exists from the start, so
        // that the first anomaly of a kind counts as an increase.
        let m = &self.metrics.detector;
        for region in &grid.regions {
            for kind in crate::anomalies::query::KINDS
                .iter()
                .filter(|k| **k != "purchase_over_cap")
            {
                for severity in crate::anomalies::query::SEVERITIES {
                    m.anomalies_raised
                        .with_label_values(&[kind, region.id.as_str(), severity]);
                }
            }
            m.region_loss_kzt.with_label_values(&[&region.id]);
        }
        for kind in ["connect", "cycle"] {
            m.errors.with_label_values(&[kind]);
        }
        let regions: Vec<String> = grid.regions.iter().map(|r| r.id.clone()).collect();
        for (region, total) in region_losses(client, &regions).await? {
            self.loss_seen.entry(region).or_insert(total);
        }
        self.grid = Some(grid);
        Ok(())
    }

    /// One cycle; returns whether it evaluated anything (an idle detector sleeps).
    pub async fn cycle(&mut self, client: &mut Client) -> anyhow::Result<bool> {
        self.refresh_grid(client).await?;
        let Some(grid) = self.grid.take() else {
            return Ok(false);
        };
        let result = self.cycle_with(client, &grid).await;
        self.grid = Some(grid);
        result
    }

    async fn cycle_with(&mut self, client: &mut Client, grid: &Grid) -> anyhow::Result<bool> {
        let cycle_started = Instant::now();
        self.last_cycle = CycleTimes::default();
        let region_keys: Vec<i32> = grid.regions.iter().map(|r| r.key).collect();
        let tx = client.transaction().await?;
        let touched = tx
            .query(
                "DELETE FROM reading_touches WHERE region_key = ANY($1)
                 RETURNING region_key, minute, newest_ts",
                &[&region_keys],
            )
            .await?;
        let mut newest: HashMap<i32, DateTime<Utc>> = HashMap::new();
        let mut dirty: HashMap<i32, BTreeSet<DateTime<Utc>>> = HashMap::new();
        for row in &touched {
            let region: i32 = row.get(0);
            let minute: DateTime<Utc> = row.get(1);
            let ts: DateTime<Utc> = row.get(2);
            let n = newest.entry(region).or_insert(ts);
            *n = (*n).max(ts);
            dirty.entry(region).or_default().insert(minute);
        }
        let progress = tx
            .query(
                "SELECT region_key, newest_reading_ts, evaluated_until, analysed_until, watermark
                 FROM detector_progress WHERE region_key = ANY($1)",
                &[&region_keys],
            )
            .await?;
        let mut stored: HashMap<i32, Progress> = progress
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4))))
            .collect();
        let registered: Vec<(i32, i64)> = grid
            .regions
            .iter()
            .map(|r| (r.key, r.meter_keys.len() as i64))
            .collect();
        let reached = sources::fold_and_reach(&tx, &registered, &self.config.detector).await?;

        let thresholds = self
            .config
            .detector
            .diversion
            .thresholds(self.spec.per_day() as f64);
        let mut did_work = false;
        let raised = std::sync::Mutex::new(Vec::new());
        // Regions with daily analyses due: (region, analysed until, evaluated until).
        let mut pending = Vec::new();
        let lateness = self.lateness();
        let spec = self.spec;
        let run_windows = self.config.detector.max_windows_per_cycle
            + (self.config.detector.reevaluation_horizon_hours.max(0) * 3600 / spec.seconds)
                as usize
            + spec.per_day() as usize;
        for region in &grid.regions {
            let (stored_newest, stored_until, stored_analysed, stored_watermark) = stored
                .remove(&region.key)
                .unwrap_or((None, None, None, None));
            let state = self
                .regions
                .entry(region.id.clone())
                .or_insert_with(|| RegionState {
                    evaluated_until: None,
                    newest: None,
                    states: None,
                    series: MeterSeries::new(
                        SERIES_DAYS * spec.per_day() as usize + run_windows,
                        spec.per_day() as usize,
                    ),
                    unaccounted_wh: 0.0,
                    evaluated_from: None,
                    on_priors: Vec::new(),
                    day_models: None,
                });
            state.evaluated_until = stored_until;
            let region_newest = [stored_newest, newest.get(&region.key).copied()]
                .into_iter()
                .flatten()
                .max();
            state.newest = region_newest;
            let Some(region_newest) = region_newest else {
                continue;
            };
            // How far the region's sources have reported (one running ahead does not count),
            // or, where ingest recorded no sources, its newest reading; never backwards.
            let reach = reached.get(&region.key);
            let mut passed =
                reach.map_or(region_newest, |r| r.reached.min(region_newest)) - lateness;
            if reach.is_some_and(|r| r.waiting_for_unheard) {
                // Meters still to report their first readings: the region stays where it is.
                let first = dirty
                    .get(&region.key)
                    .and_then(|d| d.first())
                    .map(|m| spec.containing(*m).start);
                if let Some(stands) = state.evaluated_until.or(first) {
                    passed = passed.min(stands);
                }
            }
            let watermark = stored_watermark.map_or(passed, |w| w.max(passed));

            // Windows to (re-)evaluate: from the earliest late one (within the horizon) or the
            // first never evaluated, up to the last the watermark has passed.
            let horizon = Duration::hours(self.config.detector.reevaluation_horizon_hours);
            let first_new = match state.evaluated_until {
                Some(until) => until,
                None => match dirty.get(&region.key).and_then(|d| d.first()) {
                    Some(first) => spec.containing(*first).start,
                    None => continue,
                },
            };
            let mut from = first_new;
            if let (Some(until), Some(minutes)) = (state.evaluated_until, dirty.get(&region.key)) {
                // A reading changes the windows around it (interpolation): the one it falls in
                // and the one before.
                if let Some(earliest) = minutes.iter().find(|m| **m < until) {
                    let late = spec.containing(*earliest).start - spec.length();
                    from = from.min(late.max(until - horizon));
                }
            }
            // A topology change found in the last cycle: its windows are judged again with the
            // moved meters where they are fed, whatever the horizon for late readings.
            if let (Some(until), Some(since)) = (
                state.evaluated_until,
                moves::rejudge_from(&tx, region.key).await?,
            ) {
                from = from.min(spec.containing(since).start.min(until));
            }
            let mut windows: Vec<Window> = spec.between(from, watermark);
            let limit = self.config.detector.max_windows_per_cycle
                + state.evaluated_until.map_or(0, |u| {
                    ((u - from).num_seconds() / spec.seconds).max(0) as usize
                });
            windows.truncate(limit);
            if windows.is_empty() {
                // Nothing the watermark has passed yet, but a region's first readings fix where
                // its evaluation starts: remember it. Their touches are consumed by this cycle,
                // and later cycles see only newer minutes, always past the watermark when
                // readings arrive on time: the region would never start being evaluated.
                let until = state.evaluated_until.or(Some(first_new));
                let analysed = stored_analysed.or(until);
                write_progress(&tx, region.key, region_newest, watermark, until, analysed).await?;
                if let (Some(analysed), Some(until)) = (analysed, until) {
                    if !analyses::day_ends(region.zone, analysed, until).is_empty() {
                        pending.push((region, analysed, until));
                    }
                }
                continue;
            }
            let started = Instant::now();
            let first_window = windows[0];
            let states = match (&state.states, state.evaluated_until) {
                (Some(states), Some(until)) if until == first_window.start => states.clone(),
                _ => {
                    load_states(
                        &tx,
                        &region.balanced_keys,
                        first_window.start - spec.length(),
                    )
                    .await?
                }
            };
            self.ensure_series(&tx, region, &first_window).await?;
            let ctx = Context {
                cfg: &self.config.detector,
                spec,
                thresholds,
                grid,
                raised: &raised,
            };
            let Some(state) = self.regions.get_mut(&region.id) else {
                continue;
            };
            let previous = state.evaluated_until;
            let states = evaluate(&tx, &ctx, region, state, &windows, states).await?;
            let until = windows.last().map(|w| w.end);
            // The daily analyses due: the day ends after the first window judged (or after
            // where they stopped) up to the last; they run once this transaction is committed.
            let mut analysed =
                stored_analysed.map_or(first_window.start, |a| a.min(first_window.start));
            if let Some(until) = until {
                analyses::hourly(
                    &tx,
                    &ctx,
                    region,
                    state,
                    previous,
                    first_window.start,
                    until,
                    &self.metrics,
                )
                .await?;
                if analyses::day_ends(region.zone, analysed, until).is_empty() {
                    analysed = until;
                } else {
                    pending.push((region, analysed, until));
                }
            }
            state.states = Some(states);
            state.evaluated_until = until;
            write_progress(
                &tx,
                region.key,
                region_newest,
                watermark,
                until,
                Some(analysed),
            )
            .await?;
            let m = &self.metrics.detector;
            m.windows_evaluated
                .with_label_values(&[&region.id])
                .inc_by(windows.len() as u64);
            m.evaluation_duration
                .observe(started.elapsed().as_secs_f64());
            m.region_unaccounted
                .with_label_values(&[&region.id])
                .set(state.unaccounted_wh);
            let on_priors = m.nodes_on_priors.with_label_values(&[&region.id]);
            if on_priors.get() != state.on_priors.len() as i64 && !state.on_priors.is_empty() {
                tracing::warn!(
                    region = %region.id,
                    nodes = %state.on_priors.iter().take(20).cloned().collect::<Vec<_>>().join(", "),
                    count = state.on_priors.len(),
                    "Nodes still judged on the prior loss model after {} hours: their training starves.",
                    self.config.detector.on_priors_after_hours
                );
            }
            on_priors.set(state.on_priors.len() as i64);
            did_work = true;
        }
        tx.commit().await?;
        self.count_raised(&raised);
        self.last_cycle.windows_secs = cycle_started.elapsed().as_secs_f64();
        let analyses_started = Instant::now();
        for (region, analysed, until) in pending {
            // Its windows are committed: an error here leaves the day due for the next cycle.
            self.analyse_days(client, grid, region, analysed, until, thresholds)
                .await
                .with_context(|| format!("The daily analyses of region {} failed", region.id))?;
            did_work = true;
        }
        self.last_cycle.analyses_secs = analyses_started.elapsed().as_secs_f64();
        self.refresh_progress_metrics(client, grid).await?;
        let regions: Vec<String> = grid.regions.iter().map(|r| r.id.clone()).collect();
        self.refresh_anomaly_metrics(client, &regions).await?;
        Ok(did_work)
    }
}

async fn write_progress(
    tx: &tokio_postgres::Transaction<'_>,
    region_key: i32,
    newest: DateTime<Utc>,
    watermark: DateTime<Utc>,
    evaluated_until: Option<DateTime<Utc>>,
    analysed_until: Option<DateTime<Utc>>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO detector_progress (region_key, watermark, newest_reading_ts, evaluated_until,
                 analysed_until, updated_at)
             VALUES ($1, $2, $3, $4, $5, now())
             ON CONFLICT (region_key) DO UPDATE SET watermark = EXCLUDED.watermark,
                 newest_reading_ts = EXCLUDED.newest_reading_ts,
                 evaluated_until = EXCLUDED.evaluated_until,
                 analysed_until = EXCLUDED.analysed_until, updated_at = now()",
        &[
            &region_key,
            &watermark,
            &newest,
            &evaluated_until,
            &analysed_until,
        ],
    )
    .await?;
    Ok(())
}

impl Detector {
    /// Counts the anomalies a committed transaction created, and forgets them.
    fn count_raised(&self, raised: &std::sync::Mutex<Vec<[String; 3]>>) {
        let labels = raised
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        for labels in labels {
            self.metrics
                .detector
                .anomalies_raised
                .with_label_values(&[&labels[0], &labels[1], &labels[2]])
                .inc();
        }
    }

    /// Runs the daily analyses due for `region` once its windows are committed: each day end
    /// after `analysed` up to `until`, each in its own transaction that also records it done
    /// (a crash redoes the day; an error leaves it due for the next cycle); then readies the
    /// models of the day the next window opens.
    async fn analyse_days(
        &mut self,
        client: &mut Client,
        grid: &Grid,
        region: &grid::RegionInfo,
        analysed: DateTime<Utc>,
        until: DateTime<Utc>,
        thresholds: gridwatch_detect::diversion::Thresholds,
    ) -> anyhow::Result<()> {
        // After a restart with analyses still due, the series is filled as for the window
        // after the last one evaluated.
        let next = Window {
            start: until,
            end: until + self.spec.length(),
        };
        let tx = client.transaction().await?;
        self.ensure_series(&tx, region, &next).await?;
        tx.commit().await?;
        let raised = std::sync::Mutex::new(Vec::new());
        let ctx = Context {
            cfg: &self.config.detector,
            spec: self.spec,
            thresholds,
            grid,
            raised: &raised,
        };
        let ends = analyses::day_ends(region.zone, analysed, until);
        for (i, day_end) in ends.iter().enumerate() {
            let tx = client.transaction().await?;
            let Some(state) = self.regions.get(&region.id) else {
                return Ok(());
            };
            analyses::daily(&tx, &ctx, region, state, *day_end, &self.metrics).await?;
            let done = if i + 1 == ends.len() { until } else { *day_end };
            tx.execute(
                "UPDATE detector_progress SET analysed_until = $2 WHERE region_key = $1",
                &[&region.key, &done],
            )
            .await?;
            tx.commit().await?;
            self.count_raised(&raised);
        }
        // The next day's models are fixed now that its day before is judged: fitting them here
        // (2,000 nodes over two weeks of windows take seconds) spares the window that opens
        // the day. Late readings that re-judge the day before forget them, as ever.
        let tx = client.transaction().await?;
        if let Some(state) = self.regions.get_mut(&region.id) {
            evaluate::ensure_day_models(&tx, &ctx, region, state, until.date_naive()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How long the last cycle took.
    pub fn last_cycle(&self) -> CycleTimes {
        self.last_cycle
    }

    /// After a restart the in-memory series is empty: fill the [`SERIES_DAYS`] before `first`
    /// from the readings, so that imputation, suspects and the daily analyses see what they
    /// would have seen without the restart.
    async fn ensure_series(
        &mut self,
        tx: &tokio_postgres::Transaction<'_>,
        region: &grid::RegionInfo,
        first: &Window,
    ) -> anyhow::Result<()> {
        let Some(state) = self.regions.get_mut(&region.id) else {
            return Ok(());
        };
        let k = window_number(&self.spec, first.start);
        if state.series.newest().is_some_and(|n| n >= k - 1) {
            return Ok(());
        }
        let from = first.start - Duration::days(SERIES_DAYS as i64);
        let windows = self.spec.between(from, first.start);
        if windows.is_empty() {
            return Ok(());
        }
        let meter_keys = &region.meter_keys;
        let energies = readings::energies(
            tx,
            meter_keys,
            &windows,
            Duration::hours(self.config.detector.max_gap_hours),
            Duration::seconds(self.config.detector.boundary_tolerance_secs),
        )
        .await
        .context("Failed to load the recent readings")?;
        for (i, w) in windows.iter().enumerate() {
            let k = window_number(&self.spec, w.start);
            for &key in meter_keys {
                state
                    .series
                    .set(key, k, energies.get(key, i), energies.backwards(key, i));
            }
        }
        Ok(())
    }

    /// Each region's progress as stored: newest reading, watermark, evaluated and analysed
    /// until (CONTRACT.md section 5), as Unix seconds.
    async fn refresh_progress_metrics(&self, client: &Client, grid: &Grid) -> anyhow::Result<()> {
        let keys: Vec<i32> = grid.regions.iter().map(|r| r.key).collect();
        let rows = client
            .query(
                "SELECT region_key, newest_reading_ts, watermark, evaluated_until, analysed_until
                 FROM detector_progress WHERE region_key = ANY($1)",
                &[&keys],
            )
            .await?;
        let m = &self.metrics.detector;
        for row in rows {
            let key: i32 = row.get(0);
            let Some(region) = grid.regions.iter().find(|r| r.key == key) else {
                continue;
            };
            let gauges = [
                (&m.newest_reading, 1),
                (&m.watermark, 2),
                (&m.evaluated_until, 3),
                (&m.analysed_until, 4),
            ];
            for (gauge, column) in gauges {
                if let Some(t) = row.get::<_, Option<DateTime<Utc>>>(column) {
                    gauge.with_label_values(&[&region.id]).set(t.timestamp());
                }
            }
        }
        Ok(())
    }

    /// Open anomalies by kind, region and severity, the diversion gauges, and the loss in
    /// tenge the anomalies of this detector's regions gained since the last cycle. All of them
    /// for this detector's regions only: Prometheus sums the gauges over every detector shard,
    /// which would otherwise count each case once per shard. Anomalies without a region (a
    /// refused purchase of a licence without a meter) are an unsharded detector's.
    async fn refresh_anomaly_metrics(
        &mut self,
        client: &Client,
        regions: &[String],
    ) -> anyhow::Result<()> {
        for (region, total) in region_losses(client, regions).await? {
            // The first sight of a region is the baseline (taken when the registry is loaded,
            // before any evaluation): the counter counts what is added while this process runs;
            // a restart is a counter reset to Prometheus.
            let seen = self.loss_seen.entry(region.clone()).or_insert(total);
            if total > *seen {
                self.metrics
                    .detector
                    .region_loss_kzt
                    .with_label_values(&[&region])
                    .inc_by(total - *seen);
            }
            *seen = total;
        }
        let m = &self.metrics.detector;
        let unsharded = self.config.detector.regions.is_empty();
        let rows = client
            .query(
                "SELECT kind, coalesce(region, ''), severity, count(*) FROM anomalies
                 WHERE status IN ('open', 'investigating') AND ended_at IS NULL
                   AND (region = ANY($1) OR (region IS NULL AND $2))
                 GROUP BY 1, 2, 3",
                &[&regions, &unsharded],
            )
            .await?;
        m.anomalies_open.reset();
        for row in &rows {
            let n: i64 = row.get(3);
            m.anomalies_open
                .with_label_values(&[row.get::<_, &str>(0), row.get(1), row.get(2)])
                .set(n);
        }
        let diversions = client
            .query(
                "SELECT coalesce(a.region, ''), a.node, a.severity,
                        (SELECT w.excess_wh / nullif(w.input_wh, 0) FROM detector_node_windows w
                           JOIN nodes n ON n.node_key = w.node_key
                          WHERE n.id = a.node ORDER BY w.window_start DESC LIMIT 1)
                 FROM anomalies a
                 WHERE a.kind = 'diversion' AND a.ended_at IS NULL AND a.node IS NOT NULL
                   AND a.status IN ('open', 'investigating')
                   AND (a.region = ANY($1) OR (a.region IS NULL AND $2))",
                &[&regions, &unsharded],
            )
            .await?;
        m.diversion_open.reset();
        m.node_residual_ratio.reset();
        for row in &diversions {
            let region: &str = row.get(0);
            let node: &str = row.get(1);
            m.diversion_open
                .with_label_values(&[region, node, row.get(2)])
                .set(1);
            if let Some(ratio) = row.get::<_, Option<f64>>(3) {
                m.node_residual_ratio
                    .with_label_values(&[region, node])
                    .set(ratio);
            }
        }
        Ok(())
    }
}

/// Runs the detector until `shutdown`.
pub async fn run(
    config: &Config,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let poll = StdDuration::from_millis(config.detector.poll_ms.max(10));
    let mut detector = Detector::new(config.clone(), metrics.clone());
    let mut client: Option<Client> = None;
    let mut backoff = StdDuration::from_millis(200);
    tracing::info!(
        regions = ?config.detector.regions,
        window_minutes = config.detector.window_minutes,
        allowed_lateness_secs = config.detector.allowed_lateness_secs,
        "Detector started."
    );
    while !shutdown.is_triggered() {
        if client.is_none() {
            match crate::db::connect(&config.database_url).await {
                Ok(c) => client = Some(c),
                Err(error) => {
                    metrics
                        .detector
                        .errors
                        .with_label_values(&["connect"])
                        .inc();
                    tracing::warn!(error = %crate::db::describe(&error), "Failed to connect to the database; retrying.");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait() => break,
                    }
                    backoff = (backoff * 2).min(StdDuration::from_secs(10));
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        match detector.cycle(c).await {
            Ok(true) => {
                backoff = StdDuration::from_millis(200);
                continue;
            }
            Ok(false) => {
                backoff = StdDuration::from_millis(200);
            }
            Err(error) => {
                metrics.detector.errors.with_label_values(&["cycle"]).inc();
                let connection_lost = error
                    .downcast_ref::<tokio_postgres::Error>()
                    .is_some_and(crate::db::is_connection_error)
                    || c.is_closed();
                tracing::warn!(
                    error = format!("{error:#}"),
                    "A detector cycle failed; it will be retried."
                );
                if connection_lost {
                    client = None;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait() => break,
                }
                backoff = (backoff * 2).min(StdDuration::from_secs(10));
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.wait() => break,
        }
    }
    tracing::info!("Detector stopped.");
    Ok(())
}

/// The loss in tenge of the anomalies standing in each of `regions` (0 where there are none).
async fn region_losses(
    client: &Client,
    regions: &[String],
) -> Result<Vec<(String, f64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT r, coalesce(sum(a.loss_kzt), 0)::float8
             FROM unnest($1::text[]) r
             LEFT JOIN anomalies a ON a.region = r AND NOT a.evidence ? 'withdrawn'
             GROUP BY r",
            &[&regions],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// `f(index, item)` for every item of `items`, in order, the work split over the machine's
/// cores (scoped threads: `f` only borrows). A panic in one is raised again here.
fn on_every_core<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let f = &f;
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(j, item)| f(c * chunk + j, item))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}
