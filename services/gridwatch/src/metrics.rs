//! Prometheus metrics: every name in one place, prefixed `gridwatch_`, in base units, and never
//! labelled by meter (six million meters would be six million series).

use prometheus::{
    CounterVec, Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use gridwatch_core::ReasonCode;

/// Buckets for durations of database work, in seconds.
const COMMIT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for ingest lag (commit time minus reading time), in seconds: fine below a second for
/// live traffic, coarse up to a day for late and replayed readings.
const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0,
    900.0, 3600.0, 21600.0, 86400.0,
];
/// Buckets for batch sizes, in readings and rejections.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 25000.0,
];

/// Every metric of one process, and the registry that serves them.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// The ingest pipeline's metrics.
    pub ingest: IngestMetrics,
    /// The detector's metrics.
    pub detector: DetectorMetrics,
    /// The HTTP API's metrics.
    pub api: ApiMetrics,
}

/// Buckets for HTTP request durations, in seconds (registry imports take seconds).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The HTTP API: requests by route template (never a raw path), purchases, refused callers.
pub struct ApiMetrics {
    /// `gridwatch_http_requests_total{route,method,status}`: requests answered.
    pub requests: IntCounterVec,
    /// `gridwatch_http_request_duration_seconds{route}`: time to answer.
    pub request_duration: prometheus::HistogramVec,
    /// `gridwatch_purchases_total{outcome}`: purchases submitted (HTTP and MQTT), by outcome:
    /// `accepted`, `duplicate`, the refusal's code, or `unstorable` (a purchase message the
    /// database refused on every attempt, kept as a rejection).
    pub purchases: IntCounterVec,
    /// `gridwatch_auth_failures_total`: requests refused for a missing or unknown token.
    pub auth_failures: IntCounter,
    /// `gridwatch_auth_rate_limited_total`: requests refused with 429 because their client
    /// address presented too many invalid tokens (`api.auth_failure_limit`).
    pub auth_rate_limited: IntCounter,
}

impl ApiMetrics {
    fn new(r: &Registry) -> ApiMetrics {
        let opts = HistogramOpts::new(
            "gridwatch_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
        )
        .buckets(HTTP_BUCKETS.to_vec());
        let m = ApiMetrics {
            requests: counter_vec(
                r,
                "gridwatch_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
                &["route", "method", "status"],
            ),
            request_duration: register(
                r,
                prometheus::HistogramVec::new(opts, &["route"]).expect("valid histogram"),
            ),
            purchases: counter_vec(
                r,
                "gridwatch_purchases_total",
                "Energy purchases submitted over HTTP and MQTT, by outcome.",
                &["outcome"],
            ),
            auth_failures: counter(
                r,
                "gridwatch_auth_failures_total",
                "HTTP requests refused for a missing or unknown bearer token.",
            ),
            auth_rate_limited: counter(
                r,
                "gridwatch_auth_rate_limited_total",
                "HTTP requests refused with 429 because their client address presented too many invalid bearer tokens.",
            ),
        };
        // Pre-create every outcome so that rates exist (as zero) before the first purchase.
        let refusals = crate::ledger::RefusalCode::ALL.map(|c| c.as_str());
        for outcome in [
            "accepted",
            "duplicate",
            crate::ledger::mqtt::UNSTORABLE_OUTCOME,
        ]
        .iter()
        .chain(refusals.iter())
        {
            m.purchases.with_label_values(&[outcome]);
        }
        m
    }
}

