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
            "Status": {"type": "object", "required": ["watermark", "readings_total", "rejections_total", "open_anomalies"], "properties": {
                "watermark": {"type": "string", "format": "date-time", "nullable": true},
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
            "description": "Smart-meter theft detection: registry, quota ledger, compliance calculator, rejections, status. Errors are {\"error\": {\"code\", \"message\"}}."
        },
        "paths": paths,
        "components": components()
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
