//! gridwatch: smart-meter theft detection. This crate holds the adapters (PostgreSQL, MQTT,
//! HTTP) and the services built from them; the domain itself is in `gridwatch-core`.
//!
//! - [`config`]: the TOML file and `GRIDWATCH_*` environment.
//! - [`db`]: connections, database creation, migrations, partitions.
//! - [`registry`]: the registry as cached by services.
//! - [`mqtt`]: broker options and the session that drives the event loop.
//! - [`ingest`]: MQTT readings into PostgreSQL, at least once.
//! - [`http`]: the metrics endpoint.
//! - [`metrics`], [`telemetry`], [`shutdown`]: what every service shares.
//! - [`bench`]: benchmarks that print figures.

pub mod bench;
pub mod config;
pub mod db;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod mqtt;
pub mod registry;
pub mod shutdown;
pub mod telemetry;
