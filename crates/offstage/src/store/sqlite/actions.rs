//! Bulk actions in SQLite: a row of `offstage_actions` per action, written by the node that
//! runs it and read by anyone. Each function is one store step, run by the writer (or a
//! reader).

use rusqlite::{params, OptionalExtension, Row};

use super::rows::{from_micros, micros};
use super::SqliteStore;
use crate::action::ActionRecord;
use crate::error::Error;
use crate::id::ActionId;
use crate::store::json_text;

/// The columns every action query selects, in the order [`action_from_row`] reads them; the
/// last says whether the action's node is gone.
const ACTION_COLUMNS: &str = "a.id, a.verb, a.filter, a.per_s, a.actor, a.node, a.status, \
    a.started_at, a.updated_at, a.ended_at, a.matched, a.done, a.failed, a.error, \
    NOT EXISTS (SELECT 1 FROM offstage_nodes n WHERE n.id = a.node)";

fn bad(index: usize, error: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("column {index} is not valid: {error}").into(),
    )
}

fn action_from_row(row: &Row<'_>) -> rusqlite::Result<ActionRecord> {
    let record = ActionRecord {
        id: row.get(0)?,
        verb: row.get::<_, String>(1)?.parse().map_err(|e| bad(1, e))?,
        filter: serde_json::from_str(&row.get::<_, String>(2)?).map_err(|e| bad(2, e))?,
        per_s: row.get(3)?,
        actor: row.get(4)?,
        node: row.get(5)?,
        status: row.get::<_, String>(6)?.parse().map_err(|e| bad(6, e))?,
        started_at: from_micros(row.get(7)?),
        updated_at: from_micros(row.get(8)?),
        ended_at: row.get::<_, Option<i64>>(9)?.map(from_micros),
        matched: row.get::<_, i64>(10)? as u64,
        done: row.get::<_, i64>(11)? as u64,
        failed: row.get::<_, i64>(12)? as u64,
        error: row.get(13)?,
    };
    Ok(if row.get(14)? {
        record.orphaned()
    } else {
        record
    })
}

pub(super) async fn insert(store: &SqliteStore, action: &ActionRecord) -> Result<(), Error> {
    let a = action.clone();
    let filter = json_text(&a.filter);
    store
        .write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO offstage_actions (id, verb, filter, per_s, actor, node, status, \
                 started_at, updated_at, ended_at, matched, done, failed, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                a.id,
                a.verb.as_str(),
                filter,
                a.per_s,
                a.actor,
                a.node,
                a.status.as_str(),
                micros(a.started_at),
                micros(a.updated_at),
                a.ended_at.map(micros),
                a.matched as i64,
                a.done as i64,
                a.failed as i64,
                a.error,
            ])?;
            Ok(())
        })
        .await
}

pub(super) async fn update(store: &SqliteStore, action: &ActionRecord) -> Result<(), Error> {
    let a = action.clone();
    store
        .write(move |conn| {
            conn.prepare_cached(
                "UPDATE offstage_actions SET status = ?2, updated_at = ?3, ended_at = ?4, \
                 done = ?5, failed = ?6, error = ?7 WHERE id = ?1 AND status = 'running'",
            )?
            .execute(params![
                a.id,
                a.status.as_str(),
                micros(a.updated_at),
                a.ended_at.map(micros),
                a.done as i64,
                a.failed as i64,
                a.error,
            ])?;
            Ok(())
        })
        .await
}

pub(super) async fn get(store: &SqliteStore, id: ActionId) -> Result<Option<ActionRecord>, Error> {
    store
        .read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ACTION_COLUMNS} FROM offstage_actions a WHERE a.id = ?1"
            ))?
            .query_row(params![id], action_from_row)
            .optional()
        })
        .await
}

pub(super) async fn list(
    store: &SqliteStore,
    before: Option<ActionId>,
    limit: usize,
) -> Result<Vec<ActionRecord>, Error> {
    store
        .read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ACTION_COLUMNS} FROM offstage_actions a \
                 WHERE ?1 IS NULL OR a.id < ?1 ORDER BY a.id DESC LIMIT ?2"
            ))?
            .query_map(params![before, limit as i64], action_from_row)?
            .collect()
        })
        .await
}
