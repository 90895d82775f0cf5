//! The compliance calculator of the article that opens the story (DOMAIN.md, "The regime"):
//! for a period's consumption, revenue, costs and mined assets, what the regime asks of a farm.
//!
//! - purchase transactions needed: consumption / the per-transaction cap, rounded up;
//! - profit tax: the profile's rate (15 %) of the profit, when there is a profit;
//! - AIFC obligation: the profile's share (75 % from 2025, 50 % before) of the mined assets, and
//!   its value in tenge when a unit value is given.

use chrono::NaiveDate;
use serde::Serialize;

use crate::regulation::Regulation;

/// Largest consumption accepted, in MWh (10 TWh: more than any single farm draws in a year).
pub const MAX_CONSUMPTION_MWH: f64 = 10_000_000.0;
/// Largest amount of money accepted, in tenge (a quadrillion: far above any farm's books).
pub const MAX_MONEY_KZT: f64 = 1e15;
/// Largest number of mined asset units accepted.
pub const MAX_MINED_ASSETS: f64 = 1e12;

/// What the calculator is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct CalculatorInput {
    /// Electricity consumed over the period, in MWh.
    pub consumption_mwh: f64,
    /// Revenue over the period, in tenge.
    pub revenue_kzt: f64,
    /// Costs over the period, in tenge.
    pub costs_kzt: f64,
    /// Digital assets mined over the period, in units of the asset (for example BTC).
    pub mined_assets: f64,
    /// Value of one unit of the asset, in tenge, if known.
    pub asset_value_kzt: Option<f64>,
    /// The day whose rules apply.
    pub date: NaiveDate,
}

/// The profile a figure was computed with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedProfile {
    /// Its name.
    pub name: String,
    /// The day it took effect.
    pub effective_from: NaiveDate,
}

/// What the regime asks for the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compliance {
    /// The consumption, in Wh (rounded to the nearest Wh).
    pub consumption_wh: i64,
    /// The per-transaction cap, in Wh.
    pub purchase_cap_wh: i64,
    /// Purchase transactions needed to buy the consumption: consumption / cap, rounded up.
    pub purchases_needed: i64,
    /// Revenue minus costs, in tenge (negative for a loss).
    pub profit_kzt: f64,
    /// The profit tax rate, in percent.
    pub profit_tax_pct: f64,
    /// Tax on the profit, in tenge (zero for a loss), rounded to the tiyn.
    pub profit_tax_kzt: f64,
    /// The share of mined assets to sell through the AIFC, in percent.
    pub aifc_share_pct: f64,
    /// Asset units to sell through the AIFC.
    pub aifc_obligation_assets: f64,
    /// Their value in tenge, when a unit value was given, rounded to the tiyn.
    pub aifc_obligation_kzt: Option<f64>,
    /// The profile these figures follow.
    pub profile: AppliedProfile,
}

/// Why the calculator refuses an input, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CalculatorError {
    /// The input field at fault (`consumption_mwh`, `date`, ...).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn check(field: &'static str, value: f64, max: f64) -> Result<(), CalculatorError> {
    if !value.is_finite() {
        return Err(CalculatorError {
            field,
            message: format!("{value} is not a finite number"),
        });
    }
    if value < 0.0 {
        return Err(CalculatorError {
            field,
            message: format!("{value} is negative"),
        });
    }
    if value > max {
        return Err(CalculatorError {
            field,
            message: format!("{value} is above the largest accepted value, {max}"),
        });
    }
    Ok(())
}

fn to_tiyn(kzt: f64) -> f64 {
    (kzt * 100.0).round() / 100.0
}

/// Units of an asset are kept to 1e-8 (a satoshi for bitcoin).
fn to_asset_units(units: f64) -> f64 {
    (units * 1e8).round() / 1e8
}

