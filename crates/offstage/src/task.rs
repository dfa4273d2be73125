//! The **task**: one launch of a task type, and the handle to it.
//!
//! [`TaskRecord`] is the durable record (every field the store keeps); [`Task`] is the
//! read-only handle Anvil users know: it answers `status`, `state`, `return_value`, `error`,
//! `is_running`, `is_completed`, can `kill` and `wait`, and streams the task's events. A handle
//! never writes the task's state: only the task's own [`crate::Context`] can.
//!
//! ```no_run
//! # async fn demo(rt: offstage::Runtime) -> Result<(), offstage::Error> {
//! let task = rt.launch_json("demo.count", serde_json::json!({"to": 3})).await?;
//! println!("{} is {}", task.id(), task.status().await?);
//! let record = task.wait().await?;
//! assert_eq!(record.termination_status(), Some(offstage::Status::Completed));
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, TaskError};
use crate::event::Subscription;
use crate::id::{NodeId, TaskId};
use crate::runtime::Inner;
use crate::status::Status;

/// Everything the store keeps about one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskRecord {
    /// Time-ordered unique id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: TaskId,
    /// The task type's name.
    pub name: String,
    /// The args it was launched with, as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub args: Value,
    /// Where it is in its life.
    pub status: Status,
    /// The state the task last wrote (`{}` until it writes one).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub state: Value,
    /// What the task returned, once it completed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub return_value: Option<Value>,
    /// How it failed, was killed or went missing.
    pub error: Option<TaskError>,
    /// When it was launched.
    pub launched_at: DateTime<Utc>,
    /// When it may start (equal to `launched_at` unless it was delayed).
    pub run_at: DateTime<Utc>,
    /// When its latest attempt started running.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached its terminal status.
    pub finished_at: Option<DateTime<Utc>>,
    /// How many times it has started running (0 while first queued).
    pub attempt: u32,
    /// Higher runs first among queued tasks.
    pub priority: i32,
    /// The key it was launched with, for lookup (and, later, uniqueness).
    pub key: Option<String>,
    /// Who launched it, as the launcher chose to name them.
    pub owner: Option<String>,
    /// Its timeout, if it has one: it fails (error kind `timeout`) if it runs longer. On the
    /// wire `timeout_s`, in seconds, like a launch's.
    #[serde(rename = "timeout_s", default, with = "optional_seconds")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub timeout: Option<Duration>,
    /// True when it runs in a worker process of its own (its task type asked for that, or its
    /// launch did).
    #[serde(default)]
    pub isolated: bool,
    /// The node running (or that last ran) it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub node: Option<NodeId>,
    /// The task this one reruns: it was launched again from that one, with the same args or
    /// edited ones ([`crate::Runtime::rerun`]). `None` for a task launched afresh.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub rerun_of: Option<TaskId>,
    /// The task that launched this one from its context ([`crate::Context::launch`]): this is
    /// its child. `None` for a task launched from anywhere else.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub parent: Option<TaskId>,
    /// True for a child left running when its parent ends (completed, failed or missing); a
    /// child that is not detached is killed then. A kill of the parent kills every child.
    #[serde(default)]
    pub detached: bool,
    /// The last checkpoint the task saved ([`crate::Context::save_checkpoint`]), any JSON
    /// value: what it reads back ([`crate::Context::checkpoint`]) when it runs again (a retry,
    /// a run after its node died). `None` until it saves one, except for a rerun from its
    /// checkpoint, which starts with the original's. Not the state: neither writes the other.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub checkpoint: Option<Value>,
    /// When that checkpoint was saved (for a rerun from its checkpoint, when the original saved
    /// it).
    #[serde(default)]
    pub checkpoint_at: Option<DateTime<Utc>>,
    /// While the task (running) waits for a signal: the signal's name. It holds no concurrency
    /// slot meanwhile.
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// When that wait times out, if it does.
    #[serde(default)]
    pub waiting_until: Option<DateTime<Utc>>,
    /// The concurrency key it counts under, for a task type with a per-key limit
    /// ([`crate::TaskTypeOptions::concurrency_per_key`]): resolved once at launch (the launch's
    /// own `concurrency_key`, else the owner or the args field the type names) and never
    /// changed. At most that many tasks of one key run at once, and keys take turns.
    #[serde(default)]
    pub concurrency_key: Option<String>,
    /// The W3C `traceparent` current when the task was launched (see [`crate::TraceContext`]):
    /// the launching request's, the launching task's, or given with
    /// [`crate::Launch::trace_parent`]; with the `otel` feature, the span of the launch
    /// itself. Each attempt of the task is a span in that trace. `None` when the launch had
    /// no trace context.
    #[serde(default)]
    pub traceparent: Option<String>,
    /// The W3C `tracestate` that came with `traceparent`, if any.
    #[serde(default)]
    pub tracestate: Option<String>,
}

