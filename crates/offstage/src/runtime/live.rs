//! A task running on this node: its in-memory state, unsaved writes and stop signal.
//!
//! The runtime keeps one [`LiveTask`] per running task. Reads of a live task come from here, so
//! they see the latest state rather than the last one saved; the flusher saves the unsaved part
//! in batches, and `finish` saves whatever is left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::Inner;
use crate::error::{Error, ErrorKind};
use crate::event::EventKind;
use crate::id::TaskId;
use crate::log::{truncation_mark, LogLevel, LogLine};
use crate::store::Pending;
use crate::task::TaskRecord;

/// Why the runtime is stopping a task before its body returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Somebody killed it: it ends `killed`.
    Kill,
    /// It ran past its timeout: it ends `failed` with kind `timeout`.
    Timeout(Duration),
    /// The runtime is shutting down and the drain period is over: it ends `missing` with kind
    /// `interrupted`.
    Interrupted,
    /// Another node declared this one dead and ended the task's record (`missing`): it stops
    /// without recording anything, as this node no longer owns it (`maintenance::rejoin`).
    Lost,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct StopRequest {
    pub(crate) reason: StopReason,
    pub(crate) grace: Duration,
}

/// Unsaved writes and the log counters, under one lock so that log sequence numbers, caps and
/// event order agree.
#[derive(Debug, Default)]
struct Unsaved {
    state: Option<String>,
    logs: Vec<LogLine>,
    next_log_seq: u64,
    log_lines: u64,
    log_bytes: u64,
    log_truncated: bool,
}

#[derive(Debug)]
pub(crate) struct LiveTask {
    pub(crate) id: TaskId,
    /// The record as it started running; `state` in it is stale, see `state`.
    pub(crate) started: Arc<TaskRecord>,
    /// The latest state the task wrote.
    state: Mutex<Arc<Value>>,
    unsaved: Mutex<Unsaved>,
    /// The last checkpoint the task saved (or started with), and when it was saved: what
    /// `ctx.checkpoint()` reads and what snapshots and the final record carry. Changed only
    /// after the store has it.
    checkpoint: Mutex<Option<(Arc<Value>, DateTime<Utc>)>>,
    /// Held while a checkpoint is on its way to the store, so the saves of one task reach the
    /// store and memory in the same order.
    checkpoint_lock: tokio::sync::Mutex<()>,
    /// True while this task sits in the runtime's list of tasks to flush.
    dirty: AtomicBool,
    /// Held while unsaved writes are on their way to the store, so `finish` never overtakes a
    /// save of the same task.
    pub(crate) save_lock: tokio::sync::Mutex<()>,
    /// Fired when the task is asked to stop; what the body sees as `ctx.cancelled()`.
    pub(crate) cancel: CancellationToken,
    stop: Mutex<Option<StopRequest>>,
    stop_notify: Notify,
    /// The final record, once the task has ended.
    pub(crate) done: watch::Sender<Option<Arc<TaskRecord>>>,
    /// Set once the task may have children: it launched one (`Context::launch`), a launch
    /// named it as `parent` on this node, or it is a later attempt (an earlier one may have
    /// launched some). Only then does its end look for children to stop (`children.rs`), so a
    /// task without children costs no read when it ends; the sweep covers the rest.
    pub(crate) may_have_children: AtomicBool,
    /// The task's slot on this node while its body runs (`None` for a task that runs
    /// elsewhere, and while it waits for a signal: the wait gives the slot back and takes one
    /// again before the body goes on). The supervisor drops it when the body ends.
    pub(crate) permit: Mutex<Option<super::slots::Permit>>,
    /// Goes up by one each time a signal is sent to this task (here, or on another node by
    /// its notice): a wait for a signal looks at the store again when it changes.
    pub(crate) signals_sent: watch::Sender<u64>,
    /// What the task waits for while it waits for a signal: the name and when the wait times
    /// out. Reads of the live task show it as `waiting_for` and `waiting_until`.
    waiting: Mutex<Option<(String, Option<chrono::DateTime<chrono::Utc>>)>>,
    pub(crate) rt: Arc<Inner>,
    /// The trace context of this attempt: its span's (feature `otel`, with the app's
    /// `tracing-opentelemetry` layer), else the one the task was launched in. What its
    /// children are launched in, and what a worker is assigned with.
    pub(crate) trace: Option<crate::TraceContext>,
}

