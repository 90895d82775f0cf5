//! Configuration: a TOML file (`--config FILE`) overridden by `GRIDWATCH_*` environment
//! variables. Every field has a documented default, so gridwatch runs with no file at all.
//!
//! `deploy/gridwatch.example.toml` lists every key with its default and meaning.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

/// The whole configuration of one gridwatch process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// PostgreSQL URL (`GRIDWATCH_DATABASE_URL`). The database is created if it does not exist.
    pub database_url: Secret,
    /// Apply pending migrations when a service starts (`GRIDWATCH_MIGRATE`, default true).
    pub migrate_on_start: bool,
    /// Where the HTTP API listens (`GRIDWATCH_HTTP_ADDR`, default 127.0.0.1:8080).
    pub http_addr: SocketAddr,
    /// Where `gridwatch ingest` and `gridwatch detect` serve `/metrics` when they run alone
    /// (`GRIDWATCH_METRICS_ADDR`, default 127.0.0.1:9464). `gridwatch run` serves metrics on
    /// `http_addr` instead.
    pub metrics_addr: SocketAddr,
    /// The tokens file: names, roles and SHA-256 hashes (`GRIDWATCH_TOKENS_FILE`).
    pub tokens_file: PathBuf,
    /// Log format and filter.
    pub log: LogConfig,
    /// The broker connection.
    pub mqtt: MqttConfig,
    /// The ingest pipeline.
    pub ingest: IngestConfig,
    /// The HTTP API.
    pub api: ApiConfig,
    /// The detector.
    pub detector: DetectorConfig,
}

/// The detector: event time, sharding and the detection parameters (each documented where it is
/// defined, in crate gridwatch-detect).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Window length in minutes, dividing a day (default 15).
    pub window_minutes: u32,
    /// How late a reading may arrive and still be in its window's first evaluation: the
    /// watermark is the newest reading time minus this (seconds, default 900). Later readings
    /// re-evaluate their window.
    pub allowed_lateness_secs: i64,
    /// A source (a meter, or all the meters of a data concentrator) more than this far behind
    /// the region's most advanced source, in event time, stops holding the region's watermark
    /// back (hours, default 26): its meters become data gaps. The default lets a head-end that
    /// uploads a day per concentrator, one after another, hold the watermark until the last
    /// has reported; a grid whose meters all report within minutes can set 1.
    pub source_idle_hours: f64,
    /// A region none of whose sources has been heard for this long in wall-clock time has ended
    /// its stream: its watermark moves to its most advanced source (seconds, default 93,600:
    /// 26 hours, as above). One source is never judged silent against the others by wall time
    /// (a replay runs a day in seconds): `source_idle_hours` does that in event time.
    pub source_silence_secs: i64,
    /// The share of a region's sources, the most lagging, that never hold its watermark back
    /// (default 0.01): a meter that lost its last reading among hundreds is not waited for;
    /// in a region of fewer than 100 sources every one counts.
    pub lagging_source_share: f64,
    /// How often the detector looks for new readings when idle (milliseconds, default 1000).
    pub poll_ms: u64,
    /// Regions this detector evaluates (`GRIDWATCH_DETECTOR_REGIONS`, comma-separated); empty
    /// means all. Detectors on disjoint region lists shard a country.
    pub regions: Vec<String>,
    /// Longest gap between two readings of a meter bridged by interpolation (hours, default 6).
    pub max_gap_hours: i64,
    /// A reading this close to a window boundary counts as read there (seconds, default 60):
    /// head-ends that stamp their poll time do so seconds after the boundary (3 to 55 s were
    /// seen). Its energy is still interpolated to the boundary, but carries no interpolation
    /// error into the balance; readings farther off do, as a gap does.
    pub boundary_tolerance_secs: i64,
    /// Days of a node's history its loss model is fitted on (default 7).
    pub history_days: i64,
    /// Windows evaluated per region in one transaction (default 192: two days), so that a
    /// replay makes progress in bounded steps.
    pub max_windows_per_cycle: usize,
    /// How far back late readings re-judge windows (hours, default 24): a reading that arrives
    /// later than this after its window was first judged is stored, but that window and its
    /// anomalies stay as they were. Loss models learn only from windows older than this, which
    /// no late reading changes.
    pub reevaluation_horizon_hours: i64,
    /// A balanced node evaluated this long whose loss model is still the prior counts in
    /// `gridwatch_detector_nodes_on_priors` (hours, default 48): its training starves (every
    /// window flagged, or too few clean ones), so it is judged on the generic band only.
    pub on_priors_after_hours: i64,
    /// The loss model.
    pub loss: gridwatch_detect::loss::LossParams,
    /// The diversion tests.
    pub diversion: gridwatch_detect::diversion::DiversionParams,
    /// Suspect ranking.
    pub suspects: gridwatch_detect::suspects::SuspectParams,
    /// Topology changes: an equal and opposite shift at two nodes and the meters that moved.
    pub topology: gridwatch_detect::shift::ShiftParams,
    /// Severity ladder.
    pub severity: gridwatch_detect::finding::SeverityThresholds,
    /// Unlicensed mining on household and commercial connections.
    pub mining: gridwatch_detect::mining::MiningParams,
    /// Meter tampering seen in a meter's own profile.
    pub tamper: gridwatch_detect::tamper::TamperParams,
    /// Licensed farms' metered energy against the energy they bought.
    pub quota: gridwatch_detect::quota::QuotaParams,
    /// Sustained power above registered machines.
    pub capacity: gridwatch_detect::capacity::CapacityParams,
    /// The regional licensed-mining share (the 70/30 programme).
    pub share: gridwatch_detect::share::ShareParams,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            window_minutes: 15,
            allowed_lateness_secs: 900,
            source_idle_hours: 26.0,
            source_silence_secs: 93_600,
            lagging_source_share: 0.01,
            poll_ms: 1000,
            regions: Vec::new(),
            max_gap_hours: 6,
            boundary_tolerance_secs: 60,
            history_days: 7,
            max_windows_per_cycle: 192,
            reevaluation_horizon_hours: 24,
            on_priors_after_hours: 48,
            loss: Default::default(),
            diversion: Default::default(),
            suspects: Default::default(),
            topology: Default::default(),
            severity: Default::default(),
            mining: Default::default(),
            tamper: Default::default(),
            quota: Default::default(),
            capacity: Default::default(),
            share: Default::default(),
        }
    }
}

