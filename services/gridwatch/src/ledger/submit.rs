//! Storing a purchase, or its refusal, in one transaction.
//!
//! The order of checks: an id already stored (same content: idempotent; other content:
//! `conflicting_purchase`), the licence, the regulation profile in force at `delivery_start`,
//! the cap. A refusal is kept in `purchase_attempts` (and, for MQTT, in `rejections` with the raw
//! payload); an attempt over the cap also raises a `purchase_over_cap` anomaly. Submitting the
//! same refused purchase again (a client retrying, the broker redelivering) writes nothing new.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::{Client, Transaction};

use gridwatch_core::regulation::{Regulation, RegulationProfile};

use super::purchase::{PurchaseRequest, Refusal, RefusalCode};
use crate::anomalies::{self, NewAnomaly, Severity};

/// Serialises submissions of the same purchase id (first key of the two-key advisory lock).
const PURCHASE_LOCK: i32 = 7_423_004;
/// Bytes of a refused MQTT payload kept in `rejections` (the contract's 64 KiB).
pub const RAW_KEEP_BYTES: usize = 64 << 10;

/// How a purchase arrived.
#[derive(Debug, Clone, Copy)]
pub enum Channel<'a> {
    /// `POST /api/v1/purchases`.
    Http,
    /// The MQTT topic.
    Mqtt {
        /// The topic it was published on.
        topic: &'a str,
        /// The payload as received, kept with a refusal.
        raw: &'a [u8],
        /// When it arrived.
        received_at: DateTime<Utc>,
    },
}

impl Channel<'_> {
    fn name(&self) -> &'static str {
        match self {
            Channel::Http => "http",
            Channel::Mqtt { .. } => "mqtt",
        }
    }
}

/// Who submitted a purchase, and how.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// The token's name, or `mqtt` for the market topic: written into histories.
    pub actor: &'a str,
    /// The channel.
    pub channel: Channel<'a>,
}

/// A stored purchase, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredPurchase {
    /// Its id.
    pub id: String,
    /// The licence.
    pub licence: String,
    /// Energy, in Wh.
    pub energy_wh: i64,
    /// Start of delivery.
    pub delivery_start: DateTime<Utc>,
    /// End of delivery.
    pub delivery_end: DateTime<Utc>,
    /// Price, in tenge.
    pub price_kzt: f64,
    /// The regulation profile it was checked against.
    pub profile: String,
    /// That profile's cap, in Wh.
    pub cap_wh: i64,
    /// `http` or `mqtt`.
    pub channel: String,
    /// Who submitted it.
    pub submitted_by: String,
    /// When it was stored.
    pub received_at: DateTime<Utc>,
}

/// An accepted purchase.
#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseOutcome {
    /// The purchase as stored.
    pub purchase: StoredPurchase,
    /// False when the same purchase was already stored (an idempotent repeat).
    pub created: bool,
}

/// Why a purchase was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    /// Refused (and the refusal recorded).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The database failed: nothing was written; the caller may retry.
    #[error("database error: {}", crate::db::describe(.0))]
    Database(#[from] tokio_postgres::Error),
}

const SELECT_PURCHASE: &str = "SELECT p.id, l.id, p.energy_wh, p.delivery_start, p.delivery_end,
        p.price_kzt, p.profile, p.cap_wh, p.channel, p.submitted_by, p.received_at
    FROM purchases p JOIN licences l ON l.licence_key = p.licence_key WHERE p.id = $1";

fn stored(row: &tokio_postgres::Row) -> StoredPurchase {
    StoredPurchase {
        id: row.get(0),
        licence: row.get(1),
        energy_wh: row.get(2),
        delivery_start: row.get(3),
        delivery_end: row.get(4),
        price_kzt: row.get(5),
        profile: row.get(6),
        cap_wh: row.get(7),
        channel: row.get(8),
        submitted_by: row.get(9),
        received_at: row.get(10),
    }
}

fn same_content(stored: &StoredPurchase, request: &PurchaseRequest) -> bool {
    stored.licence == request.licence.as_str()
        && stored.energy_wh == request.energy_wh
        && stored.delivery_start == request.delivery_start
        && stored.delivery_end == request.delivery_end
        && stored.price_kzt == request.price_kzt
}

/// Stores `request`, or refuses it and records the refusal; see the module's documentation.
pub async fn submit(
    client: &mut Client,
    regulation: &Regulation,
    request: &PurchaseRequest,
    submission: Submission<'_>,
) -> Result<PurchaseOutcome, PurchaseError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&PURCHASE_LOCK, &request.id.as_str()],
    )
    .await?;
    let decision = decide(&tx, regulation, request, submission).await?;
    match decision {
        Ok(outcome) => {
            tx.commit().await?;
            Ok(outcome)
        }
        Err(refusal) => {
            let profile = regulation.in_force(request.delivery_start.date_naive());
            record_refusal(&tx, Some((request, profile)), &refusal, submission).await?;
            tx.commit().await?;
            Err(PurchaseError::Refused(refusal))
        }
    }
}

