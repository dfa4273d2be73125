//! The **runtime**: runs tasks on this node, kills them for real, and survives restarts. What it does and an example are on [`Runtime`]; each part is a file here, named for its noun (`claimer.rs`, `executor.rs`, `slots.rs`, …).

mod actions;
mod builder;
mod children;
mod claimer;
mod cluster;
mod cron;
mod executor;
mod fleet;
mod isolation;
mod keys;
mod launch;
pub(crate) mod limiters;
pub(crate) mod live;
mod maintenance;
mod remote;
mod retention;
mod schedules;
pub(crate) mod shared;
pub(crate) mod signals;
mod slots;
mod spans;
mod spawned;
mod stats;
mod waiting;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

pub use self::actions::{Action, RerunOptions};
pub use self::builder::{Config, RuntimeBuilder};
pub use self::children::ChildEnds;
pub(crate) use self::children::{
    list as list_children, outcome as child_outcome, wait_all as wait_tasks, Waiter,
};
pub(crate) use self::claimer::KeyLimit;
pub use self::isolation::Isolation;
pub(crate) use self::launch::check_labels;
pub(crate) use self::launch::Parent;
pub use self::launch::{Launch, LaunchOptions, OnConflict};
use self::live::{LiveTask, StopReason, StopRequest};
pub use self::remote::WorkerInfo;
pub use self::retention::Retention;
use crate::error::{Error, ErrorKind};
use crate::event::{EventBus, EventKind, Subscription};
use crate::id::{NodeId, TaskId};
use crate::log::LogLine;
use crate::registry::Registry;
use crate::status::Status;
use crate::store::Purge;
use crate::store::{KillOutcome, Notice, Store};
use crate::task::{ListFilter, Task, TaskRecord};

/// The runtime's clock: wall time advanced by tokio's clock, so tests that pause and advance
/// tokio time move every timestamp and `run_at` check with it.
#[derive(Debug)]
pub(crate) struct Clock {
    wall: DateTime<Utc>,
    base: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            wall: Utc::now(),
            base: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.base;
        let now = self.wall + chrono::Duration::from_std(elapsed).unwrap_or_default();
        // Microseconds are what every store keeps; finer digits would not survive a round trip.
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }
}

