//! The **store**: the durable record of every task, behind one trait.
//!
//! One method per lifecycle step, no associated types, every time passed in by the caller
//! (the runtime's clock is the only clock). The contract each method documents is what the
//! conformance suite (`offstage::testing::conformance`, feature `testing`) checks on every
//! backend; a new backend
//! passes that suite before anything else uses it. SQL lives only in the backends.
//!
//! Backends: `sqlite::SqliteStore` (feature `sqlite`, on by default) and
//! `postgres::PostgresStore` (feature `postgres`), for many nodes on one database.
//!
//! Nodes sharing a database also tell each other things through the store ([`Store::notify`]
//! and [`Store::listen`]): a task was queued, a kill is asked for, an event happened. These are
//! hints for speed. Every one of them has a slower path that does not need it (the claimer's
//! poll, the heartbeat's kill requests, reading the store), so a lost notice delays, never loses.
//!
//! The store also keeps **shared state** ([`crate::Shared`]): named JSON documents with a lock
//! that one holder at a time takes across every node ([`Store::shared_lock`],
//! [`Store::shared_unlock`]), freed by recovery when its node dies.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::action::ActionRecord;
use crate::error::{Error, TaskError};
use crate::event::Event;
use crate::fleet::{NodeRecord, NodeReport, PausedTaskType};
use crate::id::{ActionId, NodeId, TaskId};
use crate::limiter::{Acquire, HoldRequest, Limit, LimiterRecord};
use crate::log::LogLine;
pub use crate::schedule::Fired;
use crate::schedule::{Schedule, ScheduleRecord};
use crate::shared::SharedRecord;
use crate::signal::{SignalRecord, SignalSent};
use crate::stats::StatsRow;
use crate::status::Status;
use crate::task::{ListFilter, TaskRecord};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod copy;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod turns;

/// A runtime's registration in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// The machine it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// A state write and log lines not yet saved, for one task.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pending {
    /// The latest state as JSON text, if it changed since the last save.
    pub state: Option<String>,
    /// Log lines in sequence order.
    pub logs: Vec<LogLine>,
}

/// How a running task ended, as the runtime reports it to [`Store::finish`].
#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    /// One of the terminal statuses.
    pub status: Status,
    /// The final state, as JSON text.
    pub state: String,
    /// The return value, for `completed`.
    pub return_value: Option<Value>,
    /// The error, for every other terminal status.
    pub error: Option<TaskError>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Log lines not yet saved.
    pub logs: Vec<LogLine>,
    /// Set when the task is to run again (its retry policy said so): `status` is then
    /// `queued`, the task is taken off its node, and it becomes due at this time.
    pub retry_at: Option<DateTime<Utc>>,
}

/// What [`Store::kill`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum KillOutcome {
    /// The task was queued; it is now `killed` and will never run.
    Killed(TaskRecord),
    /// The task is running on `node`; the kill request is recorded for that node to act on.
    Requested {
        /// The node running it.
        node: NodeId,
    },
    /// The task had already ended.
    AlreadyFinished(TaskRecord),
}

/// A recorded kill request for a task running on the asking node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KillRequest {
    /// The task to kill.
    pub task_id: TaskId,
    /// The grace period the killer asked for, if it asked for one.
    pub grace: Option<Duration>,
}

/// A message from one node to the others on the same database: a hint that something happened
/// which the receivers would otherwise find out about later, by polling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Notice {
    /// Tasks were queued: nodes with free slots should claim now rather than at their next poll.
    Queued,
    /// Somebody asked to kill `task_id`, running on `node` (which also finds the request on its
    /// next heartbeat).
    Kill {
        /// The task to kill.
        task_id: TaskId,
        /// The node running it.
        node: NodeId,
        /// The grace period asked for, in milliseconds.
        grace_ms: Option<u64>,
    },
    /// `event` happened on `node`. Receivers publish it on their own event bus (with their own
    /// sequence number), so a subscriber on any node sees every node's tasks live.
    Event {
        /// The node where it happened.
        node: NodeId,
        /// The event, as that node published it.
        event: Event,
    },
    /// A schedule was created, changed, paused, resumed or deleted: cron loops re-read them.
    Schedules,
    /// Shared document `name` changed (`value` is its new value) or its lock was released
    /// without a change (`value` is `None`), at `version`. Receivers wake their lockers waiting
    /// for it and pass changes to their watchers.
    Shared {
        /// The document's name.
        name: String,
        /// Its version after the change (or at the release).
        version: u64,
        /// The new value, for a change.
        value: Option<Arc<Value>>,
    },
    /// A task type was paused or resumed: receivers re-read the paused task types.
    TaskTypes,
    /// Signal `name` was sent to `task_id`: the node running it, if the task waits for it,
    /// receives it now rather than at its next look at the store.
    Signal {
        /// The task it was sent to.
        task_id: TaskId,
        /// The signal's name.
        name: String,
    },
    /// Produced by [`Store::listen`] itself, never sent: the listener lost its connection (or
    /// fell behind) and notices may be missing. Receivers re-poll what they rely on.
    Reconnected,
    /// A hold on limiter `name` was released, or the limiter was redefined or deleted:
    /// receivers' waiters ask the store again.
    Limiter {
        /// The limiter's name.
        name: String,
    },
}

