//! Property tests of the edge: payload parsing and the compliance calculator.
//!
//! Case counts are moderate (proptest's default, 256) so the binary runs in well under a
//! second; set `PROPTEST_CASES` to search harder locally.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use proptest::prelude::*;
use serde_json::json;

use gridwatch_core::calculator::{calculate, CalculatorInput, MAX_CONSUMPTION_MWH};
use gridwatch_core::reading::{parse_gateway_payload, parse_meter_payload, MAX_POWER_W};
use gridwatch_core::regulation::{Regulation, RegulationProfile};
use gridwatch_core::{MeterId, ReadingBounds, ReasonCode};

fn meter_id() -> impl Strategy<Value = MeterId> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,63}".prop_map(|s| MeterId::parse(&s).expect("matches the pattern"))
}

/// An instant from 1970 to 2100, to the nanosecond.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800, 0u32..1_000_000_000)
        .prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).expect("in range"))
}

/// `ts` as a meter may write it: RFC 3339 in some zone (UTC or an offset within a day).
fn written(ts: DateTime<Utc>, offset_minutes: i32) -> String {
    let zone = FixedOffset::east_opt(offset_minutes * 60).expect("within a day");
    ts.with_timezone(&zone)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn regulation(cap_wh: i64, tax_pct: f64, aifc_pct: f64) -> Regulation {
    Regulation::new(vec![RegulationProfile {
        name: "test".into(),
        effective_from: "2020-01-01".parse().expect("date"),
        purchase_cap_wh: cap_wh,
        profit_tax_pct: tax_pct,
        aifc_share_pct: aifc_pct,
        source: None,
    }])
    .expect("a valid profile")
}

proptest! {
    #[test]
    fn a_valid_reading_round_trips_through_its_payload(
        meter in meter_id(),
        ts in instant(),
        offset_minutes in -1439i32..1440,
        energy_wh in 0i64..=i64::MAX,
        power_w in prop::option::of(-MAX_POWER_W..=MAX_POWER_W),
        names_meter in any::<bool>(),
    ) {
        let mut payload = json!({"ts": written(ts, offset_minutes), "energy_wh": energy_wh});
        if let Some(p) = power_w {
            payload["power_w"] = json!(p);
        }
        if names_meter {
            payload["meter_id"] = json!(meter.as_str());
        }
        let bytes = serde_json::to_vec(&payload).expect("serialisable");
        let reading = parse_meter_payload(&meter, &bytes, &ReadingBounds::unbounded())
            .map_err(|r| TestCaseError::fail(format!("{r:?}")))?;
        prop_assert_eq!(&reading.meter_id, &meter);
        prop_assert_eq!(reading.ts, ts);
        prop_assert_eq!(reading.energy_wh, energy_wh);
        prop_assert_eq!(reading.power_w, power_w.map(|p| p as f32));
    }

    #[test]
    fn a_negative_register_is_always_negative_energy(
        meter in meter_id(),
        ts in instant(),
        energy_wh in i64::MIN..0,
    ) {
        let payload = json!({"ts": written(ts, 0), "energy_wh": energy_wh}).to_string();
        let rejection = parse_meter_payload(&meter, payload.as_bytes(), &ReadingBounds::unbounded())
            .expect_err("a negative register");
        prop_assert_eq!(rejection.reason, ReasonCode::NegativeEnergy);
    }

    #[test]
    fn each_gateway_element_is_judged_alone_and_spans_its_own_text(
        elements in prop::collection::vec(
            prop_oneof![
                (meter_id(), instant(), -5i64..1_000_000).prop_map(|(m, ts, e)| {
                    json!({"meter_id": m.as_str(), "ts": written(ts, 0), "energy_wh": e})
                }),
                (instant(), 0i64..10).prop_map(|(ts, e)| json!({"ts": written(ts, 0), "energy_wh": e})),
                any::<i32>().prop_map(|n| json!(n)),
                "[a-z ]{0,8}".prop_map(|s| json!(s)),
                Just(json!({"meter_id": "M-1", "ts": "yesterday", "energy_wh": 1})),
            ],
            0..12,
        ),
    ) {
        let texts: Vec<String> = elements.iter().map(|e| e.to_string()).collect();
        let payload = format!("[ {} ]", texts.join(" , "));
        let parsed = parse_gateway_payload(payload.as_bytes(), 10_000, &ReadingBounds::unbounded())
            .map_err(|r| TestCaseError::fail(format!("{r:?}")))?;
        prop_assert_eq!(parsed.len(), texts.len());
        for (element, text) in parsed.iter().zip(&texts) {
            prop_assert_eq!(&payload[element.span.clone()], text.as_str());
            let alone = parse_gateway_payload(
                format!("[{text}]").as_bytes(),
                1,
                &ReadingBounds::unbounded(),
            )
            .map_err(|r| TestCaseError::fail(format!("{r:?}")))?;
            prop_assert_eq!(&alone[0].result, &element.result);
            if let Ok(reading) = &element.result {
                prop_assert!(reading.energy_wh >= 0);
            }
        }
    }

    #[test]
    fn purchases_are_the_consumption_over_the_cap_rounded_up(
        consumption_mwh in 0.0..=MAX_CONSUMPTION_MWH,
        cap_wh in prop_oneof![Just(1_000_000i64), 1i64..=1_000_000_000_000],
        revenue_kzt in 0.0..1e12f64,
        costs_kzt in 0.0..1e12f64,
        mined_assets in 0.0..1e6f64,
        tax_pct in 0.0..=100.0f64,
        aifc_pct in 0.0..=100.0f64,
    ) {
        let input = CalculatorInput {
            consumption_mwh,
            revenue_kzt,
            costs_kzt,
            mined_assets,
            asset_value_kzt: Some(1e6),
            date: "2025-10-01".parse().expect("date"),
        };
        let c = calculate(&input, &regulation(cap_wh, tax_pct, aifc_pct))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let wh = c.consumption_wh;
        prop_assert!((wh as f64 - consumption_mwh * 1e6).abs() <= 0.5 + 1e-3);
        prop_assert!(c.purchases_needed >= 0);
        prop_assert!(c.purchases_needed * cap_wh >= wh, "{} x {} < {}", c.purchases_needed, cap_wh, wh);
        prop_assert!((c.purchases_needed - 1) * cap_wh < wh || c.purchases_needed == 0);
        prop_assert!(c.profit_tax_kzt >= 0.0);
        prop_assert!(c.profit_tax_kzt <= c.profit_kzt.max(0.0) + 0.005);
        prop_assert!(c.aifc_obligation_assets >= 0.0);
        prop_assert!(c.aifc_obligation_assets <= mined_assets + 1e-8);
    }

    #[test]
    fn more_consumption_never_needs_fewer_purchases(
        a in 0.0..=MAX_CONSUMPTION_MWH,
        b in 0.0..=MAX_CONSUMPTION_MWH,
        cap_wh in 1i64..=10_000_000_000,
    ) {
        let regulation = regulation(cap_wh, 15.0, 75.0);
        let needed = |mwh: f64| {
            let input = CalculatorInput {
                consumption_mwh: mwh,
                revenue_kzt: 0.0,
                costs_kzt: 0.0,
                mined_assets: 0.0,
                asset_value_kzt: None,
                date: "2025-10-01".parse().expect("date"),
            };
            calculate(&input, &regulation)
                .map(|c| c.purchases_needed)
                .expect("a valid input")
        };
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(needed(low) <= needed(high));
    }
}
