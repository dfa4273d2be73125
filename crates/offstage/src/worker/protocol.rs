//! The messages of the worker protocol (`docs/worker-protocol.md`), as Rust types.
//!
//! Both sides parse with [`WorkerMessage::parse`] / [`ServerMessage::parse`], which turn
//! anything that is not a well-formed message into a [`ProtocolError`] whose text is what the
//! other side is told before the connection closes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::TaskError;
use crate::id::TaskId;
use crate::log::LogLevel;

/// The protocol version this build speaks.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// The largest message either side reads: 64 MiB of JSON text (one WebSocket message, in
/// frames of any size up to this; one line on an isolated worker's socket).
///
/// It is far above every cap the node applies to what a message carries (1 MiB of state and
/// 1 MiB of log per task by default), so a message over a *cap* still arrives whole and is
/// refused on its own (a state: the task keeps its previous one and its log says why) while
/// the connection and the worker's other tasks carry on. Only a message over this *limit*
/// ends the connection (WebSocket close code 1009), because the bytes of a frame that is not
/// read cannot be skipped. The workers this project ships check before sending and never
/// send one (`WorkerMessage::to_text_within_limit`).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A message a worker sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum WorkerMessage {
    /// The first message: who the worker is and what it serves.
    Hello {
        /// The protocol version, [`PROTOCOL_VERSION`].
        protocol: u32,
        /// A name to show; the server picks one when it is absent.
        #[serde(default)]
        name: Option<String>,
        /// The task types it serves.
        task_types: Vec<String>,
        /// How many tasks it runs at once.
        concurrency: u32,
    },
    /// A task's new state.
    State {
        /// The task.
        task_id: TaskId,
        /// The whole new state.
        state: Value,
    },
    /// A task's new checkpoint, for the node to store; it answers `checkpoint_saved` with the
    /// same `seq`.
    Checkpoint {
        /// The task.
        task_id: TaskId,
        /// The worker's number for this save, echoed in the answer.
        seq: u64,
        /// The whole checkpoint.
        checkpoint: Value,
    },
    /// A line for a task's log.
    Log {
        /// The task.
        task_id: TaskId,
        /// How important it is (default `info`).
        #[serde(default = "info")]
        level: LogLevel,
        /// The line.
        message: String,
    },
    /// The task returned.
    Completed {
        /// The task.
        task_id: TaskId,
        /// What it returned.
        #[serde(default)]
        return_value: Value,
    },
    /// The task failed.
    Failed {
        /// The task.
        task_id: TaskId,
        /// Why.
        error: TaskError,
    },
    /// Still here.
    Heartbeat,
}

fn info() -> LogLevel {
    LogLevel::Info
}

/// A message the server (the node) sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerMessage {
    /// The answer to `hello`.
    Welcome {
        /// The id this connection is known by.
        worker_id: String,
        /// How often each side sends a heartbeat.
        heartbeat_ms: u64,
    },
    /// Run this task.
    Assign {
        /// The task.
        task_id: TaskId,
        /// Its task type.
        name: String,
        /// Its args.
        args: Value,
        /// Which attempt this is, from 1.
        attempt: u32,
        /// Its owner.
        owner: Option<String>,
        /// Its timeout (the server enforces it).
        timeout_ms: Option<u64>,
        /// The task's last checkpoint, when it starts with one (a retry, a rerun from its
        /// checkpoint).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint: Option<Value>,
        /// For isolated workers: the most address space the task may add to the process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memory_limit_bytes: Option<u64>,
        /// The W3C `traceparent` of the attempt (its span on the node), when the task has a
        /// trace context: what the worker passes on to keep its calls in the task's trace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traceparent: Option<String>,
    },
    /// The answer to a worker's `checkpoint`: stored (no `error`), or refused, saying why.
    CheckpointSaved {
        /// The task.
        task_id: TaskId,
        /// The `seq` of the `checkpoint` message this answers.
        seq: u64,
        /// Why the checkpoint was not stored, if it was not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Stop this task cooperatively within `grace_ms`.
    Kill {
        /// The task.
        task_id: TaskId,
        /// How long it has.
        grace_ms: u64,
    },
    /// Drop this task now: its outcome is already recorded.
    Abort {
        /// The task.
        task_id: TaskId,
    },
    /// Still here.
    Heartbeat,
    /// The sender is closing the connection, for this reason.
    Error {
        /// What was wrong.
        message: String,
    },
}

/// A message that broke the protocol; its text is what the other side is told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolError(pub String);

impl WorkerMessage {
    /// Parses one message from a worker.
    pub(crate) fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| {
            ProtocolError(format!(
                "not a worker message ({e}): send JSON objects with a `type` of hello, state, \
                 checkpoint, log, completed, failed or heartbeat, as docs/worker-protocol.md describes"
            ))
        })
    }
}

