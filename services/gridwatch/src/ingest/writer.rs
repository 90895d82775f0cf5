//! Commits one batch: readings, rejections, the detector's work queue and the running totals,
//! all in one transaction.
//!
//! Readings first go by binary COPY straight into `readings`, under a savepoint: a batch of new
//! keys (the common case) is stored at the raw COPY rate. When any key is already stored (a
//! redelivery after a restart, or the same reading twice in the batch), the COPY fails on the
//! primary key, the savepoint is rolled back and the batch takes the careful path: a binary COPY
//! into a session-local staging table, then one `INSERT ... ON CONFLICT DO NOTHING` into
//! `readings`. When fewer rows went in than were staged, the difference is either a redelivery
//! (same value: absorbed) or a conflicting duplicate (another value for the same meter and time:
//! rejected), told apart by one join.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use gridwatch_core::{ReasonCode, Rejection};

use super::batch::{Batch, Origin, PendingReading};
use crate::config::{IngestConfig, Secret};
use crate::db::partitions::PartitionCache;
use crate::metrics::Metrics;
use crate::registry::SharedDirectory;

/// How many rejections are kept row by row, and how much of their payloads.
#[derive(Debug, Clone, Copy)]
pub struct RejectionLimits {
    /// Bytes of raw payload kept per rejection.
    pub raw_keep_bytes: usize,
    /// Rows kept per source, reason and hour.
    pub per_source_hour: i64,
    /// Rows kept per hour over all sources.
    pub per_hour: i64,
}

impl RejectionLimits {
    /// The limits of `config`.
    pub fn from_config(config: &IngestConfig) -> Self {
        RejectionLimits {
            raw_keep_bytes: config.raw_payload_keep_bytes,
            per_source_hour: config.rejections_kept_per_source_hour,
            per_hour: config.rejections_kept_per_hour,
        }
    }
}

/// What a committed batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// New readings stored.
    pub stored: u64,
    /// Redelivered readings already stored with the same value.
    pub absorbed: u64,
    /// Rejections (all of them, kept row by row or only counted).
    pub rejected: u64,
}

/// What every writer of a process shares.
pub struct WriterContext {
    /// Database URL, to reconnect.
    pub database_url: Secret,
    /// Meter ids to keys.
    pub directory: Arc<SharedDirectory>,
    /// Partitions known to exist.
    pub partitions: Arc<PartitionCache>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Rejection limits.
    pub limits: RejectionLimits,
    /// Batches left to stage without first trying the direct copy: after a batch held a
    /// reading already stored, the next [`STAGE_AFTER_A_REDELIVERY`] go straight to the staging
    /// path (a network that redelivers puts a stored reading in nearly every batch, and a
    /// direct copy that fails is work thrown away).
    pub stage_next: AtomicU32,
}

/// Batches staged without trying the direct copy after one that held a stored reading.
pub const STAGE_AFTER_A_REDELIVERY: u32 = 16;

/// One writer's connection and its prepared statements.
pub struct Connection {
    client: Client,
    insert: Statement,
    conflicts: Statement,
    counts: Statement,
    rejections: Statement,
    touches: Statement,
    sources: Statement,
    counters: Statement,
}

const STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS staging_readings (
    seq integer NOT NULL, meter_key integer NOT NULL, ts timestamptz NOT NULL,
    energy_wh bigint NOT NULL, power_w real) ON COMMIT DELETE ROWS";

const COPY: &str =
    "COPY staging_readings (seq, meter_key, ts, energy_wh, power_w) FROM STDIN (FORMAT binary)";

/// The staging rows were copied in (meter, time, arrival) order, which a scan of the fresh
/// temporary table returns: concurrent writers lock index entries in the same order (no
/// deadlock), and the first arrival of a key is the one stored.
const INSERT: &str = "INSERT INTO readings (ts, energy_wh, meter_key, power_w)
    SELECT ts, energy_wh, meter_key, power_w FROM staging_readings
    ON CONFLICT DO NOTHING RETURNING meter_key, ts";

/// The stored copies of the keys a batch could not insert (already stored: by an earlier
/// batch or a concurrent writer), one primary-key probe each (LATERAL: a plain join let the
/// planner hash the whole of `readings`). Only those keys are probed, usually a handful;
/// `$3`/`$4` bound the batch's times, so each probe touches only the partitions it spans.
const CONFLICTS: &str = "SELECT k.meter_key, k.ts, r.energy_wh, r.power_w
    FROM unnest($1::int[], $2::timestamptz[]) AS k(meter_key, ts)
    CROSS JOIN LATERAL (
        SELECT energy_wh, power_w FROM readings
        WHERE meter_key = k.meter_key AND ts = k.ts AND ts >= $3 AND ts <= $4) r";

