//! Fuzzing gridwatch's edges on stable Rust (cargo-fuzz needs nightly and libFuzzer).
//!
//! - [`targets`]: what is fuzzed: the meter and gateway payload parsers, the registry
//!   validator (and the topology the detector builds from a valid registry), the compliance
//!   calculator; each checks the invariants that must hold whatever the input.
//! - [`mutate`]: how inputs are made from the corpus: byte-level, JSON-aware and structural
//!   mutations.
//! - [`runner`]: a campaign: seeds, then mutations until a time or execution budget is spent,
//!   catching panics and keeping crashing inputs.
//! - [`rng`]: the seeded generator that makes a campaign replayable.
//!
//! The corpus is `fuzz/corpus/<target>/`; `scripts/fuzz.sh` runs every target for a bounded
//! time and saves crashing inputs under `fuzz/crashes/<target>/`.

pub mod mutate;
pub mod rng;
pub mod runner;
pub mod targets;

use std::path::{Path, PathBuf};

pub use runner::{run, Budget, Crash, CrashKind, Options, Report};
pub use targets::Target;

/// The committed corpus, `fuzz/corpus/`.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// The seeds of `target` under `dir`, in file-name order (none when its folder is missing).
///
/// # Errors
/// When the folder exists but cannot be read.
pub fn load_corpus(dir: &Path, target: Target) -> std::io::Result<Vec<Vec<u8>>> {
    let folder = dir.join(target.name());
    if !folder.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.is_file());
    paths.sort();
    paths.iter().map(std::fs::read).collect()
}
