//! **Workers** as the node sees them: connections that run tasks somewhere else.
//!
//! A connection speaks the worker protocol (`docs/worker-protocol.md`) as text messages over any
//! transport: the server adapts a WebSocket, the isolation pool a Unix socket. For each task it
//! hands out, the node starts a [`LiveTask`] like any other, under the same supervisor, whose
//! body only waits for the worker's answer: so kills, timeouts, state, logs, events and the store
//! work for remote tasks exactly as for in-process ones. What differs is what stopping means: a
//! cancelled body sends `kill` to the worker, a body dropped after the grace period sends
//! `abort`, and a connection that ends takes its tasks with it (`missing`, kind `worker_lost`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{FutureExt, Stream, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};

use super::claimer::ClaimSet;
use super::executor::{self, BodyEnd};
use super::live::LiveTask;
use super::Inner;
use crate::context::Context;
use crate::error::TaskError;
use crate::id::TaskId;
use crate::log::LogLevel;
use crate::worker::protocol::{
    to_text, ProtocolError, ServerMessage, WorkerMessage, PROTOCOL_VERSION,
};

/// How long a new connection has to say `hello`.
const HELLO_WITHIN: Duration = Duration::from_secs(10);

/// Most tasks one worker may run at once, whatever it asks for.
const MAX_CONCURRENCY: u32 = 10_000;

/// A connected worker, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerInfo {
    /// The connection's id.
    pub id: String,
    /// The name it gave, or its address.
    pub name: String,
    /// The task types it serves.
    pub task_types: Vec<String>,
    /// How many tasks it runs at once.
    pub concurrency: u32,
    /// How many it is running now.
    pub running: usize,
    /// When it connected.
    pub connected_at: DateTime<Utc>,
}

struct Connected {
    info: WorkerInfo,
    running: AtomicUsize,
}

/// The node's workers: the task types declared to be served elsewhere, and who is connected.
#[derive(Default)]
pub(crate) struct Workers {
    /// Launchable even while no worker serving them is connected (they wait queued).
    pub(crate) declared: BTreeSet<String>,
    connected: Mutex<BTreeMap<String, Arc<Connected>>>,
    /// Wakes every connection's claim loop: a task of a worker-served type was queued.
    pub(crate) wake: Notify,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("declared", &self.declared)
            .finish_non_exhaustive()
    }
}

impl Workers {
    pub(crate) fn new(declared: BTreeSet<String>) -> Self {
        Self {
            declared,
            ..Self::default()
        }
    }

    /// True when tasks named `name` can be launched for a worker to run.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.declared.contains(name)
            || self
                .connected
                .lock()
                .expect("workers poisoned")
                .values()
                .any(|w| w.info.task_types.iter().any(|t| t == name))
    }

    /// Every connected worker.
    pub(crate) fn list(&self) -> Vec<WorkerInfo> {
        self.connected
            .lock()
            .expect("workers poisoned")
            .values()
            .map(|w| WorkerInfo {
                running: w.running.load(Ordering::Relaxed),
                ..w.info.clone()
            })
            .collect()
    }

    /// Declared task types and those connected workers serve.
    pub(crate) fn task_types(&self) -> BTreeSet<String> {
        let mut names = self.declared.clone();
        for worker in self.connected.lock().expect("workers poisoned").values() {
            names.extend(worker.info.task_types.iter().cloned());
        }
        names
    }
}

/// What a task's body asks of its connection.
enum Control {
    /// It was cancelled: ask the worker to stop it within `grace`.
    Kill { task_id: TaskId, grace: Duration },
    /// Its grace period ran out and the supervisor dropped it.
    Abort { task_id: TaskId },
}

/// A task handed to a worker.
struct Assigned {
    live: Arc<LiveTask>,
    /// Where the worker's answer goes; `None` once the body was aborted.
    answer: Option<oneshot::Sender<BodyEnd>>,
}

