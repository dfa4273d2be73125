//! Launching: validate, make durable, then start at once or queue.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{executor, Inner};
use crate::error::{Error, ErrorKind};
use crate::event::EventKind;
use crate::id::TaskId;
use crate::status::Status;
use crate::task::{Task, TaskRecord};

/// Options of one launch. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchOptions {
    /// A key to find the task by later.
    pub key: Option<String>,
    /// Who the task belongs to, as the app names them (a user id, a session).
    pub owner: Option<String>,
    /// Higher runs first among queued tasks (default 0).
    pub priority: Option<i32>,
    /// Fail the task (error kind `timeout`) if it runs longer than this; overrides the task
    /// type's timeout. In JSON `timeout_s`, in seconds, as everywhere on the wire.
    #[serde(rename = "timeout_s", default, with = "crate::task::optional_seconds")]
    pub timeout: Option<Duration>,
    /// Do not start before this time.
    pub run_at: Option<DateTime<Utc>>,
    /// Run in a worker process of its own (see [`crate::Isolation`]), or not,
    /// whatever the task type says.
    #[serde(default)]
    pub isolated: Option<bool>,
    /// With `key`: what to do when a task of the same type and key is queued or running.
    /// Without it, keys are labels and duplicates run.
    #[serde(default)]
    pub on_conflict: Option<OnConflict>,
    /// The concurrency key the task counts under, for a task type with a per-key limit
    /// ([`crate::TaskTypeOptions::concurrency_per_key`]), instead of the one its type takes
    /// from the owner or the args. Kept with the task of any type.
    #[serde(default)]
    pub concurrency_key: Option<String>,
}

/// What a launch with a key does when a task of the same type and key is live (queued or
/// running). Atomic on every store: of racing launches, at most one runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Fail with [`ErrorKind::Conflict`], naming the live task.
    Reject,
    /// Return the live task instead of launching ([`Task::is_existing`] says so).
    Existing,
    /// Kill the live task (and wait until it has ended), then launch.
    Supersede,
}

impl std::str::FromStr for OnConflict {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "reject" => Ok(OnConflict::Reject),
            "existing" => Ok(OnConflict::Existing),
            "supersede" => Ok(OnConflict::Supersede),
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("on_conflict `{other}` is not one of reject, existing, supersede"),
            )),
        }
    }
}

/// Checks the text a launch carries (the task type's name, the key and the owner) against
/// [`crate::limits`], so that what one store accepts every store accepts.
pub(crate) fn check_labels(name: &str, options: &LaunchOptions) -> Result<(), Error> {
    use crate::limits::{check_text, MAX_KEY_CHARS, MAX_NAME_CHARS, MAX_OWNER_CHARS};
    check_text("task type name", name, MAX_NAME_CHARS)?;
    if let Some(key) = &options.key {
        check_text("key", key, MAX_KEY_CHARS)?;
    }
    if let Some(owner) = &options.owner {
        check_text("owner", owner, MAX_OWNER_CHARS)?;
    }
    if let Some(key) = &options.concurrency_key {
        check_text("concurrency key", key, MAX_KEY_CHARS)?;
        if key.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the concurrency key is empty: give a non-empty one (a tenant's id, say) or none",
            ));
        }
    }
    Ok(())
}

/// A launch that passed its checks: the record to insert and what starting it needs.
pub(super) struct Checked {
    pub(super) rt: Arc<Inner>,
    /// The task's record as it goes in queued.
    pub(super) queued: TaskRecord,
    /// The body with its args deserialized; `None` for a type workers serve.
    pub(super) prepared: Option<crate::registry::Prepared>,
    /// The type has a concurrency limit (global or per key): it always starts through a claim,
    /// which counts.
    pub(super) limited: bool,
    pub(super) on_conflict: Option<OnConflict>,
    /// The launch's span (feature `otel`), ended when the launch returns.
    pub(super) span: super::spans::Launching,
}

/// How often a superseding launch may find yet another live task (each one killed) before it
/// gives up: only a storm of racing supersedes gets there.
const SUPERSEDE_ROUNDS: usize = 20;