/// The HTTP API's limits, and the regulation it applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Largest request body, in bytes, on every route but the registry's (default 65536:
    /// the contract's 64 KiB). Larger bodies get 413 `payload_too_large`.
    pub body_limit_bytes: usize,
    /// Largest registry document accepted by `PUT /api/v1/registry`, in bytes (default 50 MiB).
    pub registry_body_limit_bytes: usize,
    /// Longest time to answer a request, in seconds (`GRIDWATCH_API_REQUEST_TIMEOUT_SECS`,
    /// default 30); a slower request gets 408.
    pub request_timeout_secs: u64,
    /// Longest time to import a registry document, in seconds
    /// (`GRIDWATCH_API_REGISTRY_TIMEOUT_SECS`, default 600: millions of meters).
    pub registry_timeout_secs: u64,
    /// Longest time a client may take to send a request's line and headers, and to start the
    /// next request on a kept-alive connection, in seconds
    /// (`GRIDWATCH_API_HEADER_READ_TIMEOUT_SECS`, default 10); then the connection is closed,
    /// so that slow clients cannot hold connections open. A slow body is cut by
    /// `request_timeout_secs`.
    pub header_read_timeout_secs: u64,
    /// Missing or invalid bearer tokens one client address may present within
    /// `auth_failure_window_secs` (`GRIDWATCH_API_AUTH_FAILURE_LIMIT`, default 20); after that
    /// many, its requests to routes needing a token get 429 with `Retry-After`, valid tokens
    /// included, for `auth_failure_window_secs`. Public routes keep answering.
    pub auth_failure_limit: u32,
    /// The window those failures are counted in, from an address's first failure, and the
    /// length of a lockout, in seconds (`GRIDWATCH_API_AUTH_FAILURE_WINDOW_SECS`, default 60).
    pub auth_failure_window_secs: u64,
    /// Client addresses whose failures are remembered at most (default 10,000, about a
    /// megabyte); beyond, the oldest are forgotten.
    pub auth_failure_tracked_addresses: usize,
    /// Reverse proxies in front of the API, each appending the address it was connected from
    /// to `X-Forwarded-For` (`GRIDWATCH_API_TRUSTED_PROXY_HOPS`, default 0). With 0 the TCP
    /// peer is the client and the header is ignored (anyone can write it); with n, the client
    /// is the header's n-th address from the end. Set it only if the API cannot be reached
    /// but through those proxies.
    pub trusted_proxy_hops: usize,
    /// Database connections the API keeps (`GRIDWATCH_API_DB_POOL_SIZE`, default 16).
    pub db_pool_size: usize,
    /// Whether the API service also consumes purchases from `<root>/market/purchases`
    /// (`GRIDWATCH_API_MQTT_PURCHASES`, default true). Its MQTT client id is
    /// `<mqtt.client_id>-purchases`.
    pub mqtt_purchases: bool,
    /// A TOML file of regulation profiles (`GRIDWATCH_REGULATION_FILE`); unset, the shipped
    /// `deploy/regulation/kazakhstan.toml` (built into the binary) applies.
    pub regulation_file: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_limit_bytes: 64 << 10,
            registry_body_limit_bytes: 50 << 20,
            request_timeout_secs: 30,
            registry_timeout_secs: 600,
            header_read_timeout_secs: 10,
            auth_failure_limit: 20,
            auth_failure_window_secs: 60,
            auth_failure_tracked_addresses: 10_000,
            trusted_proxy_hops: 0,
            db_pool_size: 16,
            mqtt_purchases: true,
            regulation_file: None,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (default) or `json` (`GRIDWATCH_LOG_FORMAT`).
    pub format: String,
    /// A tracing filter such as `info` or `gridwatch=debug` (`GRIDWATCH_LOG`, default `info`).
    pub filter: String,
}

