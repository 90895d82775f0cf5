//! The anomalies of a run as cases, for comparing two runs of the same simulation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

/// What identifies a case: kind, region, node, meter, licence, start and end.
pub type CaseKey = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

/// Cases with their energies: a case raised twice shows as two energies under one key.
pub type Cases = BTreeMap<CaseKey, Vec<i64>>;

/// The anomalies that stand (withdrawn ones are excluded from both runs alike), by case.
pub async fn cases(client: &Client) -> Cases {
    let rows = client
        .query(
            "SELECT kind, region, node, meter, licence, started_at, ended_at, energy_wh
             FROM anomalies WHERE NOT evidence ? 'withdrawn'",
            &[],
        )
        .await
        .expect("anomalies");
    let mut cases = Cases::new();
    for r in &rows {
        let key = (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
        );
        cases.entry(key).or_default().push(r.get(7));
    }
    cases
}

/// Whether `cases` hold one of `kind`, on `node` and for `licence` where they are given.
pub fn has_case(cases: &Cases, kind: &str, node: Option<&str>, licence: Option<&str>) -> bool {
    cases.keys().any(|k| {
        k.0 == kind
            && (node.is_none() || k.2.as_deref() == node)
            && (licence.is_none() || k.4.as_deref() == licence)
    })
}

/// A case on one line: `diversion east-kz EK-F-001 2025-01-15T00:00:00Z..2025-01-16T00:00:00Z`.
pub fn case_line(key: &CaseKey) -> String {
    let subject = [&key.2, &key.3, &key.4]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let end = key.6.map_or("open".to_owned(), |t| t.to_rfc3339());
    format!(
        "{} {} {subject} {}..{end}",
        key.0,
        key.1.as_deref().unwrap_or("-"),
        key.5.to_rfc3339()
    )
}

/// Cases one per line, each indented.
pub fn case_lines<'a>(keys: impl IntoIterator<Item = &'a CaseKey>) -> String {
    keys.into_iter()
        .map(|k| format!("\n  {}", case_line(k)))
        .collect()
}
