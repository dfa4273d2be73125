//! The PostgreSQL store: many nodes on one database.
//!
//! Any number of runtimes (apps embedding Offstage, `offstage serve` processes, on any number
//! of machines) share one PostgreSQL database, or one schema of it. Queued tasks are claimed
//! with `FOR UPDATE SKIP LOCKED`, so nodes never wait on each other and no task is claimed
//! twice. Launches and finishes are group-committed (see `writer.rs`). Nodes tell each other
//! about queued tasks, kills and every event over `LISTEN`/`NOTIFY` (see `notices.rs`), and
//! heartbeat in `offstage_nodes`: when a node falls silent for the node timeout, the first live
//! node to notice marks its running tasks `missing`, in one transaction, so exactly once.
//!
//! The schema is the first one on the connection's `search_path` (`public` by default); put
//! `options[search_path]=myschema` in the URL to keep Offstage's tables apart. That schema is
//! created if missing, and migrated on open, under an advisory lock, so nodes starting
//! together migrate once.
//!
//! The files, the same in both backends: `tasks.rs`, `nodes.rs`, `schedules.rs` and
//! `shared.rs` hold the [`Store`] methods of their noun (this file's `impl Store` hands each
//! call to one of them); `schema.rs` connects and migrates; `rows.rs` maps rows to records;
//! `writer.rs` is the group commit; `notices.rs` carries notices between nodes; and
//! `transaction.rs` launches inside the app's own transaction.
//!
//! ```no_run
//! # async fn demo() -> Result<(), offstage::Error> {
//! let store = offstage::store::postgres::PostgresStore::open("postgres://app@db.internal/app").await?;
//! # Ok(()) }
//! ```

mod actions;
mod back_off;
mod checkpoints;
pub(crate) mod copy;
mod counts;
mod fleet;
mod keys;
mod limiters;
mod nodes;
mod notices;
mod rows;
mod schedules;
mod schema;
mod shared;
mod signals;
mod stats;
mod tasks;
mod transaction;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use self::notices::NoticeTraffic;
use self::schema::{connect, migrate, without_password};
use self::writer::Write;
use super::{Finish, KillOutcome, KillRequest, NodeInfo, Notice, Pending, Purge, Rerun, Store};
use crate::action::ActionRecord;
use crate::error::Error;
use crate::fleet::{NodeRecord, NodeReport, PausedTaskType};
use crate::id::{ActionId, NodeId, TaskId};
use crate::log::LogLine;
use crate::schedule::{Fired, Schedule, ScheduleRecord};
use crate::shared::SharedRecord;
use crate::signal::{SignalRecord, SignalSent};
use crate::status::Status;
use crate::task::{ListFilter, TaskRecord};

/// The SQL that names a schema's notice channel; the same wherever a notice is sent.
const CHANNEL_SQL: &str = "left('offstage:' || current_schema(), 63)";

/// Options for [`PostgresStore::open_with`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Most connections the store opens (default 10), the notice listener's included.
    pub max_connections: u32,
    /// How many transactions of launches and finishes may commit at once (default 2).
    pub writers: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            writers: 2,
        }
    }
}

/// An Offstage store in a PostgreSQL database.
pub struct PostgresStore {
    pool: PgPool,
    /// Where this store's notices go: `offstage:<schema>`.
    channel: String,
    /// For messages: the URL without its password.
    display: String,
    writes: mpsc::UnboundedSender<Write>,
    /// When recovery last looked for orphaned tasks through this handle.
    orphans: super::OrphanSweep,
    /// True while other nodes are registered on the database: notices are sent only then.
    peers: Arc<notices::Peers>,
    /// What this store's notices cost, counted as they are sent and read.
    traffic: Arc<notices::Traffic>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.display)
            .field("channel", &self.channel)
            .finish()
    }
}

/// True when `database` names a PostgreSQL database (a `postgres://` or `postgresql://` URL)
/// rather than a SQLite file.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

pub(super) fn pg_error(what: &str, error: sqlx::Error) -> Error {
    // 53100 disk_full; 53200 out_of_memory and 53300 too_many_connections are not "full".
    if error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "53100")
    {
        return Error::storage_full("the PostgreSQL database", error);
    }
    Error::store(&format!("PostgreSQL {what}"), error)
}

