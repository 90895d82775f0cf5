//! The auditors' web page in headless Chromium (Debian's `chromium`, installed by
//! `scripts/setup.sh --test`): served by the API in-process on a free port with a tokens file of
//! its own, over a database holding a few anomalies. The page loads the work queue, filters it,
//! opens an anomaly with its evidence chart and history, and a transition made through the form
//! appears in the history; a link as the auditors' dashboard makes it (`/#anomaly=<id>`), opened
//! in a tab without a token, asks for the token and then opens that anomaly. Screenshots are saved
//! to tests/output/ (ignored by git).
//!
//! Without Chromium the test says so and passes, except under CI (`CI=true`) or with
//! `GRIDWATCH_REQUIRE_CHROMIUM=1`, where a missing browser is a failure.

// Not every test crate uses every helper the support module re-exports.
#[allow(unused_imports)]
mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use gridwatch::anomalies::{create, NewAnomaly, Severity};
use gridwatch::api::auth::hash_token;
use support::api::{ApiServer, ADMIN};
use support::web::{find_chromium, Browser};
use support::{TempDir, TestDb};

const INVESTIGATOR_TOKEN: &str = "web-test-investigator-3f9c1a";
const WIDTH: u32 = 1400;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn anomaly(kind: &str, key: &str) -> NewAnomaly {
    NewAnomaly {
        kind: kind.into(),
        condition_key: key.into(),
        region: Some("east-kz".into()),
        node: None,
        meter: None,
        licence: None,
        started_at: t("2025-10-01T06:00:00Z"),
        ended_at: None,
        detected_at: t("2025-10-01T06:31:02Z"),
        energy_wh: 1_000_000,
        loss_kzt: 10_300.0,
        score: 5.0,
        confidence: 0.5,
        severity: Severity::Medium,
        suspects: Vec::new(),
        evidence: json!({}),
    }
}

/// The registry, a feeder's balance with 50 MW going missing from 06:00, and three anomalies;
/// returns the diversion's id.
async fn seed(db: &TestDb) -> String {
    let admin = ApiServer::start(db).await;
    let registry = r#"{
      "regions": [{"id": "east-kz", "name": "East Kazakhstan", "tariff_kzt_per_kwh": 10.3}],
      "nodes": [{"id": "EK-F-001", "parent": null, "region": "east-kz", "kind": "feeder", "input_meter": "EK-F-001-IN"}],
      "meters": [{"id": "EK-F-001-IN", "node": "EK-F-001", "role": "input", "class": "boundary", "accuracy_pct": 0.5},
                 {"id": "M-000017", "node": "EK-F-001", "role": "consumer", "class": "household", "accuracy_pct": 1.0}]
    }"#;
    let r = admin
        .put_json("/api/v1/registry", Some(ADMIN), registry)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    admin.stop().await;
    let mut client = db.client().await;
    client
        .execute(
            "INSERT INTO detector_node_windows (node_key, window_start, input_wh, fed_wh, coverage,
                 expected_wh, sigma_wh, excess_wh, z, in_case, in_gap, model_learned, state)
             SELECT (SELECT node_key FROM nodes WHERE id = 'EK-F-001'),
                    '2025-10-01T00:00:00Z'::timestamptz + i * interval '15 minutes',
                    10200000 + 4000 * (i % 5) + CASE WHEN i >= 24 THEN 12500000 ELSE 0 END,
                    10000000 + 3000 * (i % 7), 0.98, 200000, 20000, 0, 0, i >= 24, false, true, '{}'
             FROM generate_series(0, 63) AS i",
            &[],
        )
        .await
        .expect("node windows");
    let tx = client.transaction().await.expect("transaction");
    let diversion = NewAnomaly {
        node: Some("EK-F-001".into()),
        energy_wh: 50_012_000,
        loss_kzt: 515_123.6,
        score: 41.2,
        confidence: 0.9,
        severity: Severity::Critical,
        suspects: vec!["M-000017".into()],
        evidence: json!({
            "summary": "Node EK-F-001 received 50.0 MWh more than it delivered and lost in the case's windows (50.00 MW on average).",
            "test": {"window_z_threshold": 4.88}
        }),
        ..anomaly("diversion", "web-diversion")
    };
    let others = [
        NewAnomaly {
            node: Some("EK-F-001".into()),
            meter: Some("M-000017".into()),
            loss_kzt: 40_000.0,
            confidence: 0.8,
            severity: Severity::High,
            evidence: json!({"summary": "A household meter draws a flat 5 kW day and night."}),
            ..anomaly("unlicensed_mining", "web-mining")
        },
        NewAnomaly {
            meter: Some("M-000017".into()),
            loss_kzt: 2_000.0,
            severity: Severity::Low,
            ..anomaly("meter_tamper", "web-tamper")
        },
    ];
    let id = create(&tx, &diversion, "detector")
        .await
        .expect("created")
        .id;
    for other in &others {
        create(&tx, other, "detector").await.expect("created");
    }
    tx.commit().await.expect("commit");
    id
}

