//! Safety: who may say what on the broker, and that the data survives what operators do to the
//! database (migrating twice, services starting at once, upgrading, backing up and restoring).
//!
//! - [`acl`]: the shipped Mosquitto configuration and ACL, with a meter's, a gateway's and the
//!   services' credentials, and what ingest makes of what gets through.
//! - [`migrations`]: re-runs, concurrent runs, an upgrade from the previous schema version.
//! - [`backup`]: docs/runbook.md's "Backup and restore", run as written, into a new database and
//!   onto a new server.
//!
//! Each test has its own database(s), broker and directories; all on 127.0.0.1, all bounded in
//! time.

// Not every test crate uses every helper the support module re-exports.
#[allow(unused_imports)]
mod support;

#[path = "safety/acl.rs"]
mod acl;
#[path = "safety/backup.rs"]
mod backup;
#[path = "safety/commands.rs"]
mod commands;
#[path = "safety/fingerprint.rs"]
mod fingerprint;
#[path = "safety/migrations.rs"]
mod migrations;
#[path = "safety/seed.rs"]
mod seed;