impl PostgresStore {
    /// Connects to the database at `url` with default options and migrates it.
    pub async fn open(url: &str) -> Result<Self, Error> {
        Self::open_with(url, PostgresOptions::default()).await
    }

    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// optionally `?options[search_path]=schema`) and migrates it to the current schema.
    pub async fn open_with(url: &str, options: PostgresOptions) -> Result<Self, Error> {
        let display = without_password(url);
        let pool = connect(url, &display, options.max_connections).await?;
        migrate(&pool, &display).await?;
        let channel: String = sqlx::query_scalar(&format!("SELECT {CHANNEL_SQL}"))
            .fetch_one(&pool)
            .await
            .map_err(|e| pg_error("reading the schema", e))?;
        Ok(Self {
            writes: writer::start(pool.clone(), options.writers),
            pool,
            channel,
            display,
            orphans: super::OrphanSweep::default(),
            peers: Arc::default(),
            traffic: Arc::default(),
        })
    }

    /// Migrates the database at `url` to the current schema without starting a store, as
    /// `offstage migrate` does. Returns the schema version before and after.
    pub async fn migrate(url: &str) -> Result<(u32, u32), Error> {
        let display = without_password(url);
        let pool = connect(url, &display, 1).await?;
        let versions = migrate(&pool, &display).await;
        pool.close().await;
        versions
    }

    /// Migrates the database at `url` up to schema version `version` only, as an earlier
    /// Offstage left it: for tests of what the later migrations do to its data.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub async fn migrate_to(url: &str, version: usize) -> Result<(u32, u32), Error> {
        let display = without_password(url);
        let pool = connect(url, &display, 1).await?;
        let versions = schema::migrate_to(&pool, &display, version).await;
        pool.close().await;
        versions
    }

    /// The `NOTIFY` payloads and bytes this store has sent to the other nodes and read from
    /// them since it opened: what many nodes cost each other (`offstage-bench --only nodes`).
    pub fn notice_traffic(&self) -> NoticeTraffic {
        self.traffic.read()
    }

    /// The connection pool, for apps that want to run their own queries beside Offstage's.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Each method is one step of the [`Store`] contract, done in the file of its noun.
#[async_trait]
impl Store for PostgresStore {
    // Nodes (`nodes.rs`).

    async fn register_node(&self, node: &NodeInfo) -> Result<(), Error> {
        nodes::register(self, node).await
    }

    async fn heartbeat(&self, node: NodeId, now: DateTime<Utc>) -> Result<Vec<KillRequest>, Error> {
        nodes::heartbeat(self, node, now).await
    }

    async fn deregister_node(&self, node: NodeId) -> Result<(), Error> {
        nodes::deregister(self, node).await
    }

    async fn recover(
        &self,
        me: NodeId,
        now: DateTime<Utc>,
        stale_after: Duration,
        rerun: Option<Rerun>,
    ) -> Result<Vec<TaskRecord>, Error> {
        nodes::recover(self, me, now, stale_after, rerun).await
    }

    // Tasks (`tasks.rs`).

    async fn launch(&self, task: &TaskRecord) -> Result<(), Error> {
        tasks::launch(self, task).await
    }

    async fn launch_unique(&self, task: &TaskRecord) -> Result<Option<TaskRecord>, Error> {
        tasks::launch_unique(self, task).await
    }

