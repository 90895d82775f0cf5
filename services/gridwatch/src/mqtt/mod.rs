//! MQTT: broker options from the configuration, the session that drives ingest's event loop,
//! and the publishers the simulator and benchmarks use.

pub mod options;
pub mod publisher;
pub mod session;

pub use options::{broker_options, BrokerAddress};
pub use session::{AckHandle, Delivery, HeldBytes, Session};
