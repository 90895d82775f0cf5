//! A purchase as submitted, parsed once at the edge: what comes out is a [`PurchaseRequest`]
//! every later step can trust, or a [`Refusal`] with a code for the client.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use gridwatch_core::ids::PurchaseId;
use gridwatch_core::{LicenceId, ReasonCode};

/// Longest delivery interval accepted (a purchase is delivered within a year).
pub const MAX_DELIVERY_DAYS: i64 = 366;
/// Delivery times accepted: years 2000 to 2099 (anything else is a typing error).
pub const DELIVERY_YEARS: std::ops::Range<i32> = 2000..2100;
/// Highest price accepted, in tenge (a trillion: a typing error above).
pub const MAX_PRICE_KZT: f64 = 1e12;

/// A valid purchase request (CONTRACT.md section 3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PurchaseRequest {
    /// The platform's purchase id: the idempotency key.
    pub id: PurchaseId,
    /// The licence buying.
    pub licence: LicenceId,
    /// Energy bought, in Wh (at least 1).
    pub energy_wh: i64,
    /// Start of delivery.
    pub delivery_start: DateTime<Utc>,
    /// End of delivery, after its start.
    pub delivery_end: DateTime<Utc>,
    /// Price paid, in tenge.
    pub price_kzt: f64,
}

/// Why the ledger refused a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// The body is not JSON (or not UTF-8).
    MalformedJson,
    /// A field is missing, unknown, of the wrong type, or out of range.
    InvalidField,
    /// `energy_wh` is negative.
    NegativeEnergy,
    /// `delivery_end` is not after `delivery_start`, or the interval is too long.
    InvalidDeliveryInterval,
    /// No regulation profile is in force on the delivery day.
    NoRegulationProfile,
    /// The licence is not registered.
    UnknownLicence,
    /// The energy exceeds the per-transaction cap.
    PurchaseOverCap,
    /// The id was already used for another purchase.
    ConflictingPurchase,
    /// The MQTT payload is larger than 64 KiB.
    PayloadTooLarge,
}

impl RefusalCode {
    /// Every code, for metric labels.
    pub const ALL: [RefusalCode; 9] = [
        RefusalCode::MalformedJson,
        RefusalCode::InvalidField,
        RefusalCode::NegativeEnergy,
        RefusalCode::InvalidDeliveryInterval,
        RefusalCode::NoRegulationProfile,
        RefusalCode::UnknownLicence,
        RefusalCode::PurchaseOverCap,
        RefusalCode::ConflictingPurchase,
        RefusalCode::PayloadTooLarge,
    ];

    /// The snake_case code the API answers with.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::MalformedJson => "malformed_json",
            RefusalCode::InvalidField => "invalid_field",
            RefusalCode::NegativeEnergy => "negative_energy",
            RefusalCode::InvalidDeliveryInterval => "invalid_delivery_interval",
            RefusalCode::NoRegulationProfile => "no_regulation_profile",
            RefusalCode::UnknownLicence => "unknown_licence",
            RefusalCode::PurchaseOverCap => "purchase_over_cap",
            RefusalCode::ConflictingPurchase => "conflicting_purchase",
            RefusalCode::PayloadTooLarge => "payload_too_large",
        }
    }

    /// The HTTP status: 400 for a body that is not JSON, 409 for a conflicting id, 413 for a
    /// body too large, 422 for the rest.
    pub fn http_status(self) -> u16 {
        match self {
            RefusalCode::MalformedJson => 400,
            RefusalCode::ConflictingPurchase => 409,
            RefusalCode::PayloadTooLarge => 413,
            _ => 422,
        }
    }

    /// The reason code of the rejections store (for purchases refused over MQTT).
    pub fn reason(self) -> ReasonCode {
        match self {
            RefusalCode::MalformedJson => ReasonCode::MalformedJson,
            RefusalCode::NegativeEnergy => ReasonCode::NegativeEnergy,
            RefusalCode::UnknownLicence => ReasonCode::UnknownLicence,
            RefusalCode::PurchaseOverCap => ReasonCode::PurchaseOverCap,
            RefusalCode::ConflictingPurchase => ReasonCode::ConflictingPurchase,
            RefusalCode::PayloadTooLarge => ReasonCode::PayloadTooLarge,
            RefusalCode::InvalidField
            | RefusalCode::InvalidDeliveryInterval
            | RefusalCode::NoRegulationProfile => ReasonCode::InvalidField,
        }
    }
}

/// A refusal: its code and a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct Refusal {
    /// The code.
    pub code: RefusalCode,
    /// What is wrong.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code`. Every NUL of `message` becomes U+FFFD: a message may quote the
    /// payload (an unknown field's name, which JSON may spell `\u0000`), a refusal is stored in
    /// text columns, and PostgreSQL refuses a NUL in one.
    pub fn new(code: RefusalCode, message: impl Into<String>) -> Refusal {
        let message = message.into();
        let message = if message.contains('\0') {
            message.replace('\0', "\u{FFFD}")
        } else {
            message
        };
        Refusal { code, message }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePurchase {
    id: String,
    licence: String,
    energy_wh: i64,
    delivery_start: String,
    delivery_end: String,
    price_kzt: f64,
}

fn time(field: &str, text: &str) -> Result<DateTime<Utc>, Refusal> {
    use chrono::Datelike;
    let time = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Refusal::new(
                RefusalCode::InvalidField,
                format!("{field} must be an RFC 3339 time with a zone, got {text:?}: {e}"),
            )
        })?;
    if !DELIVERY_YEARS.contains(&time.year()) {
        return Err(Refusal::new(
            RefusalCode::InvalidField,
            format!(
                "{field} {text} is outside the years {} to {}",
                DELIVERY_YEARS.start,
                DELIVERY_YEARS.end - 1
            ),
        ));
    }
    Ok(time)
}