/// Computes what the regime in force on `input.date` asks.
pub fn calculate(
    input: &CalculatorInput,
    regulation: &Regulation,
) -> Result<Compliance, CalculatorError> {
    check(
        "consumption_mwh",
        input.consumption_mwh,
        MAX_CONSUMPTION_MWH,
    )?;
    check("revenue_kzt", input.revenue_kzt, MAX_MONEY_KZT)?;
    check("costs_kzt", input.costs_kzt, MAX_MONEY_KZT)?;
    check("mined_assets", input.mined_assets, MAX_MINED_ASSETS)?;
    if let Some(value) = input.asset_value_kzt {
        check("asset_value_kzt", value, MAX_MONEY_KZT)?;
    }
    let profile = regulation
        .in_force(input.date)
        .ok_or_else(|| CalculatorError {
            field: "date",
            message: format!(
                "no regulation profile is in force on {} (the first takes effect on {})",
                input.date,
                regulation
                    .profiles()
                    .first()
                    .map_or_else(|| "-".to_owned(), |p| p.effective_from.to_string())
            ),
        })?;
    // Whole watt-hours first, so that 3 MWh is 3,000,000 Wh and not 3,000,000.0000000005.
    // At most 1e13 Wh: exact in an f64 and in an i64.
    let consumption_wh = (input.consumption_mwh * 1e6).round() as i64;
    let cap = profile.purchase_cap_wh;
    let purchases_needed = consumption_wh / cap + i64::from(consumption_wh % cap != 0);
    let profit_kzt = to_tiyn(input.revenue_kzt - input.costs_kzt);
    let profit_tax_kzt = to_tiyn(profit_kzt.max(0.0) * profile.profit_tax_pct / 100.0);
    let aifc_obligation_assets =
        to_asset_units(input.mined_assets * profile.aifc_share_pct / 100.0);
    let aifc_obligation_kzt = input
        .asset_value_kzt
        .map(|value| to_tiyn(input.mined_assets * profile.aifc_share_pct / 100.0 * value));
    Ok(Compliance {
        consumption_wh,
        purchase_cap_wh: cap,
        purchases_needed,
        profit_kzt,
        profit_tax_pct: profile.profit_tax_pct,
        profit_tax_kzt,
        aifc_share_pct: profile.aifc_share_pct,
        aifc_obligation_assets,
        aifc_obligation_kzt,
        profile: AppliedProfile {
            name: profile.name.clone(),
            effective_from: profile.effective_from,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regulation::tests::kazakhstan;

    fn input(consumption_mwh: f64, date: &str) -> CalculatorInput {
        CalculatorInput {
            consumption_mwh,
            revenue_kzt: 2_000_000_000.0,
            costs_kzt: 1_400_000_000.0,
            mined_assets: 40.0,
            asset_value_kzt: Some(50_000_000.0),
            date: date.parse().expect("date"),
        }
    }

    #[test]
    fn a_month_of_a_50_mw_farm_in_2025() {
        // 50 MW x 720 h = 36,000 MWh: 36,000 purchases of 1 MWh.
        let c = calculate(&input(36_000.0, "2025-10-01"), &kazakhstan()).expect("valid");
        assert_eq!(c.purchases_needed, 36_000);
        assert_eq!(c.profit_kzt, 600_000_000.0);
        assert_eq!(c.profit_tax_kzt, 90_000_000.0);
        assert_eq!(c.aifc_obligation_assets, 30.0);
        assert_eq!(c.aifc_obligation_kzt, Some(1_500_000_000.0));
        assert_eq!(c.profile.name, "kz-2025");
    }

    #[test]
    fn the_aifc_share_was_half_in_2024() {
        let c = calculate(&input(36_000.0, "2024-10-01"), &kazakhstan()).expect("valid");
        assert_eq!(c.aifc_share_pct, 50.0);
        assert_eq!(c.aifc_obligation_assets, 20.0);
        assert_eq!(c.aifc_obligation_kzt, Some(1_000_000_000.0));
        assert_eq!(c.profile.name, "kz-2024");
    }

    #[test]
    fn purchases_round_up_and_exact_multiples_do_not() {
        let regulation = kazakhstan();
        let needed = |mwh: f64| {
            calculate(&input(mwh, "2025-01-01"), &regulation)
                .expect("valid")
                .purchases_needed
        };
        assert_eq!(needed(0.0), 0);
        assert_eq!(needed(0.000001), 1);
        assert_eq!(needed(1.0), 1);
        assert_eq!(needed(1.000001), 2);
        assert_eq!(needed(3.0), 3);
        assert_eq!(needed(0.1 + 0.2), 1);
        assert_eq!(needed(2.5), 3);
        assert_eq!(needed(MAX_CONSUMPTION_MWH), 10_000_000);
    }

    #[test]
    fn a_loss_pays_no_profit_tax() {
        let mut i = input(10.0, "2025-06-01");
        i.costs_kzt = 3_000_000_000.0;
        let c = calculate(&i, &kazakhstan()).expect("valid");
        assert_eq!(c.profit_kzt, -1_000_000_000.0);
        assert_eq!(c.profit_tax_kzt, 0.0);
    }

    #[test]
    fn negative_nan_infinite_and_absurd_inputs_are_refused() {
        let regulation = kazakhstan();
        let refused = |i: CalculatorInput| calculate(&i, &regulation).expect_err("refused").field;
        assert_eq!(refused(input(-1.0, "2025-01-01")), "consumption_mwh");
        assert_eq!(refused(input(f64::NAN, "2025-01-01")), "consumption_mwh");
        assert_eq!(
            refused(input(f64::INFINITY, "2025-01-01")),
            "consumption_mwh"
        );
        assert_eq!(refused(input(1e8, "2025-01-01")), "consumption_mwh");
        let mut i = input(1.0, "2025-01-01");
        i.revenue_kzt = -5.0;
        assert_eq!(refused(i), "revenue_kzt");
        let mut i = input(1.0, "2025-01-01");
        i.asset_value_kzt = Some(f64::NEG_INFINITY);
        assert_eq!(refused(i), "asset_value_kzt");
        assert_eq!(refused(input(1.0, "2023-06-01")), "date");
    }
}