/// Adds a batch's rejections to the per-hour counts; `kept` is how many of them the limits
/// ($5 over all sources, $6 per source and reason) let through row by row.
const COUNTS: &str = "INSERT INTO rejection_counts AS c (source, reason, hour, rejected, kept)
    SELECT source, reason, hour, n, LEAST(n, CASE WHEN reason = '*' THEN $5::bigint ELSE $6::bigint END)
    FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[]) AS u(source, reason, hour, n)
    ON CONFLICT (source, reason, hour) DO UPDATE
      SET rejected = c.rejected + EXCLUDED.rejected,
          kept = LEAST(c.rejected + EXCLUDED.rejected,
                       CASE WHEN EXCLUDED.reason = '*' THEN $5::bigint ELSE $6::bigint END)
    RETURNING source, reason, hour, rejected";

const REJECTIONS: &str = "INSERT INTO rejections
    (received_at, topic, source, meter_id, reading_ts, reason, detail, raw, raw_size)
    SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[],
                         $5::timestamptz[], $6::text[], $7::text[], $8::bytea[], $9::int[])";

const TOUCHES: &str = "INSERT INTO reading_touches (region_key, minute, readings, newest_ts)
    SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::int[], $4::timestamptz[])";

/// How far each meter of the batch has reported: the detector's watermark is taken from its
/// sources, so that one running ahead does not move it (CONTRACT.md section 5).
const SOURCES: &str = "INSERT INTO source_touches (region_key, meter_key, newest_ts)
    SELECT * FROM unnest($1::int[], $2::int[], $3::timestamptz[])";

const COUNTERS: &str = "INSERT INTO ingest_counters
        (writer, readings_stored, rejections, newest_reading_ts, updated_at)
    VALUES ($1, $2, $3, $4, now())
    ON CONFLICT (writer) DO UPDATE SET
        readings_stored = ingest_counters.readings_stored + EXCLUDED.readings_stored,
        rejections = ingest_counters.rejections + EXCLUDED.rejections,
        newest_reading_ts = GREATEST(ingest_counters.newest_reading_ts, EXCLUDED.newest_reading_ts),
        updated_at = now()";

impl Connection {
    /// Connects and prepares the statements.
    pub async fn open(url: &Secret) -> Result<Connection, tokio_postgres::Error> {
        let client = crate::db::connect(url).await?;
        client.batch_execute(STAGING).await?;
        Ok(Connection {
            insert: client.prepare(INSERT).await?,
            conflicts: client.prepare(CONFLICTS).await?,
            counts: client.prepare(COUNTS).await?,
            rejections: client.prepare(REJECTIONS).await?,
            touches: client.prepare(TOUCHES).await?,
            sources: client.prepare(SOURCES).await?,
            counters: client.prepare(COUNTERS).await?,
            client,
        })
    }
}

/// A reading matched to the registry, ready to stage.
struct Staged {
    /// Index in `batch.readings`, also its `seq` in the staging table.
    index: usize,
    meter_key: i32,
    region_key: i32,
}

/// A rejection with where it came from.
struct Decided<'a> {
    rejection: Rejection,
    origin: &'a Origin,
}

