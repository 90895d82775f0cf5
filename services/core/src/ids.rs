//! Identifiers: strings matching `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
//!
//! They are MQTT topic levels, so they may contain neither `/`, `+` nor `#`; a value of one of
//! these types is known to be valid.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest identifier, in bytes (all allowed characters are ASCII).
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("identifier is empty")]
    Empty,
    /// The string is longer than [`MAX_ID_LEN`].
    #[error("identifier is longer than {MAX_ID_LEN} characters")]
    TooLong,
    /// The first character is not a letter or a digit.
    #[error("identifier must start with a letter or a digit")]
    BadStart,
    /// A character outside `A-Z a-z 0-9 . _ -`.
    #[error("identifier may contain only letters, digits, '.', '_' and '-'")]
    BadCharacter,
}

/// Checks `s` against the contract's identifier pattern.
pub fn check_identifier(s: &str) -> Result<(), IdError> {
    let bytes = s.as_bytes();
    let first = *bytes.first().ok_or(IdError::Empty)?;
    if bytes.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !first.is_ascii_alphanumeric() {
        return Err(IdError::BadStart);
    }
    if bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(IdError::BadCharacter)
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Box<str>);

        impl $name {
            /// Parses an identifier, refusing anything outside the contract's pattern.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_identifier(s)?;
                Ok(Self(s.into()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Self::parse(&text).map_err(|e| {
                    serde::de::Error::custom(format_args!("invalid identifier {text:?}: {e}"))
                })
            }
        }
    };
}

identifier!(
    /// A meter, as registered and as named in its MQTT topic.
    MeterId
);
identifier!(
    /// A node of the grid tree (substation, feeder, transformer, ...).
    NodeId
);
identifier!(
    /// A region: the unit that carries a tariff and the 70/30 mining share.
    RegionId
);
identifier!(
    /// A mining licence.
    LicenceId
);
identifier!(
    /// A data concentrator that uploads many meters' readings at once.
    GatewayId
);
identifier!(
    /// An energy purchase on the market platform.
    PurchaseId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_examples_are_identifiers() {
        for ok in ["EK-SUB-01", "M-000001", "KZ-MIN-042", "a", "0.x_y-z"] {
            assert!(MeterId::parse(ok).is_ok(), "{ok}");
        }
        assert!(MeterId::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn identifiers_outside_the_pattern_are_refused() {
        assert_eq!(MeterId::parse(""), Err(IdError::Empty));
        assert_eq!(MeterId::parse(&"a".repeat(65)), Err(IdError::TooLong));
        assert_eq!(MeterId::parse("-a"), Err(IdError::BadStart));
        assert_eq!(MeterId::parse(".a"), Err(IdError::BadStart));
        for bad in ["a/b", "a+", "a#", "a b", "aé", "a\0"] {
            assert_eq!(MeterId::parse(bad), Err(IdError::BadCharacter), "{bad:?}");
        }
    }

    #[test]
    fn deserializing_checks_the_pattern() {
        let ok: MeterId = serde_json::from_str("\"M-1\"").expect("valid id");
        assert_eq!(ok.as_str(), "M-1");
        assert!(serde_json::from_str::<MeterId>("\"M/1\"").is_err());
    }
}
