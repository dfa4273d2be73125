//! `/api/tasks/{id}/signals`: sending a task a signal (role `control`, or a scoped token with
//! the `signal` right, within its scope), and listing the signals it was sent.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use offstage::{SignalRecord, TaskId};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Access;
use crate::error::ApiError;
use crate::extract::TaskIdPath;
use crate::AppState;

/// The signals sent to a task, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SignalList {
    signals: Vec<SignalRecord>,
}

/// Sends task `id` signal `name`; the body is its payload, any JSON value (empty: `null`),
/// at most the state cap. The signal is kept until the task receives it
/// (`ctx.wait_signal(name)`): sent before the task waits, it is received when it does.
#[utoipa::path(post, path = "/api/tasks/{id}/signals/{name}", tag = "tasks",
    params(("id" = String, Path, description = "task id"),
        ("name" = String, Path, description = "the signal's name (1 to 200 characters, no control characters)")),
    request_body(content = Object, description = "the payload: any JSON value", content_type = "application/json"),
    responses((status = 202, body = SignalRecord, description = "kept for the task"),
        (status = 400, body = crate::error::ErrorBody, description = "a bad name, or a body that is not JSON"),
        (status = 403, body = crate::error::ErrorBody, description = "a scoped token without the signal right"),
        (status = 404, body = crate::error::ErrorBody, description = "no such task"),
        (status = 409, body = crate::error::ErrorBody, description = "the task has ended: nothing would receive it"),
        (status = 413, body = crate::error::ErrorBody, description = "the payload is over the state cap"),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn send(
    State(state): State<AppState>,
    access: Access,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SignalRecord>), ApiError> {
    let Path((id, name)) = path.map_err(|rejection| {
        ApiError::bad_request(
            "invalid_path",
            format!(
                "{}: percent-encode the signal name as UTF-8",
                rejection.body_text()
            ),
        )
    })?;
    let id: TaskId = id.parse().map_err(ApiError::from)?;
    let body = body.map_err(|rejection| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "{}: a signal's payload is at most the state cap; send a reference (an id, a \
                 URL) to larger data",
                rejection.body_text()
            ),
        )
    })?;
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!(
                    "{e}: the body is the signal's payload, one JSON value (or empty for null)"
                ),
            )
        })?
    };
    let record = state.runtime.record(id).await?;
    access.check_signals(&record)?;
    let sender = match &access {
        Access::Scoped(grant) => format!("scoped token for {}", grant.scope),
        Access::Role(_) => state.tokens.actor(&headers),
    };
    let signal = state
        .runtime
        .signal_json(id, &name, payload, Some(&sender))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(signal)))
}

/// The signals sent to task `id` (at most 1,000), oldest first: received or not, by which
/// attempt.
#[utoipa::path(get, path = "/api/tasks/{id}/signals", tag = "tasks",
    params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = SignalList), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    access: Access,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<SignalList>, ApiError> {
    let record = state.runtime.record(id).await?;
    access.check_sees(&record)?;
    let signals = state.runtime.signals(id).await?;
    Ok(Json(SignalList { signals }))
}
