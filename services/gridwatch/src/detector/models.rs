//! Loss models per node and day: fitted once from the node's stored windows of the days before,
//! then kept, so that re-evaluating a window uses the model it was first evaluated with. When
//! late readings re-judge windows of a day, the models of the days after it, which learned from
//! those windows, are forgotten and fitted again ([`forget_after`]): a day's model is the one
//! its history gives once every reading is in, however the readings came.
//!
//! A model refitted every day on the week before would learn a persistent theft as loss: its
//! windows are excluded from the fit, but after a week of theft no clean window is left and the
//! fit fell back to the wide priors, which ended the case exactly seven days after its onset.
//! So the yardstick is frozen ([`Yardstick`]): a node in a case, or whose cumulative statistic
//! (window or daily) is rising towards one, is judged with the model that was in force on the day its excess
//! began, for as long as the case lasts; and a node whose clean history is too short for a full
//! model (just after a long case, or a week without its input meter) keeps the last full model
//! it had instead of returning to the priors.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use tokio_postgres::GenericClient;

use gridwatch_detect::diversion::NodeState;
use gridwatch_detect::loss::{LossModel, LossParams, ResidualSample};

/// Least coverage for a window to teach the model.
const TRAINING_COVERAGE: f64 = 0.98;
/// Largest interpolation uncertainty, as a share of the load, for a window to teach the model:
/// a big meter interpolated across a missed reading (a farm's outage, a factory's shift
/// change) would otherwise teach a calendar offset that is not there.
const TRAINING_UNCERTAINTY: f64 = 0.005;

/// A cumulative statistic at or above this share of the CUSUM threshold at the end of a day is
/// an excess on its way to a case: its windows must not teach the next day's model. The
/// statistic of a node without theft stands there about 0.2 % of the time (its stationary tail,
/// `exp(-2k·h/2)` with k = 0.5 and h ≈ 12.6); such a node is merely judged with the model of a
/// day or two before, which costs nothing.
const RISING_CUSUM_SHARE: f64 = 0.5;

/// Windows of a day, at least, in which a node still on the priors balanced (|z| < 1) for the
/// day's gross excess under the priors to count as a calendar load rather than a theft already
/// running at start-up: sixteen, four hours. Street lighting on a small transformer can draw
/// five times its homes' night load (z ≈ 21 under the priors) and is dark for hours every
/// day; a rig or a tap running since before the data never rests. Such windows teach the model
/// (its half-hour offsets learn the lamps). A theft that stops for four hours every day from
/// the very first reading would be learned too: nothing in the data tells it from a lamp.
const CALENDAR_QUIET_WINDOWS: i64 = 16;

/// What decides which windows may teach a day's models.
#[derive(Debug, Clone, Copy)]
pub struct Yardstick {
    /// Days of windows a model is fitted on.
    pub history_days: i64,
    /// Windows of a case at or beyond this z never teach the model, even one raised under the
    /// priors (a theft already running at start-up).
    pub immediate_z: f64,
    /// The CUSUM threshold: a statistic rising past [`RISING_CUSUM_SHARE`] of it freezes the
    /// model.
    pub cusum_h: f64,
    /// The daily test's threshold: its statistic rising past the same share of it freezes the
    /// model too.
    pub daily_h: f64,
}

/// The models of `node_keys` for `day`: stored ones, else chosen now and stored: the frozen
/// yardstick of a node in a case or with a rising excess ([`frozen_models`]), otherwise a fit
/// on the `history_days` before it, or the node's last full model where that history is too
/// short for one. Windows of a case never teach the model when a learned model raised it, nor
/// when it was gross (`immediate_z`, e.g. a theft already running at start-up, flagged under
/// the priors) on a day without hours of balance ([`CALENDAR_QUIET_WINDOWS`]).
pub async fn for_day(
    client: &impl GenericClient,
    node_keys: &[i32],
    day: NaiveDate,
    params: &LossParams,
    yardstick: &Yardstick,
) -> Result<HashMap<i32, LossModel>, tokio_postgres::Error> {
    let history_days = yardstick.history_days;
    let immediate_z = yardstick.immediate_z;
    let mut models: HashMap<i32, LossModel> = HashMap::new();
    for row in client
        .query(
            "SELECT node_key, model FROM detector_node_models WHERE node_key = ANY($1) AND day = $2",
            &[&node_keys, &day],
        )
        .await?
    {
        let key: i32 = row.get(0);
        let json: serde_json::Value = row.get(1);
        if let Ok(model) = serde_json::from_value(json) {
            models.insert(key, model);
        }
    }
    let missing: Vec<i32> = node_keys
        .iter()
        .copied()
        .filter(|k| !models.contains_key(k))
        .collect();
    if missing.is_empty() {
        return Ok(models);
    }
    let frozen = frozen_models(client, &missing, day, yardstick).await?;
    let last_full = last_full_models(client, &missing, day, params).await?;
    let day_start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let from = day_start - Duration::days(history_days.max(1));
    let rows = client
        .query(
            "WITH quiet AS (
                 SELECT node_key, window_start::date AS day FROM detector_node_windows
                 WHERE node_key = ANY($1) AND window_start >= $2 AND window_start < $3
                   AND NOT model_learned AND NOT in_case AND abs(coalesce(z, 0)) < 1
                 GROUP BY 1, 2 HAVING count(*) >= $7)
             SELECT node_key, window_start, input_wh - fed_wh, fed_wh
             FROM detector_node_windows w
             WHERE node_key = ANY($1) AND window_start >= $2 AND window_start < $3
               AND NOT (in_case AND (model_learned OR (coalesce(z, 0) >= $6
                   AND NOT EXISTS (SELECT FROM quiet q
                                   WHERE q.node_key = w.node_key
                                     AND q.day = w.window_start::date))))
               AND NOT in_gap
               AND input_wh IS NOT NULL
               AND coverage >= $4 AND uncertainty_wh <= $5 * greatest(abs(fed_wh), 1)
             ORDER BY node_key, window_start",
            &[
                &missing,
                &from,
                &day_start,
                &TRAINING_COVERAGE,
                &TRAINING_UNCERTAINTY,
                &immediate_z,
                &CALENDAR_QUIET_WINDOWS,
            ],
        )
        .await?;
    let mut samples: HashMap<i32, Vec<ResidualSample>> = HashMap::new();
    for row in rows {
        let start: chrono::DateTime<chrono::Utc> = row.get(1);
        samples.entry(row.get(0)).or_default().push(ResidualSample {
            residual_wh: row.get(2),
            load_wh: row.get(3),
            slot: gridwatch_detect::loss::slot_of(start),
        });
    }
    // Each node's fit is independent: they run on every core.
    let fitted = super::on_every_core(&missing, |_, key| {
        if let Some(model) = frozen.get(key) {
            return model.clone();
        }
        let fit = LossModel::fit(samples.get(key).map(Vec::as_slice).unwrap_or(&[]), params);
        match last_full.get(key) {
            Some(full) if !fit.supports_cusum(params) => full.clone(),
            _ => fit,
        }
    });
    let mut keys = Vec::new();
    let mut jsons = Vec::new();
    for (key, model) in missing.into_iter().zip(fitted) {
        keys.push(key);
        jsons.push(serde_json::to_value(&model).unwrap_or_default());
        models.insert(key, model);
    }
    client
        .execute(
            "INSERT INTO detector_node_models (node_key, day, model)
             SELECT k, $2, m FROM unnest($1::int[], $3::jsonb[]) AS u(k, m)
             ON CONFLICT (node_key, day) DO NOTHING",
            &[&keys, &day, &jsons],
        )
        .await?;
    Ok(models)
}

