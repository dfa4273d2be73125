//! Building a runtime: where it stores, which task types it runs, and its limits.

use std::collections::BTreeMap;
use std::future::Future;
#[cfg(feature = "sqlite")]
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing_core::LevelFilter;

use super::retention::Retention;
use super::{claimer, maintenance, Clock, Inner, Runtime};
use crate::context::Context;
use crate::error::{Error, ErrorKind, TaskError};
use crate::event::EventBus;
use crate::id::NodeId;
use crate::log::{LogLimits, TaskLogCapture};
use crate::registry::{Registry, TaskType, TaskTypeOptions};
use crate::store::{NodeInfo, Store};

/// A runtime's limits and intervals. Every field has a default suited to a web app.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Most tasks running at once on this node (default 1,000).
    pub max_concurrency: usize,
    /// How long a killed task gets to stop by itself before it is aborted (default 5 s).
    pub kill_grace: Duration,
    /// How long shutdown waits for running tasks to finish before interrupting them
    /// (default 10 s).
    pub shutdown_drain: Duration,
    /// Largest state, as JSON bytes (default 1 MiB).
    pub state_limit: usize,
    /// Caps on each task's log (default 10,000 lines, 1 MiB).
    pub log_limits: LogLimits,
    /// How often unsaved state and log lines go to the store (default 50 ms).
    pub flush_interval: Duration,
    /// How often this node proves it is alive and picks up kill requests (default 1 s).
    pub heartbeat_interval: Duration,
    /// A node whose heartbeat is older than this is dead and its tasks `missing`
    /// (default 10 s). On SQLite a dead process on the same machine is noticed at once.
    pub node_timeout: Duration,
    /// How often the claimer looks for tasks queued by other processes (default 500 ms).
    pub poll_interval: Duration,
    /// Recent events kept for subscribers that resume (default 16,384).
    pub event_replay: usize,
    /// `tracing` events inside a task at this level and above land in its log (default INFO).
    pub capture_level: LevelFilter,
    /// Which finished tasks are kept, for task types without a rule of their own (default:
    /// seven days). Give every node on a database the same rules: each retention pass runs on
    /// one node, by its rules.
    pub retention: Retention,
    /// Rules for particular task types, in place of `retention`.
    pub retention_by_type: BTreeMap<String, Retention>,
    /// How often one of the nodes applies the retention rules (default 60 s).
    pub retention_interval: Duration,
    /// How long the per-minute stats rows are kept (default 3 days); the stats flusher
    /// deletes older ones, every node's.
    pub stats_retention: Duration,
}

impl Config {
    /// The retention rule of task type `name`.
    pub fn retention_for(&self, name: &str) -> Retention {
        self.retention_by_type
            .get(name)
            .copied()
            .unwrap_or(self.retention)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_concurrency: 1_000,
            kill_grace: Duration::from_secs(5),
            shutdown_drain: Duration::from_secs(10),
            state_limit: 1024 * 1024,
            log_limits: LogLimits::default(),
            flush_interval: Duration::from_millis(50),
            heartbeat_interval: Duration::from_secs(1),
            node_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            event_replay: 16_384,
            capture_level: LevelFilter::INFO,
            retention: Retention::default(),
            retention_by_type: BTreeMap::new(),
            retention_interval: Duration::from_secs(60),
            stats_retention: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

enum StoreChoice {
    #[cfg(feature = "sqlite")]
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
    /// A `postgres://` URL or a SQLite path, decided at build time.
    Named(String),
    Given(Arc<dyn Store>),
}

/// Opens the store `database` names: a PostgreSQL URL or a SQLite path.
pub(crate) async fn open_named(database: &str) -> Result<Arc<dyn Store>, Error> {
    let is_url = database.starts_with("postgres://") || database.starts_with("postgresql://");
    if is_url {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(
            crate::store::postgres::PostgresStore::open(database).await?,
        ));
        #[cfg(not(feature = "postgres"))]
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "this build of Offstage has no PostgreSQL store: enable the `postgres` feature of \
             the offstage crate",
        ));
    }
    #[cfg(feature = "sqlite")]
    return Ok(Arc::new(
        crate::store::sqlite::SqliteStore::open(database).await?,
    ));
    #[cfg(not(feature = "sqlite"))]
    Err(Error::new(
        ErrorKind::InvalidArgument,
        format!(
            "`{database}` is not a postgres:// URL, and this build of Offstage has no SQLite \
             store: enable the `sqlite` feature or give a PostgreSQL URL"
        ),
    ))
}

