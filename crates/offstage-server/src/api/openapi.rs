//! `GET /api/openapi.json`: the API described from the handlers' own annotations.

use axum::Json;
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
        super::tasks::purge,
        super::tasks::task_types,
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
        super::session::me,
        super::workers::connect,
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

/// Tightens parameters to what the server accepts, where the annotations cannot say it: ids
/// are UUIDs, limits have their ranges, the purge needs its time. (The checks themselves live
/// in `extract.rs` and the handlers; `tests/api.rs` walks the bad inputs.)
fn exact(document: &mut Value) {
    let uuid = json!({ "type": "string", "format": "uuid", "pattern": UUID_PATTERN });
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            let Some(parameters) = operation["parameters"].as_array_mut() else {
                continue;
            };
            for parameter in parameters {
                let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                let place = parameter["in"].as_str().unwrap_or_default().to_owned();
                match (name.as_str(), place.as_str()) {
                    ("id", "path") | ("before", "query") => parameter["schema"] = uuid.clone(),
                    ("limit", "query") => {
                        let max = if path.ends_with("/logs") {
                            10_000
                        } else {
                            1_000
                        };
                        parameter["schema"] =
                            json!({ "type": "integer", "minimum": 1, "maximum": max });
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