/// Ingest: what arrives, what is stored, how fast.
pub struct IngestMetrics {
    /// `gridwatch_ingest_messages_total{topic}`: MQTT messages received, by topic kind.
    pub messages: IntCounterVec,
    /// `gridwatch_ingest_readings_stored_total`: readings committed (new rows).
    pub readings_stored: IntCounter,
    /// `gridwatch_ingest_duplicates_absorbed_total`: redelivered readings already stored.
    pub duplicates_absorbed: IntCounter,
    /// `gridwatch_ingest_rejections_total{reason}`: payloads or elements rejected.
    pub rejections: IntCounterVec,
    /// `gridwatch_ingest_batch_items`: readings and rejections per committed batch.
    pub batch_items: Histogram,
    /// `gridwatch_ingest_commit_duration_seconds`: time to commit one batch.
    pub commit_duration: Histogram,
    /// `gridwatch_ingest_lag_seconds`: commit time minus each reading's `ts`.
    pub lag: Histogram,
    /// `gridwatch_ingest_newest_reading_timestamp_seconds`: newest reading time committed.
    pub newest_reading: IntGauge,
    /// `gridwatch_ingest_last_commit_timestamp_seconds`: wall time of the last commit.
    pub last_commit: IntGauge,
    /// `gridwatch_ingest_db_errors_total{kind}`: failed database operations (each retried).
    pub db_errors: IntCounterVec,
    /// `gridwatch_mqtt_reconnects_total`: broker connections lost.
    pub mqtt_reconnects: IntCounter,
    /// `gridwatch_mqtt_connected`: 1 while connected to the broker.
    pub mqtt_connected: IntGauge,
    /// `gridwatch_mqtt_subscribed`: 1 once the broker granted every subscription of the
    /// current connection.
    pub mqtt_subscribed: IntGauge,
    /// `gridwatch_ingest_unacked_messages`: messages received and not yet acknowledged.
    pub unacked: IntGauge,
    /// `gridwatch_ingest_held_bytes`: payload bytes received and not yet acknowledged.
    pub held_bytes: IntGauge,
    /// `gridwatch_registry_meters`: meters known to the registry cache.
    pub registry_meters: IntGauge,
    /// `gridwatch_registry_reloads_total`: registry cache reloads.
    pub registry_reloads: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are constants of this file: a clash is a programming error caught by the tests.
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(
        registry,
        Histogram::with_opts(opts).expect("valid histogram"),
    )
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(
        registry,
        IntCounter::new(name, help).expect("valid counter"),
    )
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid gauge"))
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let ingest = IngestMetrics::new(&registry);
        let detector = DetectorMetrics::new(&registry);
        let api = ApiMetrics::new(&registry);
        let up = gauge(
            &registry,
            "gridwatch_up",
            "1 while this gridwatch process runs.",
        );
        up.set(1);
        Metrics {
            registry,
            ingest,
            detector,
            api,
        }
    }

    /// The text exposition format of every metric.
    pub fn encode(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The detector: event-time progress, evaluations, anomalies and the money at stake.
pub struct DetectorMetrics {
    /// `gridwatch_detector_watermark_timestamp_seconds{region}`.
    pub watermark: IntGaugeVec,
    /// `gridwatch_detector_newest_reading_timestamp_seconds{region}`.
    pub newest_reading: IntGaugeVec,
    /// `gridwatch_detector_evaluated_until_timestamp_seconds{region}`: every window ending at
    /// or before it is evaluated (CONTRACT.md section 5).
    pub evaluated_until: IntGaugeVec,
    /// `gridwatch_detector_analysed_until_timestamp_seconds{region}`: every daily analysis of
    /// days ending at or before it is done.
    pub analysed_until: IntGaugeVec,
    /// `gridwatch_detector_windows_evaluated_total{region}`.
    pub windows_evaluated: IntCounterVec,
    /// `gridwatch_detector_nodes_on_priors{region}`: balanced nodes evaluated for longer than
    /// `detector.on_priors_after_hours` whose loss model is still the prior.
    pub nodes_on_priors: IntGaugeVec,
    /// `gridwatch_detector_evaluation_duration_seconds`: one cycle's evaluation of a region.
    pub evaluation_duration: Histogram,
    /// `gridwatch_detector_errors_total{kind}`.
    pub errors: IntCounterVec,
    /// `gridwatch_anomalies_open{kind,region,severity}`.
    pub anomalies_open: IntGaugeVec,
    /// `gridwatch_anomalies_raised_total{kind,region,severity}`.
    pub anomalies_raised: IntCounterVec,
    /// `gridwatch_diversion_open{region,node,severity}`: 1 per node with an open diversion.
    pub diversion_open: IntGaugeVec,
    /// `gridwatch_node_residual_ratio{region,node}`: residual / input of the last window, for
    /// nodes with an open diversion only.
    pub node_residual_ratio: GaugeVec,
    /// `gridwatch_region_unaccounted_energy_wh{region}`.
    pub region_unaccounted: GaugeVec,
    /// `gridwatch_region_loss_kzt_total{region}`.
    pub region_loss_kzt: CounterVec,
    /// `gridwatch_region_mining_share_ratio{region}`.
    pub region_mining_share: GaugeVec,
    /// `gridwatch_licence_metered_wh_total{licence}`.
    pub licence_metered_wh: CounterVec,
    /// `gridwatch_licence_bought_wh_total{licence}`.
    pub licence_bought_wh: CounterVec,
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"),
    )
}

