//! A task as a worker runs it: what its [`crate::Context`] writes to when the task runs away
//! from the node that owns it. State and log lines become protocol messages to the node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::protocol::{to_text, WorkerMessage};
use crate::error::{Error, ErrorKind};
use crate::id::TaskId;
use crate::log::LogLevel;

/// The state cap a worker checks before sending; the node checks its own cap again.
pub(crate) const WORKER_STATE_LIMIT: usize = 1024 * 1024;

/// A checkpoint sent to the node, and who waits for the node's answer (`None`: stored; `Some`:
/// why not).
type Unconfirmed = (Value, oneshot::Sender<Option<String>>);

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
    /// The last checkpoint the node confirmed (or assigned the task with).
    checkpoint: Mutex<Option<Value>>,
    /// The number of the next `checkpoint` message.
    next_seq: AtomicU64,
    /// Checkpoints sent and not yet answered, by `seq`: each waits for the node's
    /// `checkpoint_saved` (`None`: stored; `Some`: why not). When the connection ends the
    /// session drops the task's body, and its wait with it.
    unconfirmed: Mutex<HashMap<u64, Unconfirmed>>,
    to_node: mpsc::UnboundedSender<String>,
    /// The attempt's trace context, as the node assigned it (`Context::trace_parent`).
    pub(crate) trace: Option<crate::TraceContext>,
}

impl WorkerTask {
    pub(crate) fn new(
        id: TaskId,
        name: String,
        attempt: u32,
        owner: Option<String>,
        checkpoint: Option<Value>,
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
            checkpoint: Mutex::new(checkpoint),
            next_seq: AtomicU64::new(1),
            unconfirmed: Mutex::new(HashMap::new()),
            to_node,
            trace: None,
        }
    }

    /// Sets the trace context the node assigned the task with (a text that is not one is
    /// dropped: the node checked it).
    pub(crate) fn with_trace(mut self, traceparent: Option<&str>) -> Self {
        self.trace = traceparent.and_then(|parent| crate::TraceContext::parse(parent, None).ok());
        self
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

    pub(crate) fn checkpoint(&self) -> Option<Value> {
        self.checkpoint.lock().expect("checkpoint poisoned").clone()
    }

    /// Sends `checkpoint` to the node and waits until the node has stored it (or refused it).
    pub(crate) async fn save_checkpoint(&self, checkpoint: Value) -> Result<(), Error> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (confirm, confirmed) = oneshot::channel();
        self.unconfirmed
            .lock()
            .expect("unconfirmed poisoned")
            .insert(seq, (checkpoint.clone(), confirm));
        let sent = self.to_node.send(to_text(&WorkerMessage::Checkpoint {
            task_id: self.id,
            seq,
            checkpoint,
        }));
        if sent.is_err() {
            // The connection is gone: nobody will answer.
            self.unconfirmed
                .lock()
                .expect("unconfirmed poisoned")
                .remove(&seq);
        }
        match confirmed.await {
            Ok(None) => Ok(()),
            Ok(Some(refused)) => Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "the node did not store the checkpoint of task {}: {refused}",
                    self.id
                ),
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "the connection to the node ended before it confirmed the checkpoint of \
                     task {}: the node counts the task lost, and a retry starts from the last \
                     confirmed checkpoint",
                    self.id
                ),
            )),
        }
    }

    /// The node's answer to checkpoint `seq`: `error` is why it was not stored, if it was not.
    pub(crate) fn confirm_checkpoint(&self, seq: u64, error: Option<String>) {
        let waiting = self
            .unconfirmed
            .lock()
            .expect("unconfirmed poisoned")
            .remove(&seq);
        if let Some((checkpoint, confirm)) = waiting {
            if error.is_none() {
                *self.checkpoint.lock().expect("checkpoint poisoned") = Some(checkpoint);
            }
            let _ = confirm.send(error);
        }
    }
}
