//! The **context**: what a running task holds.
//!
//! The runtime hands every task body a [`Context`]: the task's id, the only writer of its
//! state, its log, the signal that it has been asked to stop, and waits for named signals
//! ([`Context::wait_signal`]). There is no public way to
//! make one, so no code outside the task can write the task's state.
//!
//! ```
//! use offstage::{Context, TaskError};
//!
//! async fn count(ctx: Context, to: u64) -> Result<u64, TaskError> {
//!     for done in 1..=to {
//!         ctx.check_cancelled()?; // returns early if the task was killed
//!         ctx.set_state(&serde_json::json!({ "done": done, "total": to }))?;
//!         ctx.log(format!("counted {done}"));
//!     }
//!     Ok(to)
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind, TaskError};
use crate::id::TaskId;
use crate::log::LogLevel;
use crate::runtime::live::LiveTask;
use crate::worker::task::WorkerTask;
use tokio_util::sync::CancellationToken;

/// What a running task holds. Cheap to clone; every clone belongs to the same task.
///
/// A task body gets one as its first argument: it writes the task's state (the only writer
/// there is), its log, and learns that it was asked to stop.
///
/// ```
/// use std::time::Duration;
/// use offstage::{Context, TaskError};
///
/// async fn import(ctx: Context, files: Vec<String>) -> Result<usize, TaskError> {
///     ctx.set_state(&serde_json::json!({ "done": 0, "total": files.len() }))?;
///     for (done, file) in files.iter().enumerate() {
///         tokio::select! {
///             // A kill or timeout: stop here, leaving the state as it is.
///             () = ctx.cancelled() => return Err(TaskError::new("stopped", "asked to stop")),
///             () = tokio::time::sleep(Duration::from_millis(10)) => {}
///         }
///         ctx.log(format!("imported {file}"));
///         ctx.update_state(|state| state["done"] = serde_json::json!(done + 1))?;
///     }
///     Ok(files.len())
/// }
/// ```
#[derive(Clone)]
pub struct Context {
    backing: Backing,
}

/// Where the task runs: on the node that owns it, or in a worker that reports to one.
#[derive(Clone)]
enum Backing {
    Node(Arc<LiveTask>),
    Worker(Arc<WorkerTask>),
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("id", &self.id()).finish()
    }
}

impl Context {
    pub(crate) fn node(task: Arc<LiveTask>) -> Self {
        Self {
            backing: Backing::Node(task),
        }
    }

    pub(crate) fn worker(task: Arc<WorkerTask>) -> Self {
        Self {
            backing: Backing::Worker(task),
        }
    }

    /// The node's record of the task, when the task runs on its node.
    pub(crate) fn live(&self) -> Option<&Arc<LiveTask>> {
        match &self.backing {
            Backing::Node(task) => Some(task),
            Backing::Worker(_) => None,
        }
    }

    fn cancel(&self) -> &CancellationToken {
        match &self.backing {
            Backing::Node(task) => &task.cancel,
            Backing::Worker(task) => &task.cancel,
        }
    }

    /// This task's id.
    pub fn id(&self) -> TaskId {
        match &self.backing {
            Backing::Node(task) => task.id,
            Backing::Worker(task) => task.id,
        }
    }

    /// This task type's name.
    pub fn name(&self) -> &str {
        match &self.backing {
            Backing::Node(task) => &task.started.name,
            Backing::Worker(task) => &task.name,
        }
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        match &self.backing {
            Backing::Node(task) => task.started.attempt,
            Backing::Worker(task) => task.attempt,
        }
    }

    /// The owner the task was launched with.
    pub fn owner(&self) -> Option<&str> {
        match &self.backing {
            Backing::Node(task) => task.started.owner.as_deref(),
            Backing::Worker(task) => task.owner.as_deref(),
        }
    }

    /// The state this task last wrote.
    pub fn state(&self) -> Value {
        match &self.backing {
            Backing::Node(task) => Value::clone(&task.state()),
            Backing::Worker(task) => task.state(),
        }
    }