/// Builds a [`Runtime`]. Start with [`Runtime::builder`]: choose a store, register task types
/// (closures with [`task`](Self::task) or [`task_with`](Self::task_with), [`TaskType`]s with
/// [`register`](Self::register)), set limits and schedules, then [`build`](Self::build).
///
/// ```no_run
/// use std::time::Duration;
/// use offstage::{Context, Retry, Runtime, Schedule, TaskError, TaskTypeOptions};
///
/// # async fn demo() -> Result<(), offstage::Error> {
/// let runtime = Runtime::builder()
///     .sqlite("app.db")                          // or .postgres(url), .database(from_config)
///     .task("emails.send", |ctx: Context, to: String| async move {
///         ctx.log(format!("sending to {to}"));
///         Ok::<_, TaskError>(())
///     })
///     .task_with(
///         "reports.build",
///         TaskTypeOptions::default()
///             .timeout(Duration::from_secs(600))
///             .concurrency_limit(2)               // on all nodes together
///             .retry(Retry::new(3)),
///         |_ctx: Context, month: String| async move { Ok::<_, TaskError>(month) },
///     )
///     .max_concurrency(64)                        // tasks running at once on this node
///     .kill_grace(Duration::from_secs(5))         // a kill's cooperative wait before the abort
///     .schedule(Schedule::new("nightly", "0 3 * * *", "reports.build").args("latest".into()))
///     .build()
///     .await?;
/// runtime.launch_json("emails.send", serde_json::json!("ada@example.com")).await?;
/// runtime.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct RuntimeBuilder {
    store: Option<StoreChoice>,
    registry: Registry,
    config: Config,
    remote: std::collections::BTreeSet<String>,
    isolation: Option<super::Isolation>,
    startup: Vec<super::spawned::Startup>,
    schedules: Vec<crate::schedule::Schedule>,
    limiters: Vec<(String, crate::Limit)>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("registry", &self.registry)
            .field("config", &self.config)
            .finish()
    }
}

