//! Tasks in PostgreSQL: a task is a row of `offstage_tasks`, with its log lines in
//! `offstage_logs`. Here is each step of its life (launch, claim, save, finish, kill, purge)
//! and the reads of it (get, list, logs, counts, the next due time).
//!
//! Launches and finishes go through the group commit (`writer.rs`); the steps that check
//! before they write hold what they check until their transaction ends (the node's row, an
//! advisory lock on a name and key or on a limited type), so other nodes cannot come between.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::counts::{count_change, Change};
use super::nodes::{hold_node, is_registered};
use super::rows::{task_from_row, LogArrays, TaskArrays, TASK_COLUMNS};
use super::writer::Write;
use super::{pg_error, PostgresStore};
use crate::error::{Error, TaskError};
use crate::id::{NodeId, TaskId};
use crate::log::{LogLevel, LogLine};
use crate::status::Status;
use crate::store::{
    grace_to_ms, json_text, node_dead, running_on, sort_claimed, Finish, KillOutcome, Pending,
};
use crate::store::{id_bound, Purge};
use crate::task::{ListFilter, TaskRecord};

pub(super) async fn launch(store: &PostgresStore, task: &TaskRecord) -> Result<(), Error> {
    let task = Box::new(task.clone());
    store.write_op(|tx| Write::Launch(task, tx)).await
}

pub(super) async fn launch_unique(
    store: &PostgresStore,
    task: &TaskRecord,
) -> Result<Option<TaskRecord>, Error> {
    let failed = |e| pg_error("launch", e);
    let mut tx = store.pool.begin().await.map_err(failed)?;
    if let Some(node) = running_on(task) {
        if !hold_node(&mut tx, node).await.map_err(failed)? {
            return Err(node_dead(node));
        }
    }
    if let Some(live) = live_with_key(&mut tx, task).await.map_err(failed)? {
        return Ok(Some(live));
    }
    TaskArrays::from(task)
        .insert(&mut tx)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(None)
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

pub(super) async fn claim(
    store: &PostgresStore,
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
        "WITH me AS (SELECT id FROM offstage_nodes WHERE id = $1 FOR KEY SHARE), \
         changed AS (UPDATE offstage_tasks SET status = 'running', node = $1, started_at = $2, \
         attempt = attempt + 1 \
         WHERE id IN (SELECT id FROM offstage_tasks \
             WHERE status = 'queued' AND run_at <= $2 AND name = ANY($3) \
             AND name NOT IN (SELECT name FROM offstage_paused) \
             AND EXISTS (SELECT 1 FROM me) \
             ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING {TASK_COLUMNS}), {} \
         SELECT * FROM changed",
        count_change(Change::Move(Status::Queued))
    ))
    .bind(node.as_uuid())
    .bind(now)
    .bind(names)
    .bind(limit as i64)
    .fetch_all(&store.pool)
    .await
    .map_err(|e| pg_error("claim", e))?;
    let mut records = rows
        .iter()
        .map(task_from_row)
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(|e| pg_error("claim", e))?;
    if records.is_empty() && !is_registered(store, node).await? {
        return Err(node_dead(node));
    }
    sort_claimed(&mut records);
    Ok(records)
}

pub(super) async fn claim_limited(
    store: &PostgresStore,
    node: NodeId,
    name: &str,
    now: DateTime<Utc>,
    limit: usize,
    max_running: usize,
) -> Result<Vec<TaskRecord>, Error> {
    let failed = |e| pg_error("claim", e);
    let mut tx = store.pool.begin().await.map_err(failed)?;
    if !hold_node(&mut tx, node).await.map_err(failed)? {
        return Err(node_dead(node));
    }
    // Claims of one limited type take turns on every node; the count and the claim then
    // see the same running tasks.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('offstage-limit'), hashtext($1))")
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    // Tasks waiting for a signal hold no place (see `signals::holding`).
    let running = super::signals::holding(&mut tx, name)
        .await
        .map_err(failed)?;
    let room = (max_running as i64 - running).clamp(0, limit as i64);
    if room == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "WITH changed AS (UPDATE offstage_tasks SET status = 'running', node = $1, \
         started_at = $2, attempt = attempt + 1 \
         WHERE id IN (SELECT id FROM offstage_tasks \
             WHERE status = 'queued' AND run_at <= $2 AND name = $3 \
             AND name NOT IN (SELECT name FROM offstage_paused) \
             ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING {TASK_COLUMNS}), {} \
         SELECT * FROM changed",
        count_change(Change::Move(Status::Queued))
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
    sort_claimed(&mut records);
    Ok(records)
}

