//! MQTT: broker options from the configuration, and the session that drives the event loop.

pub mod options;
pub mod session;

pub use options::{broker_options, BrokerAddress};
pub use session::{AckHandle, Delivery, HeldBytes, Session};