impl TaskRecord {
    /// `None` while queued or running, then the terminal status (Anvil's `termination_status`).
    pub fn termination_status(&self) -> Option<Status> {
        self.status.is_terminal().then_some(self.status)
    }

    /// True while the task is queued or running.
    pub fn is_running(&self) -> bool {
        !self.status.is_terminal()
    }

    /// Anvil's `is_completed`: `Ok(true)` once completed, `Ok(false)` while queued or running,
    /// and an error (carrying the task's error) if it failed, was killed or went missing.
    pub fn is_completed(&self) -> Result<bool, Error> {
        match self.status {
            Status::Queued | Status::Running => Ok(false),
            Status::Completed => Ok(true),
            status => Err(Error::from_task_end(status, self.id, self.error.clone())),
        }
    }

    /// The trace id of the trace context it was launched in (32 lowercase hex digits), read
    /// from `traceparent`: what a tracing backend finds the launch and its attempts by.
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent
            .as_deref()
            .and_then(crate::trace::trace_id_of)
    }

    /// How long it ran (or has been running, as of `now`).
    pub fn duration(&self, now: DateTime<Utc>) -> Option<Duration> {
        let started = self.started_at?;
        let end = self.finished_at.unwrap_or(now);
        (end - started).to_std().ok()
    }
}

/// Durations on the wire: a number of seconds, fractions allowed (`1.5`), as `timeout_s` on a
/// launch, a schedule's options and a task record. For `#[serde(with = "optional_seconds")]`
/// on an `Option<Duration>`.
pub(crate) mod optional_seconds {
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|seconds| {
                Duration::try_from_secs_f64(seconds).map_err(|_| {
                    D::Error::custom(format!(
                        "{seconds} is not a number of seconds: give one from 0"
                    ))
                })
            })
            .transpose()
    }
}

/// A duration as the stores keep it: whole milliseconds, at most `i64::MAX`.
pub(crate) fn whole_millis(duration: Duration) -> u64 {
    duration.as_millis().min(i64::MAX as u128) as u64
}

/// A duration the stores kept as milliseconds.
pub(crate) fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// Which tasks [`crate::Runtime::list`] returns: newest first, one page at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    /// Only tasks of this task type.
    pub name: Option<String>,
    /// Only tasks with this status.
    pub status: Option<Status>,
    /// Only tasks launched with this owner.
    pub owner: Option<String>,
    /// Only tasks launched with this key.
    pub key: Option<String>,
    /// Only reruns of this task ([`TaskRecord::rerun_of`]).
    #[serde(default)]
    pub rerun_of: Option<TaskId>,
    /// Only children of this task ([`TaskRecord::parent`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<TaskId>,
    /// Only tasks that have ended (`Some(true)`: completed, failed, killed or missing) or that
    /// have not (`Some(false)`: queued or running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<bool>,
    /// Only tasks launched at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_after: Option<DateTime<Utc>>,
    /// Only tasks launched before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_before: Option<DateTime<Utc>>,
    /// Only tasks older than this id: pass the last id of the previous page.
    pub before: Option<TaskId>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

impl ListFilter {
    /// The default page size.
    pub const DEFAULT_LIMIT: usize = 100;
    /// The largest page size.
    pub const MAX_LIMIT: usize = 1_000;

    /// Checks the text filters by the launch rules ([`crate::limits`]): a value no launch
    /// could have given is a mistake to report, not a query to send (PostgreSQL refuses a NUL
    /// in text outright).
    pub fn check(&self) -> Result<(), Error> {
        use crate::limits::{check_text, MAX_KEY_CHARS, MAX_NAME_CHARS, MAX_OWNER_CHARS};
        if let Some(name) = &self.name {
            check_text("task type name", name, MAX_NAME_CHARS)?;
        }
        if let Some(owner) = &self.owner {
            check_text("owner", owner, MAX_OWNER_CHARS)?;
        }
        if let Some(key) = &self.key {
            check_text("key", key, MAX_KEY_CHARS)?;
        }
        Ok(())
    }

