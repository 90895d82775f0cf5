//! Loss models per node and day: fitted once from the node's stored windows of the days before,
//! then kept, so that re-evaluating a window uses the model it was first evaluated with. When
//! late readings re-judge windows of a day, the models of the days after it, which learned from
//! those windows, are forgotten and fitted again ([`forget_after`]): a day's model is the one
//! its history gives once every reading is in, however the readings came.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use tokio_postgres::GenericClient;

use gridwatch_detect::loss::{LossModel, LossParams, ResidualSample};

/// Least coverage for a window to teach the model.
const TRAINING_COVERAGE: f64 = 0.98;
/// Largest interpolation uncertainty, as a share of the load, for a window to teach the model:
/// a big meter interpolated across a missed reading (a farm's outage, a factory's shift
/// change) would otherwise teach a calendar offset that is not there.
const TRAINING_UNCERTAINTY: f64 = 0.005;

/// The models of `node_keys` for `day`: stored ones, else fitted now from the `history_days`
/// before it and stored. Windows of a case never teach the model when a learned model raised
/// it, nor when it was gross (`immediate_z`, e.g. a theft already running at start-up, flagged
/// under the priors).
pub async fn for_day(
    client: &impl GenericClient,
    node_keys: &[i32],
    day: NaiveDate,
    history_days: i64,
    params: &LossParams,
    immediate_z: f64,
) -> Result<HashMap<i32, LossModel>, tokio_postgres::Error> {
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
    let day_start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let from = day_start - Duration::days(history_days.max(1));
    let rows = client
        .query(
            "SELECT node_key, window_start, input_wh - fed_wh, fed_wh
             FROM detector_node_windows
             WHERE node_key = ANY($1) AND window_start >= $2 AND window_start < $3
               AND NOT (in_case AND (model_learned OR coalesce(z, 0) >= $6)) AND NOT in_gap
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
        LossModel::fit(samples.get(key).map(Vec::as_slice).unwrap_or(&[]), params)
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
