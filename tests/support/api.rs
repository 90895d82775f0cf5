//! The API in a test: served in-process on port 0 against the test's database, and a small
//! HTTP/1.1 client that sends exactly the bytes it is given (odd paths, broken bodies).

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use gridwatch::config::{Config, Secret};
use gridwatch::metrics::Metrics;
use gridwatch::shutdown::{self, ShutdownTrigger};

use super::{Broker, TestDb};

pub const VIEWER: &str = "dev-viewer-token";
pub const INVESTIGATOR: &str = "dev-investigator-token";
pub const ADMIN: &str = "dev-admin-token";
pub const MARKET: &str = "dev-market-token";

/// The configuration of a test's API: port 0, the dev tokens, MQTT purchases only with a broker.
pub fn config(db: &TestDb, broker: Option<&Broker>) -> Config {
    let mut config = Config {
        database_url: db.secret(),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        tokens_file: super::workspace_root().join("deploy/tokens.dev.toml"),
        ..Config::default()
    };
    config.api.mqtt_purchases = broker.is_some();
    if let Some(broker) = broker {
        config.mqtt.url = Secret::new(broker.ingest_url());
    }
    config.mqtt.client_id = super::unique_name("api");
    config.mqtt.reconnect_min_ms = 50;
    config.mqtt.reconnect_max_ms = 500;
    // Tests present hundreds of bad tokens from 127.0.0.1 on purpose; the lockout that would
    // follow is tested on its own (tests/security.rs).
    config.api.auth_failure_limit = 100_000;
    config
}

pub struct ApiServer {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error.code` of an error answer (and checks the contract's shape).
    pub fn error_code(&self) -> String {
        let json = self.json();
        assert!(json["error"]["message"].is_string(), "error shape: {json}");
        json["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("error shape: {json}"))
            .to_owned()
    }
}

impl ApiServer {
    pub async fn start(db: &TestDb) -> ApiServer {
        ApiServer::start_with(config(db, None)).await
    }

    pub async fn start_with(config: Config) -> ApiServer {
        let metrics = Arc::new(Metrics::new());
        let (trigger, stop) = shutdown::channel();
        let (addr, task) = gridwatch::api::serve(&config, metrics.clone(), stop)
            .await
            .expect("the API starts");
        ApiServer {
            addr,
            metrics,
            trigger,
            task,
        }
    }

    pub async fn stop(self) {
        self.trigger.trigger();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(20), self.task).await;
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send("GET", path, token, None, b"").await
    }

    pub async fn get_owned(&self, path: String) -> Response {
        self.get(&path, Some(VIEWER)).await
    }

    pub async fn put_json(&self, path: &str, token: Option<&str>, body: &str) -> Response {
        self.send(
            "PUT",
            path,
            token,
            Some("application/json"),
            body.as_bytes(),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &str) -> Response {
        self.send(
            "POST",
            path,
            token,
            Some("application/json"),
            body.as_bytes(),
        )
        .await
    }

    /// Sends one request with exactly these parts, on its own connection.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Response {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(content_type) = content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        head.push_str("\r\n");
        self.raw(head.into_bytes(), body.to_vec()).await
    }

    /// Sends raw bytes and reads the answer. The body is written while the answer is read, so a
    /// server that answers early (413) is still heard.
    pub async fn raw(&self, head: Vec<u8>, body: Vec<u8>) -> Response {
        self.raw_from(None, head, body).await
    }

    /// [`ApiServer::raw`] from the local address `from` (any of 127.0.0.0/8 reaches the server
    /// on Linux), or the default one.
    pub async fn raw_from(
        &self,
        from: Option<std::net::IpAddr>,
        head: Vec<u8>,
        body: Vec<u8>,
    ) -> Response {
        let stream = match from {
            None => tokio::net::TcpStream::connect(self.addr).await,
            Some(local) => {
                let socket = if local.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .expect("a socket");
                socket
                    .bind(std::net::SocketAddr::new(local, 0))
                    .expect("bind the local address");
                socket.connect(self.addr).await
            }
        }
        .expect("connect to the API");
        let (mut reader, mut writer) = stream.into_split();
        let sender = tokio::spawn(async move {
            let _ = writer.write_all(&head).await;
            let _ = writer.write_all(&body).await;
            // Kept open (not dropped) until the answer is read: a half-close could abort it.
            writer
        });
        let mut buffer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            reader.read_to_end(&mut buffer),
        )
        .await
        .expect("the API answers within 120 s");
        if buffer.is_empty() {
            panic!("no answer: {read:?}");
        }
        drop(sender.await);
        parse_response(&buffer)
    }
}

fn parse_response(bytes: &[u8]) -> Response {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut rest = bytes[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut at = 0;
        while let Some(end) = rest[at..].windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&rest[at..at + end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
                .expect("chunk size");
            at += end + 2;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[at..at + size]);
            at += size + 2;
        }
        rest = body;
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.truncate(length);
    }
    Response {
        status,
        headers,
        body: rest,
    }
}