pub(super) async fn next_run_at(
    store: &PostgresStore,
    names: &[String],
) -> Result<Option<DateTime<Utc>>, Error> {
    sqlx::query_scalar(
        // Only tasks launched to run later (`offstage_tasks_later`, migration 0013).
        "SELECT min(run_at) FROM offstage_tasks \
         WHERE status = 'queued' AND run_at > launched_at AND name = ANY($1)",
    )
    .bind(names)
    .fetch_one(&store.pool)
    .await
    .map_err(|e| pg_error("reading the next run_at", e))
}

pub(super) async fn save(
    store: &PostgresStore,
    node: NodeId,
    batch: Vec<(TaskId, Pending)>,
) -> Result<(), Error> {
    let err = |e| pg_error("saving state and logs", e);
    let mut logs = LogArrays::default();
    let (mut ids, mut states) = (Vec::new(), Vec::new());
    for (id, pending) in &batch {
        if let Some(state) = &pending.state {
            ids.push(id.as_uuid());
            states.push(state.as_str());
        }
        logs.push(*id, &pending.logs);
    }
    let mut tx = store.pool.begin().await.map_err(err)?;
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

pub(super) async fn finish(
    store: &PostgresStore,
    id: TaskId,
    node: NodeId,
    finish: Finish,
) -> Result<bool, Error> {
    let finish = Box::new(finish);
    store
        .write_op(|tx| Write::Finish(id, node, finish, tx))
        .await
}

pub(super) async fn kill(
    store: &PostgresStore,
    id: TaskId,
    grace: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<KillOutcome, Error> {
    let err = |e| pg_error("kill", e);
    // Three single statements, each guarded by the status it expects, instead of a
    // transaction with a row lock: a task that moves on between them (claimed, finished)
    // is caught by the next one.
    let killed = sqlx::query(&format!(
        "WITH changed AS (UPDATE offstage_tasks SET status = 'killed', finished_at = $2, \
         error = $3 WHERE id = $1 AND status = 'queued' RETURNING {TASK_COLUMNS}), {} \
         SELECT * FROM changed",
        count_change(Change::Move(Status::Queued))
    ))
    .bind(id.as_uuid())
    .bind(now)
    .bind(json_text(&TaskError::killed_before_start()))
    .fetch_optional(&store.pool)
    .await
    .map_err(err)?;
    if let Some(row) = killed {
        return Ok(KillOutcome::Killed(task_from_row(&row).map_err(err)?));
    }
    let node: Option<Uuid> = sqlx::query_scalar(
        "UPDATE offstage_tasks SET kill_grace_ms = $2, kill_asked_at = \
         CASE WHEN kill_grace_ms IS NULL THEN $3 ELSE kill_asked_at END \
         WHERE id = $1 AND status = 'running' RETURNING node",
    )
    .bind(id.as_uuid())
    .bind(grace_to_ms(grace))
    .bind(now)
    .fetch_optional(&store.pool)
    .await
    .map_err(err)?
    .flatten();
    if let Some(node) = node {
        return Ok(KillOutcome::Requested { node: node.into() });
    }
    match get(store, id).await? {
        Some(record) if record.status.is_terminal() => Ok(KillOutcome::AlreadyFinished(record)),
        // Claimed or finished between the statements in an order they did not expect:
        // start over.
        Some(_) => Box::pin(kill(store, id, grace, now)).await,
        None => Err(Error::not_found(id)),
    }
}

pub(super) async fn get(store: &PostgresStore, id: TaskId) -> Result<Option<TaskRecord>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE id = $1"
    ))
    .bind(id.as_uuid())
    .fetch_optional(&store.pool)
    .await
    .map_err(|e| pg_error("read", e))?;
    row.as_ref()
        .map(task_from_row)
        .transpose()
        .map_err(|e| pg_error("read", e))
}

pub(super) async fn list(
    store: &PostgresStore,
    filter: &ListFilter,
) -> Result<Vec<TaskRecord>, Error> {
    let err = |e| pg_error("list", e);
    let rows = bind_filter(
        sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE {FILTER} ORDER BY id DESC LIMIT $12"
        )),
        filter,
    )
    .bind(filter.effective_limit() as i64)
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    rows.iter()
        .map(task_from_row)
        .collect::<sqlx::Result<_>>()
        .map_err(err)
}

