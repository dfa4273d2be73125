//! Tasks in SQLite: a task is a row of `offstage_tasks`, with its log lines in
//! `offstage_logs`. Here is each step of its life (launch, claim, save, finish, kill, purge)
//! and the reads of it (get, list, logs, counts, the next due time).
//!
//! Writes run on the writer thread, inside its `BEGIN IMMEDIATE` batch: no other process
//! writes between a check and the write it guards (a node still registered, no live task
//! with the key, room under a concurrency limit).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::counts::Tally;
use super::nodes::registered;
use super::rows::{from_micros, insert_logs, micros, task_from_row, NewTask, TASK_COLUMNS};
use super::SqliteStore;
use crate::error::{Error, TaskError};
use crate::id::{NodeId, TaskId};
use crate::log::{LogLevel, LogLine};
use crate::status::Status;
use crate::store::{
    grace_to_ms, json_text, node_dead, running_on, sort_claimed, Finish, KillOutcome, Pending,
};
use crate::store::{id_bound, Purge};
use crate::task::{ListFilter, TaskRecord};

pub(super) async fn launch(store: &SqliteStore, task: &TaskRecord) -> Result<(), Error> {
    let row = NewTask::from(task);
    let node = running_on(task);
    store
        .write_counted(move |conn, tally| {
            if let Err(dead) = may_start_on(conn, node)? {
                return Ok(Err(dead));
            }
            row.insert(conn, tally).map(Ok)
        })
        .await?
}

pub(super) async fn launch_unique(
    store: &SqliteStore,
    task: &TaskRecord,
) -> Result<Option<TaskRecord>, Error> {
    let row = NewTask::from(task);
    let (name, key) = (task.name.clone(), task.key.clone());
    // The writer holds the database's write lock (BEGIN IMMEDIATE) for the whole batch, so
    // nothing, in this process or another, can insert between the look and the insert.
    let node = running_on(task);
    store
        .write_counted(move |conn, tally| {
            if let Err(dead) = may_start_on(conn, node)? {
                return Ok(Err(dead));
            }
            let live = live_with_key(conn, &name, key.as_deref())?;
            if live.is_none() {
                row.insert(conn, tally)?;
            }
            Ok(Ok(live))
        })
        .await?
}

/// The fence of a direct start: `Err` ([`node_dead`]) when the task goes in `running` on a
/// node (`node`, from [`running_on`]) that is no longer registered. Run by the writer, so the
/// check and the insert are one step against recovery.
fn may_start_on(conn: &Connection, node: Option<NodeId>) -> rusqlite::Result<Result<(), Error>> {
    match node {
        Some(node) if !registered(conn, node)? => Ok(Err(node_dead(node))),
        _ => Ok(Ok(())),
    }
}

