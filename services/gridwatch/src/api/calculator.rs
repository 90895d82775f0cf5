//! `GET /api/v1/calculator`: the compliance calculator ([`gridwatch_core::calculator`]).

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use gridwatch_core::calculator::{calculate, CalculatorInput, Compliance};

use super::error::ApiError;
use super::extract;
use super::AppState;

#[derive(Deserialize)]
struct CalculatorQuery {
    consumption_mwh: f64,
    revenue_kzt: f64,
    costs_kzt: f64,
    mined_assets: f64,
    #[serde(default)]
    asset_value_kzt: Option<String>,
    #[serde(default)]
    date: Option<String>,
}

/// The calculator's answer: the date whose rules applied, and the figures.
#[derive(Debug, Serialize)]
pub struct CalculatorAnswer {
    /// The day whose profile applied (today, UTC, if not asked).
    pub date: NaiveDate,
    /// The figures.
    #[serde(flatten)]
    pub compliance: Compliance,
}

/// Parses `date` (`YYYY-MM-DD`; today in UTC when absent) and an optional number.
pub fn parse_date(date: Option<&str>) -> Result<NaiveDate, String> {
    match date {
        None | Some("") => Ok(chrono::Utc::now().date_naive()),
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|e| format!("date {text:?} must be a day such as 2025-10-01: {e}")),
    }
}

/// `GET /api/v1/calculator?consumption_mwh=&revenue_kzt=&costs_kzt=&mined_assets=&asset_value_kzt=&date=`
pub async fn calculator(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<CalculatorAnswer>, ApiError> {
    let query: CalculatorQuery = extract::query(&uri)?;
    let date = parse_date(query.date.as_deref())
        .map_err(|message| ApiError::unprocessable("invalid_input", message))?;
    let asset_value_kzt = match extract::present(query.asset_value_kzt) {
        None => None,
        Some(text) => Some(text.parse::<f64>().map_err(|e| {
            ApiError::invalid_query(format!("asset_value_kzt {text:?} is not a number: {e}"))
        })?),
    };
    let input = CalculatorInput {
        consumption_mwh: query.consumption_mwh,
        revenue_kzt: query.revenue_kzt,
        costs_kzt: query.costs_kzt,
        mined_assets: query.mined_assets,
        asset_value_kzt,
        date,
    };
    let compliance = calculate(&input, &state.regulation)
        .map_err(|e| ApiError::unprocessable("invalid_input", e.to_string()))?;
    Ok(Json(CalculatorAnswer { date, compliance }))
}

/// `1234567.891` with `decimals` digits as `1,234,567.89`.
fn grouped(value: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut out = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    if value < 0.0 && value.abs() >= 0.5 * 10f64.powi(-(decimals as i32)) {
        out.insert(0, '-');
    }
    out
}

/// The calculator's answer as a table for people (`gridwatch calc`).
pub fn table(input: &CalculatorInput, answer: &CalculatorAnswer) -> String {
    let c = &answer.compliance;
    let mut rows = vec![
        (
            "Regulation profile".to_owned(),
            format!(
                "{} (in force from {}), applied on {}",
                c.profile.name, c.profile.effective_from, answer.date
            ),
        ),
        (
            "Consumption".to_owned(),
            format!("{} MWh", grouped(input.consumption_mwh, 3)),
        ),
        (
            "Purchase cap".to_owned(),
            format!(
                "{} Wh per transaction",
                grouped(c.purchase_cap_wh as f64, 0)
            ),
        ),
        (
            "Purchases needed".to_owned(),
            grouped(c.purchases_needed as f64, 0),
        ),
        (
            "Profit".to_owned(),
            format!("{} KZT", grouped(c.profit_kzt, 2)),
        ),
        (
            format!("Profit tax ({} %)", c.profit_tax_pct),
            format!("{} KZT", grouped(c.profit_tax_kzt, 2)),
        ),
        (
            format!("AIFC obligation ({} %)", c.aifc_share_pct),
            format!("{} units of the mined asset", c.aifc_obligation_assets),
        ),
    ];
    if let Some(value) = c.aifc_obligation_kzt {
        rows.push((
            "AIFC obligation value".to_owned(),
            format!("{} KZT", grouped(value, 2)),
        ));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(grouped(1_234_567.891, 2), "1,234,567.89");
        assert_eq!(grouped(-600_000_000.0, 2), "-600,000,000.00");
        assert_eq!(grouped(999.0, 0), "999");
        assert_eq!(grouped(0.0, 3), "0.000");
    }
}