/// This machine's name, as nodes record it.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Everything a runtime shares between its handles, its loops and its running tasks.
pub(crate) struct Inner {
    /// This node's identity as an owner of tasks: the id it is registered under, which every
    /// claim, direct start, save and finish carries and the store checks (fencing). It changes
    /// only when the node learns it was declared dead and rejoins as a new node
    /// (`maintenance::rejoin`); read it with `node()`.
    node: std::sync::RwLock<NodeId>,
    /// The id this node first registered under. It stays the node's name on the notice channel
    /// (`cluster.rs`) across rejoins, so that its own notices are still known as its own.
    pub(crate) origin: NodeId,
    /// Held while rejoining, so that every part that finds out the node was declared dead
    /// (heartbeat, claims, launches) rejoins once between them.
    pub(crate) rejoining: tokio::sync::Mutex<()>,
    /// The durable record. Every transition goes through it first and is announced after, so
    /// what any node reads there is never behind what an event said.
    pub(crate) store: Arc<dyn Store>,
    /// The task types registered in this process: their bodies, args checks and options.
    pub(crate) registry: Registry,
    /// The registered names, sorted: what `next_run_at` looks for and `task_types` lists.
    pub(crate) names: Vec<String>,
    /// The registered names, as the claimer claims them: types with a concurrency limit one
    /// by one, the rest together.
    pub(crate) claims: claimer::ClaimSet,
    /// The settings the builder was given; fixed for the runtime's life.
    pub(crate) config: Config,
    /// Wall time driven by tokio's clock, so paused-time tests move every timestamp.
    pub(crate) clock: Clock,
    /// This node's event stream: every event of its tasks, and of other nodes' tasks as their
    /// notices arrive (`cluster.rs`). Published through `Inner::publish`, which also tells the
    /// other nodes; `Runtime::events` and `Runtime::follow` subscribe to it.
    pub(crate) events: Arc<EventBus>,
    /// Tasks whose body runs under this node's supervisor (in-process, isolated, or on a
    /// worker connected here), by id. A task is in it from its `started` event until its
    /// final record is saved; `Inner::record` reads the live snapshot from here first.
    pub(crate) live: Mutex<HashMap<TaskId, Arc<LiveTask>>>,
    /// Live tasks with unsaved state or log lines, for the flusher.
    /// Weak, so a task that ended (its unsaved writes taken by `finish`) is simply skipped.
    pub(crate) dirty: Mutex<Vec<std::sync::Weak<LiveTask>>>,
    /// How many tasks run here at once: a task on this node holds a permit while its body
    /// runs, and freed slots go to the claimer first while tasks wait in the store.
    pub(crate) slots: Arc<slots::Slots>,
    /// Set once by `shutdown`: launches and claims stop, loops end at their next turn.
    pub(crate) shutting_down: AtomicBool,
    /// Notified whenever a live task ends, for shutdown to wait on.
    pub(crate) ended: Notify,
    /// Tasks back from a wait for a signal that found their type's concurrency limit full, by
    /// type: told when a place may have freed up (a task of the type ended here or, by its
    /// notice, elsewhere, or began to wait), one at a time; they also look every heartbeat.
    pub(crate) limit_freed: signals::LimitWaits,
    /// Asked by recovery whether a dead node's task runs again (see `maintenance::rerun`).
    pub(crate) rerun: Option<crate::store::Rerun>,
    /// Wakes the cron loop (`cron.rs`): a schedule changed, here or on another node.
    pub(crate) schedules_changed: Notify,
    /// The `tracing` dispatcher wrapped around every task body: events inside a task go to the
    /// task's log, and on to the app's own subscriber.
    pub(crate) capture: tracing::Dispatch,
    /// Connected workers and the task types they serve; their connections claim for them
    /// (`remote.rs`).
    pub(crate) workers: remote::Workers,
    /// Worker processes for isolated tasks (started when the first one is needed, or at once
    /// when a task type is isolated).
    pub(crate) isolation: Arc<isolation::Pool>,
    /// Notices for the other nodes on the database (see `cluster.rs`); `None` when the store
    /// cannot carry them, and then nobody would hear them.
    pub(crate) announce: Option<tokio::sync::mpsc::UnboundedSender<Notice>>,
    /// Shared state on this node: lockers' queues, the releaser, changes for watchers.
    pub(crate) shared: shared::SharedHub,
    /// What this node's tasks did, tallied per minute and task type until the stats flusher
    /// writes it to the store (`stats.rs`); every start and end of a task is counted here.
    pub(crate) stats: stats::Recorder,
    /// This node's side of the fleet: the report it last wrote, and the paused task types
    /// as it last read them (which only decide whether a launch may start at once).
    pub(crate) fleet: fleet::FleetHere,
    /// Limiters on this node: a turn per limiter for its waiters, and the wake-up of waiters
    /// when a hold is released here or (by notice) elsewhere (`limiters.rs`).
    pub(crate) limiters: limiters::LimiterHub,
    /// This node's histograms of queue wait, run time and end-to-end time per task type
    /// (`timings.rs`), counted by the executor at each start and end, served by `/metrics`.
    pub(crate) timings: crate::timings::Recorder,
}

impl Inner {
    pub(crate) fn new_node_cell(node: NodeId) -> std::sync::RwLock<NodeId> {
        std::sync::RwLock::new(node)
    }

    /// The id this node is registered under now (see `node`).
    pub(crate) fn node(&self) -> NodeId {
        *self.node.read().expect("node id poisoned")
    }

    /// Takes `new` as this node's id, if the node is still `old`; false if it is not.
    pub(crate) fn replace_node(&self, old: NodeId, new: NodeId) -> bool {
        let mut node = self.node.write().expect("node id poisoned");
        if *node != old {
            return false;
        }
        *node = new;
        true
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("node", &self.node())
            .field("store", &self.store)
            .finish()
    }
}