    async fn claim(
        &self,
        node: NodeId,
        names: &[String],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, Error> {
        tasks::claim(self, node, names, now, limit).await
    }

    async fn claim_limited(
        &self,
        node: NodeId,
        name: &str,
        now: DateTime<Utc>,
        limit: usize,
        max_running: usize,
    ) -> Result<Vec<TaskRecord>, Error> {
        tasks::claim_limited(self, node, name, now, limit, max_running).await
    }

    async fn next_run_at(&self, names: &[String]) -> Result<Option<DateTime<Utc>>, Error> {
        tasks::next_run_at(self, names).await
    }

    async fn save(&self, node: NodeId, batch: Vec<(TaskId, Pending)>) -> Result<(), Error> {
        tasks::save(self, node, batch).await
    }

    async fn finish(&self, id: TaskId, node: NodeId, finish: Finish) -> Result<bool, Error> {
        tasks::finish(self, id, node, finish).await
    }

    async fn save_checkpoint(
        &self,
        id: TaskId,
        node: NodeId,
        checkpoint: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        checkpoints::save(self, id, node, checkpoint, now).await
    }

    async fn kill(
        &self,
        id: TaskId,
        grace: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Result<KillOutcome, Error> {
        tasks::kill(self, id, grace, now).await
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>, Error> {
        tasks::get(self, id).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<TaskRecord>, Error> {
        tasks::list(self, filter).await
    }

    async fn children_to_stop(&self, limit: usize) -> Result<Vec<TaskId>, Error> {
        tasks::children_to_stop(self, limit).await
    }

    async fn logs(&self, id: TaskId, after: u64, limit: usize) -> Result<Vec<LogLine>, Error> {
        tasks::logs(self, id, after, limit).await
    }

    async fn purge(&self, purge: &Purge, limit: usize) -> Result<u64, Error> {
        tasks::purge(self, purge, limit).await
    }

    async fn purge_count(&self, purge: &Purge) -> Result<u64, Error> {
        tasks::purge_count(self, purge).await
    }

    async fn count(&self, filter: &ListFilter) -> Result<u64, Error> {
        tasks::count(self, filter).await
    }

    async fn counts(&self) -> Result<Vec<(String, Status, u64)>, Error> {
        counts::counts(self).await
    }

    async fn take_turn(
        &self,
        job: &str,
        now: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, Error> {
        tasks::take_turn(self, job, now, next).await
    }

    async fn tidy(&self) -> Result<(), Error> {
        counts::fold(self).await?;
        keys::fold(self).await
    }

    // Schedules (`schedules.rs`).

    async fn put_schedule(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<ScheduleRecord, Error> {
        schedules::put(&self.pool, schedule, now).await
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, Error> {
        schedules::list(&self.pool).await
    }

    async fn pause_schedule(
        &self,
        name: &str,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<ScheduleRecord>, Error> {
        schedules::pause(&self.pool, name, paused, now).await
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, Error> {
        schedules::delete(&self.pool, name).await
    }

    async fn fire_schedule(
        &self,
        name: &str,
        tick: DateTime<Utc>,
        task: &TaskRecord,
        unique: bool,
    ) -> Result<Fired, Error> {
        schedules::fire(&self.pool, name, tick, task, unique).await
    }

    // Shared state (`shared.rs`).

    async fn shared_get(&self, name: &str) -> Result<Option<SharedRecord>, Error> {
        shared::get(&self.pool, name).await
    }

    async fn shared_list(&self) -> Result<Vec<SharedRecord>, Error> {
        shared::list(&self.pool).await
    }

    async fn shared_lock(
        &self,
        name: &str,
        token: Uuid,
        node: NodeId,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SharedRecord>, Error> {
        shared::lock(&self.pool, name, token, node, holder, now).await
    }

    async fn shared_unlock(
        &self,
        name: &str,
        token: Uuid,
        value: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<SharedRecord>, Error> {
        shared::unlock(&self.pool, name, token, value, now).await
    }

    // Stats (`stats.rs`).

    async fn record_stats(
        &self,
        node: NodeId,
        rows: Vec<crate::stats::StatsRow>,
        expire_before: DateTime<Utc>,
    ) -> Result<(), Error> {
        stats::record(&self.pool, node, rows, expire_before).await
    }

    async fn stats_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<crate::stats::StatsRow>, Error> {
        stats::since(&self.pool, since).await
    }

    // Notices (`notices.rs`): between the nodes on this database, over LISTEN/NOTIFY.

    // The fleet (`fleet.rs`): paused task types, node reports, kill requests.

    async fn pause_task_type(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<PausedTaskType, Error> {
        fleet::pause(self, name, now).await
    }

    async fn resume_task_type(&self, name: &str) -> Result<bool, Error> {
        fleet::resume(self, name).await
    }

    async fn paused_task_types(&self) -> Result<Vec<PausedTaskType>, Error> {
        fleet::paused(self).await
    }

    async fn report_node(&self, node: NodeId, report: &NodeReport) -> Result<(), Error> {
        fleet::report(self, node, report).await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, Error> {
        fleet::nodes(self).await
    }

    async fn kill_asked(
        &self,
        id: TaskId,
    ) -> Result<Option<(DateTime<Utc>, Option<Duration>)>, Error> {
        fleet::kill_asked(self, id).await
    }

    async fn action_insert(&self, action: &ActionRecord) -> Result<(), Error> {
        actions::insert(self, action).await
    }

    async fn action_update(&self, action: &ActionRecord) -> Result<(), Error> {
        actions::update(self, action).await
    }

    async fn action_get(&self, id: ActionId) -> Result<Option<ActionRecord>, Error> {
        actions::get(self, id).await
    }

    async fn actions(
        &self,
        before: Option<ActionId>,
        limit: usize,
    ) -> Result<Vec<ActionRecord>, Error> {
        actions::list(self, before, limit).await
    }

    async fn signal_send(
        &self,
        id: TaskId,
        name: &str,
        payload: String,
        sent_by: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<SignalSent, Error> {
        signals::send(self, id, name, payload, sent_by, now).await
    }

    async fn signal_receive(
        &self,
        id: TaskId,
        node: NodeId,
        attempt: u32,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SignalRecord>, Error> {
        signals::receive(self, id, node, attempt, name, now).await
    }

    async fn signal_wait(
        &self,
        id: TaskId,
        node: NodeId,
        name: &str,
        until: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        signals::wait(self, id, node, name, until).await
    }

    async fn signal_resume(
        &self,
        id: TaskId,
        node: NodeId,
        name: &str,
        max_running: Option<usize>,
    ) -> Result<bool, Error> {
        signals::resume(self, id, node, name, max_running, None).await
    }

    async fn signals(&self, id: TaskId, limit: usize) -> Result<Vec<SignalRecord>, Error> {
        signals::list(self, id, limit).await
    }

    async fn limit_holders(&self, name: &str, limit: usize) -> Result<Vec<TaskId>, Error> {
        signals::limit_holders(self, name, limit).await
    }

    // Concurrency keys (`keys.rs`).

    async fn claim_keyed(
        &self,
        node: NodeId,
        name: &str,
        now: DateTime<Utc>,
        limit: usize,
        per_key: usize,
        max_running: Option<usize>,
    ) -> Result<Vec<TaskRecord>, Error> {
        keys::claim(self, node, name, now, limit, per_key, max_running).await
    }

    async fn concurrency_keys(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<crate::KeyCount>, Error> {
        keys::counts(self, name, limit).await
    }

    async fn key_holders(&self, name: &str, key: &str, limit: usize) -> Result<Vec<TaskId>, Error> {
        keys::holders(self, name, key, limit).await
    }

    async fn signal_resume_keyed(
        &self,
        id: TaskId,
        node: NodeId,
        name: &str,
        key: &str,
        per_key: usize,
        max_running: Option<usize>,
    ) -> Result<bool, Error> {
        signals::resume(self, id, node, name, max_running, Some((key, per_key))).await
    }

    async fn notify(&self, from: NodeId, notices: Vec<Notice>) -> Result<(), Error> {
        if !self.peers.any() {
            return Ok(());
        }
        notices::send(&self.pool, &self.channel, from, notices, &self.traffic).await
    }

    async fn listen(&self, me: NodeId) -> Result<Option<mpsc::UnboundedReceiver<Notice>>, Error> {
        let peers = Arc::clone(&self.peers);
        let traffic = Arc::clone(&self.traffic);
        notices::listen(&self.pool, &self.channel, me, peers, traffic)
            .await
            .map(Some)
    }

    // Limiters (`limiters.rs`): the database server's clock, not `now`.

    async fn limiter_put(
        &self,
        name: &str,
        limit: &crate::limiter::Limit,
        _now: DateTime<Utc>,
    ) -> Result<(crate::limiter::LimiterRecord, Option<crate::limiter::Limit>), Error> {
        limiters::put(&self.pool, name, limit).await
    }

    async fn limiter_delete(&self, name: &str) -> Result<bool, Error> {
        limiters::delete(&self.pool, name).await
    }

    async fn limiters(
        &self,
        _now: DateTime<Utc>,
    ) -> Result<Vec<crate::limiter::LimiterRecord>, Error> {
        limiters::list(&self.pool).await
    }

    async fn limiter_acquire(
        &self,
        name: &str,
        hold: &crate::limiter::HoldRequest,
        _now: DateTime<Utc>,
    ) -> Result<Option<crate::limiter::Acquire>, Error> {
        limiters::acquire(&self.pool, name, hold).await
    }

    async fn limiter_release(&self, name: &str, hold: Uuid) -> Result<bool, Error> {
        limiters::release(&self.pool, name, hold).await
    }

    async fn back_off(
        &self,
        id: TaskId,
        node: NodeId,
        back_off: super::BackOff,
    ) -> Result<bool, Error> {
        back_off::back_off(self, id, node, back_off).await
    }
}
