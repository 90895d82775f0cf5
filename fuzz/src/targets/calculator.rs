//! The compliance calculator, under the shipped regulation or under profiles the input brings.
//!
//! An input that is a JSON object is read as the HTTP query's fields (plus `profiles`); any
//! other input is read as raw bit patterns, which reach what JSON cannot spell: NaN, the
//! infinities, negative zero, subnormals.

use std::sync::OnceLock;

use chrono::NaiveDate;
use serde::Deserialize;

use gridwatch_core::calculator::{
    calculate, CalculatorInput, MAX_CONSUMPTION_MWH, MAX_MINED_ASSETS, MAX_MONEY_KZT,
};
use gridwatch_core::regulation::{Regulation, RegulationProfile};

use super::{ensure, fingerprint, shape, Outcome, Violation};

/// The regulation gridwatch ships (`deploy/regulation/kazakhstan.toml`).
fn shipped() -> &'static Regulation {
    #[derive(Deserialize)]
    struct File {
        profiles: Vec<RegulationProfile>,
    }
    static SHIPPED: OnceLock<Regulation> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let file: File = toml::from_str(include_str!("../../../deploy/regulation/kazakhstan.toml"))
            .expect("the shipped regulation parses");
        Regulation::new(file.profiles).expect("the shipped regulation is valid")
    })
}

/// The calculator's query as JSON, with profiles to apply instead of the shipped ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    consumption_mwh: f64,
    revenue_kzt: f64,
    costs_kzt: f64,
    mined_assets: f64,
    #[serde(default)]
    asset_value_kzt: Option<f64>,
    date: String,
    #[serde(default)]
    profiles: Option<Vec<RegulationProfile>>,
}

/// Five numbers, a flag and a day from raw bytes (zero-padded when short).
fn from_bits(input: &[u8]) -> CalculatorInput {
    let mut bytes = [0u8; 48];
    let n = input.len().min(bytes.len());
    bytes[..n].copy_from_slice(&input[..n]);
    let number =
        |i: usize| f64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("eight bytes"));
    let days = i32::from_le_bytes(bytes[40..44].try_into().expect("four bytes"));
    CalculatorInput {
        consumption_mwh: number(0),
        revenue_kzt: number(1),
        costs_kzt: number(2),
        mined_assets: number(3),
        asset_value_kzt: (bytes[44] & 1 == 1).then(|| number(4)),
        // Days from 2000 so that small numbers land on the regime's years.
        date: NaiveDate::from_num_days_from_ce_opt(730_120i32.saturating_add(days % 40_000))
            .unwrap_or(NaiveDate::MIN),
    }
}

/// What every answer the calculator gives must satisfy.
fn check(input: &CalculatorInput, regulation: &Regulation) -> Result<&'static str, Violation> {
    let c = match calculate(input, regulation) {
        Ok(c) => c,
        Err(e) => {
            let known = [
                "consumption_mwh",
                "revenue_kzt",
                "costs_kzt",
                "mined_assets",
                "asset_value_kzt",
                "date",
            ];
            ensure(known.contains(&e.field), || {
                format!("refusal names no input: {e}")
            })?;
            ensure(
                e.field != "date" || regulation.in_force(input.date).is_none(),
                || format!("refused a date that has a profile: {e}"),
            )?;
            return Ok(e.field);
        }
    };
    let within = |v: f64, max: f64| v.is_finite() && (0.0..=max).contains(&v);
    ensure(
        within(input.consumption_mwh, MAX_CONSUMPTION_MWH)
            && within(input.revenue_kzt, MAX_MONEY_KZT)
            && within(input.costs_kzt, MAX_MONEY_KZT)
            && within(input.mined_assets, MAX_MINED_ASSETS)
            && input
                .asset_value_kzt
                .is_none_or(|v| within(v, MAX_MONEY_KZT)),
        || format!("answered an input outside the accepted ranges: {input:?}"),
    )?;
    let profile = regulation
        .in_force(input.date)
        .ok_or_else(|| Violation(format!("answered for {} without a profile", input.date)))?;
    ensure(
        c.profile.name == profile.name && c.purchase_cap_wh == profile.purchase_cap_wh,
        || format!("applied {} instead of {}", c.profile.name, profile.name),
    )?;
    let (wh, cap, needed) = (c.consumption_wh, c.purchase_cap_wh, c.purchases_needed);
    ensure(
        wh >= 0
            && needed >= 0
            && needed.checked_mul(cap).is_some_and(|bought| bought >= wh)
            && (needed == 0
                || (needed - 1)
                    .checked_mul(cap)
                    .is_some_and(|short| short < wh)),
        || format!("{needed} purchases of {cap} Wh for {wh} Wh"),
    )?;
    let floats = [c.profit_kzt, c.profit_tax_kzt, c.aifc_obligation_assets];
    ensure(floats.iter().all(|v| v.is_finite()), || {
        format!("a figure is not finite: {c:?}")
    })?;
    ensure(
        c.profit_tax_kzt >= 0.0 && c.profit_tax_kzt <= c.profit_kzt.max(0.0) + 0.01,
        || {
            format!(
                "profit tax {} on a profit of {}",
                c.profit_tax_kzt, c.profit_kzt
            )
        },
    )?;
    ensure(
        c.aifc_obligation_assets >= 0.0 && c.aifc_obligation_assets <= input.mined_assets + 1e-8,
        || {
            format!(
                "{} of {} assets through the AIFC",
                c.aifc_obligation_assets, input.mined_assets
            )
        },
    )?;
    ensure(
        c.aifc_obligation_kzt.is_some() == input.asset_value_kzt.is_some()
            && c.aifc_obligation_kzt
                .is_none_or(|v| v.is_finite() && v >= 0.0),
        || {
            format!(
                "AIFC value {:?} for a unit value {:?}",
                c.aifc_obligation_kzt, input.asset_value_kzt
            )
        },
    )?;
    serde_json::to_string(&c)
        .map_err(|e| Violation(format!("the answer does not serialise: {e}")))?;
    Ok(if c.profit_kzt < 0.0 { "ok, loss" } else { "ok" })
}

/// The target.
pub fn calculator(input: &[u8]) -> Result<Vec<Outcome>, Violation> {
    outcome(input).map(|o| vec![o])
}

fn outcome(input: &[u8]) -> Result<Outcome, Violation> {
    if input.first() != Some(&b'{') {
        return check(&from_bits(input), shipped()).map(|o| fingerprint(["bits", o]));
    }
    let query: Query = match serde_json::from_slice(input) {
        Ok(q) => q,
        Err(e) => return Ok(fingerprint(["unparsed", shape(&e.to_string())])),
    };
    // The HTTP API refuses a malformed date before calling the calculator; so does this.
    let Ok(date) = NaiveDate::parse_from_str(&query.date, "%Y-%m-%d") else {
        return Ok(fingerprint(["bad date"]));
    };
    let custom;
    let regulation = match query.profiles {
        None => shipped(),
        Some(profiles) => match Regulation::new(profiles) {
            Ok(r) => {
                custom = r;
                &custom
            }
            Err(e) => return Ok(fingerprint(["profiles refused", shape(&e.message)])),
        },
    };
    let input = CalculatorInput {
        consumption_mwh: query.consumption_mwh,
        revenue_kzt: query.revenue_kzt,
        costs_kzt: query.costs_kzt,
        mined_assets: query.mined_assets,
        asset_value_kzt: query.asset_value_kzt,
        date,
    };
    check(&input, regulation).map(|o| fingerprint(["json", o]))
}