/// A tokens file of this test's own.
fn tokens_file(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path().join("tokens.toml");
    std::fs::write(
        &path,
        format!(
            "[[tokens]]\nname = \"web-investigator\"\nrole = \"investigator\"\nsha256 = \"{}\"\n",
            hash_token(INVESTIGATOR_TOKEN)
        ),
    )
    .expect("tokens file");
    path
}

fn must_have_chromium() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var_os("GRIDWATCH_REQUIRE_CHROMIUM").is_some()
}

#[tokio::test]
async fn the_page_shows_the_queue_an_anomalys_chart_and_history_and_records_a_transition() {
    let Some(chromium) = find_chromium() else {
        assert!(
            !must_have_chromium(),
            "Chromium is required here but was not found: install Debian's chromium package (scripts/setup.sh --test) or set GRIDWATCH_CHROMIUM"
        );
        eprintln!(
            "SKIPPED the_page_shows_the_queue...: no Chromium (install Debian's chromium package, \
             or set GRIDWATCH_CHROMIUM to its path)"
        );
        return;
    };
    let started = Instant::now();
    let db = TestDb::migrated().await;
    let diversion = seed(&db).await;
    let dir = TempDir::new("web");
    let mut config = support::api::config(&db, None);
    config.tokens_file = tokens_file(&dir);
    let api = ApiServer::start_with(config).await;
    let output = support::workspace_root().join("tests/output");
    let base = format!("http://{}", api.addr);

    let mut browser = Browser::launch(&chromium, WIDTH, 1000).await;
    let driven = tokio::time::timeout(Duration::from_secs(120), Box::pin(async {
        // Collects Content-Security-Policy violations from the first script on.
        browser
            .on_new_document(
                "window.__csp = []; document.addEventListener('securitypolicyviolation', \
                 (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));",
            )
            .await;
        browser.navigate(&format!("{base}/")).await;
        browser
            .wait_for("document.getElementById('token-form')", "the token form")
            .await;
        assert_eq!(
            browser.eval("document.querySelectorAll('#queue tbody tr').length").await,
            json!(0),
            "nothing is shown before a token is given"
        );

        // The token, typed once, kept for this tab only.
        browser.type_into("#token", INVESTIGATOR_TOKEN).await;
        browser.click("#token-form button").await;
        browser
            .wait_for(
                "document.querySelectorAll('#queue tbody tr').length === 3",
                "the work queue",
            )
            .await;
        assert_eq!(
            browser
                .eval("sessionStorage.getItem('gridwatch.token')")
                .await,
            json!(INVESTIGATOR_TOKEN)
        );
        assert_eq!(
            browser
                .eval("[localStorage.length, document.cookie]")
                .await,
            json!([0, ""])
        );
        // Most money at stake first: 515,123.6 x 0.9.
        assert_eq!(
            browser
                .eval("document.querySelector('#queue tbody tr').dataset.id")
                .await,
            json!(diversion)
        );
        browser
            .screenshot(&output.join("web-1-queue.png"), WIDTH)
            .await;

        // A filter.
        browser
            .eval("document.getElementById('f-kind').value = 'meter_tamper'")
            .await;
        browser.click("#filters button").await;
        browser
            .wait_for(
                "document.querySelectorAll('#queue tbody tr').length === 1",
                "the filtered queue",
            )
            .await;
        browser
            .eval("document.getElementById('f-kind').value = ''")
            .await;
        browser.click("#filters button").await;
        browser
            .wait_for(
                "document.querySelectorAll('#queue tbody tr').length === 3",
                "the whole queue again",
            )
            .await;

        // Open the diversion: summary, chart, history.
        browser
            .click(&format!("#queue tbody tr[data-id='{diversion}']"))
            .await;
        browser
            .wait_for(
                "document.querySelector('#chart svg') && document.querySelectorAll('#history tbody tr').length === 1",
                "the anomaly's chart and history",
            )
            .await;
        let chart_text = browser
            .eval("document.querySelector('#chart svg').textContent")
            .await;
        let chart_text = chart_text.as_str().unwrap_or_default();
        assert!(
            chart_text.contains("Energy went missing on feeder EK-F-001")
                && chart_text.contains("Local time (UTC+05:00)"),
            "{chart_text}"
        );
        assert!(
            browser
                .eval("document.querySelectorAll('#chart svg polyline').length")
                .await
                .as_u64()
                .unwrap_or(0)
                >= 4
        );
        let summary = browser
            .eval("document.getElementById('detail-summary').textContent")
            .await;
        assert!(summary.as_str().unwrap_or_default().contains("50.0 MWh"));
        browser
            .screenshot(&output.join("web-2-anomaly.png"), WIDTH)
            .await;

        // A transition through the form: refused without the note dismissal needs, then made.
        browser
            .eval("document.getElementById('to').value = 'investigating'")
            .await;
        browser
            .type_into("#note", "Field team sent to EK-F-001, 12 Oct")
            .await;
        browser.click("#transition button").await;
        browser
            .wait_for(
                "document.querySelectorAll('#history tbody tr').length === 2",
                "the transition in the history",
            )
            .await;
        let last = browser
            .eval("document.querySelector('#history tbody tr:last-child').innerText")
            .await;
        let last = last.as_str().unwrap_or_default().to_owned();
        for needle in [
            "web-investigator",
            "open → investigating",
            "Field team sent to EK-F-001, 12 Oct",
        ] {
            assert!(last.contains(needle), "{needle:?} not in {last:?}");
        }
        assert_eq!(
            browser
                .eval(&format!(
                    "document.querySelector(\"#queue tr[data-id='{diversion}'] td.status\").textContent"
                ))
                .await,
            json!("investigating")
        );
        browser
            .eval("document.getElementById('to').value = 'dismissed'")
            .await;
        browser.click("#transition button").await;
        browser
            .wait_for(
                "document.getElementById('transition-result').textContent.includes('needs a note')",
                "the refusal of a dismissal without a note",
            )
            .await;
        browser
            .screenshot(&output.join("web-3-transition.png"), WIDTH)
            .await;

        let violations = browser.eval("window.__csp").await;
        assert_eq!(violations, json!([]), "Content-Security-Policy violations");

        // The auditors' dashboard links to /#anomaly=<id>. Opened without a token, the page asks
        // for one; once it is given, the page opens that anomaly, and the token never enters the
        // address.
        browser.click("#forget").await;
        browser.navigate("about:blank").await;
        browser
            .navigate(&format!("{base}/#anomaly={diversion}"))
            .await;
        browser
            .wait_for(
                "document.getElementById('token-form') && !document.getElementById('token-form').hidden \
                 && document.getElementById('queue-status').textContent.includes('Enter a token to open anomaly')",
                "the page asking for a token to open the linked anomaly",
            )
            .await;
        assert_eq!(
            browser
                .eval("document.getElementById('detail').hidden")
                .await,
            json!(true),
            "nothing is shown before a token is given"
        );
        browser.type_into("#token", INVESTIGATOR_TOKEN).await;
        browser.click("#token-form button").await;
        browser
            .wait_for(
                &format!(
                    "!document.getElementById('detail').hidden \
                     && document.getElementById('detail').dataset.id === '{diversion}' \
                     && document.querySelector('#chart svg') \
                     && document.querySelectorAll('#history tbody tr').length === 2"
                ),
                "the linked anomaly with its chart and history",
            )
            .await;
        assert_eq!(
            browser
                .eval(&format!(
                    "[location.hash, location.href.includes('{INVESTIGATOR_TOKEN}')]"
                ))
                .await,
            json!([format!("#anomaly={diversion}"), false])
        );
        browser
            .screenshot(&output.join("web-4-linked-anomaly.png"), WIDTH)
            .await;
        let violations = browser.eval("window.__csp").await;
        assert_eq!(
            violations,
            json!([]),
            "Content-Security-Policy violations on the linked page"
        );
    }))
    .await;
    let exceptions: Vec<String> = browser
        .events_of("Runtime.exceptionThrown")
        .iter()
        .map(|e| e.to_string())
        .collect();
    let log = browser.log();
    browser.close().await;
    assert!(driven.is_ok(), "the browser test took over 120 s:\n{log}");
    assert!(exceptions.is_empty(), "the page threw: {exceptions:?}");

    // The transition is in the database as the form made it.
    let row = db
        .client()
        .await
        .query_one(
            "SELECT actor, from_status, to_status, note FROM anomaly_history
             WHERE anomaly_id = $1 AND action = 'transition'",
            &[&diversion],
        )
        .await
        .expect("one transition");
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, String>(3)
        ),
        (
            "web-investigator".to_owned(),
            "open".to_owned(),
            "investigating".to_owned(),
            "Field team sent to EK-F-001, 12 Oct".to_owned()
        )
    );
    api.stop().await;
    println!(
        "Screenshots: {} (web-1-queue.png, web-2-anomaly.png, web-3-transition.png, web-4-linked-anomaly.png); {:.1} s",
        output.display(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn the_page_loads_without_a_token_under_a_strict_policy() {
    let db = TestDb::migrated().await;
    let api = ApiServer::start(&db).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/web/app.js", "text/javascript"),
        ("/web/app.css", "text/css"),
    ] {
        let r = api.get(path, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type")
                .is_some_and(|v| v.starts_with(kind)),
            "{path}"
        );
        let policy = r.header("content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let page = api.get("/", None).await.text();
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "nothing inline"
    );
    api.stop().await;
}
