//! Errors: [`Error`] is what Offstage's own calls return; [`TaskError`] is how a task failed.
//!
//! Every `Error` message says what went wrong *and* how to fix it, because most of them end up
//! in front of a person (an HTTP client, the CLI, a log).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of problem an [`Error`] is. Match on this, not on the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No task type of that name is registered. The message lists the registered names.
    UnknownTaskType,
    /// The args do not deserialize into the task type's args.
    InvalidArgs,
    /// No task has that id (it never existed, or it was purged).
    NotFound,
    /// The text is not a well-formed id.
    InvalidId,
    /// An argument to an Offstage call is out of range or malformed.
    InvalidArgument,
    /// A state write, or a shared document's value, is larger than the runtime's state cap.
    StateTooLarge,
    /// The task failed; [`Error::task_error`] has its error.
    TaskFailed,
    /// The task was killed.
    TaskKilled,
    /// The task went missing (its node died or shut down mid-run).
    TaskMissing,
    /// The runtime is shutting down and accepts no new work.
    ShuttingDown,
    /// The database was written by a newer Offstage than this one.
    SchemaTooNew,
    /// The database file is not an Offstage database or is damaged.
    Corrupt,
    /// The store failed (I/O, connection, SQL). The message has the cause.
    Store,
    /// The store cannot write because its disk is full (SQLite's `SQLITE_FULL`, or an I/O
    /// error while its filesystem has no space left; PostgreSQL's `53100 disk_full`). Nothing
    /// was written. Transient: the same call succeeds once space is freed, with no restart.
    StorageFull,
    /// A launch with a key met a live task with the same task type and key, and its
    /// `on_conflict` said to reject it (the message names that task); or a shared document
    /// stayed locked by another holder for longer than the caller would wait, or was not at
    /// the version the caller expected.
    Conflict,
    /// The lock on a shared document was taken away before its holder saved (its node was
    /// declared dead and recovery freed it); nothing was written.
    LockLost,
    /// A worker could not reach its server, or the connection ended. Worth retrying.
    Connection,
    /// A worker's server refused it (bad token, protocol error). Retrying will not help until
    /// the cause is fixed.
    Refused,
    /// The store refused a write on behalf of a node that is no longer registered: another node
    /// declared it dead (it was silent for longer than the node timeout, for instance because
    /// its process was paused) and marked its tasks `missing`. Such a node owns no task, so it
    /// may not claim, start, save or finish one. The runtime handles this by itself: it stops
    /// the tasks it was running and rejoins the cluster as a new node.
    NodeDead,
    /// [`crate::Context::wait_signal`] waited its whole timeout and no signal of that name came.
    /// The task goes on running and decides what that means (fail, remind someone, wait again).
    SignalTimeout,
    /// The task was asked to stop (killed, timed out, its node shutting down) while it waited
    /// in an Offstage call ([`crate::Context::wait_signal`]). Return it: the task ends as the
    /// stop says (`killed`, `failed` with kind `timeout`, `missing`).
    Cancelled,
}