/// A running task going back to the queue without counting the attempt, as the runtime
/// reports it to [`Store::back_off`].
#[derive(Clone, Debug, PartialEq)]
pub struct BackOff {
    /// The state as the task left it, as JSON text.
    pub state: String,
    /// Why: kind `backed_off`, kept as the record's `error` while it waits (what the waiting
    /// reason reads).
    pub error: TaskError,
    /// When it becomes due again.
    pub run_at: DateTime<Utc>,
    /// Log lines not yet saved.
    pub logs: Vec<LogLine>,
}

/// Which finished tasks [`Store::purge`] deletes: those that meet every condition set.
///
/// Only finished tasks (completed, failed, killed, missing) are ever purged, whatever
/// `filter.status` and `filter.finished` say; `filter.limit` is ignored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Purge {
    /// Tasks matching this filter.
    pub filter: ListFilter,
    /// Only tasks that finished before this time.
    pub finished_before: Option<DateTime<Utc>>,
    /// All but the newest this many (in launch order) of the finished tasks matching `filter`.
    pub keep_newest: Option<u64>,
}

/// Decides, in [`Store::recover`], whether a task of a dead node runs again: `Some((due,
/// log line))` to queue it, `None` to leave it `missing`. Given the task as marked `missing`
/// (its error set) and the time of the recovery.
pub type Rerun = std::sync::Arc<
    dyn Fn(&TaskRecord, DateTime<Utc>) -> Option<(DateTime<Utc>, LogLine)> + Send + Sync,
>;

/// When a backend's [`Store::recover`] next looks for orphaned tasks (`running` on no
/// registered node): on the first pass through a store handle, then whenever half the node
/// timeout has passed since the last look. Reading every running task each heartbeat would cost
/// more than it finds; once per half timeout keeps the promise that no task reads `running`
/// without a live owner for longer than the node timeout.
#[derive(Debug, Default)]
pub(crate) struct OrphanSweep {
    last: std::sync::Mutex<Option<DateTime<Utc>>>,
}

