//! `GET /api/workers`: the worker protocol over a WebSocket (`docs/worker-protocol.md`).
//!
//! One JSON message per text frame. The connection is the runtime's to serve
//! ([`offstage::Runtime::serve_worker`]); this file only moves frames. A protocol error closes
//! the socket with code 1008 and the error as the reason.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::AppState;

/// Close code for a protocol error (RFC 6455 "policy violation").
const PROTOCOL_ERROR: u16 = 1008;

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
    upgrade.on_upgrade(move |socket| serve(state, socket, peer))
}

async fn serve(state: AppState, socket: WebSocket, peer: String) {
    let (mut sink, stream) = socket.split();
    let incoming = stream
        .take_while(|frame| {
            futures::future::ready(matches!(frame, Ok(m) if !matches!(m, Message::Close(_))))
        })
        .filter_map(|frame| async move {
            match frame {
                Ok(Message::Text(text)) => Some(text.as_str().to_owned()),
                // Not text, so not a message: the runtime answers with a protocol error.
                Ok(Message::Binary(_)) => Some("(a binary frame)".to_owned()),
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
    // The sender is gone with `serve_worker`: the writer drains what is left, then hands back
    // the sink for the closing frame.
    if let Ok(mut sink) = writer.await {
        let frame = match ended {
            Ok(()) => CloseFrame {
                code: 1000,
                reason: "bye".into(),
            },
            Err(error) => CloseFrame {
                code: PROTOCOL_ERROR,
                // A close reason may be at most 123 bytes.
                reason: truncate(&error.0, 123).into(),
            },
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
