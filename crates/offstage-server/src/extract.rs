//! Extractors that turn axum's rejections into [`ApiError`]s with fixing advice.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// A JSON body of type `T`: one JSON object.
///
/// serde would also read a struct from an array of its fields in order (`["demo.echo", {}]`);
/// the OpenAPI document says every body is an object, so anything else is refused here.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state)
            .await
            .map_err(json_rejection)?;
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!(
                    "the body is {}: it must be one JSON object, with the fields by name",
                    kind(&value)
                ),
            ));
        }
        serde_path_to_error::deserialize(value)
            .map(Body)
            .map_err(|error| {
                let path = error.path().to_string();
                let at = if path == "." {
                    String::new()
                } else {
                    format!("{path}: ")
                };
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    format!(
                        "{at}{}: check the field names and types",
                        error.into_inner()
                    ),
                )
            })
    }
}

/// What kind of JSON value `value` is, for a message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("{detail}: check the field names and types"),
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(
            "malformed_json",
            format!("{detail}: the body must be one JSON object"),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_json",
            "send the body as JSON with the header `Content-Type: application/json`",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body is over the server's limit of 1 MiB: keep large data elsewhere and pass a reference",
        ),
        other => ApiError::new(other.status(), "bad_body", other.body_text()),
    }
}

/// Query parameters of type `T`.
#[derive(Debug)]
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        format!(
            "{}: check the query parameters' names and values",
            rejection.body_text()
        ),
    )
}

/// A task id from the path, parsed.
#[derive(Debug)]
pub(crate) struct TaskIdPath(pub offstage::TaskId);

impl<S: Send + Sync> FromRequestParts<S> for TaskIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(text) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|rejection: PathRejection| {
                    ApiError::bad_request("invalid_path", rejection.body_text())
                })?;
        text.parse().map(TaskIdPath).map_err(ApiError::from)
    }
}

/// A name from the path (a shared document's), percent-decoded.
#[derive(Debug)]
pub(crate) struct NamePath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for NamePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(name)| NamePath(name))
            .map_err(|rejection: PathRejection| {
                ApiError::bad_request(
                    "invalid_path",
                    format!(
                        "{}: percent-encode the name as UTF-8",
                        rejection.body_text()
                    ),
                )
            })
    }
}

/// Integers in bodies as JSON has them: one number type, so `188.0` is the integer 188 (as JSON
/// Schema's `integer` says, and as Python's `json` writes a float). A fraction, or a number out
/// of the field's range, is refused.
pub(crate) mod whole {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    /// For `#[serde(default, deserialize_with = "whole::option")]` on an `Option` of an integer.
    pub(crate) fn option<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i128>,
    {
        let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
            return Ok(None);
        };
        let whole = if let Some(n) = number.as_u64() {
            Some(i128::from(n))
        } else if let Some(n) = number.as_i64() {
            Some(i128::from(n))
        } else {
            // Within ±2^63 a whole f64 converts exactly; beyond, it fits no field here.
            number
                .as_f64()
                .filter(|n| n.fract() == 0.0 && n.abs() < 9.2e18)
                .map(|n| n as i128)
        };
        whole
            .and_then(|n| T::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                D::Error::custom(format!("{number} is not an integer in the field's range"))
            })
    }
}

/// A body field the API no longer takes, kept by name so that a client still sending it is
/// told what replaced it (a 400 naming the new field) instead of "unknown field". Declare it
/// `#[serde(default)]` and `#[schema(ignore)]` (the document lists only what is taken), and
/// call [`Retired::refuse`] first thing in the handler.
#[derive(Debug, Default)]
pub(crate) struct Retired(bool);

impl<'de> serde::Deserialize<'de> for Retired {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Whatever its value (`null` too), the field was sent.
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Ok(Retired(true))
    }
}

impl Retired {
    /// A 400 (`retired_field`) saying that `field` is no longer accepted and what to give
    /// `instead`, if the body had it.
    pub(crate) fn refuse(&self, field: &str, instead: &str) -> Result<(), ApiError> {
        if !self.0 {
            return Ok(());
        }
        Err(ApiError::bad_request(
            "retired_field",
            format!("`{field}` is no longer accepted: {instead}"),
        ))
    }
}
