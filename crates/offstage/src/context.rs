//! The **context**: what a running task holds.
//!
//! The runtime hands every task body a [`Context`]: the task's id, the only writer of its
//! state, its log, its checkpoint (what it saved to resume from), the signal that it has been
//! asked to stop, its children ([`Context::launch`]) and the named signals it waits for
//! ([`Context::wait_signal`]). There is no public way to make one, so no code outside the task
//! can write the task's state or its checkpoint.
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
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind, TaskError};
use crate::id::TaskId;
use crate::log::LogLevel;
use crate::runtime::live::LiveTask;
use crate::runtime::{Launch, Parent};
use crate::task::Task;
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

    /// The W3C trace context of this attempt: its span's, with the `otel` feature and the
    /// app's `tracing-opentelemetry` layer, else the one the task was launched in (in a
    /// worker, the one the node assigned it with). What a task passes on to the services it
    /// calls (a `traceparent` header) to keep them in its trace; children launched with
    /// [`Context::launch`] get it by themselves. `None` when the task has no trace context.
    pub fn trace_parent(&self) -> Option<&crate::TraceContext> {
        match &self.backing {
            Backing::Node(task) => task.trace.as_ref(),
            Backing::Worker(task) => task.trace.as_ref(),
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

    /// Saves `checkpoint` as this task's checkpoint: a small value the task needs to resume
    /// (a cursor, the last item done), handed back by [`Context::checkpoint`] in this run and
    /// in every later run of this task: a retry, a run after its node died, a rerun from its
    /// checkpoint. It is in the store when this returns (not batched like the state), and
    /// watchers get a `checkpoint` event. The state, what people see, is not touched.
    ///
    /// Fails, saving nothing, if the value does not serialize to JSON or is larger than the
    /// runtime's state cap (`StateTooLarge`), or if this task no longer runs here: its node was
    /// declared dead (`NodeDead`), or it has ended (`Conflict`).
    ///
    /// ```
    /// use offstage::{Context, TaskError};
    ///
    /// async fn import(ctx: Context, rows: Vec<String>) -> Result<usize, TaskError> {
    ///     let start: usize = ctx.checkpoint()?.unwrap_or(0);
    ///     for (i, row) in rows.iter().enumerate().skip(start) {
    ///         ctx.log(format!("imported {row}"));
    ///         if (i + 1) % 100 == 0 {
    ///             ctx.save_checkpoint(&(i + 1)).await?; // a retry starts after this row
    ///         }
    ///     }
    ///     Ok(rows.len())
    /// }
    /// ```
    pub async fn save_checkpoint(&self, checkpoint: &impl Serialize) -> Result<(), Error> {
        let value = serde_json::to_value(checkpoint).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("the checkpoint does not serialize to JSON: {e}"),
            )
        })?;
        self.save_checkpoint_value(value).await
    }

    pub(crate) async fn save_checkpoint_value(&self, value: Value) -> Result<(), Error> {
        let text = value.to_string();
        let cap = match &self.backing {
            Backing::Node(task) => task.rt.config.state_limit,
            Backing::Worker(task) => task.state_limit,
        };
        if text.len() > cap {
            return Err(Error::new(
                ErrorKind::StateTooLarge,
                format!(
                    "the checkpoint of task {} would be {} bytes, over the cap of {cap} bytes \
                     (checkpoints have the state's cap): save what the task needs to resume (a \
                     cursor, an id, a file name) rather than the data, or raise the cap with \
                     RuntimeBuilder::state_limit",
                    self.id(),
                    text.len()
                ),
            ));
        }
        match &self.backing {
            Backing::Node(task) => task.save_checkpoint(value, text).await,
            Backing::Worker(task) => task.save_checkpoint(value).await,
        }
    }

    /// The last checkpoint this task saved, in this run or an earlier one (see
    /// [`Context::save_checkpoint`]), as a `T`; `None` when there is none: a task launched
    /// afresh, or rerun without its checkpoint.
    ///
    /// Fails (kind `InvalidArgument`) when the stored checkpoint does not deserialize into `T`,
    /// saying what was stored: the task type's code changed what it saves, so read the old
    /// shape too (an enum, `#[serde(default)]`), or rerun the task without its checkpoint.
    pub fn checkpoint<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        let Some(value) = self.checkpoint_value() else {
            return Ok(None);
        };
        T::deserialize(&value).map(Some).map_err(|e| {
            let mut stored = value.to_string();
            if stored.len() > 200 {
                let mut end = 200;
                while !stored.is_char_boundary(end) {
                    end -= 1;
                }
                stored.truncate(end);
                stored.push('…');
            }
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "the checkpoint of task {} does not read as {}: {e}. It holds {stored}: \
                     read the shape it was saved in too, or rerun the task without its checkpoint",
                    self.id(),
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    /// The last checkpoint this task saved, as JSON; `None` when there is none.
    pub fn checkpoint_value(&self) -> Option<Value> {
        match &self.backing {
            Backing::Node(task) => task.checkpoint().map(|(value, _)| Value::clone(&value)),
            Backing::Worker(task) => task.checkpoint(),
        }
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

    /// Launches a child of this task, of type `T` (args checked at compile time): a task like
    /// any other, claimed by whatever node claims it, with `parent` set to this task and this
    /// task's owner unless the launch sets one. Set options on the returned [`Launch`] (every
    /// option of [`crate::Runtime::launch`], and [`Launch::detached`]), then `.await` it.
    ///
    /// A child is killed when this task is killed, and when this task ends by itself while
    /// the child still runs, unless it is detached. Wait for it with [`Context::wait`].
    ///
    /// Only for tasks that run on a node: a task in a worker (isolated or remote) gets a
    /// launch that fails with [`ErrorKind::InvalidArgument`], saying to launch over HTTP.
    ///
    /// ```no_run
    /// use offstage::{Context, TaskError};
    ///
    /// async fn crawl(ctx: Context, pages: Vec<String>) -> Result<usize, TaskError> {
    ///     let mut children = Vec::new();
    ///     for page in pages {
    ///         children.push(ctx.launch_json("crawl.page", serde_json::json!(page)).await?);
    ///     }
    ///     let results = ctx.wait_all(&children).await?; // Err only if this task is stopped
    ///     Ok(results.iter().filter(|result| result.is_ok()).count())
    /// }
    /// ```
    pub fn launch<T: crate::TaskType>(&self, args: T::Args) -> Launch {
        let args = serde_json::to_value(args).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgs,
                format!("the args of `{}` do not serialize to JSON: {e}", T::NAME),
            )
        });
        self.launch_named(T::NAME, args)
    }

    /// Launches a child of this task by name with JSON args: [`Context::launch`] for a type
    /// known by name only.
    pub fn launch_json(&self, name: &str, args: Value) -> Launch {
        self.launch_named(name, Ok(args))
    }

    fn launch_named(&self, name: &str, args: Result<Value, Error>) -> Launch {
        match &self.backing {
            Backing::Node(task) => {
                task.may_have_children.store(true, Ordering::Release);
                Launch::new(Arc::clone(&task.rt), name.to_owned(), args)
                    .child_of(Parent::Running {
                        id: task.id,
                        owner: task.started.owner.clone(),
                    })
                    .inherit_trace(task.trace.clone())
            }
            Backing::Worker(task) => Launch::refused(
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "task {} runs in a worker (isolated or remote), which has no runtime to \
                         launch `{name}` on: launch the child over the node's HTTP API \
                         (POST /api/tasks with \"parent\": \"{}\"), or run this task type \
                         in-process",
                        task.id, task.id
                    ),
                ),
                name.to_owned(),
            ),
        }
    }

    /// Waits until `child` has ended: `Ok` with what it returned (`null` for nothing), or an
    /// error that says how it ended, for this task to handle: kind `child_failed`,
    /// `child_killed` or `child_missing`, its message naming the child and its error, and
    /// its `detail` the JSON `{child, status, error}`. Ends early with kind `cancelled` if
    /// this task is asked to stop (the child runs on, until this task's end stops it).
    ///
    /// Any task can be waited for, not only children.
    pub async fn wait(&self, child: &Task) -> Result<Value, TaskError> {
        let mut ended = self.wait_all(std::slice::from_ref(child)).await?;
        ended.pop().expect("one task awaited")
    }

    /// [`Context::wait`], with what the child returned deserialized into `O` (for a child of
    /// task type `T`, `T::Output`). A value that does not fit is an error of kind
    /// `child_output`.
    pub async fn wait_as<O: DeserializeOwned>(&self, child: &Task) -> Result<O, TaskError> {
        let value = self.wait(child).await?;
        serde_json::from_value(value).map_err(|e| {
            TaskError::new(
                "child_output",
                format!(
                    "child task {} ({}) returned a value that does not fit the type asked \
                     for: {e}",
                    child.id(),
                    child.name()
                ),
            )
        })
    }

    /// Waits until every task of `children` has ended: one result per task, in order, as
    /// [`Context::wait`] gives it. The outer error is kind `cancelled` if this task is asked
    /// to stop first (or the store failed); a child's failure is its own entry.
    ///
    /// Cheap for many: from 16 tasks on, one subscription to the node's events and one store
    /// read per round for all of them, never a read per child.
    pub async fn wait_all(
        &self,
        children: &[Task],
    ) -> Result<Vec<Result<Value, TaskError>>, TaskError> {
        let rt = match &self.backing {
            Backing::Node(task) => Arc::clone(&task.rt),
            Backing::Worker(task) => return Err(cannot_wait_in_worker(task.id)),
        };
        let parent = Some(self.id());
        tokio::select! {
            biased;
            () = self.cancelled() => Err(TaskError::cancelled()),
            ended = crate::runtime::wait_tasks(&rt, parent, children) => {
                Ok(ended?.iter().map(crate::runtime::child_outcome).collect())
            }
        }
    }

    /// The tasks of `children` as they end, one at a time, in the order they end: for a task
    /// that reports progress (`{done, total}`) or acts on each result as it comes. Cheap for
    /// many, like [`Context::wait_all`]. From a task in a worker, the first `next` is an error.
    pub fn wait_each(&self, children: &[Task]) -> crate::ChildEnds {
        match &self.backing {
            Backing::Node(task) => crate::ChildEnds::new(
                crate::runtime::Waiter::new(Arc::clone(&task.rt), Some(task.id), children),
                task.cancel.clone(),
            ),
            Backing::Worker(task) => crate::ChildEnds::refused(cannot_wait_in_worker(task.id)),
        }
    }

    /// Every child this task launched, oldest first, whatever their status; with those an
    /// earlier attempt launched, so that an attempt after a retry (or after its node died)
    /// finds the children still running and waits for them instead of launching them again.
    pub async fn children(&self) -> Result<Vec<Task>, Error> {
        match &self.backing {
            Backing::Node(task) => crate::runtime::list_children(&task.rt, task.id).await,
            Backing::Worker(task) => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "task {} runs in a worker (isolated or remote), which cannot read the \
                     store: list its children over HTTP (GET /api/tasks?parent={})",
                    task.id, task.id
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

    /// A handle to limiter `name` ([`crate::Limiter`]), whose holds name this task as their
    /// holder; a wait to acquire ends with [`ErrorKind::Cancelled`] when the task is asked to
    /// stop. A permit the task still holds when it ends (or is killed) is released.
    ///
    /// Only for tasks that run on a node (in-process): a task in a worker (isolated or remote)
    /// gets an error, and acquires through the node's HTTP API instead
    /// (`POST /api/limiters/{name}/acquire`).
    pub fn limiter(&self, name: &str) -> Result<crate::Limiter, Error> {
        match &self.backing {
            Backing::Node(task) => crate::Limiter::new(
                Arc::clone(&task.rt),
                name,
                format!("task {} ({})", task.id, task.started.name),
                Some(task.cancel.clone()),
            ),
            Backing::Worker(task) => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "limiters are reached from tasks that run on a node, and task {} runs in                      a worker (isolated or remote): run its task type in-process, or acquire                      `{name}` over HTTP (POST /api/limiters/{name}/acquire)",
                    task.id
                ),
            )),
        }
    }

    /// The error to return to go back to the queue for `delay` without counting the attempt:
    /// `return Err(ctx.back_off(delay))`. For an API that said to come back later (a 429 with
    /// `Retry-After`). The task ends this run and is `queued` again, due after `delay`, its
    /// attempt not counted (the claim counted it; the back-off gives it back), its state and
    /// checkpoint kept; its waiting reason reads `backed_off`. A task that is being killed
    /// ends `killed` all the same. See [`TaskError::back_off`].
    pub fn back_off(&self, delay: std::time::Duration) -> TaskError {
        TaskError::back_off(delay)
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

/// The error of a wait for tasks from a task that runs in a worker, which has no node to wait
/// on.
fn cannot_wait_in_worker(id: crate::TaskId) -> TaskError {
    TaskError::new(
        "invalid_argument",
        format!(
            "task {id} runs in a worker (isolated or remote) and cannot wait on the node's \
             tasks: follow them over HTTP (GET /api/tasks/{{id}}/events) instead, or run this \
             task type in-process"
        ),
    )
}