/// Serves one worker connection until it ends. `incoming` yields the worker's messages;
/// replies go to `outgoing`. A protocol error is sent to the worker as `error` and returned, so
/// the transport can close with it as the reason; a clean end (the worker closed) is `Ok`.
pub(crate) async fn serve(
    rt: &Arc<Inner>,
    mut incoming: impl Stream<Item = String> + Send + Unpin,
    outgoing: mpsc::UnboundedSender<String>,
    peer: &str,
) -> Result<(), ProtocolError> {
    let result = serve_inner(rt, &mut incoming, &outgoing, peer).await;
    if let Err(error) = &result {
        let _ = outgoing.send(to_text(&ServerMessage::Error {
            message: error.0.clone(),
        }));
    }
    result
}

async fn serve_inner(
    rt: &Arc<Inner>,
    incoming: &mut (impl Stream<Item = String> + Send + Unpin),
    outgoing: &mpsc::UnboundedSender<String>,
    peer: &str,
) -> Result<(), ProtocolError> {
    let first = match tokio::time::timeout(HELLO_WITHIN, incoming.next()).await {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(()),
        Err(_) => {
            return Err(ProtocolError(format!(
                "no `hello` within {HELLO_WITHIN:?}: a worker's first message is hello"
            )))
        }
    };
    let WorkerMessage::Hello {
        protocol,
        name,
        task_types,
        concurrency,
    } = WorkerMessage::parse(&first)?
    else {
        return Err(ProtocolError(
            "the first message must be `hello`, saying which task types the worker serves".into(),
        ));
    };
    if protocol != PROTOCOL_VERSION {
        return Err(ProtocolError(format!(
            "protocol {protocol} is not supported: this server speaks protocol {PROTOCOL_VERSION}"
        )));
    }
    if task_types.is_empty() || task_types.iter().any(|t| t.trim().is_empty()) {
        return Err(ProtocolError(
            "`task_types` must name at least one task type, and no empty names".into(),
        ));
    }
    for name in &task_types {
        // The names a worker serves are launched by, listed by and stored: the launch rules.
        crate::limits::check_text("task type name", name, crate::limits::MAX_NAME_CHARS)
            .map_err(|error| ProtocolError(error.message().to_owned()))?;
    }
    if concurrency == 0 || concurrency > MAX_CONCURRENCY {
        return Err(ProtocolError(format!(
            "`concurrency` is {concurrency}: use 1 to {MAX_CONCURRENCY}"
        )));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let connected = Arc::new(Connected {
        info: WorkerInfo {
            id: id.clone(),
            name: name.unwrap_or_else(|| peer.to_owned()),
            task_types,
            concurrency,
            running: 0,
            connected_at: rt.clock.now(),
        },
        running: AtomicUsize::new(0),
    });
    rt.workers
        .connected
        .lock()
        .expect("workers poisoned")
        .insert(id.clone(), Arc::clone(&connected));
    let heartbeat = rt.config.heartbeat_interval;
    let _ = outgoing.send(to_text(&ServerMessage::Welcome {
        worker_id: id.clone(),
        heartbeat_ms: heartbeat.as_millis() as u64,
    }));
    tracing::info!(worker = %connected.info.name, types = ?connected.info.task_types, "worker connected");

    let mut link = Link {
        rt,
        claims: ClaimSet::new(
            &connected.info.task_types,
            &rt.claims.limited(),
            rt.claims.keyed(),
        ),
        connected: &connected,
        outgoing,
        assigned: HashMap::new(),
        control: mpsc::unbounded_channel(),
    };
    let ended = link.run(incoming, heartbeat).await;

    // Whatever it was running is lost with it.
    let reason = match &ended {
        Ok(()) => format!("worker {} disconnected", connected.info.name),
        Err(error) => format!("worker {} broke the protocol: {error}", connected.info.name),
    };
    for (_, assigned) in link.assigned.drain() {
        if let Some(answer) = assigned.answer {
            let _ = answer.send(BodyEnd::Lost(TaskError::new("worker_lost", reason.clone())));
        }
    }
    rt.workers
        .connected
        .lock()
        .expect("workers poisoned")
        .remove(&id);
    tracing::info!(worker = %connected.info.name, "worker gone: {reason}");
    ended
}

/// One connection's state while it runs.
struct Link<'a> {
    rt: &'a Arc<Inner>,
    /// The worker's task types, as the claimer claims them (with the limits registered here).
    claims: ClaimSet,
    connected: &'a Arc<Connected>,
    outgoing: &'a mpsc::UnboundedSender<String>,
    assigned: HashMap<TaskId, Assigned>,
    control: (
        mpsc::UnboundedSender<Control>,
        mpsc::UnboundedReceiver<Control>,
    ),
}

