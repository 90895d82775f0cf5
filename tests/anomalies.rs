//! The auditors' side through real HTTP against the real PostgreSQL (a database per test):
//! anomaly filters and pages, CSV, the life cycle and its roles, evidence as JSON and SVG, the
//! tamper-evident history with `gridwatch audit verify`, and the least-privilege roles.

// Not every test crate uses every helper the support module re-exports.
#[allow(unused_imports)]
mod support;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use gridwatch::anomalies::{create, NewAnomaly, Severity};
use gridwatch::audit::{self, BreakKind, ExpectedHead};
use support::api::{ApiServer, Response, ADMIN, INVESTIGATOR, MARKET, VIEWER};
use support::TestDb;

const REGISTRY: &str = r#"{
  "regions":  [{"id": "east-kz", "name": "East Kazakhstan", "tariff_kzt_per_kwh": 10.3},
               {"id": "north-kz", "name": "North Kazakhstan", "tariff_kzt_per_kwh": 9.8}],
  "nodes":    [{"id": "EK-SUB-01", "parent": null, "region": "east-kz", "kind": "substation", "input_meter": "EK-SUB-01-IN"},
               {"id": "EK-F-001", "parent": "EK-SUB-01", "region": "east-kz", "kind": "feeder", "input_meter": "EK-F-001-IN"},
               {"id": "NK-F-001", "parent": null, "region": "north-kz", "kind": "feeder"}],
  "meters":   [{"id": "EK-SUB-01-IN", "node": "EK-SUB-01", "role": "input", "class": "boundary", "accuracy_pct": 0.5},
               {"id": "EK-F-001-IN", "node": "EK-F-001", "role": "input", "class": "boundary", "accuracy_pct": 0.5},
               {"id": "M-000017", "node": "EK-F-001", "role": "consumer", "class": "household", "accuracy_pct": 1.0},
               {"id": "FARM-042", "node": "EK-F-001", "role": "consumer", "class": "mining", "accuracy_pct": 0.5, "licence": "KZ-MIN-042"}],
  "licences": [{"id": "KZ-MIN-042", "holder": "Qazaq Hash LLP", "pool": "pool-3", "registered_machines": 1200, "machine_rated_w": 3250}]
}"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

/// An anomaly with defaults a test overrides.
fn anomaly(kind: &str, key: &str) -> NewAnomaly {
    NewAnomaly {
        kind: gridwatch::anomalies::store::Kind::parse(kind).expect("a contract kind"),
        condition_key: key.into(),
        region: Some("east-kz".into()),
        node: None,
        meter: None,
        licence: None,
        started_at: t("2025-10-01T00:00:00Z"),
        ended_at: None,
        detected_at: t("2025-10-01T00:30:00Z"),
        energy_wh: 1_000_000,
        loss_kzt: 10_300.0,
        score: 5.0,
        confidence: 0.5,
        severity: Severity::Medium,
        suspects: Vec::new(),
        evidence: json!({"summary": format!("{kind} {key}")}),
    }
}

/// Creates the anomalies through `store::create`, in one transaction; returns their ids.
async fn create_all(db: &TestDb, anomalies: &[NewAnomaly]) -> Vec<String> {
    let mut client = db.client().await;
    let tx = client.transaction().await.expect("transaction");
    let mut ids = Vec::new();
    for a in anomalies {
        ids.push(create(&tx, a, "detector").await.expect("created").id);
    }
    tx.commit().await.expect("commit");
    ids
}

async fn started() -> (TestDb, ApiServer) {
    let db = TestDb::migrated().await;
    let api = ApiServer::start(&db).await;
    let r = api
        .put_json("/api/v1/registry", Some(ADMIN), REGISTRY)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    (db, api)
}

async fn move_to(api: &ApiServer, id: &str, to: &str, note: Option<&str>) -> Response {
    api.post_json(
        &format!("/api/v1/anomalies/{id}/transitions"),
        Some(INVESTIGATOR),
        &json!({"to": to, "note": note}).to_string(),
    )
    .await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Listing

/// Eight anomalies of every shape, three of them moved on through the API.
async fn varied(db: &TestDb, api: &ApiServer) -> HashMap<&'static str, String> {
    let specs: Vec<(&str, NewAnomaly)> = vec![
        (
            "A",
            NewAnomaly {
                node: Some("EK-F-001".into()),
                severity: Severity::Critical,
                loss_kzt: 515_123.6,
                confidence: 0.9,
                detected_at: t("2025-10-01T00:31:02Z"),
                suspects: vec!["M-000017".into()],
                ..anomaly("diversion", "A")
            },
        ),
        (
            "B",
            NewAnomaly {
                node: Some("EK-F-002".into()),
                severity: Severity::High,
                loss_kzt: 900_000.0,
                confidence: 0.2,
                started_at: t("2025-09-25T00:00:00Z"),
                ended_at: Some(t("2025-09-26T00:00:00Z")),
                detected_at: t("2025-09-25T01:00:00Z"),
                ..anomaly("diversion", "B")
            },
        ),
        (
            "C",
            NewAnomaly {
                node: Some("EK-F-001".into()),
                meter: Some("M-000017".into()),
                severity: Severity::High,
                started_at: t("2025-10-02T00:00:00Z"),
                ended_at: Some(t("2025-10-03T00:00:00Z")),
                detected_at: t("2025-10-02T02:00:00Z"),
                loss_kzt: 50_000.0,
                confidence: 0.8,
                suspects: vec!["M-000017".into()],
                ..anomaly("unlicensed_mining", "C")
            },
        ),
        (
            "D",
            NewAnomaly {
                licence: Some("KZ-MIN-042".into()),
                started_at: t("2025-09-20T00:00:00Z"),
                ended_at: Some(t("2025-09-21T00:00:00Z")),
                detected_at: t("2025-09-20T03:00:00Z"),
                loss_kzt: 200_000.0,
                confidence: 1.0,
                ..anomaly("quota_overrun", "D")
            },
        ),
        (
            "E",
            NewAnomaly {
                region: Some("north-kz".into()),
                node: Some("NK-F-001".into()),
                severity: Severity::Info,
                loss_kzt: 0.0,
                detected_at: t("2025-10-01T05:00:00Z"),
                ..anomaly("data_gap", "E")
            },
        ),
        (
            "F",
            NewAnomaly {
                region: Some("north-kz".into()),
                meter: Some("M-100001".into()),
                severity: Severity::Low,
                suspects: vec!["M-100001".into()],
                loss_kzt: 1_000.0,
                detected_at: t("2025-10-01T06:00:00Z"),
                ..anomaly("meter_tamper", "F")
            },
        ),
        (
            "G",
            NewAnomaly {
                licence: Some("KZ-MIN-042".into()),
                meter: Some("FARM-042".into()),
                severity: Severity::High,
                loss_kzt: 0.01,
                confidence: 1.0,
                started_at: t("2025-10-01T00:00:00Z"),
                ended_at: Some(t("2025-10-01T01:00:00Z")),
                detected_at: t("2025-10-01T07:00:00Z"),
                ..anomaly("purchase_over_cap", "G")
            },
        ),
        (
            "H",
            NewAnomaly {
                region: Some("north-kz".into()),
                licence: Some("KZ-MIN-007".into()),
                severity: Severity::Critical,
                loss_kzt: 300_000.0,
                confidence: 0.7,
                detected_at: t("2025-10-01T08:00:00Z"),
                ..anomaly("capacity_exceeded", "H")
            },
        ),
    ];
    let created = create_all(
        db,
        &specs.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(),
    )
    .await;
    let by_name: HashMap<&str, String> = specs.iter().map(|(n, _)| *n).zip(created).collect();
    for (name, path) in [
        ("B", &["investigating"][..]),
        ("C", &["investigating", "confirmed"][..]),
        ("F", &["investigating", "dismissed"][..]),
    ] {
        for to in path {
            let r = move_to(api, &by_name[name], to, Some("test")).await;
            assert_eq!(r.status, 200, "{name} -> {to}: {}", r.text());
        }
    }
    by_name
}