impl WorkerMessage {
    /// The message as text, made to fit in [`MAX_MESSAGE_BYTES`]: a log line that would not
    /// fit is cut (and says so), a return value that would not fit becomes a failure of kind
    /// `output_too_large`, and a failure's message and detail are cut. (A state never comes
    /// near the limit: its cap, 1 MiB, is checked when it is written.)
    pub(crate) fn to_text_within_limit(&self) -> String {
        let text = to_text(self);
        if text.len() <= MAX_MESSAGE_BYTES {
            return text;
        }
        // What a cut field may keep: the limit less the rest of the message and a margin for
        // JSON escapes (a cut is by bytes of the raw text, escaping can only grow it 6x).
        let room = (MAX_MESSAGE_BYTES - 4096) / 6;
        let cut = |text: &str, what: &str| {
            format!(
                "{}… [cut by the worker: the {what} was {} bytes, over the worker protocol's \
                 {} MiB message limit]",
                &text[..floor_char_boundary(text, room)],
                text.len(),
                MAX_MESSAGE_BYTES >> 20
            )
        };
        let fitted = match self {
            WorkerMessage::Log {
                task_id,
                level,
                message,
            } => WorkerMessage::Log {
                task_id: *task_id,
                level: *level,
                message: cut(message, "log line"),
            },
            WorkerMessage::Completed { task_id, .. } => WorkerMessage::Failed {
                task_id: *task_id,
                error: TaskError::new(
                    "output_too_large",
                    format!(
                        "the return value is {} bytes of JSON, over the worker protocol's {} MiB \
                         message limit: return a reference (a table, a file) instead of the data",
                        text.len(),
                        MAX_MESSAGE_BYTES >> 20
                    ),
                ),
            },
            WorkerMessage::Failed { task_id, error } => WorkerMessage::Failed {
                task_id: *task_id,
                error: TaskError {
                    kind: error.kind.chars().take(200).collect(),
                    message: cut(&error.message, "error message"),
                    detail: error.detail.as_deref().map(|d| cut(d, "error detail")),
                },
            },
            // Hello and heartbeat are small; a state or a checkpoint is capped far below the
            // limit.
            WorkerMessage::Hello { .. }
            | WorkerMessage::Heartbeat
            | WorkerMessage::State { .. }
            | WorkerMessage::Checkpoint { .. } => return text,
        };
        to_text(&fitted)
    }
}

/// The largest index ≤ `max` that is a char boundary of `text`.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

impl ServerMessage {
    /// Parses one message from the server.
    pub(crate) fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError(format!("not a server message ({e})")))
    }
}

/// One message as text, for either direction.
pub(crate) fn to_text(message: &impl Serialize) -> String {
    serde_json::to_string(message).expect("protocol messages always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_the_document_writes_them() {
        let hello = WorkerMessage::parse(
            r#"{"type": "hello", "protocol": 1, "name": "py", "task_types": ["a"], "concurrency": 4}"#,
        )
        .unwrap();
        assert_eq!(
            hello,
            WorkerMessage::Hello {
                protocol: 1,
                name: Some("py".into()),
                task_types: vec!["a".into()],
                concurrency: 4
            }
        );
        let id = TaskId::new();
        let log = WorkerMessage::parse(&format!(
            r#"{{"type": "log", "task_id": "{id}", "message": "hi", "extra": true}}"#
        ))
        .unwrap();
        assert_eq!(
            log,
            WorkerMessage::Log {
                task_id: id,
                level: LogLevel::Info,
                message: "hi".into()
            }
        );
        let failed = WorkerMessage::parse(&format!(
            r#"{{"type": "failed", "task_id": "{id}", "error": {{"kind": "ValueError", "message": "bad"}}}}"#
        ))
        .unwrap();
        assert!(
            matches!(failed, WorkerMessage::Failed { error, .. } if error.kind == "ValueError")
        );
        let assign = to_text(&ServerMessage::Assign {
            task_id: id,
            name: "a".into(),
            args: serde_json::json!({"x": 1}),
            attempt: 1,
            owner: None,
            timeout_ms: None,
            checkpoint: None,
            memory_limit_bytes: None,
            traceparent: None,
        });
        assert!(
            assign.starts_with(r#"{"type":"assign","task_id":""#),
            "{assign}"
        );
    }

    #[test]
    fn a_malformed_message_says_what_is_expected() {
        for text in ["nope", r#"{"type": "dance"}"#, r#"{"type": "state"}"#] {
            let error = WorkerMessage::parse(text).unwrap_err();
            assert!(error.0.contains("docs/worker-protocol.md"), "{error}");
        }
    }
}
