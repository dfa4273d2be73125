//! Bulk actions in PostgreSQL: a row of `offstage_actions` per action, written by the node
//! that runs it and read by anyone. Each function is one store step.

use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::{pg_error, PostgresStore};
use crate::action::ActionRecord;
use crate::error::Error;
use crate::id::ActionId;
use crate::store::json_text;

/// The columns every action query selects, in the order [`action_from_row`] reads them; the
/// last says whether the action's node is gone.
const ACTION_COLUMNS: &str = "a.id, a.verb, a.filter, a.per_s, a.actor, a.node, a.status, \
    a.started_at, a.updated_at, a.ended_at, a.matched, a.done, a.failed, a.error, \
    NOT EXISTS (SELECT 1 FROM offstage_nodes n WHERE n.id = a.node)";

fn bad(index: usize, error: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: format!("column {index} is not valid: {error}").into(),
    }
}

fn action_from_row(row: &PgRow) -> sqlx::Result<ActionRecord> {
    let record = ActionRecord {
        id: row.try_get::<Uuid, _>(0)?.into(),
        verb: row.try_get::<&str, _>(1)?.parse().map_err(|e| bad(1, e))?,
        filter: serde_json::from_str(row.try_get(2)?).map_err(|e| bad(2, e))?,
        per_s: row.try_get(3)?,
        actor: row.try_get(4)?,
        node: row.try_get::<Uuid, _>(5)?.into(),
        status: row.try_get::<&str, _>(6)?.parse().map_err(|e| bad(6, e))?,
        started_at: row.try_get(7)?,
        updated_at: row.try_get(8)?,
        ended_at: row.try_get(9)?,
        matched: row.try_get::<i64, _>(10)? as u64,
        done: row.try_get::<i64, _>(11)? as u64,
        failed: row.try_get::<i64, _>(12)? as u64,
        error: row.try_get(13)?,
    };
    Ok(if row.try_get(14)? {
        record.orphaned()
    } else {
        record
    })
}

pub(super) async fn insert(store: &PostgresStore, a: &ActionRecord) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO offstage_actions (id, verb, filter, per_s, actor, node, status, started_at, \
         updated_at, ended_at, matched, done, failed, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(a.id.as_uuid())
    .bind(a.verb.as_str())
    .bind(json_text(&a.filter))
    .bind(a.per_s)
    .bind(&a.actor)
    .bind(a.node.as_uuid())
    .bind(a.status.as_str())
    .bind(a.started_at)
    .bind(a.updated_at)
    .bind(a.ended_at)
    .bind(a.matched as i64)
    .bind(a.done as i64)
    .bind(a.failed as i64)
    .bind(&a.error)
    .execute(&store.pool)
    .await
    .map_err(|e| pg_error("recording an action", e))?;
    Ok(())
}

pub(super) async fn update(store: &PostgresStore, a: &ActionRecord) -> Result<(), Error> {
    sqlx::query(
        "UPDATE offstage_actions SET status = $2, updated_at = $3, ended_at = $4, done = $5, \
         failed = $6, error = $7 WHERE id = $1 AND status = 'running'",
    )
    .bind(a.id.as_uuid())
    .bind(a.status.as_str())
    .bind(a.updated_at)
    .bind(a.ended_at)
    .bind(a.done as i64)
    .bind(a.failed as i64)
    .bind(&a.error)
    .execute(&store.pool)
    .await
    .map_err(|e| pg_error("saving an action's progress", e))?;
    Ok(())
}

pub(super) async fn get(
    store: &PostgresStore,
    id: ActionId,
) -> Result<Option<ActionRecord>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {ACTION_COLUMNS} FROM offstage_actions a WHERE a.id = $1"
    ))
    .bind(id.as_uuid())
    .fetch_optional(&store.pool)
    .await
    .map_err(|e| pg_error("reading an action", e))?;
    row.as_ref()
        .map(action_from_row)
        .transpose()
        .map_err(|e| pg_error("reading an action", e))
}

pub(super) async fn list(
    store: &PostgresStore,
    before: Option<ActionId>,
    limit: usize,
) -> Result<Vec<ActionRecord>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {ACTION_COLUMNS} FROM offstage_actions a \
         WHERE $1::uuid IS NULL OR a.id < $1 ORDER BY a.id DESC LIMIT $2"
    ))
    .bind(before.map(|id| id.as_uuid()))
    .bind(limit as i64)
    .fetch_all(&store.pool)
    .await
    .map_err(|e| pg_error("listing actions", e))?;
    rows.iter()
        .map(action_from_row)
        .collect::<sqlx::Result<_>>()
        .map_err(|e| pg_error("listing actions", e))
}
