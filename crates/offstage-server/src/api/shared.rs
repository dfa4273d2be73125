//! `/api/shared`: shared state. List the documents, read one, write one under its lock, and
//! watch one live over Server-Sent Events.
//!
//! A write (`PUT`) takes the document's lock like any other holder, so it waits for a task
//! that holds it (up to [`LOCK_WAIT`], then 409), and never interleaves with one. With
//! `version` it writes only if the document is still at that version (409 otherwise), for
//! read-modify-write from a client.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use offstage::{Shared, SharedChange, SharedLock, SharedRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::events::{keep_alive, last_event_id};
use crate::error::ApiError;
use crate::extract::{Body, NamePath};
use crate::AppState;

/// How long a `PUT` waits for a lock somebody else holds.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(10);

/// One document in the list: everything but its value.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SharedSummary {
    /// The document's name.
    name: String,
    /// How many times it has been written (0: locked, never saved).
    version: u64,
    /// When it was last written.
    updated_at: DateTime<Utc>,
    /// Who holds its lock, if anybody.
    locked_by: Option<SharedLock>,
}

/// The shared documents, sorted by name.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SharedList {
    shared: Vec<SharedSummary>,
}

/// `PUT /api/shared/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SharedSetRequest {
    /// The new value (any JSON).
    #[schema(value_type = Object)]
    value: Value,
    /// Write only if the document is at this version (0: it has never been written); 409
    /// otherwise.
    #[serde(default, deserialize_with = "crate::extract::whole::option")]
    version: Option<u64>,
}

fn document(state: &AppState, name: &str) -> Result<Shared, ApiError> {
    Ok(state.runtime.shared(name)?.holder("HTTP API"))
}

fn absent(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no shared document is named `{name}`: GET /api/shared lists them; a PUT creates it"
        ),
    )
}

/// The shared documents, without their values.
#[utoipa::path(get, path = "/api/shared", tag = "shared",
    responses((status = 200, body = SharedList), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<SharedList>, ApiError> {
    let shared = state
        .runtime
        .shared_list()
        .await?
        .into_iter()
        .map(|record| SharedSummary {
            name: record.name,
            version: record.version,
            updated_at: record.updated_at,
            locked_by: record.locked_by,
        })
        .collect();
    Ok(Json(SharedList { shared }))
}

/// One shared document, a snapshot (404 if there is none).
#[utoipa::path(get, path = "/api/shared/{name}", tag = "shared",
    params(("name" = String, Path, description = "the document's name")),
    responses((status = 200, body = SharedRecord), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    NamePath(name): NamePath,
) -> Result<Json<SharedRecord>, ApiError> {
    let record = document(&state, &name)?.record().await?;
    record.map(Json).ok_or_else(|| absent(&name))
}

/// Writes a shared document under its lock (creating it if absent); the document as saved.
#[utoipa::path(put, path = "/api/shared/{name}", tag = "shared", request_body = SharedSetRequest,
    params(("name" = String, Path, description = "the document's name")),
    responses((status = 200, body = SharedRecord),
        (status = 409, description = "`version` is not the current one, or the lock stayed held", body = crate::error::ErrorBody),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn set(
    State(state): State<AppState>,
    NamePath(name): NamePath,
    Body(request): Body<SharedSetRequest>,
) -> Result<Json<SharedRecord>, ApiError> {
    let mut guard = document(&state, &name)?.lock_timeout(LOCK_WAIT).await?;
    if let Some(expected) = request.version {
        if expected != guard.version() {
            let current = guard.version();
            guard.release().await?;
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "version_conflict",
                format!(
                    "shared document `{name}` is at version {current}, not {expected}: read it \
                     again, redo your change on that value, and PUT it with version {current}"
                ),
            ));
        }
    }
    guard.set_json(request.value)?;
    Ok(Json(guard.save().await?))
}

fn change_event(change: &SharedChange) -> SseEvent {
    SseEvent::default()
        .id(change.version.to_string())
        .event("change")
        .json_data(change)
        .unwrap_or_else(|_| SseEvent::default().comment("unserializable change skipped"))
}

/// A shared document's changes as Server-Sent Events (`change`, `id` = version): first its
/// current value (unless `Last-Event-ID` says the client has that version), then each change
/// made on any node. A document nobody has written yet starts with its first change.
#[utoipa::path(get, path = "/api/shared/{name}/events", tag = "shared",
    params(("name" = String, Path, description = "the document's name"),
        ("Last-Event-ID" = Option<u64>, Header, description = "the version the client has")),
    responses((status = 200, content_type = "text/event-stream", description = "events: change (data: {name, value, version})"),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn events(
    State(state): State<AppState>,
    NamePath(name): NamePath,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let has = last_event_id(&headers)?.unwrap_or(0);
    let watch = document(&state, &name)?.watch().await?;
    let first = watch
        .current()
        .filter(|record| record.version > has)
        .map(|record| {
            Ok(change_event(&SharedChange {
                name: record.name.clone(),
                value: record.value.clone().into(),
                version: record.version,
            }))
        });
    let changes = futures::stream::unfold(watch, |mut watch| async move {
        match watch.changed().await {
            Ok(change) => Some((Ok(change_event(&change)), watch)),
            Err(error) => {
                tracing::warn!(%error, "a shared-state event stream ended");
                None
            }
        }
    });
    let stream = futures::stream::iter(first).chain(changes);
    Ok(Sse::new(stream).keep_alive(keep_alive()))
}
