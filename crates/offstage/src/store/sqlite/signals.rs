//! Signals in SQLite: the `offstage_signals` rows, and the `waiting_for` / `waiting_until`
//! columns of a task that waits for one, for the [`Store`](crate::store::Store) methods
//! `signal_*`, `signals` and `limit_holders`.
//!
//! Every write runs on the writer thread, inside its `BEGIN IMMEDIATE` batch: a send sees the
//! task's status as no finish can change it before the insert, and a resume counts the places
//! under a concurrency limit as no claim can change them before it takes one.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::rows::{from_micros, micros, task_from_row, TASK_COLUMNS};
use super::SqliteStore;
use crate::error::Error;
use crate::id::{NodeId, TaskId};
use crate::signal::{SignalRecord, SignalSent};

/// The columns every signal query selects, in the order [`signal_from_row`] reads them.
const COLUMNS: &str =
    "seq, task_id, name, payload, sent_at, sent_by, received_attempt, received_at, settled";

fn signal_from_row(row: &Row<'_>) -> rusqlite::Result<SignalRecord> {
    let text: String = row.get(3)?;
    let payload = serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(SignalRecord {
        seq: row.get::<_, i64>(0)? as u64,
        task_id: row.get(1)?,
        name: row.get(2)?,
        payload,
        sent_at: from_micros(row.get(4)?),
        sent_by: row.get(5)?,
        received_attempt: row.get::<_, Option<i64>>(6)?.map(|a| a as u32),
        received_at: row.get::<_, Option<i64>>(7)?.map(from_micros),
        settled: row.get(8)?,
    })
}

pub(super) async fn send(
    store: &SqliteStore,
    id: TaskId,
    name: &str,
    payload: String,
    sent_by: Option<String>,
    now: DateTime<Utc>,
) -> Result<SignalSent, Error> {
    let name = name.to_owned();
    store
        .write(move |conn| {
            let task = conn
                .prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS} FROM offstage_tasks WHERE id = ?1"
                ))?
                .query_row([id], task_from_row)
                .optional()?;
            let Some(task) = task else {
                return Ok(Err(Error::not_found(id)));
            };
            if task.status.is_terminal() {
                return Ok(Ok(SignalSent::Ended(Box::new(task))));
            }
            let signal = conn
                .prepare_cached(&format!(
                    "INSERT INTO offstage_signals (task_id, name, payload, sent_at, sent_by) \
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING {COLUMNS}"
                ))?
                .query_row(
                    params![id, name, payload, micros(now), sent_by],
                    signal_from_row,
                )?;
            Ok(Ok(SignalSent::Sent(signal)))
        })
        .await?
}

pub(super) async fn receive(
    store: &SqliteStore,
    id: TaskId,
    node: NodeId,
    attempt: u32,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<SignalRecord>, Error> {
    let name = name.to_owned();
    store
        .write(move |conn| {
            conn.prepare_cached(&format!(
                "UPDATE offstage_signals SET received_attempt = ?3, received_at = ?4 \
                 WHERE seq = (SELECT seq FROM offstage_signals \
                     WHERE task_id = ?1 AND name = ?5 \
                     AND (received_attempt IS NULL OR (received_attempt < ?3 AND settled = 0)) \
                     ORDER BY seq LIMIT 1) \
                 AND EXISTS (SELECT 1 FROM offstage_tasks \
                     WHERE id = ?1 AND node = ?2 AND status = 'running') \
                 RETURNING {COLUMNS}"
            ))?
            .query_row(
                params![id, node, i64::from(attempt), micros(now), name],
                signal_from_row,
            )
            .optional()
        })
        .await
}

pub(super) async fn wait(
    store: &SqliteStore,
    id: TaskId,
    node: NodeId,
    name: &str,
    until: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    let name = name.to_owned();
    store
        .write(move |conn| {
            conn.prepare_cached(
                "UPDATE offstage_tasks SET waiting_for = ?3, waiting_until = ?4 \
                 WHERE id = ?1 AND node = ?2 AND status = 'running'",
            )?
            .execute(params![id, node, name, until.map(micros)])?;
            Ok(())
        })
        .await
}

/// Ends task `id`'s wait if its type's limit (`max_running`) and, for a type with a per-key
/// limit, its key's (`key`: the key and its limit) admit one more: the step behind both
/// [`Store::signal_resume`](crate::store::Store::signal_resume) and `signal_resume_keyed`.
pub(super) async fn resume(
    store: &SqliteStore,
    id: TaskId,
    node: NodeId,
    name: &str,
    max_running: Option<usize>,
    key: Option<(&str, usize)>,
) -> Result<bool, Error> {
    let name = name.to_owned();
    let key = key.map(|(key, per_key)| (key.to_owned(), per_key));
    store
        .write(move |conn| {
            if let Some(max) = max_running {
                if holding(conn, &name)? >= max as i64 {
                    return Ok(false);
                }
            }
            if let Some((key, per_key)) = &key {
                if super::keys::key_holding(conn, &name, key)? >= *per_key as i64 {
                    return Ok(false);
                }
            }
            conn.prepare_cached(
                "UPDATE offstage_tasks SET waiting_for = NULL, waiting_until = NULL \
                 WHERE id = ?1 AND node = ?2 AND status = 'running'",
            )?
            .execute(params![id, node])?;
            Ok(true)
        })
        .await
}

/// How many tasks named `name` hold a place under its concurrency limit: running, and not
/// waiting for a signal (read through the partial index `offstage_tasks_holding`). What a limited claim and a resume count, on the writer.
pub(super) fn holding(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM offstage_tasks \
         WHERE status = 'running' AND name = ?1 AND waiting_for IS NULL",
    )?
    .query_row([name], |row| row.get(0))
}

pub(super) async fn list(
    store: &SqliteStore,
    id: TaskId,
    limit: usize,
) -> Result<Vec<SignalRecord>, Error> {
    store
        .read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM offstage_signals WHERE task_id = ?1 ORDER BY seq LIMIT ?2"
            ))?
            .query_map(params![id, limit as i64], signal_from_row)?
            .collect()
        })
        .await
}

pub(super) async fn limit_holders(
    store: &SqliteStore,
    name: &str,
    limit: usize,
) -> Result<Vec<TaskId>, Error> {
    let name = name.to_owned();
    store
        .read(move |conn| {
            // The literal status lets SQLite read `offstage_tasks_holding` (migration 0012).
            conn.prepare_cached(
                "SELECT id FROM offstage_tasks \
                 WHERE status = 'running' AND name = ?1 AND waiting_for IS NULL \
                 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![name, limit as i64], |row| row.get(0))?
            .collect()
        })
        .await
}

/// Deletes task `id`'s signals: part of its purge, on the writer.
pub(super) fn delete_of(conn: &Connection, id: TaskId) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM offstage_signals WHERE task_id = ?1")?
        .execute([id])?;
    Ok(())
}