/// A launch being prepared: set options, then `.await` it for the [`Task`].
///
/// ```no_run
/// # async fn demo(rt: offstage::Runtime) -> Result<(), offstage::Error> {
/// use std::time::Duration;
/// let task = rt
///     .launch_json("reports.build", serde_json::json!({ "month": "2026-10" }))
///     .owner("user-42")
///     .priority(10)
///     .timeout(Duration::from_secs(600))
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a launch does nothing until it is awaited"]
#[derive(Debug)]
pub struct Launch {
    /// The runtime to launch on, or why this launch cannot happen (a child launched from a
    /// task that runs in a worker, which has no runtime): the error `.await` returns.
    rt: Result<Arc<Inner>, Error>,
    name: String,
    args: Result<Value, Error>,
    options: LaunchOptions,
    delay: Option<Duration>,
    /// The task this launch reruns (`Runtime::rerun`).
    rerun_of: Option<TaskId>,
    /// The checkpoint the task starts with, and when it was saved (`Runtime::rerun_with`).
    checkpoint: Option<(Value, DateTime<Utc>)>,
    /// The task launching this one as its child, if any (see [`Launch::parent`]).
    parent: Option<Parent>,
    /// Left running when its parent ends normally (see [`Launch::detached`]).
    detached: bool,
    /// The trace context the launch is part of (see [`Launch::trace_parent`]).
    trace: Trace,
}

/// What a launch knows of its trace context.
#[derive(Clone, Debug, Default)]
struct Trace {
    /// Given with [`Launch::trace_parent`] and [`Launch::trace_state`], checked at launch.
    parent: Option<String>,
    state: Option<String>,
    /// Handed down by the launching task (`Context::launch`): its attempt's context.
    inherited: Option<crate::TraceContext>,
    /// The original of a rerun: the rerun's launch span links to it (feature `otel`).
    link: Option<String>,
}

/// The parent of a child launch, as far as the launch knows it.
#[derive(Clone, Debug)]
pub(crate) enum Parent {
    /// Launched from the parent's own context: it is running, and its owner is known.
    Running { id: TaskId, owner: Option<String> },
    /// Named by id (the HTTP API's `parent`): read at launch, refused if it is unknown or over.
    Named(TaskId),
}

impl Launch {
    pub(crate) fn new(rt: Arc<Inner>, name: String, args: Result<Value, Error>) -> Self {
        Self::on(Ok(rt), name, args)
    }

    /// A launch that fails with `error` when awaited, whatever its options.
    pub(crate) fn refused(error: Error, name: String) -> Self {
        Self::on(Err(error), name, Ok(Value::Null))
    }

    fn on(rt: Result<Arc<Inner>, Error>, name: String, args: Result<Value, Error>) -> Self {
        Self {
            rt,
            name,
            args,
            options: LaunchOptions::default(),
            delay: None,
            rerun_of: None,
            checkpoint: None,
            parent: None,
            detached: false,
            trace: Trace::default(),
        }
    }

    /// Hands the launching task's trace context down to this launch (`Context::launch`).
    pub(crate) fn inherit_trace(mut self, trace: Option<crate::TraceContext>) -> Self {
        self.trace.inherited = trace;
        self
    }

    /// Links this launch's span to the trace of the task it reruns (`Runtime::rerun`).
    pub(crate) fn trace_link(mut self, traceparent: Option<String>) -> Self {
        self.trace.link = traceparent;
        self
    }

    /// Starts the task with `checkpoint`, saved at `at` (see `Runtime::rerun_with`).
    pub(crate) fn checkpoint(mut self, checkpoint: Value, at: DateTime<Utc>) -> Self {
        self.checkpoint = Some((checkpoint, at));
        self
    }

    /// Makes this launch a child of the running task `parent` (`Context::launch`), which
    /// hands down its owner.
    pub(crate) fn child_of(mut self, parent: Parent) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Records the launch as a rerun of task `id` (see `Runtime::rerun`).
    pub(crate) fn rerun_of(mut self, id: TaskId) -> Self {
        self.rerun_of = Some(id);
        self
    }

    /// Replaces all options.
    pub fn options(mut self, options: LaunchOptions) -> Self {
        self.options = options;
        self
    }