/// A [`ListFilter`] as SQL, its values bound by [`bind_filter`] as `$1` to `$11`. Every
/// condition is always bound, and a NULL one matches everything: one statement shape, so one
/// prepared statement, whatever the filter.
const FILTER: &str = "($1::text IS NULL OR name = $1) AND ($2::text IS NULL OR status = $2) \
    AND ($3::text IS NULL OR owner = $3) AND ($4::text IS NULL OR task_key = $4) \
    AND ($5::uuid IS NULL OR id < $5) \
    AND ($6::bool IS NULL OR (status IN ('completed', 'failed', 'killed', 'missing')) = $6) \
    AND ($7::timestamptz IS NULL OR launched_at >= $7) \
    AND ($8::timestamptz IS NULL OR (launched_at < $8 AND id < $9)) \
    AND ($10::uuid IS NULL OR rerun_of = $10) AND ($11::uuid IS NULL OR parent = $11)";

/// Binds `filter`'s values to a statement with [`FILTER`] in it.
fn bind_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    filter: &ListFilter,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(filter.name.clone())
        .bind(filter.status.map(Status::as_str))
        .bind(filter.owner.clone())
        .bind(filter.key.clone())
        .bind(filter.before.map(|id| id.as_uuid()))
        .bind(filter.finished)
        .bind(filter.launched_after)
        .bind(filter.launched_before)
        // The same bound on the primary key, so the scan stops there.
        .bind(filter.launched_before.map(|at| id_bound(at).as_uuid()))
        .bind(filter.rerun_of.map(|id| id.as_uuid()))
        .bind(filter.parent.map(|id| id.as_uuid()))
}

pub(super) async fn children_to_stop(
    store: &PostgresStore,
    limit: usize,
) -> Result<Vec<TaskId>, Error> {
    let err = |e| pg_error("finding the children to stop", e);
    // Driven by the live children (a partial index of them), each parent read by its key:
    // the cost follows the children that run, never the history or the queue.
    let rows = sqlx::query(
        "SELECT child.id FROM offstage_tasks AS child \
         LEFT JOIN offstage_tasks AS parent ON parent.id = child.parent \
         WHERE child.parent IS NOT NULL AND child.status IN ('queued', 'running') \
         AND (parent.id IS NULL OR parent.status IN ('completed', 'failed', 'killed', 'missing')) \
         AND (NOT child.detached OR parent.status = 'killed') \
         ORDER BY child.id LIMIT $1",
    )
    .bind(limit as i64)
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    rows.iter()
        .map(|row| row.try_get::<Uuid, _>(0).map(TaskId::from))
        .collect::<sqlx::Result<_>>()
        .map_err(err)
}

pub(super) async fn count(store: &PostgresStore, filter: &ListFilter) -> Result<u64, Error> {
    let err = |e| pg_error("counting tasks", e);
    // By type and status alone: the counts kept with every write answer without a scan.
    let by_counts = filter.by_type_and_status_only();
    let n: i64 = if by_counts {
        let statuses: Vec<&str> = Status::ALL
            .iter()
            .filter(|s| filter.status.is_none_or(|wanted| wanted == **s))
            .filter(|s| filter.finished.is_none_or(|f| f == s.is_terminal()))
            .map(|s| s.as_str())
            .collect();
        sqlx::query_scalar(
            "SELECT coalesce(sum(n), 0)::int8 FROM offstage_task_counts \
             WHERE ($1::text IS NULL OR name = $1) AND status = ANY($2)",
        )
        .bind(filter.name.as_deref())
        .bind(statuses)
        .fetch_one(&store.pool)
        .await
        .map_err(err)?
    } else {
        bind_filter(
            sqlx::query(&format!(
                "SELECT count(*) FROM offstage_tasks WHERE {FILTER}"
            )),
            filter,
        )
        .fetch_one(&store.pool)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(err)?
    };
    Ok(n as u64)
}

/// What selects the tasks `purge` deletes, after [`FILTER`]: finished ones, before `$13` and
/// `$14` (its `finished_before` and the id bound of it) and `$15` (the oldest task
/// `keep_newest` keeps).
const PURGED: &str = "status IN ('completed', 'failed', 'killed', 'missing') \
    AND ($13::timestamptz IS NULL OR (finished_at < $13 AND id < $14)) \
    AND ($15::uuid IS NULL OR id < $15)";