/// An error from an Offstage call.
pub struct Error {
    kind: ErrorKind,
    message: String,
    task_error: Option<Box<TaskError>>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error of `kind` whose message is `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            task_error: None,
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub(crate) fn store(
        context: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::new(ErrorKind::Store, format!("{context}: {source}")).with_source(source)
    }

    /// The store's disk is full: `where_` says which (a path, a database), `source` what the
    /// store said.
    pub(crate) fn storage_full(where_: &str, source: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::StorageFull,
            format!(
                "the store cannot write: the disk holding {where_} is full ({source}). Nothing \
                 was written; free space there (purge finished tasks, or grow the disk) and \
                 retry: no restart is needed"
            ),
        )
    }

    pub(crate) fn not_found(id: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!(
                "no task has id {id}: check the id, or it may have been purged \
                 (list tasks to see the ids that exist)"
            ),
        )
    }

    /// The error of a task that ended badly, for `TaskFailed`, `TaskKilled` and `TaskMissing`.
    pub(crate) fn from_task_end(
        status: crate::Status,
        id: impl fmt::Display,
        error: Option<TaskError>,
    ) -> Self {
        let (kind, what) = match status {
            crate::Status::Killed => (ErrorKind::TaskKilled, "was killed"),
            crate::Status::Missing => (ErrorKind::TaskMissing, "went missing"),
            _ => (ErrorKind::TaskFailed, "failed"),
        };
        let detail = error.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
        Self {
            kind,
            message: format!("task {id} {what}{detail}"),
            task_error: error.map(Box::new),
            source: None,
        }
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The task's own error, when this error reports a task that failed, was killed or went
    /// missing.
    pub fn task_error(&self) -> Option<&TaskError> {
        self.task_error.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("task_error", &self.task_error)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// How a task failed: `{kind, message, detail}`, stored with the task as JSON.
///
/// Task functions return `Result<Output, TaskError>`. Any `std::error::Error` converts into a
/// `TaskError` of kind `error` with `?`, keeping its chain of causes in `detail`; build one with
/// [`TaskError::new`] to choose the kind (a short machine-readable word such as `bad_input`).
///
/// The runtime itself records these kinds: `panic`, `timeout`, `killed`, `cancelled`,
/// `interrupted`, `missing`, `invalid_args`, `output` (the return value would not serialize),
/// and for tasks that run in workers `worker_lost` (a remote worker went away),
/// `worker_crashed` (an isolated worker process died), `worker_spawn` (no worker process could
/// be started) and `aborted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskError {
    /// A short machine-readable word: `error`, `panic`, `timeout`, …
    pub kind: String,
    /// One line for people.
    pub message: String,
    /// Anything longer: a cause chain, a backtrace, a response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl TaskError {
    /// An error of the given kind and message.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            detail: None,
        }
    }

    /// The same error with `detail` attached.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// An error of kind `error` with the given message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::new("error", message.to_string())
    }

    /// The error a task returns when it stops because it was asked to (see
    /// [`crate::Context::check_cancelled`]).
    pub fn cancelled() -> Self {
        Self::new("cancelled", "the task was asked to stop")
    }

    /// What a task returns to go back to the queue for `delay` without counting the attempt
    /// (kind `backed_off`): the API it calls said to come back later (a 429). The task runs
    /// again after `delay`, by its retry policy's count the same attempt, its state and
    /// checkpoint kept. [`crate::Context::back_off`] makes one and logs it.
    ///
    /// ```
    /// # use offstage::{Context, TaskError};
    /// # async fn call(ctx: Context, _: ()) -> Result<(), TaskError> {
    /// # let status = 429;
    /// if status == 429 {
    ///     return Err(TaskError::back_off(std::time::Duration::from_secs(30)));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn back_off(delay: std::time::Duration) -> Self {
        Self::new(
            Self::BACKED_OFF,
            format!("backed off for {}s", delay.as_millis() as f64 / 1000.0),
        )
        .with_detail(serde_json::json!({ "delay_s": delay.as_secs_f64() }).to_string())
    }

    /// The kind of [`TaskError::back_off`].
    pub const BACKED_OFF: &'static str = "backed_off";

    /// The delay of a [`TaskError::back_off`]: `None` for any other error; `Some(Err)` for one
    /// of kind `backed_off` whose `detail` is not `{"delay_s": <seconds>}` with a number of
    /// seconds from 0 to a year (a worker in another language wrote it wrong).
    pub fn back_off_delay(&self) -> Option<Result<std::time::Duration, String>> {
        if self.kind != Self::BACKED_OFF {
            return None;
        }
        let seconds = self
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|d| d.get("delay_s").and_then(serde_json::Value::as_f64));
        Some(match seconds {
            Some(s) if (0.0..=31_536_000.0).contains(&s) => {
                Ok(std::time::Duration::from_secs_f64(s))
            }
            _ => Err(format!(
                "the task returned an error of kind `backed_off` whose detail is {:?}: a                  back-off's detail is {{\"delay_s\": <seconds, 0 to 31536000>}} (use                  TaskError::back_off, or ctx.back_off in Python)",
                self.detail.as_deref().unwrap_or("missing")
            )),
        })
    }

    /// The error of a task killed while it was still queued (kind `killed`): it never ran.
    /// Recorded by [`Store::kill`](crate::store::Store::kill).
    pub fn killed_before_start() -> Self {
        Self::new("killed", "killed before it started")
    }

    /// The error of a task whose node stopped while running it (kind `missing`), as recovery
    /// records it when the node's heartbeat went stale or, on SQLite, its process is gone.
    /// `host` and `pid` name that node's process, so an operator can look for what ended it.
    /// Recorded by [`Store::recover`](crate::store::Store::recover).
    pub fn node_stopped(host: &str, pid: u32) -> Self {
        Self::new(
            "missing",
            format!(
                "the node running this task (host {host}, pid {pid}) stopped without finishing it"
            ),
        )
    }

    /// [`TaskError::node_stopped`] where the only sign was the heartbeat (kind `missing`): the
    /// node was silent for the node timeout, which a frozen or overloaded process is too.
    pub fn node_stopped_heartbeating(host: &str, pid: u32) -> Self {
        Self::new(
            "missing",
            format!(
                "the node running this task (host {host}, pid {pid}) stopped heartbeating \
                 without finishing it"
            ),
        )
    }

    /// The error of a task `running` on a node that is not registered at all (kind
    /// `missing`): its row was removed by hand, or the node went on after it was declared
    /// dead. Recorded by the orphan sweep of [`Store::recover`](crate::store::Store::recover).
    pub fn node_unregistered() -> Self {
        Self::new(
            "missing",
            "the node running this task is no longer registered",
        )
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    fn from(error: E) -> Self {
        let mut chain = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        let task_error = TaskError::new("error", error.to_string());
        if chain.is_empty() {
            task_error
        } else {
            task_error.with_detail(format!("caused by: {}", chain.join("\ncaused by: ")))
        }
    }
}
