//! Concurrency keys in SQLite: the claim of a task type with a per-key limit, the counts per
//! key, the holders of a key, and the end of a signal wait under a key's limit.
//!
//! The counts per key (`offstage_concurrency_key_counts`, one row per key with work) are kept
//! by triggers on `offstage_tasks` (migration 0013), in the transaction of every write that
//! changes them, whichever statement it is: a launch, a claim, a finish, a kill, recovery, a
//! signal wait. The writes here run on the writer thread, inside its `BEGIN IMMEDIATE` batch,
//! so nothing changes the counts between a claim's read of them and its claim.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::counts::Tally;
use super::nodes::registered;
use super::rows::{micros, task_from_row, TASK_COLUMNS};
use super::SqliteStore;
use crate::concurrency_key::KeyCount;
use crate::error::Error;
use crate::id::{NodeId, TaskId};
use crate::status::Status;
use crate::store::turns::Turns;
use crate::store::{node_dead, sort_claimed};
use crate::task::TaskRecord;

pub(super) async fn claim(
    store: &SqliteStore,
    node: NodeId,
    name: &str,
    now: DateTime<Utc>,
    limit: usize,
    per_key: usize,
    max_running: Option<usize>,
) -> Result<Vec<TaskRecord>, Error> {
    let name = name.to_owned();
    let mut records = store
        .write_counted(move |conn, tally| {
            if !registered(conn, node)? {
                return Ok(Err(node_dead(node)));
            }
            let paused = conn
                .prepare_cached("SELECT 1 FROM offstage_paused WHERE name = ?1")?
                .exists([&name])?;
            if paused {
                return Ok(Ok(Vec::new()));
            }
            let room = match max_running {
                Some(max) => {
                    let running = super::signals::holding(conn, &name)?;
                    (max as i64 - running).clamp(0, limit as i64) as usize
                }
                None => limit,
            };
            if room == 0 {
                return Ok(Ok(Vec::new()));
            }
            take_in_turns(conn, tally, node, &name, now, room, per_key).map(Ok)
        })
        .await??;
    sort_claimed(&mut records);
    Ok(records)
}

/// Claims up to `room` due tasks of type `name` for `node`, keys in turns (see `turns.rs`),
/// and marks the keys it asked as served.
fn take_in_turns(
    conn: &Connection,
    tally: &mut Tally,
    node: NodeId,
    name: &str,
    now: DateTime<Utc>,
    room: usize,
    per_key: usize,
) -> rusqlite::Result<Vec<TaskRecord>> {
    let keys: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT c.concurrency_key, c.running FROM offstage_concurrency_key_counts AS c \
             LEFT JOIN offstage_concurrency_turns AS t \
                 ON t.name = c.name AND t.concurrency_key = c.concurrency_key \
             WHERE c.name = ?1 AND c.queued > 0 AND c.running < ?2 \
             ORDER BY t.served NULLS FIRST, c.concurrency_key",
        )?
        .query_map(params![name, per_key as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut turns = Turns::new(keys, per_key, room);
    let mut take = conn.prepare_cached(&format!(
        "UPDATE offstage_tasks SET status = 'running', node = ?1, started_at = ?2, \
         attempt = attempt + 1 \
         WHERE id IN (SELECT id FROM offstage_tasks INDEXED BY offstage_tasks_key_queue \
             WHERE status = 'queued' AND name = ?3 AND concurrency_key = ?4 AND run_at <= ?2 \
             ORDER BY priority DESC, id LIMIT ?5) \
         RETURNING {TASK_COLUMNS}"
    ))?;
    let mut claimed = Vec::new();
    while let Some(round) = turns.round() {
        for (index, ask) in round {
            let ask = ask.min(turns.left());
            if ask == 0 {
                break;
            }
            let before = claimed.len();
            let rows = take.query_map(
                params![node, micros(now), name, turns.key(index), ask as i64],
                task_from_row,
            )?;
            for record in rows {
                let record = record?;
                tally.moved(&record.name, Status::Queued, Status::Running);
                claimed.push(record);
            }
            turns.took(index, ask, claimed.len() - before);
        }
    }
    // Each key asked counts as served, after every key served before: the turn numbers only
    // grow, even when the clock stands still (a paused test clock) or steps back.
    let last: Option<i64> = conn
        .prepare_cached("SELECT max(served) FROM offstage_concurrency_turns WHERE name = ?1")?
        .query_row([name], |row| row.get(0))?;
    let first = micros(now).max(last.unwrap_or(i64::MIN).saturating_add(1));
    let mut serve = conn.prepare_cached(
        "INSERT INTO offstage_concurrency_turns (name, concurrency_key, served) \
         VALUES (?1, ?2, ?3) \
         ON CONFLICT (name, concurrency_key) DO UPDATE SET served = excluded.served",
    )?;
    for (turn, key) in (first..).zip(turns.served()) {
        serve.execute(params![name, key, turn])?;
    }
    Ok(claimed)
}

pub(super) async fn counts(
    store: &SqliteStore,
    name: &str,
    limit: usize,
) -> Result<Vec<KeyCount>, Error> {
    let name = name.to_owned();
    store
        .read(move |conn| {
            conn.prepare_cached(
                "SELECT concurrency_key, running, queued FROM offstage_concurrency_key_counts \
                 WHERE name = ?1 AND (running > 0 OR queued > 0) \
                 ORDER BY running DESC, queued DESC, concurrency_key LIMIT ?2",
            )?
            .query_map(params![name, limit as i64], |row| {
                Ok(KeyCount {
                    key: row.get(0)?,
                    running: row.get::<_, i64>(1)?.max(0) as u64,
                    queued: row.get::<_, i64>(2)?.max(0) as u64,
                })
            })?
            .collect()
        })
        .await
}

pub(super) async fn holders(
    store: &SqliteStore,
    name: &str,
    key: &str,
    limit: usize,
) -> Result<Vec<TaskId>, Error> {
    let (name, key) = (name.to_owned(), key.to_owned());
    store
        .read(move |conn| {
            // The type's holders (`offstage_tasks_holding`), at most what runs of the type.
            conn.prepare_cached(
                "SELECT id FROM offstage_tasks \
                 WHERE status = 'running' AND name = ?1 AND waiting_for IS NULL \
                 AND concurrency_key = ?2 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![name, key, limit as i64], |row| row.get(0))?
            .collect()
        })
        .await
}

/// How many tasks of type `name` and key `key` hold a place: what a resume counts, on the
/// writer.
pub(super) fn key_holding(conn: &Connection, name: &str, key: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT coalesce(sum(running), 0) FROM offstage_concurrency_key_counts \
         WHERE name = ?1 AND concurrency_key = ?2",
    )?
    .query_row([name, key], |row| row.get(0))
}
