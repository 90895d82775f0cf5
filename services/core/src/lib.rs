//! gridwatch's domain, without I/O.
//!
//! - [`ids`]: the identifiers of CONTRACT.md (meters, nodes, regions, licences, gateways), parsed
//!   once at the edge so that every later function can trust them.
//! - [`topic`]: the MQTT topics gridwatch listens on, parsed into what they address.
//! - [`reading`]: a meter reading and the parsers that turn a raw MQTT payload into typed
//!   readings or typed rejections.
//! - [`anomaly`]: the anomaly vocabulary (kinds, severities, statuses), defined once.
//! - [`registry`]: the registry document (grid tree, meters, licences) and its validator.
//! - [`days`]: a region's local days in its time zone (DST-safe).
//! - [`rejection`]: why a payload could not be stored as a reading (the contract's reason codes).
//! - [`regulation`]: the regime's rules as dated profiles (cap, profit tax, AIFC share).
//! - [`calculator`]: the compliance calculator (purchases needed, profit tax, AIFC obligation).
//!
//! Adapters (PostgreSQL, MQTT, HTTP) live in the `gridwatch` crate and call into this one.

pub mod anomaly;
pub mod calculator;
pub mod days;
pub mod ids;
pub mod reading;
pub mod registry;
pub mod regulation;
pub mod rejection;
pub mod topic;

pub use ids::{GatewayId, IdError, LicenceId, MeterId, NodeId, RegionId};
pub use reading::{Reading, ReadingBounds};
pub use rejection::{ReasonCode, Rejection};
pub use topic::Topic;