    /// A key to find the task by later.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.options.key = Some(key.into());
        self
    }

    /// Who the task belongs to.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.options.owner = Some(owner.into());
        self
    }

    /// Higher runs first among queued tasks.
    pub fn priority(mut self, priority: i32) -> Self {
        self.options.priority = Some(priority);
        self
    }

    /// Fail the task if it runs longer than `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Do not start before `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.options.run_at = Some(at);
        self
    }

    /// Run this task in a worker process of its own (or, with `false`, in-process), whatever
    /// its task type says: a kill or timeout then stops it even if it never awaits.
    pub fn isolated(mut self, isolated: bool) -> Self {
        self.options.isolated = Some(isolated);
        self
    }

    /// The concurrency key the task counts under, for a task type with a per-key limit
    /// ([`crate::TaskTypeOptions::concurrency_per_key`]): at most that many tasks of one key
    /// run at once, and keys take turns. Overrides the key the type takes from the owner or
    /// the args.
    pub fn concurrency_key(mut self, key: impl Into<String>) -> Self {
        self.options.concurrency_key = Some(key.into());
        self
    }

    /// What to do when a task of the same type and key is queued or running (needs a key).
    pub fn on_conflict(mut self, on_conflict: OnConflict) -> Self {
        self.options.on_conflict = Some(on_conflict);
        self
    }

    /// Do not start until `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Launches the task as a child of task `parent`, which must exist and not have ended
    /// ([`ErrorKind::NotFound`], [`ErrorKind::Conflict`] otherwise). Inside a task body use
    /// [`crate::Context::launch`], which does this for its own task. The child inherits the
    /// parent's owner unless [`Launch::owner`] sets one, and is killed when its parent is
    /// killed, or ends while it still runs (unless [`Launch::detached`]).
    pub fn parent(mut self, parent: TaskId) -> Self {
        self.parent = Some(Parent::Named(parent));
        self
    }

    /// With `true`, a child is left running when its parent ends by itself (completed, failed,
    /// or missing and not retried); by default it is killed then. A kill of the parent kills
    /// its children, detached or not. Means nothing without a parent.
    pub fn detached(mut self, detached: bool) -> Self {
        self.detached = detached;
        self
    }

    /// Launches the task in the trace of `traceparent`, a W3C `traceparent` (`00-<trace
    /// id>-<span id>-<flags>`): what an app without OpenTelemetry passes on from the request
    /// that launches the task. The record keeps it ([`TaskRecord::traceparent`]), and with
    /// the `otel` feature each attempt of the task is a span in that trace. A text that is not
    /// a `traceparent` fails the launch ([`ErrorKind::InvalidArgument`], saying why). Without
    /// it, the launch takes the current `tracing` span's OpenTelemetry context (feature
    /// `otel`), or its parent task's.
    pub fn trace_parent(mut self, traceparent: impl Into<String>) -> Self {
        self.trace.parent = Some(traceparent.into());
        self
    }

    /// The W3C `tracestate` that goes with [`Launch::trace_parent`] (vendor data, kept as
    /// given; at most 512 printable ASCII characters).
    pub fn trace_state(mut self, tracestate: impl Into<String>) -> Self {
        self.trace.state = Some(tracestate.into());
        self
    }

    /// Reads the parent a launch names by id: it must exist and be queued or running. Its
    /// owner becomes the launch's parent owner. A child of a running parent needs no read.
    async fn resolve_parent(mut self) -> Result<Self, Error> {
        let (Some(Parent::Named(id)), Ok(rt)) = (&self.parent, &self.rt) else {
            return Ok(self);
        };
        let id = *id;
        if let Some(live) = rt.live(id) {
            // Its end looks for children to stop, this one among them.
            live.may_have_children
                .store(true, std::sync::atomic::Ordering::Release);
        }
        let parent = match rt.record(id).await {
            Ok(parent) => parent,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "the parent task {id} does not exist: give the id of a queued or \
                         running task as `parent`, or launch without one"
                    ),
                ))
            }
            Err(error) => return Err(error),
        };
        if parent.status.is_terminal() {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "the parent task {id} ({}) has ended ({}), and a child of an ended task \
                     would be killed at once: launch it without `parent`, or under a task that \
                     is still queued or running",
                    parent.name, parent.status
                ),
            ));
        }
        self.parent = Some(Parent::Running {
            id,
            owner: parent.owner,
        });
        Ok(self)
    }

    /// Validates the launch and makes its record, as queued, with the body ready to run.
    pub(super) fn check(self) -> Result<Checked, Error> {
        let Launch {
            rt,
            name,
            args,
            options,
            delay,
            rerun_of,
            checkpoint,
            parent,
            detached,
            trace,
        } = self;
        let rt = rt?;
        if rt.is_shutting_down() {
            return Err(Error::new(
                ErrorKind::ShuttingDown,
                "this runtime is shutting down and takes no new tasks: launch on another node or after the restart",
            ));
        }
        let (parent, options) = match parent {
            None => (None, options),
            Some(Parent::Running { id, owner }) => {
                // A child belongs to whoever its parent belongs to, unless it says otherwise:
                // a token scoped to the parent's owner sees the whole family.
                let owner = options.owner.clone().or(owner);
                (Some(id), LaunchOptions { owner, ..options })
            }
            Some(Parent::Named(id)) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("the parent {id} of this launch was not read before its checks (a bug in Offstage)"),
                ))
            }
        };
        if detached && parent.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "detached applies to a child task: launch it from its parent's context or with a \
                 parent, or leave detached out",
            ));
        }
        check_labels(&name, &options)?;
        let trace_context = match (trace.parent, trace.state) {
            (Some(parent), state) => Some(crate::TraceContext::parse(&parent, state.as_deref())?),
            (None, Some(_)) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "a tracestate needs its traceparent: give both, or neither",
                ))
            }
            (None, None) => trace.inherited,
        };
        let args = args?;
        if options.on_conflict.is_some() && options.key.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "on_conflict needs a key: it decides what happens when a task of the same type \
                 and key is live",
            ));
        }
        let (prepared, type_options) = match rt.registry.get(&name) {
            Ok(registered) => {
                let prepared = registered
                    .prepare(&args)
                    .map_err(|e| crate::registry::invalid_args(&name, &args, e))?;
                (Some(prepared), registered.options)
            }
            // A type no in-process registration knows may be one workers serve: then its args
            // are the worker's to check, and the task waits queued for a worker to claim it.
            Err(_) if rt.workers.knows(&name) => {
                if options.isolated == Some(true) {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        format!(
                            "`{name}` is served by workers, which run it in their own process \
                             already: launch it without `isolated`"
                        ),
                    ));
                }
                (None, crate::TaskTypeOptions::default())
            }
            Err(_) => return Err(rt.unknown_task_type(&name)),
        };
        // Resolved once, here, and kept with the task: retries, recovery and reruns of it count
        // under the same key.
        let concurrency_key = match (&options.concurrency_key, type_options.concurrency_key) {
            (Some(key), _) => Some(key.clone()),
            (None, Some(source)) if type_options.concurrency_per_key.is_some() => {
                let key = source.resolve(&name, options.owner.as_deref(), &args)?;
                crate::limits::check_text("concurrency key", &key, crate::limits::MAX_KEY_CHARS)?;
                Some(key)
            }
            (None, _) => None,
        };
        let isolated = options.isolated.unwrap_or(type_options.isolated);
        let timeout = options.timeout.or(type_options.timeout);
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a timeout of zero would fail the task before it starts: give a positive timeout or none",
            ));
        }
        let now = rt.clock.now();
        let run_at = match (options.run_at, delay) {
            (Some(at), _) => at.max(now),
            (None, Some(delay)) => {
                now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
            }
            (None, None) => now,
        };
        let id = TaskId::new();
        // With the `otel` feature, the launch is a span of its own, in the given trace or the
        // current span's, and the task's attempts are its children.
        let span = super::spans::Launching::new(&name, id, trace_context.as_ref(), trace.link);
        let (traceparent, tracestate) = span
            .context()
            .or(trace_context)
            .map(crate::TraceContext::into_parts)
            .unzip();
        let queued = TaskRecord {
            id,
            name,
            args,
            status: Status::Queued,
            state: Value::Object(Default::default()),
            return_value: None,
            error: None,
            launched_at: now,
            run_at,
            started_at: None,
            finished_at: None,
            attempt: 0,
            priority: options.priority.unwrap_or(0),
            key: options.key,
            owner: options.owner,
            timeout,
            node: None,
            isolated,
            rerun_of,
            parent,
            detached,
            checkpoint_at: checkpoint.as_ref().map(|(_, at)| *at),
            checkpoint: checkpoint.map(|(value, _)| value),
            waiting_for: None,
            waiting_until: None,
            concurrency_key,
            traceparent,
            tracestate: tracestate.flatten(),
        };
        Ok(Checked {
            rt,
            queued,
            prepared,
            limited: type_options.concurrency_limit.is_some()
                || type_options.concurrency_per_key.is_some(),
            on_conflict: options.on_conflict,
            span,
        })
    }

    /// Launches inside the app's own PostgreSQL transaction: the task exists if, and only if,
    /// that transaction commits. `conn` is the transaction's connection (`&mut *tx` for a
    /// `sqlx::Transaction`) on the same database and schema as this runtime's PostgreSQL store,
    /// with the app on sqlx 0.8 as Offstage is.
    ///
    /// The task is queued, never started on the spot (the transaction may yet roll back); the
    /// commit tells every node to claim it. No `launched` event is published, since nobody can
    /// tell from here whether the launch will stand: the first event is `started`.
    ///
    /// ```no_run
    /// # async fn demo(rt: offstage::Runtime, pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("INSERT INTO orders (id) VALUES (42)").execute(&mut *tx).await?;
    /// let task = rt
    ///     .launch_json("orders.confirm", serde_json::json!({ "order": 42 }))
    ///     .in_transaction(&mut tx)
    ///     .await?;
    /// tx.commit().await?; // only now does the task exist, and start
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn in_transaction(self, conn: &mut sqlx::PgConnection) -> Result<Task, Error> {
        let Checked {
            rt,
            queued,
            on_conflict,
            ..
        } = self.resolve_parent().await?.check()?;
        if on_conflict.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "on_conflict is not available inside a transaction (the live task could not be \
                 killed or returned before the commit): launch with it outside the transaction",
            ));
        }
        let store: &dyn std::any::Any = &*rt.store;
        let Some(store) = store.downcast_ref::<crate::store::postgres::PostgresStore>() else {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "launching in a PostgreSQL transaction needs a runtime whose store is that \
                     PostgreSQL database, and this one's is {:?}: build it with \
                     RuntimeBuilder::postgres(url)",
                    rt.store
                ),
            ));
        };
        store.launch_in(conn, &queued).await?;
        let since = rt.events.last_seq();
        Ok(Task::new(rt, queued, since, false))
    }

    async fn run(self) -> Result<Task, Error> {
        let Checked {
            rt,
            queued,
            prepared,
            limited,
            on_conflict,
            span,
        } = self.resolve_parent().await?.check()?;
        // Held until the launch returns: the span covers the insert.
        let _launching = span;
        let (id, now) = (queued.id, queued.launched_at);
        let due = queued.run_at <= now;
        // Start at once, skipping the queue, when the task is due and a slot is free. Slots
        // that free up while tasks wait in the store go to the claimer instead (see
        // `slots.rs`), so this never takes a slot a queued task was waiting for.
        let elsewhere = prepared.is_none();
        // A type with a concurrency limit always goes through a claim, which counts.
        let mut permit = if due && !elsewhere && !limited && !rt.fleet.is_paused(&queued.name) {
            rt.slots.try_acquire()
        } else {
            None
        };
        let mut stored = if permit.is_some() {
            TaskRecord {
                status: Status::Running,
                started_at: Some(now),
                attempt: 1,
                node: Some(rt.node()),
                ..queued.clone()
            }
        } else {
            queued.clone()
        };
        let mut rounds = 0;
        loop {
            let inserted = match on_conflict {
                None => rt.store.launch(&stored).await.map(|()| None),
                Some(_) => rt.store.launch_unique(&stored).await,
            };
            let live = match inserted {
                Ok(None) => break,
                Ok(Some(live)) => live,
                Err(error) if permit.is_some() && error.kind() == ErrorKind::NodeDead => {
                    // This node was declared dead and may not start tasks: the launch goes in
                    // queued instead (nothing was inserted), and the node rejoins.
                    permit = None;
                    super::maintenance::rejoin(&rt, stored.node.unwrap_or_else(|| rt.node())).await;
                    stored = queued.clone();
                    continue;
                }
                Err(error) => return Err(error),
            };
            match on_conflict {
                Some(OnConflict::Supersede) if rounds < SUPERSEDE_ROUNDS => {
                    rounds += 1;
                    // Ended (killed, or done by itself meanwhile) before this one goes in.
                    if let Err(error) = rt.kill(live.id, None).await {
                        if error.kind() != ErrorKind::NotFound {
                            return Err(error);
                        }
                    }
                }
                Some(OnConflict::Existing) => {
                    let since = rt.events.last_seq();
                    return Ok(Task::new(rt, live, since, true));
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "task {} ({}, key `{}`) is {}: wait for it, kill it, or launch with \
                             on_conflict existing (to get it) or supersede (to replace it)",
                            live.id,
                            live.name,
                            live.key.as_deref().unwrap_or_default(),
                            live.status
                        ),
                    ));
                }
            }
        }
        let queued = Arc::new(queued);
        let launched = EventKind::Launched {
            task: Arc::clone(&queued),
        };
        let since = rt.publish_at(id, now, launched) - 1;
        Ok(match permit {
            Some(permit) => {
                let stored = Arc::new(stored);
                let task = Task::new(Arc::clone(&rt), Arc::clone(&stored), since, false);
                executor::start(&rt, stored, prepared, permit);
                task
            }
            None => {
                rt.wake_for_queued(elsewhere, due);
                Task::new(rt, queued, since, false)
            }
        })
    }
}

impl IntoFuture for Launch {
    type Output = Result<Task, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Task, Error>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
