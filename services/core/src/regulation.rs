//! Dated regulation profiles: the rules of the regime (DOMAIN.md, "The regime") as data.
//!
//! Rules change by date (the AIFC share went from 50 % to 75 % on 1 January 2025), so a rule is
//! never a constant in the logic: it is read from the profile in force on the day it applies to.
//! The shipped profiles are `deploy/regulation/*.toml`; an operator may point gridwatch at their own.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Highest per-transaction cap accepted, in Wh (1 TWh): above is a typing error.
pub const MAX_PURCHASE_CAP_WH: i64 = 1_000_000_000_000;

/// The rules in force from one date until the next profile's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegulationProfile {
    /// A short name shown with every figure computed from it, such as `kz-2025`.
    pub name: String,
    /// The first day (UTC) the profile applies to.
    pub effective_from: NaiveDate,
    /// Largest energy one purchase may carry, in Wh (1 MWh in Kazakhstan).
    pub purchase_cap_wh: i64,
    /// Tax on mining profit, in percent (15).
    pub profit_tax_pct: f64,
    /// Share of mined digital assets to be sold through the AIFC, in percent (50, then 75).
    pub aifc_share_pct: f64,
    /// Where the figures come from, for people.
    #[serde(default)]
    pub source: Option<String>,
}

/// A set of profiles, ordered by date; at most one applies on any day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regulation {
    profiles: Vec<RegulationProfile>,
}

/// Why a set of profiles is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("regulation profile {profile}: {message}")]
pub struct RegulationError {
    /// The profile's name.
    pub profile: String,
    /// What is wrong with it.
    pub message: String,
}

fn percent_ok(value: f64) -> bool {
    value.is_finite() && (0.0..=100.0).contains(&value)
}

impl Regulation {
    /// Checks and orders `profiles`: each needs a name, a cap between 1 Wh and
    /// [`MAX_PURCHASE_CAP_WH`], percentages between 0 and 100, and its own effective date.
    pub fn new(mut profiles: Vec<RegulationProfile>) -> Result<Regulation, RegulationError> {
        let refuse = |p: &RegulationProfile, message: String| RegulationError {
            profile: p.name.clone(),
            message,
        };
        if profiles.is_empty() {
            return Err(RegulationError {
                profile: "(none)".into(),
                message: "at least one profile is needed".into(),
            });
        }
        for p in &profiles {
            if p.name.trim().is_empty() || p.name.len() > 64 {
                return Err(refuse(p, "name must be 1 to 64 characters".into()));
            }
            if p.purchase_cap_wh < 1 || p.purchase_cap_wh > MAX_PURCHASE_CAP_WH {
                return Err(refuse(
                    p,
                    format!(
                        "purchase_cap_wh {} must be between 1 and {MAX_PURCHASE_CAP_WH}",
                        p.purchase_cap_wh
                    ),
                ));
            }
            if !percent_ok(p.profit_tax_pct) || !percent_ok(p.aifc_share_pct) {
                return Err(refuse(
                    p,
                    "profit_tax_pct and aifc_share_pct must be between 0 and 100".into(),
                ));
            }
        }
        profiles.sort_by_key(|p| p.effective_from);
        if let Some(pair) = profiles
            .windows(2)
            .find(|w| w[0].effective_from == w[1].effective_from)
        {
            return Err(refuse(
                &pair[1],
                format!(
                    "takes effect on {}, the same day as {}",
                    pair[1].effective_from, pair[0].name
                ),
            ));
        }
        Ok(Regulation { profiles })
    }

    /// The profile in force on `day`: the latest one that took effect on or before it. `None`
    /// before the first profile (no rule is known for that time).
    pub fn in_force(&self, day: NaiveDate) -> Option<&RegulationProfile> {
        self.profiles.iter().rev().find(|p| p.effective_from <= day)
    }

    /// Every profile, oldest first.
    pub fn profiles(&self) -> &[RegulationProfile] {
        &self.profiles
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The article's figures, as shipped in `deploy/regulation/kazakhstan.toml`.
    pub(crate) fn kazakhstan() -> Regulation {
        let profile = |name: &str, from: &str, aifc: f64| RegulationProfile {
            name: name.into(),
            effective_from: from.parse().expect("date"),
            purchase_cap_wh: 1_000_000,
            profit_tax_pct: 15.0,
            aifc_share_pct: aifc,
            source: None,
        };
        Regulation::new(vec![
            profile("kz-2025", "2025-01-01", 75.0),
            profile("kz-2024", "2024-01-01", 50.0),
        ])
        .expect("valid profiles")
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn the_profile_in_force_is_the_latest_started() {
        let regulation = kazakhstan();
        assert_eq!(regulation.in_force(day("2023-12-31")), None);
        assert_eq!(
            regulation
                .in_force(day("2024-01-01"))
                .map(|p| p.aifc_share_pct),
            Some(50.0)
        );
        assert_eq!(
            regulation
                .in_force(day("2024-12-31"))
                .map(|p| p.name.as_str()),
            Some("kz-2024")
        );
        assert_eq!(
            regulation
                .in_force(day("2025-01-01"))
                .map(|p| p.aifc_share_pct),
            Some(75.0)
        );
        assert_eq!(
            regulation
                .in_force(day("2031-06-01"))
                .map(|p| p.name.as_str()),
            Some("kz-2025")
        );
    }

    #[test]
    fn absurd_profiles_are_refused() {
        let mut profiles = kazakhstan().profiles().to_vec();
        profiles[0].purchase_cap_wh = 0;
        assert!(Regulation::new(profiles).is_err());
        let mut profiles = kazakhstan().profiles().to_vec();
        profiles[1].aifc_share_pct = f64::NAN;
        assert!(Regulation::new(profiles).is_err());
        let mut profiles = kazakhstan().profiles().to_vec();
        profiles[1].effective_from = profiles[0].effective_from;
        assert!(Regulation::new(profiles).is_err());
        assert!(Regulation::new(Vec::new()).is_err());
    }
}
