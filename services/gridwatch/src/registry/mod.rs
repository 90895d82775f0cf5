//! The registry as services see it: cached in memory, reloaded when the database says it
//! changed.

pub mod directory;

pub use directory::{MeterDirectory, MeterEntry, SharedDirectory};
