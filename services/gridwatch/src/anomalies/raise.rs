//! Raising a condition the detector found: create its anomaly, or update the one that already
//! stands for it (CONTRACT.md section 4: one ongoing condition is one anomaly, growing while it
//! lasts). Every change an auditor would see is chained into the anomaly's history.

use tokio_postgres::Transaction;

use super::store::{create, NewAnomaly, ANOMALY_JSON};

/// The note of a withdrawn anomaly opened again because its condition was found again.
const REOPENED: &str = "Readings re-judged later show this condition after all.";

/// What [`raise`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// The anomaly's id.
    pub id: String,
    /// Whether it was created now.
    pub new: bool,
    /// Whether an existing anomaly changed.
    pub changed: bool,
}

/// Creates the anomaly of `condition`, or updates the anomaly of the same kind and subject
/// (region, node, meter, licence) that carries its condition key or whose period overlaps it.
/// The auditors' statuses and notes are never touched here; only a `withdrawn` anomaly whose
/// condition is found again goes back to `open`.
pub async fn raise(
    tx: &Transaction<'_>,
    condition: &NewAnomaly,
    actor: &str,
) -> Result<Raised, tokio_postgres::Error> {
    let existing = tx
        .query_opt(
            "SELECT id FROM anomalies
             WHERE kind = $1
               AND region IS NOT DISTINCT FROM $2 AND node IS NOT DISTINCT FROM $3
               AND meter IS NOT DISTINCT FROM $4 AND licence IS NOT DISTINCT FROM $5
               AND (condition_key = $6
                    OR (started_at < coalesce($8, 'infinity'::timestamptz)
                        AND coalesce(ended_at, 'infinity'::timestamptz) > $7))
             ORDER BY (condition_key = $6) DESC, started_at
             LIMIT 1
             FOR UPDATE",
            &[
                &condition.kind.as_str(),
                &condition.region,
                &condition.node,
                &condition.meter,
                &condition.licence,
                &condition.condition_key,
                &condition.started_at,
                &condition.ended_at,
            ],
        )
        .await?;
    let Some(row) = existing else {
        let created = create(tx, condition, actor).await?;
        return Ok(Raised {
            id: created.id,
            new: created.new,
            changed: false,
        });
    };
    let id: String = row.get(0);
    // Only what changed is written, and only a real change is chained into the history. A
    // condition the detector had withdrawn and now finds again is open again: a transition of
    // the detector's, with the reason as its note.
    let updated = tx
        .query_opt(
            "WITH old AS (SELECT status FROM anomalies WHERE id = $1)
             UPDATE anomalies a SET
                 started_at = $2, ended_at = $3, energy_wh = $4, loss_kzt = $5, score = $6,
                 confidence = $7, severity = $8, suspects = $9, evidence = $10, updated_at = now(),
                 status = CASE WHEN old.status = 'withdrawn' THEN 'open' ELSE old.status END
             FROM old
             WHERE a.id = $1
               AND (a.started_at, a.ended_at, a.energy_wh, a.severity, a.suspects, a.status)
                   IS DISTINCT FROM ($2, $3, $4, $8, $9,
                       CASE WHEN old.status = 'withdrawn' THEN 'open' ELSE old.status END)
             RETURNING old.status, a.status",
            &[
                &id,
                &condition.started_at,
                &condition.ended_at,
                &condition.energy_wh,
                &condition.loss_kzt,
                &condition.score,
                &condition.confidence.clamp(0.0, 1.0),
                &condition.severity.as_str(),
                &condition.suspects,
                &condition.evidence,
            ],
        )
        .await?;
    if let Some(row) = &updated {
        let from: String = row.get(0);
        let to: String = row.get(1);
        let (action, note) = if from == to {
            ("updated", None)
        } else {
            ("transition", Some(REOPENED))
        };
        tx.execute(
            &format!(
                "SELECT gridwatch_record_history(a.id, $2, $3, $4, a.status, $5, {ANOMALY_JSON})
                 FROM anomalies a WHERE a.id = $1"
            ),
            &[&id, &actor, &action, &from, &note],
        )
        .await?;
    }
    let updated = u64::from(updated.is_some());
    Ok(Raised {
        id,
        new: false,
        changed: updated > 0,
    })
}
