//! The one table of routes: the router and the OpenAPI document are both built from it, so
//! neither can name a route the other lacks.

use axum::routing::{on, MethodFilter, MethodRouter};

use super::auth::Access;
use super::{
    anomalies, calculator, evidence, openapi, purchases, registry, rejections, status, web,
    AppState,
};

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// GET.
    Get,
    /// PUT.
    Put,
    /// POST.
    Post,
}

impl Verb {
    /// Lower case, as OpenAPI writes it.
    pub fn as_lower(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Put => "put",
            Verb::Post => "post",
        }
    }
}

/// What answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Prometheus metrics.
    Metrics,
    /// Liveness.
    Healthz,
    /// Watermark and totals.
    Status,
    /// This API's OpenAPI document.
    OpenApi,
    /// The whole registry.
    GetRegistry,
    /// Upsert a registry document.
    PutRegistry,
    /// Submit a purchase.
    PostPurchase,
    /// The compliance calculator.
    Calculator,
    /// Rejected payloads.
    ListRejections,
    /// Anomalies, filtered and paged.
    ListAnomalies,
    /// Anomalies as CSV.
    ExportAnomalies,
    /// One anomaly with its history.
    GetAnomaly,
    /// Move an anomaly through its life cycle.
    TransitionAnomaly,
    /// An anomaly's evidence series.
    AnomalyEvidence,
    /// An anomaly's evidence chart.
    AnomalyEvidenceSvg,
    /// The auditors' web page.
    WebPage,
    /// Its script.
    WebScript,
    /// Its style sheet.
    WebStyle,
}

/// How large a request body may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySize {
    /// `api.body_limit_bytes` (64 KiB).
    Small,
    /// `api.registry_body_limit_bytes` (50 MiB).
    Registry,
}

/// How long a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// `api.request_timeout_secs`.
    Normal,
    /// `api.registry_timeout_secs`.
    Long,
}

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// The method.
    pub verb: Verb,
    /// The path template, as axum and OpenAPI write it.
    pub path: &'static str,
    /// What answers it.
    pub operation: Operation,
    /// Who may call it.
    pub access: Access,
    /// Its body limit.
    pub body: BodySize,
    /// Its timeout.
    pub deadline: Deadline,
}

const fn route(verb: Verb, path: &'static str, operation: Operation, access: Access) -> RouteSpec {
    RouteSpec {
        verb,
        path,
        operation,
        access,
        body: BodySize::Small,
        deadline: Deadline::Normal,
    }
}

/// Every route of the API.
pub const ROUTES: &[RouteSpec] = &[
    route(Verb::Get, "/metrics", Operation::Metrics, Access::Public),
    route(Verb::Get, "/healthz", Operation::Healthz, Access::Public),
    route(
        Verb::Get,
        "/api/v1/status",
        Operation::Status,
        Access::Public,
    ),
    route(
        Verb::Get,
        "/api/v1/openapi.json",
        Operation::OpenApi,
        Access::Public,
    ),
    route(
        Verb::Get,
        "/api/v1/registry",
        Operation::GetRegistry,
        Access::Viewer,
    ),
    RouteSpec {
        body: BodySize::Registry,
        deadline: Deadline::Long,
        ..route(
            Verb::Put,
            "/api/v1/registry",
            Operation::PutRegistry,
            Access::Admin,
        )
    },
    route(
        Verb::Post,
        "/api/v1/purchases",
        Operation::PostPurchase,
        Access::Market,
    ),
    route(
        Verb::Get,
        "/api/v1/calculator",
        Operation::Calculator,
        Access::Viewer,
    ),
    route(
        Verb::Get,
        "/api/v1/rejections",
        Operation::ListRejections,
        Access::Viewer,
    ),
    route(
        Verb::Get,
        "/api/v1/anomalies",
        Operation::ListAnomalies,
        Access::Viewer,
    ),
    RouteSpec {
        deadline: Deadline::Long,
        ..route(
            Verb::Get,
            "/api/v1/anomalies.csv",
            Operation::ExportAnomalies,
            Access::Viewer,
        )
    },
    route(
        Verb::Get,
        "/api/v1/anomalies/{id}",
        Operation::GetAnomaly,
        Access::Viewer,
    ),
    route(
        Verb::Post,
        "/api/v1/anomalies/{id}/transitions",
        Operation::TransitionAnomaly,
        Access::Investigator,
    ),
    route(
        Verb::Get,
        "/api/v1/anomalies/{id}/evidence",
        Operation::AnomalyEvidence,
        Access::Viewer,
    ),
    route(
        Verb::Get,
        "/api/v1/anomalies/{id}/evidence.svg",
        Operation::AnomalyEvidenceSvg,
        Access::Viewer,
    ),
    route(Verb::Get, "/", Operation::WebPage, Access::Public),
    route(
        Verb::Get,
        "/web/app.js",
        Operation::WebScript,
        Access::Public,
    ),
    route(
        Verb::Get,
        "/web/app.css",
        Operation::WebStyle,
        Access::Public,
    ),
];

/// The handler of a route, answering the route's method only.
pub fn handler(spec: &RouteSpec) -> MethodRouter<AppState> {
    let filter = match spec.verb {
        Verb::Get => MethodFilter::GET,
        Verb::Put => MethodFilter::PUT,
        Verb::Post => MethodFilter::POST,
    };
    match spec.operation {
        Operation::Metrics => on(filter, status::metrics),
        Operation::Healthz => on(filter, status::healthz),
        Operation::Status => on(filter, status::status),
        Operation::OpenApi => on(filter, openapi::document_handler),
        Operation::GetRegistry => on(filter, registry::get_registry),
        Operation::PutRegistry => on(filter, registry::put_registry),
        Operation::PostPurchase => on(filter, purchases::post_purchase),
        Operation::Calculator => on(filter, calculator::calculator),
        Operation::ListRejections => on(filter, rejections::list_rejections),
        Operation::ListAnomalies => on(filter, anomalies::list_anomalies),
        Operation::ExportAnomalies => on(filter, anomalies::export_csv),
        Operation::GetAnomaly => on(filter, anomalies::get_anomaly),
        Operation::TransitionAnomaly => on(filter, anomalies::post_transition),
        Operation::AnomalyEvidence => on(filter, evidence::evidence_json),
        Operation::AnomalyEvidenceSvg => on(filter, evidence::evidence_svg),
        Operation::WebPage => on(filter, web::index),
        Operation::WebScript => on(filter, web::script),
        Operation::WebStyle => on(filter, web::style),
    }
}
