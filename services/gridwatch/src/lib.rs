//! gridwatch: smart-meter theft detection. This crate holds the adapters (PostgreSQL, MQTT,
//! HTTP) and the services built from them; the domain itself is in `gridwatch-core`.
//!
//! - [`config`]: the TOML file and `GRIDWATCH_*` environment.
//! - [`db`]: connections, database creation, migrations, partitions.
//! - [`registry`]: the registry as cached by services, and stored (import with history).
//! - [`mqtt`]: broker options and the session that drives the event loop.
//! - [`ingest`]: MQTT readings into PostgreSQL, at least once.
//! - [`detector`]: event-time evaluation of every region, raising anomalies.
//! - [`http`]: the metrics endpoint.
//! - [`api`]: the HTTP API (registry, purchases, calculator, rejections, status, OpenAPI).
//! - [`ledger`]: the quota ledger: purchases over HTTP and MQTT, regulation profiles, bought energy.
//! - [`anomalies`]: anomaly identifiers and their creation with a first history entry.
//! - [`localbroker`]: a Mosquitto started from the shipped configuration (demo, benchmarks, tests).
//! - [`metrics`], [`telemetry`], [`shutdown`]: what every service shares.
//! - [`bench`]: benchmarks that print figures.

pub mod anomalies;
pub mod api;
pub mod bench;
pub mod config;
pub mod db;
pub mod detector;
pub mod http;
pub mod ingest;
pub mod ledger;
pub mod localbroker;
pub mod metrics;
pub mod mqtt;
pub mod registry;
pub mod shutdown;
pub mod telemetry;
