//! gridwatch-detect: the detection logic, as pure functions over data the service loads.
//!
//! The service (crate `gridwatch`, module `detector`) reads readings, the registry and the
//! ledger from PostgreSQL, calls into this crate, and writes anomalies. Nothing here does I/O,
//! so every rule is unit-tested on plain data and replaying a month gives the same answer as
//! living through it.
//!
//! - [`window`]: event-time windows aligned to UTC.
//! - [`topology`]: the grid tree indexed for balances.
//! - [`balance`]: a node's input minus what it feeds, per window.
//! - [`loss`]: the residual a node shows when nothing is stolen, learned from its history.
//! - [`diversion`]: the per-window and cumulative tests, and the life of a case.
//! - [`shift`]: topology changes, an equal and opposite shift at two nodes and the meters that
//!   moved.
//! - [`suspects`]: the meters whose reported consumption fell when a residual rose.
//! - [`energy`]: per-meter energy per window from cumulative registers (interpolation across
//!   missed readings, registers running backwards).
//! - [`profile`]: a meter's recent windows, the input of the per-meter analyses.
//! - [`finding`]: what an analysis reports (kind, subject, period, energy, score, evidence).
//! - [`mining`]: unlicensed mining on household and commercial connections.
//! - [`tamper`]: meter tampering seen in a meter's own profile.
//! - [`quota`]: licensed farms' metered energy against the energy they bought.
//! - [`capacity`]: sustained power above a licence's registered machines.
//! - [`share`]: a region's licensed mining share (the 70/30 programme).
//! - [`stats`], [`hourly`], [`spans`]: robust statistics, hourly power and condition spans,
//!   shared by the analyses.

pub mod balance;
pub mod capacity;
pub mod diversion;
pub mod energy;
pub mod finding;
pub mod hourly;
pub mod loss;
pub mod mining;
pub mod profile;
pub mod quota;
pub mod share;
pub mod shift;
pub mod spans;
pub mod stats;
pub mod suspects;
#[cfg(test)]
mod synth;
pub mod tamper;
pub mod topology;
pub mod window;