impl RuntimeBuilder {
    /// Stores tasks in the SQLite database at `path`, created if missing (the default is
    /// `offstage.db` in the working directory).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(StoreChoice::Sqlite(path.into()));
        self
    }

    /// Stores tasks in the PostgreSQL database at `url`
    /// (`postgres://user:password@host:5432/database`), which any number of nodes may share.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.store = Some(StoreChoice::Postgres(url.into()));
        self
    }

    /// Stores tasks where `database` says: a `postgres://` (or `postgresql://`) URL is a
    /// PostgreSQL database, anything else a SQLite file. For apps that take the database from
    /// their configuration, as `offstage serve --db` does.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.store = Some(StoreChoice::Named(database.into()));
        self
    }

    /// Stores tasks in `store`.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(StoreChoice::Given(store));
        self
    }

    /// Registers a task type whose body is the async function `f(ctx, args)`.
    pub fn task<A, O, F, Fut>(self, name: &str, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        self.task_with(name, TaskTypeOptions::default(), f)
    }

    /// [`RuntimeBuilder::task`] with options for every launch of the type.
    pub fn task_with<A, O, F, Fut>(mut self, name: &str, options: TaskTypeOptions, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        self.registry.register_fn(name, options, f);
        self
    }

    /// Describes the args of task type `name` (registered before or after) with a JSON
    /// Schema: `/api/task-types`, `offstage types` and the dashboard's launch form show it,
    /// and the form starts from an example built from it. Launches are still checked by
    /// deserializing the args, not against the schema. With feature `schemars`,
    /// `offstage::args_schema` derives one from the args' type.
    ///
    /// ```
    /// use offstage::{Context, Runtime, TaskError};
    /// use serde_json::json;
    ///
    /// let builder = Runtime::builder()
    ///     .task("emails.send", |_ctx: Context, to: String| async move { Ok::<_, TaskError>(to) })
    ///     .args_schema("emails.send", json!({ "type": "string", "examples": ["ada@example.com"] }));
    /// ```
    pub fn args_schema(mut self, name: &str, schema: serde_json::Value) -> Self {
        self.registry.set_args_schema(name, schema);
        self
    }

    /// Registers a [`TaskType`], launchable with compile-time checked args.
    pub fn register<T: TaskType>(mut self, task_type: T) -> Self {
        self.registry.register(task_type);
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Most tasks running at once on this node.
    pub fn max_concurrency(mut self, max: usize) -> Self {
        self.config.max_concurrency = max;
        self
    }

    /// Which finished tasks are kept (default: seven days after they finished), for every
    /// task type without a rule of its own. See [`Retention`].
    pub fn retention(mut self, retention: Retention) -> Self {
        self.config.retention = retention;
        self
    }

    /// Which finished tasks of task type `name` are kept, in place of the default rule.
    pub fn retention_for(mut self, name: impl Into<String>, retention: Retention) -> Self {
        self.config.retention_by_type.insert(name.into(), retention);
        self
    }

    /// How often one of the nodes applies the retention rules (default 60 s).
    pub fn retention_interval(mut self, interval: Duration) -> Self {
        self.config.retention_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Default grace period of a kill.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.config.kill_grace = grace;
        self
    }

    /// How long shutdown waits for running tasks.
    pub fn shutdown_drain(mut self, drain: Duration) -> Self {
        self.config.shutdown_drain = drain;
        self
    }

    /// Largest state, as JSON bytes.
    pub fn state_limit(mut self, bytes: usize) -> Self {
        self.config.state_limit = bytes;
        self
    }

    /// Caps on each task's log.
    pub fn log_limits(mut self, max_lines: u64, max_bytes: u64) -> Self {
        self.config.log_limits = LogLimits {
            max_lines,
            max_bytes,
        };
        self
    }

    /// How worker processes for isolated task types are started and how many are kept warm
    /// (default: this executable with its own arguments, one warm process).
    pub fn isolation(mut self, isolation: super::Isolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// Spawns `f` as a task named `name` when the runtime has started, on every node (each
    /// node runs its own; see [`crate::Runtime::spawn`]).
    pub fn on_start<F, Fut, O>(mut self, name: &str, f: F) -> Self
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
        O: Serialize + Send + 'static,
    {
        self.startup.push(startup(name, false, f));
        self
    }

    /// [`RuntimeBuilder::on_start`], but on one node at a time: the first node to start runs
    /// it, and nodes starting while it runs skip it. (When that node dies the task reads
    /// `missing`; the next node to start runs it again.)
    pub fn on_start_once<F, Fut, O>(mut self, name: &str, f: F) -> Self
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
        O: Serialize + Send + 'static,
    {
        self.startup.push(startup(name, true, f));
        self
    }

    /// Declares a task type that workers serve (`docs/worker-protocol.md`): it can be launched
    /// while no worker serving it is connected, and its tasks wait `queued` until one is. Types
    /// that connected workers announce can be launched without this.
    pub fn remote_task(mut self, name: impl Into<String>) -> Self {
        self.remote.insert(name.into());
        self
    }

    /// Declares a schedule: `schedule.task` launched on every tick of `schedule.cron`, once
    /// per tick across all nodes (see [`crate::Schedule`]). Stored when the runtime starts; if
    /// it exists already, its cron, args and options are updated and it stays paused if it
    /// was.
    pub fn schedule(mut self, schedule: crate::schedule::Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// Defines limiter `name` ([`crate::Limiter`]) for every node on the store, written when
    /// the runtime starts. The last definition written wins: a node whose definition differs
    /// from the store's replaces it and logs a warning, so keep one definition per name in
    /// your code (or define it only over the API). A bad limit is an error from `build`.
    pub fn limiter(mut self, name: impl Into<String>, limit: crate::Limit) -> Self {
        self.limiters.push((name.into(), limit));
        self
    }

    /// Heartbeat interval and the silence after which a node counts as dead.
    pub fn heartbeat(mut self, interval: Duration, node_timeout: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self.config.node_timeout = node_timeout;
        self
    }

    fn check(&self) -> Result<(), Error> {
        let bad = |message: &str| Err(Error::new(ErrorKind::InvalidArgument, message.to_owned()));
        let c = &self.config;
        if c.max_concurrency == 0 {
            return bad("max_concurrency is 0, so no task could ever run: use at least 1");
        }
        if c.flush_interval.is_zero() || c.heartbeat_interval.is_zero() || c.poll_interval.is_zero()
        {
            return bad("flush, heartbeat and poll intervals must be longer than zero");
        }
        if c.node_timeout <= c.heartbeat_interval {
            return bad("node_timeout must be longer than heartbeat_interval, or live nodes would be declared dead");
        }
        if c.log_limits.max_lines < 2 {
            return bad("log_limits.max_lines must leave room for a line and the truncation mark: use at least 2");
        }
        // Task types are launched, listed and stored by name: the launch rules, at build.
        for name in self
            .registry
            .names()
            .chain(self.remote.iter().map(String::as_str))
        {
            crate::limits::check_text("task type name", name, crate::limits::MAX_NAME_CHARS)?;
        }
        for (name, limit) in &self.limiters {
            crate::limiter::check_name(name)?;
            limit.check(name)?;
        }
        Ok(())
    }

    /// The task types registered so far (for [`crate::isolation_entry`]).
    pub(crate) fn into_registry(self) -> Registry {
        self.registry
    }

    /// Opens the store, registers this node, marks the tasks of dead nodes `missing`, and
    /// starts running tasks.
    ///
    /// In a worker process that a node started for its isolated task types, this is where the
    /// process becomes that worker, unless [`crate::isolation_entry`] did so earlier: `build`
    /// then serves the node until it goes, and exits the process without returning. So call
    /// `isolation_entry` first thing in `main`, or build the runtime before anything that
    /// must not happen in every worker process too (binding ports, starting other work), or
    /// point [`super::Isolation`] at a program or arguments that go straight here.
    pub async fn build(self) -> Result<Runtime, Error> {
        if let Some(socket) = crate::worker::isolated::asked() {
            crate::worker::isolated::serve(self.registry, socket).await;
        }
        self.check()?;
        let RuntimeBuilder {
            store,
            registry,
            config,
            remote,
            isolation,
            startup,
            schedules,
            limiters,
        } = self;
        let store = open_store(store).await?;
        let clock = Clock::new();
        let node = NodeId::new();
        store
            .register_node(&NodeInfo {
                id: node,
                host: super::host_name(),
                pid: std::process::id(),
                started_at: clock.now(),
            })
            .await?;
        // Listen before anything happens here, so no notice sent after this node exists is
        // missed.
        let heard = store.listen(node).await?;
        let announce = heard
            .is_some()
            .then(|| super::cluster::announcer(Arc::clone(&store), node));
        let isolation = super::isolation::Pool::new(
            isolation.unwrap_or_default(),
            node,
            config.heartbeat_interval,
        );
        let (shared, releases) = super::shared::SharedHub::new();
        let inner = Arc::new(Inner {
            node: Inner::new_node_cell(node),
            origin: node,
            rejoining: Default::default(),
            names: registry.names().map(str::to_owned).collect(),
            claims: super::claimer::ClaimSet::new(
                registry.names(),
                &registry.limited(),
                &registry.keyed(),
            ),
            rerun: maintenance::rerun(&registry),
            capture: capture(config.capture_level),
            events: Arc::new(EventBus::new(config.event_replay)),
            slots: super::slots::Slots::new(config.max_concurrency),
            store,
            registry,
            config,
            clock,
            live: Mutex::new(Default::default()),
            dirty: Mutex::new(Vec::new()),
            shutting_down: AtomicBool::new(false),
            ended: Default::default(),
            limit_freed: Default::default(),
            schedules_changed: Default::default(),
            workers: super::remote::Workers::new(remote),
            announce,
            isolation,
            shared,
            stats: Default::default(),
            fleet: Default::default(),
            limiters: Default::default(),
            timings: Default::default(),
        });
        // Frees the locks of shared-state guards that were dropped (a killed task's included).
        tokio::spawn(super::shared::release_loop(
            Arc::clone(&inner.store),
            Arc::downgrade(&inner),
            releases,
        ));
        if inner.registry.any_isolated() {
            inner.isolation.fill();
        }
        super::spawned::start_all(&inner, startup).await?;
        if let Some(heard) = heard {
            tokio::spawn(super::cluster::listen_loop(Arc::downgrade(&inner), heard));
        }
        maintenance::recover(&inner).await?;
        super::fleet::send_report(&inner).await;
        super::fleet::refresh_paused(&inner).await;
        for schedule in &schedules {
            super::schedules::put(&inner, schedule).await?;
        }
        for (name, limit) in &limiters {
            super::limiters::put(&inner, name, limit).await?;
        }
        start_loops(&inner);
        Ok(Runtime { inner })
    }
}

/// The store the builder was given or named; the default is SQLite in `offstage.db`.
async fn open_store(choice: Option<StoreChoice>) -> Result<Arc<dyn Store>, Error> {
    Ok(match choice {
        Some(StoreChoice::Given(store)) => store,
        Some(StoreChoice::Named(database)) => open_named(&database).await?,
        #[cfg(feature = "postgres")]
        Some(StoreChoice::Postgres(url)) => {
            Arc::new(crate::store::postgres::PostgresStore::open(&url).await?)
        }
        #[cfg(feature = "sqlite")]
        Some(StoreChoice::Sqlite(path)) => {
            Arc::new(crate::store::sqlite::SqliteStore::open(path).await?)
        }
        #[cfg(feature = "sqlite")]
        None => Arc::new(crate::store::sqlite::SqliteStore::open("offstage.db").await?),
        #[cfg(not(feature = "sqlite"))]
        None => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "no store: call RuntimeBuilder::store, or enable the `sqlite` feature",
            ))
        }
    })
}