/// The **runtime**: runs tasks on this node, kills them for real, and survives restarts.
///
/// A runtime is one *node*. It launches tasks into the store, claims queued ones when it has a
/// free slot (highest priority first, then oldest), runs each body as a tokio task under a
/// supervisor that enforces kills and timeouts, saves state and logs in batches, and reports
/// every change as an [`crate::Event`]. When it starts, it marks the tasks of nodes that died
/// (`missing`); when it shuts down, it drains, then records what it had to interrupt.
///
/// ```no_run
/// use offstage::{Context, Runtime, TaskError};
///
/// # async fn demo() -> Result<(), offstage::Error> {
/// let rt = Runtime::builder()
///     .sqlite("offstage.db")
///     .task("greet", |ctx: Context, name: String| async move {
///         ctx.log(format!("greeting {name}"));
///         Ok::<_, TaskError>(format!("hello, {name}"))
///     })
///     .build()
///     .await?;
/// let task = rt.launch_json("greet", serde_json::json!("world")).await?;
/// assert_eq!(task.wait().await?.return_value, Some(serde_json::json!("hello, world")));
/// rt.shutdown().await?;
/// # Ok(()) }
/// ```
///
/// A handle to a running runtime. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// Starts building a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Serves one worker connection (`docs/worker-protocol.md`) until it ends: `incoming` is
    /// the worker's messages as text, replies go to `outgoing`. Transports call this: the
    /// server's WebSocket endpoint, the isolation pool's Unix sockets. On a protocol error the
    /// worker has been sent `error`, and the error is returned so the transport can close with
    /// it as the reason; the worker's running tasks are then `missing`, like those of a worker
    /// that disconnected.
    pub async fn serve_worker(
        &self,
        incoming: impl futures::Stream<Item = String> + Send + Unpin,
        outgoing: tokio::sync::mpsc::UnboundedSender<String>,
        peer: &str,
    ) -> Result<(), crate::worker::protocol::ProtocolError> {
        remote::serve(&self.inner, incoming, outgoing, peer).await
    }

    /// The workers connected to this node.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.inner.workers.list()
    }

    /// Task types served by workers: those declared with [`RuntimeBuilder::remote_task`] and
    /// those connected workers announced.
    pub fn worker_task_types(&self) -> Vec<String> {
        self.inner.workers.task_types().into_iter().collect()
    }

    /// This node's id: the one it is registered under now. A node that was declared dead
    /// (silent for longer than the node timeout) rejoins under a new id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node()
    }

    /// The store this runtime writes to: for the crate's own tests, which check what was
    /// stored. Apps get what they need through the runtime, and nothing that writes.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The names of the registered task types, sorted.
    pub fn task_types(&self) -> Vec<String> {
        self.inner.names.clone()
    }

    /// Launches a task of type `T`; the args' type is checked at compile time. Set options on
    /// the returned [`Launch`], then `.await` it.
    pub fn launch<T: crate::TaskType>(&self, args: T::Args) -> Launch {
        let args = serde_json::to_value(args).map_err(|e| {
            Error::new(
                crate::ErrorKind::InvalidArgs,
                format!("the args of `{}` do not serialize to JSON: {e}", T::NAME),
            )
        });
        Launch::new(Arc::clone(&self.inner), T::NAME.to_owned(), args)
    }

    /// Launches a task by name with JSON args, as the HTTP API does. An unknown name and args
    /// that do not fit the task type are errors here, not failed tasks.
    pub fn launch_json(&self, name: &str, args: serde_json::Value) -> Launch {
        Launch::new(Arc::clone(&self.inner), name.to_owned(), Ok(args))
    }

    /// Runs `f` in this process as a task named `name` (Sanic's `add_task`): for work that is
    /// not a registered task type. It is tracked like any task (the same handle, list, events,
    /// log and kill), its name is unique while it runs on any node (a second spawn with the
    /// name is [`crate::ErrorKind::Conflict`]), and after a crash it reads `missing`.
    ///
    /// ```no_run
    /// # async fn demo(rt: offstage::Runtime) -> Result<(), offstage::Error> {
    /// let warmer = rt
    ///     .spawn("cache.warmer", |ctx: offstage::Context| async move {
    ///         ctx.log("warming");
    ///         Ok::<_, offstage::TaskError>(())
    ///     })
    ///     .await?;
    /// let same = rt.get_task("cache.warmer").await?; // Some(handle), while it runs
    /// rt.cancel_task("cache.warmer").await?;         // kill, and wait until it has ended
    /// # Ok(()) }
    /// ```
    pub async fn spawn<F, Fut, O>(&self, name: &str, f: F) -> Result<Task, Error>
    where
        F: FnOnce(crate::Context) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<O, crate::TaskError>> + Send + 'static,
        O: serde::Serialize + Send + 'static,
    {
        spawned::spawn(&self.inner, name, name.to_owned(), f).await
    }

    /// The JSON Schema of task type `name`'s args (see
    /// [`super::RuntimeBuilder::args_schema`]), or `None` if none was given here.
    pub fn task_type_args_schema(&self, name: &str) -> Option<serde_json::Value> {
        self.inner.registry.args_schema(name).cloned()
    }

    /// The options task type `name` was registered with, or `None` if it was not.
    pub fn task_type_options(&self, name: &str) -> Option<crate::TaskTypeOptions> {
        self.inner.registry.get(name).ok().map(|t| t.options)
    }

    /// The spawned task named `name` while it runs (on any node), or `None`.
    pub async fn get_task(&self, name: &str) -> Result<Option<Task>, Error> {
        spawned::get(&self.inner, name).await
    }

    /// Kills the spawned task named `name` and waits until it has ended; its final record, or
    /// `None` if no task of that name is running.
    pub async fn cancel_task(&self, name: &str) -> Result<Option<TaskRecord>, Error> {
        match spawned::get(&self.inner, name).await? {
            Some(task) => task.kill().await.map(Some),
            None => Ok(None),
        }
    }

    /// A handle to the shared document `name` ([`crate::Shared`]): read it, lock it, update
    /// it, watch it. Its locks name this node as their holder unless told otherwise
    /// ([`crate::Shared::holder`]). An invalid name (empty, over 200 characters, control
    /// characters) is [`crate::ErrorKind::InvalidArgument`].
    ///
    /// ```no_run
    /// # async fn demo(rt: offstage::Runtime) -> Result<(), offstage::Error> {
    /// let flags = rt.shared("feature-flags")?;
    /// let mut guard = flags.lock().await?; // exclusive on every node; the latest value
    /// let mut value = guard.value().clone();
    /// value["beta"] = serde_json::json!(true);
    /// guard.set_json(value)?;
    /// guard.save().await?; // written and released in one step
    /// # Ok(()) }
    /// ```
    pub fn shared(&self, name: &str) -> Result<crate::Shared, Error> {
        crate::Shared::new(
            Arc::clone(&self.inner),
            name,
            format!("node {}", self.inner.node()),
        )
    }

    /// Every shared document in the store, sorted by name.
    pub async fn shared_list(&self) -> Result<Vec<crate::SharedRecord>, Error> {
        self.inner.store.shared_list().await
    }

    /// A handle to task `id`; [`crate::ErrorKind::NotFound`] if there is no such task.
    pub async fn get(&self, id: TaskId) -> Result<Task, Error> {
        let since = self.inner.events.last_seq();
        let record = self.inner.record(id).await?;
        Ok(Task::new(Arc::clone(&self.inner), record, since, false))
    }

    /// Task `id`'s current record.
    pub async fn record(&self, id: TaskId) -> Result<TaskRecord, Error> {
        self.inner.record(id).await
    }

    /// Whether this node can take work now: not shutting down, and its store takes a write
    /// (one heartbeat, made now: a small write that proves the store can commit, the disk
    /// under it included). For a readiness probe; `Err` says why not, e.g.
    /// [`crate::ErrorKind::StorageFull`].
    pub async fn ready(&self) -> Result<(), Error> {
        if self.inner.is_shutting_down() {
            return Err(Error::new(
                crate::ErrorKind::ShuttingDown,
                "this runtime is shutting down and takes no new tasks: send work to another node",
            ));
        }
        maintenance::heartbeat(&self.inner).await
    }

    /// Task `id`'s record now, and its events from then on: nothing that happens between the
    /// read and the first event is lost (the subscription is made first). For a task that is
    /// already over, the subscription holds only its `finished` event. An unknown id is
    /// [`crate::ErrorKind::NotFound`].
    ///
    /// ```no_run
    /// # async fn demo(rt: offstage::Runtime, id: offstage::TaskId) -> Result<(), offstage::Error> {
    /// let (record, mut events) = rt.follow(id).await?;
    /// println!("{} is {}", record.id, record.status);
    /// while let Ok(event) = events.recv().await {
    ///     println!("{}", event.kind.name()); // state, log, …, finished; then the stream ends
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn follow(&self, id: TaskId) -> Result<(TaskRecord, Subscription), Error> {
        self.inner.follow(id, None).await
    }

    /// [`Runtime::follow`], resuming after event `seq` (an SSE client's `Last-Event-ID`): the
    /// task's events after it still in the replay buffer come first, or a gap if some are
    /// gone.
    pub async fn follow_since(
        &self,
        id: TaskId,
        seq: u64,
    ) -> Result<(TaskRecord, Subscription), Error> {
        self.inner.follow(id, Some(seq)).await
    }

    /// Tasks matching `filter`, newest first. For the next page pass the last id as `before`.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<TaskRecord>, Error> {
        filter.check()?;
        self.inner.store.list(filter).await
    }

    /// Up to `limit` log lines of task `id` after sequence number `after` (0 for the start).
    pub async fn logs(&self, id: TaskId, after: u64, limit: usize) -> Result<Vec<LogLine>, Error> {
        let lines = self.inner.store.logs(id, after, limit).await?;
        if lines.is_empty() && self.inner.store.get(id).await?.is_none() {
            return Err(Error::not_found(id));
        }
        Ok(lines)
    }

    /// Kills task `id` with the runtime's grace period and waits until it has ended.
    pub async fn kill(&self, id: TaskId) -> Result<TaskRecord, Error> {
        self.inner.kill(id, None).await
    }

    /// Kills task `id` with its own grace period and waits until it has ended.
    pub async fn kill_with_grace(&self, id: TaskId, grace: Duration) -> Result<TaskRecord, Error> {
        self.inner.kill(id, Some(grace)).await
    }

    /// Deletes every task that finished before `before`, and its logs. Returns how many. Like
    /// every purge, it deletes in short steps: launches made meanwhile never wait behind it.
    pub async fn purge(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        let purge = Purge {
            finished_before: Some(before),
            ..Purge::default()
        };
        self.purge_with(&purge, |_| {}).await
    }

    /// Deletes the finished tasks matching `filter` (its `status`, if set, must be one a
    /// task ends with), with their logs, calling `progress` with the number deleted so far
    /// after each step. Returns how many.
    pub async fn purge_matching(
        &self,
        filter: &ListFilter,
        progress: impl FnMut(u64),
    ) -> Result<u64, Error> {
        let purge = Purge {
            filter: filter.clone(),
            ..Purge::default()
        };
        self.purge_with(&purge, progress).await
    }

    /// Deletes the tasks `purge` selects, with their logs, in short steps (launches made
    /// meanwhile wait for one step at most), calling `progress` with the number deleted so far
    /// after each step. Returns how many.
    pub async fn purge_with(&self, purge: &Purge, progress: impl FnMut(u64)) -> Result<u64, Error> {
        check_purge(purge)?;
        retention::purge(&self.inner, purge, progress).await
    }

    /// Applies the retention rules now, on this node, whoever's turn it is: returns how many
    /// finished tasks it removed. (The nodes do this by themselves, once per
    /// `retention_interval` across all of them.) For the crate's own tests.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn retention_pass(&self) -> Result<u64, Error> {
        retention::apply(&self.inner).await
    }

    /// Runs the sweep for children their parent's end should have stopped, now, whoever's
    /// turn it is: returns how many it killed. For the crate's own tests.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn sweep_children(&self) -> Result<usize, Error> {
        children::sweep(&self.inner).await
    }

    /// How many tasks [`Runtime::purge_with`] would delete with `purge`, now: a dry run.
    pub async fn purge_count(&self, purge: &Purge) -> Result<u64, Error> {
        check_purge(purge)?;
        self.inner.store.purge_count(purge).await
    }

    /// How many tasks match `filter` (its `limit` aside). By type and status alone it reads
    /// the counts the store keeps and costs the same at any size; other filters count the
    /// tasks they match through an index.
    pub async fn count_matching(&self, filter: &ListFilter) -> Result<u64, Error> {
        filter.check()?;
        self.inner.store.count(filter).await
    }

    /// How many tasks the store holds of each task type and status, sorted by name. Exact,
    /// and as cheap with millions of tasks as with none.
    pub async fn counts(&self) -> Result<Vec<(String, Status, u64)>, Error> {
        self.inner.store.counts().await
    }

    /// Every event from now on: of this node's tasks, and of other nodes' tasks where the store
    /// carries notices between nodes (PostgreSQL; SQLite within one process).
    pub fn events(&self) -> Subscription {
        self.inner.events.subscribe()
    }

    /// Every event (as [`Runtime::events`]) after sequence number `seq`, then live ones.
    /// Sequence numbers are this node's own: resume on the node that handed them out.
    pub fn events_since(&self, seq: u64) -> Subscription {
        self.inner.events.subscribe_since(seq)
    }

    /// How many events this node has published: the sequence number of the newest one (0
    /// before the first).
    pub fn events_published(&self) -> u64 {
        self.inner.events.last_seq()
    }

    /// The runtime's clock: wall time that follows tokio's (paused) clock in tests.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// What every task type did over `window`, bucket by bucket: tasks started, completed,
    /// failed, killed, missing and retried, the queue depth, and the wait from due to start
    /// (p50, p90, p99). Read from the per-minute rows every node writes to the store once a
    /// minute (and this node's tallies not written yet), so its cost grows with the minutes,
    /// nodes and task types, never with the number of tasks. Another node's minute under way
    /// shows once that node writes it, a minute later.
    pub async fn stats(&self, window: crate::StatsWindow) -> Result<crate::Stats, Error> {
        stats::read(&self.inner, window).await
    }

    /// This node's histograms of how long its tasks waited (from due to start), ran (start to
    /// end, per attempt) and took from launch to end, per task type, since the node started:
    /// what `GET /metrics` serves. Read from memory; each node counts only the attempts it
    /// ran, so nodes' histograms add up.
    pub fn timings(&self) -> Vec<crate::TypeTimings> {
        self.inner.timings.snapshot()
    }

    /// Writes this node's stats tallies of the minutes that are over to the store now, as the
    /// flusher does a second after each minute: for the crate's own tests.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn flush_stats(&self) {
        stats::flush(&self.inner, false).await;
    }

    /// How many tasks are running on this node.
    pub fn running(&self) -> usize {
        self.inner.live.lock().expect("live map poisoned").len()
    }

    /// Stops the runtime: no more launches or claims; running tasks get the drain period to
    /// finish; any still running then is aborted and recorded `missing` with error kind
    /// `interrupted`; unsaved writes are saved; the node deregisters.
    pub async fn shutdown(&self) -> Result<(), Error> {
        maintenance::shutdown(&self.inner).await
    }
}