/// Commits `batch` on `conn` as writer `writer`.
pub async fn commit(
    conn: &mut Connection,
    ctx: &WriterContext,
    writer: &str,
    batch: &Batch,
) -> Result<Outcome, tokio_postgres::Error> {
    // Match meters; a meter registered a moment ago makes us reload before rejecting it.
    let mut directory = ctx.directory.snapshot();
    if batch
        .readings
        .iter()
        .any(|r| directory.get(r.meter_id.as_str()).is_none())
    {
        directory = ctx
            .directory
            .refresh_if_stale(&mut conn.client, &ctx.metrics.ingest)
            .await?;
    }
    let mut staged = Vec::with_capacity(batch.readings.len());
    let mut decided: Vec<Decided<'_>> = batch
        .rejections
        .iter()
        .map(|r| Decided {
            rejection: r.rejection.clone(),
            origin: &r.origin,
        })
        .collect();
    for (index, reading) in batch.readings.iter().enumerate() {
        let source = &batch.messages[reading.origin.message as usize].source;
        match directory.get(reading.meter_id.as_str()) {
            Some(_) if !directory.accepts_from(reading.meter_id.as_str(), source) => {
                decided.push(Decided {
                    rejection: Rejection::new(
                        ReasonCode::TopicMismatch,
                        format!(
                            "meter {} may not be reported through {source}: not its registered gateway, or not a gateway",
                            reading.meter_id
                        ),
                    )
                    .with_meter(Some(reading.meter_id.as_str()))
                    .with_ts(Some(reading.ts)),
                    origin: &reading.origin,
                })
            }
            Some(entry) => staged.push(Staged {
                index,
                meter_key: entry.meter_key,
                region_key: entry.region_key,
            }),
            None => decided.push(Decided {
                rejection: Rejection::new(
                    ReasonCode::UnknownMeter,
                    format!("meter {} is not in the registry", reading.meter_id),
                )
                .with_meter(Some(reading.meter_id.as_str()))
                .with_ts(Some(reading.ts)),
                origin: &reading.origin,
            }),
        }
    }

    staged.sort_unstable_by_key(|s| (s.meter_key, batch.readings[s.index].ts, s.index));
    // A key twice in one batch: the first arrival stays; a copy with the same value is
    // absorbed, one with another value is a conflicting duplicate.
    let mut absorbed = 0u64;
    let mut unique: Vec<Staged> = Vec::with_capacity(staged.len());
    for s in staged {
        let reading = &batch.readings[s.index];
        if let Some(kept) = unique.last() {
            let first = &batch.readings[kept.index];
            if kept.meter_key == s.meter_key && first.ts == reading.ts {
                if (first.energy_wh, first.power_w) == (reading.energy_wh, reading.power_w) {
                    absorbed += 1;
                } else {
                    decided.push(Decided {
                        rejection: conflicting_duplicate(reading, first.energy_wh),
                        origin: &reading.origin,
                    });
                }
                continue;
            }
        }
        unique.push(s);
    }
    let staged = unique;
    let days: Vec<NaiveDate> = staged
        .iter()
        .map(|s| batch.readings[s.index].ts.date_naive())
        .collect();
    ctx.partitions.ensure(&conn.client, days).await?;

    let tx = conn.client.transaction().await?;
    let mut stored = 0u64;
    let try_direct = ctx
        .stage_next
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_err();
    if try_direct && !staged.is_empty() && copy_direct(&tx, batch, &staged).await? {
        stored = staged.len() as u64;
    } else if !staged.is_empty() {
        if try_direct {
            ctx.stage_next
                .store(STAGE_AFTER_A_REDELIVERY, Ordering::Relaxed);
        }
        let sink = tx.copy_in(COPY).await?;
        let writer_sink = BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT4,
                Type::INT4,
                Type::TIMESTAMPTZ,
                Type::INT8,
                Type::FLOAT4,
            ],
        );
        pin_mut!(writer_sink);
        for s in &staged {
            let r = &batch.readings[s.index];
            let seq = s.index as i32;
            writer_sink
                .as_mut()
                .write(&[&seq, &s.meter_key, &r.ts, &r.energy_wh, &r.power_w])
                .await?;
        }
        writer_sink.finish().await?;
        let inserted: HashSet<(i32, DateTime<Utc>)> = tx
            .query(&conn.insert, &[])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        stored = inserted.len() as u64;
        let mut conflicting = 0u64;
        if inserted.len() < staged.len() {
            let times = staged.iter().map(|s| batch.readings[s.index].ts);
            let (first, last) = (times.clone().min(), times.max());
            let missing: HashMap<(i32, DateTime<Utc>), &Staged> = staged
                .iter()
                .map(|s| ((s.meter_key, batch.readings[s.index].ts), s))
                .filter(|(key, _)| !inserted.contains(key))
                .collect();
            let (keys, stamps): (Vec<i32>, Vec<DateTime<Utc>>) = missing.keys().copied().unzip();
            for row in tx
                .query(&conn.conflicts, &[&keys, &stamps, &first, &last])
                .await?
            {
                let key: (i32, DateTime<Utc>) = (row.get(0), row.get(1));
                let stored_copy: (i64, Option<f32>) = (row.get(2), row.get(3));
                let Some(s) = missing.get(&key) else {
                    continue;
                };
                let reading = &batch.readings[s.index];
                if stored_copy != (reading.energy_wh, reading.power_w) {
                    conflicting += 1;
                    decided.push(Decided {
                        rejection: conflicting_duplicate(reading, stored_copy.0),
                        origin: &reading.origin,
                    });
                }
            }
        }
        absorbed += (staged.len() as u64).saturating_sub(stored + conflicting);
    }

    let rejected = decided.len() as u64;
    if !decided.is_empty() {
        store_rejections(&tx, (&conn.counts, &conn.rejections), ctx, batch, decided).await?;
    }

    let newest = staged.iter().map(|s| batch.readings[s.index].ts).max();
    if !staged.is_empty() {
        let mut touched: BTreeMap<(i32, DateTime<Utc>), (i32, DateTime<Utc>)> = BTreeMap::new();
        for s in &staged {
            let ts = batch.readings[s.index].ts;
            let minute = ts.duration_trunc(TimeDelta::minutes(1)).unwrap_or(ts);
            let entry = touched.entry((s.region_key, minute)).or_insert((0, ts));
            entry.0 += 1;
            entry.1 = entry.1.max(ts);
        }
        let regions: Vec<i32> = touched.keys().map(|k| k.0).collect();
        let minutes: Vec<DateTime<Utc>> = touched.keys().map(|k| k.1).collect();
        let counts: Vec<i32> = touched.values().map(|v| v.0).collect();
        let newest_ts: Vec<DateTime<Utc>> = touched.values().map(|v| v.1).collect();
        tx.execute(&conn.touches, &[&regions, &minutes, &counts, &newest_ts])
            .await?;
        let mut sources: BTreeMap<i32, (i32, DateTime<Utc>)> = BTreeMap::new();
        for s in &staged {
            let ts = batch.readings[s.index].ts;
            let entry = sources.entry(s.meter_key).or_insert((s.region_key, ts));
            entry.1 = entry.1.max(ts);
        }
        let meters: Vec<i32> = sources.keys().copied().collect();
        let regions: Vec<i32> = sources.values().map(|v| v.0).collect();
        let newest_ts: Vec<DateTime<Utc>> = sources.values().map(|v| v.1).collect();
        tx.execute(&conn.sources, &[&regions, &meters, &newest_ts])
            .await?;
    }
    tx.execute(
        &conn.counters,
        &[&writer, &(stored as i64), &(rejected as i64), &newest],
    )
    .await?;
    tx.commit().await?;

    let now = Utc::now();
    let ingest = &ctx.metrics.ingest;
    ingest.readings_stored.inc_by(stored);
    ingest.duplicates_absorbed.inc_by(absorbed);
    for s in &staged {
        let lag = (now - batch.readings[s.index].ts)
            .num_microseconds()
            .unwrap_or(i64::MAX);
        ingest.lag.observe(lag as f64 / 1e6);
    }
    if let Some(newest) = newest {
        if newest.timestamp() > ingest.newest_reading.get() {
            ingest.newest_reading.set(newest.timestamp());
        }
    }
    ingest.last_commit.set(now.timestamp());
    Ok(Outcome {
        stored,
        absorbed,
        rejected,
    })
}

