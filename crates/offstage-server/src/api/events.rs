//! Server-Sent Events: `/api/events` (every task) and `/api/tasks/{id}/events` (one task).
//!
//! Each SSE event's `id` is the event's sequence number, so a reconnecting client's
//! `Last-Event-ID` resumes right after the last event it saw, without gaps or duplicates, as long
//! as the runtime's replay buffer still holds them; if not, the stream starts with a `gap` event
//! telling the client to re-read the tasks. A task's stream ends after its `finished` event.
//! Comments every 15 s keep idle connections open through proxies.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use offstage::{RecvError, Subscription};

use crate::error::ApiError;
use crate::extract::TaskIdPath;
use crate::AppState;

pub(crate) fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_last_event_id",
                "Last-Event-ID must be the id of an event this server sent (a whole number)",
            )
        })
}

pub(crate) fn keep_alive() -> KeepAlive {
    KeepAlive::new().interval(Duration::from_secs(15))
}

fn sse_event(event: &offstage::Event) -> SseEvent {
    SseEvent::default()
        .id(event.seq.to_string())
        .event(event.kind.name())
        .json_data(event)
        .unwrap_or_else(|_| SseEvent::default().comment("unserializable event skipped"))
}

fn sse_stream(subscription: Subscription) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    subscription.into_stream().map(|item| {
        Ok(match item {
            Ok(event) => sse_event(&event),
            Err(RecvError::Gap { first, last }) => SseEvent::default()
                .event("gap")
                .data(format!(r#"{{"first":{first},"last":{last}}}"#)),
            Err(RecvError::Closed) => SseEvent::default().comment("closed"),
        })
    })
}

/// Every event of every task, as Server-Sent Events.
#[utoipa::path(get, path = "/api/events", tag = "events",
    params(("Last-Event-ID" = Option<u64>, Header, description = "resume after this event")),
    responses((status = 200, content_type = "text/event-stream", description = "events: launched, started, state, log, finished; gap")))]
pub(crate) async fn all(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let subscription = match last_event_id(&headers)? {
        Some(seq) => state.runtime.events_since(seq),
        None => state.runtime.events(),
    };
    Ok(Sse::new(sse_stream(subscription)).keep_alive(keep_alive()))
}

/// One task's events as Server-Sent Events; the stream ends after `finished`.
#[utoipa::path(get, path = "/api/tasks/{id}/events", tag = "events",
    params(("id" = String, Path, description = "task id"), ("Last-Event-ID" = Option<u64>, Header, description = "resume after this event")),
    responses((status = 200, content_type = "text/event-stream", description = "events: launched, started, state, log, finished"),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn task(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let (_, subscription) = match last_event_id(&headers)? {
        Some(seq) => state.runtime.follow_since(id, seq).await?,
        None => state.runtime.follow(id).await?,
    };
    Ok(Sse::new(sse_stream(subscription)).keep_alive(keep_alive()))
}