impl Inner {
    /// Publishes an event of a task on this node: on this node's bus, and to the other nodes.
    /// Returns its sequence number here.
    pub(crate) fn publish(&self, task_id: TaskId, kind: EventKind) -> u64 {
        self.publish_at(task_id, self.clock.now(), kind)
    }

    /// [`Inner::publish`] of an event that happened at `at`.
    pub(crate) fn publish_at(&self, task_id: TaskId, at: DateTime<Utc>, kind: EventKind) -> u64 {
        match &self.announce {
            Some(announce) => {
                let seq = self.events.publish(task_id, at, kind.clone());
                let event = crate::Event {
                    seq,
                    task_id,
                    at,
                    kind,
                };
                let _ = announce.send(Notice::Event {
                    node: self.origin,
                    event,
                });
                seq
            }
            None => self.events.publish(task_id, at, kind),
        }
    }

    /// Tells the other nodes on the database, if there is a way to.
    /// Wakes whoever claims a task just queued: workers for a type they serve (`elsewhere`),
    /// else this node's claimer; and, when it is due, the other nodes.
    pub(crate) fn wake_for_queued(&self, elsewhere: bool, due: bool) {
        if elsewhere {
            self.workers.wake.notify_waiters();
        } else if due {
            self.slots.wake_claimer();
        } else {
            self.slots.remind_claimer();
        }
        if due {
            self.tell_others(Notice::Queued);
        }
    }

