//! Reading registers from the database and turning them into energy per meter and window.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use tokio_postgres::GenericClient;

use gridwatch_detect::energy::{window_energies_within, RegisterReading, WindowEnergy};
use gridwatch_detect::window::Window;

/// Readings loaded around the windows to interpolate their boundaries: the reading before and
/// after each boundary of a meter that reads every 15 minutes or more often, with 5 minutes to
/// spare for its clock. Meters with a gap at a boundary (or a slower cadence) get their nearest
/// readings looked up one by one in `nearest`. Each extra reading per meter is 100,000 more
/// rows per window for a national shard: loading 45 minutes around a window cost twice as long.
const AROUND: Duration = Duration::minutes(20);

/// Per-meter energies of a contiguous run of windows, by meter key.
pub struct Energies {
    /// `by_meter[key][i]` is the meter's energy in window i.
    pub by_meter: HashMap<i32, Vec<WindowEnergy>>,
}

impl Energies {
    /// A meter's energy in window `i`.
    pub fn get(&self, meter_key: i32, i: usize) -> Option<f64> {
        self.by_meter.get(&meter_key)?.get(i)?.energy_wh
    }

    /// A meter's energy in window `i` and whether a boundary was interpolated.
    pub fn get_flagged(&self, meter_key: i32, i: usize) -> Option<(f64, bool)> {
        let e = self.by_meter.get(&meter_key)?.get(i)?;
        e.energy_wh.map(|v| (v, e.interpolated))
    }

    /// Whether a meter's register ran backwards in window `i`.
    pub fn backwards(&self, meter_key: i32, i: usize) -> bool {
        self.by_meter
            .get(&meter_key)
            .and_then(|v| v.get(i))
            .is_some_and(|e| e.backwards)
    }
}

/// Loads the registers of `meter_keys` around `windows` (sorted, contiguous) and computes their
/// energies, bridging gaps up to `max_gap`; a reading within `tolerance` of a boundary counts as
/// read there.
pub async fn energies(
    client: &impl GenericClient,
    meter_keys: &[i32],
    windows: &[Window],
    max_gap: Duration,
    tolerance: Duration,
) -> Result<Energies, tokio_postgres::Error> {
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return Ok(Energies {
            by_meter: HashMap::new(),
        });
    };
    let mut readings = load(client, meter_keys, first.start - AROUND, last.end + AROUND).await?;
    // Meters whose first or last boundary falls in a longer gap: fetch the nearest readings
    // beyond the loaded range, within max_gap.
    let needs_before: Vec<i32> = meter_keys
        .iter()
        .copied()
        .filter(|k| {
            readings
                .get(k)
                .is_none_or(|r| r.first().is_none_or(|f| f.ts > first.start))
        })
        .collect();
    let needs_after: Vec<i32> = meter_keys
        .iter()
        .copied()
        .filter(|k| {
            readings
                .get(k)
                .is_none_or(|r| r.last().is_none_or(|l| l.ts < last.end))
        })
        .collect();
    if !needs_before.is_empty() {
        for (key, reading) in nearest(client, &needs_before, first.start, max_gap, true).await? {
            readings.entry(key).or_default().insert(0, reading);
        }
    }
    if !needs_after.is_empty() {
        for (key, reading) in nearest(client, &needs_after, last.end, max_gap, false).await? {
            readings.entry(key).or_default().push(reading);
        }
    }
    let by_meter = meter_keys
        .iter()
        .map(|k| {
            let series = readings.get(k).map(Vec::as_slice).unwrap_or(&[]);
            (
                *k,
                window_energies_within(series, windows, max_gap, tolerance),
            )
        })
        .collect();
    Ok(Energies { by_meter })
}

/// Every reading of `meter_keys` in `[from, to]`, by meter, sorted by time.
pub async fn load(
    client: &impl GenericClient,
    meter_keys: &[i32],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashMap<i32, Vec<RegisterReading>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT meter_key, ts, energy_wh FROM readings
             WHERE meter_key = ANY($1) AND ts >= $2 AND ts <= $3",
            &[&meter_keys, &from, &to],
        )
        .await?;
    // Sorted here rather than by the server: hundreds of thousands of rows outgrow its sort
    // memory and spill to disk, while each meter's few readings sort in no time.
    let mut out: HashMap<i32, Vec<RegisterReading>> = HashMap::with_capacity(meter_keys.len());
    for row in rows {
        out.entry(row.get(0)).or_default().push(RegisterReading {
            ts: row.get(1),
            energy_wh: row.get(2),
        });
    }
    for readings in out.values_mut() {
        readings.sort_unstable_by_key(|r| r.ts);
    }
    Ok(out)
}

/// For each meter, its last reading before `at` (or first after, with `before = false`) within
/// `max_gap`.
async fn nearest(
    client: &impl GenericClient,
    meter_keys: &[i32],
    at: DateTime<Utc>,
    max_gap: Duration,
    before: bool,
) -> Result<Vec<(i32, RegisterReading)>, tokio_postgres::Error> {
    let sql = if before {
        "SELECT k, r.ts, r.energy_wh FROM unnest($1::int[]) AS k
         CROSS JOIN LATERAL (SELECT ts, energy_wh FROM readings
             WHERE meter_key = k AND ts < $2::timestamptz - make_interval(secs => $4)
               AND ts >= $2::timestamptz - make_interval(secs => $3)
             ORDER BY ts DESC LIMIT 1) r"
    } else {
        "SELECT k, r.ts, r.energy_wh FROM unnest($1::int[]) AS k
         CROSS JOIN LATERAL (SELECT ts, energy_wh FROM readings
             WHERE meter_key = k AND ts > $2::timestamptz + make_interval(secs => $4)
               AND ts <= $2::timestamptz + make_interval(secs => $3)
             ORDER BY ts LIMIT 1) r"
    };
    let gap_secs = max_gap.num_seconds() as f64;
    let around_secs = AROUND.num_seconds() as f64;
    let rows = client
        .query(sql, &[&meter_keys, &at, &gap_secs, &around_secs])
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get(0),
                RegisterReading {
                    ts: row.get(1),
                    energy_wh: row.get(2),
                },
            )
        })
        .collect())
}
