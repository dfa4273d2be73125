//! `GET /api/openapi.json`: the API described from the handlers' own annotations.

use axum::Json;
use offstage::limits::{MAX_KEY_CHARS, MAX_NAME_CHARS, MAX_OWNER_CHARS};
use offstage::Status;
use serde_json::{json, Value};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Offstage", description = "Background tasks: launch, watch, kill, over HTTP."),
    paths(
        super::tasks::launch,
        super::tasks::list,
        super::tasks::show,
        super::tasks::kill,
        super::tasks::logs,
        super::signals::send,
        super::signals::list,
        super::tasks::purge,
        super::tasks::task_types,
        super::fleet::pause,
        super::fleet::resume,
        super::fleet::nodes,
        super::actions::rerun,
        super::actions::start,
        super::actions::list,
        super::actions::show,
        super::events::all,
        super::events::task,
        super::schedules::list,
        super::schedules::show,
        super::schedules::put,
        super::schedules::pause,
        super::schedules::resume,
        super::schedules::delete,
        super::shared::list,
        super::shared::show,
        super::shared::set,
        super::shared::events,
        super::stats::stats,
        super::session::me,
        super::tokens::mint,
        super::workers::connect,
        super::health::healthz,
        super::health::readyz,
        super::limiters::list,
        super::limiters::put,
        super::limiters::delete,
        super::limiters::acquire,
        super::limiters::release,
    ),
    components(schemas(crate::error::ErrorBody, offstage::SharedChange)),
    modifiers(&BearerAuth)
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("token", SecurityScheme::Http(scheme));
        openapi.security = Some(vec![SecurityRequirement::new(
            "token",
            Vec::<String>::new(),
        )]);
    }
}

/// The OpenAPI document.
pub(crate) async fn document() -> Json<Value> {
    Json(exact_document())
}

/// The document as served: what the annotations say, then made exactly as strict as the
/// extractors and handlers (`exact`).
pub(crate) fn exact_document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    exact(&mut document);
    document
}

/// Every form of id `TaskId::from_str` accepts (those of `Uuid::parse_str`): hyphenated (what
/// the server writes), simple, braced and URN.
const UUID_PATTERN: &str = "^([0-9a-fA-F]{32}|(urn:uuid:)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\\})$";