/// The `tracing` dispatcher wrapped around every task body: it sends events inside a task to
/// the task's log (from `level` up), and every event on to the app's own subscriber.
fn capture(level: LevelFilter) -> tracing::Dispatch {
    let inherited = tracing::dispatcher::get_default(|dispatch| dispatch.clone());
    tracing::Dispatch::new(TaskLogCapture::new(inherited, level))
}

/// The node's loops, each holding the runtime weakly so that dropping the last handle ends
/// them: the claimer, the cron loop, heartbeats, the flusher and the stats flusher.
fn start_loops(inner: &Arc<Inner>) {
    tokio::spawn(claimer::run(Arc::downgrade(inner)));
    tokio::spawn(super::cron::run(Arc::downgrade(inner)));
    tokio::spawn(maintenance::heartbeat_loop(Arc::downgrade(inner)));
    tokio::spawn(maintenance::flush_loop(Arc::downgrade(inner)));
    tokio::spawn(super::retention::retention_loop(Arc::downgrade(inner)));
    tokio::spawn(super::children::sweep_loop(Arc::downgrade(inner)));
    tokio::spawn(super::stats::flush_loop(Arc::downgrade(inner)));
}

fn startup<F, Fut, O>(name: &str, once: bool, f: F) -> super::spawned::Startup
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    O: Serialize + Send + 'static,
{
    super::spawned::Startup {
        name: name.to_owned(),
        once,
        start: Box::new(move |ctx| {
            Box::pin(async move {
                let output = f(ctx).await?;
                serde_json::to_value(output).map_err(|e| {
                    TaskError::new("output", format!("the return value is not JSON: {e}"))
                })
            })
        }),
    }
}
