//! gridwatch-sim: a deterministic grid simulator (see README.md).
//!
//! It produces what a real distribution grid would send gridwatch (meter readings as CONTRACT §2
//! payloads, purchases as CONTRACT §3 objects, the grid as a CONTRACT §1 registry document)
//! together with the truth behind them, so that the detector can be tested against thefts whose
//! energy is known to the watt-hour. It does no I/O: the `gridwatch simulate` command publishes
//! what it produces.
//!
//! Map of the modules, in the order data flows through them:
//! - [`config`]: every knob of a run, with its default ([`SimConfig`]).
//! - `rng`: one independent random stream per (seed, entity, purpose), so that a scenario that
//!   changes one meter does not shift the randomness of any other ("clean twins").
//! - `calendar`, `weather`, `sun`: local time, day types and holidays, temperature, dusk and dawn.
//! - `loads`: what consumers draw (parametric standard load shapes plus individual behaviour).
//! - `grid`: the tree of substations, feeders and transformers, and its registry document.
//! - `losses`, `lighting`, `flows`: each node's technical losses and unmetered street lighting,
//!   and the per-interval energy balance of the whole tree.
//! - `meters`: what a meter registers (class error, per-reading error, clock skew).
//! - `network`, `payload`: lost, late, duplicated and batched delivery, and the JSON on the wire.
//! - `purchases`: licensed farms buying energy in capped transactions.
//! - [`scenarios`]: the thefts and traps that a run injects ([`Scenario`]).
//! - [`truth`]: what was injected and the true flows, for tests ([`GroundTruth`]).
//! - [`simulation`]: the stepping engine ([`Simulation`]).

mod calendar;
pub mod config;
mod error;
mod flows;
mod grid;
mod lighting;
mod loads;
mod losses;
mod meters;
mod network;
mod payload;
mod purchases;
mod rng;
pub mod scenarios;
pub mod simulation;
mod sun;
pub mod truth;
mod weather;

pub use config::SimConfig;
pub use error::SimError;
pub use loads::{ConsumerKind, ShiftPattern};
pub use purchases::Purchase;
pub use scenarios::Scenario;
pub use simulation::{topic_string, Interval, OutMessage, OutTopic, Simulation};
pub use truth::{GroundTruth, Injection, InjectionKind, IntervalTruth, MeterTruth, NodeTruth};
