//! Signals in PostgreSQL: the `offstage_signals` rows, and the `waiting_for` / `waiting_until`
//! columns of a task that waits for one, for the [`Store`](crate::store::Store) methods
//! `signal_*`, `signals` and `limit_holders`.
//!
//! A send takes the task's row `FOR SHARE`, so a finish running at the same time either
//! commits first (and the send sees the task ended) or waits for the insert. A resume takes
//! the same advisory lock as a limited claim of its type, so the count of places under the
//! limit and the write are one step against every claim on every node.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::rows::{task_from_row, TASK_COLUMNS};
use super::{pg_error, PostgresStore};
use crate::error::Error;
use crate::id::{NodeId, TaskId};
use crate::signal::{SignalRecord, SignalSent};

/// The columns every signal query selects, in the order [`signal_from_row`] reads them.
const COLUMNS: &str =
    "seq, task_id, name, payload, sent_at, sent_by, received_attempt, received_at, settled";

fn signal_from_row(row: &PgRow) -> sqlx::Result<SignalRecord> {
    let text: &str = row.try_get(3)?;
    let payload = serde_json::from_str(text).map_err(|e| sqlx::Error::ColumnDecode {
        index: "payload".to_owned(),
        source: Box::new(e),
    })?;
    Ok(SignalRecord {
        seq: row.try_get::<i64, _>(0)? as u64,
        task_id: row.try_get::<Uuid, _>(1)?.into(),
        name: row.try_get(2)?,
        payload,
        sent_at: row.try_get(4)?,
        sent_by: row.try_get(5)?,
        received_attempt: row.try_get::<Option<i32>, _>(6)?.map(|a| a as u32),
        received_at: row.try_get(7)?,
        settled: row.try_get(8)?,
    })
}

pub(super) async fn send(
    store: &PostgresStore,
    id: TaskId,
    name: &str,
    payload: String,
    sent_by: Option<String>,
    now: DateTime<Utc>,
) -> Result<SignalSent, Error> {
    let err = |e| pg_error("sending a signal", e);
    let inserted = sqlx::query(&format!(
        "WITH task AS (SELECT id FROM offstage_tasks \
             WHERE id = $1 AND status IN ('queued', 'running') FOR SHARE) \
         INSERT INTO offstage_signals (task_id, name, payload, sent_at, sent_by) \
         SELECT id, $2, $3, $4, $5 FROM task RETURNING {COLUMNS}"
    ))
    .bind(id.as_uuid())
    .bind(name)
    .bind(payload)
    .bind(now)
    .bind(sent_by)
    .fetch_optional(&store.pool)
    .await
    .map_err(err)?;
    if let Some(row) = inserted {
        return signal_from_row(&row).map(SignalSent::Sent).map_err(err);
    }
    let task = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE id = $1"
    ))
    .bind(id.as_uuid())
    .fetch_optional(&store.pool)
    .await
    .map_err(err)?;
    match task {
        None => Err(Error::not_found(id)),
        Some(row) => task_from_row(&row)
            .map(|task| SignalSent::Ended(Box::new(task)))
            .map_err(err),
    }
}

pub(super) async fn receive(
    store: &PostgresStore,
    id: TaskId,
    node: NodeId,
    attempt: u32,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<SignalRecord>, Error> {
    let err = |e| pg_error("receiving a signal", e);
    let row = sqlx::query(&format!(
        "UPDATE offstage_signals SET received_attempt = $3, received_at = $4 \
         WHERE seq = (SELECT seq FROM offstage_signals \
             WHERE task_id = $1 AND name = $5 \
             AND (received_attempt IS NULL OR (received_attempt < $3 AND NOT settled)) \
             ORDER BY seq LIMIT 1 FOR UPDATE) \
         AND EXISTS (SELECT 1 FROM offstage_tasks \
             WHERE id = $1 AND node = $2 AND status = 'running') \
         RETURNING {COLUMNS}"
    ))
    .bind(id.as_uuid())
    .bind(node.as_uuid())
    .bind(attempt as i32)
    .bind(now)
    .bind(name)
    .fetch_optional(&store.pool)
    .await
    .map_err(err)?;
    row.as_ref().map(signal_from_row).transpose().map_err(err)
}

pub(super) async fn wait(
    store: &PostgresStore,
    id: TaskId,
    node: NodeId,
    name: &str,
    until: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE offstage_tasks SET waiting_for = $3, waiting_until = $4 \
         WHERE id = $1 AND node = $2 AND status = 'running'",
    )
    .bind(id.as_uuid())
    .bind(node.as_uuid())
    .bind(name)
    .bind(until)
    .execute(&store.pool)
    .await
    .map_err(|e| pg_error("starting a wait for a signal", e))?;
    Ok(())
}

/// Ends task `id`'s wait if its type's limit (`max_running`) and, for a type with a per-key
/// limit, its key's (`key`: the key and its limit) admit one more: the step behind both
/// [`Store::signal_resume`](crate::store::Store::signal_resume) and `signal_resume_keyed`.
pub(super) async fn resume(
    store: &PostgresStore,
    id: TaskId,
    node: NodeId,
    name: &str,
    max_running: Option<usize>,
    key: Option<(&str, usize)>,
) -> Result<bool, Error> {
    let err = |e| pg_error("ending a wait for a signal", e);
    let mut tx = store.pool.begin().await.map_err(err)?;
    if max_running.is_some() || key.is_some() {
        // The lock of the limited and keyed claims: claims and resumes of one type take turns.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('offstage-limit'), hashtext($1))")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    if let Some(max) = max_running {
        if holding(&mut tx, name).await.map_err(err)? >= max as i64 {
            return Ok(false);
        }
    }
    if let Some((key, per_key)) = key {
        if super::keys::key_holding(&mut tx, name, key)
            .await
            .map_err(err)?
            >= per_key as i64
        {
            return Ok(false);
        }
    }
    sqlx::query(
        "UPDATE offstage_tasks SET waiting_for = NULL, waiting_until = NULL \
         WHERE id = $1 AND node = $2 AND status = 'running'",
    )
    .bind(id.as_uuid())
    .bind(node.as_uuid())
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(true)
}

/// How many tasks named `name` hold a place under its concurrency limit: running, and not
/// waiting for a signal (read through the partial index `offstage_tasks_holding`). What a limited claim and a resume count, under the type's lock.
pub(super) async fn holding(conn: &mut sqlx::PgConnection, name: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM offstage_tasks \
         WHERE status = 'running' AND name = $1 AND waiting_for IS NULL",
    )
    .bind(name)
    .fetch_one(conn)
    .await
}

pub(super) async fn list(
    store: &PostgresStore,
    id: TaskId,
    limit: usize,
) -> Result<Vec<SignalRecord>, Error> {
    let err = |e| pg_error("reading signals", e);
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM offstage_signals WHERE task_id = $1 ORDER BY seq LIMIT $2"
    ))
    .bind(id.as_uuid())
    .bind(limit as i64)
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    rows.iter()
        .map(signal_from_row)
        .collect::<sqlx::Result<_>>()
        .map_err(err)
}

pub(super) async fn limit_holders(
    store: &PostgresStore,
    name: &str,
    limit: usize,
) -> Result<Vec<TaskId>, Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM offstage_tasks \
         WHERE status = 'running' AND name = $1 AND waiting_for IS NULL ORDER BY id LIMIT $2",
    )
    .bind(name)
    .bind(limit as i64)
    .fetch_all(&store.pool)
    .await
    .map_err(|e| pg_error("reading a concurrency limit's holders", e))?;
    Ok(ids.into_iter().map(Into::into).collect())
}
