//! Shared state in SQLite: the `offstage_shared` rows, for the [`Store`](crate::store::Store)
//! methods `shared_*` and the lock sweeps of recovery and deregistration.
//!
//! Taking and releasing a lock are one statement each on the writer thread, inside its
//! `BEGIN IMMEDIATE` batch, so no other writer (in this process or another) comes between the
//! look at the lock and the change.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::rows::{from_micros, micros};
use super::SqliteStore;
use crate::error::Error;
use crate::id::NodeId;
use crate::shared::{SharedLock, SharedRecord};

/// The columns every shared-state query selects, in the order [`record_from_row`] reads them.
const COLUMNS: &str = "name, value, version, updated_at, lock_node, lock_holder, locked_at";

/// The columns a release clears.
const UNLOCKED: &str = "lock_token = NULL, lock_node = NULL, lock_holder = NULL, locked_at = NULL";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<SharedRecord> {
    let text: String = row.get(1)?;
    let value = serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
    })?;
    let node: Option<NodeId> = row.get(4)?;
    let locked_by = match node {
        Some(node) => Some(SharedLock {
            node,
            holder: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
            locked_at: from_micros(row.get::<_, Option<i64>>(6)?.unwrap_or_default()),
        }),
        None => None,
    };
    Ok(SharedRecord {
        name: row.get(0)?,
        value,
        version: row.get::<_, i64>(2)? as u64,
        updated_at: from_micros(row.get(3)?),
        locked_by,
    })
}

fn token_bytes(token: Uuid) -> Vec<u8> {
    token.as_bytes().to_vec()
}

pub(super) async fn get(store: &SqliteStore, name: &str) -> Result<Option<SharedRecord>, Error> {
    let name = name.to_owned();
    store
        .read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM offstage_shared WHERE name = ?1"
            ))?
            .query_row([name], record_from_row)
            .optional()
        })
        .await
}

pub(super) async fn list(store: &SqliteStore) -> Result<Vec<SharedRecord>, Error> {
    store
        .read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM offstage_shared ORDER BY name"
            ))?
            .query_map([], record_from_row)?
            .collect()
        })
        .await
}

pub(super) async fn lock(
    store: &SqliteStore,
    name: &str,
    token: Uuid,
    node: NodeId,
    holder: &str,
    now: DateTime<Utc>,
) -> Result<Option<SharedRecord>, Error> {
    let (name, holder) = (name.to_owned(), holder.to_owned());
    store
        .write(move |conn| {
            // One statement: insert the document locked, or lock the existing one if nobody
            // holds it. An upsert whose WHERE fails changes no row and returns none.
            conn.prepare_cached(&format!(
                "INSERT INTO offstage_shared (name, value, version, updated_at, lock_token, \
                 lock_node, lock_holder, locked_at) VALUES (?1, 'null', 0, ?5, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (name) DO UPDATE SET lock_token = excluded.lock_token, \
                 lock_node = excluded.lock_node, lock_holder = excluded.lock_holder, \
                 locked_at = excluded.locked_at WHERE lock_token IS NULL \
                 RETURNING {COLUMNS}"
            ))?
            .query_row(
                params![name, token_bytes(token), node, holder, micros(now)],
                record_from_row,
            )
            .optional()
        })
        .await
}

pub(super) async fn unlock(
    store: &SqliteStore,
    name: &str,
    token: Uuid,
    value: Option<String>,
    now: DateTime<Utc>,
) -> Result<Option<SharedRecord>, Error> {
    let name = name.to_owned();
    store
        .write(move |conn| {
            conn.prepare_cached(&format!(
                "UPDATE offstage_shared SET value = coalesce(?3, value), \
                 version = version + (?3 IS NOT NULL), \
                 updated_at = CASE WHEN ?3 IS NULL THEN updated_at ELSE ?4 END, {UNLOCKED} \
                 WHERE name = ?1 AND lock_token = ?2 RETURNING {COLUMNS}"
            ))?
            .query_row(
                params![name, token_bytes(token), value, micros(now)],
                record_from_row,
            )
            .optional()
        })
        .await
}

/// Frees every lock held on a node other than `me` that is not registered. Part of recovery,
/// after the dead nodes' rows are gone. Reads only locked rows (a partial index has them).
pub(super) fn free_orphaned_locks(conn: &Connection, me: NodeId) -> rusqlite::Result<usize> {
    conn.prepare_cached(&format!(
        "UPDATE offstage_shared SET {UNLOCKED} WHERE lock_node IS NOT NULL AND lock_node != ?1 \
         AND lock_node NOT IN (SELECT id FROM offstage_nodes)"
    ))?
    .execute([me])
}

/// Frees the locks held on `node`, which is deregistering.
pub(super) fn free_locks_of(conn: &Connection, node: NodeId) -> rusqlite::Result<usize> {
    conn.prepare_cached(&format!(
        "UPDATE offstage_shared SET {UNLOCKED} WHERE lock_node = ?1"
    ))?
    .execute([node])
}
