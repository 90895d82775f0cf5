//! The demo's report: what was found, how fast, and what it would have cost.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use gridwatch_sim::{GroundTruth, InjectionKind};

use crate::simulate::FeedStats;

/// Hours in two years (the East Kazakhstan diversion ran for two).
const TWO_YEARS_H: f64 = 2.0 * 8760.0;

fn kzt(value: f64) -> String {
    let whole = value.round() as i64;
    let digits = whole.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if whole < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Prints the report.
pub async fn print(
    client: &Client,
    truth: &GroundTruth,
    stats: FeedStats,
    elapsed: Duration,
    http: SocketAddr,
) -> anyhow::Result<()> {
    println!(
        "\nPublished {} readings in {} MQTT messages and {} purchases in {:.0} s; whole demo {:.0} s.",
        stats.readings,
        stats.messages,
        stats.purchases,
        stats.elapsed_secs,
        elapsed.as_secs_f64()
    );
    let rows = client
        .query(
            "SELECT a.id, a.kind, a.severity, a.node, a.meter, a.licence, a.started_at, a.ended_at,
                    a.energy_wh, a.loss_kzt, a.suspects, r.tariff_kzt_per_kwh,
                    (SELECT h.snapshot->'evidence'->>'judged_until' FROM anomaly_history h
                     WHERE h.anomaly_id = a.id AND h.action = 'created')
             FROM anomalies a LEFT JOIN regions r ON r.id = a.region
             WHERE a.kind <> 'data_gap' AND NOT a.evidence ? 'withdrawn'
             ORDER BY a.loss_kzt * a.confidence DESC",
            &[],
        )
        .await?;
    let gaps: i64 = client
        .query_one(
            "SELECT count(*) FROM anomalies WHERE kind = 'data_gap'",
            &[],
        )
        .await?
        .get(0);
    println!(
        "\nAnomalies found ({}, by money at stake; {gaps} data gaps not listed):",
        rows.len()
    );
    // Input meter -> its node, to name the feeders behind suspected boundary meters.
    let inputs: std::collections::HashMap<String, String> = client
        .query(
            "SELECT m.id, n.id FROM nodes n JOIN meters m ON m.meter_key = n.input_meter_key",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut diversion_power_w: Option<(f64, f64)> = None;
    for row in &rows {
        let kind: &str = row.get(1);
        let severity: &str = row.get(2);
        let subject = [
            row.get::<_, Option<String>>(3).map(|n| format!("node {n}")),
            row.get::<_, Option<String>>(4)
                .map(|m| format!("meter {m}")),
            row.get::<_, Option<String>>(5)
                .map(|l| format!("licence {l}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        let started: DateTime<Utc> = row.get(6);
        let ended: Option<DateTime<Utc>> = row.get(7);
        let energy: i64 = row.get(8);
        let loss: f64 = row.get(9);
        let suspects: Vec<String> = row.get(10);
        let tariff: Option<f64> = row.get(11);
        // The event time judged up to when the detector first flagged it (its history's
        // `created` entry keeps it).
        let flagged: Option<DateTime<Utc>> = row
            .get::<_, Option<String>>(12)
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        println!("\n  {:<8} {kind:<18} {subject}", severity.to_uppercase());
        println!(
            "           since {}{}, {:.1} MWh, {} KZT",
            when(started),
            ended.map_or(" (ongoing)".into(), |e| format!(" until {}", when(e))),
            energy as f64 / 1e6,
            kzt(loss)
        );
        let injected_kind = match kind {
            "diversion" => Some(InjectionKind::Diversion),
            "unlicensed_mining" => Some(InjectionKind::UnlicensedMining),
            "quota_overrun" => Some(InjectionKind::QuotaOverrun),
            "capacity_exceeded" => Some(InjectionKind::CapacityExceeded),
            "meter_tamper" => Some(InjectionKind::MeterTamper),
            _ => None,
        };
        // The injections this anomaly stands for: same kind, same subject (a diversion an
        // insider hid shows at the node its truth says it is visible at).
        let (node, meter, licence): (Option<String>, Option<String>, Option<String>) =
            (row.get(3), row.get(4), row.get(5));
        let injections: Vec<_> = truth
            .injected
            .iter()
            .filter(|i| Some(i.kind) == injected_kind)
            .filter(|i| {
                let visible_at = i.details.get("visible_at").and_then(|v| v.as_str());
                let node_matches = node.as_deref().is_some_and(|n| {
                    i.node.as_ref().is_some_and(|x| x.to_string() == n) || visible_at == Some(n)
                });
                let meter_matches = meter
                    .as_deref()
                    .is_some_and(|m| i.meter.as_ref().is_some_and(|x| x.to_string() == m));
                let licence_matches = licence
                    .as_deref()
                    .is_some_and(|l| i.licence.as_ref().is_some_and(|x| x.to_string() == l));
                node_matches || meter_matches || licence_matches
            })
            // ... and the same time: a condition over before the injection began, or begun
            // after it ended, is not it.
            .filter(|i| {
                ended.is_none_or(|e| i.started_at < e) && i.ended_at.is_none_or(|e| started < e)
            })
            .collect();
        if injections.is_empty() && injected_kind.is_some() {
            println!("           nothing was injected here: a false alarm of the detector");
        }
        if let Some(onset) = injections.iter().map(|i| i.started_at).min() {
            let true_wh: i64 = injections.iter().map(|i| i.energy_wh).sum();
            println!(
                "           injected at {} ({:.1} MWh true), dated from {}; {}",
                when(onset),
                true_wh as f64 / 1e6,
                when(started),
                match flagged {
                    Some(flagged) => flag_delay(flagged - onset),
                    None => "flagged (when not recorded)".to_string(),
                }
            );
        }
        if !suspects.is_empty() {
            let named: Vec<String> = suspects
                .iter()
                .take(6)
                .map(|s| match inputs.get(s) {
                    Some(node) => format!("{s} (input of {node})"),
                    None => s.clone(),
                })
                .collect();
            println!("           suspects: {}", named.join(", "));
        }
        if kind == "diversion" && diversion_power_w.is_none() {
            let hours = (ended.unwrap_or_else(Utc::now) - started).num_seconds() as f64 / 3600.0;
            let span = truth
                .injected
                .iter()
                .find(|i| i.kind == InjectionKind::Diversion)
                .map(|i| (i.ended_at.unwrap_or(started) - started).num_seconds() as f64 / 3600.0)
                .filter(|h| *h > 0.0)
                .unwrap_or(hours);
            if span > 0.0 {
                diversion_power_w = Some((energy as f64 / span, tariff.unwrap_or(10.3)));
            }
        }
    }
    if let Some((power_w, tariff)) = diversion_power_w {
        let two_years = power_w / 1000.0 * TWO_YEARS_H * tariff;
        println!(
            "\nThe diversion draws {:.1} MW: left alone for two years, it would cost {} KZT \
             ({:.1} billion; the real East Kazakhstan case: about 9 billion over two years).",
            power_w / 1e6,
            kzt(two_years),
            two_years / 1e9
        );
    }
    println!("\nSee it yourself (development tokens: deploy/tokens.dev.toml):");
    println!("  web page   http://{http}/");
    println!("  API        http://{http}/api/v1/anomalies?sort=priority   (Authorization: Bearer dev-viewer-token)");
    println!("  status     http://{http}/api/v1/status");
    println!("  metrics    http://{http}/metrics");
    Ok(())
}

/// How long after its onset a condition was flagged, in event time, in words.
fn flag_delay(delay: chrono::TimeDelta) -> String {
    let minutes = delay.num_minutes();
    if minutes <= 15 {
        "flagged at the end of its first 15-minute window".to_string()
    } else if minutes < 120 {
        format!("flagged {minutes} minutes of event time after onset")
    } else {
        format!(
            "flagged {:.1} hours of event time after onset",
            minutes as f64 / 60.0
        )
    }
}