/// The models of the nodes among `node_keys` that enter `day` in a case, or with their
/// cumulative statistic rising towards one: the model in force on the day their excess began
/// (stored, since every day's model is), when that was a model learned from the node's own
/// history. A case raised under the priors (a gross theft already running at start-up) has no
/// such yardstick: its node is fitted on the windows the case did not flag, as before.
async fn frozen_models(
    client: &impl GenericClient,
    node_keys: &[i32],
    day: NaiveDate,
    yardstick: &Yardstick,
) -> Result<HashMap<i32, LossModel>, tokio_postgres::Error> {
    let (cusum_h, daily_h) = (yardstick.cusum_h, yardstick.daily_h);
    let day_start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let rows = client
        .query(
            "SELECT DISTINCT ON (node_key) node_key, state FROM detector_node_windows
             WHERE node_key = ANY($1) AND window_start >= $2 AND window_start < $3
             ORDER BY node_key, window_start DESC",
            &[&node_keys, &(day_start - Duration::days(1)), &day_start],
        )
        .await?;
    let mut keys = Vec::new();
    let mut onset_days = Vec::new();
    for row in rows {
        let json: serde_json::Value = row.get(1);
        let Ok(state) = serde_json::from_value::<NodeState>(json) else {
            continue;
        };
        let onset = match (&state.case, state.cusum_start) {
            (Some(case), _) => Some(case.start),
            (None, Some(start)) if state.cusum >= RISING_CUSUM_SHARE * cusum_h => Some(start),
            _ => None,
        };
        let daily_onset = state
            .daily
            .start
            .filter(|_| state.case.is_none() && state.daily.stat >= RISING_CUSUM_SHARE * daily_h);
        let onset = match (onset, daily_onset) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(onset) = onset {
            keys.push(row.get::<_, i32>(0));
            onset_days.push(onset.date_naive());
        }
    }
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            "SELECT f.k, m.model FROM unnest($1::int[], $2::date[]) AS f(k, d)
             CROSS JOIN LATERAL (
                 SELECT model FROM detector_node_models
                 WHERE node_key = f.k AND day <= f.d ORDER BY day DESC LIMIT 1) m",
            &[&keys, &onset_days],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let model: LossModel = serde_json::from_value(row.get(1)).ok()?;
            model.is_learned().then(|| (row.get::<_, i32>(0), model))
        })
        .collect())
}

/// The newest model before `day` of each of `node_keys` that had the history the cumulative
/// test needs.
async fn last_full_models(
    client: &impl GenericClient,
    node_keys: &[i32],
    day: NaiveDate,
    params: &LossParams,
) -> Result<HashMap<i32, LossModel>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT DISTINCT ON (node_key) node_key, model FROM detector_node_models
             WHERE node_key = ANY($1) AND day < $2
               AND coalesce((model ->> 'samples')::bigint, 0) >= $3
             ORDER BY node_key, day DESC",
            &[&node_keys, &day, &(params.cusum_min_history as i64)],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let model: LossModel = serde_json::from_value(row.get(1)).ok()?;
            Some((row.get::<_, i32>(0), model))
        })
        .collect())
}

/// Forgets the models of `node_keys` for the days after the one holding `rejudged`, the first
/// window late readings re-judge: they learned from windows about to change.
pub async fn forget_after(
    client: &impl GenericClient,
    node_keys: &[i32],
    rejudged: chrono::DateTime<chrono::Utc>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM detector_node_models WHERE node_key = ANY($1) AND day > $2",
            &[&node_keys, &rejudged.date_naive()],
        )
        .await?;
    Ok(())
}
