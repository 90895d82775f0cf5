//! Anomalies (CONTRACT.md section 4): their identifiers and how they are stored.
//!
//! Every way an anomaly comes to exist goes through [`store::create`], which writes the row and
//! its first tamper-evident history entry in the caller's transaction; [`transition`] moves it
//! through its life cycle the same way, and [`query`] reads anomalies and their histories.

pub mod id;
pub mod query;
pub mod raise;
pub mod store;
pub mod transition;

pub use id::new_anomaly_id;
pub use raise::{raise, Raised};
pub use store::{create, Created, NewAnomaly, Severity};
