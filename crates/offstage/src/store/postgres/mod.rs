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
//! ```no_run
//! # async fn demo() -> Result<(), offstage::Error> {
//! let store = offstage::store::postgres::PostgresStore::open("postgres://app@db.internal/app").await?;
//! # Ok(()) }
//! ```

mod notices;
mod rows;
mod schedules;
mod schema;
mod shared;
mod transaction;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use self::rows::{task_from_row, TaskArrays, TASK_COLUMNS};
use self::schema::{connect, migrate};
use self::writer::Write;
use super::{Finish, KillOutcome, KillRequest, NodeInfo, Notice, Pending, Store};
use crate::error::{Error, ErrorKind};
use crate::id::{NodeId, TaskId};
use crate::log::{LogLevel, LogLine};
use crate::schedule::{Fired, Schedule, ScheduleRecord};
use crate::shared::SharedRecord;
use crate::status::Status;
use crate::task::{ListFilter, TaskRecord};

/// The migrations, in order; version N is the Nth.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_isolated.sql"),
    include_str!("migrations/0003_schedules.sql"),
    include_str!("migrations/0004_shared.sql"),
    include_str!("migrations/0005_timeout_seconds.sql"),
];

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

pub(super) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("JSON values always serialize")
}

/// `url` with its password (if any) replaced by `***`, for messages and logs.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn kill_grace_ms(grace: Option<Duration>) -> i64 {
    grace.map_or(-1, |g| g.as_millis().min(i64::MAX as u128) as i64)
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

    /// The connection pool, for apps that want to run their own queries beside Offstage's.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether nodes other than `me` are registered, for [`Store::notify`] to know.
    async fn refresh_peers(&self, me: NodeId) -> Result<(), Error> {
        let mark = self.peers.mark();
        let others: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM offstage_nodes WHERE id <> $1)")
                .bind(me.as_uuid())
                .fetch_one(&self.pool)
                .await
                .map_err(|e| pg_error("reading the nodes", e))?;
        self.peers.counted(mark, others);
        Ok(())
    }

    async fn write_op<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Write,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let gone = || {
            Error::new(
                ErrorKind::Store,
                "the PostgreSQL writers have stopped; reopen the store",
            )
        };
        self.writes.send(make(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn register_node(&self, node: &NodeInfo) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO offstage_nodes (id, host, pid, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO UPDATE SET heartbeat_at = $4",
        )
        .bind(node.id.as_uuid())
        .bind(&node.host)
        .bind(node.pid as i32)
        .bind(node.started_at)
        .execute(&self.pool)
        .await
        .map_err(|e| pg_error("registering the node", e))?;
        self.refresh_peers(node.id).await?;
        notices::announce_joined(&self.pool, &self.channel, node.id).await
    }

    async fn heartbeat(&self, node: NodeId, now: DateTime<Utc>) -> Result<Vec<KillRequest>, Error> {
        let err = |e| pg_error("heartbeat", e);
        let beat = sqlx::query("UPDATE offstage_nodes SET heartbeat_at = $2 WHERE id = $1")
            .bind(node.as_uuid())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        if beat.rows_affected() == 0 {
            // Another node declared this one dead (it was silent for the node timeout) and
            // marked its tasks missing; nothing it writes about them applies any more.
            return Err(super::node_dead(node));
        }
        self.refresh_peers(node).await?;
        let rows = sqlx::query(
            "SELECT id, kill_grace_ms FROM offstage_tasks \
             WHERE kill_grace_ms IS NOT NULL AND node = $1 AND status = 'running'",
        )
        .bind(node.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|row| {
                let grace: i64 = row.try_get(1)?;
                Ok(KillRequest {
                    task_id: row.try_get::<Uuid, _>(0)?.into(),
                    grace: (grace >= 0).then(|| Duration::from_millis(grace as u64)),
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(err)
    }

    async fn deregister_node(&self, node: NodeId) -> Result<(), Error> {
        let err = |e| pg_error("deregistering the node", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        shared::free_locks_of(&mut tx, node).await.map_err(err)?;
        sqlx::query("DELETE FROM offstage_nodes WHERE id = $1")
            .bind(node.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    async fn recover(
        &self,
        me: NodeId,
        now: DateTime<Utc>,
        stale_after: Duration,
        rerun: Option<super::Rerun>,
    ) -> Result<Vec<TaskRecord>, Error> {
        let err = |e| pg_error("recovery", e);
        let stale_before =
            now - chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
        let sweep_orphans = self.orphans.due(now, stale_after);
        let mut tx = self.pool.begin().await.map_err(err)?;
        // A node frozen inside a transaction holds its locks until the server ends its session
        // (`IDLE_IN_TRANSACTION_TIMEOUT`): give up this pass rather than wait for it, so this
        // node's own heartbeat goes on; the next pass finds the locks gone.
        sqlx::query("SET LOCAL lock_timeout = '1s'")
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        // Deleting the dead nodes' rows is what makes recovery happen once: of two nodes
        // recovering at the same moment, only the one whose DELETE returned the row marks
        // its tasks (the other's DELETE waits on the row lock, then finds it gone).
        let dead = sqlx::query(
            "DELETE FROM offstage_nodes WHERE id <> $1 AND heartbeat_at < $2 \
             RETURNING id, host, pid",
        )
        .bind(me.as_uuid())
        .bind(stale_before)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        let mut records = Vec::new();
        for row in &dead {
            let id: Uuid = row.try_get(0).map_err(err)?;
            let host: String = row.try_get(1).map_err(err)?;
            let pid: i32 = row.try_get(2).map_err(err)?;
            let error = crate::TaskError::new(
                "missing",
                format!("the node running this task (host {host}, pid {pid}) stopped heartbeating without finishing it"),
            );
            let marked = sqlx::query(&format!(
                "UPDATE offstage_tasks SET status = 'missing', finished_at = $2, error = $3, \
                 kill_grace_ms = NULL WHERE status = 'running' AND node = $1 RETURNING {TASK_COLUMNS}"
            ))
            .bind(id)
            .bind(now)
            .bind(json_text(&error))
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            for row in &marked {
                records.push(task_from_row(row).map_err(err)?);
            }
        }
        if sweep_orphans || !dead.is_empty() {
            // Running tasks of nodes that are not registered at all (a node whose row was
            // removed by hand, or that was declared dead and went on claiming).
            let error = crate::TaskError::new(
                "missing",
                "the node running this task is no longer registered",
            );
            let marked = sqlx::query(&format!(
                "UPDATE offstage_tasks t SET status = 'missing', finished_at = $2, error = $3, \
                 kill_grace_ms = NULL WHERE t.status = 'running' AND t.node <> $1 \
                 AND NOT EXISTS (SELECT 1 FROM offstage_nodes n WHERE n.id = t.node) \
                 RETURNING {TASK_COLUMNS}"
            ))
            .bind(me.as_uuid())
            .bind(now)
            .bind(json_text(&error))
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            for row in &marked {
                records.push(task_from_row(row).map_err(err)?);
            }
        }
        if let Some(rerun) = &rerun {
            let mut lines = rows::LogArrays::default();
            for record in records.iter_mut() {
                let Some((due, line)) = rerun(record, now) else {
                    continue;
                };
                sqlx::query(
                    "UPDATE offstage_tasks SET status = 'queued', run_at = $2, \
                     finished_at = NULL, node = NULL WHERE id = $1",
                )
                .bind(record.id.as_uuid())
                .bind(due)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                lines.push(record.id, std::slice::from_ref(&line));
                record.status = Status::Queued;
                record.run_at = due;
                record.finished_at = None;
                record.node = None;
            }
            lines.insert(&mut tx, None).await.map_err(err)?;
        }
        // Shared-state locks of nodes that are gone (just now, or before): cheap, as only locked
        // rows are read, so on every pass.
        shared::free_orphaned_locks(&mut tx, me)
            .await
            .map_err(err)?;
        sqlx::query("DELETE FROM offstage_notices WHERE sent_at < now() - interval '1 minute'")
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(records)
    }

    async fn launch(&self, task: &TaskRecord) -> Result<(), Error> {
        let task = Box::new(task.clone());
        self.write_op(|tx| Write::Launch(task, tx)).await
    }

    async fn launch_unique(&self, task: &TaskRecord) -> Result<Option<TaskRecord>, Error> {
        let failed = |e| pg_error("launch", e);
        let mut tx = self.pool.begin().await.map_err(failed)?;
        if let Some(node) = (task.status == Status::Running)
            .then_some(task.node)
            .flatten()
        {
            if !hold_node(&mut tx, node).await.map_err(failed)? {
                return Err(super::node_dead(node));
            }
        }
        if let Some(live) = live_with_key(&mut tx, task).await.map_err(failed)? {
            return Ok(Some(live));
        }
        task_arrays(task).insert(&mut tx).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(None)
    }

    async fn claim_limited(
        &self,
        node: NodeId,
        name: &str,
        now: DateTime<Utc>,
        limit: usize,
        max_running: usize,
    ) -> Result<Vec<TaskRecord>, Error> {
        let failed = |e| pg_error("claim", e);
        let mut tx = self.pool.begin().await.map_err(failed)?;
        if !hold_node(&mut tx, node).await.map_err(failed)? {
            return Err(super::node_dead(node));
        }
        // Claims of one limited type take turns on every node; the count and the claim then
        // see the same running tasks.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('offstage-limit'), hashtext($1))")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM offstage_tasks WHERE status = 'running' AND name = $1",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed)?;
        let room = (max_running as i64 - running).clamp(0, limit as i64);
        if room == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "UPDATE offstage_tasks SET status = 'running', node = $1, started_at = $2, \
             attempt = attempt + 1 \
             WHERE id IN (SELECT id FROM offstage_tasks \
                 WHERE status = 'queued' AND run_at <= $2 AND name = $3 \
                 ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING {TASK_COLUMNS}"
        ))
        .bind(node.as_uuid())
        .bind(now)
        .bind(name)
        .bind(room)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        let mut records = rows
            .iter()
            .map(task_from_row)
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(failed)?;
        records.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    async fn claim(
        &self,
        node: NodeId,
        names: &[String],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, Error> {
        // SKIP LOCKED: rows another node is claiming right now are passed over, not waited
        // for, so nodes claim side by side and never take the same task. Fenced in the same
        // statement: `me` holds the node's row (KEY SHARE, which a heartbeat does not wait for
        // but recovery's DELETE does), and without it nothing is claimed.
        let rows = sqlx::query(&format!(
            "WITH me AS (SELECT id FROM offstage_nodes WHERE id = $1 FOR KEY SHARE) \
             UPDATE offstage_tasks SET status = 'running', node = $1, started_at = $2, \
             attempt = attempt + 1 \
             WHERE id IN (SELECT id FROM offstage_tasks \
                 WHERE status = 'queued' AND run_at <= $2 AND name = ANY($3) \
                 AND EXISTS (SELECT 1 FROM me) \
                 ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING {TASK_COLUMNS}"
        ))
        .bind(node.as_uuid())
        .bind(now)
        .bind(names)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| pg_error("claim", e))?;
        let mut records = rows
            .iter()
            .map(task_from_row)
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(|e| pg_error("claim", e))?;
        if records.is_empty() && !self.is_registered(node).await? {
            return Err(super::node_dead(node));
        }
        records.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    async fn next_run_at(&self, names: &[String]) -> Result<Option<DateTime<Utc>>, Error> {
        sqlx::query_scalar(
            "SELECT min(run_at) FROM offstage_tasks WHERE status = 'queued' AND name = ANY($1)",
        )
        .bind(names)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| pg_error("reading the next run_at", e))
    }

    async fn save(&self, node: NodeId, batch: Vec<(TaskId, Pending)>) -> Result<(), Error> {
        let err = |e| pg_error("saving state and logs", e);
        let mut logs = rows::LogArrays::default();
        let (mut ids, mut states) = (Vec::new(), Vec::new());
        for (id, pending) in &batch {
            if let Some(state) = &pending.state {
                ids.push(id.as_uuid());
                states.push(state.as_str());
            }
            logs.push(*id, &pending.logs);
        }
        let mut tx = self.pool.begin().await.map_err(err)?;
        // Fenced: a node that was declared dead saves nothing, and a node saves only about the
        // tasks running on it. Holding the node's row keeps recovery from marking its tasks
        // between the check and the commit.
        if !hold_node(&mut tx, node).await.map_err(err)? {
            return Ok(());
        }
        if !ids.is_empty() {
            sqlx::query(
                "UPDATE offstage_tasks t SET state = s.state \
                 FROM unnest($1::uuid[], $2::text[]) AS s(id, state) \
                 WHERE t.id = s.id AND t.node = $3 AND t.status = 'running'",
            )
            .bind(ids)
            .bind(states)
            .bind(node.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        logs.insert(&mut tx, Some(node)).await.map_err(err)?;
        tx.commit().await.map_err(err)
    }

    async fn finish(&self, id: TaskId, node: NodeId, finish: Finish) -> Result<bool, Error> {
        let finish = Box::new(finish);
        self.write_op(|tx| Write::Finish(id, node, finish, tx))
            .await
    }

    async fn kill(
        &self,
        id: TaskId,
        grace: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Result<KillOutcome, Error> {
        let err = |e| pg_error("kill", e);
        // Three single statements, each guarded by the status it expects, instead of a
        // transaction with a row lock: a task that moves on between them (claimed, finished)
        // is caught by the next one.
        let error = crate::TaskError::new("killed", "killed before it started");
        let killed = sqlx::query(&format!(
            "UPDATE offstage_tasks SET status = 'killed', finished_at = $2, error = $3 \
             WHERE id = $1 AND status = 'queued' RETURNING {TASK_COLUMNS}"
        ))
        .bind(id.as_uuid())
        .bind(now)
        .bind(json_text(&error))
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        if let Some(row) = killed {
            return Ok(KillOutcome::Killed(task_from_row(&row).map_err(err)?));
        }
        let node: Option<Uuid> = sqlx::query_scalar(
            "UPDATE offstage_tasks SET kill_grace_ms = $2 WHERE id = $1 AND status = 'running' \
             RETURNING node",
        )
        .bind(id.as_uuid())
        .bind(kill_grace_ms(grace))
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?
        .flatten();
        if let Some(node) = node {
            return Ok(KillOutcome::Requested { node: node.into() });
        }
        match self.get(id).await? {
            Some(record) if record.status.is_terminal() => Ok(KillOutcome::AlreadyFinished(record)),
            // Claimed or finished between the statements in an order they did not expect:
            // start over.
            Some(_) => Box::pin(self.kill(id, grace, now)).await,
            None => Err(Error::not_found(id)),
        }
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| pg_error("read", e))?;
        row.as_ref()
            .map(task_from_row)
            .transpose()
            .map_err(|e| pg_error("read", e))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<TaskRecord>, Error> {
        let err = |e| pg_error("list", e);
        // Every filter is always bound; a NULL one matches everything. One statement shape, so
        // one prepared statement, whatever the filter.
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM offstage_tasks \
             WHERE ($1::text IS NULL OR name = $1) AND ($2::text IS NULL OR status = $2) \
             AND ($3::text IS NULL OR owner = $3) AND ($4::text IS NULL OR task_key = $4) \
             AND ($5::uuid IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6"
        ))
        .bind(filter.name.as_deref())
        .bind(filter.status.map(Status::as_str))
        .bind(filter.owner.as_deref())
        .bind(filter.key.as_deref())
        .bind(filter.before.map(|id| id.as_uuid()))
        .bind(filter.effective_limit() as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(task_from_row)
            .collect::<sqlx::Result<_>>()
            .map_err(err)
    }

    async fn logs(&self, id: TaskId, after: u64, limit: usize) -> Result<Vec<LogLine>, Error> {
        let err = |e| pg_error("reading logs", e);
        let rows = sqlx::query(
            "SELECT seq, at, level, message FROM offstage_logs \
             WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id.as_uuid())
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|row| {
                Ok(LogLine {
                    seq: row.try_get::<i64, _>(0)? as u64,
                    at: row.try_get(1)?,
                    level: LogLevel::parse(row.try_get(2)?),
                    message: row.try_get(3)?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(err)
    }

    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        let err = |e| pg_error("purge", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query(
            "DELETE FROM offstage_logs WHERE task_id IN \
             (SELECT id FROM offstage_tasks WHERE finished_at < $1)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let deleted = sqlx::query("DELETE FROM offstage_tasks WHERE finished_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
        tx.commit().await.map_err(err)?;
        Ok(deleted)
    }

    async fn counts(&self) -> Result<Vec<(String, Status, u64)>, Error> {
        let err = |e| pg_error("counting tasks", e);
        let rows = sqlx::query(
            "SELECT name, status, count(*) FROM offstage_tasks GROUP BY name, status \
             ORDER BY name, status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|row| {
                let status: &str = row.try_get(1).map_err(err)?;
                let count: i64 = row.try_get(2).map_err(err)?;
                Ok((row.try_get(0).map_err(err)?, status.parse()?, count as u64))
            })
            .collect()
    }

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

    async fn notify(&self, from: NodeId, notices: Vec<Notice>) -> Result<(), Error> {
        if !self.peers.any() {
            return Ok(());
        }
        notices::send(&self.pool, &self.channel, from, notices).await
    }

    async fn listen(&self, me: NodeId) -> Result<Option<mpsc::UnboundedReceiver<Notice>>, Error> {
        let peers = Arc::clone(&self.peers);
        notices::listen(&self.pool, &self.channel, me, peers)
            .await
            .map(Some)
    }
}

/// The queued or running task with `task`'s name and key, if there is one, read under a
/// lock on that name and key held until `conn`'s transaction ends: keyed launches (and
/// scheduled ones) of one name and key take turns, other launches are not held up.
pub(super) async fn live_with_key(
    conn: &mut sqlx::PgConnection,
    task: &TaskRecord,
) -> sqlx::Result<Option<TaskRecord>> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
        .bind(&task.name)
        .bind(&task.key)
        .execute(&mut *conn)
        .await?;
    let live = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE name = $1 AND task_key = $2 \
         AND status IN ('queued', 'running') ORDER BY id LIMIT 1"
    ))
    .bind(&task.name)
    .bind(&task.key)
    .fetch_optional(&mut *conn)
    .await?;
    live.map(|row| task_from_row(&row)).transpose()
}

/// Kept for `transaction.rs`: one task's insert, as the group commit does it.
/// Holds `node`'s row until the end of the transaction (KEY SHARE: heartbeats go on, recovery's
/// DELETE waits), or returns false when it is not registered (declared dead, or shut down).
pub(super) async fn hold_node(conn: &mut sqlx::PgConnection, node: NodeId) -> sqlx::Result<bool> {
    let row = sqlx::query("SELECT 1 FROM offstage_nodes WHERE id = $1 FOR KEY SHARE")
        .bind(node.as_uuid())
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

impl PostgresStore {
    async fn is_registered(&self, node: NodeId) -> Result<bool, Error> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM offstage_nodes WHERE id = $1)")
            .bind(node.as_uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| pg_error("reading the node", e))
    }
}

fn task_arrays(task: &TaskRecord) -> TaskArrays {
    let mut arrays = TaskArrays::default();
    arrays.push(task);
    arrays
}
