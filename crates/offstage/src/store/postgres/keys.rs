//! Concurrency keys in PostgreSQL: the claim of a task type with a per-key limit, the counts
//! per key, the holders of a key, the end of a signal wait under a key's limit, and the fold
//! of the counts.
//!
//! The counts per key are difference rows in `offstage_concurrency_key_counts`, appended by
//! statement-level triggers on `offstage_tasks` (migration 0013) in the transaction of every
//! statement that changes them: only inserts, so no node waits for another on a counter and
//! two keys never deadlock; [`fold`] (each node's housekeeping) sums them back into one row
//! per key. A claim of a keyed type and a resume under a key's limit take the type's advisory
//! lock (the one `claim_limited` takes), so claims of one type take turns on every node and
//! each reads the counts as the previous one committed them. The tasks themselves are taken
//! `FOR UPDATE SKIP LOCKED`, so a kill of a queued task never makes a claim wait.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::counts::{count_change, Change};
use super::nodes::hold_node;
use super::rows::{task_from_row, TASK_COLUMNS};
use super::{pg_error, PostgresStore};
use crate::concurrency_key::KeyCount;
use crate::error::Error;
use crate::id::{NodeId, TaskId};
use crate::status::Status;
use crate::store::turns::Turns;
use crate::store::{node_dead, sort_claimed};
use crate::task::TaskRecord;

/// Takes the lock that claims and resumes of one limited or keyed type take turns on.
async fn lock_type(conn: &mut sqlx::PgConnection, name: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('offstage-limit'), hashtext($1))")
        .bind(name)
        .execute(conn)
        .await
        .map(|_| ())
}

pub(super) async fn claim(
    store: &PostgresStore,
    node: NodeId,
    name: &str,
    now: DateTime<Utc>,
    limit: usize,
    per_key: usize,
    max_running: Option<usize>,
) -> Result<Vec<TaskRecord>, Error> {
    let failed = |e| pg_error("claim", e);
    let mut tx = store.pool.begin().await.map_err(failed)?;
    if !hold_node(&mut tx, node).await.map_err(failed)? {
        return Err(node_dead(node));
    }
    lock_type(&mut tx, name).await.map_err(failed)?;
    let paused: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM offstage_paused WHERE name = $1)")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed)?;
    if paused {
        return Ok(Vec::new());
    }
    let room = match max_running {
        Some(max) => {
            let running = super::signals::holding(&mut tx, name)
                .await
                .map_err(failed)?;
            (max as i64 - running).clamp(0, limit as i64) as usize
        }
        None => limit,
    };
    if room == 0 {
        return Ok(Vec::new());
    }
    let keys: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.concurrency_key, c.running FROM \
             (SELECT concurrency_key, sum(queued)::int8 AS queued, sum(running)::int8 AS running \
              FROM offstage_concurrency_key_counts WHERE name = $1 GROUP BY 1) AS c \
         LEFT JOIN offstage_concurrency_turns AS t \
             ON t.name = $1 AND t.concurrency_key = c.concurrency_key \
         WHERE c.queued > 0 AND c.running < $2 \
         ORDER BY t.served NULLS FIRST, c.concurrency_key",
    )
    .bind(name)
    .bind(per_key as i64)
    .fetch_all(&mut *tx)
    .await
    .map_err(failed)?;
    let take = format!(
        "WITH changed AS (UPDATE offstage_tasks SET status = 'running', node = $1, \
         started_at = $2, attempt = attempt + 1 \
         WHERE id IN (SELECT id FROM offstage_tasks \
             WHERE status = 'queued' AND name = $3 AND concurrency_key = $4 AND run_at <= $2 \
             ORDER BY priority DESC, id LIMIT $5 FOR UPDATE SKIP LOCKED) \
         RETURNING {TASK_COLUMNS}), {} \
         SELECT * FROM changed",
        count_change(Change::Move(Status::Queued))
    );
    let mut turns = Turns::new(keys, per_key, room);
    let mut claimed = Vec::new();
    while let Some(round) = turns.round() {
        for (index, ask) in round {
            let ask = ask.min(turns.left());
            if ask == 0 {
                break;
            }
            let rows = sqlx::query(&take)
                .bind(node.as_uuid())
                .bind(now)
                .bind(name)
                .bind(turns.key(index))
                .bind(ask as i64)
                .fetch_all(&mut *tx)
                .await
                .map_err(failed)?;
            for row in &rows {
                claimed.push(task_from_row(row).map_err(failed)?);
            }
            turns.took(index, ask, rows.len());
        }
    }
    // Each key asked counts as served, after every key served before (see the migration).
    let last: Option<i64> =
        sqlx::query_scalar("SELECT max(served) FROM offstage_concurrency_turns WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed)?;
    let first = now
        .timestamp_micros()
        .max(last.unwrap_or(i64::MIN).saturating_add(1));
    let served: Vec<String> = turns.served().map(str::to_owned).collect();
    if !served.is_empty() {
        sqlx::query(
            "INSERT INTO offstage_concurrency_turns (name, concurrency_key, served) \
             SELECT $1, key, $3 + ord - 1 FROM unnest($2::text[]) WITH ORDINALITY AS k(key, ord) \
             ON CONFLICT (name, concurrency_key) DO UPDATE SET served = excluded.served",
        )
        .bind(name)
        .bind(served)
        .bind(first)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)?;
    sort_claimed(&mut claimed);
    Ok(claimed)
}

