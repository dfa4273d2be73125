//! A task as a worker runs it: what its [`crate::Context`] writes to when the task runs away
//! from the node that owns it. State and log lines become protocol messages to the node.

use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::protocol::{to_text, WorkerMessage};
use crate::id::TaskId;
use crate::log::LogLevel;

/// The state cap a worker checks before sending; the node checks its own cap again.
pub(crate) const WORKER_STATE_LIMIT: usize = 1024 * 1024;

#[derive(Debug)]
pub(crate) struct WorkerTask {
    pub(crate) id: TaskId,
    pub(crate) name: String,
    pub(crate) attempt: u32,
    pub(crate) owner: Option<String>,
    pub(crate) state_limit: usize,
    /// Fired by the node's `kill`.
    pub(crate) cancel: CancellationToken,
    state: Mutex<Value>,
    to_node: mpsc::UnboundedSender<String>,
}

impl WorkerTask {
    pub(crate) fn new(
        id: TaskId,
        name: String,
        attempt: u32,
        owner: Option<String>,
        to_node: mpsc::UnboundedSender<String>,
    ) -> Self {
        Self {
            id,
            name,
            attempt,
            owner,
            state_limit: WORKER_STATE_LIMIT,
            cancel: CancellationToken::new(),
            state: Mutex::new(Value::Object(Default::default())),
            to_node,
        }
    }

    pub(crate) fn state(&self) -> Value {
        self.state.lock().expect("state poisoned").clone()
    }

    pub(crate) fn set_state(&self, state: Value) {
        let mut current = self.state.lock().expect("state poisoned");
        // Sent under the lock, so the node sees writes in the order they were made.
        let _ = self.to_node.send(to_text(&WorkerMessage::State {
            task_id: self.id,
            state: state.clone(),
        }));
        *current = state;
    }

    pub(crate) fn log(&self, level: LogLevel, message: String) {
        let message = WorkerMessage::Log {
            task_id: self.id,
            level,
            message,
        };
        let _ = self.to_node.send(message.to_text_within_limit());
    }
}
