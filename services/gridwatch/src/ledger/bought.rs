//! The energy a licence bought over a period: each purchase spread evenly over its delivery
//! interval, and the part of it that falls in the period summed (CONTRACT.md section 3).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

/// Wh bought by `licence` for `[from, to)`. A purchase of E Wh delivered over [s, e) counts
/// E x |[s, e) ∩ [from, to)| / |[s, e)|. Zero for an empty period or an unknown licence.
pub async fn bought_energy(
    client: &impl GenericClient,
    licence: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<f64, tokio_postgres::Error> {
    if to <= from {
        return Ok(0.0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(sum(
                 p.energy_wh::float8
                 * extract(epoch FROM least(p.delivery_end, $3) - greatest(p.delivery_start, $2))::float8
                 / extract(epoch FROM p.delivery_end - p.delivery_start)::float8), 0)::float8
             FROM purchases p JOIN licences l ON l.licence_key = p.licence_key
             WHERE l.id = $1 AND p.delivery_start < $3 AND p.delivery_end > $2",
            &[&licence, &from, &to],
        )
        .await?;
    Ok(row.get(0))
}
