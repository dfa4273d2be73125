//! Limiters in SQLite: the `offstage_limiters` and `offstage_limiter_holds` rows, for the
//! [`Store`](crate::store::Store) methods `limiter_*`.
//!
//! An acquisition reads the limiter, counts its holds, and takes a token and a hold on the
//! writer thread, inside its `BEGIN IMMEDIATE` batch: no other writer (in this process or
//! another) comes between the look and the take. The bucket's clock is the caller's `now`:
//! every node on one SQLite file runs on one machine.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::nodes::registered;
use super::rows::{from_micros, micros};
use super::SqliteStore;
use crate::error::Error;
use crate::limiter::{Acquire, Bucket, HoldRequest, Limit, LimiterHold, LimiterRecord};
use crate::store::node_dead;

/// The columns every limiter query selects, in the order [`stored_from_row`] reads them.
const COLUMNS: &str = "name, rate, burst, max_holders, tokens, refilled_at, updated_at";

/// A limiter row as stored: its definition and its bucket at the last refill.
struct Stored {
    name: String,
    limit: Limit,
    tokens: f64,
    refilled_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Stored {
    fn bucket(&self) -> Option<Bucket> {
        Some(Bucket {
            rate: self.limit.rate?,
            burst: f64::from(self.limit.effective_burst()?),
            tokens: self.tokens,
            refilled_at: self.refilled_at,
        })
    }
}

fn stored_from_row(row: &Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        name: row.get(0)?,
        limit: Limit {
            rate: row.get(1)?,
            burst: row.get::<_, Option<i64>>(2)?.map(|b| b as u32),
            max_holders: row.get::<_, Option<i64>>(3)?.map(|m| m as u32),
        },
        tokens: row.get(4)?,
        refilled_at: from_micros(row.get(5)?),
        updated_at: from_micros(row.get(6)?),
    })
}

fn hold_from_row(row: &Row<'_>) -> rusqlite::Result<LimiterHold> {
    let id: [u8; 16] = row.get(0)?;
    Ok(LimiterHold {
        id: Uuid::from_bytes(id),
        node: row.get(1)?,
        holder: row.get(2)?,
        acquired_at: from_micros(row.get(3)?),
        expires_at: row.get::<_, Option<i64>>(4)?.map(from_micros),
    })
}

fn select(conn: &Connection, name: &str) -> rusqlite::Result<Option<Stored>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM offstage_limiters WHERE name = ?1"
    ))?
    .query_row([name], stored_from_row)
    .optional()
}

/// The holds of limiter `name` that count at `now`: their node registered, not expired.
fn live_holds(conn: &Connection, name: &str, now: i64) -> rusqlite::Result<Vec<LimiterHold>> {
    conn.prepare_cached(
        "SELECT id, node, holder, acquired_at, expires_at FROM offstage_limiter_holds \
         WHERE limiter = ?1 AND node IN (SELECT id FROM offstage_nodes) \
         AND (expires_at IS NULL OR expires_at > ?2) ORDER BY acquired_at, id",
    )?
    .query_map(params![name, now], hold_from_row)?
    .collect()
}

fn record(
    conn: &Connection,
    stored: Stored,
    now: DateTime<Utc>,
) -> rusqlite::Result<LimiterRecord> {
    let holders = live_holds(conn, &stored.name, micros(now))?;
    Ok(LimiterRecord {
        tokens: stored.bucket().map(|bucket| bucket.level(now)),
        name: stored.name,
        limit: stored.limit,
        holders,
        updated_at: stored.updated_at,
    })
}

pub(super) async fn put(
    store: &SqliteStore,
    name: &str,
    limit: &Limit,
    now: DateTime<Utc>,
) -> Result<(LimiterRecord, Option<Limit>), Error> {
    let (name, limit) = (name.to_owned(), *limit);
    store
        .write(move |conn| {
            let before = select(conn, &name)?;
            let burst = limit.effective_burst().map_or(0.0, f64::from);
            // A bucket that was there keeps its tokens (down to the new burst); a new one
            // starts full.
            let tokens = match before.as_ref().and_then(Stored::bucket) {
                Some(bucket) => bucket.level(now).min(burst),
                None => burst,
            };
            conn.prepare_cached(
                "INSERT INTO offstage_limiters (name, rate, burst, max_holders, tokens, \
                 refilled_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
                 ON CONFLICT (name) DO UPDATE SET rate = excluded.rate, burst = excluded.burst, \
                 max_holders = excluded.max_holders, tokens = excluded.tokens, \
                 refilled_at = excluded.refilled_at, updated_at = excluded.updated_at",
            )?
            .execute(params![
                name,
                limit.rate,
                limit.burst,
                limit.max_holders,
                tokens,
                micros(now)
            ])?;
            let stored = select(conn, &name)?.expect("just written");
            Ok((record(conn, stored, now)?, before.map(|b| b.limit)))
        })
        .await
}

