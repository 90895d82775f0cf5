//! The API against hostile clients, through real HTTP: token brute force (the per-address
//! lockout), injection-like and unicode filter values, oversized and slow requests, and tokens
//! kept out of the logs of the real `gridwatch api` process.
//!
//! Each test serves its own API (its own lockout table) with short limits and timeouts, so
//! that the whole file runs in seconds.

// Not every test crate uses every helper the support module re-exports.
#[allow(unused_imports)]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use gridwatch::anomalies::{create, NewAnomaly, Severity};
use gridwatch::config::Config;
use support::api::{config, ApiServer, Response, ADMIN, INVESTIGATOR, MARKET, VIEWER};
use support::TestDb;

/// A loopback address of its own, so that one client's lockout is not another's.
fn local(last: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
}

/// `GET path` from `from`, with a bearer token if given and any extra header lines.
async fn get_from(
    api: &ApiServer,
    from: Option<IpAddr>,
    path: &str,
    token: Option<&str>,
    extra: &str,
) -> Response {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    api.raw_from(from, head.into_bytes(), Vec::new()).await
}

/// The seconds of a 429's `Retry-After`, after checking the answer's shape.
fn retry_after(r: &Response) -> u64 {
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "too_many_requests");
    r.header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {:?}", r.headers))
}

async fn locking_api(db: &TestDb, limit: u32, window_secs: u64, hops: usize) -> ApiServer {
    let mut c = config(db, None);
    c.api.auth_failure_limit = limit;
    c.api.auth_failure_window_secs = window_secs;
    c.api.trusted_proxy_hops = hops;
    ApiServer::start_with(c).await
}

const ANOMALIES: &str = "/api/v1/anomalies";