#[tokio::test]
async fn every_filter_selects_exactly_its_anomalies() {
    let (db, api) = started().await;
    let n = varied(&db, &api).await;
    let expect =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|k| n[k].clone()).collect() };
    let cases: Vec<(&str, BTreeSet<String>)> = vec![
        ("", expect(&["A", "B", "C", "D", "E", "F", "G", "H"])),
        ("kind=diversion", expect(&["A", "B"])),
        ("kind=diversion,data_gap", expect(&["A", "B", "E"])),
        ("region=north-kz", expect(&["E", "F", "H"])),
        ("node=EK-F-001", expect(&["A", "C"])),
        ("meter=M-000017", expect(&["C"])),
        ("suspect=M-000017", expect(&["A", "C"])),
        ("licence=KZ-MIN-042", expect(&["D", "G"])),
        ("status=open", expect(&["A", "D", "E", "G", "H"])),
        ("status=investigating", expect(&["B"])),
        ("status=confirmed,dismissed", expect(&["C", "F"])),
        ("severity=critical", expect(&["A", "H"])),
        ("severity=high&region=east-kz", expect(&["B", "C", "G"])),
        // Overlap with [started_at, ended_at or now].
        (
            "from=2025-10-02T12:00:00Z",
            expect(&["A", "C", "E", "F", "H"]),
        ),
        ("to=2025-09-30T00:00:00Z", expect(&["B", "D"])),
        (
            "from=2025-09-20T12:00:00Z&to=2025-09-25T12:00:00Z",
            expect(&["B", "D"]),
        ),
        (
            "from=2025-10-01T00:30:00%2B05:00&to=2025-10-01T06:00:00%2B05:00",
            expect(&["A", "E", "F", "G", "H"]),
        ),
        (
            "kind=diversion&status=open&severity=critical&node=EK-F-001",
            expect(&["A"]),
        ),
        ("region=south-kz", expect(&[])),
        ("kind=diversion&node=", expect(&["A", "B"])),
    ];
    for (query, expected) in cases {
        let r = api
            .get(&format!("/api/v1/anomalies?{query}"), Some(VIEWER))
            .await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        let got: BTreeSet<String> = ids(&r.json()).into_iter().collect();
        assert_eq!(got, expected, "{query}");
        let csv = api
            .get(&format!("/api/v1/anomalies.csv?{query}"), Some(VIEWER))
            .await;
        assert_eq!(csv.status, 200, "{query}");
        let rows = parse_csv(&csv.text());
        let got: BTreeSet<String> = rows.iter().skip(1).map(|r| r[0].clone()).collect();
        assert_eq!(got, expected, "csv {query}");
    }
    // Newest first by detection; the work queue by loss x confidence.
    let newest = ids(&api.get("/api/v1/anomalies", Some(VIEWER)).await.json());
    let order: Vec<String> = ["C", "H", "G", "F", "E", "A", "B", "D"]
        .iter()
        .map(|k| n[k].clone())
        .collect();
    assert_eq!(newest, order);
    let page = api
        .get("/api/v1/anomalies?sort=priority", Some(VIEWER))
        .await
        .json();
    let queue = ids(&page);
    let priorities: Vec<f64> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["priority_kzt"].as_f64().expect("priority"))
        .collect();
    assert_eq!(queue[0], n["A"], "515,123.6 x 0.9 is the most at stake");
    assert_eq!(queue[1], n["H"], "300,000 x 0.7 comes next");
    assert!(
        priorities.windows(2).all(|w| w[0] >= w[1]),
        "{priorities:?}"
    );
    api.stop().await;
}