fn float_gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        registry,
        GaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"),
    )
}

fn float_counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    register(
        registry,
        CounterVec::new(Opts::new(name, help), labels).expect("valid counter"),
    )
}

impl DetectorMetrics {
    fn new(r: &Registry) -> DetectorMetrics {
        DetectorMetrics {
            watermark: gauge_vec(
                r,
                "gridwatch_detector_watermark_timestamp_seconds",
                "Event-time watermark (newest reading minus allowed lateness), Unix seconds.",
                &["region"],
            ),
            newest_reading: gauge_vec(
                r,
                "gridwatch_detector_newest_reading_timestamp_seconds",
                "Newest reading time the detector has seen, Unix seconds.",
                &["region"],
            ),
            evaluated_until: gauge_vec(
                r,
                "gridwatch_detector_evaluated_until_timestamp_seconds",
                "Event time up to which every window is evaluated, Unix seconds.",
                &["region"],
            ),
            analysed_until: gauge_vec(
                r,
                "gridwatch_detector_analysed_until_timestamp_seconds",
                "Event time up to which every daily analysis is done, Unix seconds.",
                &["region"],
            ),
            nodes_on_priors: gauge_vec(
                r,
                "gridwatch_detector_nodes_on_priors",
                "Balanced nodes evaluated for longer than detector.on_priors_after_hours whose loss model is still the prior.",
                &["region"],
            ),
            windows_evaluated: counter_vec(
                r,
                "gridwatch_detector_windows_evaluated_total",
                "Windows evaluated (first evaluations and re-evaluations after late readings).",
                &["region"],
            ),
            evaluation_duration: histogram(
                r,
                "gridwatch_detector_evaluation_duration_seconds",
                "Time to evaluate one region's pending windows in one cycle.",
                COMMIT_BUCKETS,
            ),
            errors: counter_vec(
                r,
                "gridwatch_detector_errors_total",
                "Detector cycles that failed (retried), by kind.",
                &["kind"],
            ),
            anomalies_open: gauge_vec(
                r,
                "gridwatch_anomalies_open",
                "Anomalies open or under investigation whose condition still holds.",
                &["kind", "region", "severity"],
            ),
            anomalies_raised: counter_vec(
                r,
                "gridwatch_anomalies_raised_total",
                "Anomalies created.",
                &["kind", "region", "severity"],
            ),
            diversion_open: gauge_vec(
                r,
                "gridwatch_diversion_open",
                "1 for each node with an open diversion anomaly.",
                &["region", "node", "severity"],
            ),
            node_residual_ratio: float_gauge_vec(
                r,
                "gridwatch_node_residual_ratio",
                "Residual over input in the last window, for nodes with an open diversion.",
                &["region", "node"],
            ),
            region_unaccounted: float_gauge_vec(
                r,
                "gridwatch_region_unaccounted_energy_wh",
                "Energy unaccounted at the region's root nodes above expected losses, last window.",
                &["region"],
            ),
            region_loss_kzt: float_counter_vec(
                r,
                "gridwatch_region_loss_kzt_total",
                "Estimated loss in tenge added to anomalies.",
                &["region"],
            ),
            region_mining_share: float_gauge_vec(
                r,
                "gridwatch_region_mining_share_ratio",
                "Licensed mining consumption over the region's input energy, last full day.",
                &["region"],
            ),
            licence_metered_wh: float_counter_vec(
                r,
                "gridwatch_licence_metered_wh_total",
                "Energy metered at a licence's farm meters.",
                &["licence"],
            ),
            licence_bought_wh: float_counter_vec(
                r,
                "gridwatch_licence_bought_wh_total",
                "Energy a licence bought, spread over delivery intervals.",
                &["licence"],
            ),
        }
    }
}