/// The MQTT broker connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://[user[:password]@]host[:port]` or `mqtts://...` for TLS (`GRIDWATCH_MQTT_URL`,
    /// default `mqtt://127.0.0.1:1883`).
    pub url: Secret,
    /// Stable client id: the broker keeps this session's subscriptions and queued readings while
    /// ingest is away (`GRIDWATCH_MQTT_CLIENT_ID`, default `gridwatch-ingest`). Every instance
    /// needs its own.
    pub client_id: String,
    /// Broker user name, if not in the URL (`GRIDWATCH_MQTT_USERNAME`).
    pub username: Option<String>,
    /// Broker password, if not in the URL (`GRIDWATCH_MQTT_PASSWORD`). Never logged.
    pub password: Option<Secret>,
    /// Topic root (`GRIDWATCH_MQTT_TOPIC_ROOT`, default `gridwatch/v1`).
    pub topic_root: String,
    /// Shared-subscription group (`GRIDWATCH_MQTT_SHARE_GROUP`): when set, ingest subscribes to
    /// `$share/<group>/...` so that several instances split the load. Unset: plain subscription.
    pub share_group: Option<String>,
    /// CA certificate (PEM) for `mqtts://` (`GRIDWATCH_MQTT_CA_FILE`); system roots if unset.
    pub ca_file: Option<PathBuf>,
    /// Keep-alive interval in seconds (`GRIDWATCH_MQTT_KEEP_ALIVE_SECS`, default 120). The
    /// broker's ping answer queues behind every message it has already written to the socket:
    /// while ingest works through a backlog (after an outage, or sharing 2 cores with the
    /// detector) a short keep-alive resets healthy connections and makes the broker redeliver
    /// (30 s did, 6 times in a 30-day replay on 2 cores). A dead broker is noticed within two
    /// intervals.
    pub keep_alive_secs: u64,
    /// Largest MQTT packet accepted from the broker, in bytes (default 16 MiB). Larger than
    /// `ingest.max_payload_bytes` on purpose: an oversize message must arrive to be rejected and
    /// acknowledged, or the broker would redeliver it forever.
    pub max_packet_bytes: usize,
    /// First reconnection delay in milliseconds (default 200), doubled up to
    /// `reconnect_max_ms` (default 10000).
    pub reconnect_min_ms: u64,
    /// Longest reconnection delay in milliseconds.
    pub reconnect_max_ms: u64,
}