/// Accepts the purchase (stored in `tx`), or says why not (nothing written yet).
async fn decide(
    tx: &Transaction<'_>,
    regulation: &Regulation,
    request: &PurchaseRequest,
    submission: Submission<'_>,
) -> Result<Result<PurchaseOutcome, Refusal>, tokio_postgres::Error> {
    if let Some(row) = tx
        .query_opt(SELECT_PURCHASE, &[&request.id.as_str()])
        .await?
    {
        let existing = stored(&row);
        return Ok(if same_content(&existing, request) {
            Ok(PurchaseOutcome {
                purchase: existing,
                created: false,
            })
        } else {
            Err(Refusal::new(
                RefusalCode::ConflictingPurchase,
                format!(
                    "purchase {} was already stored with other content (licence {}, energy_wh {}, delivery {} to {}, price_kzt {})",
                    existing.id,
                    existing.licence,
                    existing.energy_wh,
                    existing.delivery_start.to_rfc3339(),
                    existing.delivery_end.to_rfc3339(),
                    existing.price_kzt
                ),
            ))
        });
    }
    let Some(licence_key) = tx
        .query_opt(
            "SELECT licence_key FROM licences WHERE id = $1",
            &[&request.licence.as_str()],
        )
        .await?
        .map(|row| row.get::<_, i32>(0))
    else {
        return Ok(Err(Refusal::new(
            RefusalCode::UnknownLicence,
            format!("licence {} is not registered", request.licence),
        )));
    };
    let day = request.delivery_start.date_naive();
    let Some(profile) = regulation.in_force(day) else {
        return Ok(Err(Refusal::new(
            RefusalCode::NoRegulationProfile,
            format!("no regulation profile is in force on {day}, the delivery_start day"),
        )));
    };
    if request.energy_wh > profile.purchase_cap_wh {
        return Ok(Err(Refusal::new(
            RefusalCode::PurchaseOverCap,
            format!(
                "energy_wh {} exceeds the cap of {} Wh per purchase (profile {}, in force from {})",
                request.energy_wh, profile.purchase_cap_wh, profile.name, profile.effective_from
            ),
        )));
    }
    let row = tx
        .query_one(
            "INSERT INTO purchases (id, licence_key, energy_wh, delivery_start, delivery_end,
                 price_kzt, profile, cap_wh, channel, submitted_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING received_at",
            &[
                &request.id.as_str(),
                &licence_key,
                &request.energy_wh,
                &request.delivery_start,
                &request.delivery_end,
                &request.price_kzt,
                &profile.name,
                &profile.purchase_cap_wh,
                &submission.channel.name(),
                &submission.actor,
            ],
        )
        .await?;
    Ok(Ok(PurchaseOutcome {
        purchase: StoredPurchase {
            id: request.id.to_string(),
            licence: request.licence.to_string(),
            energy_wh: request.energy_wh,
            delivery_start: request.delivery_start,
            delivery_end: request.delivery_end,
            price_kzt: request.price_kzt,
            profile: profile.name.clone(),
            cap_wh: profile.purchase_cap_wh,
            channel: submission.channel.name().to_owned(),
            submitted_by: submission.actor.to_owned(),
            received_at: row.get(0),
        },
        created: true,
    }))
}

/// Records a payload that did not parse into a purchase (MQTT only: an HTTP client is simply
/// answered). Kept in `purchase_attempts` and `rejections`.
pub async fn record_unparsed(
    client: &mut Client,
    refusal: &Refusal,
    submission: Submission<'_>,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    record_refusal(&tx, None, refusal, submission).await?;
    tx.commit().await
}