impl IngestMetrics {
    fn new(r: &Registry) -> IngestMetrics {
        let m = IngestMetrics {
            messages: counter_vec(
                r,
                "gridwatch_ingest_messages_total",
                "MQTT messages received, by topic kind (meter, gateway, other).",
                &["topic"],
            ),
            readings_stored: counter(
                r,
                "gridwatch_ingest_readings_stored_total",
                "Readings committed to the database (new rows).",
            ),
            duplicates_absorbed: counter(
                r,
                "gridwatch_ingest_duplicates_absorbed_total",
                "Redelivered readings already stored with the same value.",
            ),
            rejections: counter_vec(
                r,
                "gridwatch_ingest_rejections_total",
                "Payloads or gateway elements rejected, by reason code.",
                &["reason"],
            ),
            batch_items: histogram(
                r,
                "gridwatch_ingest_batch_items",
                "Readings and rejections per committed batch.",
                BATCH_BUCKETS,
            ),
            commit_duration: histogram(
                r,
                "gridwatch_ingest_commit_duration_seconds",
                "Time to commit one batch, retries excluded.",
                COMMIT_BUCKETS,
            ),
            lag: histogram(
                r,
                "gridwatch_ingest_lag_seconds",
                "Commit time minus the reading's own timestamp.",
                LAG_BUCKETS,
            ),
            newest_reading: gauge(
                r,
                "gridwatch_ingest_newest_reading_timestamp_seconds",
                "Newest reading timestamp committed (event time, Unix seconds).",
            ),
            last_commit: gauge(
                r,
                "gridwatch_ingest_last_commit_timestamp_seconds",
                "Wall-clock time of the last batch committed (Unix seconds).",
            ),
            db_errors: counter_vec(
                r,
                "gridwatch_ingest_db_errors_total",
                "Failed database operations, each retried with backoff, by kind.",
                &["kind"],
            ),
            mqtt_reconnects: counter(
                r,
                "gridwatch_mqtt_reconnects_total",
                "Broker connections lost (each followed by a reconnection with backoff).",
            ),
            mqtt_connected: gauge(
                r,
                "gridwatch_mqtt_connected",
                "1 while connected to the broker.",
            ),
            mqtt_subscribed: gauge(
                r,
                "gridwatch_mqtt_subscribed",
                "1 once the broker granted every subscription of the current connection.",
            ),
            unacked: gauge(
                r,
                "gridwatch_ingest_unacked_messages",
                "Messages received and not yet acknowledged (waiting for their batch to commit).",
            ),
            held_bytes: gauge(
                r,
                "gridwatch_ingest_held_bytes",
                "Payload bytes received and not yet acknowledged (capped by ingest.max_held_bytes).",
            ),
            registry_meters: gauge(
                r,
                "gridwatch_registry_meters",
                "Meters known to this process's registry cache.",
            ),
            registry_reloads: counter(
                r,
                "gridwatch_registry_reloads_total",
                "Registry cache reloads after a registry change.",
            ),
        };
        // Pre-create every label value so that rates exist (as zero) before the first event.
        for reason in ReasonCode::ALL {
            m.rejections.with_label_values(&[reason.as_str()]);
        }
        for topic in ["meter", "gateway", "other"] {
            m.messages.with_label_values(&[topic]);
        }
        for kind in ["connect", "commit", "partition", "registry"] {
            m.db_errors.with_label_values(&[kind]);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_prefixed_and_encodes() {
        let metrics = Metrics::new();
        metrics.ingest.readings_stored.inc_by(3);
        let text = metrics.encode();
        assert!(text.contains("gridwatch_ingest_readings_stored_total 3"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("gridwatch_"), "{line}");
        }
    }
}
