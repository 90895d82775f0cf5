//! The OpenAPI 3.0 document of the API, built from the route table ([`super::routes::ROUTES`]):
//! every route is described, and nothing else is.

use axum::Json;
use serde_json::{json, Map, Value};

use super::auth::Access;
use super::routes::{Operation, RouteSpec, ROUTES};

const ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": json_content(schema("Error"))})
}

/// A query parameter. An optional one may be sent empty (`?reason=&meter=M-1`), which counts
/// as absent.
fn query(name: &str, description: &str, required: bool, schema: Value) -> Value {
    let mut parameter = json!({"name": name, "in": "query", "required": required, "description": description, "schema": schema});
    if !required {
        parameter["allowEmptyValue"] = json!(true);
    }
    parameter
}

/// The operation object of one route, without the parts every route shares.
fn operation(spec: &RouteSpec) -> Value {
    match spec.operation {
        Operation::Metrics => json!({
            "summary": "Prometheus metrics (text exposition format).",
            "responses": {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}}
        }),
        Operation::Healthz => json!({
            "summary": "Liveness: the process answers.",
            "responses": {"200": {"description": "Alive.", "content": {"text/plain": {"schema": {"type": "string"}}}}}
        }),
        Operation::Status => json!({
            "summary": "Detection progress (watermark) and running totals.",
            "responses": {
                "200": {"description": "The status.", "content": json_content(schema("Status"))},
                "503": error("The database is unavailable.")
            }
        }),
        Operation::OpenApi => json!({
            "summary": "This document.",
            "responses": {"200": {"description": "The OpenAPI document.", "content": json_content(json!({"type": "object"}))}}
        }),
        Operation::GetRegistry => json!({
            "summary": "The whole stored registry, as a registry document.",
            "responses": {
                "200": {"description": "The registry.", "content": json_content(schema("RegistryDocument"))},
                "503": error("The database is unavailable.")
            }
        }),
        Operation::PutRegistry => json!({
            "summary": "Validate and upsert a registry document, all or nothing (up to 50 MiB).",
            "description": "Entries are merged over the stored registry; entries the document leaves out are kept. Every created or changed entry is recorded in the registry's change history.",
            "requestBody": {"required": true, "content": json_content(schema("RegistryDocument"))},
            "responses": {
                "200": {"description": "Imported.", "content": json_content(schema("ImportSummary"))},
                "400": error("The body is not JSON."),
                "413": error("The document is larger than 50 MiB."),
                "415": error("The body is not declared as application/json."),
                "422": error("The document is invalid (`invalid_registry`); `details` lists every error, each naming its entry. Nothing was changed."),
                "503": error("The database is unavailable.")
            }
        }),
        Operation::PostPurchase => json!({
            "summary": "Submit an energy purchase (also accepted on the MQTT topic <root>/market/purchases).",
            "requestBody": {"required": true, "content": json_content(schema("PurchaseRequest"))},
            "responses": {
                "201": {"description": "Stored.", "content": json_content(schema("Purchase"))},
                "200": {"description": "The same purchase was already stored (idempotent).", "content": json_content(schema("Purchase"))},
                "400": error("The body is not JSON (`malformed_json`)."),
                "409": error("The id was already used with other content (`conflicting_purchase`)."),
                "413": error("The body is larger than 64 KiB."),
                "415": error("The body is not declared as application/json."),
                "422": error("Refused: `purchase_over_cap` (the attempt is kept and raised as an anomaly), `unknown_licence`, `invalid_field`, `negative_energy`, `invalid_delivery_interval`, `no_regulation_profile`."),
                "503": error("The database is unavailable.")
            }
        }),
        Operation::Calculator => json!({
            "summary": "The compliance calculator: purchases needed, profit tax, AIFC obligation.",
            "parameters": [
                query("consumption_mwh", "Electricity consumed over the period, in MWh (at most 10,000,000).", true, json!({"type": "number", "minimum": 0, "maximum": 10_000_000})),
                query("revenue_kzt", "Revenue over the period, in tenge.", true, json!({"type": "number", "minimum": 0, "maximum": 1e15})),
                query("costs_kzt", "Costs over the period, in tenge.", true, json!({"type": "number", "minimum": 0, "maximum": 1e15})),
                query("mined_assets", "Digital assets mined over the period, in units (e.g. BTC).", true, json!({"type": "number", "minimum": 0, "maximum": 1e12})),
                query("asset_value_kzt", "Value of one unit of the asset, in tenge.", false, json!({"type": "number", "minimum": 0, "maximum": 1e15})),
                query("date", "The day whose regulation profile applies (default: today, UTC).", false, json!({"type": "string", "format": "date"}))
            ],
            "responses": {
                "200": {"description": "The figures.", "content": json_content(schema("Compliance"))},
                "400": error("A parameter is missing or not a number (`invalid_query`)."),
                "422": error("A value is negative, not finite, absurd, or no profile is in force on the date (`invalid_input`).")
            }
        }),
        Operation::ListAnomalies | Operation::ExportAnomalies => anomaly_list(spec.operation),
        Operation::GetAnomaly => json!({
            "summary": "One anomaly with its tamper-evident history and the statuses it may move to.",
            "parameters": [id_parameter()],
            "responses": {
                "200": {"description": "The anomaly.", "content": json_content(schema("AnomalyDetail"))},
                "400": error("The id is not an identifier (`invalid_id`)."),
                "404": error("No anomaly has this id (`not_found`)."),
                "503": error("The database is unavailable.")
            }
        }),
        Operation::TransitionAnomaly => json!({
            "summary": "Move an anomaly through its life cycle; recorded with the token's name, the time and the note.",
            "description": "Allowed: open -> investigating; investigating -> confirmed; investigating -> dismissed (note required); investigating, confirmed or dismissed -> open (note required). Anything else is 409 `invalid_transition`.",
            "parameters": [id_parameter()],
            "requestBody": {"required": true, "content": json_content(schema("TransitionRequest"))},
            "responses": {
                "200": {"description": "Done: the anomaly with its history.", "content": json_content(schema("AnomalyDetail"))},
                "400": error("The id is not an identifier (`invalid_id`) or the body is not JSON (`malformed_json`)."),
                "404": error("No anomaly has this id (`not_found`)."),
                "409": error("Not allowed from the anomaly's status (`invalid_transition`); the message names from and to."),
                "413": error("The body is larger than 64 KiB."),
                "415": error("The body is not declared as application/json."),
                "422": error("`to` is not a status or the body has other fields (`invalid_field`), or the transition needs a note (`note_required`)."),
                "503": error("The database is unavailable.")
            }
        }),
        Operation::AnomalyEvidence | Operation::AnomalyEvidenceSvg => evidence(spec.operation),
        Operation::WebPage | Operation::WebScript | Operation::WebStyle => {
            let (summary, media) = match spec.operation {
                Operation::WebPage => ("The auditors' web page: the work queue, evidence charts, histories and transitions (its API calls need a token).", "text/html"),
                Operation::WebScript => ("The web page's script.", "text/javascript"),
                _ => ("The web page's style sheet.", "text/css"),
            };
            json!({
                "summary": summary,
                "responses": {"200": {"description": "The document, with a strict Content-Security-Policy.", "content": {media: {"schema": {"type": "string"}}}}}
            })
        }
        Operation::ListRejections => json!({
            "summary": "Payloads that could not be stored, newest first.",
            "parameters": [
                query("reason", "Only this reason code.", false, json!({"type": "string", "enum": gridwatch_core::ReasonCode::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>()})),
                query("meter", "Only rejections naming this meter.", false, json!({"type": "string", "maxLength": 256})),
                query("from", "Received at or after.", false, json!({"type": "string", "format": "date-time"})),
                query("to", "Received before.", false, json!({"type": "string", "format": "date-time"})),
                query("limit", "Items per page (default 100).", false, json!({"type": "integer", "minimum": 1, "maximum": 1000})),
                query("cursor", "`next_cursor` of the previous page.", false, json!({"type": "string"}))
            ],
            "responses": {
                "200": {"description": "A page.", "content": json_content(schema("RejectionPage"))},
                "400": error("A filter, the limit or the cursor is invalid (`invalid_query`, `invalid_cursor`)."),
                "503": error("The database is unavailable.")
            }
        }),
    }
}