/// No control characters (`char::is_control`: C0, DEL and C1), the rule of `offstage::limits`.
const NO_CONTROL_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// Tightens parameters to what the server accepts, where the annotations cannot say it: ids
/// are UUIDs, limits have their ranges, the purge needs its time. (The checks themselves live
/// in `extract.rs` and the handlers; `tests/api.rs` walks the bad inputs.)
fn exact(document: &mut Value) {
    let uuid = json!({ "type": "string", "format": "uuid", "pattern": UUID_PATTERN });
    let shared_name = json!({ "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS,
        "pattern": NO_CONTROL_PATTERN });
    let schedule_name = json!({ "type": "string", "minLength": 1, "maxLength": 200,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$" });
    // A `Last-Event-ID` is any u64 the server reads.
    let event_id = json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX });
    // (`get_mut`, never `[]` on the way in: indexing a missing key would insert a null.)
    let mut no_schemas = Value::Null;
    let schemas = document
        .get_mut("components")
        .and_then(|c| c.get_mut("schemas"))
        .unwrap_or(&mut no_schemas);
    // Values of shared documents, a task's args, state and return value, and a task type's
    // args schema and example are any JSON, not only objects.
    for (schema, field) in [
        ("SharedRecord", "value"),
        ("SharedChange", "value"),
        ("SharedSetRequest", "value"),
        ("TaskRecord", "args"),
        ("TaskRecord", "state"),
        ("TaskRecord", "return_value"),
        ("ScheduleRecord", "args"),
        ("TaskTypeView", "args_schema"),
        ("TaskTypeView", "args_example"),
    ] {
        if let Some(property) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
        {
            let description = property["description"].clone();
            *property = json!({ "description": description });
        }
    }
    // Labels (`offstage::limits`): bounded, no control characters; a key or owner may be null.
    let text = |max: usize, nullable: bool| {
        let kind = if nullable {
            json!(["string", "null"])
        } else {
            json!("string")
        };
        json!({ "type": kind, "maxLength": max, "pattern": NO_CONTROL_PATTERN })
    };
    let on_conflict = |values: &[&str]| {
        let mut values: Vec<Value> = values.iter().map(|v| json!(v)).collect();
        values.push(Value::Null);
        json!({ "enum": values })
    };
    // Durations are seconds, fractions allowed (`tasks::timeout`).
    let timeout_s =
        json!({ "type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 1e9 });
    // (schema, field, what the server takes there)
    let fields = [
        ("LaunchRequest", "name", text(MAX_NAME_CHARS, false)),
        ("LaunchRequest", "key", text(MAX_KEY_CHARS, true)),
        ("LaunchRequest", "owner", text(MAX_OWNER_CHARS, true)),
        (
            "LaunchRequest",
            "on_conflict",
            on_conflict(&["reject", "existing", "supersede"]),
        ),
        // Args are any JSON; whether they fit the task type is the task type's to say (422).
        ("LaunchRequest", "args", json!({})),
        ("RerunRequest", "args", json!({})),
        ("BulkFilter", "name", text(MAX_NAME_CHARS, true)),
        ("BulkFilter", "owner", text(MAX_OWNER_CHARS, true)),
        ("BulkFilter", "key", text(MAX_KEY_CHARS, true)),
        // A rate: launches a second, above zero (`Bulk::check`).
        (
            "BulkRequest",
            "per_s",
            json!({ "type": ["number", "null"], "exclusiveMinimum": 0 }),
        ),
        ("LaunchRequest", "timeout_s", timeout_s.clone()),
        (
            "LaunchRequest",
            "delay_s",
            json!({ "type": ["number", "null"], "minimum": 0, "exclusiveMaximum": 1e9 }),
        ),
        ("ScheduleRequest", "task", text(MAX_NAME_CHARS, false)),
        ("ScheduleRequest", "args", json!({})),
        // croner parses the trimmed text; whether the fields are a cron expression is a 400.
        (
            "ScheduleRequest",
            "cron",
            json!({ "type": "string", "minLength": 1, "pattern": "\\S" }),
        ),
        ("ScheduleOptions", "timeout_s", timeout_s),
        (
            "KillRequest",
            "grace_s",
            json!({ "type": ["number", "null"], "minimum": 0, "maximum": 1e9 }),
        ),
        // Exactly one of the two, a string (`tokens::mint`).
        (
            "MintRequest",
            "scope",
            json!({ "oneOf": [
                { "type": "object", "required": ["task"], "additionalProperties": false,
                  "properties": { "task": uuid.clone() } },
                { "type": "object", "required": ["owner"], "additionalProperties": false,
                  "properties": { "owner": { "type": "string", "minLength": 1,
                      "maxLength": MAX_OWNER_CHARS, "pattern": NO_CONTROL_PATTERN } } },
            ] }),
        ),
        // A set: `read`, and `kill` beside it or not, in any order.
        (
            "MintRequest",
            "rights",
            json!({ "type": "array", "minItems": 1, "items": { "enum": ["read", "kill"] },
                "contains": { "const": "read" } }),
        ),
        (
            "MintRequest",
            "ttl_s",
            json!({ "type": "number", "exclusiveMinimum": 0,
                "maximum": crate::scoped::MAX_TTL.as_secs() }),
        ),
        ("ScheduleOptions", "key", text(MAX_KEY_CHARS, true)),
        ("ScheduleOptions", "owner", text(MAX_OWNER_CHARS, true)),
        (
            "ScheduleOptions",
            "on_conflict",
            on_conflict(&["reject", "existing"]),
        ),
    ];
    for (schema, field, exact) in fields {
        if let Some(property) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
        {
            let description = property["description"].clone();
            *property = exact;
            property["description"] = description;
        }
    }
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            // Every operation may answer a 4xx with the error body (a missing or bad token
            // first of all).
            if let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            {
                responses.entry("4XX").or_insert_with(|| {
                    json!({ "description": "the request was refused; the message says how to fix it",
                        "content": { "application/json": {
                            "schema": { "$ref": "#/components/schemas/ErrorBody" } } } })
                });
            }
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters {
                let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                let place = parameter["in"].as_str().unwrap_or_default().to_owned();
                match (name.as_str(), place.as_str()) {
                    ("id", "path")
                    | ("before", "query")
                    | ("rerun_of", "query")
                    | ("parent", "query") => parameter["schema"] = uuid.clone(),
                    ("limit", "query") => {
                        let max = if path.ends_with("/logs") {
                            10_000
                        } else {
                            1_000
                        };
                        parameter["schema"] =
                            json!({ "type": "integer", "minimum": 1, "maximum": max });
                    }
                    ("name", "path")
                        if path.starts_with("/api/shared/") || path.contains("/signals/") =>
                    {
                        parameter["schema"] = shared_name.clone()
                    }
                    ("name", "path") if path.starts_with("/api/schedules/") => {
                        parameter["schema"] = schedule_name.clone()
                    }
                    ("Last-Event-ID", "header") => parameter["schema"] = event_id.clone(),
                    // A scoped token; anything else is refused (401, 400).
                    ("token", "query") => {
                        parameter["schema"] = json!({ "type": "string", "pattern": "^ost1\\." })
                    }
                    // The list's filters meet the rules of what they match.
                    ("name", "query") => parameter["schema"] = text(MAX_NAME_CHARS, false),
                    ("owner", "query") => parameter["schema"] = text(MAX_OWNER_CHARS, false),
                    ("key", "query") => parameter["schema"] = text(MAX_KEY_CHARS, false),
                    ("status", "query") => {
                        let mut statuses: Vec<Value> =
                            Status::ALL.iter().map(|s| json!(s.as_str())).collect();
                        // Empty: no filter (what a form's "any status" sends).
                        statuses.push(json!(""));
                        parameter["schema"] = json!({ "type": "string", "enum": statuses });
                    }
                    ("finished_before", "query") => {
                        parameter["required"] = json!(true);
                        parameter["schema"] = json!({ "type": "string", "format": "date-time" });
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_limits_and_the_purge_time_are_as_strict_as_the_server() {
        let document = exact_document();
        let parameter = |path: &str, method: &str, name: &str| {
            document["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap()
                .clone()
        };
        assert_eq!(
            parameter("/api/tasks/{id}", "get", "id")["schema"]["format"],
            "uuid"
        );
        assert_eq!(
            parameter("/api/tasks", "get", "limit")["schema"]["maximum"],
            1000
        );
        assert_eq!(
            parameter("/api/tasks/{id}/logs", "get", "limit")["schema"]["maximum"],
            10000
        );
        assert_eq!(
            parameter("/api/tasks", "delete", "finished_before")["required"],
            true
        );
    }
}