/// The rejection of `reading`, whose key is already stored with `existing` Wh.
fn conflicting_duplicate(reading: &PendingReading, existing: i64) -> Rejection {
    Rejection::new(
        ReasonCode::ConflictingDuplicate,
        format!(
            "meter {} at {} is already stored with energy_wh {existing}; this copy says {}",
            reading.meter_id,
            reading.ts.to_rfc3339(),
            reading.energy_wh
        ),
    )
    .with_meter(Some(reading.meter_id.as_str()))
    .with_ts(Some(reading.ts))
}

/// Copies the staged readings straight into `readings` under a savepoint; returns false (with
/// the savepoint rolled back, nothing written) when a key is already stored. The rows go in
/// (meter, time) order, so concurrent writers take index locks in the same order.
async fn copy_direct(
    tx: &tokio_postgres::Transaction<'_>,
    batch: &Batch,
    staged: &[Staged],
) -> Result<bool, tokio_postgres::Error> {
    tx.batch_execute("SAVEPOINT direct_copy").await?;
    let rows: Vec<crate::db::copy::ReadingRow> = staged
        .iter()
        .map(|s| {
            let r = &batch.readings[s.index];
            (r.ts, r.energy_wh, s.meter_key, r.power_w)
        })
        .collect();
    let copied = crate::db::copy::copy_readings(tx, rows).await;
    match copied {
        Ok(_) => {
            tx.batch_execute("RELEASE SAVEPOINT direct_copy").await?;
            Ok(true)
        }
        Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT direct_copy")
                .await?;
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

/// Counts every rejection and keeps, row by row with its raw payload, those within the limits.
async fn store_rejections(
    tx: &tokio_postgres::Transaction<'_>,
    (counts_statement, insert_statement): (&Statement, &Statement),
    ctx: &WriterContext,
    batch: &Batch,
    decided: Vec<Decided<'_>>,
) -> Result<(), tokio_postgres::Error> {
    let limits = ctx.limits;
    let hour_of = |d: &Decided<'_>| {
        let at = batch.messages[d.origin.message as usize].received_at;
        at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
    };
    // Group by (source, reason, hour), plus one ("*", "*", hour) group per hour for the global
    // limit; keys sorted so that concurrent writers lock count rows in the same order.
    let mut groups: BTreeMap<(String, &'static str, DateTime<Utc>), i64> = BTreeMap::new();
    for d in &decided {
        let source = batch.messages[d.origin.message as usize].source.clone();
        let hour = hour_of(d);
        *groups
            .entry((source, d.rejection.reason.as_str(), hour))
            .or_default() += 1;
        *groups.entry(("*".into(), "*", hour)).or_default() += 1;
    }
    let sources: Vec<&str> = groups.keys().map(|k| k.0.as_str()).collect();
    let reasons: Vec<&str> = groups.keys().map(|k| k.1).collect();
    let hours: Vec<DateTime<Utc>> = groups.keys().map(|k| k.2).collect();
    let counts: Vec<i64> = groups.values().copied().collect();
    let rows = tx
        .query(
            counts_statement,
            &[
                &sources,
                &reasons,
                &hours,
                &counts,
                &limits.per_hour,
                &limits.per_source_hour,
            ],
        )
        .await?;
    // Rows still allowed in each group: those between the old total and the limit.
    let mut quota: BTreeMap<(String, String, DateTime<Utc>), i64> = BTreeMap::new();
    for row in rows {
        let source: String = row.get(0);
        let reason: String = row.get(1);
        let hour: DateTime<Utc> = row.get(2);
        let total: i64 = row.get(3);
        let limit = if reason == "*" {
            limits.per_hour
        } else {
            limits.per_source_hour
        };
        let added = groups
            .get(&(source.clone(), leak_reason(&reason), hour))
            .copied()
            .unwrap_or(0);
        let allowed = total.min(limit) - (total - added).min(limit);
        quota.insert((source, reason, hour), allowed.max(0));
    }

    let mut received = Vec::new();
    let mut topics = Vec::new();
    let mut source_col = Vec::new();
    let mut meters = Vec::new();
    let mut reading_ts = Vec::new();
    let mut reason_col = Vec::new();
    let mut details = Vec::new();
    let mut raws = Vec::new();
    let mut sizes = Vec::new();
    for d in &decided {
        let message = &batch.messages[d.origin.message as usize];
        let hour = hour_of(d);
        let reason = d.rejection.reason.as_str();
        let group = (message.source.clone(), reason.to_owned(), hour);
        let global = ("*".to_owned(), "*".to_owned(), hour);
        let group_left = quota.get(&group).copied().unwrap_or(0);
        let global_left = quota.get(&global).copied().unwrap_or(0);
        if group_left <= 0 || global_left <= 0 {
            continue;
        }
        quota.insert(group, group_left - 1);
        quota.insert(global, global_left - 1);
        let raw = batch.raw(d.origin);
        received.push(message.received_at);
        topics.push(message.topic.as_str());
        source_col.push(message.source.as_str());
        meters.push(d.rejection.meter_id.as_deref());
        reading_ts.push(d.rejection.ts);
        reason_col.push(reason);
        details.push(d.rejection.detail.as_str());
        raws.push(&raw[..raw.len().min(limits.raw_keep_bytes)]);
        sizes.push(raw.len() as i32);
    }
    if !received.is_empty() {
        tx.execute(
            insert_statement,
            &[
                &received,
                &topics,
                &source_col,
                &meters,
                &reading_ts,
                &reason_col,
                &details,
                &raws,
                &sizes,
            ],
        )
        .await?;
    }
    for d in &decided {
        ctx.metrics
            .ingest
            .rejections
            .with_label_values(&[d.rejection.reason.as_str()])
            .inc();
    }
    Ok(())
}

/// The static string of a reason code read back from the database (or "*").
fn leak_reason(reason: &str) -> &'static str {
    ReasonCode::parse(reason).map_or("*", ReasonCode::as_str)
}
