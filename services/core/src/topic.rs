//! The MQTT topics gridwatch serves, under a configurable root (default `gridwatch/v1`).

use crate::ids::{GatewayId, IdError, MeterId};

/// The default topic root of CONTRACT.md section 2.
pub const DEFAULT_TOPIC_ROOT: &str = "gridwatch/v1";

/// What a topic addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `<root>/meters/{meter_id}/readings`: one reading object.
    MeterReadings(MeterId),
    /// `<root>/gateways/{gateway_id}/readings`: an array of readings from a data concentrator.
    GatewayReadings(GatewayId),
    /// `<root>/market/purchases`: one energy purchase.
    Purchases,
}

/// Why a topic is not one of gridwatch's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is outside the root or has an unknown shape.
    #[error("topic is not one of gridwatch's topics")]
    Unknown,
    /// The meter or gateway level is not a valid identifier.
    #[error("topic names an invalid identifier: {0}")]
    BadIdentifier(IdError),
}

impl Topic {
    /// Parses `topic` under `root` (without a trailing slash).
    pub fn parse(root: &str, topic: &str) -> Result<Topic, TopicError> {
        let rest = topic
            .strip_prefix(root)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(TopicError::Unknown)?;
        let levels: Vec<&str> = rest.split('/').collect();
        match levels.as_slice() {
            ["meters", id, "readings"] => MeterId::parse(id)
                .map(Topic::MeterReadings)
                .map_err(TopicError::BadIdentifier),
            ["gateways", id, "readings"] => GatewayId::parse(id)
                .map(Topic::GatewayReadings)
                .map_err(TopicError::BadIdentifier),
            ["market", "purchases"] => Ok(Topic::Purchases),
            _ => Err(TopicError::Unknown),
        }
    }

    /// The identifier the topic names (meter or gateway), used as the "source" of rejections.
    pub fn source(&self) -> &str {
        match self {
            Topic::MeterReadings(id) => id.as_str(),
            Topic::GatewayReadings(id) => id.as_str(),
            Topic::Purchases => "market",
        }
    }
}

/// The subscription filters for readings under `root`.
pub fn reading_filters(root: &str) -> [String; 2] {
    [
        format!("{root}/meters/+/readings"),
        format!("{root}/gateways/+/readings"),
    ]
}

/// The subscription filter for purchases under `root`.
pub fn purchase_filter(root: &str) -> String {
    format!("{root}/market/purchases")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_topics_parse() {
        let root = DEFAULT_TOPIC_ROOT;
        assert_eq!(
            Topic::parse(root, "gridwatch/v1/meters/M-1/readings"),
            Ok(Topic::MeterReadings(MeterId::parse("M-1").expect("id")))
        );
        assert_eq!(
            Topic::parse(root, "gridwatch/v1/gateways/GW-7/readings"),
            Ok(Topic::GatewayReadings(
                GatewayId::parse("GW-7").expect("id")
            ))
        );
        assert_eq!(
            Topic::parse(root, "gridwatch/v1/market/purchases"),
            Ok(Topic::Purchases)
        );
    }

    #[test]
    fn foreign_or_malformed_topics_are_refused() {
        let root = DEFAULT_TOPIC_ROOT;
        for t in [
            "gridwatch/v2/meters/M-1/readings",
            "gridwatch/v1meters/M-1/readings",
            "gridwatch/v1/meters/M-1",
            "gridwatch/v1/meters/M-1/readings/x",
        ] {
            assert_eq!(Topic::parse(root, t), Err(TopicError::Unknown), "{t}");
        }
        assert!(matches!(
            Topic::parse(root, "gridwatch/v1/meters/-M/readings"),
            Err(TopicError::BadIdentifier(_))
        ));
    }
}
