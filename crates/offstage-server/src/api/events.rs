//! Server-Sent Events: `/api/events` (every task) and `/api/tasks/{id}/events` (one task).
//!
//! Each SSE event's `id` is the event's sequence number, so a reconnecting client's
//! `Last-Event-ID` resumes right after the last event it saw, without gaps or duplicates, as long
//! as the runtime's replay buffer still holds them; if not, the stream starts with a `gap` event
//! telling the client to re-read the tasks. A task's stream ends after its `finished` event.
//! Comments every 15 s keep idle connections open through proxies.
//!
//! With a scoped token (which may come as `?token=` here, see `auth`), `/api/events` carries
//! only the events of the tasks in its scope, a task's stream outside it is a 404, and either
//! stream ends when the token expires, with an `expired` event (`{"code": "token_expired",
//! "message", "expires_at"}`): a token that leaks is good for no longer than its life.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use offstage::{Event, EventKind, RecvError, Subscription, TaskId};

use crate::auth::Access;
use crate::error::ApiError;
use crate::extract::TaskIdPath;
use crate::scoped::{Grant, Scope};
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

/// What a stream sends: the events, and for a scoped token, its expiry as the last word.
enum Item {
    Event(Result<Event, RecvError>),
    /// The token expired at this time; the stream ends after it.
    Expired(chrono::DateTime<chrono::Utc>),
}

type Items = BoxStream<'static, Item>;

fn sse_stream(items: Items) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    items.map(|item| {
        Ok(match item {
            Item::Event(Ok(event)) => sse_event(&event),
            Item::Event(Err(RecvError::Gap { first, last })) => SseEvent::default()
                .event("gap")
                .data(format!(r#"{{"first":{first},"last":{last}}}"#)),
            Item::Event(Err(RecvError::Closed)) => SseEvent::default().comment("closed"),
            Item::Expired(at) => SseEvent::default().event("expired").data(
                serde_json::json!({
                    "code": "token_expired",
                    "message": "the token this stream was opened with has expired: mint a new \
                                one and reconnect with it and Last-Event-ID",
                    "expires_at": at,
                })
                .to_string(),
            ),
        })
    })
}

/// `subscription` as the caller may see it: everything for a role; for a scoped token, only
/// its scope's events, until the token expires, then an `expired` event and the end.
fn seen_by(access: &Access, runtime: &offstage::Runtime, subscription: Subscription) -> Items {
    let events = subscription.into_stream().boxed();
    let Access::Scoped(grant) = access else {
        return events.map(Item::Event).boxed();
    };
    let until = (grant.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    let deadline = Box::pin(tokio::time::sleep(until));
    let scope = InScope {
        grant: grant.clone(),
        runtime: runtime.clone(),
        known: HashMap::new(),
    };
    let start = Some((events, scope, deadline));
    futures::stream::unfold(start, |state| async move {
        let (mut events, mut scope, mut deadline) = state?;
        loop {
            let item = tokio::select! {
                item = events.next() => item?,
                () = &mut deadline => return Some((Item::Expired(scope.grant.expires_at), None)),
            };
            let keep = match &item {
                Ok(event) => scope.admits(event).await,
                Err(_) => {
                    // Re-read after a gap: what was learned may be stale.
                    scope.known.clear();
                    true
                }
            };
            if keep {
                return Some((Item::Event(item), Some((events, scope, deadline))));
            }
        }
    })
    .boxed()
}

/// Decides which events a scoped token's stream carries.
struct InScope {
    grant: Grant,
    runtime: offstage::Runtime,
    /// For an owner scope: whether each task seen so far is in it, since `state` and `log`
    /// events do not say whose task they are about. An entry goes with its task's `finished`.
    known: HashMap<TaskId, bool>,
}

impl InScope {
    /// Past this many tasks at once, `known` starts over rather than grow (re-reads are cheap).
    const MAX_KNOWN: usize = 10_000;

    async fn admits(&mut self, event: &Event) -> bool {
        let owner = match &self.grant.scope {
            Scope::Task(id) => return event.task_id == *id,
            Scope::Owner(owner) => owner,
        };
        let id = event.task_id;
        let record = match &event.kind {
            EventKind::Launched { task } | EventKind::Started { task } => Some(task),
            EventKind::Finished { task } => Some(task),
            _ => None,
        };
        let admitted = match (record, self.known.get(&id)) {
            (Some(record), _) => record.owner.as_deref() == Some(owner.as_str()),
            (None, Some(known)) => *known,
            // A task first seen in the middle (running when the stream opened): whose is it?
            (None, None) => match self.runtime.record(id).await {
                Ok(record) => record.owner.as_deref() == Some(owner.as_str()),
                // Not remembered: the next event asks again.
                Err(_) => return false,
            },
        };
        if matches!(event.kind, EventKind::Finished { .. }) {
            self.known.remove(&id);
        } else {
            if self.known.len() >= Self::MAX_KNOWN {
                self.known.clear();
            }
            self.known.insert(id, admitted);
        }
        admitted
    }
}

/// Every event of every task, as Server-Sent Events; with a scoped token, of its scope's tasks.
#[utoipa::path(get, path = "/api/events", tag = "events",
    params(("Last-Event-ID" = Option<u64>, Header, description = "resume after this event"),
        ("token" = Option<String>, Query, description = "a scoped token (`ost1.…`), for clients \
            that cannot send `Authorization` (EventSource); only here and on a task's stream")),
    responses((status = 200, content_type = "text/event-stream", description = "events: launched, started, state, checkpoint, log, finished; gap; expired (the scoped token expired: the stream ends)")))]
pub(crate) async fn all(
    State(state): State<AppState>,
    access: Access,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let subscription = match last_event_id(&headers)? {
        Some(seq) => state.runtime.events_since(seq),
        None => state.runtime.events(),
    };
    let events = seen_by(&access, &state.runtime, subscription);
    Ok(Sse::new(sse_stream(events)).keep_alive(keep_alive()))
}

/// One task's events as Server-Sent Events; the stream ends after `finished`.
#[utoipa::path(get, path = "/api/tasks/{id}/events", tag = "events",
    params(("id" = String, Path, description = "task id"), ("Last-Event-ID" = Option<u64>, Header, description = "resume after this event"),
        ("token" = Option<String>, Query, description = "a scoped token (`ost1.…`), for clients \
            that cannot send `Authorization` (EventSource); only here and on `/api/events`")),
    responses((status = 200, content_type = "text/event-stream", description = "events: launched, started, state, checkpoint, log, finished; expired (the scoped token expired: the stream ends)"),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn task(
    State(state): State<AppState>,
    access: Access,
    TaskIdPath(id): TaskIdPath,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let (record, subscription) = match last_event_id(&headers)? {
        Some(seq) => state.runtime.follow_since(id, seq).await?,
        None => state.runtime.follow(id).await?,
    };
    access.check_sees(&record)?;
    let events = seen_by(&access, &state.runtime, subscription);
    Ok(Sse::new(sse_stream(events)).keep_alive(keep_alive()))
}