    /// Tasks may be due in the store: wakes this node's claimer and every connected worker's.
    pub(crate) fn wake_all_claimers(&self) {
        self.slots.wake_claimer();
        self.workers.wake.notify_waiters();
    }

    /// Publishes the launch of `queued`, just inserted by a schedule's tick, and wakes
    /// whoever claims it.
    pub(crate) fn announce_queued(&self, queued: TaskRecord, elsewhere: bool) {
        let (id, at) = (queued.id, queued.launched_at);
        self.publish_at(
            id,
            at,
            EventKind::Launched {
                task: Arc::new(queued),
            },
        );
        self.wake_for_queued(elsewhere, true);
    }

    /// True when this node can launch tasks named `name`: it registered the type, or its
    /// workers serve it.
    pub(crate) fn can_launch(&self, name: &str) -> bool {
        self.registry.get(name).is_ok() || self.workers.knows(name)
    }

    /// The error for launching `name`, which this node cannot: the types it registered, the
    /// ones its connected workers serve, and how to launch a type only workers serve.
    pub(crate) fn unknown_task_type(&self, name: &str) -> Error {
        let Err(error) = self.registry.get(name) else {
            unreachable!("`{name}` is registered");
        };
        let mut served: Vec<String> = self
            .workers
            .list()
            .into_iter()
            .flat_map(|w| w.task_types)
            .collect();
        served.sort();
        served.dedup();
        let workers = if served.is_empty() {
            "no worker is connected to this node".to_owned()
        } else {
            format!("the connected workers serve {}", served.join(", "))
        };
        Error::new(
            ErrorKind::UnknownTaskType,
            format!(
                "{}. Workers serve task types too, and {workers}. If a worker serves `{name}`, \
                 connect it first, or declare the type on the server (`offstage serve \
                 --remote-type {name}`, `RuntimeBuilder::remote_task`) so that launches wait \
                 queued until a worker takes them",
                error.message()
            ),
        )
    }