impl LiveTask {
    pub(crate) fn new(
        rt: Arc<Inner>,
        started: Arc<TaskRecord>,
        trace: Option<crate::TraceContext>,
    ) -> Arc<Self> {
        let state = Arc::new(started.state.clone());
        let first_log_seq = *crate::log::attempt_log_seqs(started.attempt).start();
        let checkpoint = started.checkpoint.clone().map(|value| {
            let at = started.checkpoint_at.unwrap_or(started.launched_at);
            (Arc::new(value), at)
        });
        let later_attempt = started.attempt > 1;
        Arc::new(Self {
            id: started.id,
            started,
            state: Mutex::new(state),
            checkpoint: Mutex::new(checkpoint),
            checkpoint_lock: tokio::sync::Mutex::new(()),
            unsaved: Mutex::new(Unsaved {
                next_log_seq: first_log_seq,
                ..Unsaved::default()
            }),
            dirty: AtomicBool::new(false),
            save_lock: tokio::sync::Mutex::new(()),
            cancel: CancellationToken::new(),
            stop: Mutex::new(None),
            stop_notify: Notify::new(),
            done: watch::channel(None).0,
            may_have_children: AtomicBool::new(later_attempt),
            permit: Mutex::new(None),
            signals_sent: watch::channel(0).0,
            waiting: Mutex::new(None),
            rt,
            trace,
        })
    }

    /// The node id this task was started under: the owner the store fences its writes by.
    /// Once the node rejoins under a new id, this task is no longer its to write about.
    pub(crate) fn owner(&self) -> crate::id::NodeId {
        self.started.node.unwrap_or_else(|| self.rt.node())
    }

    pub(crate) fn state(&self) -> Arc<Value> {
        Arc::clone(&self.state.lock().expect("state poisoned"))
    }

    /// The record as of now, with the latest state.
    pub(crate) fn snapshot(&self) -> TaskRecord {
        if let Some(done) = self.done.borrow().as_ref() {
            return TaskRecord::clone(done);
        }
        let mut record = TaskRecord::clone(&self.started);
        record.state = Value::clone(&self.state());
        if let Some((name, until)) = self.waiting.lock().expect("waiting poisoned").clone() {
            record.waiting_for = Some(name);
            record.waiting_until = until;
        }
        self.put_checkpoint(&mut record);
        record
    }

    /// The last checkpoint and when it was saved.
    pub(crate) fn checkpoint(&self) -> Option<(Arc<Value>, DateTime<Utc>)> {
        self.checkpoint.lock().expect("checkpoint poisoned").clone()
    }

    /// Puts the last checkpoint in `record` (a copy of the record as the task started).
    pub(crate) fn put_checkpoint(&self, record: &mut TaskRecord) {
        if let Some((value, at)) = self.checkpoint() {
            record.checkpoint = Some(Value::clone(&value));
            record.checkpoint_at = Some(at);
        }
    }