/// The queued or running task named `name` with key `key`, if there is one. Run by the
/// writer, whose `BEGIN IMMEDIATE` keeps anyone from inserting one before its caller does.
pub(super) fn live_with_key(
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

pub(super) async fn claim(
    store: &SqliteStore,
    node: NodeId,
    names: &[String],
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<TaskRecord>, Error> {
    let names = json_text(&names);
    let mut records = store
        .write_counted(move |conn, tally| {
            if !registered(conn, node)? {
                return Ok(Err(node_dead(node)));
            }
            let name_is = "name IN (SELECT value FROM json_each(?3))";
            take_queued(conn, tally, node, now, name_is, &names, limit as i64).map(Ok)
        })
        .await??;
    sort_claimed(&mut records);
    Ok(records)
}

pub(super) async fn claim_limited(
    store: &SqliteStore,
    node: NodeId,
    name: &str,
    now: DateTime<Utc>,
    limit: usize,
    max_running: usize,
) -> Result<Vec<TaskRecord>, Error> {
    let name = name.to_owned();
    // Inside the writer's BEGIN IMMEDIATE batch: no other process can start one between the
    // count and the claim.
    let mut records = store
        .write_counted(move |conn, tally| {
            if !registered(conn, node)? {
                return Ok(Err(node_dead(node)));
            }
            // Tasks waiting for a signal hold no place (see `signals::holding`).
            let running = super::signals::holding(conn, &name)?;
            let room = (max_running as i64 - running).clamp(0, limit as i64);
            if room == 0 {
                return Ok(Ok(Vec::new()));
            }
            take_queued(conn, tally, node, now, "name = ?3", &name, room).map(Ok)
        })
        .await??;
    sort_claimed(&mut records);
    Ok(records)
}

/// The statement of both claims: takes for `node` up to `limit` queued tasks due at `now`
/// whose name passes `name_is` (SQL that reads `names` as `?3`), highest priority first.
fn take_queued(
    conn: &Connection,
    tally: &mut Tally,
    node: NodeId,
    now: DateTime<Utc>,
    name_is: &str,
    names: &str,
    limit: i64,
) -> rusqlite::Result<Vec<TaskRecord>> {
    conn.prepare_cached(&format!(
        "UPDATE offstage_tasks SET status = 'running', node = ?1, started_at = ?2, \
         attempt = attempt + 1 \
         WHERE id IN (SELECT id FROM offstage_tasks INDEXED BY offstage_tasks_queue \
             WHERE status = 'queued' AND run_at <= ?2 AND {name_is} \
             AND name NOT IN (SELECT name FROM offstage_paused) \
             ORDER BY priority DESC, id LIMIT ?4) \
         RETURNING {TASK_COLUMNS}"
    ))?
    .query_map(params![node, micros(now), names, limit], |row| {
        let record = task_from_row(row)?;
        tally.moved(&record.name, Status::Queued, Status::Running);
        Ok(record)
    })?
    .collect()
}

pub(super) async fn next_run_at(
    store: &SqliteStore,
    names: &[String],
) -> Result<Option<DateTime<Utc>>, Error> {
    let names = json_text(&names);
    store
        .read(move |conn| {
            // Only tasks launched to run later (`offstage_tasks_later`, migration 0013).
            conn.prepare_cached(
                "SELECT min(run_at) FROM offstage_tasks INDEXED BY offstage_tasks_later \
                 WHERE status = 'queued' AND run_at > launched_at \
                 AND name IN (SELECT value FROM json_each(?1))",
            )?
            .query_row([names], |row| row.get::<_, Option<i64>>(0))
            .map(|at| at.map(from_micros))
        })
        .await
}

pub(super) async fn save(
    store: &SqliteStore,
    node: NodeId,
    batch: Vec<(TaskId, Pending)>,
) -> Result<(), Error> {
    store
        .write(move |conn| {
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

pub(super) async fn finish(
    store: &SqliteStore,
    id: TaskId,
    node: NodeId,
    finish: Finish,
) -> Result<bool, Error> {
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
    store
        .write_counted(move |conn, tally| {
            let changed = conn
                .prepare_cached(
                    "UPDATE offstage_tasks SET status = ?3, state = ?4, return_value = ?5, \
                     error = ?6, kill_grace_ms = NULL, waiting_for = NULL, waiting_until = NULL, \
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
            if changed == 0 {
                return Ok(false);
            }
            // A lookup of the row just written (its page is in the cache) costs less than a
            // `RETURNING`, which SQLite runs through a temporary table.
            let name: String = conn
                .prepare_cached("SELECT name FROM offstage_tasks WHERE id = ?1")?
                .query_row([id], |row| row.get(0))?;
            tally.moved(&name, Status::Running, status);
            insert_logs(conn, id, &logs)?;
            Ok(true)
        })
        .await
}

pub(super) async fn kill(
    store: &SqliteStore,
    id: TaskId,
    grace: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<KillOutcome, Error> {
    store
        .write_counted(move |conn, tally| {
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
                    let error = TaskError::killed_before_start();
                    let record = conn
                        .prepare_cached(&format!(
                            "UPDATE offstage_tasks SET status = 'killed', finished_at = ?2, \
                             error = ?3 WHERE id = ?1 RETURNING {TASK_COLUMNS}"
                        ))?
                        .query_row(params![id, micros(now), json_text(&error)], task_from_row)?;
                    tally.moved(&record.name, Status::Queued, Status::Killed);
                    Ok(KillOutcome::Killed(record))
                }
                Status::Running => {
                    conn.prepare_cached(
                        "UPDATE offstage_tasks SET kill_grace_ms = ?2, kill_asked_at = \
                         CASE WHEN kill_grace_ms IS NULL THEN ?3 ELSE kill_asked_at END \
                         WHERE id = ?1",
                    )?
                    .execute(params![id, grace_to_ms(grace), micros(now)])?;
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

fn is_no_rows(error: &Error) -> bool {
    std::error::Error::source(error)
        .and_then(|s| s.downcast_ref::<rusqlite::Error>())
        .is_some_and(|e| matches!(e, rusqlite::Error::QueryReturnedNoRows))
}

pub(super) async fn get(store: &SqliteStore, id: TaskId) -> Result<Option<TaskRecord>, Error> {
    store
        .read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE id = ?1"
            ))?
            .query_row([id], task_from_row)
            .optional()
        })
        .await
}

pub(super) async fn list(
    store: &SqliteStore,
    filter: &ListFilter,
) -> Result<Vec<TaskRecord>, Error> {
    let filter = filter.clone();
    store
        .read(move |conn| {
            let mut sql = Conditions::of(&filter);
            let query = format!(
                "SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE {} ORDER BY id DESC LIMIT {}",
                sql.text,
                filter.effective_limit()
            );
            conn.prepare_cached(&query)?
                .query_map(sql.params(), task_from_row)?
                .collect()
        })
        .await
}

pub(super) async fn children_to_stop(
    store: &SqliteStore,
    limit: usize,
) -> Result<Vec<TaskId>, Error> {
    store
        .read(move |conn| {
            // Driven by the live children (a partial index of them), each parent read by its
            // key: the cost follows the children that run, never the history or the queue.
            conn.prepare_cached(
                "SELECT child.id FROM offstage_tasks AS child \
                 INDEXED BY offstage_tasks_live_children \
                 LEFT JOIN offstage_tasks AS parent ON parent.id = child.parent \
                 WHERE child.parent IS NOT NULL AND child.status IN ('queued', 'running') \
                 AND (parent.id IS NULL OR parent.status IN ('completed', 'failed', 'killed', 'missing')) \
                 AND (child.detached = 0 OR parent.status = 'killed') \
                 ORDER BY child.id LIMIT ?1",
            )?
            .query_map([limit as i64], |row| row.get(0))?
            .collect()
        })
        .await
}

pub(super) async fn count(store: &SqliteStore, filter: &ListFilter) -> Result<u64, Error> {
    let filter = filter.clone();
    store
        .read(move |conn| {
            // By type and status alone: the counts the writer keeps answer without a scan.
            let by_counts = filter.by_type_and_status_only();
            let n: i64 = if by_counts {
                let statuses: Vec<&str> = Status::ALL
                    .iter()
                    .filter(|s| filter.status.is_none_or(|wanted| wanted == **s))
                    .filter(|s| filter.finished.is_none_or(|f| f == s.is_terminal()))
                    .map(|s| s.as_str())
                    .collect();
                conn.prepare_cached(
                    "SELECT coalesce(sum(n), 0) FROM offstage_task_counts \
                     WHERE (?1 IS NULL OR name = ?1) AND status IN (SELECT value FROM json_each(?2))",
                )?
                .query_row(params![filter.name, json_text(&statuses)], |row| row.get(0))?
            } else {
                let mut sql = Conditions::of(&filter);
                let query = format!("SELECT count(*) FROM offstage_tasks WHERE {}", sql.text);
                conn.prepare_cached(&query)?
                    .query_row(sql.params(), |row| row.get(0))?
            };
            Ok(n as u64)
        })
        .await
}

/// A filter's conditions as SQL, with the values they bind in order.
struct Conditions {
    /// `1 = 1 AND ...`: goes after `WHERE`.
    text: String,
    values: Vec<Box<dyn rusqlite::ToSql + Send>>,
}

impl Conditions {
    fn of(filter: &ListFilter) -> Self {
        let mut sql = Self {
            text: "1 = 1".to_owned(),
            values: Vec::new(),
        };
        if let Some(name) = &filter.name {
            sql.bind("name =", name.clone());
        }
        if let Some(status) = filter.status {
            sql.bind("status =", status.as_str());
        }
        if let Some(owner) = &filter.owner {
            sql.bind("owner =", owner.clone());
        }
        if let Some(key) = &filter.key {
            sql.bind("task_key =", key.clone());
        }
        match filter.finished {
            Some(true) => sql.text.push_str(&format!(" AND {FINISHED}")),
            Some(false) => sql.text.push_str(" AND status IN ('queued', 'running')"),
            None => {}
        }
        if let Some(rerun_of) = filter.rerun_of {
            sql.bind("rerun_of =", rerun_of);
        }
        if let Some(parent) = filter.parent {
            sql.bind("parent =", parent);
        }
        if let Some(after) = filter.launched_after {
            sql.bind("launched_at >=", micros(after));
        }
        if let Some(before) = filter.launched_before {
            sql.bind("launched_at <", micros(before));
            // The same bound on the primary key, so the scan stops there (see `id_bound`).
            sql.bind("id <", id_bound(before));
        }
        if let Some(before) = filter.before {
            sql.bind("id <", before);
        }
        sql
    }

    fn bind(&mut self, column: &str, value: impl rusqlite::ToSql + Send + 'static) {
        self.values.push(Box::new(value));
        self.text
            .push_str(&format!(" AND {column} ?{}", self.values.len()));
    }

    fn params(&mut self) -> impl rusqlite::Params + '_ {
        rusqlite::params_from_iter(
            self.values
                .iter()
                .map(|v| v.as_ref() as &dyn rusqlite::ToSql),
        )
    }
}

/// The statuses a task never leaves: the only ones a purge deletes. The `+` keeps SQLite from
/// answering it through `offstage_tasks_by_status`: four ranges of that index, merged and
/// sorted by id, would read every finished task for a page of them, where the primary key (or
/// the index of another filter) reads them in id order and stops at the page's end.
const FINISHED: &str = "+status IN ('completed', 'failed', 'killed', 'missing')";

/// `purge`'s conditions: its filter's, finished tasks only, and its time and number limits.
/// Run by the writer (or a reader), it finds the newest task `keep_newest` keeps, if any.
fn purge_conditions(conn: &Connection, purge: &Purge) -> rusqlite::Result<Option<Conditions>> {
    let filter = ListFilter {
        finished: Some(true),
        status: purge.filter.status.filter(|s| s.is_terminal()),
        limit: None,
        ..purge.filter.clone()
    };
    if purge.filter.status.is_some_and(|s| !s.is_terminal()) {
        return Ok(None);
    }
    let mut sql = Conditions::of(&filter);
    if let Some(keep) = purge.keep_newest {
        let query = format!(
            "SELECT id FROM offstage_tasks WHERE {} ORDER BY id DESC LIMIT 1 OFFSET ?{}",
            sql.text,
            sql.values.len() + 1
        );
        sql.values
            .push(Box::new(keep.saturating_sub(1).min(i64::MAX as u64) as i64));
        let kept: Option<TaskId> = if keep == 0 {
            None
        } else {
            match conn
                .prepare(&query)?
                .query_row(sql.params(), |row| row.get(0))
                .optional()?
            {
                Some(id) => Some(id),
                // Fewer than `keep_newest` match: all are kept.
                None => return Ok(None),
            }
        };
        sql.values.pop();
        if let Some(kept) = kept {
            sql.bind("id <", kept);
        }
    }
    if let Some(before) = purge.finished_before {
        sql.bind("finished_at <", micros(before));
        // A task launched after `before` cannot have finished before it.
        sql.bind("id <", id_bound(before));
    }
    Ok(Some(sql))
}

pub(super) async fn purge(store: &SqliteStore, purge: &Purge, limit: usize) -> Result<u64, Error> {
    let purge = purge.clone();
    let deleted = store
        .write_counted(move |conn, tally| {
            let Some(mut sql) = purge_conditions(conn, &purge)? else {
                return Ok(0);
            };
            let query = format!(
                "SELECT id FROM offstage_tasks WHERE {} ORDER BY id LIMIT {limit}",
                sql.text
            );
            let ids: Vec<TaskId> = conn
                .prepare(&query)?
                .query_map(sql.params(), |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut logs = conn.prepare_cached("DELETE FROM offstage_logs WHERE task_id = ?1")?;
            let mut task = conn.prepare_cached(
                "DELETE FROM offstage_tasks WHERE id = ?1 RETURNING name, status",
            )?;
            for id in &ids {
                logs.execute([id])?;
                super::signals::delete_of(conn, *id)?;
                let (name, status): (String, String) =
                    task.query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
                if let Ok(status) = status.parse::<Status>() {
                    tally.add(&name, status, -1);
                }
            }
            Ok(ids.len() as u64)
        })
        .await?;
    if deleted > 0 {
        store.give_back_space().await;
    }
    Ok(deleted)
}

pub(super) async fn purge_count(store: &SqliteStore, purge: &Purge) -> Result<u64, Error> {
    let purge = purge.clone();
    store
        .read(move |conn| {
            let Some(mut sql) = purge_conditions(conn, &purge)? else {
                return Ok(0);
            };
            let query = format!("SELECT count(*) FROM offstage_tasks WHERE {}", sql.text);
            let n: i64 = conn
                .prepare(&query)?
                .query_row(sql.params(), |row| row.get(0))?;
            Ok(n as u64)
        })
        .await
}

pub(super) async fn take_turn(
    store: &SqliteStore,
    job: &str,
    now: DateTime<Utc>,
    next: DateTime<Utc>,
) -> Result<bool, Error> {
    let job = job.to_owned();
    store
        .write(move |conn| {
            let taken = conn
                .prepare_cached(
                    "INSERT INTO offstage_maintenance (job, next_at) VALUES (?1, ?3) \
                     ON CONFLICT (job) DO UPDATE SET next_at = excluded.next_at \
                     WHERE offstage_maintenance.next_at <= ?2",
                )?
                .execute(params![job, micros(now), micros(next)])?;
            Ok(taken == 1)
        })
        .await
}

pub(super) async fn logs(
    store: &SqliteStore,
    id: TaskId,
    after: u64,
    limit: usize,
) -> Result<Vec<LogLine>, Error> {
    store
        .read(move |conn| {
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
