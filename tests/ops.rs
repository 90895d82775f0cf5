//! Operations end to end: the shipped monitoring configuration against the running services.
//!
//! A real Prometheus scrapes the services' `/metrics` while the East Kazakhstan scenario is
//! published through MQTT, evaluates the project's alert rules (deploy/prometheus/rules) and
//! sends to a real Alertmanager routing with the project's tree (deploy/alertmanager), whose
//! receivers post to a webhook this test serves. The critical diversion must page the on-call
//! receiver naming the region and each diverted feeder, and the alert's own pointer to the case
//! must find it. Then every PromQL query of every dashboard (dashboards/*.json) runs against that
//! Prometheus: each must succeed, and each must return data unless this scenario cannot produce
//! any (listed in [`EXPECTED_EMPTY`] with the reason). The dashboards' SQL panels are checked by
//! scripts/check-deploy.sh.
//!
//! `GRIDWATCH_OPS_DEBUG=1` prints every dashboard query with its answer.
//!
//! Needs the `prometheus` and `prometheus-alertmanager` binaries (Debian packages of the same
//! names, installed by `scripts/setup.sh --test`); skipped with a message without them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use gridwatch_sim::{InjectionKind, SimConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{api::VIEWER, scenario, workspace_root, TempDir};

/// From the end of publishing to the page reaching the webhook.
const ALERT_LIMIT: Duration = Duration::from_secs(240);
/// For the detector to evaluate the whole run once the page arrived.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// For Prometheus or Alertmanager to report ready.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// Dashboard queries that cannot return data in this scenario, by (dashboard uid, panel title,
/// refId), with the reason. Every other query must return at least one sample that is a number.
const EXPECTED_EMPTY: &[(&str, &str, &str, &str)] = &[(
    "gridwatch-licences",
    "Open licence cases",
    "A",
    "no licence case opens: the farms buy more than they use and mining takes about 23 % of \
         the region's energy, under the 30 % line (gridwatch_anomalies_open has series only for \
         kinds with open cases)",
)];