    pub(crate) fn tell_others(&self, notice: Notice) {
        if let Some(announce) = &self.announce {
            let _ = announce.send(notice);
        }
    }

    /// Takes `live` out of the live map, if it is still the one there under its id (after a
    /// rejoin, the same task may have been claimed again while its lost copy stops).
    pub(crate) fn unlist(&self, live: &Arc<LiveTask>) {
        let mut map = self.live.lock().expect("live map poisoned");
        if map
            .get(&live.id)
            .is_some_and(|there| Arc::ptr_eq(there, live))
        {
            map.remove(&live.id);
        }
    }

    pub(crate) fn live(&self, id: TaskId) -> Option<Arc<LiveTask>> {
        self.live
            .lock()
            .expect("live map poisoned")
            .get(&id)
            .cloned()
    }

    pub(crate) async fn record(&self, id: TaskId) -> Result<TaskRecord, Error> {
        if let Some(live) = self.live(id) {
            return Ok(live.snapshot());
        }
        self.store
            .get(id)
            .await?
            .ok_or_else(|| Error::not_found(id))
    }

    /// Kills task `id` (see [`Runtime::kill`]) and waits until it has ended; then stops its
    /// children as its end says to (`children.rs`), each through this same path.
    pub(crate) async fn kill(
        &self,
        id: TaskId,
        grace: Option<Duration>,
    ) -> Result<TaskRecord, Error> {
        let grace = grace.unwrap_or(self.config.kill_grace);
        let ended = self.kill_one(id, grace).await?;
        children::stop_children(self, &ended, Some(grace)).await;
        Ok(ended)
    }