#[tokio::test]
async fn an_anomaly_has_the_contracts_shape_with_its_history() {
    let (db, api) = started().await;
    let n = varied(&db, &api).await;
    let r = api
        .get(&format!("/api/v1/anomalies/{}", n["C"]), Some(VIEWER))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    for key in [
        "id",
        "kind",
        "region",
        "node",
        "meter",
        "licence",
        "started_at",
        "ended_at",
        "detected_at",
        "energy_wh",
        "loss_kzt",
        "score",
        "severity",
        "status",
        "suspects",
        "evidence",
    ] {
        assert!(a.get(key).is_some(), "{key} missing: {a}");
    }
    assert_eq!(a["kind"], "unlicensed_mining");
    assert_eq!(a["licence"], Value::Null);
    assert_eq!(a["started_at"], "2025-10-02T00:00:00Z");
    assert_eq!(a["ended_at"], "2025-10-03T00:00:00Z");
    assert_eq!(a["energy_wh"], 1_000_000);
    assert_eq!(a["status"], "confirmed");
    assert_eq!(a["suspects"], json!(["M-000017"]));
    assert_eq!(a["evidence"]["summary"], "unlicensed_mining C");
    let history = a["history"].as_array().expect("history");
    let steps: Vec<(Value, Value, Value, Value)> = history
        .iter()
        .map(|h| {
            (
                h["actor"].clone(),
                h["action"].clone(),
                h["from"].clone(),
                h["to"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            (
                json!("detector"),
                json!("created"),
                Value::Null,
                json!("open")
            ),
            (
                json!("dev-investigator"),
                json!("transition"),
                json!("open"),
                json!("investigating")
            ),
            (
                json!("dev-investigator"),
                json!("transition"),
                json!("investigating"),
                json!("confirmed")
            ),
        ]
    );
    for h in history {
        for key in ["seq", "at", "actor", "action", "from", "to", "note"] {
            assert!(h.get(key).is_some(), "{key} missing: {h}");
        }
    }
    assert_eq!(history[1]["note"], "test");
    assert_eq!(a["next_statuses"], json!(["open"]));
    // The same item in the list.
    let listed = api
        .get("/api/v1/anomalies?kind=unlicensed_mining", Some(VIEWER))
        .await
        .json();
    let item = &listed["items"][0];
    for key in [
        "id",
        "started_at",
        "energy_wh",
        "loss_kzt",
        "severity",
        "status",
        "suspects",
    ] {
        assert_eq!(item[key], a[key], "{key}");
    }
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Pages

async fn all_pages(
    api: &ApiServer,
    query: &str,
    limit: usize,
    mut between: impl FnMut(usize) -> Option<Vec<NewAnomaly>>,
    db: &TestDb,
) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page_number in 0.. {
        let mut path = format!("/api/v1/anomalies?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = api.get(&path, Some(VIEWER)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let page = r.json();
        let items = page["items"].as_array().expect("items").clone();
        assert!(items.len() <= limit);
        seen.extend(items);
        if let Some(more) = between(page_number) {
            create_all(db, &more).await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen
}

#[tokio::test]
async fn pages_lose_and_repeat_nothing_while_anomalies_arrive() {
    let (db, api) = started().await;
    let base = t("2025-10-01T00:00:00Z");
    // 30 anomalies; detections collide in pairs so that the key breaks ties.
    let first: Vec<NewAnomaly> = (0..30)
        .map(|i| NewAnomaly {
            detected_at: base + Duration::minutes(i / 2),
            loss_kzt: 1000.0 * ((i * 7) % 11) as f64,
            confidence: 0.5,
            ..anomaly("diversion", &format!("first-{i}"))
        })
        .collect();
    let originals: BTreeSet<String> = create_all(&db, &first).await.into_iter().collect();
    for query in ["sort=newest", "sort=priority"] {
        let mut round = 0;
        let seen = all_pages(
            &api,
            query,
            7,
            |page| {
                round += 1;
                // Between pages: newer detections, older ones, and more money at stake.
                Some(vec![
                    NewAnomaly {
                        detected_at: Utc::now(),
                        loss_kzt: 1e9,
                        ..anomaly("diversion", &format!("{query}-new-{page}-{round}"))
                    },
                    NewAnomaly {
                        detected_at: base - Duration::days(1),
                        loss_kzt: 0.0,
                        ..anomaly("diversion", &format!("{query}-old-{page}-{round}"))
                    },
                ])
            },
            &db,
        )
        .await;
        let ids: Vec<String> = seen
            .iter()
            .map(|a| a["id"].as_str().expect("id").to_owned())
            .collect();
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "{query}: an item was repeated");
        assert!(originals.is_subset(&unique), "{query}: an item was lost");
        let key = |a: &Value| -> (DateTime<Utc>, f64) {
            (
                t(a["detected_at"].as_str().expect("t")),
                a["priority_kzt"].as_f64().expect("p"),
            )
        };
        for pair in seen.windows(2) {
            let (a, b) = (key(&pair[0]), key(&pair[1]));
            if query == "sort=newest" {
                assert!(a.0 >= b.0, "{query}: {a:?} before {b:?}");
            } else {
                assert!(a.1 >= b.1, "{query}: {a:?} before {b:?}");
            }
        }
    }
    // A cursor of one order is refused by the other, and garbage is refused.
    let page = api
        .get("/api/v1/anomalies?limit=2", Some(VIEWER))
        .await
        .json();
    let cursor = page["next_cursor"].as_str().expect("more pages");
    let r = api
        .get(
            &format!("/api/v1/anomalies?sort=priority&cursor={cursor}"),
            Some(VIEWER),
        )
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (422, "invalid_cursor"));
    api.stop().await;
}

#[tokio::test]
async fn bad_filters_are_refused_with_422_never_a_server_error() {
    let (_db, api) = started().await;
    for (query, code) in [
        ("kind=theft", "invalid_filter"),
        ("kind=diversion,", "invalid_filter"),
        ("status=closed", "invalid_filter"),
        ("severity=urgent", "invalid_filter"),
        ("from=yesterday", "invalid_filter"),
        ("from=2025-10-01", "invalid_filter"),
        ("to=2025-10-01T00:00:00", "invalid_filter"),
        (
            "from=2025-10-02T00:00:00Z&to=2025-10-01T00:00:00Z",
            "invalid_filter",
        ),
        (
            "node=%27%3B%20DROP%20TABLE%20anomalies%3B%20--",
            "invalid_filter",
        ),
        ("region=%00", "invalid_filter"),
        ("meter=x%2Fy", "invalid_filter"),
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("limit=-1", "invalid_limit"),
        ("limit=1e3", "invalid_limit"),
        ("limit=99999999999999999999", "invalid_limit"),
        ("cursor=bm90LWEtY3Vyc29y", "invalid_cursor"),
        ("cursor=!!!", "invalid_cursor"),
        (
            "cursor=bjE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OjE",
            "invalid_cursor",
        ),
        ("sort=oldest", "invalid_filter"),
        ("colour=red", "invalid_filter"),
        ("kind=diversion&kind=data_gap", "invalid_filter"),
    ] {
        for route in ["/api/v1/anomalies", "/api/v1/anomalies.csv"] {
            if route.ends_with(".csv") && query == "limit=1001" {
                continue; // the export's limit is 100,000
            }
            let r = api.get(&format!("{route}?{query}"), Some(VIEWER)).await;
            assert_eq!(
                (r.status, r.error_code().as_str()),
                (422, code),
                "{route}?{query}: {}",
                r.text()
            );
        }
    }
    // At the limits, accepted.
    for query in [
        "limit=1",
        "limit=1000",
        "from=1970-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
        "cursor=&limit=",
    ] {
        let r = api
            .get(&format!("/api/v1/anomalies?{query}"), Some(VIEWER))
            .await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
    }
    let r = api
        .get("/api/v1/anomalies.csv?limit=100000", Some(VIEWER))
        .await;
    assert_eq!(r.status, 200);
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// CSV

/// An RFC 4180 parser, strict about quotes and CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\n') => panic!("bare LF outside quotes"),
            (false, c) => cell.push(c),
        }
    }
    assert!(
        !quoted && cell.is_empty() && row.is_empty(),
        "unterminated CSV"
    );
    rows
}

#[tokio::test]
async fn csv_export_quotes_fields_and_defuses_formulas() {
    let (db, api) = started().await;
    let hostile = "=HYPERLINK(\"http://evil.example\",\"click\"), then \"more\"\non two lines";
    create_all(
        &db,
        &[
            NewAnomaly {
                evidence: json!({"summary": hostile}),
                suspects: vec!["M-1".into(), "M-2".into()],
                ..anomaly("diversion", "csv-1")
            },
            NewAnomaly {
                evidence: json!({"summary": "+1 tenge"}),
                ..anomaly("meter_tamper", "csv-2")
            },
            NewAnomaly {
                evidence: json!({"summary": "@SUM(A1:A9)"}),
                ..anomaly("meter_tamper", "csv-3")
            },
            NewAnomaly {
                evidence: json!({"summary": "-2+3"}),
                ..anomaly("meter_tamper", "csv-4")
            },
        ],
    )
    .await;
    let r = api.get("/api/v1/anomalies.csv", Some(VIEWER)).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/csv")));
    assert!(r
        .header("content-disposition")
        .is_some_and(|v| v.contains("anomalies.csv")));
    let rows = parse_csv(&r.text());
    assert_eq!(rows[0][0], "id");
    assert_eq!(rows.len(), 5);
    let width = rows[0].len();
    assert!(rows.iter().all(|r| r.len() == width), "ragged rows");
    let summary = rows[0]
        .iter()
        .position(|c| c == "summary")
        .expect("summary column");
    let suspects = rows[0]
        .iter()
        .position(|c| c == "suspects")
        .expect("suspects column");
    let summaries: BTreeSet<String> = rows[1..].iter().map(|r| r[summary].clone()).collect();
    assert!(summaries.contains(&format!("'{hostile}")), "{summaries:?}");
    assert!(
        summaries.contains("'+1 tenge")
            && summaries.contains("'@SUM(A1:A9)")
            && summaries.contains("'-2+3")
    );
    assert!(rows[1..].iter().any(|r| r[suspects] == "M-1 M-2"));
    assert!(rows[1..].iter().all(|r| r[summary].starts_with('\'')));
    // The same filters apply.
    let r = api
        .get(
            "/api/v1/anomalies.csv?kind=meter_tamper&limit=2",
            Some(VIEWER),
        )
        .await;
    assert_eq!(parse_csv(&r.text()).len(), 3);
    assert!(r.header("x-next-cursor").is_some());
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Roles and life cycle

#[tokio::test]
async fn roles_guard_reading_and_transitions() {
    let (db, api) = started().await;
    let id = create_all(&db, &[anomaly("diversion", "roles")])
        .await
        .remove(0);
    let body = json!({"to": "investigating"}).to_string();
    let path = format!("/api/v1/anomalies/{id}/transitions");
    for (token, status) in [(None, 401), (Some(VIEWER), 403), (Some(MARKET), 403)] {
        let r = api.post_json(&path, token, &body).await;
        assert_eq!(r.status, status, "{token:?}");
    }
    for route in [
        "/api/v1/anomalies".to_owned(),
        "/api/v1/anomalies.csv".to_owned(),
        format!("/api/v1/anomalies/{id}"),
        format!("/api/v1/anomalies/{id}/evidence"),
        format!("/api/v1/anomalies/{id}/evidence.svg"),
    ] {
        assert_eq!(api.get(&route, Some(MARKET)).await.status, 403, "{route}");
        assert_eq!(api.get(&route, None).await.status, 401, "{route}");
        assert_eq!(api.get(&route, Some(VIEWER)).await.status, 200, "{route}");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM anomaly_history WHERE action = 'transition'")
            .await,
        0
    );
    let r = api.post_json(&path, Some(ADMIN), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["history"][1]["actor"], "dev-admin");
    api.stop().await;
}

#[tokio::test]
async fn the_life_cycle_follows_its_table_and_records_who_when_and_why() {
    let (db, api) = started().await;
    let id = create_all(&db, &[anomaly("diversion", "cycle")])
        .await
        .remove(0);
    let r = move_to(&api, &id, "confirmed", None).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "invalid_transition")
    );
    let message = r.json()["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(message.contains("from open to confirmed"), "{message}");
    let before = Utc::now();
    let r = move_to(
        &api,
        &id,
        "investigating",
        Some("  driving out on 12 Oct  "),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["status"], "investigating");
    let last = a["history"]
        .as_array()
        .expect("history")
        .last()
        .expect("entry")
        .clone();
    assert_eq!(last["actor"], "dev-investigator");
    assert_eq!(last["note"], "driving out on 12 Oct");
    let at = t(last["at"].as_str().expect("at"));
    assert!(at >= before - Duration::seconds(5) && at <= Utc::now() + Duration::seconds(5));
    // Dismissal and reopening need a note.
    let r = move_to(&api, &id, "dismissed", None).await;
    assert_eq!((r.status, r.error_code().as_str()), (422, "note_required"));
    let r = move_to(&api, &id, "dismissed", Some("   ")).await;
    assert_eq!((r.status, r.error_code().as_str()), (422, "note_required"));
    let r = move_to(&api, &id, "dismissed", Some("meter fault, replaced")).await;
    assert_eq!(r.status, 200);
    for to in ["confirmed", "investigating", "dismissed"] {
        let r = move_to(&api, &id, to, Some("x")).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (409, "invalid_transition"),
            "dismissed -> {to}"
        );
        assert!(r.json()["error"]["message"]
            .as_str()
            .expect("m")
            .contains(&format!("from dismissed to {to}")));
    }
    let r = move_to(&api, &id, "open", None).await;
    assert_eq!((r.status, r.error_code().as_str()), (422, "note_required"));
    let r = move_to(&api, &id, "open", Some("the fault story did not hold")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["next_statuses"], json!(["investigating"]));
    // Bodies that are not a transition.
    let path = format!("/api/v1/anomalies/{id}/transitions");
    for (body, status, code) in [
        ("{", 400, "malformed_json"),
        ("[]", 422, "invalid_field"),
        ("{}", 422, "invalid_field"),
        (r#"{"to": "closed"}"#, 422, "invalid_field"),
        (
            r#"{"to": "investigating", "by": "someone-else"}"#,
            422,
            "invalid_field",
        ),
        (
            r#"{"to": "investigating", "note": 5}"#,
            422,
            "invalid_field",
        ),
        (
            r#"{"to": "investigating", "note": "a\u0000b"}"#,
            422,
            "invalid_field",
        ),
    ] {
        let r = api.post_json(&path, Some(INVESTIGATOR), body).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{body}"
        );
    }
    let long = json!({"to": "investigating", "note": "x".repeat(2001)}).to_string();
    assert_eq!(
        api.post_json(&path, Some(INVESTIGATOR), &long).await.status,
        422
    );
    let r = api
        .send(
            "POST",
            &path,
            Some(INVESTIGATOR),
            Some("text/plain"),
            b"{\"to\": \"investigating\"}",
        )
        .await;
    assert_eq!(r.status, 415);
    // Every successful transition is in the history, in one transaction with the status.
    let steps: Vec<(String, String, Option<String>)> = db
        .client()
        .await
        .query(
            "SELECT from_status, to_status, note FROM anomaly_history
             WHERE anomaly_id = $1 AND action = 'transition' ORDER BY seq",
            &[&id],
        )
        .await
        .expect("history")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        steps,
        vec![
            (
                "open".into(),
                "investigating".into(),
                Some("driving out on 12 Oct".into())
            ),
            (
                "investigating".into(),
                "dismissed".into(),
                Some("meter fault, replaced".into())
            ),
            (
                "dismissed".into(),
                "open".into(),
                Some("the fault story did not hold".into())
            ),
        ]
    );
    let snapshot_status: String = db
        .client()
        .await
        .query_one(
            "SELECT snapshot->>'status' FROM anomaly_history WHERE anomaly_id = $1 ORDER BY seq DESC LIMIT 1",
            &[&id],
        )
        .await
        .expect("last")
        .get(0);
    assert_eq!(snapshot_status, "open");
    api.stop().await;
}

