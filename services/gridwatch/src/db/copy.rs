//! Binary COPY of readings: the one way rows reach `readings` in bulk (ingest's direct path and
//! the benchmarks that measure it).

use chrono::{DateTime, Utc};
use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

/// A row of `readings`: time, register (Wh), meter key, power (W) if the meter sent it.
pub type ReadingRow = (DateTime<Utc>, i64, i32, Option<f32>);

/// Copies `rows` into `readings` within `tx` (binary COPY; partitions must exist); returns how
/// many went in. Fails as a whole on any error, a key already stored included.
pub async fn copy_readings(
    tx: &Transaction<'_>,
    rows: impl IntoIterator<Item = ReadingRow>,
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx
        .copy_in("COPY readings (ts, energy_wh, meter_key, power_w) FROM STDIN (FORMAT binary)")
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[Type::TIMESTAMPTZ, Type::INT8, Type::INT4, Type::FLOAT4],
    );
    pin_mut!(writer);
    for (ts, energy_wh, meter_key, power_w) in rows {
        writer
            .as_mut()
            .write(&[&ts, &energy_wh, &meter_key, &power_w])
            .await?;
    }
    writer.finish().await
}
