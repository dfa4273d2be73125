//! One connection to a node, from the worker's side: say hello, run what is assigned, report,
//! honour kills and aborts, heartbeat. Transport-agnostic: messages in, messages out.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::protocol::{to_text, ProtocolError, ServerMessage, WorkerMessage, PROTOCOL_VERSION};
use super::task::WorkerTask;
use crate::context::Context;
use crate::error::TaskError;
use crate::id::TaskId;
use crate::registry::Registry;

/// How long the node has to answer `hello`.
const WELCOME_WITHIN: Duration = Duration::from_secs(10);

/// Who this worker is, as `hello` says it.
#[derive(Clone, Debug)]
pub(crate) struct Hello {
    pub(crate) name: Option<String>,
    pub(crate) concurrency: u32,
    /// An isolated worker process of a node: it applies memory limits, and marks the end of
    /// each task on stdout and stderr so the node knows it has read all of the task's output.
    pub(crate) isolated: bool,
}

/// The line an isolated worker writes to stdout and stderr after each task, before its answer.
pub(crate) fn end_marker(task_id: TaskId) -> String {
    format!("\u{1e}offstage:end:{task_id}")
}

/// A task this worker is running.
struct Running {
    task: Arc<WorkerTask>,
    /// Fired by `abort`: the task's future is dropped at its next await.
    abort: CancellationToken,
    /// Set by whoever sends the task's one answer first: the task, or an abort.
    answered: Arc<AtomicBool>,
}

/// Serves one connection until the node closes it (`Ok`) or it breaks (`Err`). Tasks still
/// running when it ends are dropped: the node has already counted them lost.
pub(crate) async fn serve(
    registry: &Registry,
    hello: &Hello,
    mut incoming: impl Stream<Item = String> + Unpin,
    outgoing: mpsc::UnboundedSender<String>,
) -> Result<(), ProtocolError> {
    let send = |message: &WorkerMessage| {
        let _ = outgoing.send(to_text(message));
    };
    send(&WorkerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        name: hello.name.clone(),
        task_types: registry.names().map(str::to_owned).collect(),
        concurrency: hello.concurrency,
    });
    let heartbeat = match tokio::time::timeout(WELCOME_WITHIN, incoming.next()).await {
        Ok(Some(text)) => match ServerMessage::parse(&text)? {
            ServerMessage::Welcome { heartbeat_ms, .. } => {
                Duration::from_millis(heartbeat_ms.max(10))
            }
            ServerMessage::Error { message } => return Err(ProtocolError(message)),
            other => return Err(ProtocolError(format!("expected `welcome`, got {other:?}"))),
        },
        Ok(None) => return Ok(()),
        Err(_) => return Err(ProtocolError("no `welcome` from the node".into())),
    };

    let mut running: HashMap<TaskId, Running> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<TaskId>();
    let mut beat = tokio::time::interval(heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    let ended = loop {
        tokio::select! {
            text = incoming.next() => {
                let Some(text) = text else { break Ok(()) };
                heard = tokio::time::Instant::now();
                match ServerMessage::parse(&text)? {
                    ServerMessage::Assign {
                        task_id, name, args, attempt, owner, checkpoint, memory_limit_bytes,
                        traceparent, ..
                    } => {
                        let task = Arc::new(
                            WorkerTask::new(
                                task_id, name, attempt, owner, checkpoint, outgoing.clone(),
                            )
                            .with_trace(traceparent.as_deref()),
                        );
                        let answered = Arc::new(AtomicBool::new(false));
                        let isolation = hello.isolated.then_some(memory_limit_bytes);
                        let run = run_one(
                            registry.prepare(&task.name, &args),
                            Arc::clone(&task),
                            Arc::clone(&answered),
                            outgoing.clone(),
                            isolation,
                        );
                        let abort = CancellationToken::new();
                        let aborted = abort.clone();
                        let done = done_tx.clone();
                        // Each task on a thread of its own: one that never awaits must not
                        // hold up this loop, its heartbeats, or the messages it sends itself
                        // (tokio runs what a task wakes on that task's worker thread first).
                        let runtime = tokio::runtime::Handle::current();
                        tokio::task::spawn_blocking(move || {
                            runtime.block_on(async {
                                tokio::select! {
                                    () = run => {}
                                    () = aborted.cancelled() => {}
                                }
                            });
                            let _ = done.send(task_id);
                        });
                        running.insert(task_id, Running { task, abort, answered });
                    }
                    ServerMessage::Kill { task_id, .. } => {
                        if let Some(task) = running.get(&task_id) {
                            task.task.cancel.cancel();
                        }
                    }
                    ServerMessage::Abort { task_id } => {
                        if let Some(task) = running.remove(&task_id) {
                            task.abort.cancel();
                            if !task.answered.swap(true, Ordering::AcqRel) {
                                send(&WorkerMessage::Failed {
                                    task_id,
                                    error: TaskError::new("aborted", "aborted by the node"),
                                });
                            }
                        }
                    }
                    ServerMessage::CheckpointSaved { task_id, seq, error } => {
                        if let Some(task) = running.get(&task_id) {
                            task.task.confirm_checkpoint(seq, error);
                        }
                    }
                    ServerMessage::Heartbeat | ServerMessage::Welcome { .. } => {}
                    ServerMessage::Error { message } => break Err(ProtocolError(message)),
                }
            }
            Some(task_id) = done_rx.recv() => {
                running.remove(&task_id);
            }
            _ = beat.tick() => {
                if heard.elapsed() > heartbeat * 2 {
                    break Err(ProtocolError("the node went silent for two heartbeats".into()));
                }
                send(&WorkerMessage::Heartbeat);
            }
        }
    };
    for (_, task) in running {
        task.abort.cancel();
    }
    ended
}

/// Runs one assigned task and sends its answer, unless an abort answered first. `isolation` is
/// `Some(memory limit)` in an isolated worker process.
async fn run_one(
    prepared: Result<crate::registry::Prepared, crate::error::Error>,
    task: Arc<WorkerTask>,
    answered: Arc<AtomicBool>,
    outgoing: mpsc::UnboundedSender<String>,
    isolation: Option<Option<u64>>,
) {
    let task_id = task.id;
    let limit = isolation.flatten().map(super::isolated::limit_memory);
    let result = match prepared {
        Err(error) => Err(TaskError::new("invalid_args", error.to_string())),
        Ok(body) => {
            let body = body(Context::worker(Arc::clone(&task)));
            match AssertUnwindSafe(body).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Err(TaskError::new(
                    "panic",
                    panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "the task panicked".to_owned()),
                )),
            }
        }
    };
    if let Some(Ok(previous)) = limit {
        super::isolated::restore_memory(previous);
    }
    if isolation.is_some() {
        super::isolated::mark_end(task_id);
    }
    let result = match (limit, result) {
        (Some(Err(error)), _) => Err(error),
        (_, result) => result,
    };
    if !answered.swap(true, Ordering::AcqRel) {
        let message = match result {
            Ok(return_value) => WorkerMessage::Completed {
                task_id,
                return_value,
            },
            Err(error) => WorkerMessage::Failed { task_id, error },
        };
        let _ = outgoing.send(message.to_text_within_limit());
    }
}