#[tokio::test]
async fn concurrent_transitions_do_not_both_win() {
    let (db, api) = started().await;
    let id = create_all(&db, &[anomaly("diversion", "race")])
        .await
        .remove(0);
    let api = std::sync::Arc::new(api);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (api, id) = (api.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            move_to(&api, &id, "investigating", Some(&format!("claim {i}")))
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(
        db.count("SELECT count(*) FROM anomaly_history WHERE action = 'transition'")
            .await,
        1
    );
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_and_400() {
    let (_db, api) = started().await;
    for path in [
        "/api/v1/anomalies/an_01NOPE0000000000000000000",
        "/api/v1/anomalies/an_01NOPE0000000000000000000/evidence",
        "/api/v1/anomalies/an_01NOPE0000000000000000000/evidence.svg",
    ] {
        let r = api.get(path, Some(VIEWER)).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (404, "not_found"),
            "{path}"
        );
    }
    let r = move_to(&api, "an_01NOPE0000000000000000000", "investigating", None).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    for path in [
        "/api/v1/anomalies/%7Bid%7D",
        "/api/v1/anomalies/a%2Fb/evidence",
        "/api/v1/anomalies/%27%20OR%201=1",
    ] {
        let r = api.get(path, Some(VIEWER)).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "invalid_id"),
            "{path}"
        );
    }
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Evidence

async fn node_key(db: &TestDb, node: &str) -> i32 {
    db.client()
        .await
        .query_one("SELECT node_key FROM nodes WHERE id = $1", &[&node])
        .await
        .expect("node")
        .get(0)
}

