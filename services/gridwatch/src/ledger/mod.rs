//! The quota ledger (CONTRACT.md section 3): energy purchases, checked against the regulation
//! profile in force, and the energy a licence bought over any period.
//!
//! One code path for both channels: `POST /api/v1/purchases` and the MQTT topic
//! `<root>/market/purchases` each parse with [`purchase::parse`] and store with
//! [`submit::submit`]; a refusal is recorded by the same functions whichever way it came.

pub mod bought;
pub mod mqtt;
pub mod purchase;
pub mod regulation;
pub mod submit;

pub use bought::bought_energy;
pub use purchase::{parse, PurchaseRequest, Refusal, RefusalCode};
pub use submit::{
    record_unparsed, submit, Channel, PurchaseError, PurchaseOutcome, StoredPurchase, Submission,
};