pub(super) async fn delete(store: &SqliteStore, name: &str) -> Result<bool, Error> {
    let name = name.to_owned();
    store
        .write(move |conn| {
            conn.prepare_cached("DELETE FROM offstage_limiter_holds WHERE limiter = ?1")?
                .execute([&name])?;
            let deleted = conn
                .prepare_cached("DELETE FROM offstage_limiters WHERE name = ?1")?
                .execute([&name])?;
            Ok(deleted > 0)
        })
        .await
}

pub(super) async fn list(
    store: &SqliteStore,
    now: DateTime<Utc>,
) -> Result<Vec<LimiterRecord>, Error> {
    store
        .read(move |conn| {
            let stored: Vec<Stored> = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM offstage_limiters ORDER BY name"
                ))?
                .query_map([], stored_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            stored
                .into_iter()
                .map(|stored| record(conn, stored, now))
                .collect()
        })
        .await
}

/// What one try found, before the node check becomes an error.
enum Tried {
    Unknown,
    NodeDead,
    Answer(Acquire),
}

pub(super) async fn acquire(
    store: &SqliteStore,
    name: &str,
    hold: &HoldRequest,
    now: DateTime<Utc>,
) -> Result<Option<Acquire>, Error> {
    let (name, hold) = (name.to_owned(), hold.clone());
    let node = hold.node;
    let tried =
        store
            .write(move |conn| {
                let Some(stored) = select(conn, &name)? else {
                    return Ok(Tried::Unknown);
                };
                let now_micros = micros(now);
                if let Some(max) = stored.limit.max_holders {
                    // Holds that no longer count go first: their node is gone, or they expired.
                    conn.prepare_cached(
                        "DELETE FROM offstage_limiter_holds WHERE limiter = ?1 AND \
                     (node NOT IN (SELECT id FROM offstage_nodes) OR expires_at <= ?2)",
                    )?
                    .execute(params![name, now_micros])?;
                    let held: i64 = conn
                        .prepare_cached(
                            "SELECT count(*) FROM offstage_limiter_holds WHERE limiter = ?1",
                        )?
                        .query_row([&name], |row| row.get(0))?;
                    if held >= i64::from(max) {
                        return Ok(Tried::Answer(Acquire::Full));
                    }
                    if !registered(conn, hold.node)? {
                        return Ok(Tried::NodeDead);
                    }
                }
                if let Some(mut bucket) = stored.bucket() {
                    if let Err(due) = bucket.take(now) {
                        return Ok(Tried::Answer(Acquire::NoToken(due)));
                    }
                    conn.prepare_cached(
                    "UPDATE offstage_limiters SET tokens = ?2, refilled_at = ?3 WHERE name = ?1",
                )?
                .execute(params![name, bucket.tokens, micros(bucket.refilled_at)])?;
                }
                let held = stored.limit.max_holders.is_some();
                if held {
                    let expires_at = hold
                        .ttl
                        .and_then(|ttl| chrono::Duration::from_std(ttl).ok())
                        .map(|ttl| micros(now + ttl));
                    conn.prepare_cached(
                    "INSERT INTO offstage_limiter_holds (id, limiter, node, holder, acquired_at, \
                     expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    hold.id.as_bytes().to_vec(),
                    name,
                    hold.node,
                    hold.holder,
                    now_micros,
                    expires_at
                ])?;
                }
                Ok(Tried::Answer(Acquire::Taken { held }))
            })
            .await?;
    match tried {
        Tried::Unknown => Ok(None),
        Tried::NodeDead => Err(node_dead(node)),
        Tried::Answer(answer) => Ok(Some(answer)),
    }
}

pub(super) async fn release(store: &SqliteStore, name: &str, hold: Uuid) -> Result<bool, Error> {
    let name = name.to_owned();
    store
        .write(move |conn| {
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM offstage_limiter_holds WHERE id = ?1 AND limiter = ?2",
                )?
                .execute(params![hold.as_bytes().to_vec(), name])?;
            Ok(deleted > 0)
        })
        .await
}
