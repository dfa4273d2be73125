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
//! ```no_run
//! # async fn demo() -> Result<(), offstage::Error> {
//! let store = offstage::store::sqlite::SqliteStore::open("offstage.db").await?;
//! # Ok(()) }
//! ```

mod hub;
mod rows;
mod schedules;
mod shared;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::mpsc;

use self::rows::{from_micros, micros, task_from_row, NewTask, TASK_COLUMNS};
use self::writer::{configure, migrate, sqlite_error, write_loop, Job};
use super::{Finish, KillOutcome, KillRequest, NodeInfo, Pending, Store};
use crate::error::{Error, ErrorKind};
use crate::id::{NodeId, TaskId};
use crate::log::{LogLevel, LogLine};
use crate::schedule::{Fired, Schedule, ScheduleRecord};
use crate::shared::SharedRecord;
use crate::status::Status;
use crate::task::{ListFilter, TaskRecord};

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_isolated.sql"),
    include_str!("migrations/0003_schedules.sql"),
    include_str!("migrations/0004_shared.sql"),
    include_str!("migrations/0005_timeout_seconds.sql"),
];

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
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(Error::new(
                    ErrorKind::Store,
                    format!(
                        "cannot create the database {}: the directory {} does not exist; create \
                         it first or choose another path",
                        path.display(),
                        dir.display()
                    ),
                ));
            }
        }
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || -> Result<Connection, Error> {
                let mut conn =
                    Connection::open(&path).map_err(|e| sqlite_error(&path, "open", e))?;
                configure(&conn, options.durability).map_err(|e| sqlite_error(&path, "open", e))?;
                migrate(&path, &mut conn)?;
                Ok(conn)
            })
            .await
            .map_err(|e| Error::new(ErrorKind::Store, format!("opening SQLite failed: {e}")))??
        };
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

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn nodes_dir(&self) -> PathBuf {
        let mut dir = self.path.clone().into_os_string();
        dir.push("-nodes");
        PathBuf::from(dir)
    }
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("JSON values always serialize")
}

fn kill_grace_ms(grace: Option<Duration>) -> i64 {
    grace.map_or(-1, |g| g.as_millis().min(i64::MAX as u128) as i64)
}

fn insert_logs(conn: &Connection, id: TaskId, logs: &[LogLine]) -> rusqlite::Result<()> {
    if logs.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO offstage_logs (task_id, seq, at, level, message) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for line in logs {
        insert.execute(params![
            id,
            line.seq as i64,
            micros(line.at),
            line.level.as_str(),
            line.message
        ])?;
    }
    Ok(())
}

/// Queues again, in the recovery's own transaction, each task just marked `missing` that
/// `rerun` says runs again, and updates its record to match.
fn rerun_missing(
    conn: &Connection,
    records: &mut [TaskRecord],
    rerun: Option<&super::Rerun>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let Some(rerun) = rerun else { return Ok(()) };
    for record in records.iter_mut() {
        let Some((due, line)) = rerun(record, now) else {
            continue;
        };
        conn.prepare_cached(
            "UPDATE offstage_tasks SET status = 'queued', run_at = ?2, finished_at = NULL, \
             node = NULL WHERE id = ?1",
        )?
        .execute(params![record.id, micros(due)])?;
        insert_logs(conn, record.id, std::slice::from_ref(&line))?;
        record.status = Status::Queued;
        record.run_at = due;
        record.finished_at = None;
        record.node = None;
    }
    Ok(())
}

/// The queued or running task named `name` with key `key`, if there is one. Run by the
/// writer, whose `BEGIN IMMEDIATE` keeps anyone from inserting one before its caller does.
fn live_with_key(
    conn: &Connection,
    name: &str,
    key: Option<&str>,
) -> rusqlite::Result<Option<TaskRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE name = ?1 AND task_key = ?2 \
         AND status IN ('queued', 'running') ORDER BY id LIMIT 1"
    ))?
    .query_row(params![name, key], task_from_row)
    .optional()
}

/// The node a task to be inserted `running` is claimed by, if it is.
fn running_on(task: &TaskRecord) -> Option<NodeId> {
    (task.status == Status::Running)
        .then_some(task.node)
        .flatten()
}

/// True while `node` is registered: it has not shut down or been declared dead. Run by the
/// writer, whose `BEGIN IMMEDIATE` keeps recovery on any handle from removing it before the
/// caller's write commits.
fn registered(conn: &Connection, node: NodeId) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM offstage_nodes WHERE id = ?1")?
        .exists([node])
}