    async fn kill_one(&self, id: TaskId, grace: Duration) -> Result<TaskRecord, Error> {
        if let Some(live) = self.live(id) {
            live.request_stop(StopRequest {
                reason: StopReason::Kill,
                grace,
            });
            let ended = TaskRecord::clone(&*live.finished().await);
            // Queued again (it failed just before, and retries): kill it in the store.
            if ended.status.is_terminal() {
                return Ok(ended);
            }
        }
        match self.store.kill(id, Some(grace), self.clock.now()).await? {
            KillOutcome::Killed(record) => {
                let at = record.finished_at.unwrap_or_else(|| self.clock.now());
                self.stats.ended(&record, at);
                self.publish(
                    id,
                    EventKind::Finished {
                        task: Arc::new(record.clone()),
                    },
                );
                Ok(record)
            }
            KillOutcome::AlreadyFinished(record) => Ok(record),
            KillOutcome::Requested { node } => {
                // The node running it finds the request on its next heartbeat; this makes it
                // sooner.
                self.tell_others(Notice::Kill {
                    task_id: id,
                    node,
                    grace_ms: Some(grace.as_millis().min(u64::MAX as u128) as u64),
                });
                if node == self.node() {
                    // Claimed by this node a moment ago: it may be live by now.
                    if let Some(live) = self.live(id) {
                        live.request_stop(StopRequest {
                            reason: StopReason::Kill,
                            grace,
                        });
                    }
                }
                self.wait(id).await
            }
        }
    }