    /// Saves `checkpoint` (`text` is it serialized, already checked against the cap) in the
    /// store, then in memory, then tells watchers. Nothing changes if the store refuses it: the
    /// node was declared dead (`NodeDead`), or the task no longer runs on it (`Conflict`).
    ///
    /// The save runs as a tokio task of its own, under `checkpoint_lock`: a body dropped while
    /// it waits (a kill's abort) does not cut it in half, and the supervisor's finish waits for
    /// it ([`LiveTask::checkpoints_settled`]), so the final record has what the store has.
    pub(crate) async fn save_checkpoint(
        self: &Arc<Self>,
        checkpoint: Value,
        text: String,
    ) -> Result<(), Error> {
        let live = Arc::clone(self);
        let saving = tokio::spawn(async move {
            let _in_order = live.checkpoint_lock.lock().await;
            let at = live.rt.clock.now();
            let saved = live
                .rt
                .store
                .save_checkpoint(live.id, live.owner(), &text, at)
                .await?;
            if !saved {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "task {} is no longer running on this node (it has ended, or another \
                         node took it over), so its checkpoint was not saved: save checkpoints \
                         only from the task's own body while it runs",
                        live.id
                    ),
                ));
            }
            let checkpoint = Arc::new(checkpoint);
            *live.checkpoint.lock().expect("checkpoint poisoned") =
                Some((Arc::clone(&checkpoint), at));
            live.rt
                .publish_at(live.id, at, EventKind::Checkpoint { checkpoint });
            Ok(())
        });
        saving.await.unwrap_or_else(|panicked| {
            Err(Error::new(
                ErrorKind::Store,
                format!("saving the checkpoint stopped half way: {panicked}"),
            ))
        })
    }

    /// Waits until no checkpoint of this task is on its way to the store.
    pub(crate) async fn checkpoints_settled(&self) {
        drop(self.checkpoint_lock.lock().await);
    }

    /// Says what the task waits for (`None`: it goes on), for reads of the live task.
    pub(crate) fn set_waiting(
        &self,
        waiting: Option<(String, Option<chrono::DateTime<chrono::Utc>>)>,
    ) {
        *self.waiting.lock().expect("waiting poisoned") = waiting;
    }

    /// True while the task holds one of this node's slots: its body runs here and does not
    /// wait for a signal.
    pub(crate) fn holds_slot(&self) -> bool {
        self.permit.lock().expect("permit poisoned").is_some()
    }

    /// A signal was sent to this task: a wait for one looks at the store again.
    pub(crate) fn signal_sent(&self) {
        self.signals_sent.send_modify(|n| *n += 1);
    }

    /// Replaces the state; `text` is `state` serialized, already checked against the cap.
    pub(crate) fn set_state(self: &Arc<Self>, state: Value, text: String) {
        let state = Arc::new(state);
        {
            let mut unsaved = self.unsaved.lock().expect("unsaved poisoned");
            *self.state.lock().expect("state poisoned") = Arc::clone(&state);
            unsaved.state = Some(text);
            // Published under the lock so events follow the order of the writes.
            self.rt.publish(self.id, EventKind::State { state });
        }
        self.mark_dirty();
    }

    pub(crate) fn append_log(self: &Arc<Self>, level: LogLevel, message: String) {
        {
            let limits = self.rt.config.log_limits;
            let mut unsaved = self.unsaved.lock().expect("unsaved poisoned");
            if unsaved.log_truncated {
                return;
            }
            let bytes = message.len() as u64;
            let (level, message) = if unsaved.log_lines + 1 >= limits.max_lines
                || unsaved.log_bytes + bytes > limits.max_bytes
            {
                unsaved.log_truncated = true;
                (LogLevel::Warn, truncation_mark(limits))
            } else {
                (level, message)
            };
            unsaved.log_lines += 1;
            unsaved.log_bytes += message.len() as u64;
            let line = LogLine {
                seq: unsaved.next_log_seq,
                at: self.rt.clock.now(),
                level,
                message,
            };
            unsaved.next_log_seq += 1;
            unsaved.logs.push(line.clone());
            self.rt.publish(
                self.id,
                EventKind::Log {
                    line: Arc::new(line),
                },
            );
        }
        self.mark_dirty();
    }

    fn mark_dirty(self: &Arc<Self>) {
        if !self.dirty.swap(true, Ordering::AcqRel) {
            self.rt
                .dirty
                .lock()
                .expect("dirty list poisoned")
                .push(Arc::downgrade(self));
        }
    }

    /// Takes the unsaved writes, leaving the task clean.
    pub(crate) fn take_unsaved(&self) -> Pending {
        self.dirty.store(false, Ordering::Release);
        let mut unsaved = self.unsaved.lock().expect("unsaved poisoned");
        Pending {
            state: unsaved.state.take(),
            logs: std::mem::take(&mut unsaved.logs),
        }
    }

    /// Asks the supervisor to stop the task. The first request wins.
    pub(crate) fn request_stop(&self, request: StopRequest) {
        let mut stop = self.stop.lock().expect("stop poisoned");
        if stop.is_none() {
            *stop = Some(request);
            drop(stop);
            self.stop_notify.notify_one();
        }
    }

    /// Why the task was asked to stop, if it was.
    pub(crate) fn stop_reason(&self) -> Option<StopReason> {
        self.stop
            .lock()
            .expect("stop poisoned")
            .map(|request| request.reason)
    }

    /// The grace period of the stop request, once there is one.
    pub(crate) fn stop_grace(&self) -> Option<Duration> {
        self.stop
            .lock()
            .expect("stop poisoned")
            .map(|request| request.grace)
    }

    /// Resolves when somebody asks the task to stop.
    pub(crate) async fn stop_requested(&self) -> StopRequest {
        loop {
            if let Some(request) = *self.stop.lock().expect("stop poisoned") {
                return request;
            }
            self.stop_notify.notified().await;
        }
    }

    /// Resolves with the final record once the task has ended.
    pub(crate) async fn finished(&self) -> Arc<TaskRecord> {
        let mut done = self.done.subscribe();
        let record = done
            .wait_for(Option::is_some)
            .await
            .expect("the sender lives in self");
        Arc::clone(record.as_ref().expect("waited for Some"))
    }
}
