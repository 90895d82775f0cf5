//! Why a payload, or one element of it, could not be stored as a reading.

use std::fmt;

use chrono::{DateTime, Utc};

/// The reason codes of CONTRACT.md section 2, plus those of the purchase topic.
///
/// The string form (`as_str`) is what the rejections store and the HTTP API show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    /// The payload is not JSON (or not UTF-8).
    MalformedJson,
    /// A field is missing, unknown or of the wrong type, or an identifier is malformed.
    InvalidField,
    /// The meter is not in the registry.
    UnknownMeter,
    /// The payload names another meter than its topic.
    TopicMismatch,
    /// `energy_wh` is below zero.
    NegativeEnergy,
    /// `ts` lies outside the accepted range (too old, or in the future beyond clock skew).
    TimestampOutOfRange,
    /// The same meter and timestamp were already stored with another value.
    ConflictingDuplicate,
    /// The message is larger than the payload limit, or a gateway array has too many elements.
    PayloadTooLarge,
    /// The topic is not one gridwatch serves (or names an invalid identifier).
    InvalidTopic,
    /// A purchase names a licence that is not registered.
    UnknownLicence,
    /// A purchase exceeds the regulation's per-transaction cap.
    PurchaseOverCap,
    /// A purchase id was already used with other content.
    ConflictingPurchase,
}

impl ReasonCode {
    /// Every reason code, in a stable order (metrics are pre-registered from this list).
    pub const ALL: [ReasonCode; 12] = [
        ReasonCode::MalformedJson,
        ReasonCode::InvalidField,
        ReasonCode::UnknownMeter,
        ReasonCode::TopicMismatch,
        ReasonCode::NegativeEnergy,
        ReasonCode::TimestampOutOfRange,
        ReasonCode::ConflictingDuplicate,
        ReasonCode::PayloadTooLarge,
        ReasonCode::InvalidTopic,
        ReasonCode::UnknownLicence,
        ReasonCode::PurchaseOverCap,
        ReasonCode::ConflictingPurchase,
    ];

    /// The snake_case code of the contract.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonCode::MalformedJson => "malformed_json",
            ReasonCode::InvalidField => "invalid_field",
            ReasonCode::UnknownMeter => "unknown_meter",
            ReasonCode::TopicMismatch => "topic_mismatch",
            ReasonCode::NegativeEnergy => "negative_energy",
            ReasonCode::TimestampOutOfRange => "timestamp_out_of_range",
            ReasonCode::ConflictingDuplicate => "conflicting_duplicate",
            ReasonCode::PayloadTooLarge => "payload_too_large",
            ReasonCode::InvalidTopic => "invalid_topic",
            ReasonCode::UnknownLicence => "unknown_licence",
            ReasonCode::PurchaseOverCap => "purchase_over_cap",
            ReasonCode::ConflictingPurchase => "conflicting_purchase",
        }
    }

    /// Parses a code written by [`ReasonCode::as_str`].
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payload (or gateway element) that will be kept in the rejections store instead of readings.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Why.
    pub reason: ReasonCode,
    /// A sentence for the operator: which field, what was expected.
    pub detail: String,
    /// The meter the payload names, as written (it may itself be the invalid part).
    pub meter_id: Option<String>,
    /// The reading's timestamp, where it could be parsed.
    pub ts: Option<DateTime<Utc>>,
}

impl Rejection {
    /// A rejection that names no meter and no timestamp.
    pub fn new(reason: ReasonCode, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: storable(detail.into()),
            meter_id: None,
            ts: None,
        }
    }

    /// The same rejection, naming the meter the payload was about.
    pub fn with_meter(mut self, meter_id: Option<&str>) -> Self {
        self.meter_id = meter_id.map(|m| storable(m.to_owned()));
        self
    }

    /// The same rejection, with the reading's timestamp.
    pub fn with_ts(mut self, ts: Option<DateTime<Utc>>) -> Self {
        self.ts = ts;
        self
    }
}

/// `text` with every NUL replaced by U+FFFD. A rejection quotes the payload (an unknown field's
/// name, the meter it names), JSON may spell a NUL (`\u0000`), and PostgreSQL's text columns
/// refuse one: the batch holding such a rejection would fail to commit on every retry.
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_from_the_payload_never_reaches_the_stored_text() {
        let r = Rejection::new(ReasonCode::InvalidField, "unknown field `a\0b`")
            .with_meter(Some("M\0"));
        assert_eq!(r.detail, "unknown field `a\u{FFFD}b`");
        assert_eq!(r.meter_id.as_deref(), Some("M\u{FFFD}"));
    }

    #[test]
    fn every_code_round_trips() {
        for code in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ReasonCode::parse("nope"), None);
    }
}