/// A winter grid of 600 households over three days; from hour 48 to the end, 50 MW leave four
/// feeders of the first substation. Lasting to the end keeps the cases open when the run is
/// over, so the dashboards' "open" panels have something to show.
fn east_kazakhstan() -> SimConfig {
    let mut config = SimConfig {
        seed: 11,
        days: 3,
        ..SimConfig::default()
    };
    if let Some(region) = config.regions.first_mut() {
        region.households = 600;
    }
    config.scenarios.push(
        serde_json::from_value(serde_json::json!({"name": "east-kazakhstan", "onset_hours": 48}))
            .expect("a valid scenario"),
    );
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_diversion_pages_on_call_and_every_dashboard_query_answers() {
    let (Some(prometheus_bin), Some(alertmanager_bin)) = (
        find_program(&["prometheus"]),
        find_program(&["prometheus-alertmanager", "alertmanager"]),
    ) else {
        eprintln!(
            "SKIPPED: the prometheus and prometheus-alertmanager binaries are needed \
             (apt-get install prometheus prometheus-alertmanager, or scripts/setup.sh --test)"
        );
        return;
    };
    let began = Instant::now();
    let sim = east_kazakhstan();
    let region = sim.regions[0].id.to_string();
    let mut started = scenario::start(sim).await;
    let dir = TempDir::new("gw-ops");

    let webhook = Webhook::start().await;
    let alertmanager = Alertmanager::start(&alertmanager_bin, dir.path(), webhook.addr).await;
    let prometheus = Prometheus::start(
        &prometheus_bin,
        dir.path(),
        started.http_addr(),
        alertmanager.addr,
    )
    .await;
    prometheus.wait_for_target_up().await;
    eprintln!(
        "services, Prometheus and Alertmanager up after {:?}",
        began.elapsed()
    );

    started.publish().await;
    eprintln!("scenario published after {:?}", began.elapsed());
    let diverted: BTreeSet<String> = started
        .simulation
        .ground_truth()
        .injected
        .iter()
        .filter(|i| i.kind == InjectionKind::Diversion)
        .filter_map(|i| i.node.as_ref().map(ToString::to_string))
        .collect();
    assert!(!diverted.is_empty(), "the scenario diverts on some node");

    // Each diverted feeder pages: the on-call receiver gets GridwatchCriticalDiversion, firing,
    // with the region and the node as labels.
    let deadline = Instant::now() + ALERT_LIMIT;
    let pages = loop {
        let pages = webhook.firing("GridwatchCriticalDiversion");
        let paged: BTreeSet<String> = pages
            .iter()
            .filter_map(|(_, alert)| alert["labels"]["node"].as_str().map(str::to_owned))
            .collect();
        if diverted.is_subset(&paged) {
            break pages;
        }
        if Instant::now() > deadline {
            panic!(
                "within {ALERT_LIMIT:?} of publishing, the on-call receiver was paged for \
                 {paged:?}, not all of {diverted:?}.\nNotifications: {}\n\
                 Prometheus alerts: {}\nPrometheus log:\n{}\nAlertmanager log:\n{}",
                webhook.summary(),
                prometheus.get_json("/api/v1/alerts").await,
                prometheus.process.log_tail(),
                alertmanager.process.log_tail()
            );
        }
        prometheus.process.assert_running();
        alertmanager.process.assert_running();
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("every diverted feeder paged after {:?}", began.elapsed());
    for (notification, alert) in &pages {
        let node = alert["labels"]["node"].as_str().expect("a node label");
        assert_eq!(notification.path, "/alerts", "the on-call webhook: {alert}");
        assert_eq!(notification.body["receiver"], "oncall-pager");
        assert_eq!(alert["labels"]["region"], region.as_str(), "{alert}");
        assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
        assert_eq!(alert["labels"]["team"], "theft", "{alert}");
        assert!(
            diverted.contains(node),
            "{node} is paged but carries no diversion: {alert}"
        );
        let summary = alert["annotations"]["summary"].as_str().unwrap_or("");
        assert!(
            summary.contains(node) && summary.contains(&region),
            "{summary}"
        );
        assert_eq!(
            alert["annotations"]["runbook_url"],
            "docs/runbook.md#gridwatchcriticaldiversion"
        );
        // The description tells on-call where the case is: that request finds it.
        let description = alert["annotations"]["description"].as_str().unwrap_or("");
        let path = description
            .split("(GET ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("no API request in the description: {description}"));
        let (status, body) = http_get(started.http_addr(), path, Some(VIEWER))
            .await
            .expect("the API answers");
        assert_eq!(status, 200, "GET {path}: {body}");
        let page: Value = serde_json::from_str(&body).expect("a JSON page");
        let items = page["items"].as_array().expect("items");
        assert!(
            items.iter().any(|a| a["node"] == node
                && a["kind"] == "diversion"
                && a["severity"] == "critical"),
            "GET {path} does not list the case: {body}"
        );
    }

    started.settle(SETTLE_LIMIT).await;
    // Two more scrapes, so that Prometheus holds the settled values.
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!("detector settled after {:?}", began.elapsed());

    // The dashboards, as if their time range were this run: ranges and rate intervals span it.
    let run_seconds = prometheus.started.elapsed().as_secs() + 5;
    let range = format!("{run_seconds}s");
    let mut empty = BTreeMap::new();
    let mut answered = 0;
    for query in dashboard_queries() {
        for (variant, expr) in query.variants(&prometheus, &range).await {
            let result = prometheus.query(&expr).await;
            answered += 1;
            let where_ = format!(
                "{} / {} / {} ({variant})",
                query.dashboard, query.panel, query.ref_id
            );
            assert_eq!(result["status"], "success", "{where_}: {expr}: {result}");
            if std::env::var_os("GRIDWATCH_OPS_DEBUG").is_some() {
                eprintln!("DEBUG {where_}: {expr} -> {}", result["data"]);
            }
            if !has_numbers(&result["data"]) {
                empty
                    .entry((
                        query.dashboard.clone(),
                        query.panel.clone(),
                        query.ref_id.clone(),
                    ))
                    .or_insert_with(Vec::new)
                    .push(format!("{expr} ({variant}) -> {}", result["data"]));
            }
        }
    }
    let expected: BTreeSet<(String, String, String)> = EXPECTED_EMPTY
        .iter()
        .map(|(d, p, r, _)| (d.to_string(), p.to_string(), r.to_string()))
        .collect();
    let unexpected: Vec<_> = empty
        .iter()
        .filter(|(k, _)| !expected.contains(k))
        .collect();
    let alerts = prometheus.get_json("/api/v1/alerts").await;
    let states: Vec<String> = alerts["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{} {} {}",
                a["labels"]["alertname"], a["state"], a["labels"]
            )
        })
        .collect();
    eprintln!(
        "{answered} dashboard queries answered; without data: {:?}\n\
         Prometheus alerts at the end: {states:#?}\nnotifications received: {}\ntotal {:?}",
        empty.keys().collect::<Vec<_>>(),
        webhook.summary(),
        began.elapsed()
    );
    for key in expected.iter().filter(|k| !empty.contains_key(*k)) {
        eprintln!("note: {key:?} is listed as empty but returned data");
    }
    assert!(
        unexpected.is_empty(),
        "dashboard queries without data in a run that should give them some (the metric is \
         never exported, or only once something happens that this run does not have: then list \
         the query in EXPECTED_EMPTY with the reason): {unexpected:#?}"
    );
    drop(prometheus);
    drop(alertmanager);
    let outcome = started.finish().await;
    assert!(!outcome.of_kind("diversion").is_empty());
}

// ------------------------------------------------------------------------------------------
// The monitoring stack: processes, configurations, the webhook.

/// The first of `names` found on PATH.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A free port on 127.0.0.1 (free when asked; the process binds it right after).
fn free_port() -> u16 {
    StdTcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// A child process, killed when dropped, its output in a log file.
struct Process {
    name: &'static str,
    // Locked only to poll or end it.
    child: Mutex<Child>,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, program: &Path, args: &[String], dir: &Path) -> Process {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("a log file");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("a log file handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
        Process {
            name,
            child: Mutex::new(child),
            log,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Panics with the log if the process has exited.
    fn assert_running(&self) {
        let exited = self
            .child
            .lock()
            .expect("the child process")
            .try_wait()
            .expect("the child's status");
        if let Some(status) = exited {
            panic!("{} exited ({status}):\n{}", self.name, self.log_tail());
        }
    }

    /// Polls `url_path` on `addr` until it answers 200.
    async fn wait_ready(&self, addr: SocketAddr, url_path: &str) {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            if let Ok((200, _)) = http_get(addr, url_path, None).await {
                return;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} not ready on {addr} within {READY_LIMIT:?}:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One notification Alertmanager posted.
#[derive(Debug, Clone)]
struct Notification {
    /// The receiver's URL path: /alerts (on call), /theft, /pipeline.
    path: String,
    body: Value,
}

type Received = Arc<Mutex<Vec<Notification>>>;

/// The receivers' end: records every notification.
struct Webhook {
    addr: SocketAddr,
    received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    async fn start() -> Webhook {
        async fn record(State(received): State<Received>, uri: Uri, body: Bytes) -> StatusCode {
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let notification = Notification {
                path: uri.path().to_owned(),
                body,
            };
            received
                .lock()
                .expect("the webhook's list")
                .push(notification);
            StatusCode::OK
        }
        let received = Received::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("the webhook binds");
        let addr = listener.local_addr().expect("the webhook's address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Webhook {
            addr,
            received,
            task,
        }
    }

    fn notifications(&self) -> Vec<Notification> {
        self.received.lock().expect("the webhook's list").clone()
    }

    /// Every firing alert named `alertname` received, with its notification.
    fn firing(&self, alertname: &str) -> Vec<(Notification, Value)> {
        let mut found = Vec::new();
        for notification in self.notifications() {
            for alert in notification.body["alerts"].as_array().into_iter().flatten() {
                if alert["status"] == "firing" && alert["labels"]["alertname"] == alertname {
                    found.push((notification.clone(), alert.clone()));
                }
            }
        }
        found
    }

    /// One line per alert received: path, status, labels.
    fn summary(&self) -> String {
        let mut lines = Vec::new();
        for notification in self.notifications() {
            for alert in notification.body["alerts"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "\n  {} {} {}",
                    notification.path, alert["status"], alert["labels"]
                ));
            }
        }
        lines.concat()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real Alertmanager with the project's configuration, its receivers pointed at `webhook`.
struct Alertmanager {
    addr: SocketAddr,
    process: Process,
}

impl Alertmanager {
    async fn start(program: &Path, dir: &Path, webhook: SocketAddr) -> Alertmanager {
        let config = dir.join("alertmanager.yml");
        std::fs::write(&config, alertmanager_config(webhook)).expect("config written");
        let storage = dir.join("alertmanager-data");
        std::fs::create_dir_all(&storage).expect("storage directory");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let process = Process::spawn(
            "alertmanager",
            program,
            &[
                format!("--config.file={}", config.display()),
                format!("--storage.path={}", storage.display()),
                format!("--web.listen-address={addr}"),
                // One instance: no gossip port.
                "--cluster.listen-address=".to_owned(),
            ],
            dir,
        );
        process.wait_ready(addr, "/-/ready").await;
        Alertmanager { addr, process }
    }
}

/// deploy/alertmanager/alertmanager.yml with the receivers' base URL moved to the test's
/// webhook and the waits shortened to seconds. Routes, grouping, inhibitions and receivers are
/// the project's.
fn alertmanager_config(webhook: SocketAddr) -> String {
    let shipped =
        std::fs::read_to_string(workspace_root().join("deploy/alertmanager/alertmanager.yml"))
            .expect("deploy/alertmanager/alertmanager.yml");
    const SHIPPED_BASE: &str = "http://127.0.0.1:9099";
    assert!(
        shipped.matches(SHIPPED_BASE).count() >= 3,
        "the receivers of deploy/alertmanager/alertmanager.yml post to {SHIPPED_BASE}"
    );
    let config = shipped.replace(SHIPPED_BASE, &format!("http://{webhook}"));
    // group_wait (10 s for a critical theft alert) and group_interval (the wait before a group
    // that changed is notified again) would only make the test slower.
    set_values(&config, &[("group_wait", "1s"), ("group_interval", "2s")])
}

/// Replaces the value of every YAML line `key: value` for the given keys, keeping indentation.
fn set_values(yaml: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for line in yaml.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        match values
            .iter()
            .find(|(key, _)| trimmed.starts_with(&format!("{key}:")))
        {
            Some((key, value)) => out.push_str(&format!("{indent}{key}: {value}\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// A real Prometheus scraping the services every second, with the project's alert rules.
struct Prometheus {
    addr: SocketAddr,
    started: Instant,
    process: Process,
}

impl Prometheus {
    async fn start(
        program: &Path,
        dir: &Path,
        services: SocketAddr,
        alertmanager: SocketAddr,
    ) -> Prometheus {
        let shipped = std::fs::read_to_string(
            workspace_root().join("deploy/prometheus/rules/gridwatch.rules.yml"),
        )
        .expect("deploy/prometheus/rules/gridwatch.rules.yml");
        // The rule groups evaluate every 30 s; every second here, so that the test waits
        // seconds, not half-minutes. The expressions and their `for:` durations are the
        // shipped ones (GridwatchCriticalDiversion has no `for:`: it pages at once).
        assert!(
            shipped.contains("interval: 30s"),
            "the rule groups' interval"
        );
        let rules = dir.join("gridwatch.rules.yml");
        std::fs::write(&rules, shipped.replace("interval: 30s", "interval: 1s"))
            .expect("rules written");
        // Job `gridwatch`: ingest, the detector and the API in one process, as `gridwatch run`
        // (deploy/prometheus/prometheus.yml); the rules and dashboards know the job names.
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files: ['{}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager}']\n\
             scrape_configs:\n  - job_name: gridwatch\n    static_configs:\n      - targets: ['{services}']\n",
            rules.display()
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("config written");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let process = Process::spawn(
            "prometheus",
            program,
            &[
                format!("--config.file={}", config_file.display()),
                format!(
                    "--storage.tsdb.path={}",
                    dir.join("prometheus-data").display()
                ),
                format!("--web.listen-address={addr}"),
            ],
            dir,
        );
        process.wait_ready(addr, "/-/ready").await;
        Prometheus {
            addr,
            started: Instant::now(),
            process,
        }
    }

    async fn get_json(&self, path: &str) -> Value {
        let (status, body) = http_get(self.addr, path, None)
            .await
            .unwrap_or_else(|e| panic!("Prometheus answers {path}: {e}"));
        serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("Prometheus answers {path} ({status}) with JSON: {e}: {body}")
        })
    }

    /// An instant query, now.
    async fn query(&self, expr: &str) -> Value {
        self.get_json(&format!("/api/v1/query?query={}", encode(expr)))
            .await
    }

    /// Waits until the services' target was scraped successfully.
    async fn wait_for_target_up(&self) {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let result = self.query(r#"up{job="gridwatch"} == 1"#).await;
            if has_numbers(&result["data"]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not scrape the services within {READY_LIMIT:?}: {}",
                self.get_json("/api/v1/targets").await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

// ------------------------------------------------------------------------------------------
// The dashboards' PromQL.

/// A PromQL query of a dashboard panel.
struct DashboardQuery {
    dashboard: String,
    panel: String,
    ref_id: String,
    expr: String,
    /// The dashboard's Prometheus variables used by `expr`: name, `allValue`, and the
    /// `label_values(metric, label)` query that lists its values.
    variables: Vec<(String, String, String)>,
}

impl DashboardQuery {
    /// The expression as Grafana would send it: once with every variable at "All", and, when
    /// it has variables, once with each at the first value its own query lists (which must
    /// list some). Grafana's interval macros become `range`.
    async fn variants(&self, prometheus: &Prometheus, range: &str) -> Vec<(String, String)> {
        let expr = ["$__rate_interval", "$__interval", "$__range"]
            .iter()
            .fold(self.expr.clone(), |e, macro_| e.replace(macro_, range));
        let all = self
            .variables
            .iter()
            .fold(expr.clone(), |e, (name, all, _)| substitute(&e, name, all));
        let mut variants = vec![("all".to_owned(), all)];
        if self.variables.is_empty() {
            return variants;
        }
        let mut concrete = expr;
        let mut chosen = Vec::new();
        for (name, _, values_query) in &self.variables {
            let value = first_label_value(prometheus, values_query)
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "{} variable {name} ({values_query}) lists no value",
                        self.dashboard
                    )
                });
            concrete = substitute(&concrete, name, &value);
            chosen.push(format!("{name}={value}"));
        }
        variants.push((chosen.join(","), concrete));
        variants
    }
}

/// Replaces `$name` and `${name}` (not `$name` followed by more of an identifier).
fn substitute(expr: &str, name: &str, value: &str) -> String {
    let braced = expr.replace(&format!("${{{name}}}"), value);
    let plain = format!("${name}");
    let mut out = String::new();
    let mut rest = braced.as_str();
    while let Some(at) = rest.find(&plain) {
        let after = &rest[at + plain.len()..];
        let continues = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        out.push_str(&rest[..at]);
        out.push_str(if continues { &plain } else { value });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The first value `label_values(metric, label)` lists.
async fn first_label_value(prometheus: &Prometheus, query: &str) -> Option<String> {
    let inner = query.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (metric, label) = inner.split_once(',')?;
    let label = label.trim();
    let result = prometheus
        .query(&format!("group by ({label}) ({})", metric.trim()))
        .await;
    let mut values: Vec<String> = result["data"]["result"]
        .as_array()?
        .iter()
        .filter_map(|s| s["metric"][label].as_str().map(str::to_owned))
        .collect();
    values.sort();
    values.into_iter().next()
}

/// Every Prometheus query of dashboards/*.json.
fn dashboard_queries() -> Vec<DashboardQuery> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("dashboards"))
        .expect("dashboards/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut queries = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("a dashboard");
        let dashboard: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let uid = dashboard["uid"].as_str().unwrap_or("?").to_owned();
        let variables: Vec<(String, String, String)> = dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| is_prometheus(&v["datasource"]))
            .map(|v| {
                let query = v["query"]["query"]
                    .as_str()
                    .or_else(|| v["query"].as_str())
                    .unwrap_or("")
                    .to_owned();
                let all = v["allValue"].as_str().unwrap_or(".*").to_owned();
                (v["name"].as_str().unwrap_or("").to_owned(), all, query)
            })
            .collect();
        let mut panels: Vec<&Value> = dashboard["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        while let Some(panel) = panels.pop() {
            // Rows hold their panels when collapsed.
            panels.extend(panel["panels"].as_array().into_iter().flatten());
            for target in panel["targets"].as_array().into_iter().flatten() {
                let source = if target["datasource"].is_object() {
                    &target["datasource"]
                } else {
                    &panel["datasource"]
                };
                let Some(expr) = target["expr"].as_str().filter(|_| is_prometheus(source)) else {
                    continue;
                };
                let used = variables
                    .iter()
                    .filter(|(name, _, _)| {
                        expr.contains(&format!("${name}")) || expr.contains(&format!("${{{name}}}"))
                    })
                    .cloned()
                    .collect();
                queries.push(DashboardQuery {
                    dashboard: uid.clone(),
                    panel: panel["title"].as_str().unwrap_or("?").to_owned(),
                    ref_id: target["refId"].as_str().unwrap_or("?").to_owned(),
                    expr: expr.to_owned(),
                    variables: used,
                });
            }
        }
    }
    assert!(
        queries.len() >= 20,
        "{} PromQL dashboard queries",
        queries.len()
    );
    queries
}

/// Whether a Grafana data source reference is the provisioned Prometheus.
fn is_prometheus(source: &Value) -> bool {
    source["type"] == "prometheus" || source["uid"] == "gridwatch-prometheus"
}

/// Whether a query's `data` holds at least one sample that is a number (not NaN).
fn has_numbers(data: &Value) -> bool {
    let is_number = |sample: &Value| {
        sample[1]
            .as_str()
            .is_some_and(|v| v.parse::<f64>().is_ok_and(|x| !x.is_nan()))
    };
    match data["resultType"].as_str() {
        Some("scalar") => is_number(&data["result"]),
        Some("vector") => data["result"]
            .as_array()
            .is_some_and(|r| r.iter().any(|s| is_number(&s["value"]))),
        _ => false,
    }
}

// ------------------------------------------------------------------------------------------
// HTTP.

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `GET target` over HTTP/1.0 (so the answer is neither chunked nor kept alive): status and
/// body, or why not.
async fn http_get(
    addr: SocketAddr,
    target: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("an incomplete answer: {text}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status: {head}"))?;
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| format!("no answer from {addr}{target} within 30 s"))?
}
