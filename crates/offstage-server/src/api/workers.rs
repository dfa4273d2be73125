//! `GET /api/workers`: the worker protocol over a WebSocket (`docs/worker-protocol.md`).
//!
//! One JSON message per text frame. The connection is the runtime's to serve
//! ([`offstage::Runtime::serve_worker`]); this file only moves frames. A protocol error closes
//! the socket with code 1008 and the error as the reason. Messages are read up to
//! [`MAX_MESSAGE_BYTES`] (64 MiB), far above the caps on what a message carries, so a state
//! over its cap arrives whole and is refused on its own; a message over the limit cannot be
//! skipped, and closes the socket with code 1009 and a logged reason.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use offstage::limits::MAX_WORKER_MESSAGE_BYTES as MAX_MESSAGE_BYTES;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

use crate::AppState;

/// Close code for a protocol error (RFC 6455 "policy violation").
const PROTOCOL_ERROR: u16 = 1008;

/// Close code for a message over [`MAX_MESSAGE_BYTES`] (RFC 6455 "message too big").
const TOO_BIG: u16 = 1009;

/// Upgrades to a WebSocket and serves the worker on it.
#[utoipa::path(get, path = "/api/workers", tag = "workers",
    responses((status = 101, description = "WebSocket upgrade; then the worker protocol (docs/worker-protocol.md)"),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // What a worker that gives no name is called: its user agent, if it sent one.
    let peer = headers
        .get(header::USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
        .map_or_else(
            || "unnamed worker".to_owned(),
            |agent| format!("unnamed worker ({agent})"),
        );
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(state, socket, peer))
}

async fn serve(state: AppState, socket: WebSocket, peer: String) {
    let (mut sink, stream) = socket.split();
    // Why reading stopped, when it was not a close frame: told in the log and the close frame.
    let broken: Arc<Mutex<Option<axum::Error>>> = Arc::default();
    let broke = Arc::clone(&broken);
    let incoming = stream
        .map(move |frame| match frame {
            Ok(message) => Some(message),
            Err(error) => {
                *broke.lock().expect("poisoned") = Some(error);
                None
            }
        })
        .take_while(|frame| {
            futures::future::ready(matches!(frame, Some(m) if !matches!(m, Message::Close(_))))
        })
        .filter_map(|frame| async move {
            match frame {
                Some(Message::Text(text)) => Some(text.as_str().to_owned()),
                // Not text, so not a message: the runtime answers with a protocol error.
                Some(Message::Binary(_)) => Some("(a binary frame)".to_owned()),
                _ => None,
            }
        })
        .boxed();
    let (outgoing, mut replies) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(text) = replies.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        sink
    });
    let ended = state.runtime.serve_worker(incoming, outgoing, &peer).await;
    let broken = broken.lock().expect("poisoned").take();
    let frame = match (ended, broken) {
        (Err(error), _) => CloseFrame {
            code: PROTOCOL_ERROR,
            // A close reason may be at most 123 bytes.
            reason: truncate(&error.0, 123).into(),
        },
        (Ok(()), Some(error)) if too_big(&error) => {
            tracing::warn!(
                worker = %peer,
                %error,
                "closing a worker connection with 1009: it sent a message over the worker \
                 protocol's limit of {} MiB, which cannot be skipped; its tasks are missing \
                 (worker_lost). Workers must keep each message under the limit \
                 (docs/worker-protocol.md)",
                MAX_MESSAGE_BYTES >> 20
            );
            CloseFrame {
                code: TOO_BIG,
                reason: format!("a message over the {} MiB limit", MAX_MESSAGE_BYTES >> 20).into(),
            }
        }
        (Ok(()), Some(error)) => {
            tracing::info!(worker = %peer, %error, "a worker connection broke");
            CloseFrame {
                code: 1011,
                reason: truncate(&error.to_string(), 123).into(),
            }
        }
        (Ok(()), None) => CloseFrame {
            code: 1000,
            reason: "bye".into(),
        },
    };
    // The sender is gone with `serve_worker`: the writer drains what is left, then hands back
    // the sink for the closing frame.
    if let Ok(mut sink) = writer.await {
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
}

/// True when reading failed because a message or frame was over the size limit.
fn too_big(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if let Some(tungstenite::Error::Capacity(_)) = error.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = error.source();
    }
    false
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
