//! How far a region's sources have reported: the watermark's ground (CONTRACT.md section 5).
//!
//! Ingest records, with every batch it commits, the newest reading time of each meter in it
//! (`source_touches`); the detector folds them into each meter's progress (`detector_sources`).
//! A region's event time has come as far as its sources still reporting have all reached: the
//! least advanced of them, leaving out the most lagging `lagging_source_share` (a meter whose
//! last reading was lost is not waited for among hundreds). So a data concentrator uploading
//! its day before the others moves nothing until they have reported too, and their meters are
//! not judged missing meanwhile. A source stops holding the region back once it is
//! `source_idle_hours` of event time behind the most advanced one: its meters then become data
//! gaps, never theft. The sources are meters: a concentrator's meters report, and fall silent,
//! together.
//!
//! Registered meters not heard from yet hold the region where its evaluation stands (its first
//! day, while the concentrators a head-end uploads after midnight have not reported) for as long
//! as an idle source would. A region none of whose sources has been heard for
//! `source_silence_secs` of wall time has ended its stream: its watermark moves to its most
//! advanced source. Wall time is never used for one source against the others: a replay runs a
//! day in seconds.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use crate::config::DetectorConfig;

/// How far a region's sources have reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// The event time the sources still reporting have all reached.
    pub reached: DateTime<Utc>,
    /// Registered meters not heard from yet hold the region where it stands.
    pub waiting_for_unheard: bool,
}

/// Folds the sources ingest recorded for the regions (key, meters in the registry) into their
/// progress, and returns how far each region's sources have reached, for the regions with known
/// sources.
pub async fn fold_and_reach(
    tx: &Transaction<'_>,
    regions: &[(i32, i64)],
    cfg: &DetectorConfig,
) -> Result<HashMap<i32, Reach>, tokio_postgres::Error> {
    let region_keys: Vec<i32> = regions.iter().map(|r| r.0).collect();
    let registered: Vec<i64> = regions.iter().map(|r| r.1).collect();
    tx.execute(
        "WITH t AS (
             DELETE FROM source_touches WHERE region_key = ANY($1)
             RETURNING region_key, meter_key, newest_ts)
         INSERT INTO detector_sources AS s (meter_key, region_key, newest_ts, first_ts, heard_at)
         SELECT meter_key, max(region_key), max(newest_ts), min(newest_ts), now() FROM t
         GROUP BY meter_key
         ON CONFLICT (meter_key) DO UPDATE SET region_key = EXCLUDED.region_key,
             newest_ts = greatest(s.newest_ts, EXCLUDED.newest_ts),
             first_ts = least(coalesce(s.first_ts, s.newest_ts), EXCLUDED.first_ts),
             heard_at = EXCLUDED.heard_at",
        &[&region_keys],
    )
    .await?;
    let rows = tx
        .query(
            "WITH r AS (
                 SELECT * FROM unnest($1::int[], $5::bigint[]) AS r(region_key, registered)),
             lead AS (
                 SELECT s.region_key, max(s.newest_ts) AS ahead, min(coalesce(s.first_ts, s.newest_ts)) AS began,
                        max(s.heard_at) < now() - $4::float8 * interval '1 second' AS ended,
                        greatest(r.registered - count(*), 0) AS unheard
                 FROM detector_sources s JOIN r USING (region_key)
                 GROUP BY s.region_key, r.registered),
             held AS (
                 SELECT l.*, (SELECT count(*) FROM detector_sources s
                              WHERE s.region_key = l.region_key
                                AND s.newest_ts >= l.ahead - $3::float8 * interval '1 hour')
                             AS holding
                 FROM lead l)
             SELECT h.region_key,
                 CASE WHEN h.ended THEN h.ahead ELSE coalesce(
                     (SELECT percentile_disc($2::float8) WITHIN GROUP (ORDER BY s.newest_ts)
                      FROM detector_sources s
                      WHERE s.region_key = h.region_key
                        AND s.newest_ts >= h.ahead - $3::float8 * interval '1 hour'),
                     h.ahead) END,
                 NOT h.ended AND h.unheard > 0
                     AND h.ahead < h.began + $3::float8 * interval '1 hour'
                     AND h.unheard > $2::float8 * (h.holding + h.unheard)
             FROM held h",
            &[
                &region_keys,
                &cfg.lagging_source_share,
                &cfg.source_idle_hours,
                &(cfg.source_silence_secs as f64),
                &registered,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Reach {
                    reached: r.get(1),
                    waiting_for_unheard: r.get(2),
                },
            )
        })
        .collect())
}