/// `purge`'s filter, finished tasks only, and the oldest task its `keep_newest` keeps: `None`
/// when it selects nothing at all.
async fn purge_selection(
    store: &PostgresStore,
    purge: &Purge,
) -> Result<Option<(ListFilter, Option<Uuid>)>, Error> {
    if purge.filter.status.is_some_and(|s| !s.is_terminal()) {
        return Ok(None);
    }
    let filter = ListFilter {
        finished: Some(true),
        ..purge.filter.clone()
    };
    let kept = match purge.keep_newest {
        None | Some(0) => None,
        Some(keep) => {
            let kept: Option<Uuid> = bind_filter(
                sqlx::query(&format!(
                    "SELECT id FROM offstage_tasks WHERE {FILTER} \
                     ORDER BY id DESC OFFSET $12 LIMIT 1"
                )),
                &filter,
            )
            .bind((keep - 1).min(i64::MAX as u64) as i64)
            .fetch_optional(&store.pool)
            .await
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(|e| pg_error("purge", e))?;
            // Fewer than `keep_newest` match: all are kept.
            Some(kept.ok_or(()))
        }
    };
    match kept {
        Some(Err(())) => Ok(None),
        Some(Ok(id)) => Ok(Some((filter, Some(id)))),
        None => Ok(Some((filter, None))),
    }
}

pub(super) async fn purge(
    store: &PostgresStore,
    purge: &Purge,
    limit: usize,
) -> Result<u64, Error> {
    let err = |e| pg_error("purge", e);
    let Some((filter, kept)) = purge_selection(store, purge).await? else {
        return Ok(0);
    };
    // SKIP LOCKED: rows another node's purge is deleting are left to it.
    let deleted: i64 = bind_filter(
        sqlx::query(&format!(
            "WITH doomed AS (SELECT id FROM offstage_tasks WHERE {FILTER} AND {PURGED} \
                 ORDER BY id LIMIT $12 FOR UPDATE SKIP LOCKED), \
             logs AS (DELETE FROM offstage_logs WHERE task_id IN (SELECT id FROM doomed)), \
             signals AS (DELETE FROM offstage_signals WHERE task_id IN (SELECT id FROM doomed)), \
             changed AS (DELETE FROM offstage_tasks WHERE id IN (SELECT id FROM doomed) \
                 RETURNING name, status), {} \
             SELECT count(*) FROM changed",
            count_change(Change::Delete)
        )),
        &filter,
    )
    .bind(limit as i64)
    .bind(purge.finished_before)
    .bind(purge.finished_before.map(|at| id_bound(at).as_uuid()))
    .bind(kept)
    .fetch_one(&store.pool)
    .await
    .and_then(|row| row.try_get(0))
    .map_err(err)?;
    Ok(deleted as u64)
}

pub(super) async fn purge_count(store: &PostgresStore, purge: &Purge) -> Result<u64, Error> {
    let Some((filter, kept)) = purge_selection(store, purge).await? else {
        return Ok(0);
    };
    let n: i64 = bind_filter(
        sqlx::query(&format!(
            "SELECT count(*) FROM offstage_tasks WHERE {FILTER} AND {PURGED} AND $12::int8 IS NULL"
        )),
        &filter,
    )
    .bind(None::<i64>)
    .bind(purge.finished_before)
    .bind(purge.finished_before.map(|at| id_bound(at).as_uuid()))
    .bind(kept)
    .fetch_one(&store.pool)
    .await
    .and_then(|row| row.try_get(0))
    .map_err(|e| pg_error("counting a purge", e))?;
    Ok(n as u64)
}

pub(super) async fn take_turn(
    store: &PostgresStore,
    job: &str,
    now: DateTime<Utc>,
    next: DateTime<Utc>,
) -> Result<bool, Error> {
    // Of concurrent callers, the first to write the row takes the turn; the others wait for
    // its row lock, then see `next_at` in the future and change nothing.
    let taken = sqlx::query(
        "INSERT INTO offstage_maintenance (job, next_at) VALUES ($1, $3) \
         ON CONFLICT (job) DO UPDATE SET next_at = excluded.next_at \
         WHERE offstage_maintenance.next_at <= $2",
    )
    .bind(job)
    .bind(now)
    .bind(next)
    .execute(&store.pool)
    .await
    .map_err(|e| pg_error("taking a maintenance turn", e))?
    .rows_affected();
    Ok(taken == 1)
}

pub(super) async fn logs(
    store: &PostgresStore,
    id: TaskId,
    after: u64,
    limit: usize,
) -> Result<Vec<LogLine>, Error> {
    let err = |e| pg_error("reading logs", e);
    let rows = sqlx::query(
        "SELECT seq, at, level, message FROM offstage_logs \
         WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(id.as_uuid())
    .bind(after as i64)
    .bind(limit as i64)
    .fetch_all(&store.pool)
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
