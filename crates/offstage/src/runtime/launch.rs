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
    /// Run in a worker process of its own (see [`crate::runtime::Isolation`]), or not,
    /// whatever the task type says.
    #[serde(default)]
    pub isolated: Option<bool>,
    /// With `key`: what to do when a task of the same type and key is queued or running.
    /// Without it, keys are labels and duplicates run.
    #[serde(default)]
    pub on_conflict: Option<OnConflict>,
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
    Ok(())
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
    rt: Arc<Inner>,
    name: String,
    args: Result<Value, Error>,
    options: LaunchOptions,
    delay: Option<Duration>,
}

impl Launch {
    pub(crate) fn new(rt: Arc<Inner>, name: String, args: Result<Value, Error>) -> Self {
        Self {
            rt,
            name,
            args,
            options: LaunchOptions::default(),
            delay: None,
        }
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

    /// Validates the launch and makes its record, as queued; the body comes ready to run.
    /// The body is `None` for a task type that workers serve.
    #[allow(clippy::type_complexity)]
    pub(super) fn check(
        self,
    ) -> Result<
        (
            Arc<Inner>,
            TaskRecord,
            Option<crate::registry::Prepared>,
            Option<OnConflict>,
        ),
        Error,
    > {
        let Launch {
            rt,
            name,
            args,
            options,
            delay,
        } = self;
        if rt.is_shutting_down() {
            return Err(Error::new(
                ErrorKind::ShuttingDown,
                "this runtime is shutting down and takes no new tasks: launch on another node or after the restart",
            ));
        }
        check_labels(&name, &options)?;
        let args = args?;
        if options.on_conflict.is_some() && options.key.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "on_conflict needs a key: it decides what happens when a task of the same type \
                 and key is live",
            ));
        }
        // A type no in-process registration knows may be one workers serve: then its args are
        // the worker's to check, and the task waits queued for a worker to claim it.
        let elsewhere = rt.registry.get(&name).is_err() && rt.workers.knows(&name);
        if !elsewhere && rt.registry.get(&name).is_err() {
            return Err(rt.unknown_task_type(&name));
        }
        let (prepared, type_timeout, type_isolated) = if elsewhere {
            if options.isolated == Some(true) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "`{name}` is served by workers, which run it in their own process \
                         already: launch it without `isolated`"
                    ),
                ));
            }
            (None, None, false)
        } else {
            let prepared = rt.registry.prepare(&name, &args)?;
            let options = rt.registry.get(&name)?.options;
            (Some(prepared), options.timeout, options.isolated)
        };
        let isolated = options.isolated.unwrap_or(type_isolated);
        let timeout = options.timeout.or(type_timeout);
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
        let queued = TaskRecord {
            id: TaskId::new(),
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
        };
        Ok((rt, queued, prepared, options.on_conflict))
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
        let (rt, queued, _prepared, on_conflict) = self.check()?;
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
        Ok(Task {
            id: queued.id,
            name: queued.name.as_str().into(),
            launched_at: queued.launched_at,
            since: rt.events.last_seq(),
            existing: false,
            rt,
        })
    }

    async fn run(self) -> Result<Task, Error> {
        let (rt, queued, prepared, on_conflict) = self.check()?;
        let (id, now) = (queued.id, queued.launched_at);
        let due = queued.run_at <= now;
        // Start at once, skipping the queue, when the task is due and a slot is free. Slots
        // that free up while tasks wait in the store go to the scheduler instead (see
        // `release_slots`), so this never takes a slot a queued task was waiting for.
        let elsewhere = prepared.is_none();
        // A type with a concurrency limit always goes through a claim, which counts.
        let limited = rt.limited.iter().any(|(name, _)| *name == queued.name);
        let mut direct = due && !elsewhere && !limited && rt.try_reserve_slot();
        let mut stored = if direct {
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
                Err(error) if direct && error.kind() == ErrorKind::NodeDead => {
                    // This node was declared dead and may not start tasks: the launch goes in
                    // queued instead (nothing was inserted), and the node rejoins.
                    rt.release_slots(1);
                    super::maintenance::rejoin(&rt, stored.node.unwrap_or_else(|| rt.node())).await;
                    direct = false;
                    stored = queued.clone();
                    continue;
                }
                Err(error) => {
                    if direct {
                        rt.release_slots(1);
                    }
                    return Err(error);
                }
            };
            match on_conflict {
                Some(OnConflict::Supersede) if rounds < SUPERSEDE_ROUNDS => {
                    rounds += 1;
                    // Ended (killed, or done by itself meanwhile) before this one goes in.
                    if let Err(error) = rt.kill(live.id, None).await {
                        if error.kind() != ErrorKind::NotFound {
                            if direct {
                                rt.release_slots(1);
                            }
                            return Err(error);
                        }
                    }
                }
                Some(OnConflict::Existing) => {
                    if direct {
                        rt.release_slots(1);
                    }
                    return Ok(Task {
                        since: rt.events.last_seq(),
                        id: live.id,
                        name: live.name.as_str().into(),
                        launched_at: live.launched_at,
                        existing: true,
                        rt,
                    });
                }
                _ => {
                    if direct {
                        rt.release_slots(1);
                    }
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
        let name = queued.name.as_str().into();
        let launched = EventKind::Launched {
            task: Arc::new(queued),
        };
        let seq = rt.publish_at(id, now, launched);
        let task = Task {
            rt: Arc::clone(&rt),
            id,
            name,
            launched_at: now,
            since: seq - 1,
            existing: false,
        };
        if direct {
            executor::start(&rt, stored, prepared);
        } else {
            rt.wake_for_queued(elsewhere, due);
        }
        Ok(task)
    }
}

impl IntoFuture for Launch {
    type Output = Result<Task, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Task, Error>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
