//! The HTTP API through real HTTP on port 0, against the real PostgreSQL (a database per test),
//! and purchases over the real Mosquitto (a broker per test).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use gridwatch::api::auth::{Access, Role};
use gridwatch::api::routes::{Verb, ROUTES};
use gridwatch::config::Config;
use support::api::{config, ApiServer, Response, ADMIN, INVESTIGATOR, MARKET, VIEWER};
use support::broker::MARKET_USER;
use support::{eventually, Broker, Publisher, TestDb};

const EXAMPLE: &str = r#"{
  "regions":  [{"id": "east-kz", "name": "East Kazakhstan", "tariff_kzt_per_kwh": 10.3}],
  "nodes":    [{"id": "EK-SUB-01", "parent": null,        "region": "east-kz", "kind": "substation", "input_meter": "EK-SUB-01-IN"},
               {"id": "EK-F-001",  "parent": "EK-SUB-01", "region": "east-kz", "kind": "feeder",     "input_meter": "EK-F-001-IN"}],
  "meters":   [{"id": "EK-SUB-01-IN", "node": "EK-SUB-01", "role": "input",    "class": "boundary",  "accuracy_pct": 0.5},
               {"id": "EK-F-001-IN",  "node": "EK-F-001",  "role": "input",    "class": "boundary",  "accuracy_pct": 0.5},
               {"id": "M-000001",     "node": "EK-F-001",  "role": "consumer", "class": "household", "accuracy_pct": 1.0},
               {"id": "FARM-042",     "node": "EK-F-001",  "role": "consumer", "class": "mining",    "accuracy_pct": 0.5, "licence": "KZ-MIN-042"}],
  "licences": [{"id": "KZ-MIN-042", "holder": "Qazaq Hash LLP", "pool": "pool-3", "registered_machines": 1200, "machine_rated_w": 3250}]
}"#;

const WAIT: Duration = Duration::from_secs(30);

async fn started() -> (TestDb, ApiServer) {
    let db = TestDb::migrated().await;
    let api = ApiServer::start(&db).await;
    (db, api)
}

/// A server whose registry holds the contract's example.
async fn with_registry() -> (TestDb, ApiServer) {
    let (db, api) = started().await;
    let r = api.put_json("/api/v1/registry", Some(ADMIN), EXAMPLE).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (db, api)
}

fn purchase(id: &str, energy_wh: i64, start: &str, end: &str) -> String {
    json!({"id": id, "licence": "KZ-MIN-042", "energy_wh": energy_wh,
           "delivery_start": start, "delivery_end": end, "price_kzt": 10300.0})
    .to_string()
}

fn hour_purchase(id: &str, energy_wh: i64) -> String {
    purchase(
        id,
        energy_wh,
        "2025-10-01T00:00:00Z",
        "2025-10-01T01:00:00Z",
    )
}