/// 48 windows of a feeder from 2025-10-01T00:00Z: balanced for 24, then 50 MW missing.
async fn seed_node_windows(db: &TestDb, node: &str) {
    let key = node_key(db, node).await;
    db.client()
        .await
        .execute(
            "INSERT INTO detector_node_windows (node_key, window_start, input_wh, fed_wh, coverage,
                 expected_wh, sigma_wh, excess_wh, z, in_case, in_gap, model_learned, state)
             SELECT $1, '2025-10-01T00:00:00Z'::timestamptz + i * interval '15 minutes',
                    10200000 + CASE WHEN i >= 24 THEN 12500000 ELSE 0 END, 10000000, 0.98,
                    200000, 20000, CASE WHEN i >= 24 THEN 12500000 ELSE 0 END,
                    CASE WHEN i >= 24 THEN 625 ELSE 0 END, i >= 24, false, true, '{}'
             FROM generate_series(0, 47) AS i",
            &[&key],
        )
        .await
        .expect("node windows");
}

fn diversion() -> NewAnomaly {
    NewAnomaly {
        node: Some("EK-F-001".into()),
        started_at: t("2025-10-01T06:00:00Z"),
        evidence: json!({"summary": "50 MW", "test": {"window_z_threshold": 4.88}}),
        severity: Severity::Critical,
        ..anomaly("diversion", "evidence-diversion")
    }
}

/// Keeps a chart in tests/output/ (ignored by git) for people to look at.
fn save(name: &str, svg: &str) {
    let dir = support::workspace_root().join("tests/output");
    std::fs::create_dir_all(&dir).expect("output dir");
    std::fs::write(dir.join(name), svg).expect("saved");
}

fn svg_texts(svg: &str) -> (roxmltree::Document<'_>, String) {
    let doc = roxmltree::Document::parse(svg)
        .unwrap_or_else(|e| panic!("the SVG is not XML: {e}\n{svg}"));
    let text: String = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n");
    (doc, text)
}

#[tokio::test]
async fn a_diversions_evidence_is_its_nodes_balance_with_the_normal_band() {
    let (db, api) = started().await;
    seed_node_windows(&db, "EK-F-001").await;
    let id = create_all(&db, &[diversion()]).await.remove(0);
    let r = api
        .get(&format!("/api/v1/anomalies/{id}/evidence"), Some(VIEWER))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let e = r.json();
    assert_eq!(e["title"], "Energy went missing on feeder EK-F-001");
    assert_eq!(e["from"], "2025-10-01T00:00:00Z");
    assert_eq!(e["to"], "2025-10-01T12:00:00Z");
    let keys: Vec<Vec<&str>> = e["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| {
            p["series"]
                .as_array()
                .expect("series")
                .iter()
                .map(|s| s["key"].as_str().expect("key"))
                .collect()
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            vec!["input_wh", "fed_wh"],
            vec!["missing_wh", "expected_loss_wh"]
        ]
    );
    let losses = &e["panels"][1];
    assert_eq!(losses["interval_seconds"], 900);
    assert_eq!(losses["series"][0]["points"][30]["value"], 12_700_000.0);
    assert_eq!(losses["series"][0]["points"][3]["value"], 200_000.0);
    let band = &losses["band"]["points"][0];
    assert!((band["high"].as_f64().expect("high") - (200_000.0 + 4.88 * 20_000.0)).abs() < 1e-6);
    assert!((band["low"].as_f64().expect("low") - (200_000.0 - 4.88 * 20_000.0)).abs() < 1e-6);

    for (tz, label) in [
        ("", "UTC+05:00"),
        ("?tz=%2B06:00", "UTC+06:00"),
        ("?tz=+06:00", "UTC+06:00"),
    ] {
        let r = api
            .get(
                &format!("/api/v1/anomalies/{id}/evidence.svg{tz}"),
                Some(VIEWER),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r
            .header("content-type")
            .is_some_and(|v| v.starts_with("image/svg+xml")));
        let svg = r.text();
        let (doc, text) = svg_texts(&svg);
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let lines = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline") || n.has_tag_name("path"))
            .count();
        assert!(lines >= 4, "{lines} lines in {svg}");
        assert!(
            doc.descendants().any(|n| n.has_tag_name("polygon")),
            "the band"
        );
        for needle in [
            "Energy went missing on feeder EK-F-001",
            "Energy in (its input meter)",
            "Energy passed on (customers and lines below)",
            "Missing: energy in minus energy passed on",
            "Normal range of losses",
            "Flagged period",
            "MW (average over each 15 min)",
            &format!("Local time ({label})"),
        ] {
            assert!(
                text.contains(needle),
                "{needle:?} not in the chart's text:\n{text}"
            );
        }
    }
    // Local time: 06:00 UTC is 11:00 at UTC+5.
    let svg = api
        .get(
            &format!("/api/v1/anomalies/{id}/evidence.svg"),
            Some(VIEWER),
        )
        .await
        .text();
    assert!(svg.contains("from 01 Oct 11:00"), "{svg}");
    for bad in ["?tz=Asia/Almaty", "?tz=%2B25:00", "?tz=5", "?colour=red"] {
        let r = api
            .get(
                &format!("/api/v1/anomalies/{id}/evidence.svg{bad}"),
                Some(VIEWER),
            )
            .await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (422, "invalid_filter"),
            "{bad}"
        );
    }
    save("evidence-diversion.svg", &svg);
    api.stop().await;
}

/// Readings every 15 minutes from 2025-10-01T00:00Z: `before` Wh per interval until `onset`,
/// `after` from then on.
async fn seed_readings(db: &TestDb, meter: &str, days: i64, onset: &str, before: i64, after: i64) {
    let client = db.client().await;
    client
        .execute(
            "SELECT gridwatch_ensure_reading_partitions('2025-09-30T00:00:00Z', '2025-10-10T00:00:00Z')",
            &[],
        )
        .await
        .expect("partitions");
    client
        .execute(
            "INSERT INTO readings (ts, energy_wh, meter_key)
             SELECT ts, sum(CASE WHEN ts > $3::timestamptz THEN $5::bigint ELSE $4::bigint END) OVER (ORDER BY ts) - $4,
                    (SELECT meter_key FROM meters WHERE id = $1)
             FROM generate_series('2025-10-01T00:00:00Z'::timestamptz,
                                  '2025-10-01T00:00:00Z'::timestamptz + $2::int * interval '1 day' - interval '15 minutes',
                                  interval '15 minutes') AS ts",
            &[&meter, &(days as i32), &t(onset), &before, &after],
        )
        .await
        .expect("readings");
}

fn series<'a>(e: &'a Value, panel: usize, key: &str) -> &'a Vec<Value> {
    e["panels"][panel]["series"]
        .as_array()
        .expect("series")
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no {key}: {e}"))["points"]
        .as_array()
        .expect("points")
}

fn value_at<'a>(points: &'a [Value], at: &str) -> &'a Value {
    &points
        .iter()
        .find(|p| p["t"] == at)
        .unwrap_or_else(|| panic!("no point at {at}"))["value"]
}

