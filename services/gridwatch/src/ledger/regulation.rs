//! Loading the regulation profiles: the operator's file, or the shipped Kazakhstan profiles
//! built into the binary.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use gridwatch_core::regulation::{Regulation, RegulationProfile};

/// The shipped profiles (`deploy/regulation/kazakhstan.toml`).
pub const SHIPPED: &str = include_str!("../../../../deploy/regulation/kazakhstan.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    profiles: Vec<RegulationProfile>,
}

/// Parses a profiles file's text.
pub fn parse(text: &str) -> anyhow::Result<Regulation> {
    let file: ProfilesFile = toml::from_str(text).context("Failed to parse regulation profiles")?;
    Ok(Regulation::new(file.profiles)?)
}

/// The profiles of `file`, or the shipped ones when `file` is `None`.
pub fn load(file: Option<&Path>) -> anyhow::Result<Regulation> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("Failed to read the regulation profiles file {path:?} (GRIDWATCH_REGULATION_FILE)")
            })?;
            parse(&text).with_context(|| format!("In the regulation profiles file {path:?}"))
        }
        None => parse(SHIPPED).context("The shipped regulation profiles are invalid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_profiles_hold_the_articles_figures() {
        let regulation = load(None).expect("shipped profiles parse");
        let on = |d: &str| regulation.in_force(d.parse().expect("date")).cloned();
        let p2024 = on("2024-06-01").expect("2024 profile");
        assert_eq!(
            (
                p2024.purchase_cap_wh,
                p2024.profit_tax_pct,
                p2024.aifc_share_pct
            ),
            (1_000_000, 15.0, 50.0)
        );
        let p2025 = on("2025-01-01").expect("2025 profile");
        assert_eq!(
            (
                p2025.purchase_cap_wh,
                p2025.profit_tax_pct,
                p2025.aifc_share_pct
            ),
            (1_000_000, 15.0, 75.0)
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("[[profiles]]\nname = \"x\"\ncap = 1\n").is_err());
    }
}
