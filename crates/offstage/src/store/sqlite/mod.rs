//! The SQLite store: one file, WAL, durable commits, a single writer with group commit.
//!
//! Every write goes to one writer thread that owns the only writing connection. The thread
//! takes everything that queued up while the previous transaction committed, runs it in one
//! transaction and commits once. Operations carry no savepoint each (a savepoint per operation
//! cost more than the operation, in statement-journal writes): an operation is one statement,
//! which SQLite makes atomic, or fails only when the whole commit would fail too (I/O errors). Under load one fsync covers hundreds of launches; when idle a launch commits
//! alone. Reads use a small pool of separate connections, which WAL lets run beside the writer.
//!
//! Node liveness: each runtime holds an exclusive lock on `<db>-nodes/<node-id>.lock`. The
//! kernel drops the lock when the process dies, so a runtime opening the database later sees at
//! once which nodes on this machine are gone, without waiting for their heartbeats to go stale.
//!
//! The files, the same in both backends: `tasks.rs`, `nodes.rs`, `schedules.rs` and
//! `shared.rs` hold the [`Store`] methods of their noun (this file's `impl Store` hands each
//! call to one of them); `schema.rs` opens and migrates the database; `rows.rs` maps rows to
//! records; `writer.rs` is the group commit; `hub.rs` carries notices between handles.
//!
//! ```no_run
//! # async fn demo() -> Result<(), offstage::Error> {
//! let store = offstage::store::sqlite::SqliteStore::open("offstage.db").await?;
//! # Ok(()) }
//! ```

mod actions;
mod back_off;
mod checkpoints;
pub(crate) mod copy;
mod counts;
mod fleet;
mod hub;
mod keys;
mod limiters;
mod nodes;
mod rows;
mod schedules;
mod schema;
mod shared;
mod signals;
mod stats;
mod tasks;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::mpsc;

use self::writer::{write_loop, Job};
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

/// How hard SQLite works to keep a commit when the machine loses power.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a launch that returned survives a power cut. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a crash of the process, but a power cut may lose the last
    /// commits. Faster on disks with slow fsync.
    Normal,
}

/// Options for [`SqliteStore::open_with`].
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Commit durability.
    pub durability: Durability,
}

/// An Offstage store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::UnboundedSender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Lock files of the nodes this process registered, held open (and so locked) until the
    /// node deregisters or the process dies.
    node_locks: Arc<Mutex<HashMap<NodeId, File>>>,
    /// When recovery last looked for orphaned tasks through this handle.
    orphans: super::OrphanSweep,
    /// Notices between handles on this file in this process (see `hub.rs`).
    notices: tokio::sync::broadcast::Sender<hub::Batch>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteOptions {
    /// These options with `durability`.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default options.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens (creating if needed) the database at `path`, migrating it to the current schema.
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let opened = schema::open(&path, options.durability).await?;
        let (writer, jobs) = mpsc::unbounded_channel();
        // A thread of its own rather than a blocking task: it must never hold up the shutdown
        // of the app's tokio runtime. It ends when the last handle to the store is dropped.
        std::thread::Builder::new()
            .name("offstage-sqlite-writer".to_owned())
            .spawn({
                let path = path.clone();
                move || write_loop(&path, opened, jobs)
            })
            .map_err(|e| Error::store("starting the SQLite writer thread", e))?;
        Ok(Self {
            writer,
            readers: Arc::new(Mutex::new(Vec::new())),
            node_locks: Arc::new(Mutex::new(HashMap::new())),
            orphans: super::OrphanSweep::default(),
            notices: hub::channel(&path),
            path,
        })
    }

    /// Creates a database at `path` with the schema of version `version` only, as an
    /// earlier Offstage left it: for tests of what the later migrations do to its data.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub async fn create_at_version(path: impl AsRef<Path>, version: usize) -> Result<(), Error> {
        schema::create_at_version(path.as_ref(), version).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands the pages a purge freed back to the file system, so the file shrinks as old tasks
    /// go (on files made with incremental auto-vacuum: every file this Offstage creates). Best
    /// effort: a failure leaves the pages free for SQLite to reuse, and is only logged.
    async fn give_back_space(&self) {
        let freed = self
            .write(|conn| {
                // It frees one page per step: stepped to the end, it frees them all.
                let mut vacuum = conn.prepare_cached("PRAGMA incremental_vacuum")?;
                let mut steps = vacuum.query([])?;
                while steps.next()?.is_some() {}
                Ok(())
            })
            .await;
        if let Err(error) = freed {
            tracing::debug!(%error, "giving freed pages back to the file system failed");
        }
    }
}