#[tokio::test]
async fn a_meters_evidence_is_its_profile_before_and_after_from_its_register() {
    let (db, api) = started().await;
    seed_readings(&db, "M-000017", 4, "2025-10-03T00:00:00Z", 250, 1250).await;
    let ids = create_all(
        &db,
        &[
            NewAnomaly {
                meter: Some("M-000017".into()),
                started_at: t("2025-10-03T00:00:00Z"),
                ended_at: Some(t("2025-10-04T00:00:00Z")),
                ..anomaly("unlicensed_mining", "evidence-mining")
            },
            NewAnomaly {
                meter: Some("M-000017".into()),
                started_at: t("2025-10-03T00:00:00Z"),
                ..anomaly("meter_tamper", "evidence-tamper")
            },
        ],
    )
    .await;
    let e = api
        .get(
            &format!("/api/v1/anomalies/{}/evidence", ids[0]),
            Some(VIEWER),
        )
        .await
        .json();
    assert_eq!(e["from"], "2025-10-01T00:00:00Z");
    let energy = series(&e, 0, "energy_wh");
    assert_eq!(value_at(energy, "2025-10-01T00:00:00Z"), &json!(1000.0));
    assert_eq!(value_at(energy, "2025-10-02T23:00:00Z"), &json!(1000.0));
    assert_eq!(value_at(energy, "2025-10-03T00:00:00Z"), &json!(5000.0));
    assert_eq!(
        value_at(series(&e, 0, "typical_before_wh"), "2025-10-03T05:00:00Z"),
        &json!(1000.0)
    );
    assert_eq!(e["panels"].as_array().expect("panels").len(), 1);
    let tamper = api
        .get(
            &format!("/api/v1/anomalies/{}/evidence", ids[1]),
            Some(VIEWER),
        )
        .await
        .json();
    assert_eq!(tamper["panels"][1]["quantity"], "register");
    assert_eq!(
        value_at(series(&tamper, 1, "register_wh"), "2025-10-01T00:00:00Z"),
        &json!(750.0)
    );
    for (id, name) in ids.iter().zip(["mining", "tamper"]) {
        let svg = api
            .get(
                &format!("/api/v1/anomalies/{id}/evidence.svg"),
                Some(VIEWER),
            )
            .await
            .text();
        save(&format!("evidence-{name}.svg"), &svg);
        let (_, text) = svg_texts(&svg);
        assert!(
            text.contains("Electricity used") && text.contains("kWh per hour"),
            "{text}"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn a_farms_evidence_is_metered_against_bought_energy() {
    let (db, api) = started().await;
    // 4 MW for two days; 1 MWh bought for each hour of the first day only.
    seed_readings(
        &db,
        "FARM-042",
        2,
        "2025-10-01T00:00:00Z",
        1_000_000,
        1_000_000,
    )
    .await;
    db.client()
        .await
        .execute(
            "INSERT INTO purchases (id, licence_key, energy_wh, delivery_start, delivery_end,
                 price_kzt, profile, cap_wh, channel, submitted_by)
             SELECT 'P-' || h, (SELECT licence_key FROM licences WHERE id = 'KZ-MIN-042'), 1000000,
                    '2025-10-01T00:00:00Z'::timestamptz + h * interval '1 hour',
                    '2025-10-01T00:00:00Z'::timestamptz + (h + 1) * interval '1 hour',
                    10300, 'kz-2025', 1000000, 'http', 'test'
             FROM generate_series(0, 23) AS h",
            &[],
        )
        .await
        .expect("purchases");
    let ids = create_all(
        &db,
        &[
            NewAnomaly {
                licence: Some("KZ-MIN-042".into()),
                started_at: t("2025-10-02T00:00:00Z"),
                ended_at: Some(t("2025-10-02T12:00:00Z")),
                ..anomaly("quota_overrun", "evidence-quota")
            },
            NewAnomaly {
                licence: Some("KZ-MIN-042".into()),
                meter: Some("FARM-042".into()),
                started_at: t("2025-10-01T10:00:00Z"),
                ended_at: Some(t("2025-10-01T11:00:00Z")),
                evidence: json!({"attempt": {"energy_wh": 2_000_000, "delivery_start": "2025-10-01T10:00:00Z", "delivery_end": "2025-10-01T11:00:00Z"}}),
                ..anomaly("purchase_over_cap", "evidence-cap")
            },
        ],
    )
    .await;
    let e = api
        .get(
            &format!("/api/v1/anomalies/{}/evidence", ids[0]),
            Some(VIEWER),
        )
        .await
        .json();
    assert_eq!(
        e["title"],
        "Mining farm KZ-MIN-042 used more electricity than it bought"
    );
    let panel_title = e["panels"][0]["title"].as_str().expect("title");
    assert!(panel_title.contains("Qazaq Hash LLP"), "{panel_title}");
    assert_eq!(
        value_at(series(&e, 0, "metered_wh"), "2025-10-01T05:00:00Z"),
        &json!(4_000_000.0)
    );
    assert_eq!(
        value_at(series(&e, 0, "bought_wh"), "2025-10-01T05:00:00Z"),
        &json!(1_000_000.0)
    );
    assert_eq!(
        value_at(series(&e, 0, "bought_wh"), "2025-10-02T05:00:00Z"),
        &json!(0.0)
    );
    assert_eq!(
        value_at(series(&e, 0, "capacity_wh"), "2025-10-02T05:00:00Z"),
        &json!(3_900_000.0)
    );
    let cap = api
        .get(
            &format!("/api/v1/anomalies/{}/evidence", ids[1]),
            Some(VIEWER),
        )
        .await
        .json();
    assert_eq!(
        value_at(series(&cap, 0, "refused_wh"), "2025-10-01T10:00:00Z"),
        &json!(2_000_000.0)
    );
    let svg = api
        .get(
            &format!("/api/v1/anomalies/{}/evidence.svg", ids[0]),
            Some(VIEWER),
        )
        .await
        .text();
    save("evidence-quota.svg", &svg);
    let (_, text) = svg_texts(&svg);
    for needle in [
        "Electricity used (its meters)",
        "Electricity bought (its purchases)",
        "MW (average over each hour)",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    api.stop().await;
}

#[tokio::test]
async fn evidence_whose_data_is_gone_is_empty_not_an_error() {
    let (db, api) = started().await;
    let ids = create_all(
        &db,
        &[
            NewAnomaly {
                node: Some("EK-GONE".into()),
                ..anomaly("diversion", "gone-1")
            },
            NewAnomaly {
                node: Some("EK-F-001".into()),
                ..anomaly("data_gap", "gone-2")
            },
            NewAnomaly {
                meter: Some("M-GONE".into()),
                ..anomaly("unlicensed_mining", "gone-3")
            },
            NewAnomaly {
                licence: Some("KZ-GONE".into()),
                ..anomaly("quota_overrun", "gone-4")
            },
            NewAnomaly {
                meter: None,
                ..anomaly("meter_tamper", "gone-5")
            },
            anomaly("mining_share_exceeded", "gone-6"),
        ],
    )
    .await;
    for id in &ids {
        let r = api
            .get(&format!("/api/v1/anomalies/{id}/evidence"), Some(VIEWER))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let e = r.json();
        for panel in e["panels"].as_array().expect("panels") {
            for s in panel["series"].as_array().expect("series") {
                assert!(
                    s["points"]
                        .as_array()
                        .expect("points")
                        .iter()
                        .all(|p| p["value"].is_null()),
                    "{e}"
                );
            }
        }
        let r = api
            .get(
                &format!("/api/v1/anomalies/{id}/evidence.svg"),
                Some(VIEWER),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        svg_texts(&r.text());
    }
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The tamper-evident history

/// A chain of 12 entries: four anomalies, each created, two moved on twice.
async fn chain(db: &TestDb, api: &ApiServer) -> Vec<String> {
    let ids = create_all(
        db,
        &(0..4)
            .map(|i| anomaly("diversion", &format!("chain-{i}")))
            .collect::<Vec<_>>(),
    )
    .await;
    for id in &ids[..2] {
        assert_eq!(
            move_to(api, id, "investigating", Some("on it"))
                .await
                .status,
            200
        );
        assert_eq!(
            move_to(api, id, "dismissed", Some("meter fault"))
                .await
                .status,
            200
        );
    }
    ids
}

async fn superuser(db: &TestDb) -> tokio_postgres::Client {
    let client = db.client().await;
    client
        .batch_execute("ALTER TABLE anomaly_history DISABLE TRIGGER USER")
        .await
        .expect("a superuser can disable the append-only trigger");
    client
}

async fn verify(db: &TestDb, head: Option<&str>) -> audit::Report {
    let mut client = db.client().await;
    audit::verify(
        &mut client,
        head.map(|h| audit::parse_hash(h).expect("hex")),
    )
    .await
    .expect("verify runs")
}

fn broken_at(report: &audit::Report) -> (BreakKind, i64) {
    let b = report
        .first_break
        .as_ref()
        .unwrap_or_else(|| panic!("no break found:\n{report}"));
    (b.kind, b.entry.seq)
}

async fn seqs(client: &tokio_postgres::Client) -> Vec<i64> {
    client
        .query("SELECT seq FROM anomaly_history ORDER BY seq", &[])
        .await
        .expect("seqs")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn audit_verify_names_the_entry_altered_removed_reordered_or_forged() {
    let (db, api) = started().await;
    let ids = chain(&db, &api).await;
    let report = verify(&db, None).await;
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.entries, report.anomalies_checked), (8, 4));
    let (_, head) = report.head.clone().expect("head");
    let su = superuser(&db).await;
    let s = seqs(&su).await;

    // Altered: a note changed.
    su.execute(
        "UPDATE anomaly_history SET note = 'nothing to see' WHERE seq = $1",
        &[&s[4]],
    )
    .await
    .expect("alter");
    assert_eq!(
        broken_at(&verify(&db, None).await),
        (BreakKind::Altered, s[4])
    );
    su.execute(
        "UPDATE anomaly_history SET note = 'on it' WHERE seq = $1",
        &[&s[4]],
    )
    .await
    .expect("restore");
    assert!(verify(&db, None).await.is_intact());

    // Removed: an entry deleted.
    let saved = su
        .query_one("SELECT * FROM anomaly_history WHERE seq = $1", &[&s[6]])
        .await
        .expect("row");
    su.execute("DELETE FROM anomaly_history WHERE seq = $1", &[&s[6]])
        .await
        .expect("delete");
    let report = verify(&db, None).await;
    assert_eq!(broken_at(&report), (BreakKind::Removed, s[7]));
    assert!(
        report
            .to_string()
            .contains(&format!("entry seq {} was REMOVED", s[6])),
        "{report}"
    );
    su.execute(
        "INSERT INTO anomaly_history (seq, anomaly_id, at, actor, action, from_status, to_status, note, snapshot, prev_hash, hash)
         OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[&saved.get::<_, i64>(0), &saved.get::<_, String>(1), &saved.get::<_, DateTime<Utc>>(2), &saved.get::<_, String>(3),
          &saved.get::<_, String>(4), &saved.get::<_, Option<String>>(5), &saved.get::<_, Option<String>>(6),
          &saved.get::<_, Option<String>>(7), &saved.get::<_, Value>(8), &saved.get::<_, Vec<u8>>(9), &saved.get::<_, Vec<u8>>(10)],
    )
    .await
    .expect("put back");
    assert!(verify(&db, None).await.is_intact());

    // Reordered: the contents of two entries swapped.
    let swap = "WITH a AS (SELECT * FROM anomaly_history WHERE seq = $1), b AS (SELECT * FROM anomaly_history WHERE seq = $2)
        UPDATE anomaly_history h SET anomaly_id = o.anomaly_id, at = o.at, actor = o.actor, action = o.action,
            from_status = o.from_status, to_status = o.to_status, note = o.note, snapshot = o.snapshot,
            prev_hash = o.prev_hash, hash = o.hash
        FROM (SELECT $1::bigint AS target, b.* FROM b UNION ALL SELECT $2::bigint, a.* FROM a) o
        WHERE h.seq = o.target";
    su.execute(swap, &[&s[2], &s[4]]).await.expect("swap");
    assert_eq!(
        broken_at(&verify(&db, None).await),
        (BreakKind::Altered, s[2])
    );
    su.execute(swap, &[&s[2], &s[4]]).await.expect("swap back");
    assert!(verify(&db, None).await.is_intact());

    // Forged, naively: an entry appended with a made-up hash.
    su.execute(
        "INSERT INTO anomaly_history (anomaly_id, at, actor, action, from_status, to_status, note, snapshot, prev_hash, hash)
         SELECT anomaly_id, now(), 'dev-investigator', 'transition', 'open', 'dismissed', 'false alarm', snapshot, hash, sha256('x')
         FROM anomaly_history ORDER BY seq DESC LIMIT 1",
        &[],
    )
    .await
    .expect("forge");
    let forged = *seqs(&su).await.last().expect("forged");
    assert_eq!(
        broken_at(&verify(&db, None).await),
        (BreakKind::Altered, forged)
    );
    su.execute("DELETE FROM anomaly_history WHERE seq = $1", &[&forged])
        .await
        .expect("unforge");

    // Forged with the right arithmetic, into a gap a rolled-back transaction left in seq.
    let gap: i64 = {
        let mut c = db.client().await;
        let tx = c.transaction().await.expect("tx");
        let seq: i64 = tx
            .query_one("SELECT gridwatch_record_history($1, 'detector', 'updated', 'open', 'open', NULL, '{}')", &[&ids[3]])
            .await
            .expect("draw")
            .get(0);
        tx.rollback().await.expect("rollback");
        seq
    };
    assert_eq!(
        move_to(&api, &ids[3], "investigating", None).await.status,
        200
    );
    assert!(
        verify(&db, None).await.is_intact(),
        "a gap alone is not tampering"
    );
    su.execute(
        "INSERT INTO anomaly_history (seq, anomaly_id, at, actor, action, from_status, to_status, note, snapshot, prev_hash, hash)
         OVERRIDING SYSTEM VALUE
         SELECT $1, $2, now(), 'dev-admin', 'transition', 'open', 'dismissed', 'duplicate', '{}'::jsonb, p.hash,
                sha256(p.hash || convert_to(gridwatch_history_payload($1, $2, now(), 'dev-admin', 'transition',
                       'open', 'dismissed', 'duplicate', '{}'::jsonb), 'UTF8'))
         FROM anomaly_history p WHERE p.seq < $1 ORDER BY p.seq DESC LIMIT 1",
        &[&gap, &ids[3]],
    )
    .await
    .expect("forge into the gap");
    assert_eq!(
        broken_at(&verify(&db, None).await),
        (BreakKind::Inserted, gap)
    );
    su.execute("DELETE FROM anomaly_history WHERE seq = $1", &[&gap])
        .await
        .expect("unforge");
    let report = verify(&db, Some(&head)).await;
    assert!(report.is_intact(), "{report}");
    assert_eq!(
        report.expected_head,
        Some(ExpectedHead::Found {
            seq: s[7],
            appended: 1
        })
    );

    // Rewritten wholesale: entry 3 altered and every hash from it on recomputed. The chain is
    // consistent again; only the recorded head shows it.
    su.batch_execute(&format!(
        "UPDATE anomaly_history SET actor = 'someone-else' WHERE seq = {};
         DO $$ DECLARE r record; prev bytea; BEGIN
           FOR r IN SELECT * FROM anomaly_history ORDER BY seq LOOP
             IF prev IS NOT NULL THEN
               UPDATE anomaly_history SET prev_hash = prev,
                 hash = sha256(prev || convert_to(gridwatch_history_payload(r.seq, r.anomaly_id, r.at, r.actor,
                        r.action, r.from_status, r.to_status, r.note, r.snapshot), 'UTF8'))
               WHERE seq = r.seq;
             ELSE
               UPDATE anomaly_history SET hash = sha256(r.prev_hash || convert_to(gridwatch_history_payload(r.seq,
                        r.anomaly_id, r.at, r.actor, r.action, r.from_status, r.to_status, r.note, r.snapshot), 'UTF8'))
               WHERE seq = r.seq;
             END IF;
             SELECT hash INTO prev FROM anomaly_history WHERE seq = r.seq;
           END LOOP; END $$;",
        s[3]
    ))
    .await
    .expect("rewrite");
    assert!(
        verify(&db, None).await.first_break.is_none(),
        "a recomputed chain is consistent"
    );
    let report = verify(&db, Some(&head)).await;
    assert!(!report.is_intact());
    assert!(matches!(
        report.expected_head,
        Some(ExpectedHead::Missing { .. })
    ));
    api.stop().await;
}

#[tokio::test]
async fn audit_verify_catches_a_status_changed_or_an_anomaly_deleted_behind_the_history() {
    let (db, api) = started().await;
    let ids = chain(&db, &api).await;
    let client = db.client().await;
    client
        .execute(
            "UPDATE anomalies SET status = 'dismissed' WHERE id = $1",
            &[&ids[2]],
        )
        .await
        .expect("quiet dismissal");
    client
        .execute("DELETE FROM anomalies WHERE id = $1", &[&ids[3]])
        .await
        .expect("deleted");
    let report = verify(&db, None).await;
    assert!(
        report.first_break.is_none() && !report.is_intact(),
        "{report}"
    );
    let problems: HashMap<String, String> = report
        .row_findings
        .iter()
        .map(|f| (f.anomaly_id.clone(), f.problem.clone()))
        .collect();
    assert!(
        problems[&ids[2]].contains("status is \"dismissed\" but the history says \"open\""),
        "{report}"
    );
    assert!(problems[&ids[3]].contains("DELETED"), "{report}");
    api.stop().await;
}

#[tokio::test]
async fn the_audit_verify_command_prints_the_head_and_exits_non_zero_on_tampering() {
    let (db, api) = started().await;
    chain(&db, &api).await;
    let run = |extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gridwatch"));
        command
            .args(["audit", "verify"])
            .args(extra)
            .env("GRIDWATCH_DATABASE_URL", &db.url)
            .env("GRIDWATCH_LOG", "warn");
        command.output().expect("gridwatch runs")
    };
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("The anomaly history is intact.") && text.contains("Entries verified: 8."),
        "{text}"
    );
    let head = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Head hash: "))
        .expect("a head hash")
        .to_owned();
    assert!(
        text.contains(&format!("gridwatch audit verify --expect-head {head}")),
        "{text}"
    );
    let out = run(&["--expect-head", &head]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing up to it changed"));
    assert_eq!(run(&["--expect-head", "xyz"]).status.code(), Some(2));
    let su = superuser(&db).await;
    let third = seqs(&su).await[2];
    su.execute(
        "UPDATE anomaly_history SET note = 'edited' WHERE seq = $1",
        &[&third],
    )
    .await
    .expect("alter");
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("TAMPERING DETECTED") && text.contains(&format!("entry seq {third} ")),
        "{text}"
    );
    println!("{text}");
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Least privilege

#[tokio::test]
async fn service_roles_cannot_rewrite_history_but_append_through_the_function() {
    let (db, api) = started().await;
    chain(&db, &api).await;
    let client = db.client().await;
    for role in ["gridwatch_api", "gridwatch_detector", "gridwatch_ingest"] {
        client
            .batch_execute(&format!("SET ROLE {role}"))
            .await
            .expect("set role");
        for statement in [
            "UPDATE anomaly_history SET note = 'x'",
            "DELETE FROM anomaly_history",
            "TRUNCATE anomaly_history",
            "INSERT INTO anomaly_history (anomaly_id, at, actor, action, snapshot, prev_hash, hash)
             VALUES ('a', now(), 'a', 'created', '{}', '\\x00', '\\x00')",
            "SELECT nextval(pg_get_serial_sequence('anomaly_history', 'seq'))",
        ] {
            let error = client.batch_execute(statement).await.expect_err(statement);
            let message = error
                .as_db_error()
                .map(|e| e.message().to_owned())
                .unwrap_or_default();
            assert!(
                message.contains("permission denied"),
                "{role}: {statement}: {message}"
            );
        }
        let appended = client
            .query_one(
                "SELECT gridwatch_record_history('an_x', 'me', 'created', NULL, 'open', NULL, '{}')",
                &[],
            )
            .await;
        assert_eq!(
            appended.is_ok(),
            role != "gridwatch_ingest",
            "{role}: {appended:?}"
        );
        client.batch_execute("RESET ROLE").await.expect("reset");
    }
    client
        .execute("DELETE FROM anomaly_history WHERE anomaly_id = 'an_x'", &[])
        .await
        .expect_err("even the owner meets the append-only trigger");
    api.stop().await;
}

#[tokio::test]
async fn the_anomaly_routes_work_as_the_api_role() {
    let db = TestDb::migrated().await;
    let admin = ApiServer::start(&db).await;
    assert_eq!(
        admin
            .put_json("/api/v1/registry", Some(ADMIN), REGISTRY)
            .await
            .status,
        200
    );
    admin.stop().await;
    seed_node_windows(&db, "EK-F-001").await;
    let id = create_all(&db, &[diversion()]).await.remove(0);
    let mut config = support::api::config(&db, None);
    config.database_url =
        gridwatch::config::Secret::new(format!("{}?options=-c%20role%3Dgridwatch_api", db.url));
    let api = ApiServer::start_with(config).await;
    for path in [
        "/api/v1/anomalies?sort=priority".to_owned(),
        "/api/v1/anomalies.csv".to_owned(),
        format!("/api/v1/anomalies/{id}"),
        format!("/api/v1/anomalies/{id}/evidence"),
        format!("/api/v1/anomalies/{id}/evidence.svg"),
    ] {
        let r = api.get(&path, Some(VIEWER)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = move_to(&api, &id, "investigating", Some("as gridwatch_api")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let report = verify(&db, None).await;
    assert!(report.is_intact(), "{report}");
    api.stop().await;
}

#[tokio::test]
async fn databases_migrating_at_once_share_the_roles() {
    let dbs = futures_util::future::join_all((0..4).map(|_| TestDb::migrated())).await;
    for db in &dbs {
        assert_eq!(
            db.count("SELECT count(*) FROM pg_roles WHERE rolname IN ('gridwatch_api', 'gridwatch_detector', 'gridwatch_ingest')").await,
            3
        );
        assert_eq!(
            db.count("SELECT count(*) FROM information_schema.role_table_grants WHERE table_name = 'anomaly_history' AND grantee LIKE 'gridwatch_%' AND privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE', 'INSERT')").await,
            0
        );
    }
}