/// The ingest pipeline's batching and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A batch is committed when it holds this many readings and rejections (default 5000)...
    pub batch_max_items: usize,
    /// ... or this many messages (default 500: half the broker's in-flight window of 1,000, so
    /// that one batch commits while the next fills)...
    pub batch_max_messages: usize,
    /// ... or this long after its first message arrived, in milliseconds (default 50).
    pub batch_max_delay_ms: u64,
    /// Concurrent database writers, each with its own connection (default 2). Acks still go
    /// out in arrival order.
    pub writers: usize,
    /// Messages larger than this are rejected as `payload_too_large` (default 1 MiB, which
    /// holds a 10,000-element gateway array).
    pub max_payload_bytes: usize,
    /// Gateway arrays with more elements are rejected whole (default 10,000).
    pub max_gateway_elements: usize,
    /// Readings further in the future than this are `timestamp_out_of_range`
    /// (seconds, default 86400: a day of clock error).
    pub max_future_skew_secs: i64,
    /// Readings older than this are `timestamp_out_of_range` (days, default 1100: three years
    /// of history can be replayed; each day of readings is a partition).
    pub max_reading_age_days: i64,
    /// Raw payloads are kept up to this many bytes (default 65536, the contract's 64 KiB).
    pub raw_payload_keep_bytes: usize,
    /// Rejections kept row by row, raw payload included, per source, reason and hour
    /// (default 100: enough to diagnose a misbehaving meter or gateway, at most 6.5 MB an hour
    /// of raw payloads per source and reason); beyond it they are only counted
    /// (`rejection_counts`).
    pub rejections_kept_per_source_hour: i64,
    /// Rejections kept row by row per hour over all sources (default 10,000: at most 655 MB an
    /// hour of raw payloads whatever floods).
    pub rejections_kept_per_hour: i64,
    /// Payload bytes ingest holds unacknowledged before it stops reading from the broker
    /// (default 32 MiB): bounds memory whatever the message sizes.
    pub max_held_bytes: usize,
    /// How long a stopping ingest keeps trying to commit its last batches (seconds, default 10).
    pub shutdown_grace_secs: u64,
}

/// A value that must never appear in logs (URLs with passwords, passwords).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a sensitive value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: Secret::new("postgres://postgres@127.0.0.1:5432/gridwatch"),
            migrate_on_start: true,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
            tokens_file: PathBuf::from("deploy/tokens.dev.toml"),
            log: LogConfig::default(),
            mqtt: MqttConfig::default(),
            ingest: IngestConfig::default(),
            api: ApiConfig::default(),
            detector: DetectorConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            filter: "info,tokio_postgres=warn".into(),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: Secret::new("mqtt://127.0.0.1:1883"),
            client_id: "gridwatch-ingest".into(),
            username: None,
            password: None,
            topic_root: gridwatch_core::topic::DEFAULT_TOPIC_ROOT.into(),
            share_group: None,
            ca_file: None,
            keep_alive_secs: 120,
            max_packet_bytes: 16 << 20,
            reconnect_min_ms: 200,
            reconnect_max_ms: 10_000,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch_max_items: 5000,
            batch_max_messages: 500,
            batch_max_delay_ms: 50,
            writers: 2,
            max_payload_bytes: 1 << 20,
            max_gateway_elements: 10_000,
            max_future_skew_secs: 86_400,
            max_reading_age_days: 1100,
            raw_payload_keep_bytes: 64 << 10,
            rejections_kept_per_source_hour: 100,
            rejections_kept_per_hour: 10_000,
            max_held_bytes: 32 << 20,
            shutdown_grace_secs: 10,
        }
    }
}

