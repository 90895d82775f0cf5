//! Property tests of the detection logic: what must hold for every input, not just the
//! examples of the unit tests. Each module states its properties in its test names.
//!
//! Case counts are kept moderate (`CASES`) so the whole binary runs in seconds; set
//! `PROPTEST_CASES` to search harder locally.

mod balance;
mod energy;
mod window;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 256;

/// The proptest configuration shared by every property.
fn config() -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    proptest::test_runner::Config::with_cases(cases)
}
