//! Anomalies (CONTRACT.md section 4): their identifiers and how they are stored.
//!
//! Every way an anomaly comes to exist goes through [`store::create`], which writes the row and
//! its first tamper-evident history entry in the caller's transaction.

pub mod id;
pub mod raise;
pub mod store;

pub use id::new_anomaly_id;
pub use raise::{raise, Raised};
pub use store::{create, Created, NewAnomaly, Severity};