/// Each method is one step of the [`Store`] contract, done in the file of its noun.
#[async_trait]
impl Store for SqliteStore {
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

    // Schedules (`schedules.rs`).

    async fn put_schedule(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<ScheduleRecord, Error> {
        schedules::put(self, schedule, now).await
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, Error> {
        schedules::list(self).await
    }

    async fn pause_schedule(
        &self,
        name: &str,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<ScheduleRecord>, Error> {
        schedules::pause(self, name, paused, now).await
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, Error> {
        schedules::delete(self, name).await
    }

    async fn fire_schedule(
        &self,
        name: &str,
        tick: DateTime<Utc>,
        task: &TaskRecord,
        unique: bool,
    ) -> Result<Fired, Error> {
        schedules::fire(self, name, tick, task, unique).await
    }

    // Shared state (`shared.rs`).

    async fn shared_get(&self, name: &str) -> Result<Option<SharedRecord>, Error> {
        shared::get(self, name).await
    }

    async fn shared_list(&self) -> Result<Vec<SharedRecord>, Error> {
        shared::list(self).await
    }

    async fn shared_lock(
        &self,
        name: &str,
        token: uuid::Uuid,
        node: NodeId,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SharedRecord>, Error> {
        shared::lock(self, name, token, node, holder, now).await
    }

    async fn shared_unlock(
        &self,
        name: &str,
        token: uuid::Uuid,
        value: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<SharedRecord>, Error> {
        shared::unlock(self, name, token, value, now).await
    }

    // Stats (`stats.rs`).

    async fn record_stats(
        &self,
        node: NodeId,
        rows: Vec<crate::stats::StatsRow>,
        expire_before: DateTime<Utc>,
    ) -> Result<(), Error> {
        stats::record(self, node, rows, expire_before).await
    }

    async fn stats_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<crate::stats::StatsRow>, Error> {
        stats::since(self, since).await
    }

    // Notices (`hub.rs`): between the handles on this file in this process.

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
        hub::send(&self.notices, from, notices);
        Ok(())
    }

    async fn listen(&self, me: NodeId) -> Result<Option<mpsc::UnboundedReceiver<Notice>>, Error> {
        Ok(Some(hub::listen(&self.notices, me)))
    }

    // Limiters (`limiters.rs`).

    async fn limiter_put(
        &self,
        name: &str,
        limit: &crate::limiter::Limit,
        now: DateTime<Utc>,
    ) -> Result<(crate::limiter::LimiterRecord, Option<crate::limiter::Limit>), Error> {
        limiters::put(self, name, limit, now).await
    }

    async fn limiter_delete(&self, name: &str) -> Result<bool, Error> {
        limiters::delete(self, name).await
    }

    async fn limiters(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::limiter::LimiterRecord>, Error> {
        limiters::list(self, now).await
    }

    async fn limiter_acquire(
        &self,
        name: &str,
        hold: &crate::limiter::HoldRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::limiter::Acquire>, Error> {
        limiters::acquire(self, name, hold, now).await
    }

    async fn limiter_release(&self, name: &str, hold: uuid::Uuid) -> Result<bool, Error> {
        limiters::release(self, name, hold).await
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
