//! Shared state in PostgreSQL: the `offstage_shared` rows, for the
//! [`Store`](crate::store::Store) methods `shared_*` and the lock sweeps of recovery and
//! deregistration.
//!
//! Taking a lock is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE lock_token IS NULL`:
//! PostgreSQL makes the insert-or-update atomic and evaluates the condition on the latest row
//! version under its row lock, so of concurrent lockers on any nodes exactly one gets it.
//! Releasing is one `UPDATE ... WHERE lock_token = $token`.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::pg_error;
use crate::error::Error;
use crate::id::NodeId;
use crate::shared::{SharedLock, SharedRecord};

/// The columns every shared-state query selects, in the order [`record_from_row`] reads them.
const COLUMNS: &str = "name, value, version, updated_at, lock_node, lock_holder, locked_at";

/// The columns a release clears.
const UNLOCKED: &str = "lock_token = NULL, lock_node = NULL, lock_holder = NULL, locked_at = NULL";

fn record_from_row(row: &PgRow) -> sqlx::Result<SharedRecord> {
    let text: &str = row.try_get(1)?;
    let value = serde_json::from_str(text).map_err(|e| sqlx::Error::ColumnDecode {
        index: "value".to_owned(),
        source: Box::new(e),
    })?;
    let locked_by = match row.try_get::<Option<Uuid>, _>(4)? {
        Some(node) => Some(SharedLock {
            node: node.into(),
            holder: row.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
            locked_at: row
                .try_get::<Option<DateTime<Utc>>, _>(6)?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(SharedRecord {
        name: row.try_get(0)?,
        value,
        version: row.try_get::<i64, _>(2)? as u64,
        updated_at: row.try_get(3)?,
        locked_by,
    })
}

pub(super) async fn get(pool: &PgPool, name: &str) -> Result<Option<SharedRecord>, Error> {
    let err = |e| pg_error("reading shared state", e);
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM offstage_shared WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(err)?;
    row.as_ref().map(record_from_row).transpose().map_err(err)
}

pub(super) async fn list(pool: &PgPool) -> Result<Vec<SharedRecord>, Error> {
    let err = |e| pg_error("listing shared state", e);
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM offstage_shared ORDER BY name COLLATE \"C\""
    ))
    .fetch_all(pool)
    .await
    .map_err(err)?;
    rows.iter()
        .map(record_from_row)
        .collect::<sqlx::Result<_>>()
        .map_err(err)
}

pub(super) async fn lock(
    pool: &PgPool,
    name: &str,
    token: Uuid,
    node: NodeId,
    holder: &str,
    now: DateTime<Utc>,
) -> Result<Option<SharedRecord>, Error> {
    let err = |e| pg_error("taking a shared-state lock", e);
    let row = sqlx::query(&format!(
        "INSERT INTO offstage_shared AS s (name, value, version, updated_at, lock_token, \
         lock_node, lock_holder, locked_at) VALUES ($1, 'null', 0, $5, $2, $3, $4, $5) \
         ON CONFLICT (name) DO UPDATE SET lock_token = excluded.lock_token, \
         lock_node = excluded.lock_node, lock_holder = excluded.lock_holder, \
         locked_at = excluded.locked_at WHERE s.lock_token IS NULL \
         RETURNING {COLUMNS}"
    ))
    .bind(name)
    .bind(token)
    .bind(node.as_uuid())
    .bind(holder)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(err)?;
    row.as_ref().map(record_from_row).transpose().map_err(err)
}

pub(super) async fn unlock(
    pool: &PgPool,
    name: &str,
    token: Uuid,
    value: Option<String>,
    now: DateTime<Utc>,
) -> Result<Option<SharedRecord>, Error> {
    let err = |e| pg_error("releasing a shared-state lock", e);
    let row = sqlx::query(&format!(
        "UPDATE offstage_shared SET value = coalesce($3, value), \
         version = version + CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END, \
         updated_at = CASE WHEN $3::text IS NULL THEN updated_at ELSE $4 END, {UNLOCKED} \
         WHERE name = $1 AND lock_token = $2 RETURNING {COLUMNS}"
    ))
    .bind(name)
    .bind(token)
    .bind(value)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(err)?;
    row.as_ref().map(record_from_row).transpose().map_err(err)
}

/// Frees every lock held on a node other than `me` that is not registered: part of
/// recovery's transaction, after the dead nodes' rows are deleted. Reads only locked rows (a
/// partial index has them).
pub(super) async fn free_orphaned_locks(conn: &mut PgConnection, me: NodeId) -> sqlx::Result<u64> {
    let done = sqlx::query(&format!(
        "UPDATE offstage_shared s SET {UNLOCKED} WHERE s.lock_node IS NOT NULL \
         AND s.lock_node <> $1 \
         AND NOT EXISTS (SELECT 1 FROM offstage_nodes n WHERE n.id = s.lock_node)"
    ))
    .bind(me.as_uuid())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Frees the locks held on `node`, which is deregistering.
pub(super) async fn free_locks_of(conn: &mut PgConnection, node: NodeId) -> sqlx::Result<u64> {
    let done = sqlx::query(&format!(
        "UPDATE offstage_shared SET {UNLOCKED} WHERE lock_node = $1"
    ))
    .bind(node.as_uuid())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