    /// The page size to use, clamped to `1..=MAX_LIMIT`.
    pub fn effective_limit(&self) -> usize {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }

    /// True when the filter has no condition but the task type, the status and `finished`: the
    /// counts the stores keep with every write answer it without reading the tasks.
    pub(crate) fn by_type_and_status_only(&self) -> bool {
        self.owner.is_none()
            && self.key.is_none()
            && self.rerun_of.is_none()
            && self.parent.is_none()
            && self.launched_after.is_none()
            && self.launched_before.is_none()
            && self.before.is_none()
    }

    /// True when `task` passes every condition of this filter (`limit` aside): what the store's
    /// query selects, for records already in hand.
    pub fn matches(&self, task: &TaskRecord) -> bool {
        fn passes<T: PartialEq + ?Sized>(wanted: Option<&T>, value: Option<&T>) -> bool {
            wanted.is_none_or(|wanted| value == Some(wanted))
        }
        passes(self.name.as_deref(), Some(task.name.as_str()))
            && passes(self.status.as_ref(), Some(&task.status))
            && passes(self.owner.as_deref(), task.owner.as_deref())
            && passes(self.key.as_deref(), task.key.as_deref())
            && passes(self.rerun_of.as_ref(), task.rerun_of.as_ref())
            && passes(self.parent.as_ref(), task.parent.as_ref())
            && self
                .finished
                .is_none_or(|finished| finished == task.status.is_terminal())
            && self.launched_after.is_none_or(|at| task.launched_at >= at)
            && self.launched_before.is_none_or(|at| task.launched_at < at)
            && self.before.is_none_or(|before| task.id < before)
    }
}

/// A read-only handle to one task, on this node or any other.
///
/// Cloning is cheap. Every accessor reads the latest value: from memory when the task runs on
/// this node, from the store otherwise.
///
/// Only the task itself writes its state, through its [`crate::Context`]; a handle cannot:
///
/// ```compile_fail
/// # async fn demo(task: offstage::Task) {
/// task.set_state(&serde_json::json!({ "done": 1 })); // no such method on a handle
/// # }
/// ```
#[derive(Clone)]
pub struct Task {
    rt: Arc<Inner>,
    id: TaskId,
    /// The record as the launch or lookup that made this handle left it.
    snapshot: Arc<TaskRecord>,
    /// The event sequence number just before this handle's view of the task begins: before
    /// its `launched` event for a handle from a launch, "now" for one from `get`.
    since: u64,
    /// True when a launch with `on_conflict: existing` returned this live task instead of
    /// launching a new one.
    existing: bool,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("name", &self.snapshot.name)
            .finish()
    }
}

impl Task {
    /// A handle to the task `snapshot` is a record of, whose events it follows after `since`.
    pub(crate) fn new(
        rt: Arc<Inner>,
        snapshot: impl Into<Arc<TaskRecord>>,
        since: u64,
        existing: bool,
    ) -> Self {
        let snapshot = snapshot.into();
        Self {
            rt,
            id: snapshot.id,
            snapshot,
            since,
            existing,
        }
    }

    /// The task's record as the call that made this handle left it: as a launch wrote it
    /// (`queued`, or `running` if it started at once), as a launch with `on_conflict:
    /// existing` found it, or as [`crate::Runtime::get`] read it. No store read; for the
    /// record now, [`Task::record`].
    pub fn snapshot(&self) -> &TaskRecord {
        &self.snapshot
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task type's name.
    pub fn name(&self) -> &str {
        &self.snapshot.name
    }

    /// When it was launched (Anvil's `start_time`).
    pub fn launched_at(&self) -> DateTime<Utc> {
        self.snapshot.launched_at
    }

    /// The whole current record.
    pub async fn record(&self) -> Result<TaskRecord, Error> {
        self.rt.record(self.id).await
    }

    /// The current status, including `queued` and `running`.
    pub async fn status(&self) -> Result<Status, Error> {
        Ok(self.record().await?.status)
    }

    /// `None` while queued or running, then how it ended.
    pub async fn termination_status(&self) -> Result<Option<Status>, Error> {
        Ok(self.record().await?.termination_status())
    }

    /// The state the task last wrote (`{}` before its first write). Live on this node: this is
    /// the latest write, not the last one saved.
    pub async fn state(&self) -> Result<Value, Error> {
        Ok(self.record().await?.state)
    }

    /// The state, deserialized into `T`.
    pub async fn state_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        let state = self.state().await?;
        serde_json::from_value(state).map_err(|e| {
            Error::new(
                crate::ErrorKind::InvalidArgument,
                format!(
                    "the state of task {} does not fit the requested type: {e}",
                    self.id
                ),
            )
        })
    }

