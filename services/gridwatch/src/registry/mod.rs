//! The registry as services see it: cached in memory, reloaded when the database says it
//! changed; and the stored registry itself, read and upserted from documents.

pub mod directory;
pub mod store;

pub use directory::{MeterDirectory, MeterEntry, SharedDirectory};
