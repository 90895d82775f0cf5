//! Writing anomalies: the row and, in the same transaction, the `created` entry of its
//! hash-chained history (`gridwatch_record_history`), so that no anomaly exists without it.

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use super::id::new_anomaly_id;

pub use gridwatch_core::anomaly::{Kind, Severity};

/// An anomaly to create. Identifiers are the contract's text ids.
#[derive(Debug, Clone)]
pub struct NewAnomaly {
    /// What it is about (CONTRACT.md section 4).
    pub kind: Kind,
    /// The condition's stable name (kind, subject, start): raising it again finds this anomaly
    /// instead of creating another.
    pub condition_key: String,
    /// Region id, if known.
    pub region: Option<String>,
    /// Node id, if the anomaly is about a node.
    pub node: Option<String>,
    /// Meter id, if the anomaly is about a meter.
    pub meter: Option<String>,
    /// Licence id, if the anomaly is about a licence.
    pub licence: Option<String>,
    /// When the condition started (event time).
    pub started_at: DateTime<Utc>,
    /// When it stopped; `None` while it lasts.
    pub ended_at: Option<DateTime<Utc>>,
    /// When gridwatch saw it.
    pub detected_at: DateTime<Utc>,
    /// Estimated stolen, unpaid or unaccounted energy, in Wh.
    pub energy_wh: i64,
    /// `energy_wh` times the region's tariff, in tenge.
    pub loss_kzt: f64,
    /// The detector's test statistic (how far beyond its threshold).
    pub score: f64,
    /// Probability-like weight in [0, 1] that the flag is right.
    pub confidence: f64,
    /// How much it matters.
    pub severity: Severity,
    /// Meters suspected, most likely first.
    pub suspects: Vec<String>,
    /// What an investigator needs to check the flag.
    pub evidence: serde_json::Value,
}

/// What [`create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The anomaly's id.
    pub id: String,
    /// False when an anomaly with the same `condition_key` already existed; nothing was written.
    pub new: bool,
}

/// The contract's JSON for the anomaly row aliased `a` (CONTRACT.md section 4): what history
/// snapshots hold and what the API returns.
pub const ANOMALY_JSON: &str = "jsonb_build_object(
    'id', a.id, 'kind', a.kind, 'region', a.region, 'node', a.node, 'meter', a.meter,
    'licence', a.licence,
    'started_at', to_char(a.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
    'ended_at', to_char(a.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
    'detected_at', to_char(a.detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
    'energy_wh', a.energy_wh, 'loss_kzt', a.loss_kzt, 'score', a.score,
    'confidence', a.confidence, 'severity', a.severity, 'status', a.status,
    'suspects', to_jsonb(a.suspects), 'evidence', a.evidence)";

/// Creates the anomaly and records its `created` history entry (actor `actor`), in `tx`.
///
/// An anomaly with the same `condition_key` is never duplicated: its id is returned with
/// `new: false` and nothing is written (the detector updates existing anomalies its own way).
pub async fn create(
    tx: &Transaction<'_>,
    anomaly: &NewAnomaly,
    actor: &str,
) -> Result<Created, tokio_postgres::Error> {
    let id = new_anomaly_id();
    let inserted = tx
        .query_opt(
            "INSERT INTO anomalies (id, condition_key, kind, region, node, meter, licence,
                 started_at, ended_at, detected_at, energy_wh, loss_kzt, score, confidence,
                 severity, suspects, evidence)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (condition_key) DO NOTHING
             RETURNING id",
            &[
                &id,
                &anomaly.condition_key,
                &anomaly.kind.as_str(),
                &anomaly.region,
                &anomaly.node,
                &anomaly.meter,
                &anomaly.licence,
                &anomaly.started_at,
                &anomaly.ended_at,
                &anomaly.detected_at,
                &anomaly.energy_wh,
                &anomaly.loss_kzt,
                &anomaly.score,
                &anomaly.confidence.clamp(0.0, 1.0),
                &anomaly.severity.as_str(),
                &anomaly.suspects,
                &anomaly.evidence,
            ],
        )
        .await?;
    if inserted.is_none() {
        let existing: String = tx
            .query_one(
                "SELECT id FROM anomalies WHERE condition_key = $1",
                &[&anomaly.condition_key],
            )
            .await?
            .get(0);
        return Ok(Created {
            id: existing,
            new: false,
        });
    }
    tx.execute(
        &format!(
            "SELECT gridwatch_record_history(a.id, $2, 'created', NULL, a.status, NULL, {ANOMALY_JSON})
             FROM anomalies a WHERE a.id = $1"
        ),
        &[&id, &actor],
    )
    .await?;
    Ok(Created { id, new: true })
}