    /// Replaces this task's state. Every watcher gets the new state at once; the store gets it
    /// within the runtime's flush interval and always before the task's final status.
    ///
    /// Fails, leaving the state as it was, if the value does not serialize to JSON or is larger
    /// than the runtime's state cap.
    pub fn set_state(&self, state: &impl Serialize) -> Result<(), Error> {
        let value = serde_json::to_value(state).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("the state does not serialize to JSON: {e}"),
            )
        })?;
        self.set_state_value(value)
    }

    pub(crate) fn set_state_value(&self, value: Value) -> Result<(), Error> {
        let text = value.to_string();
        let cap = match &self.backing {
            Backing::Node(task) => task.rt.config.state_limit,
            Backing::Worker(task) => task.state_limit,
        };
        if text.len() > cap {
            let error = Error::new(
                ErrorKind::StateTooLarge,
                format!(
                    "the state of task {} would be {} bytes, over the cap of {cap} bytes: keep \
                     large data elsewhere (a table, a file) and put a reference in the state, or \
                     raise the cap with RuntimeBuilder::state_limit",
                    self.id(),
                    text.len()
                ),
            );
            // In a worker the refusal is also written to the task's log, as the node writes
            // it for a state it refuses: whoever watches the task sees why it stopped moving.
            if let Backing::Worker(task) = &self.backing {
                task.log(LogLevel::Warn, format!("state refused: {error}"));
            }
            return Err(error);
        }
        match &self.backing {
            Backing::Node(task) => task.set_state(value, text),
            Backing::Worker(task) => task.set_state(value),
        }
        Ok(())
    }

    /// Changes this task's state in place: `f` gets the current state to modify.
    pub fn update_state(&self, f: impl FnOnce(&mut Value)) -> Result<(), Error> {
        let mut state = self.state();
        f(&mut state);
        self.set_state_value(state)
    }

    /// Appends a line to this task's log at level `info`.
    pub fn log(&self, message: impl Into<String>) {
        self.log_at(LogLevel::Info, message);
    }

    /// Appends a line to this task's log at `level`.
    pub fn log_at(&self, level: LogLevel, message: impl Into<String>) {
        match &self.backing {
            Backing::Node(task) => task.append_log(level, message.into()),
            Backing::Worker(task) => task.log(level, message.into()),
        }
    }

    /// A handle to the shared document `name` ([`crate::Shared`]), whose locks name this task
    /// as their holder. A lock the task still holds when it ends (or is killed) is released
    /// without writing.
    ///
    /// Only for tasks that run on a node (in-process): a task in a worker (isolated or remote)
    /// gets an error, and reaches shared state through the node's HTTP API instead.
    pub fn shared(&self, name: &str) -> Result<crate::Shared, Error> {
        match &self.backing {
            Backing::Node(task) => crate::Shared::new(
                Arc::clone(&task.rt),
                name,
                format!("task {} ({})", task.id, task.started.name),
            ),
            Backing::Worker(task) => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "shared state is available to tasks that run on a node, and task {} runs in \
                     a worker (isolated or remote): run its task type in-process, or read and \
                     write `{name}` through the node's HTTP API (GET and PUT /api/shared/{name})",
                    task.id
                ),
            )),
        }
    }

    /// Waits for signal `name` ([`crate::SignalRecord`]) and returns its payload as a `T`. A
    /// signal of that name sent before the wait is received at once; signals are received
    /// oldest first, each once per attempt (and again by the next attempt if this one did not
    /// get past it: see [`crate::SignalRecord::settled`]).
    ///
    /// While it waits the task is `running` with `waiting_for` set, and it holds no slot: not
    /// this node's, and no place under its type's concurrency limit, so a type limited to 2
    /// can have any number of tasks waiting. Before the body goes on it takes a slot again,
    /// and waits for one if none is free.
    ///
    /// Errors: [`ErrorKind::SignalTimeout`] when `timeout` passes with no signal (the task
    /// goes on, and decides); [`ErrorKind::Cancelled`] when the task is killed, times out or
    /// is interrupted meanwhile (return it); [`ErrorKind::InvalidArgument`] for a bad name, or
    /// a payload that does not deserialize into `T` (that signal counts as received). Only for
    /// tasks that run on a node: a task in a worker gets an error.
    ///
    /// ```
    /// # use offstage::{Context, TaskError};
    /// # async fn deploy(ctx: Context, _: ()) -> Result<(), TaskError> {
    /// #[derive(serde::Deserialize)]
    /// struct Approval { approved: bool }
    /// let approval: Approval = ctx.wait_signal("approve", None).await?;
    /// if !approval.approved {
    ///     return Err(TaskError::new("refused", "the deploy was not approved"));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait_signal<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        timeout: Option<std::time::Duration>,
    ) -> Result<T, Error> {
        match &self.backing {
            Backing::Node(task) => {
                let payload = crate::runtime::signals::wait(task, name, timeout).await?;
                serde_json::from_value(payload).map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        format!(
                            "the payload of signal {name:?} does not fit the type task {} \
                             expects: {e}. It counts as received: wait again for the next one",
                            task.id
                        ),
                    )
                })
            }
            Backing::Worker(task) => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "signals are received by tasks that run on a node, and task {} runs in a \
                     worker (isolated or remote): run its task type in-process to wait for \
                     signal {name:?}",
                    task.id
                ),
            )),
        }
    }

    /// Resolves when the task is asked to stop (killed, timed out, or interrupted by shutdown).
    /// Select on it around long awaits to stop promptly and tidily.
    pub async fn cancelled(&self) {
        self.cancel().cancelled().await
    }

    /// True once the task has been asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel().is_cancelled()
    }

    /// `Err` (kind `cancelled`) once the task has been asked to stop, so a loop can end with
    /// `ctx.check_cancelled()?`. Costs one atomic load.
    pub fn check_cancelled(&self) -> Result<(), TaskError> {
        if self.cancel().is_cancelled() {
            Err(TaskError::cancelled())
        } else {
            Ok(())
        }
    }
}