#[tokio::test]
async fn a_token_brute_force_locks_its_address_out_of_every_token_route_until_the_window_passes() {
    let db = TestDb::migrated().await;
    let api = locking_api(&db, 5, 3, 0).await;
    let attacker = local(1);
    // Five failures, missing and wrong tokens alike, are answered 401...
    for guess in [
        None,
        Some("guess-1"),
        Some("guess-2"),
        None,
        Some("dev-admin-tokem"),
    ] {
        let r = get_from(&api, attacker, ANOMALIES, guess, "").await;
        assert_eq!(r.status, 401, "{guess:?}: {}", r.text());
    }
    // ... and lock the address out: the next guess, the right token, another route, and a
    // forged X-Forwarded-For (no proxy is trusted) all get 429.
    let r = get_from(&api, attacker, ANOMALIES, Some("guess-3"), "").await;
    let wait = retry_after(&r);
    assert!((1..=3).contains(&wait), "Retry-After {wait}");
    for (path, token, extra) in [
        (ANOMALIES, Some(ADMIN), ""),
        ("/api/v1/registry", Some(VIEWER), ""),
        (ANOMALIES, Some(VIEWER), "X-Forwarded-For: 203.0.113.77\r\n"),
    ] {
        let r = get_from(&api, attacker, path, token, extra).await;
        retry_after(&r);
    }
    let r = api
        .raw_from(
            attacker,
            format!("POST /api/v1/purchases HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {MARKET}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n").into_bytes(),
            b"{}".to_vec(),
        )
        .await;
    retry_after(&r);
    // Public routes keep answering: health checks and scrapes share addresses with people.
    for path in ["/healthz", "/api/v1/status", "/metrics"] {
        assert_eq!(get_from(&api, attacker, path, None, "").await.status, 200);
    }
    // Other addresses are not affected.
    let r = get_from(&api, local(2), ANOMALIES, Some(VIEWER), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        get_from(&api, local(2), ANOMALIES, Some("x"), "")
            .await
            .status,
        401
    );
    // Successful requests are never limited, however many...
    for _ in 0..12 {
        assert_eq!(
            get_from(&api, local(3), ANOMALIES, Some(VIEWER), "")
                .await
                .status,
            200
        );
    }
    // ... and do not wipe the slate: a weak token interleaved with guesses still gets locked.
    for i in 0..5 {
        let r = get_from(&api, local(4), ANOMALIES, Some("guess"), "").await;
        assert_eq!(r.status, 401);
        if i == 2 {
            let r = get_from(&api, local(4), ANOMALIES, Some(VIEWER), "").await;
            assert_eq!(r.status, 200);
        }
    }
    retry_after(&get_from(&api, local(4), ANOMALIES, Some(VIEWER), "").await);
    assert_eq!(api.metrics.api.auth_rate_limited.get(), 6);
    let metrics = get_from(&api, attacker, "/metrics", None, "").await.text();
    assert!(metrics.contains("gridwatch_auth_rate_limited_total 6"));
    // Once Retry-After has passed, the address is served again.
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    let r = get_from(&api, attacker, ANOMALIES, Some(VIEWER), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    api.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    let db = TestDb::migrated().await;
    let api = locking_api(&db, 3, 60, 1).await;
    let proxy = local(1);
    let from = |client: &str| format!("X-Forwarded-For: {client}\r\n");
    for _ in 0..3 {
        let r = get_from(&api, proxy, ANOMALIES, Some("guess"), &from("198.51.100.1")).await;
        assert_eq!(r.status, 401);
    }
    retry_after(&get_from(&api, proxy, ANOMALIES, Some(VIEWER), &from("198.51.100.1")).await);
    // A client cannot escape by writing its own X-Forwarded-For: the proxy appends the
    // address it saw, and that is the one believed.
    retry_after(
        &get_from(
            &api,
            proxy,
            ANOMALIES,
            Some(VIEWER),
            &from("203.0.113.5, 198.51.100.1"),
        )
        .await,
    );
    // Other clients of the same proxy are served.
    let r = get_from(&api, proxy, ANOMALIES, Some(VIEWER), &from("198.51.100.2")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    api.stop().await;
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

/// One anomaly, which any filter that leaked into SQL as `OR 1=1` would show.
async fn seed_anomaly(db: &TestDb) -> String {
    let mut client = db.client().await;
    let tx = client.transaction().await.expect("transaction");
    let anomaly = NewAnomaly {
        kind: gridwatch::anomalies::store::Kind::Diversion,
        condition_key: "security-diversion".into(),
        region: Some("east-kz".into()),
        node: Some("EK-F-001".into()),
        meter: Some("M-000017".into()),
        licence: Some("KZ-MIN-042".into()),
        started_at: time("2025-10-01T06:00:00Z"),
        ended_at: None,
        detected_at: time("2025-10-01T06:31:02Z"),
        energy_wh: 1_000_000,
        loss_kzt: 10_300.0,
        score: 5.0,
        confidence: 0.5,
        severity: Severity::Medium,
        suspects: vec!["M-000017".into()],
        evidence: json!({}),
    };
    let id = create(&tx, &anomaly, "detector").await.expect("created").id;
    tx.commit().await.expect("commit");
    id
}

/// Percent-encodes every byte outside the unreserved set.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn injection_like_unicode_and_huge_filter_values_are_refused_or_match_nothing() {
    let db = TestDb::migrated().await;
    let id = seed_anomaly(&db).await;
    let api = ApiServer::start(&db).await;
    let all = api.get(ANOMALIES, Some(VIEWER)).await.json();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(1), "{all}");
    let long = "A".repeat(10_000);
    let values = [
        "' OR 1=1 --",
        "' OR '1'='1",
        "east-kz' OR 'x'='x",
        "east-kz'; DROP TABLE anomalies; --",
        "\") OR true --",
        "%' OR region LIKE '%",
        "*",
        "%",
        "_",
        "ünïcødé",
        "east\u{2011}kz",
        "ＥＫ－Ｆ－００１",
        "\u{202E}zk-tsae",
        "\u{1F525}\u{26A1}",
        "\0",
        "a\r\nX-Injected: 1",
        "{\"$ne\": null}",
        "east-kz,diversion",
        "../../etc/passwd",
        long.as_str(),
    ];
    let parameters = [
        "kind", "status", "severity", "region", "node", "meter", "licence", "suspect", "from",
        "to", "sort", "limit", "cursor",
    ];
    let mut checked = 0;
    for route in [ANOMALIES, "/api/v1/anomalies.csv"] {
        for parameter in parameters {
            for value in values {
                let path = format!("{route}?{parameter}={}", encode(value));
                let r = api.get(&path, Some(VIEWER)).await;
                let label = format!("{parameter}={:.40}", value);
                match r.status {
                    400 | 422 => {
                        r.error_code();
                    }
                    200 if route == ANOMALIES => {
                        let items = r.json()["items"].as_array().map(Vec::len);
                        assert_eq!(items, Some(0), "{label} matched: {}", r.text());
                    }
                    200 => assert_eq!(r.text().lines().count(), 1, "{label}: {}", r.text()),
                    status => panic!("{label}: {status} {}", r.text()),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 13 * 20);
    // The same values as anomaly ids.
    for value in values {
        let r = api
            .get(&format!("{ANOMALIES}/{}", encode(value)), Some(VIEWER))
            .await;
        assert!(
            matches!(r.status, 400 | 404),
            "id {value:.40}: {}",
            r.status
        );
        r.error_code();
    }
    // A query string far beyond any header limit is refused by the server itself.
    let huge = format!("{ANOMALIES}?region={}", "A".repeat(1 << 20));
    let r = api.get(&huge, Some(VIEWER)).await;
    assert!((400..500).contains(&r.status), "1 MiB query: {}", r.status);
    // The anomaly is still there, alone, and the table was not touched.
    let all = api.get(ANOMALIES, Some(VIEWER)).await.json();
    assert_eq!(all["items"][0]["id"], json!(id));
    assert_eq!(db.count("SELECT count(*) FROM anomalies").await, 1);
    api.stop().await;
}

/// Reads from `stream` until it closes or `limit` passes; returns what arrived and whether
/// the server closed the connection.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .is_ok();
    (received, closed)
}

fn status_of(answer: &[u8]) -> Option<u16> {
    String::from_utf8_lossy(answer)
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn slow_config(db: &TestDb) -> Config {
    let mut c = config(db, None);
    c.api.header_read_timeout_secs = 1;
    c.api.request_timeout_secs = 2;
    c
}

#[tokio::test]
async fn oversized_bodies_get_413_whether_sent_or_only_announced() {
    let db = TestDb::migrated().await;
    let api = ApiServer::start(&db).await;
    let limit = Config::default().api.body_limit_bytes;
    let r = api
        .send(
            "POST",
            "/api/v1/purchases",
            Some(MARKET),
            Some("application/json"),
            &vec![b' '; limit + 1],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "payload_too_large")
    );
    // Chunked, without a length: refused once the limit is crossed.
    let mut chunked = Vec::new();
    for _ in 0..(limit / 4096 + 2) {
        chunked.extend_from_slice(format!("1000\r\n{}\r\n", " ".repeat(4096)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!("POST /api/v1/purchases HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {MARKET}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    let r = api.raw(head.into_bytes(), chunked).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "payload_too_large")
    );
    // Announced as a gigabyte and never sent: refused at once, not after the request timeout.
    let started = Instant::now();
    let mut stream = TcpStream::connect(api.addr).await.expect("connect");
    let head = format!("POST /api/v1/purchases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MARKET}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{{");
    stream.write_all(head.as_bytes()).await.expect("write");
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(
        status_of(&answer),
        Some(413),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    api.stop().await;
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_by_the_servers_timeouts() {
    let db = TestDb::migrated().await;
    let api = ApiServer::start_with(slow_config(&db)).await;
    // A request head sent a byte at a time, never finished: the connection is closed once the
    // header read timeout (1 s) passes, although bytes keep coming.
    let started = Instant::now();
    let mut stream = TcpStream::connect(api.addr).await.expect("connect");
    stream
        .write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let (mut reader, mut writer) = stream.into_split();
    let dribble = tokio::spawn(async move {
        for byte in b"X-Slow: "
            .iter()
            .chain([b'a'; 100].iter())
            .cycle()
            .take(200)
        {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 1024];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a slow head held its connection for 5 s");
    let cut_after = started.elapsed();
    assert!(
        cut_after >= Duration::from_millis(900) && cut_after < Duration::from_secs(4),
        "cut after {cut_after:?}"
    );
    dribble.abort();
    // A connection that never sends anything is closed too.
    let mut idle = TcpStream::connect(api.addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection stayed open for 5 s");
    // A body that never completes: 408 once the request timeout (2 s) passes.
    let started = Instant::now();
    let mut stream = TcpStream::connect(api.addr).await.expect("connect");
    let head = format!("POST /api/v1/purchases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MARKET}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"id\": ");
    stream.write_all(head.as_bytes()).await.expect("write");
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(6)).await;
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), Some(408), "{text}");
    assert!(text.contains("\"request_timeout\""), "{text}");
    assert!(closed, "the connection of a timed-out body stays open");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "408 after {elapsed:?}"
    );
    // Meanwhile, and afterwards, the API answers others at once.
    assert_eq!(api.get("/api/v1/status", None).await.status, 200);
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Logs

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One request to `addr` on its own connection; the answer's status.
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(30)).await;
    assert!(closed, "{method} {path} got no complete answer");
    status_of(&answer).unwrap_or_else(|| panic!("{method} {path}: no status"))
}

#[tokio::test]
async fn no_token_and_no_token_hash_appears_in_any_log_line() {
    let db = TestDb::migrated().await;
    let id = seed_anomaly(&db).await;
    let root = support::workspace_root();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridwatch"))
        .arg("api")
        .env("GRIDWATCH_DATABASE_URL", &db.url)
        .env("GRIDWATCH_HTTP_ADDR", "127.0.0.1:0")
        .env("GRIDWATCH_TOKENS_FILE", root.join("deploy/tokens.dev.toml"))
        .env("GRIDWATCH_API_MQTT_PURCHASES", "false")
        .env("GRIDWATCH_API_AUTH_FAILURE_LIMIT", "8")
        // Everything every crate logs, ours and the libraries'.
        .env("GRIDWATCH_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("gridwatch api starts");
    let stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut log: Vec<String> = Vec::new();
    let addr: SocketAddr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("stderr is readable") {
            let found = line
                .contains("Serving the HTTP API")
                .then(|| line.split("bound=").nth(1))
                .flatten()
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|addr| addr.parse().ok());
            log.push(line);
            if let Some(addr) = found {
                return addr;
            }
        }
        panic!("gridwatch api exited before serving: {log:#?}");
    })
    .await
    .expect("gridwatch api serves within 60 s");
    let rest = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });
    let bearer = |token: &str| format!("Authorization: Bearer {token}\r\n");
    let json = "Content-Type: application/json\r\n";
    // Valid tokens on every kind of route, successes and refusals alike.
    let registry = r#"{"regions": [{"id": "east-kz", "name": "East Kazakhstan", "tariff_kzt_per_kwh": 10.3}]}"#;
    let purchase = json!({"id": "P-LOG-1", "licence": "KZ-MIN-404", "energy_wh": 1000,
        "delivery_start": "2025-10-01T00:00:00Z", "delivery_end": "2025-10-01T01:00:00Z",
        "price_kzt": 10.0})
    .to_string();
    let transition = json!({"to": "investigating", "note": "looking"}).to_string();
    let anomaly = format!("/api/v1/anomalies/{id}");
    let transitions = format!("{anomaly}/transitions");
    let calls: Vec<(&str, &str, String, &str)> = vec![
        ("GET", ANOMALIES, bearer(VIEWER), ""),
        ("GET", "/api/v1/anomalies.csv", bearer(VIEWER), ""),
        ("GET", &anomaly, bearer(VIEWER), ""),
        ("GET", "/api/v1/registry", bearer(VIEWER), ""),
        ("PUT", "/api/v1/registry", bearer(ADMIN) + json, registry),
        ("PUT", "/api/v1/registry", bearer(ADMIN) + json, "{"),
        (
            "POST",
            "/api/v1/purchases",
            bearer(MARKET) + json,
            &purchase,
        ),
        (
            "POST",
            "/api/v1/purchases",
            bearer(VIEWER) + json,
            &purchase,
        ),
        (
            "POST",
            &transitions,
            bearer(INVESTIGATOR) + json,
            &transition,
        ),
        (
            "POST",
            &transitions,
            bearer(INVESTIGATOR) + json,
            "not json",
        ),
        ("GET", "/api/v1/nowhere", bearer(ADMIN), ""),
        ("DELETE", ANOMALIES, bearer(ADMIN), ""),
    ];
    for (method, path, headers, body) in &calls {
        let status = request(addr, method, path, headers, body).await;
        assert!(status < 500, "{method} {path}: {status}");
    }
    // Bad tokens, in every shape a client gets wrong, until the address is locked out.
    let guesses = [
        "guess-0f3a9c-secret",
        "dev-admin-tokenx",
        "Dev-Admin-Token",
        "dev-admin-token dev-viewer-token",
    ];
    let wrong = [
        bearer(guesses[0]),
        bearer(guesses[1]),
        bearer(guesses[2]),
        bearer(guesses[3]),
        format!("Authorization: Basic {ADMIN}\r\n"),
        format!("Authorization: {ADMIN}\r\n"),
        format!("X-Api-Token: {ADMIN}\r\n"),
        format!("Cookie: token={ADMIN}\r\n"),
    ];
    let mut statuses = Vec::new();
    for headers in &wrong {
        statuses.push(request(addr, "GET", ANOMALIES, headers, "").await);
    }
    statuses.push(request(addr, "GET", &format!("{ANOMALIES}?token={ADMIN}"), "", "").await);
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert_eq!(
        request(addr, "GET", ANOMALIES, &bearer(ADMIN), "").await,
        429
    );
    // A clean stop, so that every line is written.
    let pid = child.id().expect("the child runs");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("gridwatch api stops within 30 s")
        .expect("exit status");
    assert!(exit.success(), "{exit:?}");
    log.extend(rest.await.expect("stderr reader"));
    let mut out = String::new();
    tokio::io::BufReader::new(stdout)
        .read_to_string(&mut out)
        .await
        .expect("stdout");
    log.extend(out.lines().map(str::to_owned));
    // The log is the real thing: requests, refusals, the lockout.
    let text = log.join("\n");
    assert!(log.len() > 20, "{text}");
    assert!(text.contains("/api/v1/anomalies"), "{text}");
    assert!(text.contains("status=401"), "{text}");
    assert!(text.contains("locked out"), "{text}");
    let mut secrets: Vec<String> = Vec::new();
    for token in [VIEWER, INVESTIGATOR, ADMIN, MARKET]
        .iter()
        .chain(guesses[..3].iter())
    {
        secrets.push((*token).to_owned());
        secrets.push(sha256_hex(token));
        secrets.push(sha256_hex(token).to_uppercase());
    }
    let stored = std::fs::read_to_string(root.join("deploy/tokens.dev.toml")).expect("tokens");
    for line in stored.lines() {
        if let Some(hash) = line.strip_prefix("sha256 = ") {
            secrets.push(hash.trim_matches('"').to_owned());
        }
    }
    assert_eq!(secrets.len(), 7 * 3 + 4);
    for secret in &secrets {
        for line in &log {
            assert!(
                !line.to_lowercase().contains(&secret.to_lowercase()),
                "a token or its hash is logged: {line}"
            );
        }
    }
}