impl IngestConfig {
    /// The batch timer as a duration.
    pub fn batch_max_delay(&self) -> Duration {
        Duration::from_millis(self.batch_max_delay_ms)
    }
}

impl Config {
    /// Reads `path` (if given), then applies the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("Failed to read the configuration file {path:?}"))?;
                toml::from_str(&text)
                    .with_context(|| format!("Failed to parse the configuration file {path:?}"))?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check()?;
        Ok(config)
    }

    /// Applies `GRIDWATCH_*` overrides read through `var` (the environment, or a map in tests).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn parse<T: std::str::FromStr>(name: &str, value: String) -> anyhow::Result<T>
        where
            T::Err: fmt::Display,
        {
            value
                .parse()
                .map_err(|e| anyhow::anyhow!("{name}={value:?} is not valid: {e}"))
        }
        if let Some(v) = var("GRIDWATCH_DATABASE_URL") {
            self.database_url = Secret::new(v);
        }
        if let Some(v) = var("GRIDWATCH_MIGRATE") {
            self.migrate_on_start = parse("GRIDWATCH_MIGRATE", v)?;
        }
        if let Some(v) = var("GRIDWATCH_HTTP_ADDR") {
            self.http_addr = parse("GRIDWATCH_HTTP_ADDR", v)?;
        }
        if let Some(v) = var("GRIDWATCH_METRICS_ADDR") {
            self.metrics_addr = parse("GRIDWATCH_METRICS_ADDR", v)?;
        }
        if let Some(v) = var("GRIDWATCH_TOKENS_FILE") {
            self.tokens_file = PathBuf::from(v);
        }
        if let Some(v) = var("GRIDWATCH_LOG") {
            self.log.filter = v;
        }
        if let Some(v) = var("GRIDWATCH_LOG_FORMAT") {
            self.log.format = v;
        }
        if let Some(v) = var("GRIDWATCH_MQTT_URL") {
            self.mqtt.url = Secret::new(v);
        }
        if let Some(v) = var("GRIDWATCH_MQTT_CLIENT_ID") {
            self.mqtt.client_id = v;
        }
        if let Some(v) = var("GRIDWATCH_MQTT_USERNAME") {
            self.mqtt.username = Some(v);
        }
        if let Some(v) = var("GRIDWATCH_MQTT_PASSWORD") {
            self.mqtt.password = Some(Secret::new(v));
        }
        if let Some(v) = var("GRIDWATCH_MQTT_TOPIC_ROOT") {
            self.mqtt.topic_root = v;
        }
        if let Some(v) = var("GRIDWATCH_MQTT_SHARE_GROUP") {
            self.mqtt.share_group = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = var("GRIDWATCH_MQTT_CA_FILE") {
            self.mqtt.ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("GRIDWATCH_MQTT_KEEP_ALIVE_SECS") {
            self.mqtt.keep_alive_secs = parse("GRIDWATCH_MQTT_KEEP_ALIVE_SECS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_DETECTOR_REGIONS") {
            self.detector.regions = v
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = var("GRIDWATCH_DETECTOR_ALLOWED_LATENESS_SECS") {
            self.detector.allowed_lateness_secs =
                parse("GRIDWATCH_DETECTOR_ALLOWED_LATENESS_SECS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_DETECTOR_SOURCE_IDLE_HOURS") {
            self.detector.source_idle_hours = parse("GRIDWATCH_DETECTOR_SOURCE_IDLE_HOURS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_DETECTOR_SOURCE_SILENCE_SECS") {
            self.detector.source_silence_secs = parse("GRIDWATCH_DETECTOR_SOURCE_SILENCE_SECS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_DETECTOR_POLL_MS") {
            self.detector.poll_ms = parse("GRIDWATCH_DETECTOR_POLL_MS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_INGEST_WRITERS") {
            self.ingest.writers = parse("GRIDWATCH_INGEST_WRITERS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_INGEST_BATCH_MAX_ITEMS") {
            self.ingest.batch_max_items = parse("GRIDWATCH_INGEST_BATCH_MAX_ITEMS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_INGEST_BATCH_MAX_MESSAGES") {
            self.ingest.batch_max_messages = parse("GRIDWATCH_INGEST_BATCH_MAX_MESSAGES", v)?;
        }
        if let Some(v) = var("GRIDWATCH_INGEST_BATCH_MAX_DELAY_MS") {
            self.ingest.batch_max_delay_ms = parse("GRIDWATCH_INGEST_BATCH_MAX_DELAY_MS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_API_REQUEST_TIMEOUT_SECS") {
            self.api.request_timeout_secs = parse("GRIDWATCH_API_REQUEST_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_API_REGISTRY_TIMEOUT_SECS") {
            self.api.registry_timeout_secs = parse("GRIDWATCH_API_REGISTRY_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_API_HEADER_READ_TIMEOUT_SECS") {
            self.api.header_read_timeout_secs = parse("GRIDWATCH_API_HEADER_READ_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_API_AUTH_FAILURE_LIMIT") {
            self.api.auth_failure_limit = parse("GRIDWATCH_API_AUTH_FAILURE_LIMIT", v)?;
        }
        if let Some(v) = var("GRIDWATCH_API_AUTH_FAILURE_WINDOW_SECS") {
            self.api.auth_failure_window_secs = parse("GRIDWATCH_API_AUTH_FAILURE_WINDOW_SECS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_API_TRUSTED_PROXY_HOPS") {
            self.api.trusted_proxy_hops = parse("GRIDWATCH_API_TRUSTED_PROXY_HOPS", v)?;
        }
        if let Some(v) = var("GRIDWATCH_API_DB_POOL_SIZE") {
            self.api.db_pool_size = parse("GRIDWATCH_API_DB_POOL_SIZE", v)?;
        }
        if let Some(v) = var("GRIDWATCH_API_MQTT_PURCHASES") {
            self.api.mqtt_purchases = parse("GRIDWATCH_API_MQTT_PURCHASES", v)?;
        }
        if let Some(v) = var("GRIDWATCH_REGULATION_FILE") {
            self.api.regulation_file = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        Ok(())
    }

    /// Refuses values that cannot work, with a message naming the key.
    pub fn check(&self) -> anyhow::Result<()> {
        let root = &self.mqtt.topic_root;
        if root.is_empty()
            || root.ends_with('/')
            || root.contains(['+', '#'])
            || root.starts_with('$')
        {
            bail!("mqtt.topic_root {root:?} must be a topic without wildcards or trailing '/'");
        }
        if let Some(group) = &self.mqtt.share_group {
            if gridwatch_core::ids::check_identifier(group).is_err() {
                bail!("mqtt.share_group {group:?} must be an identifier (letters, digits, . _ -)");
            }
        }
        if self.mqtt.client_id.is_empty() || self.mqtt.client_id.len() > 128 {
            bail!("mqtt.client_id must be 1 to 128 characters");
        }
        if self.ingest.writers == 0 || self.ingest.writers > 32 {
            bail!("ingest.writers must be between 1 and 32");
        }
        if self.ingest.batch_max_items == 0 || self.ingest.batch_max_messages == 0 {
            bail!("ingest.batch_max_items and ingest.batch_max_messages must be at least 1");
        }
        if self.mqtt.max_packet_bytes <= self.ingest.max_payload_bytes {
            bail!("mqtt.max_packet_bytes must exceed ingest.max_payload_bytes, or oversize messages could never be rejected");
        }
        if self.api.db_pool_size == 0 || self.api.request_timeout_secs == 0 {
            bail!("api.db_pool_size and api.request_timeout_secs must be at least 1");
        }
        if self.api.header_read_timeout_secs == 0 {
            bail!("api.header_read_timeout_secs must be at least 1");
        }
        if self.api.auth_failure_limit == 0
            || self.api.auth_failure_window_secs == 0
            || self.api.auth_failure_tracked_addresses == 0
        {
            bail!("api.auth_failure_limit, api.auth_failure_window_secs and api.auth_failure_tracked_addresses must be at least 1");
        }
        if self.api.trusted_proxy_hops > 16 {
            bail!("api.trusted_proxy_hops must be at most 16");
        }
        let minutes = self.detector.window_minutes;
        if minutes == 0 || 1440 % minutes != 0 {
            bail!("detector.window_minutes {minutes} must divide a day (1440 minutes)");
        }
        if !(self.detector.source_idle_hours.is_finite() && self.detector.source_idle_hours > 0.0) {
            bail!("detector.source_idle_hours must be a positive number of hours");
        }
        if self.detector.source_silence_secs <= 0 {
            bail!("detector.source_silence_secs must be positive");
        }
        if !(0.0..0.5).contains(&self.detector.lagging_source_share) {
            bail!("detector.lagging_source_share must be at least 0 and below 0.5");
        }
        if self.detector.allowed_lateness_secs < 0 {
            bail!("detector.allowed_lateness_secs must not be negative");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("log.format must be \"text\" or \"json\"");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contracts() {
        let c = Config::default();
        assert_eq!(
            c.database_url.expose(),
            "postgres://postgres@127.0.0.1:5432/gridwatch"
        );
        assert_eq!(c.mqtt.url.expose(), "mqtt://127.0.0.1:1883");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        c.check().expect("defaults are valid");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut c: Config =
            toml::from_str("database_url = \"postgres://x/y\"\n[mqtt]\nclient_id = \"a\"\n")
                .expect("valid toml");
        c.apply_env(|name| match name {
            "GRIDWATCH_MQTT_CLIENT_ID" => Some("b".into()),
            "GRIDWATCH_INGEST_WRITERS" => Some("3".into()),
            _ => None,
        })
        .expect("valid env");
        assert_eq!(c.database_url.expose(), "postgres://x/y");
        assert_eq!(c.mqtt.client_id, "b");
        assert_eq!(c.ingest.writers, 3);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("databse_url = \"x\"").is_err());
        let mut c = Config::default();
        assert!(c
            .apply_env(|n| (n == "GRIDWATCH_HTTP_ADDR").then(|| "nope".into()))
            .is_err());
        c.mqtt.topic_root = "a/#".into();
        assert!(c.check().is_err());
    }

    #[test]
    fn the_auth_lockout_comes_from_the_environment_and_cannot_be_switched_off() {
        let mut c = Config::default();
        c.apply_env(|name| match name {
            "GRIDWATCH_API_AUTH_FAILURE_LIMIT" => Some("5".into()),
            "GRIDWATCH_API_AUTH_FAILURE_WINDOW_SECS" => Some("300".into()),
            "GRIDWATCH_API_TRUSTED_PROXY_HOPS" => Some("1".into()),
            "GRIDWATCH_API_HEADER_READ_TIMEOUT_SECS" => Some("5".into()),
            _ => None,
        })
        .expect("valid env");
        assert_eq!(
            (
                c.api.auth_failure_limit,
                c.api.auth_failure_window_secs,
                c.api.trusted_proxy_hops,
                c.api.header_read_timeout_secs
            ),
            (5, 300, 1, 5)
        );
        c.check().expect("valid");
        c.api.auth_failure_limit = 0;
        assert!(c.check().is_err());
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::default();
        assert!(!format!("{c:?}").contains("postgres://"));
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    #[test]
    fn the_example_file_parses_and_matches_the_defaults() {
        let text = include_str!("../../../deploy/gridwatch.example.toml");
        let parsed: Config = toml::from_str(text).expect("deploy/gridwatch.example.toml parses");
        parsed.check().expect("the example is valid");
        let defaults = Config::default();
        assert_eq!(format!("{parsed:?}"), format!("{defaults:?}"));
    }
}