impl Link<'_> {
    fn send(&self, message: &ServerMessage) {
        let _ = self.outgoing.send(to_text(message));
    }

    fn free(&self) -> usize {
        (self.connected.info.concurrency as usize).saturating_sub(self.assigned.len())
    }

    async fn run(
        &mut self,
        incoming: &mut (impl Stream<Item = String> + Send + Unpin),
        heartbeat: Duration,
    ) -> Result<(), ProtocolError> {
        let mut beat = tokio::time::interval(heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = tokio::time::Instant::now();
        let mut claim_due = true;
        let poll = self.rt.config.poll_interval;
        let mut next_poll = tokio::time::Instant::now() + poll;
        loop {
            // Registered before claiming, so a launch between the claim and the wait wakes us.
            let wake = self.rt.workers.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            if claim_due && self.free() > 0 && !self.rt.is_shutting_down() {
                claim_due = self.claim().await;
                next_poll = tokio::time::Instant::now() + poll;
                if claim_due {
                    continue;
                }
            }
            let has_room = self.free() > 0;
            tokio::select! {
                text = incoming.next() => {
                    let Some(text) = text else { return Ok(()) };
                    heard = tokio::time::Instant::now();
                    if self.handle(&text)? {
                        claim_due = true;
                    }
                }
                Some(control) = self.control.1.recv() => self.control(control),
                _ = beat.tick() => {
                    if heard.elapsed() > heartbeat * 2 {
                        return Err(ProtocolError(format!(
                            "nothing heard for two heartbeat intervals ({:?})", heartbeat * 2
                        )));
                    }
                    self.send(&ServerMessage::Heartbeat);
                }
                () = &mut wake, if has_room => claim_due = true,
                () = tokio::time::sleep_until(next_poll), if has_room => {
                    // Tasks queued by other processes sharing the database wake nobody here.
                    claim_due = true;
                }
            }
        }
    }

    /// Claims what fits and assigns it. True if it filled every free place (claim again).
    async fn claim(&mut self) -> bool {
        let free = self.free();
        let node = self.rt.node();
        let now = self.rt.clock.now();
        let mut claimed = match self.claims.claim(self.rt, node, now, free).await {
            Ok(claimed) => claimed,
            Err(error) if error.kind() == crate::ErrorKind::NodeDead => {
                super::maintenance::rejoin(self.rt, node).await;
                return true;
            }
            Err(error) => {
                tracing::warn!(%error, "claiming tasks for a worker failed; retrying");
                return false;
            }
        };
        // Declared dead meanwhile: recovery took what was claimed before, so none of it runs.
        claimed.retain(|record| record.node == Some(self.rt.node()));
        let full = claimed.len() == free;
        for record in claimed {
            let (answer, answered) = oneshot::channel();
            let control = self.control.0.clone();
            let id = record.id;
            let default_grace = self.rt.config.kill_grace;
            let live = executor::start_elsewhere(self.rt, Arc::new(record), move |ctx| {
                remote_body(ctx, answered, control, default_grace).boxed()
            });
            let message = assign(&live, None);
            self.assigned.insert(
                id,
                Assigned {
                    live,
                    answer: Some(answer),
                },
            );
            self.connected.running.fetch_add(1, Ordering::Relaxed);
            self.send(&message);
        }
        full
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::Kill { task_id, grace } => {
                if self.assigned.contains_key(&task_id) {
                    self.send(&ServerMessage::Kill {
                        task_id,
                        grace_ms: grace.as_millis() as u64,
                    });
                }
            }
            Control::Abort { task_id } => {
                if let Some(assigned) = self.assigned.get_mut(&task_id) {
                    // Its place stays taken until the worker answers for it.
                    assigned.answer = None;
                    self.send(&ServerMessage::Abort { task_id });
                }
            }
        }
    }

    /// Handles one message. True if it freed a place.
    ///
    /// A message about a task this connection does not hold is refused alone (logged, the
    /// connection goes on): the task was declared lost when an earlier connection of the
    /// worker ended (it reads `missing`, or runs again elsewhere), or was answered already.
    /// The node that took it over is its only writer, so such a report never reaches the
    /// store, and the worker's other tasks are not lost to it.
    fn handle(&mut self, text: &str) -> Result<bool, ProtocolError> {
        let worker = self.connected.info.name.clone();
        let stray = move |what: &str, id: TaskId| {
            tracing::warn!(%worker, task = %id, "a worker sent `{what}` for a task that is not assigned to this connection (it was declared lost when an earlier connection ended, or answered already); ignored");
            Ok(false)
        };
        // A message longer than the state cap may be a state that cannot fit: find out from
        // its envelope alone, and refuse it without building the value (tens of MB of JSON
        // would take several times that in memory as a `Value`).
        let cap = self.rt.config.state_limit;
        if text.len() > cap {
            if let Ok(Envelope {
                kind,
                task_id: Some(task_id),
            }) = serde_json::from_str::<Envelope>(text)
            {
                if kind == "state" {
                    let Some(assigned) = self.assigned.get(&task_id) else {
                        return stray("state", task_id);
                    };
                    if assigned.answer.is_some() {
                        let refusal = format!(
                            "state refused: the worker sent a `state` message of {} bytes for \
                             task {task_id}, over the state cap of {cap} bytes; the task keeps \
                             its previous state. Keep large data elsewhere (a table, a file) and \
                             put a reference in the state",
                            text.len()
                        );
                        tracing::warn!(worker = %self.connected.info.name, %task_id, bytes = text.len(), "{refusal}");
                        assigned.live.append_log(LogLevel::Warn, refusal);
                    }
                    return Ok(false);
                }
            }
        }
        let message = WorkerMessage::parse(text)?;
        let (what, task_id) = match &message {
            WorkerMessage::Hello { .. } => {
                return Err(ProtocolError(
                    "`hello` was already sent: send it once, first".into(),
                ))
            }
            WorkerMessage::Heartbeat => return Ok(false),
            WorkerMessage::State { task_id, .. } => ("state", *task_id),
            WorkerMessage::Checkpoint { task_id, .. } => ("checkpoint", *task_id),
            WorkerMessage::Log { task_id, .. } => ("log", *task_id),
            WorkerMessage::Completed { task_id, .. } => ("completed", *task_id),
            WorkerMessage::Failed { task_id, .. } => ("failed", *task_id),
        };
        // A checkpoint is always answered, stored or not, so no worker waits for nothing.
        let refuse = |seq: u64, why: String| {
            self.send(&ServerMessage::CheckpointSaved {
                task_id,
                seq,
                error: Some(why),
            })
        };
        let Some(assigned) = self.assigned.get(&task_id) else {
            if let WorkerMessage::Checkpoint { seq, .. } = &message {
                refuse(
                    *seq,
                    format!(
                        "task {task_id} is not assigned to this connection (it was declared \
                         lost when an earlier connection ended, or it answered already)"
                    ),
                );
            }
            return stray(what, task_id);
        };
        if assigned.answer.is_none() && matches!(what, "state" | "log" | "checkpoint") {
            // Aborted: only its answer still matters, to free its place.
            if let WorkerMessage::Checkpoint { seq, .. } = &message {
                refuse(
                    *seq,
                    format!("task {task_id} was aborted: its outcome is recorded already"),
                );
            }
            return Ok(false);
        }
        match report(&assigned.live, message) {
            Report::Progress => Ok(false),
            Report::Checkpoint { seq, checkpoint } => {
                save_checkpoint(&assigned.live, seq, checkpoint, self.outgoing);
                Ok(false)
            }
            Report::Answer(answer) => {
                self.answer(task_id, BodyEnd::Returned(answer));
                Ok(true)
            }
        }
    }

    fn answer(&mut self, task_id: TaskId, end: BodyEnd) {
        if let Some(assigned) = self.assigned.remove(&task_id) {
            self.connected.running.fetch_sub(1, Ordering::Relaxed);
            if let Some(answer) = assigned.answer {
                let _ = answer.send(end);
            }
        }
    }
}