fn id_parameter() -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": "The anomaly's id.", "schema": {"type": "string", "pattern": ID_PATTERN}})
}

fn tz_parameter() -> Value {
    query(
        "tz",
        "The UTC offset of the chart's local time (default +05:00; send + as %2B).",
        false,
        json!({"type": "string", "pattern": "^([+-][0-9]{2}:[0-9]{2}|Z)$"}),
    )
}

/// `GET /api/v1/anomalies` and its CSV twin.
fn anomaly_list(operation: Operation) -> Value {
    let list = |name: &str, values: &[&str]| {
        query(
            name,
            &format!("Only these {name} values (comma-separated)."),
            false,
            json!({"type": "string", "example": values.join(",")}),
        )
    };
    let id = json!({"type": "string", "pattern": ID_PATTERN});
    let csv = operation == Operation::ExportAnomalies;
    let parameters = vec![
        list("kind", crate::anomalies::query::KINDS),
        query("region", "Only this region.", false, id.clone()),
        query("node", "Only this node.", false, id.clone()),
        query("meter", "Only anomalies about this meter.", false, id.clone()),
        query("licence", "Only this licence.", false, id.clone()),
        query("suspect", "Only anomalies naming this meter among their suspects.", false, id),
        list("status", crate::anomalies::query::STATUSES),
        list("severity", crate::anomalies::query::SEVERITIES),
        query("from", "Only anomalies whose period [started_at, ended_at or now] ends at or after this.", false, json!({"type": "string", "format": "date-time"})),
        query("to", "Only anomalies whose period starts at or before this.", false, json!({"type": "string", "format": "date-time"})),
        query("sort", "`newest` (detected_at, newest first; default) or `priority` (loss_kzt x confidence, highest first: the work queue).", false, json!({"type": "string", "enum": ["newest", "priority"]})),
        if csv {
            query("limit", "Rows at most (default and maximum 100,000); the X-Next-Cursor header continues.", false, json!({"type": "integer", "minimum": 1, "maximum": 100_000}))
        } else {
            query("limit", "Items per page (default 100).", false, json!({"type": "integer", "minimum": 1, "maximum": 1000}))
        },
        query("cursor", "`next_cursor` of the previous page, with the same sort.", false, json!({"type": "string"})),
    ];
    let ok = if csv {
        json!({"description": "RFC 4180 CSV with a header row; text cells starting with = + - @ are prefixed with '.", "content": {"text/csv": {"schema": {"type": "string"}}}})
    } else {
        json!({"description": "A page.", "content": json_content(schema("AnomalyPage"))})
    };
    json!({
        "summary": if csv { "Anomalies as CSV, with the same filters." } else { "Anomalies, filtered, newest first or as the work queue, with cursor pagination." },
        "parameters": parameters,
        "responses": {
            "200": ok,
            "400": error("The query string cannot be read (`invalid_query`)."),
            "422": error("A filter, the limit or the cursor is refused (`invalid_filter`, `invalid_limit`, `invalid_cursor`); the message names the parameter."),
            "503": error("The database is unavailable.")
        }
    })
}