impl OrphanSweep {
    /// True (and the look counted as made at `now`) when a look is due at `now`.
    pub(crate) fn due(&self, now: DateTime<Utc>, stale_after: Duration) -> bool {
        let mut last = self.last.lock().expect("orphan sweep poisoned");
        let half = chrono::Duration::from_std(stale_after / 2).unwrap_or(chrono::Duration::MAX);
        match *last {
            Some(at) if now < at + half => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

/// The error a store returns for a write on behalf of a node that is no longer registered.
pub(crate) fn node_dead(node: NodeId) -> Error {
    Error::new(
        crate::ErrorKind::NodeDead,
        format!(
            "node {node} is no longer registered: another node declared it dead (no heartbeat \
             within the node timeout) and marked its tasks missing; it rejoins as a new node. If \
             this happens without a pause or an overloaded machine, raise the node timeout"
        ),
    )
}

// What follows is shared by the backends: the rules that are the same whatever the SQL.

/// `value` as the JSON text the backends store (args, state, return values, errors).
pub(crate) fn json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("JSON values always serialize")
}

/// The node a task about to be inserted is claimed by, if it is inserted `running` (a direct
/// start): the node that must be registered for the insert to go in (see [`Store::launch`]).
pub(crate) fn running_on(task: &TaskRecord) -> Option<NodeId> {
    (task.status == Status::Running)
        .then_some(task.node)
        .flatten()
}

/// An id above every id of a task launched (or finished) before `at`, to bound scans of the
/// primary key by time: ids are made from the same clock as `launched_at`, a moment apart, so a
/// minute's margin covers the difference, and tokio's paused clock only ever runs `launched_at`
/// ahead of the ids.
pub(crate) fn id_bound(at: DateTime<Utc>) -> TaskId {
    TaskId::first_at(at + chrono::Duration::minutes(1))
}

/// A kill request's grace period as the `kill_grace_ms` column holds it: -1 when the killer
/// asked for none, since NULL there means that nobody asked for a kill.
pub(crate) fn grace_to_ms(grace: Option<Duration>) -> i64 {
    grace.map_or(-1, |g| g.as_millis().min(i64::MAX as u128) as i64)
}

/// The grace period [`grace_to_ms`] stored.
pub(crate) fn grace_from_ms(ms: i64) -> Option<Duration> {
    (ms >= 0).then(|| Duration::from_millis(ms as u64))
}

/// Puts claimed tasks in the order [`Store::claim`] promises (highest priority first, then
/// oldest first), which the claiming statement's `RETURNING` does not keep.
pub(crate) fn sort_claimed(records: &mut [TaskRecord]) {
    records.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
}

/// A task of a dead node that [`Store::recover`]'s `rerun` says runs again: what the backend
/// writes, in the recovery's transaction, to queue it.
pub(crate) struct Requeue {
    /// The task.
    pub(crate) id: TaskId,
    /// When it becomes due.
    pub(crate) due: DateTime<Utc>,
    /// The log line that says why it runs again.
    pub(crate) line: LogLine,
}

/// Asks `rerun` about each task recovery just marked `missing`; each it says runs again is
/// updated in `records` to what the backend is to write (`queued`, off its node, due then,
/// its error kept) and returned for the backend to write it.
pub(crate) fn requeue_missing(
    records: &mut [TaskRecord],
    rerun: Option<&Rerun>,
    now: DateTime<Utc>,
) -> Vec<Requeue> {
    let Some(rerun) = rerun else {
        return Vec::new();
    };
    let mut requeues = Vec::new();
    for record in records.iter_mut() {
        let Some((due, line)) = rerun(record, now) else {
            continue;
        };
        record.status = Status::Queued;
        record.run_at = due;
        record.finished_at = None;
        record.node = None;
        requeues.push(Requeue {
            id: record.id,
            due,
            line,
        });
    }
    requeues
}

/// The durable record of tasks, logs and nodes.
///
/// `Any` is a supertrait so that code which needs one backend in particular (launching inside
/// an app's PostgreSQL transaction) can tell which one a runtime has.
///
/// Every method is one lifecycle step and is atomic: it happens entirely or not at all, and
/// concurrent callers (other runtimes on the same database included) never see half of it.
#[async_trait]
pub trait Store: std::any::Any + Send + Sync + Debug + 'static {
    /// Records that `node` is alive. Called once when a runtime starts.
    async fn register_node(&self, node: &NodeInfo) -> Result<(), Error>;

    /// Refreshes `node`'s liveness at `now` and returns the kill requests recorded for tasks
    /// running on it. Fails with [`ErrorKind::NodeDead`](crate::ErrorKind::NodeDead), changing
    /// nothing, when `node` is no longer registered (another node declared it dead).
    async fn heartbeat(&self, node: NodeId, now: DateTime<Utc>) -> Result<Vec<KillRequest>, Error>;

    /// Removes `node`, and frees the shared-state locks still held on it. Called when a runtime
    /// has shut down cleanly.
    async fn deregister_node(&self, node: NodeId) -> Result<(), Error>;

    /// Finds nodes other than `me` that are dead (no heartbeat for `stale_after`, or, where the
    /// backend can tell sooner, whose process is gone), marks every task still `running` on
    /// them `missing` (clearing `waiting_for`), removes the nodes, and returns the tasks it
    /// marked. On the first call through a store handle, whenever a node died, and at least
    /// once every half `stale_after` otherwise, tasks `running` on no registered node are
    /// marked too (so no task reads `running` without a live owner for longer than `stale_after`). A live node's
    /// tasks are never touched.
    ///
    /// With `rerun`, each such task it says to run again is queued instead, in the same step,
    /// off any node, due when `rerun` says, its error (kind `missing`) kept and the log line it
    /// gives added: nobody ever reads it `missing`. Returned with the rest, `queued`.
    async fn recover(
        &self,
        me: NodeId,
        now: DateTime<Utc>,
        stale_after: Duration,
        rerun: Option<Rerun>,
    ) -> Result<Vec<TaskRecord>, Error>;

    /// Inserts a new task. `task.status` is `queued`, or `running` when the launching node
    /// claims it at once (then `task.node` is that node and `started_at` is set). A `running`
    /// task goes in only while `task.node` is registered: otherwise this fails with
    /// [`ErrorKind::NodeDead`](crate::ErrorKind::NodeDead) and inserts nothing, and the check
    /// and the insert are one step against [`Store::recover`] on any handle.
    async fn launch(&self, task: &TaskRecord) -> Result<(), Error>;

    /// [`Store::launch`], unless a task with the same `name` and `key` (`task.key` is set) is
    /// `queued` or `running`: then nothing is inserted and that task is returned. Atomic across
    /// every handle on the database: of concurrent calls for one name and key, at most one
    /// inserts while another such task is live. A `running` task is fenced as in
    /// [`Store::launch`].
    async fn launch_unique(&self, task: &TaskRecord) -> Result<Option<TaskRecord>, Error>;

    /// Claims up to `limit` queued tasks whose `run_at` is due at `now` and whose name is in
    /// `names`, highest priority first and then oldest first, for `node`: each becomes
    /// `running`, its `attempt` goes up by one and `started_at` is `now`. No task is ever
    /// claimed twice. Fails with [`ErrorKind::NodeDead`](crate::ErrorKind::NodeDead), claiming
    /// nothing, when `node` is not registered; the check and the claim are one step against
    /// [`Store::recover`] on any handle, so a node declared dead never claims a task.
    async fn claim(
        &self,
        node: NodeId,
        names: &[String],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, Error>;

    /// [`Store::claim`] for one task type with a concurrency limit: claims at most `limit`, and
    /// never so many that more than `max_running` tasks named `name` would be `running` on all
    /// nodes together, not counting those that wait for a signal (`waiting_for` set), which
    /// hold no place. The count and the claim are one step across every handle. Fenced like
    /// [`Store::claim`].
    async fn claim_limited(
        &self,
        node: NodeId,
        name: &str,
        now: DateTime<Utc>,
        limit: usize,
        max_running: usize,
    ) -> Result<Vec<TaskRecord>, Error>;

    /// The earliest `run_at` among the queued tasks named in `names` that were launched (or
    /// queued again: a retry, recovery) to run later than they were launched
    /// (`run_at > launched_at`): when the claimer must wake for a task nobody will wake it
    /// for. Tasks due at launch are not looked at (their launch wakes the claimer, and a freed
    /// place wakes it for those a limit holds back), so a backlog of them costs this nothing.
    async fn next_run_at(&self, names: &[String]) -> Result<Option<DateTime<Utc>>, Error>;

    /// Saves state writes and log lines of tasks running on `node`. Writes about a task that is
    /// no longer running on `node` are dropped, its log lines included: it ended (its final
    /// state was saved by `finish`), or another node declared `node` dead and its record is
    /// final. A node that lost a task can no longer change it.
    async fn save(&self, node: NodeId, batch: Vec<(TaskId, Pending)>) -> Result<(), Error>;

    /// Ends task `id`, running on `node`, as `finish` says (or, with `finish.retry_at`, queues
    /// it again, off its node, due then, with its error kept). Either way the task no longer
    /// waits for a signal (`waiting_for` is cleared). Returns false and changes
    /// nothing, its log lines included, if the task is no longer running on `node`, for
    /// instance because another node declared `node` dead and marked it missing.
    async fn finish(&self, id: TaskId, node: NodeId, finish: Finish) -> Result<bool, Error>;

    /// Saves `checkpoint` (JSON text) as the last checkpoint of task `id`, running on `node`,
    /// saved at `now`: the record's `checkpoint` and `checkpoint_at` change, nothing else about
    /// the task does (its state is not touched). In the same step every signal the task has
    /// received and not yet settled is marked settled: the attempt got past it, so a later
    /// attempt does not receive it again. Durable when it returns (not batched like
    /// [`Store::save`]).
    ///
    /// Returns false and changes nothing if the task is not `running` on `node` (it ended, was
    /// queued again, or another node took it over). Fails with
    /// [`ErrorKind::NodeDead`](crate::ErrorKind::NodeDead), changing nothing, when `node` is not
    /// registered; the check and the write are one step against [`Store::recover`] on any
    /// handle, so a node declared dead never writes a checkpoint. A checkpoint is kept through
    /// every requeue (a retry, recovery's rerun) and returned by every claim.
    async fn save_checkpoint(
        &self,
        id: TaskId,
        node: NodeId,
        checkpoint: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Kills task `id`: a queued task ends `killed` at once; for a running one the request is
    /// recorded for its node (see [`Store::heartbeat`]).
    async fn kill(
        &self,
        id: TaskId,
        grace: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Result<KillOutcome, Error>;

    /// Task `id`, or `None` if there is no such task.
    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>, Error>;

    /// Tasks matching `filter`, newest first.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<TaskRecord>, Error>;

    /// Up to `limit` live children (queued or running) that their parent's end says to stop,
    /// oldest first: every child of a parent that was killed, and the children not `detached`
    /// of a parent that completed, failed or went missing, or that is gone from the store (it
    /// was purged, so it had ended). A parent queued again for another attempt has not ended:
    /// its children are left for the new attempt. What the runtime's sweep kills, so that a
    /// node that died between a parent's end and the kill of its children leaves no orphan.
    ///
    /// A read: concurrent callers may get the same ids (the kill that follows is idempotent).
    /// It reads the live children only (a partial index), so its cost grows with them, not
    /// with the history or the queue.
    async fn children_to_stop(&self, limit: usize) -> Result<Vec<TaskId>, Error>;

    /// Up to `limit` log lines of task `id` with `seq > after`, in order.
    async fn logs(&self, id: TaskId, after: u64, limit: usize) -> Result<Vec<LogLine>, Error>;

    /// Deletes up to `limit` of the finished tasks `purge` selects, oldest first, with their
    /// log lines and signals, and returns how many. One short step, whatever the store holds: callers
    /// repeat it until it returns less than `limit`, so writes made between the steps (launches)
    /// never wait behind a large delete. Tasks a step deletes leave [`Store::counts`] in the
    /// same step.
    async fn purge(&self, purge: &Purge, limit: usize) -> Result<u64, Error>;

    /// How many tasks [`Store::purge`] would delete with `purge` (repeated until done), now.
    async fn purge_count(&self, purge: &Purge) -> Result<u64, Error>;

    /// How many tasks match `filter` (`limit` ignored).
    async fn count(&self, filter: &ListFilter) -> Result<u64, Error>;

    /// How many tasks there are of each task type and status, sorted by name then status,
    /// without the zeros. Exact, and as cheap with ten million tasks as with none: the backends
    /// keep the counts up to date in the same step as every write that launches, moves or
    /// deletes a task, instead of counting the tasks.
    async fn counts(&self) -> Result<Vec<(String, Status, u64)>, Error>;

    /// Takes this node's turn at periodic work `job` shared by every node on the database
    /// (retention, for one): true, and the job's next turn set to `next`, if the job is due at
    /// `now` (it has never run, or its next turn has come); false otherwise. Of any number of
    /// concurrent calls for one turn, on any handles, exactly one gets true.
    async fn take_turn(
        &self,
        job: &str,
        now: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Housekeeping a backend does on each heartbeat of each node (folding its count deltas,
    /// giving freed space back to the file system). Nothing by default.
    async fn tidy(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Stores `schedule`, declared at `now`: a new one starts unpaused with `last_tick_at` at
    /// `now`, so its first launch is its first tick after `now`; an existing one of that name
    /// takes the new cron, task, args and options and keeps whether it is paused and what it
    /// launched, and a changed cron expression moves `last_tick_at` up to `now` (ticks of the
    /// new expression that passed before the change are not launched).
    async fn put_schedule(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<ScheduleRecord, Error>;

    /// Every schedule, by name (`next_tick_at` is left `None`: the runtime fills it in).
    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, Error>;

    /// Pauses (or, with `paused` false, resumes) schedule `name`; `None` if there is none. A
    /// resume moves `last_tick_at` up to `now`, so no tick that passed while it was paused
    /// launches later, whichever node's cron loop gets there last.
    async fn pause_schedule(
        &self,
        name: &str,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<ScheduleRecord>, Error>;

    /// Deletes schedule `name`; false if there was none. Tasks it launched stay.
    async fn delete_schedule(&self, name: &str) -> Result<bool, Error>;

    /// Launches `task` (queued) for tick `tick` of schedule `name`, if the schedule exists, is
    /// not paused, and its `last_tick_at` is before `tick`; records the tick and the task in
    /// the same step. Of any number of calls for one tick, on any handles, at most one gets
    /// past the check: a tick launches exactly once. With `unique`, a queued or running task
    /// of the same name and `task.key` makes it record the tick and insert nothing.
    async fn fire_schedule(
        &self,
        name: &str,
        tick: DateTime<Utc>,
        task: &TaskRecord,
        unique: bool,
    ) -> Result<Fired, Error>;

    /// Shared document `name`, or `None` if there is none. A document that a lock created and
    /// nobody has written yet is returned with version 0 and value `null`.
    async fn shared_get(&self, name: &str) -> Result<Option<SharedRecord>, Error>;

    /// Every shared document, sorted by name.
    async fn shared_list(&self) -> Result<Vec<SharedRecord>, Error>;

    /// Takes the lock on shared document `name` for `token`, held by `holder` on `node` since
    /// `now`, if nobody holds it, creating the document (value `null`, version 0) if there is
    /// none; returns the document as it is then, its latest value. `None`, changing nothing, if
    /// the lock is held. Atomic across every handle on the database: of concurrent calls for one
    /// name, at most one gets the lock until it is released.
    async fn shared_lock(
        &self,
        name: &str,
        token: Uuid,
        node: NodeId,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SharedRecord>, Error>;

    /// Releases the lock `token` holds on shared document `name`. With `value` (JSON text) it
    /// first writes it, in the same step: the version goes up by one and `updated_at` is `now`;
    /// without, the document is left as it was. Returns the document after; `None`, changing
    /// nothing, if `token` does not hold the lock (recovery freed it because its node was
    /// declared dead, or it was released already).
    async fn shared_unlock(
        &self,
        name: &str,
        token: Uuid,
        value: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<SharedRecord>, Error>;

    /// Adds `rows`, what `node` counted (see [`crate::StatsRow`]), to the stats, and deletes
    /// the rows of every node for minutes before `expire_before`, in one step. Rows are only
    /// ever added: a row for a minute, node and task type already there is kept beside the
    /// new one, and both count when read.
    async fn record_stats(
        &self,
        node: NodeId,
        rows: Vec<StatsRow>,
        expire_before: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// The stats of every minute from the one that holds `since` on, merged across nodes as
    /// [`StatsRow::merge`] does: one row per minute and task type, sorted by minute, then
    /// name. What it reads grows with the minutes, nodes and task types, not with the tasks.
    async fn stats_since(&self, since: DateTime<Utc>) -> Result<Vec<StatsRow>, Error>;
    /// Pauses task type `name` on every node, at `now`: from the moment this returns no
    /// [`Store::claim`] or [`Store::claim_limited`] on any handle takes a queued task named
    /// `name`, until [`Store::resume_task_type`]. Launches still go in. Pausing a paused type
    /// changes nothing and returns it as it was (its first `paused_at`).
    async fn pause_task_type(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<PausedTaskType, Error>;

    /// Resumes task type `name`: its queued tasks are claimed again. False if it was not
    /// paused.
    async fn resume_task_type(&self, name: &str) -> Result<bool, Error>;

    /// Every paused task type, sorted by name.
    async fn paused_task_types(&self) -> Result<Vec<PausedTaskType>, Error>;

    /// Stores `report` as `node`'s latest (read back by [`Store::nodes`]). Nothing happens
    /// for a node that is not registered: its heartbeat tells it so.
    async fn report_node(&self, node: NodeId, report: &NodeReport) -> Result<(), Error>;

    /// Every registered node with its latest heartbeat and report, oldest first. A node that
    /// died stays here until recovery removes it.
    async fn nodes(&self) -> Result<Vec<NodeRecord>, Error>;

    /// When a kill of running task `id` was asked, and the grace period asked for (`None`:
    /// the runtime's default), while the request stands; `None` if the task is not running
    /// or nobody asked. A second kill keeps the first time.
    async fn kill_asked(
        &self,
        id: TaskId,
    ) -> Result<Option<(DateTime<Utc>, Option<Duration>)>, Error>;

    /// Records `action` (a bulk action that is starting, `running` on `action.node`).
    async fn action_insert(&self, action: &ActionRecord) -> Result<(), Error>;

    /// Saves the progress of `action` (`done`, `failed`, `updated_at`, `error`) and, once it
    /// has ended, its `status` and `ended_at`. Only an action still `running` changes: a
    /// record that ended stays as it ended.
    async fn action_update(&self, action: &ActionRecord) -> Result<(), Error>;

    /// Action `id`, or `None` if there is none. An action still `running` on a node that is
    /// no longer registered reads `failed`, interrupted (see `ActionRecord::orphaned`): no
    /// reader ever sees an action running without a live node to run it.
    async fn action_get(&self, id: ActionId) -> Result<Option<ActionRecord>, Error>;

    /// Up to `limit` actions older than `before` (all, without), newest first, read as
    /// [`Store::action_get`] reads one.
    async fn actions(
        &self,
        before: Option<ActionId>,
        limit: usize,
    ) -> Result<Vec<ActionRecord>, Error>;

    /// Sends signal `name` with `payload` (JSON text) to task `id` at `now`, from `sent_by`:
    /// kept until the task receives it ([`Store::signal_receive`]). A queued or running task
    /// gets it ([`SignalSent::Sent`], with its record); a task that has ended gets nothing
    /// ([`SignalSent::Ended`], with the task's record); an unknown id is
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound). The check and the insert are one
    /// step against the task's finish: a signal is never kept for a task that had ended.
    async fn signal_send(
        &self,
        id: TaskId,
        name: &str,
        payload: String,
        sent_by: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<SignalSent, Error>;

    /// Receives, for attempt `attempt` of task `id` running on `node`, the oldest signal named
    /// `name` that attempt may receive: one no attempt has received, or one an earlier attempt
    /// received and did not settle. Records `received_attempt` (`attempt`) and `received_at`
    /// (`now`) in the same step, and returns it; `None` when there is none. Fenced: nothing is
    /// received (`None`) unless the task is `running` on `node`.
    async fn signal_receive(
        &self,
        id: TaskId,
        node: NodeId,
        attempt: u32,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SignalRecord>, Error>;

    /// Marks task `id`, running on `node`, as waiting for signal `name` until `until` (`None`:
    /// no timeout): its `waiting_for` and `waiting_until` are set, and from then on it does
    /// not count against its type's concurrency limit ([`Store::claim_limited`]). Fenced: a
    /// task not running on `node` is left as it is.
    async fn signal_wait(
        &self,
        id: TaskId,
        node: NodeId,
        name: &str,
        until: Option<DateTime<Utc>>,
    ) -> Result<(), Error>;

    /// Ends the wait of task `id` (of type `name`), running on `node`, if its type's limit
    /// admits one more: clears `waiting_for` and `waiting_until` and returns true when
    /// `max_running` is `None` or fewer than `max_running` tasks named `name` are running and
    /// not waiting, on all nodes. False, changing nothing, when the limit is reached: the task
    /// waits for one to end. The count and the write are one step against every claim of the
    /// type, as in [`Store::claim_limited`]. A task not running on `node` is left as it is
    /// (true: it has nothing to wait for here).
    async fn signal_resume(
        &self,
        id: TaskId,
        node: NodeId,
        name: &str,
        max_running: Option<usize>,
    ) -> Result<bool, Error>;

    /// Up to `limit` of the signals sent to task `id`, oldest first. Deleted with their task by
    /// [`Store::purge`].
    async fn signals(&self, id: TaskId, limit: usize) -> Result<Vec<SignalRecord>, Error>;

    /// Up to `limit` of the tasks named `name` that hold a place under its concurrency limit
    /// (running and not waiting for a signal), oldest first: what [`Store::claim_limited`]
    /// counts, for the waiting reason that names them.
    async fn limit_holders(&self, name: &str, limit: usize) -> Result<Vec<TaskId>, Error>;

    /// [`Store::claim`] for one task type with a limit per concurrency key
    /// ([`TaskRecord::concurrency_key`]): claims at most `limit` due tasks named `name` for
    /// `node`, never so many that more than `per_key` tasks of one key, or (with
    /// `max_running`) more than `max_running` tasks of the type, would hold a place (running,
    /// not waiting for a signal) on all nodes together. Keys take turns: the keys with queued
    /// tasks and room are served least recently served first (never served first of all), each
    /// key its oldest due tasks by priority, the room shared evenly between them; every key a
    /// claim looks at counts as served then. A claim reads one row per key with work and one
    /// index range per key it serves, never the backlog. The counts, the claim and the turns
    /// are one step across every handle; fenced like [`Store::claim`]. A paused type claims
    /// nothing.
    async fn claim_keyed(
        &self,
        node: NodeId,
        name: &str,
        now: DateTime<Utc>,
        limit: usize,
        per_key: usize,
        max_running: Option<usize>,
    ) -> Result<Vec<TaskRecord>, Error>;

    /// Up to `limit` of the concurrency keys of task type `name` that have tasks queued or
    /// holding a place, with those counts: most running first, then most queued, then by key.
    /// Exact (the counts change in the same step as the tasks), and read from one row per key
    /// with work, however many tasks are queued.
    async fn concurrency_keys(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<crate::KeyCount>, Error>;

    /// Up to `limit` of the tasks named `name` with concurrency key `key` that hold a place
    /// (running, not waiting for a signal), oldest first: what [`Store::claim_keyed`] counts
    /// for the key, for the waiting reason that names them.
    async fn key_holders(&self, name: &str, key: &str, limit: usize) -> Result<Vec<TaskId>, Error>;

    /// [`Store::signal_resume`] for a task of a type with a per-key limit: the wait ends only
    /// if fewer than `per_key` tasks of the task's key `key`, and (with `max_running`) fewer
    /// than `max_running` of the type, hold a place. The counts and the write are one step
    /// against every [`Store::claim_keyed`] of the type.
    async fn signal_resume_keyed(
        &self,
        id: TaskId,
        node: NodeId,
        name: &str,
        key: &str,
        per_key: usize,
        max_running: Option<usize>,
    ) -> Result<bool, Error>;

    /// Sends `notices` from node `from`, in order, to the other nodes on this database that
    /// [`Store::listen`]. Best effort: a notice may be lost, so nothing may depend on it for
    /// correctness; a backend may also drop notices while it knows no other node is there to
    /// hear them. The default sends nothing, for stores only one node ever uses.
    async fn notify(&self, from: NodeId, notices: Vec<Notice>) -> Result<(), Error> {
        let _ = (from, notices);
        Ok(())
    }

    /// Starts receiving, for node `me`, the notices other nodes send on this database (and
    /// those sent on behalf of no node, such as a launch inside an app's transaction), in the
    /// order each sender sent them, with a [`Notice::Reconnected`] wherever some may have been
    /// lost. `None` when this store has no way to receive any (the default).
    async fn listen(&self, me: NodeId) -> Result<Option<mpsc::UnboundedReceiver<Notice>>, Error> {
        let _ = me;
        Ok(None)
    }

    /// Defines limiter `name` as `limit`, at `now`, and returns it with the definition it
    /// replaced (`None` for a new one). A new limiter's bucket starts full (`burst` tokens);
    /// a redefined one keeps its tokens, down to the new burst (a new bucket starts full),
    /// and its holds. The last definition wins.
    async fn limiter_put(
        &self,
        name: &str,
        limit: &Limit,
        now: DateTime<Utc>,
    ) -> Result<(LimiterRecord, Option<Limit>), Error>;

    /// Deletes limiter `name` and its holds; false if there was none.
    async fn limiter_delete(&self, name: &str) -> Result<bool, Error>;

    /// Every limiter, by name, with its tokens refilled up to the store's time and its live
    /// holds (of registered nodes, not expired), oldest first.
    async fn limiters(&self, now: DateTime<Utc>) -> Result<Vec<LimiterRecord>, Error>;

    /// One try at limiter `name`: when it has a free hold (or no `max_holders`) and a whole
    /// token, takes the token and, with `max_holders`, the hold `hold` asks for
    /// ([`Acquire::Taken`]); otherwise takes nothing and says why ([`Acquire::Full`] before
    /// [`Acquire::NoToken`], which says when the next token is due). `None` when no limiter
    /// has that name.
    ///
    /// The look and the take are one step across every handle on the database: of concurrent
    /// tries, no more get through than the bucket and the holds allow. The bucket is refilled
    /// from its stored last refill time by the store's clock: `now` on SQLite (every node on
    /// a file is on one machine), the database server's clock on PostgreSQL (`now` unused),
    /// so nodes whose clocks disagree still agree on the budget. Holds of nodes that are not
    /// registered, and expired holds, are not counted (and are deleted in the same step).
    /// Fails with [`ErrorKind::NodeDead`](crate::ErrorKind::NodeDead), taking nothing, when a
    /// hold is asked for on a limiter with `max_holders` and `hold.node` is not registered.
    async fn limiter_acquire(
        &self,
        name: &str,
        hold: &HoldRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<Acquire>, Error>;

    /// Releases hold `hold` on limiter `name`; false if it was not held (released already,
    /// expired, freed with its node, or the limiter is gone).
    async fn limiter_release(&self, name: &str, hold: Uuid) -> Result<bool, Error>;

    /// Puts task `id`, running on `node`, back in the queue without counting the attempt:
    /// `queued`, off its node, due at `back_off.run_at`, its `attempt` one lower (the claim
    /// that started this attempt counted it), its state saved, its `error` set to
    /// `back_off.error`, its checkpoint kept, no longer waiting for a signal, and the signals
    /// this attempt received and did not settle received again by the next. Returns false and
    /// changes nothing, its log lines included, if the task is no longer running on `node`
    /// (fenced as [`Store::finish`] is).
    async fn back_off(&self, id: TaskId, node: NodeId, back_off: BackOff) -> Result<bool, Error>;
}
