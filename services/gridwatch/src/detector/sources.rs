//! How far a region's sources have reported: the watermark's ground (CONTRACT.md section 5).
//!
//! Ingest records, with every batch it commits, the newest reading time of each meter in it
//! (`source_touches`); the detector folds them into each meter's progress (`detector_sources`).
//! A region's event time has come as far as its sources still reporting have all reached: the
//! least advanced of them, leaving out the most lagging `lagging_source_share` (a meter whose
//! last reading was lost is not waited for among hundreds). So a data concentrator uploading
//! its day before the others moves nothing until they have reported too, and their meters are
//! not judged missing meanwhile. A source stops holding the region back once it is
//! `source_idle_hours` of event time behind the most advanced one, or silent for
//! `source_silence_secs` of wall time (a stream that ended): its meters then become data gaps,
//! never theft. The sources are meters: a concentrator's meters report, and fall silent,
//! together.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use crate::config::DetectorConfig;

/// Folds the sources ingest recorded for `region_keys` into their progress, and returns the
/// event time each region's sources have reached, for the regions with known sources.
pub async fn fold_and_reach(
    tx: &Transaction<'_>,
    region_keys: &[i32],
    cfg: &DetectorConfig,
) -> Result<HashMap<i32, DateTime<Utc>>, tokio_postgres::Error> {
    tx.execute(
        "WITH t AS (
             DELETE FROM source_touches WHERE region_key = ANY($1)
             RETURNING region_key, meter_key, newest_ts)
         INSERT INTO detector_sources AS s (meter_key, region_key, newest_ts, heard_at)
         SELECT meter_key, max(region_key), max(newest_ts), now() FROM t GROUP BY meter_key
         ON CONFLICT (meter_key) DO UPDATE SET region_key = EXCLUDED.region_key,
             newest_ts = greatest(s.newest_ts, EXCLUDED.newest_ts),
             heard_at = EXCLUDED.heard_at",
        &[&region_keys],
    )
    .await?;
    let rows = tx
        .query(
            "WITH lead AS (
                 SELECT region_key, max(newest_ts) AS ahead FROM detector_sources
                 WHERE region_key = ANY($1) GROUP BY region_key)
             SELECT l.region_key, coalesce(
                 (SELECT percentile_disc($2::float8) WITHIN GROUP (ORDER BY s.newest_ts)
                  FROM detector_sources s
                  WHERE s.region_key = l.region_key
                    AND s.newest_ts >= l.ahead - $3::float8 * interval '1 hour'
                    AND s.heard_at >= now() - $4::float8 * interval '1 second'),
                 l.ahead)
             FROM lead l",
            &[
                &region_keys,
                &cfg.lagging_source_share,
                &cfg.source_idle_hours,
                &(cfg.source_silence_secs as f64),
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