/// The evidence routes.
fn evidence(operation: Operation) -> Value {
    let (summary, ok) = if operation == Operation::AnomalyEvidenceSvg {
        ("An anomaly's evidence as an SVG chart: a title in plain words, MW or kWh against local time, the flagged period shaded.",
         json!({"description": "The chart.", "content": {"image/svg+xml": {"schema": {"type": "string"}}}}))
    } else {
        ("The data that proves an anomaly: a diversion's node balance with the normal range of losses, a meter's profile before and after, a farm's metered against bought energy, a node's coverage.",
         json!({"description": "The evidence (empty series when the data is gone).", "content": json_content(schema("Evidence"))}))
    };
    json!({
        "summary": summary,
        "parameters": [id_parameter(), tz_parameter()],
        "responses": {
            "200": ok,
            "400": error("The id is not an identifier (`invalid_id`)."),
            "404": error("No anomaly has this id (`not_found`)."),
            "422": error("tz is not a UTC offset (`invalid_filter`)."),
            "503": error("The database is unavailable.")
        }
    })
}

/// The schemas of anomalies, their history and evidence.
fn anomaly_schemas() -> Value {
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_time = json!({"type": "string", "format": "date-time", "nullable": true});
    let nullable = json!({"type": "string", "nullable": true});
    let point = json!({"type": "object", "required": ["t", "value"], "properties": {"t": time, "value": {"type": "number", "nullable": true}}});
    let anomaly = json!({"type": "object", "required": ["id", "kind", "region", "node", "meter", "licence", "started_at", "ended_at", "detected_at", "energy_wh", "loss_kzt", "score", "severity", "status", "suspects", "evidence"], "properties": {
        "id": {"type": "string"}, "kind": {"type": "string", "description": "diversion, quota_overrun, capacity_exceeded, unlicensed_mining, meter_tamper, purchase_over_cap, mining_share_exceeded, data_gap, topology_change; more may be added."},
        "region": nullable, "node": nullable, "meter": nullable, "licence": nullable,
        "started_at": time, "ended_at": nullable_time, "detected_at": time,
        "energy_wh": {"type": "integer"}, "loss_kzt": {"type": "number"}, "score": {"type": "number"},
        "severity": {"type": "string", "enum": crate::anomalies::query::SEVERITIES},
        "status": {"type": "string", "enum": crate::anomalies::query::STATUSES},
        "suspects": {"type": "array", "items": {"type": "string"}},
        "evidence": {"type": "object", "description": "What the detector recorded (summary, thresholds, figures)."},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "priority_kzt": {"type": "number", "description": "loss_kzt x confidence: the expected tenge at stake."},
        "updated_at": time}});
    // `withdrawn` is the detector's: an auditor's transition cannot ask for it.
    let auditor_statuses: Vec<&str> = crate::anomalies::transition::Status::ALL
        .iter()
        .filter(|s| **s != crate::anomalies::transition::Status::Withdrawn)
        .map(|s| s.as_str())
        .collect();
    let history = json!({"type": "object", "required": ["seq", "at", "actor", "action", "from", "to", "note", "hash"], "properties": {
        "seq": {"type": "integer"}, "at": time, "actor": {"type": "string"},
        "action": {"type": "string", "enum": ["created", "updated", "transition"]},
        "from": nullable, "to": nullable, "note": nullable,
        "hash": {"type": "string", "description": "The entry's SHA-256 in the chain, hex."}}});
    let detail = json!({"allOf": [schema("Anomaly"), {"type": "object", "required": ["history", "next_statuses", "links"], "properties": {
        "history": {"type": "array", "items": schema("HistoryEntry")},
        "next_statuses": {"type": "array", "items": {"type": "string"}},
        "links": {"type": "object", "properties": {"evidence": {"type": "string"}, "evidence_svg": {"type": "string"}, "transitions": {"type": "string"}}}}}]});
    let series = json!({"type": "object", "required": ["key", "label", "reference", "points"], "properties": {
        "key": {"type": "string"}, "label": {"type": "string"}, "reference": {"type": "boolean"},
        "points": {"type": "array", "items": point}}});
    let band = json!({"type": "object", "nullable": true, "properties": {"label": {"type": "string"}, "points": {"type": "array", "items": {"type": "object", "properties": {
        "t": time, "low": {"type": "number"}, "high": {"type": "number"}}}}}});
    let panel = json!({"type": "object", "required": ["title", "quantity", "unit", "interval_seconds", "series", "band"], "properties": {
        "title": {"type": "string"}, "quantity": {"type": "string", "enum": ["energy_per_interval", "register", "percent"]},
        "unit": {"type": "string", "enum": ["Wh", "%"]}, "interval_seconds": {"type": "integer"},
        "series": {"type": "array", "items": series}, "band": band}});
    let evidence = json!({"type": "object", "required": ["anomaly", "kind", "title", "explanation", "from", "to", "flagged", "tz", "panels", "notes"], "properties": {
        "anomaly": {"type": "string"}, "kind": {"type": "string"}, "title": {"type": "string"}, "explanation": {"type": "string"},
        "summary": nullable, "from": time, "to": time,
        "flagged": {"type": "object", "properties": {"started_at": time, "ended_at": nullable_time}},
        "tz": {"type": "string"}, "notes": {"type": "array", "items": {"type": "string"}},
        "panels": {"type": "array", "items": panel}}});
    json!({
        "Anomaly": anomaly,
        "AnomalyPage": {"type": "object", "required": ["items", "next_cursor"], "properties": {
            "items": {"type": "array", "items": schema("Anomaly")}, "next_cursor": {"type": "string", "nullable": true}}},
        "HistoryEntry": history,
        "AnomalyDetail": detail,
        "TransitionRequest": {"type": "object", "additionalProperties": false, "required": ["to"], "properties": {
            "to": {"type": "string", "enum": auditor_statuses},
            "note": {"type": "string", "maxLength": 2000, "nullable": true}}},
        "Evidence": evidence
    })
}