    /// See [`Runtime::follow`]: this is the one place that orders "subscribe, then read".
    pub(crate) async fn follow(
        &self,
        id: TaskId,
        since: Option<u64>,
    ) -> Result<(TaskRecord, Subscription), Error> {
        let since = since.unwrap_or_else(|| self.events.last_seq());
        let mut events = self.events.subscribe_task_since(id, since);
        let record = self.record(id).await?;
        if record.status.is_terminal() {
            let seq = events.last_seq().max(since);
            events.end_with(record.clone(), seq);
        }
        Ok((record, events))
    }

    pub(crate) async fn wait(&self, id: TaskId) -> Result<TaskRecord, Error> {
        // Where other nodes' events arrive here, a task's `finished` event is pushed wherever it
        // runs and reading the store is only the fallback for a lost notice: start it later.
        // Its cap stays the poll interval, for processes that share a SQLite file and hear
        // nothing from each other.
        let mut backoff = if self.announce.is_some() {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(5)
        };
        loop {
            if let Some(live) = self.live(id) {
                let ended = TaskRecord::clone(&*live.finished().await);
                if ended.status.is_terminal() {
                    return Ok(ended);
                }
                // Queued again for another attempt: wait on.
                continue;
            }
            let (record, mut events) = self.follow(id, None).await?;
            if record.status.is_terminal() {
                return Ok(record);
            }
            // Tasks on other nodes send their events here only where the store carries notices
            // (and a notice may be lost): read the store again, less often the longer it takes.
            tokio::select! {
                event = events.recv() => {
                    if let Ok(crate::Event { kind: EventKind::Finished { task }, .. }) = event {
                        return Ok(TaskRecord::clone(&task));
                    }
                }
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.config.poll_interval);
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// Refuses a purge of tasks that cannot be purged: only finished tasks ever are.
fn check_purge(purge: &Purge) -> Result<(), Error> {
    purge.filter.check()?;
    match purge.filter.status {
        Some(status) if !status.is_terminal() => Err(Error::new(
            crate::ErrorKind::InvalidArgument,
            format!(
                "a purge deletes finished tasks only, and `{status}` tasks have not finished: \
                 filter by completed, failed, killed or missing, or kill them first"
            ),
        )),
        _ => Ok(()),
    }
}