/// Parses a purchase from its JSON payload.
pub fn parse(json: &[u8]) -> Result<PurchaseRequest, Refusal> {
    let wire: WirePurchase = serde_json::from_slice(json).map_err(|e| {
        use serde_json::error::Category;
        let code = match e.classify() {
            Category::Data => RefusalCode::InvalidField,
            Category::Syntax | Category::Eof | Category::Io => RefusalCode::MalformedJson,
        };
        Refusal::new(code, e.to_string())
    })?;
    let id = PurchaseId::parse(&wire.id)
        .map_err(|e| Refusal::new(RefusalCode::InvalidField, format!("id {:?}: {e}", wire.id)))?;
    let licence = LicenceId::parse(&wire.licence).map_err(|e| {
        Refusal::new(
            RefusalCode::InvalidField,
            format!("licence {:?}: {e}", wire.licence),
        )
    })?;
    if wire.energy_wh < 0 {
        return Err(Refusal::new(
            RefusalCode::NegativeEnergy,
            format!(
                "energy_wh is {}; energy bought is never negative",
                wire.energy_wh
            ),
        ));
    }
    if wire.energy_wh == 0 {
        return Err(Refusal::new(
            RefusalCode::InvalidField,
            "energy_wh is 0; a purchase buys at least 1 Wh",
        ));
    }
    let delivery_start = time("delivery_start", &wire.delivery_start)?;
    let delivery_end = time("delivery_end", &wire.delivery_end)?;
    if delivery_end <= delivery_start {
        return Err(Refusal::new(
            RefusalCode::InvalidDeliveryInterval,
            format!(
                "delivery_end {} must be after delivery_start {}",
                delivery_end.to_rfc3339(),
                delivery_start.to_rfc3339()
            ),
        ));
    }
    if delivery_end - delivery_start > Duration::days(MAX_DELIVERY_DAYS) {
        return Err(Refusal::new(
            RefusalCode::InvalidDeliveryInterval,
            format!("a delivery interval lasts at most {MAX_DELIVERY_DAYS} days"),
        ));
    }
    if !wire.price_kzt.is_finite() || wire.price_kzt < 0.0 || wire.price_kzt > MAX_PRICE_KZT {
        return Err(Refusal::new(
            RefusalCode::InvalidField,
            format!(
                "price_kzt {} must be between 0 and {MAX_PRICE_KZT}",
                wire.price_kzt
            ),
        ));
    }
    Ok(PurchaseRequest {
        id,
        licence,
        energy_wh: wire.energy_wh,
        delivery_start,
        delivery_end,
        price_kzt: wire.price_kzt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"id": "P-2025-000001", "licence": "KZ-MIN-042", "energy_wh": 1000000, "delivery_start": "2025-10-01T00:00:00Z", "delivery_end": "2025-10-01T01:00:00Z", "price_kzt": 10300.0}"#;

    fn code_of(json: &str) -> RefusalCode {
        parse(json.as_bytes()).expect_err("refused").code
    }

    #[test]
    fn the_contracts_example_parses() {
        let p = parse(OK.as_bytes()).expect("valid");
        assert_eq!(p.energy_wh, 1_000_000);
        assert_eq!(p.licence.as_str(), "KZ-MIN-042");
    }

    #[test]
    fn each_fault_has_its_code() {
        assert_eq!(code_of("{"), RefusalCode::MalformedJson);
        assert_eq!(code_of("\u{0}"), RefusalCode::MalformedJson);
        assert_eq!(code_of("{}"), RefusalCode::InvalidField);
        assert_eq!(
            code_of(&OK.replace("10300.0", "10300.0, \"x\": 1")),
            RefusalCode::InvalidField
        );
        assert_eq!(
            code_of(&OK.replace("1000000", "\"1000000\"")),
            RefusalCode::InvalidField
        );
        assert_eq!(
            code_of(&OK.replace("1000000", "1.5")),
            RefusalCode::InvalidField
        );
        assert_eq!(
            code_of(&OK.replace("1000000", "-1")),
            RefusalCode::NegativeEnergy
        );
        assert_eq!(
            code_of(&OK.replace("1000000", "0")),
            RefusalCode::InvalidField
        );
        assert_eq!(
            code_of(&OK.replace("P-2025-000001", "P 1")),
            RefusalCode::InvalidField
        );
        assert_eq!(
            code_of(&OK.replace("KZ-MIN-042", "KZ/042")),
            RefusalCode::InvalidField
        );
        assert_eq!(
            code_of(&OK.replace("T01:00:00Z", "T00:00:00Z")),
            RefusalCode::InvalidDeliveryInterval
        );
        assert_eq!(
            code_of(&OK.replace("2025-10-01T01:00:00Z", "2027-10-01T01:00:00Z")),
            RefusalCode::InvalidDeliveryInterval
        );
        assert_eq!(
            code_of(&OK.replace("2025-10-01T01:00:00Z", "tomorrow")),
            RefusalCode::InvalidField
        );
        assert_eq!(
            code_of(&OK.replace("10300.0", "-1")),
            RefusalCode::InvalidField
        );
        assert_eq!(
            code_of(&OK.replace("10300.0", "1e300")),
            RefusalCode::InvalidField
        );
    }

    #[test]
    fn a_nul_quoted_from_the_payload_never_reaches_the_refusal() {
        let refusal = parse(br#"{"a\u0000b": 1}"#).expect_err("refused");
        assert_eq!(refusal.code, RefusalCode::InvalidField);
        assert!(!refusal.message.contains('\0'), "{:?}", refusal.message);
        assert!(
            refusal.message.contains("a\u{FFFD}b"),
            "{:?}",
            refusal.message
        );
    }
}
