//! **Args schemas**: a task type's args as JSON Schema (see
//! `offstage::RuntimeBuilder::args_schema`), and the example built from one that
//! `/api/task-types`, `offstage types` and the dashboard's launch form start from.
//!
//! ```
//! use serde_json::json;
//!
//! let schema = json!({
//!     "type": "object",
//!     "properties": { "to": { "type": "integer", "minimum": 1 }, "label": { "type": "string" } },
//!     "required": ["to"],
//! });
//! assert_eq!(offstage_server::schema::example(&schema), json!({ "to": 1 }));
//! ```

use serde_json::{json, Map, Value};

/// How deep [`example`] follows nested schemas and references before it gives `null`.
const DEPTH: usize = 16;

/// A value that fits `schema`, for a person to start from: the schema's own example or default
/// where it gives one, else the smallest value of its type, with the required properties of
/// an object (the optional ones left out). References (`$ref` to `#/$defs/…` or
/// `#/definitions/…`) are followed within `schema`.
pub fn example(schema: &Value) -> Value {
    example_at(schema, schema, DEPTH)
}

fn example_at(root: &Value, schema: &Value, depth: usize) -> Value {
    let Some(schema) = schema.as_object() else {
        // `true` (anything) or a schema this does not read.
        return Value::Null;
    };
    if depth == 0 {
        return Value::Null;
    }
    if let Some(first) = schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for given in ["example", "default", "const"] {
        if let Some(value) = schema.get(given) {
            return value.clone();
        }
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        return match resolve(root, target) {
            Some(target) => example_at(root, target, depth - 1),
            None => Value::Null,
        };
    }
    for alternatives in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema
            .get(alternatives)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return example_at(root, first, depth - 1);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        // `["string", "null"]`: the first that is not null.
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema.contains_key("properties") => "object",
        _ => return Value::Null,
    };
    match kind {
        "object" => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let required = schema.get("required").and_then(Value::as_array);
            let mut object = Map::new();
            for name in required.into_iter().flatten().filter_map(Value::as_str) {
                let property = properties.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                object.insert(name.to_owned(), example_at(root, property, depth - 1));
            }
            Value::Object(object)
        }
        "array" => {
            let least = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let item = schema.get("items").unwrap_or(&Value::Null);
            (0..least.min(8))
                .map(|_| example_at(root, item, depth - 1))
                .collect()
        }
        "string" => json!(""),
        "integer" => schema
            .get("minimum")
            .and_then(Value::as_i64)
            .map_or(json!(0), |least| json!(least.max(0))),
        "number" => schema
            .get("minimum")
            .and_then(Value::as_f64)
            .map_or(json!(0), |least| json!(least.max(0.0))),
        "boolean" => json!(false),
        _ => Value::Null,
    }
}

/// The schema a local reference (`#/$defs/Name`) points at.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    root.pointer(reference.strip_prefix('#')?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_fit_their_schemas() {
        let cases = [
            (
                json!({ "type": "object", "properties": { "seconds": { "type": "number" } },
                        "required": ["seconds"] }),
                json!({ "seconds": 0 }),
            ),
            (
                json!({ "type": "object", "properties": { "to": { "type": "integer", "minimum": 1 },
                        "interval_ms": { "type": "integer", "default": 100 } }, "required": ["to"] }),
                json!({ "to": 1 }),
            ),
            (
                json!({ "examples": [{ "value": "hi" }] }),
                json!({ "value": "hi" }),
            ),
            (json!({ "type": ["string", "null"] }), json!("")),
            (json!({ "enum": ["a", "b"] }), json!("a")),
            (json!(true), Value::Null),
            (
                json!({ "$ref": "#/$defs/Inner", "$defs": { "Inner": { "type": "object",
                        "properties": { "on": { "type": "boolean" } }, "required": ["on"] } } }),
                json!({ "on": false }),
            ),
            (
                json!({ "type": "array", "items": { "type": "string" }, "minItems": 2 }),
                json!(["", ""]),
            ),
        ];
        for (schema, expected) in cases {
            assert_eq!(example(&schema), expected, "{schema}");
        }
    }

    #[test]
    fn a_reference_to_itself_ends() {
        let schema = json!({ "$ref": "#" });
        assert_eq!(example(&schema), Value::Null);
    }
}