fn this_host() -> String {
    crate::runtime::host_name()
}

#[async_trait]
impl Store for SqliteStore {
    async fn register_node(&self, node: &NodeInfo) -> Result<(), Error> {
        let dir = self.nodes_dir();
        let lock_path = dir.join(format!("{}.lock", node.id));
        let file = std::fs::create_dir_all(&dir)
            .and_then(|_| File::create(&lock_path))
            .and_then(|file| file.try_lock().map(|_| file).map_err(std::io::Error::from))
            .map_err(|e| Error::store(&format!("locking {}", lock_path.display()), e))?;
        self.node_locks
            .lock()
            .expect("node locks poisoned")
            .insert(node.id, file);
        let node = node.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO offstage_nodes (id, host, pid, started_at, heartbeat_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![node.id, node.host, node.pid, micros(node.started_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn heartbeat(&self, node: NodeId, now: DateTime<Utc>) -> Result<Vec<KillRequest>, Error> {
        self.write(move |conn| {
            let beat = conn
                .prepare_cached("UPDATE offstage_nodes SET heartbeat_at = ?2 WHERE id = ?1")?
                .execute(params![node, micros(now)])?;
            if beat == 0 {
                return Ok(Err(super::node_dead(node)));
            }
            let mut select = conn.prepare_cached(
                "SELECT id, kill_grace_ms FROM offstage_tasks \
                 WHERE kill_grace_ms IS NOT NULL AND node = ?1 AND status = 'running'",
            )?;
            let requests = select
                .query_map([node], |row| {
                    let task_id: TaskId = row.get(0)?;
                    let grace: i64 = row.get(1)?;
                    Ok(KillRequest {
                        task_id,
                        grace: (grace >= 0).then(|| Duration::from_millis(grace as u64)),
                    })
                })?
                .filter_map(Result::ok)
                .collect();
            Ok(Ok(requests))
        })
        .await?
    }

    async fn deregister_node(&self, node: NodeId) -> Result<(), Error> {
        self.write(move |conn| {
            shared::free_locks_of(conn, node)?;
            conn.execute("DELETE FROM offstage_nodes WHERE id = ?1", [node])?;
            Ok(())
        })
        .await?;
        if self
            .node_locks
            .lock()
            .expect("node locks poisoned")
            .remove(&node)
            .is_some()
        {
            let _ = std::fs::remove_file(self.nodes_dir().join(format!("{node}.lock")));
        }
        Ok(())
    }

    async fn recover(
        &self,
        me: NodeId,
        now: DateTime<Utc>,
        stale_after: Duration,
        rerun: Option<super::Rerun>,
    ) -> Result<Vec<TaskRecord>, Error> {
        let nodes_dir = self.nodes_dir();
        let host = this_host();
        let stale_before = micros(now) - stale_after.as_micros().min(i64::MAX as u128) as i64;
        let sweep_orphans = self.orphans.due(now, stale_after);
        let (records, dead) = self
            .write(move |conn| {
                let nodes: Vec<(NodeId, String, i64, i64)> = conn
                    .prepare_cached("SELECT id, host, pid, heartbeat_at FROM offstage_nodes WHERE id != ?1")?
                    .query_map([me], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut dead = Vec::new();
                for (id, node_host, pid, heartbeat_at) in nodes {
                    let gone = heartbeat_at < stale_before
                        || (node_host == host && lock_is_free(&nodes_dir.join(format!("{id}.lock"))));
                    if gone {
                        dead.push((id, node_host, pid));
                    }
                }
                let mut records = Vec::new();
                let mut mark = conn.prepare_cached(&format!(
                    "UPDATE offstage_tasks SET status = 'missing', finished_at = ?2, error = ?3, \
                     kill_grace_ms = NULL \
                     WHERE status = 'running' AND node = ?1 RETURNING {TASK_COLUMNS}"
                ))?;
                for (id, node_host, pid) in &dead {
                    let error = crate::TaskError::new(
                        "missing",
                        format!(
                            "the node running this task (host {node_host}, pid {pid}) stopped \
                             without finishing it"
                        ),
                    );
                    let rows = mark.query_map(params![id, micros(now), json_text(&error)], task_from_row)?;
                    for row in rows {
                        records.push(row?);
                    }
                    conn.prepare_cached("DELETE FROM offstage_nodes WHERE id = ?1")?.execute([id])?;
                }
                // Shared-state locks of nodes that are gone (just now, or before): cheap, as
                // only locked rows are read, so on every pass.
                shared::free_orphaned_locks(conn, me)?;
                // Running tasks of nodes that are not registered at all (written by hand, or by
                // a node whose row was removed). Not on every pass: the sweep reads every running
                // task, and this runs every heartbeat (see `OrphanSweep`).
                if !sweep_orphans && dead.is_empty() {
                    rerun_missing(conn, &mut records, rerun.as_ref(), now)?;
                    return Ok((records, dead));
                }
                let orphan_error = crate::TaskError::new(
                    "missing",
                    "the node running this task is no longer registered",
                );
                let rows = conn
                    .prepare_cached(&format!(
                        "UPDATE offstage_tasks SET status = 'missing', finished_at = ?2, error = ?3, \
                         kill_grace_ms = NULL \
                         WHERE status = 'running' AND node != ?1 \
                         AND node NOT IN (SELECT id FROM offstage_nodes) RETURNING {TASK_COLUMNS}"
                    ))?
                    .query_map(params![me, micros(now), json_text(&orphan_error)], task_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                records.extend(rows);
                rerun_missing(conn, &mut records, rerun.as_ref(), now)?;
                Ok((records, dead))
            })
            .await?;
        for (id, _, _) in dead {
            let _ = std::fs::remove_file(self.nodes_dir().join(format!("{id}.lock")));
        }
        Ok(records)
    }

    async fn launch(&self, task: &TaskRecord) -> Result<(), Error> {
        let row = NewTask::from(task);
        let node = running_on(task);
        self.write(move |conn| {
            if let Some(node) = node {
                if !registered(conn, node)? {
                    return Ok(Err(super::node_dead(node)));
                }
            }
            row.insert(conn).map(Ok)
        })
        .await?
    }

    async fn launch_unique(&self, task: &TaskRecord) -> Result<Option<TaskRecord>, Error> {
        let row = NewTask::from(task);
        let (name, key) = (task.name.clone(), task.key.clone());
        // The writer holds the database's write lock (BEGIN IMMEDIATE) for the whole batch, so
        // nothing, in this process or another, can insert between the look and the insert.
        let node = running_on(task);
        self.write(move |conn| {
            if let Some(node) = node {
                if !registered(conn, node)? {
                    return Ok(Err(super::node_dead(node)));
                }
            }
            let live = live_with_key(conn, &name, key.as_deref())?;
            if live.is_none() {
                row.insert(conn)?;
            }
            Ok(Ok(live))
        })
        .await?
    }

    async fn claim(
        &self,
        node: NodeId,
        names: &[String],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, Error> {
        let names = json_text(&names);
        let mut records = self
            .write(move |conn| {
                if !registered(conn, node)? {
                    return Ok(Err(super::node_dead(node)));
                }
                conn.prepare_cached(&format!(
                    "UPDATE offstage_tasks SET status = 'running', node = ?1, started_at = ?2, \
                     attempt = attempt + 1 \
                     WHERE id IN (SELECT id FROM offstage_tasks INDEXED BY offstage_tasks_queue \
                         WHERE status = 'queued' AND run_at <= ?2 \
                         AND name IN (SELECT value FROM json_each(?3)) \
                         ORDER BY priority DESC, id LIMIT ?4) \
                     RETURNING {TASK_COLUMNS}"
                ))?
                .query_map(
                    params![node, micros(now), names, limit as i64],
                    task_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map(Ok)
            })
            .await??;
        records.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    async fn claim_limited(
        &self,
        node: NodeId,
        name: &str,
        now: DateTime<Utc>,
        limit: usize,
        max_running: usize,
    ) -> Result<Vec<TaskRecord>, Error> {
        let name = name.to_owned();
        // Inside the writer's BEGIN IMMEDIATE batch: no other process can start one between the
        // count and the claim.
        let mut records = self
            .write(move |conn| {
                if !registered(conn, node)? {
                    return Ok(Err(super::node_dead(node)));
                }
                let running: i64 = conn
                    .prepare_cached(
                        "SELECT count(*) FROM offstage_tasks \
                         WHERE status = 'running' AND name = ?1",
                    )?
                    .query_row([&name], |row| row.get(0))?;
                let room = (max_running as i64 - running).clamp(0, limit as i64);
                if room == 0 {
                    return Ok(Ok(Vec::new()));
                }
                conn.prepare_cached(&format!(
                    "UPDATE offstage_tasks SET status = 'running', node = ?1, started_at = ?2, \
                     attempt = attempt + 1 \
                     WHERE id IN (SELECT id FROM offstage_tasks INDEXED BY offstage_tasks_queue \
                         WHERE status = 'queued' AND run_at <= ?2 AND name = ?3 \
                         ORDER BY priority DESC, id LIMIT ?4) \
                     RETURNING {TASK_COLUMNS}"
                ))?
                .query_map(params![node, micros(now), name, room], task_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map(Ok)
            })
            .await??;
        records.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    async fn next_run_at(&self, names: &[String]) -> Result<Option<DateTime<Utc>>, Error> {
        let names = json_text(&names);
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT min(run_at) FROM offstage_tasks WHERE status = 'queued' \
                 AND name IN (SELECT value FROM json_each(?1))",
            )?
            .query_row([names], |row| row.get::<_, Option<i64>>(0))
            .map(|at| at.map(from_micros))
        })
        .await
    }

    async fn save(&self, node: NodeId, batch: Vec<(TaskId, Pending)>) -> Result<(), Error> {
        self.write(move |conn| {
            let mut owned = conn.prepare_cached(
                "SELECT 1 FROM offstage_tasks WHERE id = ?1 AND node = ?2 AND status = 'running'",
            )?;
            let mut update =
                conn.prepare_cached("UPDATE offstage_tasks SET state = ?2 WHERE id = ?1")?;
            for (id, pending) in &batch {
                // Fenced: only the node the task is running on writes about it.
                if !owned.exists(params![id, node])? {
                    continue;
                }
                if let Some(state) = &pending.state {
                    update.execute(params![id, state])?;
                }
                insert_logs(conn, *id, &pending.logs)?;
            }
            Ok(())
        })
        .await
    }

    async fn finish(&self, id: TaskId, node: NodeId, finish: Finish) -> Result<bool, Error> {
        let return_value = finish.return_value.as_ref().map(json_text);
        let error = finish.error.as_ref().map(json_text);
        let finished_at = micros(finish.finished_at);
        let retry_at = finish.retry_at.map(micros);
        let Finish {
            status,
            state,
            logs,
            ..
        } = finish;
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE offstage_tasks SET status = ?3, state = ?4, return_value = ?5, \
                     error = ?6, kill_grace_ms = NULL, \
                     finished_at = CASE WHEN ?8 IS NULL THEN ?7 END, \
                     run_at = coalesce(?8, run_at), \
                     node = CASE WHEN ?8 IS NULL THEN node END \
                     WHERE id = ?1 AND node = ?2 AND status = 'running'",
                )?
                .execute(params![
                    id,
                    node,
                    status.as_str(),
                    state,
                    return_value,
                    error,
                    finished_at,
                    retry_at
                ])?;
            // Fenced: a task this node no longer runs gets none of its lines either.
            if changed == 1 {
                insert_logs(conn, id, &logs)?;
            }
            Ok(changed == 1)
        })
        .await
    }

    async fn kill(
        &self,
        id: TaskId,
        grace: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Result<KillOutcome, Error> {
        self.write(move |conn| {
            let select = format!("SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE id = ?1");
            let Some(record) = conn
                .prepare_cached(&select)?
                .query_row([id], task_from_row)
                .optional()?
            else {
                return Err(rusqlite::Error::QueryReturnedNoRows);
            };
            match record.status {
                Status::Queued => {
                    let error = crate::TaskError::new("killed", "killed before it started");
                    let record = conn
                        .prepare_cached(&format!(
                            "UPDATE offstage_tasks SET status = 'killed', finished_at = ?2, \
                             error = ?3 WHERE id = ?1 RETURNING {TASK_COLUMNS}"
                        ))?
                        .query_row(params![id, micros(now), json_text(&error)], task_from_row)?;
                    Ok(KillOutcome::Killed(record))
                }
                Status::Running => {
                    conn.prepare_cached(
                        "UPDATE offstage_tasks SET kill_grace_ms = ?2 WHERE id = ?1",
                    )?
                    .execute(params![id, kill_grace_ms(grace)])?;
                    let node = record.node.expect("a running task has a node");
                    Ok(KillOutcome::Requested { node })
                }
                _ => Ok(KillOutcome::AlreadyFinished(record)),
            }
        })
        .await
        .map_err(|e| {
            if is_no_rows(&e) {
                Error::not_found(id)
            } else {
                e
            }
        })
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>, Error> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE id = ?1"
            ))?
            .query_row([id], task_from_row)
            .optional()
        })
        .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<TaskRecord>, Error> {
        let filter = filter.clone();
        self.read(move |conn| {
            let limit = filter.effective_limit();
            let mut sql = format!("SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE 1 = 1");
            let mut values: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            let mut bind = |sql: &mut String, column: &str, value: Box<dyn rusqlite::ToSql>| {
                values.push(value);
                sql.push_str(&format!(" AND {column} ?{}", values.len()));
            };
            if let Some(name) = filter.name {
                bind(&mut sql, "name =", Box::new(name));
            }
            if let Some(status) = filter.status {
                bind(&mut sql, "status =", Box::new(status.as_str()));
            }
            if let Some(owner) = filter.owner {
                bind(&mut sql, "owner =", Box::new(owner));
            }
            if let Some(key) = filter.key {
                bind(&mut sql, "task_key =", Box::new(key));
            }
            if let Some(before) = filter.before {
                bind(&mut sql, "id <", Box::new(before));
            }
            sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
            conn.prepare_cached(&sql)?
                .query_map(
                    rusqlite::params_from_iter(values.iter().map(|v| v.as_ref())),
                    task_from_row,
                )?
                .collect()
        })
        .await
    }

    async fn logs(&self, id: TaskId, after: u64, limit: usize) -> Result<Vec<LogLine>, Error> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT seq, at, level, message FROM offstage_logs \
                 WHERE task_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?
            .query_map(params![id, after as i64, limit as i64], |row| {
                Ok(LogLine {
                    seq: row.get::<_, i64>(0)? as u64,
                    at: from_micros(row.get(1)?),
                    level: LogLevel::parse(&row.get::<_, String>(2)?),
                    message: row.get(3)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        self.write(move |conn| {
            let before = micros(before);
            conn.execute(
                "DELETE FROM offstage_logs WHERE task_id IN \
                 (SELECT id FROM offstage_tasks WHERE finished_at < ?1)",
                [before],
            )?;
            let deleted = conn.execute(
                "DELETE FROM offstage_tasks WHERE finished_at < ?1",
                [before],
            )?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<(String, Status, u64)>, Error> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT name, status, count(*) FROM offstage_tasks GROUP BY name, status \
                 ORDER BY name, status",
            )?
            .query_map([], |row| {
                let status: String = row.get(1)?;
                let count: i64 = row.get(2)?;
                let status = status.parse::<Status>().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
                Ok((row.get(0)?, status, count as u64))
            })?
            .collect()
        })
        .await
    }

    async fn put_schedule(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<ScheduleRecord, Error> {
        let schedule = schedule.clone();
        self.write(move |conn| schedules::put(conn, &schedule, now))
            .await
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, Error> {
        self.read(schedules::list).await
    }

    async fn pause_schedule(
        &self,
        name: &str,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<ScheduleRecord>, Error> {
        let name = name.to_owned();
        self.write(move |conn| schedules::pause(conn, &name, paused, now))
            .await
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, Error> {
        let name = name.to_owned();
        self.write(move |conn| schedules::delete(conn, &name)).await
    }

    async fn fire_schedule(
        &self,
        name: &str,
        tick: DateTime<Utc>,
        task: &TaskRecord,
        unique: bool,
    ) -> Result<Fired, Error> {
        let (name, row) = (name.to_owned(), NewTask::from(task));
        self.write(move |conn| schedules::fire(conn, &name, tick, &row, unique))
            .await
    }

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

    async fn notify(&self, from: NodeId, notices: Vec<super::Notice>) -> Result<(), Error> {
        hub::send(&self.notices, from, notices);
        Ok(())
    }

    async fn listen(
        &self,
        me: NodeId,
    ) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<super::Notice>>, Error> {
        Ok(Some(hub::listen(&self.notices, me)))
    }
}

fn is_no_rows(error: &Error) -> bool {
    std::error::Error::source(error)
        .and_then(|s| s.downcast_ref::<rusqlite::Error>())
        .is_some_and(|e| matches!(e, rusqlite::Error::QueryReturnedNoRows))
}

/// True when nobody holds the lock file at `path` (or it does not exist): its node is gone.
fn lock_is_free(path: &Path) -> bool {
    match File::options().write(true).open(path) {
        Ok(file) => file.try_lock().is_ok(),
        Err(_) => true,
    }
}