/// The `assign` message that hands `record` to a worker (or an isolated worker process, with
/// its memory limit).
pub(super) fn assign(live: &LiveTask, memory_limit_bytes: Option<u64>) -> ServerMessage {
    let record = &live.started;
    ServerMessage::Assign {
        task_id: record.id,
        name: record.name.clone(),
        args: record.args.clone(),
        attempt: record.attempt,
        owner: record.owner.clone(),
        timeout_ms: record.timeout.map(crate::task::whole_millis),
        checkpoint: record.checkpoint.clone(),
        memory_limit_bytes,
        traceparent: live.trace.as_ref().map(|cx| cx.traceparent().to_owned()),
    }
}

/// What a worker's message about one of its tasks means for the task.
pub(super) enum Report {
    /// A state or a log line, applied to the task.
    Progress,
    /// A checkpoint to store, then answer with `checkpoint_saved` (see [`save_checkpoint`]).
    Checkpoint {
        /// The worker's number for it.
        seq: u64,
        /// The checkpoint.
        checkpoint: Value,
    },
    /// The task's answer: its body ends with it.
    Answer(Result<Value, TaskError>),
}

/// Applies a worker's report about `live` (a remote worker's or an isolated process's): a
/// state is written as the task's own write would be (over the cap, refused with a warning in
/// its log), a log line appended; `completed` and `failed` are the answer. Both transports
/// map messages here, so a report means the same wherever the task runs.
pub(super) fn report(live: &Arc<LiveTask>, message: WorkerMessage) -> Report {
    match message {
        WorkerMessage::State { state, .. } => {
            if let Err(error) = Context::node(Arc::clone(live)).set_state_value(state) {
                live.append_log(LogLevel::Warn, error.to_string());
            }
            Report::Progress
        }
        WorkerMessage::Log { level, message, .. } => {
            live.append_log(level, message);
            Report::Progress
        }
        WorkerMessage::Checkpoint {
            seq, checkpoint, ..
        } => Report::Checkpoint { seq, checkpoint },
        WorkerMessage::Completed { return_value, .. } => Report::Answer(Ok(return_value)),
        WorkerMessage::Failed { error, .. } => Report::Answer(Err(error)),
        WorkerMessage::Hello { .. } | WorkerMessage::Heartbeat => Report::Progress,
    }
}