    /// What the task returned, once it completed.
    pub async fn return_value(&self) -> Result<Option<Value>, Error> {
        Ok(self.record().await?.return_value)
    }

    /// How the task failed, was killed or went missing.
    pub async fn error(&self) -> Result<Option<TaskError>, Error> {
        Ok(self.record().await?.error)
    }

    /// True while queued or running.
    pub async fn is_running(&self) -> Result<bool, Error> {
        Ok(self.record().await?.is_running())
    }

    /// `Ok(true)` once completed, `Ok(false)` before, an error if it failed, was killed or went
    /// missing (as Anvil's `is_completed` raises).
    pub async fn is_completed(&self) -> Result<bool, Error> {
        self.record().await?.is_completed()
    }

    /// Sends signal `name` with `payload` to this task: kept until the task receives it with
    /// [`crate::Context::wait_signal`] (see [`crate::Runtime::signal`] for the errors).
    pub async fn signal(
        &self,
        name: &str,
        payload: &impl serde::Serialize,
    ) -> Result<crate::SignalRecord, Error> {
        let payload = crate::runtime::signals::to_json(name, payload)?;
        crate::runtime::signals::send(&self.rt, self.id, name, payload, None).await
    }

    /// Kills the task with the runtime's grace period and waits until it has ended. Returns the
    /// final record: `killed`, or whatever it reached first if it had already finished.
    pub async fn kill(&self) -> Result<TaskRecord, Error> {
        self.rt.kill(self.id, None).await
    }

    /// A guard that kills this task when it is dropped. Keep it with whatever the task belongs
    /// to, such as the response stream of the connection that started it, and the task is
    /// cancelled when that connection closes:
    ///
    /// ```no_run
    /// # async fn demo(rt: offstage::Runtime) -> Result<(), offstage::Error> {
    /// let task = rt.launch_json("reports.preview", serde_json::json!({})).await?;
    /// let guard = task.kill_on_drop(); // moved into the SSE stream; the client leaves, it drops
    /// # drop(guard);
    /// # Ok(()) }
    /// ```
    ///
    /// The kill takes the usual path (cancel, grace period, abort) on the runtime, after the
    /// guard is gone. [`KillOnDrop::disarm`] lets the task run on instead.
    pub fn kill_on_drop(&self) -> KillOnDrop {
        KillOnDrop {
            rt: Some(Arc::clone(&self.rt)),
            id: self.id,
        }
    }

    /// True when this handle came from a launch with `on_conflict: existing` that found this
    /// task live and launched nothing.
    pub fn is_existing(&self) -> bool {
        self.existing
    }

    /// [`Task::kill`] with its own grace period; zero aborts at once.
    pub async fn kill_with_grace(&self, grace: Duration) -> Result<TaskRecord, Error> {
        self.rt.kill(self.id, Some(grace)).await
    }

    /// Waits until the task reaches a terminal status and returns its final record.
    pub async fn wait(&self) -> Result<TaskRecord, Error> {
        self.rt.wait(self.id).await
    }

    /// This task's events, ending after its `finished` event. For a handle returned by a
    /// launch this starts with the `launched` event (replayed while it is still in the
    /// runtime's replay buffer); for one from [`crate::Runtime::get`], with the next event.
    pub fn events(&self) -> Subscription {
        self.rt.events.subscribe_task_since(self.id, self.since)
    }
}

/// Kills its task when dropped: see [`Task::kill_on_drop`].
#[must_use = "the task is killed as soon as the guard is dropped"]
pub struct KillOnDrop {
    rt: Option<Arc<Inner>>,
    id: TaskId,
}

impl fmt::Debug for KillOnDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KillOnDrop")
            .field("id", &self.id)
            .field("armed", &self.rt.is_some())
            .finish()
    }
}

impl KillOnDrop {
    /// The task it guards.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Lets the task run on: dropping the guard no longer kills it.
    pub fn disarm(mut self) {
        self.rt = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Some(rt) = self.rt.take() else { return };
        let id = self.id;
        // Drop cannot wait: the kill runs on the runtime. Outside one (the app is shutting
        // down), the runtime's own shutdown deals with the task.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(error) = rt.kill(id, None).await {
                    tracing::debug!(task = %id, %error, "kill on drop");
                }
            });
        }
    }
}