pub(super) async fn counts(
    store: &PostgresStore,
    name: &str,
    limit: usize,
) -> Result<Vec<KeyCount>, Error> {
    let err = |e| pg_error("counting tasks by concurrency key", e);
    let rows = sqlx::query(
        "SELECT concurrency_key, sum(running)::int8 AS running, sum(queued)::int8 AS queued \
         FROM offstage_concurrency_key_counts WHERE name = $1 GROUP BY 1 \
         HAVING sum(running) > 0 OR sum(queued) > 0 \
         ORDER BY running DESC, queued DESC, concurrency_key LIMIT $2",
    )
    .bind(name)
    .bind(limit as i64)
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    rows.iter()
        .map(|row| {
            Ok(KeyCount {
                key: row.try_get(0).map_err(err)?,
                running: row.try_get::<i64, _>(1).map_err(err)?.max(0) as u64,
                queued: row.try_get::<i64, _>(2).map_err(err)?.max(0) as u64,
            })
        })
        .collect()
}

pub(super) async fn holders(
    store: &PostgresStore,
    name: &str,
    key: &str,
    limit: usize,
) -> Result<Vec<TaskId>, Error> {
    // The type's holders (`offstage_tasks_holding`), at most what runs of the type.
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM offstage_tasks \
         WHERE status = 'running' AND name = $1 AND waiting_for IS NULL \
         AND concurrency_key = $2 ORDER BY id LIMIT $3",
    )
    .bind(name)
    .bind(key)
    .bind(limit as i64)
    .fetch_all(&store.pool)
    .await
    .map_err(|e| pg_error("reading a concurrency key's holders", e))?;
    Ok(ids.into_iter().map(Into::into).collect())
}

/// How many tasks of type `name` with concurrency key `key` hold a place, from the counts
/// the triggers keep: what a keyed resume counts, under the type's lock.
pub(super) async fn key_holding(
    conn: &mut sqlx::PgConnection,
    name: &str,
    key: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(running), 0)::int8 FROM offstage_concurrency_key_counts \
         WHERE name = $1 AND concurrency_key = $2",
    )
    .bind(name)
    .bind(key)
    .fetch_one(conn)
    .await
}

/// Folds the difference rows into one per key (dropping the keys with nothing queued or
/// running), when there is anything to fold; exact with writers and other folds running, as
/// `counts::fold` is.
pub(super) async fn fold(store: &PostgresStore) -> Result<(), Error> {
    sqlx::query(
        "WITH folding AS (SELECT count(*) > count(DISTINCT (name, concurrency_key)) \
                              OR bool_or(queued = 0 AND running = 0) AS due \
                          FROM offstage_concurrency_key_counts), \
         gone AS (DELETE FROM offstage_concurrency_key_counts \
                  WHERE coalesce((SELECT due FROM folding), false) \
                  RETURNING name, concurrency_key, queued, running) \
         INSERT INTO offstage_concurrency_key_counts (name, concurrency_key, queued, running) \
         SELECT name, concurrency_key, sum(queued), sum(running) FROM gone GROUP BY 1, 2 \
         HAVING sum(queued) <> 0 OR sum(running) <> 0",
    )
    .execute(&store.pool)
    .await
    .map_err(|e| pg_error("folding the counts per concurrency key", e))?;
    Ok(())
}