/// Stores a checkpoint a worker sent for `live` (as the task's own `save_checkpoint` would:
/// capped, fenced, durable) and answers `checkpoint_saved` on `reply`. Spawned: the store's
/// commit is not waited for in the loop that relays the worker's other messages.
pub(super) fn save_checkpoint(
    live: &Arc<LiveTask>,
    seq: u64,
    checkpoint: Value,
    reply: &mpsc::UnboundedSender<String>,
) {
    let (live, reply) = (Arc::clone(live), reply.clone());
    tokio::spawn(async move {
        let task_id = live.id;
        let saved = Context::node(live).save_checkpoint_value(checkpoint).await;
        let _ = reply.send(to_text(&ServerMessage::CheckpointSaved {
            task_id,
            seq,
            error: saved.err().map(|error| error.to_string()),
        }));
    });
}

/// What a message is and which task it is about, read without the rest of it.
#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    task_id: Option<TaskId>,
}

/// Sends `abort` if the supervisor drops the body before the worker answered.
struct AbortOnDrop {
    task_id: TaskId,
    control: mpsc::UnboundedSender<Control>,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.control.send(Control::Abort {
                task_id: self.task_id,
            });
        }
    }
}

/// The body of a task a worker runs: wait for the worker's answer; when cancelled, ask the
/// worker to stop and keep waiting (the supervisor drops this after the grace period).
async fn remote_body(
    ctx: Context,
    mut answered: oneshot::Receiver<BodyEnd>,
    control: mpsc::UnboundedSender<Control>,
    default_grace: Duration,
) -> BodyEnd {
    let task_id = ctx.id();
    let mut guard = AbortOnDrop {
        task_id,
        control: control.clone(),
        armed: true,
    };
    let end = tokio::select! {
        end = &mut answered => end,
        () = ctx.cancelled() => {
            let grace = ctx.live().and_then(|live| live.stop_grace()).unwrap_or(default_grace);
            let _ = control.send(Control::Kill { task_id, grace });
            answered.await
        }
    };
    guard.armed = false;
    end.unwrap_or_else(|_| {
        BodyEnd::Lost(TaskError::new(
            "worker_lost",
            "the worker's connection ended before it answered",
        ))
    })
}
