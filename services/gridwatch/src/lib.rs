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
//! - [`anomalies`]: anomaly identifiers, their creation with a first history entry, their life
//!   cycle and queries.
//! - [`audit`]: `gridwatch audit verify`, the proof that the anomaly history was not tampered with.
//! - [`localbroker`]: a Mosquitto started from the shipped configuration (demo, benchmarks, tests).
//! - [`services`]: starting ingest, the detector and the API in one process.
//! - [`simulate`]: feeding a simulated grid to gridwatch over MQTT.
//! - [`demo`]: the East Kazakhstan case end to end, in one process.
//! - [`metrics`], [`telemetry`], [`shutdown`]: what every service shares.
//! - [`bench`]: benchmarks that print figures.

pub mod anomalies;
pub mod api;
pub mod audit;
pub mod bench;
pub mod config;
pub mod db;
pub mod demo;
pub mod detector;
pub mod http;
pub mod ingest;
pub mod ledger;
pub mod localbroker;
pub mod metrics;
pub mod mqtt;
pub mod registry;
pub mod services;
pub mod shutdown;
pub mod simulate;
pub mod telemetry;