/// Everything a refused request must leave as it was.
async fn snapshot(db: &TestDb, api: &ApiServer) -> (Value, i64, i64, i64, i64, i64, i64) {
    let registry = api.get("/api/v1/registry", Some(VIEWER)).await.json();
    (
        registry,
        db.count("SELECT version FROM registry_state").await,
        db.count("SELECT count(*) FROM registry_changes").await,
        db.count("SELECT count(*) FROM purchases").await,
        db.count("SELECT count(*) FROM purchase_attempts").await,
        db.count("SELECT count(*) FROM anomalies").await,
        db.count("SELECT count(*) FROM anomaly_history").await,
    )
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

// ---------------------------------------------------------------------------------------------
// Access

/// A request a route accepts in shape, so that only the token decides between 401/403 and the
/// rest.
async fn call(api: &ApiServer, verb: Verb, path: &str, token: Option<&str>) -> Response {
    match (verb, path) {
        (Verb::Put, _) => api.put_json(path, token, EXAMPLE).await,
        (Verb::Post, _) => api.post_json(path, token, &hour_purchase("P-AUTH-1", 1000)).await,
        (Verb::Get, "/api/v1/calculator") => {
            api.get(
                "/api/v1/calculator?consumption_mwh=1&revenue_kzt=1&costs_kzt=0&mined_assets=1&date=2025-01-01",
                token,
            )
            .await
        }
        (Verb::Get, _) => api.get(path, token).await,
    }
}

#[tokio::test]
async fn every_route_refuses_missing_and_bad_tokens_and_too_weak_roles() {
    let (_db, api) = with_registry().await;
    let roles = [
        (VIEWER, Role::Viewer),
        (INVESTIGATOR, Role::Investigator),
        (ADMIN, Role::Admin),
        (MARKET, Role::Market),
    ];
    let mut refused = 0;
    for route in ROUTES {
        if route.access == Access::Public {
            let r = call(&api, route.verb, route.path, None).await;
            assert_eq!(r.status, 200, "{} {} is public", route.path, r.text());
            continue;
        }
        let r = call(&api, route.verb, route.path, None).await;
        assert_eq!(r.status, 401, "{} without a token", route.path);
        assert_eq!(r.error_code(), "unauthorized");
        assert!(r
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")));
        for bad in ["not-a-token", "dev-admin-tokenx", "Dev-admin-token", ""] {
            let r = call(&api, route.verb, route.path, Some(bad)).await;
            assert_eq!(r.status, 401, "{} with token {bad:?}", route.path);
        }
        // A scheme other than Bearer is no token at all.
        let r = api
            .raw(
                format!(
                    "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {ADMIN}\r\n\r\n",
                    route.path
                )
                .into_bytes(),
                Vec::new(),
            )
            .await;
        assert!(matches!(r.status, 401 | 405), "{}", route.path);
        refused += 5;
        for (token, role) in roles {
            let r = call(&api, route.verb, route.path, Some(token)).await;
            if route.access.allows(role) {
                assert!(
                    ![401, 403].contains(&r.status) && r.status < 500,
                    "{role:?} may call {} but got {}: {}",
                    route.path,
                    r.status,
                    r.text()
                );
            } else {
                assert_eq!(r.status, 403, "{role:?} may not call {}", route.path);
                assert_eq!(r.error_code(), "forbidden");
            }
        }
    }
    // Spot checks of the table itself: the contract's roles.
    let access = |verb: Verb, path: &str| {
        ROUTES
            .iter()
            .find(|r| r.verb == verb && r.path == path)
            .map(|r| r.access)
    };
    assert_eq!(access(Verb::Put, "/api/v1/registry"), Some(Access::Admin));
    assert_eq!(
        access(Verb::Post, "/api/v1/purchases"),
        Some(Access::Market)
    );
    assert_eq!(access(Verb::Get, "/api/v1/status"), Some(Access::Public));
    assert_eq!(
        access(Verb::Get, "/api/v1/rejections"),
        Some(Access::Viewer)
    );
    assert!(api.metrics.api.auth_failures.get() >= refused);
    api.stop().await;
}

#[tokio::test]
async fn the_api_refuses_to_start_without_a_valid_tokens_file() {
    let db = TestDb::migrated().await;
    let mut c = config(&db, None);
    c.tokens_file = "/nonexistent/tokens.toml".into();
    let (_trigger, stop) = gridwatch::shutdown::channel();
    let metrics = std::sync::Arc::new(gridwatch::metrics::Metrics::new());
    let error = gridwatch::api::serve(&c, metrics.clone(), stop.clone())
        .await
        .expect_err("refused");
    assert!(format!("{error:#}").contains("tokens file"), "{error:#}");
    let dir = support::TempDir::new("tokens");
    let file = dir.path().join("tokens.toml");
    std::fs::write(
        &file,
        "[[tokens]]\nname = \"x\"\nrole = \"root\"\nsha256 = \"00\"\n",
    )
    .expect("write");
    c.tokens_file = file;
    let error = gridwatch::api::serve(&c, metrics, stop)
        .await
        .expect_err("refused");
    assert!(format!("{error:#}").contains("tokens file"), "{error:#}");
}

// ---------------------------------------------------------------------------------------------
// Status, metrics, OpenAPI, errors

#[tokio::test]
async fn status_reports_the_watermark_and_totals() {
    let (db, api) = started().await;
    let s = api.get("/api/v1/status", None).await.json();
    assert_eq!(
        s,
        json!({"watermark": null, "evaluated_until": null, "analysed_until": null,
               "readings_total": 0, "rejections_total": 0, "open_anomalies": 0})
    );
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO detector_progress (region_key, watermark) VALUES
                (1, '2025-10-01T01:00:00Z'), (2, '2025-10-01T00:45:00Z');
             INSERT INTO ingest_counters (writer, readings_stored, rejections) VALUES
                ('a/0', 100, 3), ('a/1', 50, 2);
             INSERT INTO anomalies (id, condition_key, kind, started_at, detected_at, severity, status)
             VALUES ('an_1', 'k1', 'diversion', now(), now(), 'high', 'open'),
                    ('an_2', 'k2', 'diversion', now(), now(), 'high', 'investigating'),
                    ('an_3', 'k3', 'diversion', now(), now(), 'high', 'dismissed'),
                    ('an_4', 'k4', 'data_gap', now(), now(), 'info', 'withdrawn');
             INSERT INTO purchase_attempts (reason, detail, channel, submitted_by)
             VALUES ('unknown_licence', 'x', 'http', 't');",
        )
        .await
        .expect("seed");
    let s = api.get("/api/v1/status", None).await.json();
    assert_eq!(
        s,
        json!({"watermark": "2025-10-01T00:45:00Z", "evaluated_until": null, "analysed_until": null,
               "readings_total": 150, "rejections_total": 6, "open_anomalies": 2})
    );
    let w = gridwatch::api::status::watermark(&client)
        .await
        .expect("watermark");
    assert_eq!(w, Some(time("2025-10-01T00:45:00Z")));
    api.stop().await;
}

#[tokio::test]
async fn status_reports_the_least_advanced_regions_progress_once_every_region_started() {
    let (db, api) = with_registry().await;
    let client = db.client().await;
    let regions = db
        .count("SELECT count(DISTINCT n.region_key) FROM meters m JOIN nodes n USING (node_key)")
        .await;
    assert!(regions >= 1, "the registry has a region with meters");
    // One region started, any other not yet: progress is unknown.
    client
        .batch_execute(
            "INSERT INTO detector_progress (region_key, watermark, evaluated_until, analysed_until)
             SELECT region_key, '2025-10-02T00:00:00Z', '2025-10-02T00:00:00Z',
                    '2025-10-02T00:00:00Z'
             FROM regions ORDER BY region_key LIMIT 1",
        )
        .await
        .expect("progress");
    let s = api.get("/api/v1/status", None).await.json();
    if regions > 1 {
        assert_eq!(s["evaluated_until"], json!(null), "{s}");
    }
    // Every region started: the least advanced one's.
    client
        .batch_execute(
            "INSERT INTO detector_progress (region_key, watermark, evaluated_until, analysed_until)
             SELECT region_key, '2025-10-01T12:00:00Z', '2025-10-01T12:00:00Z',
                    '2025-10-01T00:00:00Z'
             FROM regions
             ON CONFLICT (region_key) DO UPDATE SET analysed_until = EXCLUDED.analysed_until",
        )
        .await
        .expect("progress");
    let s = api.get("/api/v1/status", None).await.json();
    let expected_evaluated = if regions > 1 {
        "2025-10-01T12:00:00Z"
    } else {
        "2025-10-02T00:00:00Z"
    };
    assert_eq!(s["evaluated_until"], json!(expected_evaluated), "{s}");
    assert_eq!(s["analysed_until"], json!("2025-10-01T00:00:00Z"), "{s}");
    api.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes() {
    let (_db, api) = with_registry().await;
    let doc = api.get("/api/v1/openapi.json", None).await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            documented.insert((path.clone(), method.to_uppercase()));
            assert!(op["responses"].is_object(), "{method} {path}");
            let public = ROUTES
                .iter()
                .any(|r| r.path == path && r.access == Access::Public);
            assert_eq!(op["security"].is_array(), !public, "{method} {path}");
        }
    }
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.path.to_owned(), r.verb.as_lower().to_uppercase()))
        .collect();
    assert_eq!(documented, routed);
    // And the router answers every documented operation (no 404/405 of the router itself).
    for (path, method) in &documented {
        let verb = match method.as_str() {
            "GET" => Verb::Get,
            "PUT" => Verb::Put,
            _ => Verb::Post,
        };
        let r = call(&api, verb, path, Some(ADMIN)).await;
        assert!(
            ![404, 405].contains(&r.status),
            "{method} {path}: {}",
            r.status
        );
    }
    // What is not documented is not routed, and says so in the contract's shape.
    let r = api.get("/api/v1/nothing-here", Some(ADMIN)).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = api
        .send("DELETE", "/api/v1/registry", Some(ADMIN), None, b"")
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (405, "method_not_allowed")
    );
    let r = api.send("POST", "/api/v1/status", None, None, b"").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (405, "method_not_allowed")
    );
    // Schemas referenced exist.
    let text = doc.to_string();
    for name in doc["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .keys()
    {
        assert!(text.contains(&format!("#/components/schemas/{name}")) || name == "Error");
    }
    api.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_never_by_raw_path() {
    let (_db, api) = started().await;
    api.get("/api/v1/status", None).await;
    api.get("/api/v1/no/such/M-000001", None).await;
    let text = api.get("/metrics", None).await.text();
    assert!(
        text.contains(
            r#"gridwatch_http_requests_total{method="GET",route="/api/v1/status",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(!text.contains("M-000001"));
    assert!(text.contains("gridwatch_http_request_duration_seconds_bucket"));
    assert!(text.contains("gridwatch_auth_failures_total"));
    assert!(text.contains("gridwatch_purchases_total"));
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Registry

#[tokio::test]
async fn a_registry_document_round_trips_and_a_repeat_changes_nothing() {
    let (db, api) = started().await;
    let r = api.put_json("/api/v1/registry", Some(ADMIN), EXAMPLE).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let summary = r.json();
    assert_eq!(
        summary["created"],
        json!({"regions": 1, "nodes": 2, "meters": 4, "licences": 1})
    );
    let stored = api.get("/api/v1/registry", Some(VIEWER)).await.json();
    let example: Value = serde_json::from_str(EXAMPLE).expect("json");
    assert_eq!(stored["regions"], example["regions"]);
    assert_eq!(stored["nodes"], example["nodes"]);
    assert_eq!(stored["meters"], example["meters"]);
    assert_eq!(stored["licences"], example["licences"]);
    assert_eq!(
        db.count("SELECT count(*) FROM registry_changes WHERE changed_by = 'dev-admin' AND action = 'created'")
            .await,
        8
    );
    let before = snapshot(&db, &api).await;
    let r = api.put_json("/api/v1/registry", Some(ADMIN), EXAMPLE).await;
    assert_eq!(r.json()["unchanged"], 8);
    assert_eq!(
        snapshot(&db, &api).await,
        before,
        "an unchanged document writes nothing"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_regions_time_zone_is_stored_returned_and_changed_like_any_field() {
    let (db, api) = with_registry().await;
    let region = |zone: &str| {
        format!(
            r#"{{"regions":[{{"id":"east-kz","name":"East Kazakhstan","tariff_kzt_per_kwh":10.3,"timezone":"{zone}"}}]}}"#
        )
    };
    let r = api
        .put_json("/api/v1/registry", Some(ADMIN), &region("Asia/Almaty"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let stored = api.get("/api/v1/registry", Some(VIEWER)).await.json();
    assert_eq!(stored["regions"][0]["timezone"], "Asia/Almaty");
    let r = api
        .put_json("/api/v1/registry", Some(ADMIN), &region("Europe/Berlin"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["updated"]["regions"], 1, "{}", r.text());
    let stored = api.get("/api/v1/registry", Some(VIEWER)).await.json();
    assert_eq!(stored["regions"][0]["timezone"], "Europe/Berlin");
    assert_eq!(
        db.count("SELECT count(*) FROM regions WHERE timezone = 'Europe/Berlin'")
            .await,
        1
    );
    api.stop().await;
}

#[tokio::test]
async fn every_registry_validation_error_names_its_entry_and_changes_nothing() {
    let (db, api) = with_registry().await;
    let meter = |extra: &str| {
        format!(
            r#"{{"meters":[{{"id":"M-9","node":"EK-F-001","role":"consumer","class":"household","accuracy_pct":1{extra}}}]}}"#
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (meter(r#","colour":"red""#), "meters[0]"),
        (meter(r#","licence":"KZ-NONE""#), "meters[0] (M-9): licence KZ-NONE does not exist"),
        (r#"{"meters":[{"id":"M-9","node":"NOWHERE","role":"consumer","class":"household","accuracy_pct":1}]}"#.into(),
            "meters[0] (M-9): node NOWHERE does not exist"),
        (r#"{"meters":[{"id":"M 9","node":"EK-F-001","role":"consumer","class":"household","accuracy_pct":1}]}"#.into(),
            "meters[0].id"),
        (r#"{"meters":[{"id":"M-9","node":"EK-F-001","role":"consumer","class":"household","accuracy_pct":0}]}"#.into(),
            "meters[0] (M-9): accuracy_pct 0"),
        (r#"{"meters":[{"id":"M-9","node":"EK-F-001","role":"consumer","class":"household","accuracy_pct":"1"}]}"#.into(),
            "meters[0].accuracy_pct"),
        (r#"{"meters":[{"id":"M-9","node":"EK-F-001","role":"thief","class":"household","accuracy_pct":1}]}"#.into(),
            "meters[0].role"),
        (r#"{"meters":[{"id":"M-9","node":"EK-F-001","role":"consumer","class":"household","accuracy_pct":1},
                      {"id":"M-9","node":"EK-F-001","role":"consumer","class":"household","accuracy_pct":1}]}"#.into(),
            "meters[1] (M-9): duplicate id"),
        (r#"{"regions":[{"id":"west","name":"West","tariff_kzt_per_kwh":-1}]}"#.into(),
            "regions[0] (west): tariff_kzt_per_kwh -1"),
        (r#"{"regions":[{"id":"west","name":"West","tariff_kzt_per_kwh":1e9}]}"#.into(),
            "regions[0] (west): tariff_kzt_per_kwh"),
        (r#"{"regions":[{"id":"west","name":"","tariff_kzt_per_kwh":1}]}"#.into(),
            "regions[0] (west): name"),
        (r#"{"regions":[{"id":"west","name":"West","tariff_kzt_per_kwh":1,"timezone":"Mars/Base"}]}"#.into(),
            r#"regions[0] (west): timezone "Mars/Base" is not an IANA time zone"#),
        (r#"{"nodes":[{"id":"N-2","parent":"NOPE","region":"east-kz","kind":"feeder"}]}"#.into(),
            "nodes[0] (N-2): parent NOPE does not exist"),
        (r#"{"nodes":[{"id":"N-2","parent":null,"region":"mars","kind":"feeder"}]}"#.into(),
            "nodes[0] (N-2): region mars does not exist"),
        (r#"{"nodes":[{"id":"EK-SUB-01","parent":"EK-F-001","region":"east-kz","kind":"substation","input_meter":"EK-SUB-01-IN"}]}"#.into(),
            "cycle"),
        (r#"{"nodes":[{"id":"EK-F-001","parent":"EK-SUB-01","region":"east-kz","kind":"feeder","input_meter":"M-000001"}]}"#.into(),
            "nodes[0] (EK-F-001): input_meter M-000001 has role consumer, not input"),
        (r#"{"nodes":[{"id":"EK-F-001","parent":"EK-SUB-01","region":"east-kz","kind":"feeder","input_meter":"EK-SUB-01-IN"}]}"#.into(),
            "nodes[0] (EK-F-001): input_meter EK-SUB-01-IN is on node EK-SUB-01, not on this node"),
        (r#"{"nodes":[{"id":"EK-F-001","parent":"EK-SUB-01","region":"east-kz","kind":"feeder","input_meter":"GHOST"}]}"#.into(),
            "input_meter GHOST does not exist"),
        (r#"{"meters":[{"id":"EK-F-001-IN","node":"EK-SUB-01","role":"input","class":"boundary","accuracy_pct":0.5}]}"#.into(),
            "stored node EK-F-001"),
        (r#"{"licences":[{"id":"KZ-1","holder":"X","registered_machines":1,"machine_rated_w":0}]}"#.into(),
            "licences[0] (KZ-1): machine_rated_w 0"),
        (r#"{"licences":[{"id":"KZ-1","holder":"X","registered_machines":-1,"machine_rated_w":3250}]}"#.into(),
            "licences[0].registered_machines"),
        (r#"{"licences":[{"id":"KZ-1","holder":"X","registered_machines":99999999999,"machine_rated_w":3250}]}"#.into(),
            "licences[0].registered_machines"),
        (r#"{"zones":[]}"#.into(), "zones"),
        (r#"[]"#.into(), "document"),
    ];
    let before = snapshot(&db, &api).await;
    for (document, named) in &cases {
        let r = api
            .put_json("/api/v1/registry", Some(ADMIN), document)
            .await;
        assert_eq!(r.status, 422, "{document}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_registry");
        let body = r.json();
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(named),
            "{document}\nexpected {named:?} in {message}"
        );
        assert!(body["error"]["details"][0]["entry"].is_string(), "{body}");
    }
    // Several errors at once are all reported.
    let r = api
        .put_json(
            "/api/v1/registry",
            Some(ADMIN),
            r#"{"meters":[{"id":"A-1","node":"N-X","role":"consumer","class":"household","accuracy_pct":1},
                          {"id":"A-2","node":"N-Y","role":"consumer","class":"household","accuracy_pct":1}]}"#,
        )
        .await;
    let details = r.json()["error"]["details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(details.len(), 2, "{}", r.text());
    // The CLI shares the validator, and refuses the same way.
    let dir = support::TempDir::new("registry");
    let file = dir.path().join("bad.json");
    std::fs::write(&file, &cases[1].0).expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gridwatch"))
        .args(["registry", "import"])
        .arg(&file)
        .env("GRIDWATCH_DATABASE_URL", &db.url)
        .env("GRIDWATCH_LOG", "warn")
        .output()
        .expect("gridwatch runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("licence KZ-NONE does not exist"),
        "{stderr}"
    );
    assert_eq!(
        snapshot(&db, &api).await,
        before,
        "refused documents changed nothing"
    );
    api.stop().await;
}

#[tokio::test]
async fn registry_history_records_a_moved_meter_a_replaced_input_meter_and_a_granted_licence() {
    let (db, api) = with_registry().await;
    let version_before = db.count("SELECT version FROM registry_state").await;
    let change = r#"{
      "nodes":  [{"id": "EK-F-001", "parent": "EK-SUB-01", "region": "east-kz", "kind": "feeder", "input_meter": "EK-F-001-IN2"}],
      "meters": [{"id": "EK-F-001-IN2", "node": "EK-F-001", "role": "input", "class": "boundary", "accuracy_pct": 0.2},
                 {"id": "M-000001", "node": "EK-SUB-01", "role": "consumer", "class": "mining", "accuracy_pct": 1.0, "licence": "KZ-MIN-077"}],
      "licences": [{"id": "KZ-MIN-077", "holder": "Altai Compute", "pool": null, "registered_machines": 40, "machine_rated_w": 3250}]
    }"#;
    let r = api.put_json("/api/v1/registry", Some(ADMIN), change).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json();
    assert_eq!(
        s["created"],
        json!({"regions": 0, "nodes": 0, "meters": 1, "licences": 1})
    );
    assert_eq!(
        s["updated"],
        json!({"regions": 0, "nodes": 1, "meters": 1, "licences": 0})
    );
    assert!(s["version"].as_i64().unwrap_or(0) > version_before);
    let client = db.client().await;
    let history = |entity: &'static str, id: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT action, changed_by, before, after FROM registry_changes
                     WHERE entity = $1 AND entity_id = $2 ORDER BY change_id DESC LIMIT 1",
                    &[&entity, &id],
                )
                .await
                .expect("a history row")
        }
    };
    let moved = history("meter", "M-000001").await;
    assert_eq!(moved.get::<_, String>(0), "updated");
    assert_eq!(moved.get::<_, String>(1), "dev-admin");
    let (before, after): (Value, Value) = (moved.get(2), moved.get(3));
    assert_eq!(
        (before["node"].clone(), after["node"].clone()),
        (json!("EK-F-001"), json!("EK-SUB-01"))
    );
    assert_eq!(
        (before.get("licence").cloned(), after["licence"].clone()),
        (None, json!("KZ-MIN-077"))
    );
    let replaced = history("node", "EK-F-001").await;
    let (before, after): (Value, Value) = (replaced.get(2), replaced.get(3));
    assert_eq!(before["input_meter"], "EK-F-001-IN");
    assert_eq!(after["input_meter"], "EK-F-001-IN2");
    let granted = history("licence", "KZ-MIN-077").await;
    assert_eq!(granted.get::<_, String>(0), "created");
    assert_eq!(granted.get::<_, Option<Value>>(2), None);
    // Untouched entries got no history row.
    assert_eq!(
        db.count("SELECT count(*) FROM registry_changes WHERE entity_id = 'FARM-042'")
            .await,
        1
    );
    // The stored registry reflects the change; ingest's directory sees it through the version.
    let stored = api.get("/api/v1/registry", Some(VIEWER)).await.json();
    let feeder = stored["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == "EK-F-001").cloned())
        .expect("feeder");
    assert_eq!(feeder["input_meter"], "EK-F-001-IN2");
    let mut pg = db.client().await;
    let directory = gridwatch::registry::MeterDirectory::load(&mut pg)
        .await
        .expect("load");
    assert_eq!(directory.len(), 5);
    assert_eq!(directory.version, s["version"].as_i64().unwrap_or(-1));
    api.stop().await;
}

#[tokio::test]
async fn registry_import_from_the_command_line_records_cli_as_the_author() {
    let db = TestDb::migrated().await;
    let dir = support::TempDir::new("registry");
    let file = dir.path().join("registry.json");
    std::fs::write(&file, EXAMPLE).expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gridwatch"))
        .args(["registry", "import"])
        .arg(&file)
        .env("GRIDWATCH_DATABASE_URL", &db.url)
        .env("GRIDWATCH_LOG", "warn")
        .output()
        .expect("gridwatch runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout)
        .contains("created 1 region(s), 2 node(s), 4 meter(s), 1 licence(s)"));
    assert_eq!(
        db.count("SELECT count(*) FROM registry_changes WHERE changed_by = 'cli'")
            .await,
        8
    );
}

/// A document of `meters` household meters on 100 feeders under one substation.
fn large_document(meters: usize) -> String {
    let mut nodes = vec![
        json!({"id": "S-1", "parent": null, "region": "r1", "kind": "substation", "input_meter": "S-1-IN"}),
    ];
    let mut list = vec![
        json!({"id": "S-1-IN", "node": "S-1", "role": "input", "class": "boundary", "accuracy_pct": 0.5}),
    ];
    for f in 0..100 {
        nodes.push(json!({"id": format!("F-{f:03}"), "parent": "S-1", "region": "r1", "kind": "feeder", "input_meter": format!("F-{f:03}-IN")}));
        list.push(json!({"id": format!("F-{f:03}-IN"), "node": format!("F-{f:03}"), "role": "input", "class": "boundary", "accuracy_pct": 0.5}));
    }
    for m in 0..meters {
        list.push(json!({"id": format!("M-{m:07}"), "node": format!("F-{:03}", m % 100), "role": "consumer", "class": "household", "accuracy_pct": 1.0}));
    }
    json!({"regions": [{"id": "r1", "name": "Region", "tariff_kzt_per_kwh": 10.3}], "nodes": nodes, "meters": list, "licences": []})
        .to_string()
}

#[tokio::test]
async fn a_100000_meter_registry_imports_in_seconds() {
    let (db, api) = started().await;
    let document = large_document(100_000);
    let started = std::time::Instant::now();
    let r = api
        .put_json("/api/v1/registry", Some(ADMIN), &document)
        .await;
    let first = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["created"]["meters"], 100_101);
    let started = std::time::Instant::now();
    let r = api
        .put_json("/api/v1/registry", Some(ADMIN), &document)
        .await;
    let repeat = started.elapsed();
    assert_eq!(r.json()["unchanged"], 100_203);
    eprintln!(
        "100,000-meter registry: first import {first:?}, unchanged repeat {repeat:?} (test profile: our code at opt-level 1)"
    );
    // Generous for a lightly optimised build on a busy 2-core machine; docs/SCALING.md has the
    // figure and how to measure it.
    assert!(first < Duration::from_secs(60), "{first:?}");
    assert_eq!(db.count("SELECT count(*) FROM meters").await, 100_101);
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Purchases over HTTP

#[tokio::test]
async fn a_purchase_at_the_cap_is_accepted_and_one_wh_over_is_refused_and_raised() {
    let (db, api) = with_registry().await;
    let r = api
        .post_json(
            "/api/v1/purchases",
            Some(MARKET),
            &hour_purchase("P-1", 1_000_000),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let p = r.json();
    assert_eq!(
        (
            p["energy_wh"].clone(),
            p["profile"].clone(),
            p["cap_wh"].clone()
        ),
        (json!(1_000_000), json!("kz-2025"), json!(1_000_000))
    );
    assert_eq!(p["submitted_by"], "dev-market");

    let r = api
        .post_json(
            "/api/v1/purchases",
            Some(MARKET),
            &hour_purchase("P-2", 1_000_001),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "purchase_over_cap");
    assert_eq!(db.count("SELECT count(*) FROM purchases").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM purchase_attempts WHERE purchase_id = 'P-2' AND reason = 'purchase_over_cap'").await, 1);
    let client = db.client().await;
    let a = client
        .query_one(
            "SELECT id, kind, region, node, meter, licence, energy_wh, loss_kzt, severity, status,
                    started_at, ended_at, evidence, suspects
             FROM anomalies WHERE condition_key = 'purchase_over_cap:P-2'",
            &[],
        )
        .await
        .expect("an anomaly");
    let id: String = a.get(0);
    assert!(id.starts_with("an_") && id.len() == 29, "{id}");
    assert_eq!(a.get::<_, String>(1), "purchase_over_cap");
    assert_eq!(a.get::<_, Option<String>>(2).as_deref(), Some("east-kz"));
    assert_eq!(a.get::<_, Option<String>>(3).as_deref(), Some("EK-F-001"));
    assert_eq!(a.get::<_, Option<String>>(4).as_deref(), Some("FARM-042"));
    assert_eq!(a.get::<_, Option<String>>(5).as_deref(), Some("KZ-MIN-042"));
    assert_eq!(a.get::<_, i64>(6), 1);
    assert!((a.get::<_, f64>(7) - 0.0103).abs() < 1e-9);
    assert_eq!(a.get::<_, String>(8), "low");
    assert_eq!(a.get::<_, String>(9), "open");
    assert_eq!(a.get::<_, DateTime<Utc>>(10), time("2025-10-01T00:00:00Z"));
    assert_eq!(
        a.get::<_, Option<DateTime<Utc>>>(11),
        Some(time("2025-10-01T01:00:00Z"))
    );
    let evidence: Value = a.get(12);
    assert_eq!(evidence["attempt"]["energy_wh"], 1_000_001);
    assert_eq!(evidence["cap_wh"], 1_000_000);
    assert_eq!(a.get::<_, Vec<String>>(13), vec!["FARM-042".to_owned()]);
    let h = client
        .query_one(
            "SELECT actor, action, to_status, snapshot FROM anomaly_history WHERE anomaly_id = $1",
            &[&id],
        )
        .await
        .expect("one history entry");
    assert_eq!(h.get::<_, String>(0), "dev-market");
    assert_eq!(h.get::<_, String>(1), "created");
    assert_eq!(h.get::<_, Option<String>>(2).as_deref(), Some("open"));
    assert_eq!(h.get::<_, Value>(3)["id"], json!(id));

    // Retrying the refused attempt refuses again and duplicates nothing.
    let before = snapshot(&db, &api).await;
    let r = api
        .post_json(
            "/api/v1/purchases",
            Some(MARKET),
            &hour_purchase("P-2", 1_000_001),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "purchase_over_cap")
    );
    assert_eq!(snapshot(&db, &api).await, before);

    // Far over the cap is critical, and the status counts refused purchases.
    let r = api
        .post_json(
            "/api/v1/purchases",
            Some(ADMIN),
            &hour_purchase("P-3", 50_000_000),
        )
        .await;
    assert_eq!(r.error_code(), "purchase_over_cap");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM anomalies WHERE severity = 'critical' AND energy_wh = 49000000"
        )
        .await,
        1
    );
    let s = api.get("/api/v1/status", None).await.json();
    assert_eq!(
        (s["rejections_total"].clone(), s["open_anomalies"].clone()),
        (json!(2), json!(2))
    );
    api.stop().await;
}

#[tokio::test]
async fn the_same_purchase_twice_is_idempotent_and_its_id_with_other_content_conflicts() {
    let (db, api) = with_registry().await;
    let body = hour_purchase("P-7", 250_000);
    let first = api
        .post_json("/api/v1/purchases", Some(MARKET), &body)
        .await;
    assert_eq!(first.status, 201);
    let again = api
        .post_json("/api/v1/purchases", Some(MARKET), &body)
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(first.json(), again.json());
    assert_eq!(db.count("SELECT count(*) FROM purchases").await, 1);
    let r = api
        .post_json(
            "/api/v1/purchases",
            Some(MARKET),
            &hour_purchase("P-7", 250_001),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "conflicting_purchase")
    );
    let r = api
        .post_json(
            "/api/v1/purchases",
            Some(MARKET),
            &body
                .replace("KZ-MIN-042", "KZ-MIN-999")
                .replace("P-7", "P-8"),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "unknown_licence")
    );
    assert_eq!(db.count("SELECT count(*) FROM purchases").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM anomalies").await, 0);
    // A 2024 delivery is checked against the 2024 profile.
    let r = api
        .post_json(
            "/api/v1/purchases",
            Some(MARKET),
            &purchase(
                "P-2024",
                1000,
                "2024-06-01T00:00:00Z",
                "2024-06-01T01:00:00Z",
            ),
        )
        .await;
    assert_eq!(r.json()["profile"], "kz-2024");
    let r = api
        .post_json(
            "/api/v1/purchases",
            Some(MARKET),
            &purchase(
                "P-2023",
                1000,
                "2023-06-01T00:00:00Z",
                "2023-06-01T01:00:00Z",
            ),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "no_regulation_profile")
    );
    api.stop().await;
}

#[tokio::test]
async fn invalid_purchases_get_clear_codes_and_store_nothing() {
    let (db, api) = with_registry().await;
    let cases: Vec<(String, u16, &str)> = vec![
        (hour_purchase("P-1", -5), 422, "negative_energy"),
        (hour_purchase("P-1", 0), 422, "invalid_field"),
        (
            purchase("P-1", 5, "2025-10-01T01:00:00Z", "2025-10-01T01:00:00Z"),
            422,
            "invalid_delivery_interval",
        ),
        (
            purchase("P-1", 5, "2025-10-01T02:00:00Z", "2025-10-01T01:00:00Z"),
            422,
            "invalid_delivery_interval",
        ),
        (
            purchase("P-1", 5, "2025-10-01T00:00:00", "2025-10-01T01:00:00Z"),
            422,
            "invalid_field",
        ),
        (hour_purchase("P 1", 5), 422, "invalid_field"),
        (hour_purchase("-P1", 5), 422, "invalid_field"),
        (
            hour_purchase("P-1", 5).replace("10300.0", "\"cheap\""),
            422,
            "invalid_field",
        ),
        (
            hour_purchase("P-1", 5).replace("10300.0", "-1"),
            422,
            "invalid_field",
        ),
        (
            hour_purchase("P-1", 5).replace("}", ",\"extra\":1}"),
            422,
            "invalid_field",
        ),
        (
            hour_purchase("P-1", 5)
                .replace("\"energy_wh\":5", "\"energy_wh\":99999999999999999999999"),
            422,
            "invalid_field",
        ),
        (r#"{"id": "P-1""#.into(), 400, "malformed_json"),
        ("[]".into(), 422, "invalid_field"),
        ("".into(), 400, "malformed_json"),
        ("null".into(), 422, "invalid_field"),
    ];
    let before = snapshot(&db, &api).await;
    for (body, status, code) in &cases {
        let r = api.post_json("/api/v1/purchases", Some(MARKET), body).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (*status, *code),
            "{body}"
        );
    }
    let r = api
        .send(
            "POST",
            "/api/v1/purchases",
            Some(MARKET),
            Some("text/plain"),
            hour_purchase("P-1", 5).as_bytes(),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (415, "unsupported_media_type")
    );
    assert_eq!(snapshot(&db, &api).await, before);
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Purchases over MQTT

/// The API started with `config` (its purchases consumer on the test's broker), the example
/// registry imported, once the consumer has subscribed.
async fn api_taking_purchases(config: Config) -> ApiServer {
    let api = ApiServer::start_with(config).await;
    let r = api.put_json("/api/v1/registry", Some(ADMIN), EXAMPLE).await;
    assert_eq!(r.status, 200);
    let subscribed = api.metrics.clone();
    eventually(WAIT, "the purchases consumer subscribed", || {
        let done = subscribed.ingest.mqtt_subscribed.get() == 1;
        async move { done.then_some(()) }
    })
    .await;
    api
}

#[tokio::test]
async fn purchases_over_mqtt_take_the_same_path_and_refusals_are_kept_with_their_payload() {
    let broker = Broker::start();
    let db = TestDb::migrated().await;
    let api = api_taking_purchases(config(&db, Some(&broker))).await;
    let mut publisher = Publisher::connect(broker.port, MARKET_USER).await;
    let topic = "gridwatch/v1/market/purchases";
    for payload in [
        hour_purchase("PM-1", 1_000_000),
        hour_purchase("PM-1", 1_000_000),
        hour_purchase("PM-2", 1_000_001),
        hour_purchase("PM-1", 999_999),
        hour_purchase("PM-3", 10).replace("KZ-MIN-042", "KZ-MIN-404"),
        "{not json".to_owned(),
        hour_purchase("PM-4", -1),
        hour_purchase("PM-5", 500_000),
    ] {
        publisher.publish(topic, payload).await;
    }
    publisher.flush().await;
    eventually(WAIT, "every purchase handled", || {
        let db = &db;
        async move {
            let done = db
                .count("SELECT count(*) FROM purchases WHERE id = 'PM-5'")
                .await
                == 1;
            done.then_some(())
        }
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM purchases").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM purchases WHERE channel = 'mqtt' AND submitted_by = 'mqtt:market'").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM anomalies WHERE condition_key = 'purchase_over_cap:PM-2' AND energy_wh = 1").await, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM anomaly_history WHERE actor = 'mqtt:market'")
            .await,
        1
    );
    let client = db.client().await;
    let reasons: Vec<String> = client
        .query(
            "SELECT reason FROM rejections WHERE source = 'market' ORDER BY rejection_id",
            &[],
        )
        .await
        .expect("rejections")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        reasons,
        [
            "purchase_over_cap",
            "conflicting_purchase",
            "unknown_licence",
            "malformed_json",
            "negative_energy"
        ]
    );
    let page = api
        .get("/api/v1/rejections?reason=malformed_json", Some(VIEWER))
        .await
        .json();
    assert_eq!(page["items"][0]["raw"], "{not json");
    assert_eq!(page["items"][0]["raw_encoding"], "utf8");
    assert_eq!(page["items"][0]["topic"], topic);
    let status = api.get("/api/v1/status", None).await.json();
    assert_eq!(status["rejections_total"], 5);
    let text = api.get("/metrics", None).await.text();
    assert!(
        text.contains(r#"gridwatch_purchases_total{outcome="accepted"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gridwatch_purchases_total{outcome="duplicate"} 1"#),
        "{text}"
    );
    publisher.disconnect().await;
    api.stop().await;
}

#[tokio::test]
async fn a_purchase_the_database_always_refuses_is_kept_as_a_rejection_and_the_topic_moves_on() {
    let broker = Broker::start();
    let db = TestDb::migrated().await;
    let config = config(&db, Some(&broker));
    let api = api_taking_purchases(config.clone()).await;
    // A fault that only one purchase meets, every time: the database refuses to store it.
    db.client()
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.id = 'PM-POISON' THEN
                     RAISE EXCEPTION 'purchase PM-POISON cannot be stored';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON purchases
                 FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        )
        .await
        .expect("the trigger is created");
    let mut publisher = Publisher::connect(broker.port, MARKET_USER).await;
    let topic = "gridwatch/v1/market/purchases";
    // An unknown field named with a NUL: its refusal quotes the name, and PostgreSQL's text
    // columns refuse a NUL, so recording it failed on every attempt before the NUL was replaced.
    let nul_field = r#"{"a\u0000b": 1}"#;
    let poison = hour_purchase("PM-POISON", 500_000);
    for payload in [
        nul_field.to_owned(),
        poison.clone(),
        hour_purchase("PM-AFTER", 500_000),
    ] {
        publisher.publish(topic, payload).await;
    }
    publisher.flush().await;
    let started = std::time::Instant::now();
    eventually(WAIT, "the purchase after the poison stored", || {
        let db = &db;
        async move {
            let done = db
                .count("SELECT count(*) FROM purchases WHERE id = 'PM-AFTER'")
                .await
                == 1;
            done.then_some(())
        }
    })
    .await;
    // Bounded retries (about 3 s of backoff), not forever.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(db.count("SELECT count(*) FROM purchases").await, 1);
    let client = db.client().await;
    let kept: Vec<(String, String, Vec<u8>)> = client
        .query(
            "SELECT reason, detail, raw FROM rejections WHERE source = 'market'
             ORDER BY rejection_id",
            &[],
        )
        .await
        .expect("rejections")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let (reason, detail, raw) = &kept[0];
    assert_eq!(reason, "invalid_field");
    assert!(detail.contains("unknown field `a\u{FFFD}b`"), "{detail}");
    assert_eq!(raw, nul_field.as_bytes());
    let (reason, detail, raw) = &kept[1];
    assert_eq!(reason, "invalid_field");
    assert!(
        detail.contains(&format!(
            "the database refused this message {} times",
            gridwatch::ledger::mqtt::MAX_ATTEMPTS_ON_STATEMENT_ERROR
        )),
        "{detail}"
    );
    assert!(
        detail.contains("purchase PM-POISON cannot be stored"),
        "{detail}"
    );
    assert_eq!(raw, poison.as_bytes());
    assert_eq!(
        db.count("SELECT count(*) FROM purchase_attempts WHERE reason = 'invalid_field' AND channel = 'mqtt'")
            .await,
        2
    );
    let status = api.get("/api/v1/status", None).await.json();
    assert_eq!(status["rejections_total"], 2);
    let text = api.get("/metrics", None).await.text();
    for line in [
        r#"gridwatch_purchases_total{outcome="unstorable"} 1"#,
        r#"gridwatch_purchases_total{outcome="invalid_field"} 1"#,
        r#"gridwatch_purchases_total{outcome="accepted"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    // Both were acknowledged: the same session, started again, is not given them again.
    api.stop().await;
    let api = ApiServer::start_with(config).await;
    publisher
        .publish(topic, hour_purchase("PM-LATER", 500_000))
        .await;
    publisher.flush().await;
    eventually(WAIT, "a purchase after the restart stored", || {
        let db = &db;
        async move {
            let done = db
                .count("SELECT count(*) FROM purchases WHERE id = 'PM-LATER'")
                .await
                == 1;
            done.then_some(())
        }
    })
    .await;
    assert_eq!(
        db.count("SELECT count(*) FROM rejections WHERE source = 'market'")
            .await,
        2
    );
    publisher.disconnect().await;
    api.stop().await;
}

#[tokio::test]
async fn a_purchase_held_by_a_full_disk_is_stored_when_the_database_recovers() {
    let broker = Broker::start();
    let db = TestDb::migrated().await;
    let api = api_taking_purchases(config(&db, Some(&broker))).await;
    // The database refuses every purchase as a full disk would (SQLSTATE 53100): not the
    // message's fault, so it is held, not turned into a rejection.
    let admin = db.client().await;
    admin
        .batch_execute(
            "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full';
             END $$;
             CREATE TRIGGER disk_full BEFORE INSERT ON purchases
                 FOR EACH ROW EXECUTE FUNCTION disk_full();",
        )
        .await
        .expect("the trigger is created");
    let mut publisher = Publisher::connect(broker.port, MARKET_USER).await;
    publisher
        .publish(
            "gridwatch/v1/market/purchases",
            hour_purchase("PM-HELD", 500_000),
        )
        .await;
    publisher.flush().await;
    // Well past the bounded retries of an error that is the message's (about 3 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(db.count("SELECT count(*) FROM purchases").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM rejections").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM purchase_attempts").await, 0);
    admin
        .batch_execute("DROP TRIGGER disk_full ON purchases")
        .await
        .expect("the disk is freed");
    eventually(WAIT, "the held purchase stored", || {
        let db = &db;
        async move {
            let done = db
                .count("SELECT count(*) FROM purchases WHERE id = 'PM-HELD'")
                .await
                == 1;
            done.then_some(())
        }
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM rejections").await, 0);
    let purchases = &api.metrics.api.purchases;
    assert_eq!(purchases.with_label_values(&["accepted"]).get(), 1);
    assert_eq!(
        purchases
            .with_label_values(&[gridwatch::ledger::mqtt::UNSTORABLE_OUTCOME])
            .get(),
        0
    );
    publisher.disconnect().await;
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Bought energy

#[tokio::test]
async fn bought_energy_spreads_each_purchase_evenly_over_its_delivery() {
    let (db, api) = with_registry().await;
    for body in [
        purchase(
            "B-1",
            1_000_000,
            "2025-10-01T00:00:00Z",
            "2025-10-01T01:00:00Z",
        ),
        purchase(
            "B-2",
            600_000,
            "2025-10-01T00:30:00Z",
            "2025-10-01T02:30:00Z",
        ),
    ] {
        assert_eq!(
            api.post_json("/api/v1/purchases", Some(MARKET), &body)
                .await
                .status,
            201
        );
    }
    let client = db.client().await;
    let bought = |from: &'static str, to: &'static str| {
        let client = &client;
        async move {
            gridwatch::ledger::bought_energy(client, "KZ-MIN-042", time(from), time(to))
                .await
                .expect("query")
        }
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    // Whole first purchase, and the second's first half hour: 600,000 x 30 / 120.
    assert!(close(
        bought("2025-10-01T00:00:00Z", "2025-10-01T01:00:00Z").await,
        1_150_000.0
    ));
    // A partial overlap of both.
    assert!(close(
        bought("2025-10-01T00:15:00Z", "2025-10-01T00:45:00Z").await,
        500_000.0 + 75_000.0
    ));
    // Only the second's tail.
    assert!(close(
        bought("2025-10-01T02:00:00Z", "2025-10-01T03:00:00Z").await,
        150_000.0
    ));
    // Everything, and nothing.
    assert!(close(
        bought("2025-09-01T00:00:00Z", "2025-11-01T00:00:00Z").await,
        1_600_000.0
    ));
    assert!(close(
        bought("2025-10-01T02:30:00Z", "2025-10-01T04:00:00Z").await,
        0.0
    ));
    assert!(close(
        bought("2025-10-01T01:00:00Z", "2025-10-01T00:00:00Z").await,
        0.0
    ));
    // Hour by hour, the spreads add up to what was bought.
    let mut total = 0.0;
    for h in 0..4 {
        let from = time("2025-10-01T00:00:00Z") + chrono::Duration::hours(h);
        total += gridwatch::ledger::bought_energy(
            &client,
            "KZ-MIN-042",
            from,
            from + chrono::Duration::hours(1),
        )
        .await
        .expect("query");
    }
    assert!(close(total, 1_600_000.0), "{total}");
    let other = gridwatch::ledger::bought_energy(
        &client,
        "KZ-OTHER",
        time("2025-10-01T00:00:00Z"),
        time("2025-10-02T00:00:00Z"),
    )
    .await
    .expect("query");
    assert_eq!(other, 0.0);
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Calculator

#[tokio::test]
async fn the_calculator_matches_hand_computed_figures_and_the_2024_and_2025_shares() {
    let (_db, api) = started().await;
    let ask = |q: &str| api.get_owned(format!("/api/v1/calculator?{q}"));
    // A month of a 50 MW farm: 36,000 MWh; profit 600 M KZT; 40 BTC at 50 M KZT.
    let r = ask("consumption_mwh=36000&revenue_kzt=2000000000&costs_kzt=1400000000&mined_assets=40&asset_value_kzt=50000000&date=2025-10-01").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json();
    assert_eq!(c["purchases_needed"], 36_000);
    assert_eq!(c["profit_kzt"], 600_000_000.0);
    assert_eq!(c["profit_tax_kzt"], 90_000_000.0);
    assert_eq!(c["aifc_share_pct"], 75.0);
    assert_eq!(c["aifc_obligation_assets"], 30.0);
    assert_eq!(c["aifc_obligation_kzt"], 1_500_000_000.0);
    assert_eq!(
        c["profile"],
        json!({"name": "kz-2025", "effective_from": "2025-01-01"})
    );
    let c = ask("consumption_mwh=36000&revenue_kzt=2000000000&costs_kzt=1400000000&mined_assets=40&asset_value_kzt=50000000&date=2024-10-01").await.json();
    assert_eq!(
        (
            c["aifc_share_pct"].clone(),
            c["aifc_obligation_assets"].clone(),
            c["aifc_obligation_kzt"].clone()
        ),
        (json!(50.0), json!(20.0), json!(1_000_000_000.0))
    );
    assert_eq!(c["profile"]["name"], "kz-2024");
    // 2.5 MWh needs 3 purchases; a loss pays no tax; no asset value, no KZT obligation.
    let c =
        ask("consumption_mwh=2.5&revenue_kzt=100&costs_kzt=250&mined_assets=0.5&date=2025-01-01")
            .await
            .json();
    assert_eq!(c["purchases_needed"], 3);
    assert_eq!(c["profit_kzt"], -150.0);
    assert_eq!(c["profit_tax_kzt"], 0.0);
    assert_eq!(c["aifc_obligation_assets"], 0.375);
    assert_eq!(c["aifc_obligation_kzt"], Value::Null);
    // The last day of 2024 is still 2024's rules.
    let c = ask("consumption_mwh=1&revenue_kzt=0&costs_kzt=0&mined_assets=2&date=2024-12-31")
        .await
        .json();
    assert_eq!(
        (
            c["purchases_needed"].clone(),
            c["aifc_obligation_assets"].clone()
        ),
        (json!(1), json!(1.0))
    );
    for (query, status, code) in [
        (
            "consumption_mwh=-1&revenue_kzt=0&costs_kzt=0&mined_assets=0",
            422,
            "invalid_input",
        ),
        (
            "consumption_mwh=NaN&revenue_kzt=0&costs_kzt=0&mined_assets=0",
            422,
            "invalid_input",
        ),
        (
            "consumption_mwh=inf&revenue_kzt=0&costs_kzt=0&mined_assets=0",
            422,
            "invalid_input",
        ),
        (
            "consumption_mwh=1e400&revenue_kzt=0&costs_kzt=0&mined_assets=0",
            422,
            "invalid_input",
        ),
        (
            "consumption_mwh=20000000&revenue_kzt=0&costs_kzt=0&mined_assets=0",
            422,
            "invalid_input",
        ),
        (
            "consumption_mwh=1&revenue_kzt=0&costs_kzt=0&mined_assets=0&asset_value_kzt=-3",
            422,
            "invalid_input",
        ),
        (
            "consumption_mwh=1&revenue_kzt=0&costs_kzt=0&mined_assets=0&date=2023-12-31",
            422,
            "invalid_input",
        ),
        (
            "consumption_mwh=1&revenue_kzt=0&costs_kzt=0&mined_assets=0&date=yesterday",
            422,
            "invalid_input",
        ),
        (
            "consumption_mwh=1&revenue_kzt=0&costs_kzt=0",
            400,
            "invalid_query",
        ),
        (
            "consumption_mwh=lots&revenue_kzt=0&costs_kzt=0&mined_assets=0",
            400,
            "invalid_query",
        ),
        (
            "consumption_mwh=1&revenue_kzt=0&costs_kzt=0&mined_assets=0&asset_value_kzt=x",
            400,
            "invalid_query",
        ),
    ] {
        let r = ask(query).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{query}: {}",
            r.text()
        );
    }
    api.stop().await;
}

#[test]
fn the_calc_command_prints_a_table_json_and_clear_errors() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gridwatch"))
            .arg("calc")
            .args(args)
            .env("GRIDWATCH_LOG", "warn")
            .output()
            .expect("gridwatch runs")
    };
    let out = run(&[
        "--consumption-mwh",
        "36000",
        "--revenue-kzt",
        "2000000000",
        "--costs-kzt",
        "1400000000",
        "--mined-assets",
        "40",
        "--asset-value-kzt",
        "50000000",
        "--date",
        "2025-10-01",
    ]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Purchases needed") && table.contains("36,000"),
        "{table}"
    );
    assert!(
        table.contains("90,000,000.00 KZT") && table.contains("kz-2025"),
        "{table}"
    );
    let out = run(&[
        "--consumption-mwh",
        "3",
        "--revenue-kzt",
        "0",
        "--costs-kzt",
        "0",
        "--mined-assets",
        "4",
        "--date",
        "2024-03-01",
        "--json",
    ]);
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (
            json["purchases_needed"].clone(),
            json["aifc_obligation_assets"].clone()
        ),
        (json!(3), json!(2.0))
    );
    let out = run(&[
        "--consumption-mwh",
        "-1",
        "--revenue-kzt",
        "0",
        "--costs-kzt",
        "0",
        "--mined-assets",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--consumption-mwh: -1 is negative"));
}

// ---------------------------------------------------------------------------------------------
// Rejections

async fn seed_rejections(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "INSERT INTO rejections (received_at, topic, source, meter_id, reading_ts, reason, detail, raw, raw_size)
             SELECT '2025-10-01T00:00:00Z'::timestamptz + n * interval '1 minute',
                    'gridwatch/v1/meters/M-' || n || '/readings', 'M-' || n, 'M-' || (n % 3),
                    NULL, CASE WHEN n % 2 = 0 THEN 'malformed_json' ELSE 'unknown_meter' END,
                    'detail ' || n,
                    CASE WHEN n = 7 THEN '\\xff00fe'::bytea ELSE convert_to('{\"n\": ' || n || '}', 'UTF8') END,
                    CASE WHEN n = 8 THEN 70000 ELSE 10 END
             FROM generate_series(1, 10) AS n;
             -- Two at the same instant: the cursor must still order them.
             INSERT INTO rejections (received_at, topic, source, reason, detail, raw, raw_size)
             VALUES ('2025-10-01T00:05:00Z', 't', 's', 'invalid_topic', 'same instant', '', 0);",
        )
        .await
        .expect("seed rejections");
}

#[tokio::test]
async fn rejections_page_newest_first_with_filters_and_an_opaque_cursor() {
    let (db, api) = started().await;
    seed_rejections(&db).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/rejections?limit=3&cursor={c}"),
            None => "/api/v1/rejections?limit=3".to_owned(),
        };
        let page = api.get(&path, Some(VIEWER)).await.json();
        for item in page["items"].as_array().expect("items") {
            seen.push((
                item["received_at"].as_str().unwrap_or("").to_owned(),
                item["id"].as_i64().unwrap_or(0),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 11);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, no repeats");
    let page = api
        .get(
            "/api/v1/rejections?reason=unknown_meter&meter=M-1",
            Some(VIEWER),
        )
        .await
        .json();
    let items = page["items"].as_array().expect("items");
    assert!(
        !items.is_empty()
            && items
                .iter()
                .all(|i| i["reason"] == "unknown_meter" && i["meter_id"] == "M-1")
    );
    let page = api
        .get(
            "/api/v1/rejections?from=2025-10-01T00:03:00Z&to=2025-10-01T00:06:00%2B00:00",
            Some(VIEWER),
        )
        .await
        .json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(4));
    let page = api
        .get("/api/v1/rejections?meter=M-7&limit=1000", Some(VIEWER))
        .await
        .json();
    assert!(page["items"].as_array().expect("items").is_empty());
    let page = api
        .get(
            "/api/v1/rejections?reason=unknown_meter&limit=10",
            Some(VIEWER),
        )
        .await
        .json();
    let binary = page["items"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["source"] == "M-7").cloned())
        .expect("M-7");
    assert_eq!(
        (binary["raw"].clone(), binary["raw_encoding"].clone()),
        (json!("/wD+"), json!("base64"))
    );
    let page = api
        .get(
            "/api/v1/rejections?reason=malformed_json&limit=10",
            Some(VIEWER),
        )
        .await
        .json();
    let truncated = page["items"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["source"] == "M-8").cloned())
        .expect("M-8");
    assert_eq!(
        (truncated["raw"].clone(), truncated["raw_truncated"].clone()),
        (json!("{\"n\": 8}"), json!(true))
    );
    for (query, code) in [
        ("cursor=garbage", "invalid_cursor"),
        ("cursor=MTIzOjQ1Ng%3D%3Dxx", "invalid_cursor"),
        ("limit=0", "invalid_query"),
        ("limit=1001", "invalid_query"),
        ("limit=99999999999999999999999", "invalid_query"),
        ("limit=-1", "invalid_query"),
        ("limit=ten", "invalid_query"),
        ("reason=not_a_reason", "invalid_query"),
        ("from=yesterday", "invalid_query"),
        ("to=2025-10-01", "invalid_query"),
    ] {
        let r = api
            .get(&format!("/api/v1/rejections?{query}"), Some(VIEWER))
            .await;
        assert_eq!((r.status, r.error_code().as_str()), (400, code), "{query}");
    }
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Robustness

#[tokio::test]
async fn hostile_requests_never_get_a_server_error_and_never_change_stored_data() {
    let (db, api) = with_registry().await;
    seed_rejections(&db).await;
    assert_eq!(
        api.post_json("/api/v1/purchases", Some(MARKET), &hour_purchase("R-1", 10))
            .await
            .status,
        201
    );
    let before = snapshot(&db, &api).await;
    let rejections_before = db.count("SELECT count(*) FROM rejections").await;
    let mut answers = Vec::new();
    let odd_queries = [
        "/api/v1/rejections?meter=%27%3B%20DROP%20TABLE%20rejections%3B%20--",
        "/api/v1/rejections?meter=M-1'%20OR%20'1'='1",
        "/api/v1/rejections?reason=malformed_json'%20OR%201=1--",
        "/api/v1/rejections?meter=%E2%9A%A1%F0%9F%94%A5%D0%96",
        "/api/v1/rejections?meter=%00%01%02",
        "/api/v1/rejections?meter=%FF%FE",
        "/api/v1/rejections?from=9999-12-31T23:59:59Z&to=0000-01-01T00:00:00Z",
        "/api/v1/rejections?from=1970-01-01T00:00:00%2B14:00",
        "/api/v1/rejections?limit=1e3",
        "/api/v1/rejections?limit=&cursor=&reason=&meter=",
        "/api/v1/rejections?limit=5&limit=6",
        "/api/v1/rejections?cursor=OTIyMzM3MjAzNjg1NDc3NTgwNzo5MjIzMzcyMDM2ODU0Nzc1ODA3",
        "/api/v1/rejections?cursor=LTkyMjMzNzIwMzY4NTQ3NzU4MDg6LTE",
        "/api/v1/rejections?%ZZ=1",
        "/api/v1/rejections?a[b]=c&&&==",
        "/api/v1/calculator?consumption_mwh=1e308&revenue_kzt=1e308&costs_kzt=1e308&mined_assets=1e308",
        "/api/v1/calculator?consumption_mwh=0x10&revenue_kzt=0&costs_kzt=0&mined_assets=0",
        "/api/v1/calculator?consumption_mwh=1&revenue_kzt=0&costs_kzt=0&mined_assets=0&date=99999-01-01",
        "/api/v1/calculator?consumption_mwh=1&revenue_kzt=0&costs_kzt=0&mined_assets=0&date=0001-01-01",
        "/api/v1/calculator?consumption_mwh=1&revenue_kzt=1e15&costs_kzt=0&mined_assets=1e12&asset_value_kzt=1e15",
        "/api/v1/calculator?consumption_mwh=-0&revenue_kzt=0&costs_kzt=0&mined_assets=0",
        "/api/v1/registry?%27%3B--",
        "/api/v1/../api/v1/status",
        "//api//v1//status",
        "/api/v1/status/",
        "/api/v1/STATUS",
    ];
    for path in odd_queries {
        let r = api.get(path, Some(ADMIN)).await;
        answers.push((format!("GET {path}"), r));
    }
    // Raw, unencoded bytes in the request line.
    for path in [
        "/api/v1/rejections?meter=ö ü",
        "/api/v1/rejections?meter=\u{1F525}",
        "/api/v1/rejections?x=\"<>\\^`{|}",
    ] {
        let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\n\r\n");
        answers.push((
            format!("raw GET {path}"),
            api.raw(head.into_bytes(), Vec::new()).await,
        ));
    }
    let bodies: Vec<(&str, &str, Vec<u8>)> = vec![
        ("POST", "/api/v1/purchases", b"{".to_vec()),
        ("POST", "/api/v1/purchases", b"\xff\xfe\x00garbage".to_vec()),
        (
            "POST",
            "/api/v1/purchases",
            b"{\"id\": {\"$ne\": null}}".to_vec(),
        ),
        (
            "POST",
            "/api/v1/purchases",
            hour_purchase("R-1'; DELETE FROM purchases; --", 10).into_bytes(),
        ),
        (
            "POST",
            "/api/v1/purchases",
            hour_purchase("R-2", 10)
                .replace("KZ-MIN-042", "KZ-MIN-042' OR '1'='1")
                .into_bytes(),
        ),
        (
            "POST",
            "/api/v1/purchases",
            purchase("R-4", 10, "+275760-09-13T00:00:00Z", "2025-10-01T01:00:00Z").into_bytes(),
        ),
        (
            "POST",
            "/api/v1/purchases",
            purchase("R-5", 10, "0001-01-01T00:00:00Z", "0001-01-01T01:00:00Z").into_bytes(),
        ),
        (
            "POST",
            "/api/v1/purchases",
            purchase("R-6", 10, "9999-12-31T22:00:00Z", "9999-12-31T23:00:00Z").into_bytes(),
        ),
        ("POST", "/api/v1/purchases", "[".repeat(10_000).into_bytes()),
        (
            "POST",
            "/api/v1/purchases",
            format!("{{\"id\": \"{}\"}}", "x".repeat(60_000)).into_bytes(),
        ),
        ("POST", "/api/v1/purchases", vec![b' '; 70 * 1024]),
        ("PUT", "/api/v1/registry", b"{\"regions\": [".to_vec()),
        ("PUT", "/api/v1/registry", b"{\"regions\": 5}".to_vec()),
        ("PUT", "/api/v1/registry", "[".repeat(100_000).into_bytes()),
        (
            "PUT",
            "/api/v1/registry",
            br#"{"regions":[{"id":"x","name":"\u0000","tariff_kzt_per_kwh":1}]}"#.to_vec(),
        ),
        (
            "PUT",
            "/api/v1/registry",
            br#"{"regions":[{"id":"x","name":"ok","tariff_kzt_per_kwh":1e999}]}"#.to_vec(),
        ),
        (
            "PUT",
            "/api/v1/registry",
            br#"{"regions":[{"id":"\u00e9","name":"ok","tariff_kzt_per_kwh":1}]}"#.to_vec(),
        ),
        (
            "PUT",
            "/api/v1/registry",
            br#"{"nodes":[{"id":"N-1","parent":"N-1","region":"east-kz","kind":"loop"}]}"#.to_vec(),
        ),
        ("GET", "/api/v1/status", b"{}".to_vec()),
    ];
    for (method, path, body) in bodies {
        let label = format!(
            "{method} {path} {}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
        let r = api
            .send(method, path, Some(ADMIN), Some("application/json"), &body)
            .await;
        answers.push((label, r));
    }
    // Too large: 64 KiB + 1 for purchases, 50 MiB + 1 for the registry.
    let r = api
        .send(
            "POST",
            "/api/v1/purchases",
            Some(ADMIN),
            Some("application/json"),
            &vec![b' '; 64 * 1024 + 1],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "payload_too_large")
    );
    let r = api
        .send(
            "PUT",
            "/api/v1/registry",
            Some(ADMIN),
            Some("application/json"),
            &vec![b' '; 50 * 1024 * 1024 + 1],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "payload_too_large")
    );
    // Exactly at the limit is read (and here refused as not JSON, not as too large).
    let r = api
        .send(
            "POST",
            "/api/v1/purchases",
            Some(ADMIN),
            Some("application/json"),
            &vec![b' '; 64 * 1024],
        )
        .await;
    assert_eq!(r.status, 400);
    // A request that is not HTTP at all.
    answers.push((
        "garbage".into(),
        api.raw(b"\x16\x03\x01 hello\r\n\r\n".to_vec(), Vec::new())
            .await,
    ));
    for (label, r) in &answers {
        assert!(r.status < 500, "{label}: {} {}", r.status, r.text());
        if r.status >= 400 && r.header("content-type").is_some() {
            r.error_code();
        }
    }
    assert_eq!(
        snapshot(&db, &api).await,
        before,
        "hostile requests changed stored data"
    );
    // The largest energy JSON can carry is a well-formed attempt over the cap: refused, kept
    // and raised like any other, without overflowing anything.
    let r = api
        .post_json(
            "/api/v1/purchases",
            Some(MARKET),
            &hour_purchase("R-3", i64::MAX),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "purchase_over_cap")
    );
    assert_eq!(
        db.count("SELECT count(*) FROM anomalies WHERE severity = 'critical' AND energy_wh = 9223372036853775807")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM rejections").await,
        rejections_before
    );
    api.stop().await;
}