fn components() -> Value {
    let id = json!({"type": "string", "pattern": ID_PATTERN});
    let nullable_id = json!({"type": "string", "pattern": ID_PATTERN, "nullable": true});
    let text = json!({"type": "string", "minLength": 1, "maxLength": 200});
    let time = json!({"type": "string", "format": "date-time"});
    let counts = json!({"type": "object", "required": ["regions", "nodes", "meters", "licences"], "properties": {
        "regions": {"type": "integer"}, "nodes": {"type": "integer"}, "meters": {"type": "integer"}, "licences": {"type": "integer"}}});
    json!({
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A token of the tokens file (GRIDWATCH_TOKENS_FILE)."}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "description": "snake_case code to branch on."},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object", "properties": {"entry": {"type": "string"}, "message": {"type": "string"}}}}}}}},
            "Status": {"type": "object", "required": ["watermark", "evaluated_until", "analysed_until", "readings_total", "rejections_total", "open_anomalies"], "properties": {
                "watermark": {"type": "string", "format": "date-time", "nullable": true},
                "evaluated_until": {"type": "string", "format": "date-time", "nullable": true, "description": "Every window ending at or before it is evaluated (diversion, topology_change, quota_overrun, capacity_exceeded, data_gap): the least advanced region's."},
                "analysed_until": {"type": "string", "format": "date-time", "nullable": true, "description": "Every daily analysis of days ending at or before it is visible (unlicensed_mining, meter_tamper, mining_share_exceeded): the least advanced region's."},
                "readings_total": {"type": "integer"}, "rejections_total": {"type": "integer"}, "open_anomalies": {"type": "integer"}}},
            "Region": {"type": "object", "additionalProperties": false, "required": ["id", "name", "tariff_kzt_per_kwh"], "properties": {
                "id": id, "name": text, "tariff_kzt_per_kwh": {"type": "number", "minimum": 0, "maximum": 1000}}},
            "Node": {"type": "object", "additionalProperties": false, "required": ["id", "parent", "region", "kind"], "properties": {
                "id": id, "parent": nullable_id, "region": id, "kind": text, "input_meter": nullable_id}},
            "Meter": {"type": "object", "additionalProperties": false, "required": ["id", "node", "role", "class", "accuracy_pct"], "properties": {
                "id": id, "node": id, "role": {"type": "string", "enum": ["input", "consumer"]},
                "class": {"type": "string", "enum": ["boundary", "household", "commercial", "industrial", "mining"]},
                "accuracy_pct": {"type": "number", "exclusiveMinimum": true, "minimum": 0, "maximum": 20},
                "licence": id, "gateway": id}},
            "Licence": {"type": "object", "additionalProperties": false, "required": ["id", "holder", "registered_machines", "machine_rated_w"], "properties": {
                "id": id, "holder": text, "pool": {"type": "string", "minLength": 1, "maxLength": 200, "nullable": true},
                "registered_machines": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
                "machine_rated_w": {"type": "integer", "minimum": 1, "maximum": 100_000}}},
            "RegistryDocument": {"type": "object", "additionalProperties": false, "properties": {
                "regions": {"type": "array", "items": schema("Region")},
                "nodes": {"type": "array", "items": schema("Node")},
                "meters": {"type": "array", "items": schema("Meter")},
                "licences": {"type": "array", "items": schema("Licence")}}},
            "ImportSummary": {"type": "object", "required": ["created", "updated", "unchanged", "version"], "properties": {
                "created": counts, "updated": counts, "unchanged": {"type": "integer"}, "version": {"type": "integer"}}},
            "PurchaseRequest": {"type": "object", "additionalProperties": false,
                "required": ["id", "licence", "energy_wh", "delivery_start", "delivery_end", "price_kzt"], "properties": {
                "id": id, "licence": id,
                "energy_wh": {"type": "integer", "minimum": 1, "description": "At most the cap of the regulation profile in force at delivery_start (1,000,000 Wh)."},
                "delivery_start": time, "delivery_end": time,
                "price_kzt": {"type": "number", "minimum": 0, "maximum": 1e12}}},
            "Purchase": {"type": "object", "required": ["id", "licence", "energy_wh", "delivery_start", "delivery_end", "price_kzt", "profile", "cap_wh", "channel", "submitted_by", "received_at"], "properties": {
                "id": {"type": "string"}, "licence": {"type": "string"}, "energy_wh": {"type": "integer"},
                "delivery_start": time, "delivery_end": time, "price_kzt": {"type": "number"},
                "profile": {"type": "string"}, "cap_wh": {"type": "integer"},
                "channel": {"type": "string", "enum": ["http", "mqtt"]}, "submitted_by": {"type": "string"}, "received_at": time}},
            "Compliance": {"type": "object", "required": ["date", "consumption_wh", "purchase_cap_wh", "purchases_needed", "profit_kzt", "profit_tax_pct", "profit_tax_kzt", "aifc_share_pct", "aifc_obligation_assets", "aifc_obligation_kzt", "profile"], "properties": {
                "date": {"type": "string", "format": "date"},
                "consumption_wh": {"type": "integer"}, "purchase_cap_wh": {"type": "integer"},
                "purchases_needed": {"type": "integer", "description": "consumption / cap, rounded up."},
                "profit_kzt": {"type": "number"}, "profit_tax_pct": {"type": "number"}, "profit_tax_kzt": {"type": "number"},
                "aifc_share_pct": {"type": "number"}, "aifc_obligation_assets": {"type": "number"},
                "aifc_obligation_kzt": {"type": "number", "nullable": true},
                "profile": {"type": "object", "required": ["name", "effective_from"], "properties": {
                    "name": {"type": "string"}, "effective_from": {"type": "string", "format": "date"}}}}},
            "Rejection": {"type": "object", "required": ["id", "received_at", "topic", "source", "meter_id", "reading_ts", "reason", "detail", "raw", "raw_encoding", "raw_size", "raw_truncated"], "properties": {
                "id": {"type": "integer"}, "received_at": time, "topic": {"type": "string"}, "source": {"type": "string"},
                "meter_id": {"type": "string", "nullable": true}, "reading_ts": {"type": "string", "format": "date-time", "nullable": true},
                "reason": {"type": "string"}, "detail": {"type": "string"},
                "raw": {"type": "string", "description": "The payload kept (up to 64 KiB): text if UTF-8, else base64 (see raw_encoding)."},
                "raw_encoding": {"type": "string", "enum": ["utf8", "base64"]},
                "raw_size": {"type": "integer"}, "raw_truncated": {"type": "boolean"}}},
            "RejectionPage": {"type": "object", "required": ["items", "next_cursor"], "properties": {
                "items": {"type": "array", "items": schema("Rejection")},
                "next_cursor": {"type": "string", "nullable": true}}}
        }
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut components = components();
    if let (Some(schemas), Value::Object(more)) =
        (components["schemas"].as_object_mut(), anomaly_schemas())
    {
        schemas.extend(more);
    }
    let mut paths = Map::new();
    for spec in ROUTES {
        let mut op = operation(spec);
        if let Some(object) = op.as_object_mut() {
            object.insert("operationId".into(), json!(format!("{:?}", spec.operation)));
            if spec.access != Access::Public {
                object.insert("security".into(), json!([{"bearer": []}]));
                object.insert(
                    "description".into(),
                    json!(format!(
                        "{} Role: {}.",
                        object
                            .get("description")
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                        spec.access.roles()
                    )
                    .trim()
                    .to_owned()),
                );
                if let Some(responses) = object.get_mut("responses").and_then(Value::as_object_mut)
                {
                    responses.insert("401".into(), error("No valid bearer token."));
                    responses.insert(
                        "403".into(),
                        error("The token's role may not call this route."),
                    );
                    responses.insert(
                        "429".into(),
                        error(
                            "This client address presented too many invalid bearer tokens; \
                             retry after the `Retry-After` header's seconds.",
                        ),
                    );
                }
            }
            if let Some(responses) = object.get_mut("responses").and_then(Value::as_object_mut) {
                responses.insert("408".into(), error("The request took too long."));
                responses.insert("500".into(), error("An internal error (logged)."));
            }
        }
        let entry = paths
            .entry(spec.path.to_owned())
            .or_insert_with(|| json!({}));
        if let Some(item) = entry.as_object_mut() {
            item.insert(spec.verb.as_lower().into(), op);
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "gridwatch",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Smart-meter theft detection: registry, quota ledger, compliance calculator, rejections, anomalies with their evidence and tamper-evident life cycle, status. Errors are {\"error\": {\"code\", \"message\"}}."
        },
        "paths": paths,
        "components": components
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn document_handler() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_once_with_responses() {
        let doc = document();
        let mut documented = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                documented += 1;
                assert!(
                    op["responses"]["200"].is_object() || op["responses"]["201"].is_object(),
                    "{method} {path}"
                );
                assert!(ROUTES
                    .iter()
                    .any(|r| r.path == path && r.verb.as_lower() == method));
            }
        }
        assert_eq!(documented, ROUTES.len());
    }
}