/// Keeps a refusal, unless the very same one was already kept (a retry or a redelivery).
async fn record_refusal(
    tx: &Transaction<'_>,
    attempt: Option<(&PurchaseRequest, Option<&RegulationProfile>)>,
    refusal: &Refusal,
    submission: Submission<'_>,
) -> Result<(), tokio_postgres::Error> {
    let request = attempt.map(|(request, _)| request);
    let reason = refusal.code.as_str();
    let id = request.map(|r| r.id.as_str());
    let licence = request.map(|r| r.licence.as_str());
    let energy = request.map(|r| r.energy_wh);
    let start = request.map(|r| r.delivery_start);
    let end = request.map(|r| r.delivery_end);
    let price = request.map(|r| r.price_kzt);
    if request.is_some() {
        let seen = tx
            .query_opt(
                "SELECT 1 FROM purchase_attempts
                 WHERE purchase_id = $1 AND reason = $2 AND licence = $3 AND energy_wh = $4
                   AND delivery_start = $5 AND delivery_end = $6 AND price_kzt = $7
                 LIMIT 1",
                &[&id, &reason, &licence, &energy, &start, &end, &price],
            )
            .await?;
        if seen.is_some() {
            return Ok(());
        }
    }
    tx.execute(
        "INSERT INTO purchase_attempts (purchase_id, licence, energy_wh, delivery_start,
             delivery_end, price_kzt, reason, detail, channel, submitted_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &id,
            &licence,
            &energy,
            &start,
            &end,
            &price,
            &reason,
            &refusal.message,
            &submission.channel.name(),
            &submission.actor,
        ],
    )
    .await?;
    if let Channel::Mqtt {
        topic,
        raw,
        received_at,
    } = submission.channel
    {
        let reason = refusal.code.reason().as_str();
        let kept = &raw[..raw.len().min(RAW_KEEP_BYTES)];
        let size = i32::try_from(raw.len()).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO rejections
                 (received_at, topic, source, meter_id, reading_ts, reason, detail, raw, raw_size)
             VALUES ($1, $2, 'market', NULL, NULL, $3, $4, $5, $6)",
            &[
                &received_at,
                &topic,
                &reason,
                &refusal.message,
                &kept,
                &size,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO rejection_counts AS c (source, reason, hour, rejected, kept)
             VALUES ('market', $1, date_trunc('hour', $2::timestamptz), 1, 1)
             ON CONFLICT (source, reason, hour) DO UPDATE
               SET rejected = c.rejected + 1, kept = c.kept + 1",
            &[&reason, &received_at],
        )
        .await?;
    }
    if let (Some((request, Some(profile))), RefusalCode::PurchaseOverCap) = (attempt, refusal.code)
    {
        raise_over_cap(tx, request, profile, submission).await?;
    }
    Ok(())
}

/// How large an overrun is, relative to the cap: 1 Wh over is low, ten caps over is critical.
fn severity(over_wh: i64, cap_wh: i64) -> Severity {
    let ratio = over_wh as f64 / cap_wh.max(1) as f64;
    if ratio < 0.1 {
        Severity::Low
    } else if ratio < 1.0 {
        Severity::Medium
    } else if ratio < 10.0 {
        Severity::High
    } else {
        Severity::Critical
    }
}

/// Raises the `purchase_over_cap` anomaly of a refused purchase.
async fn raise_over_cap(
    tx: &Transaction<'_>,
    request: &PurchaseRequest,
    cap: &RegulationProfile,
    submission: Submission<'_>,
) -> Result<(), tokio_postgres::Error> {
    let farm = tx
        .query_opt(
            "SELECT m.id, n.id, r.id, r.tariff_kzt_per_kwh
             FROM meters m
             JOIN licences l ON l.licence_key = m.licence_key
             JOIN nodes n ON n.node_key = m.node_key
             JOIN regions r ON r.region_key = n.region_key
             WHERE l.id = $1
             ORDER BY (m.class = 'mining') DESC, m.meter_key
             LIMIT 1",
            &[&request.licence.as_str()],
        )
        .await?;
    let (meter, node, region, tariff) = match &farm {
        Some(row) => (
            Some(row.get::<_, String>(0)),
            Some(row.get::<_, String>(1)),
            Some(row.get::<_, String>(2)),
            row.get::<_, f64>(3),
        ),
        None => (None, None, None, 0.0),
    };
    let over_wh = request.energy_wh - cap.purchase_cap_wh;
    let anomaly = NewAnomaly {
        kind: crate::anomalies::store::Kind::PurchaseOverCap,
        condition_key: format!("purchase_over_cap:{}", request.id),
        region,
        node,
        meter: meter.clone(),
        licence: Some(request.licence.to_string()),
        started_at: request.delivery_start,
        ended_at: Some(request.delivery_end),
        detected_at: Utc::now(),
        energy_wh: over_wh,
        loss_kzt: over_wh as f64 / 1000.0 * tariff,
        score: request.energy_wh as f64 / cap.purchase_cap_wh.max(1) as f64,
        confidence: 1.0,
        severity: severity(over_wh, cap.purchase_cap_wh),
        suspects: meter.into_iter().collect(),
        evidence: json!({
            "attempt": request,
            "cap_wh": cap.purchase_cap_wh,
            "over_cap_wh": over_wh,
            "profile": cap.name,
            "profile_effective_from": cap.effective_from,
            "channel": submission.channel.name(),
            "submitted_by": submission.actor,
            "tariff_kzt_per_kwh": tariff,
        }),
    };
    anomalies::create(tx, &anomaly, submission.actor).await?;
    Ok(())
}
