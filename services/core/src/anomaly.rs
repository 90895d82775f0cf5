//! The anomaly vocabulary of the contract (docs/CONTRACT.md section 4): kinds, severities and
//! statuses, each defined once here with its spelling. The detector raises [`Kind`]s, the store
//! writes them, the API filters on them and the reports count them; a new kind is added here
//! and in the code that raises it, and the compiler points at every `match` that must learn it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares a closed vocabulary: the enum, `ALL` in order, the contract's spelling of each
/// variant (`as_str`, `NAMES`), parsing and display.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the contract's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// The contract's spelling of every value, in the same order.
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The contract's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses the contract's spelling.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// What an anomaly is about.
    Kind {
        /// A node's balance residual above its learned band.
        Diversion => "diversion",
        /// A licensed farm's metered energy above what it bought.
        QuotaOverrun => "quota_overrun",
        /// Sustained power above a licence's registered machines.
        CapacityExceeded => "capacity_exceeded",
        /// Mining-like consumption on an ordinary connection.
        UnlicensedMining => "unlicensed_mining",
        /// A meter whose own readings show tampering.
        MeterTamper => "meter_tamper",
        /// A purchase above the regulation cap.
        PurchaseOverCap => "purchase_over_cap",
        /// A region's licensed mining above its share of input energy.
        MiningShareExceeded => "mining_share_exceeded",
        /// Too few readings to balance a node.
        DataGap => "data_gap",
        /// Consumers fed from another node than the registry says: `node` gained, the
        /// evidence's `from_node` lost, the suspects moved. Not a theft.
        TopologyChange => "topology_change",
    }
}

vocabulary! {
    /// How much an anomaly matters, least first.
    Severity {
        /// Worth knowing, not worth a visit.
        Info => "info",
        /// Small money at stake.
        Low => "low",
        /// Worth a field visit.
        Medium => "medium",
        /// Large money at stake.
        High => "high",
        /// Act now (pages the on-call staff).
        Critical => "critical",
    }
}

vocabulary! {
    /// Where an anomaly stands in its life cycle, in life-cycle order.
    Status {
        /// Raised, nobody works on it yet.
        Open => "open",
        /// Someone owns it.
        Investigating => "investigating",
        /// The theft (or breach) was confirmed, in the field or on the documents.
        Confirmed => "confirmed",
        /// Not a theft: a meter fault, a missing registry entry, a planned outage...
        Dismissed => "dismissed",
        /// Set by the detector alone: readings that arrived later show the condition never
        /// held. Not open; no auditor's transition leads to or from it (the detector opens it
        /// again if the condition is found after all).
        Withdrawn => "withdrawn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_back_to_its_value_and_serde_agrees() {
        for (k, name) in Kind::ALL.iter().zip(Kind::NAMES) {
            assert_eq!(k.as_str(), *name);
            assert_eq!(Kind::parse(name), Some(*k));
            assert_eq!(
                serde_json::to_string(k).expect("json"),
                format!("\"{name}\"")
            );
        }
        for (s, name) in Severity::ALL.iter().zip(Severity::NAMES) {
            assert_eq!(Severity::parse(name), Some(*s));
        }
        for (s, name) in Status::ALL.iter().zip(Status::NAMES) {
            assert_eq!(Status::parse(name), Some(*s));
            assert_eq!(s.to_string(), *name);
        }
        assert_eq!(Kind::parse("theft"), None);
    }

    #[test]
    fn severities_order_from_info_to_critical() {
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
    }
}
