//! Limiters in PostgreSQL: the `offstage_limiters` and `offstage_limiter_holds` rows, for the
//! [`Store`](crate::store::Store) methods `limiter_*`.
//!
//! An acquisition is one transaction that locks the limiter's row (`FOR UPDATE`), so tries on
//! every node take turns at it; the bucket is refilled by the database server's clock
//! (`clock_timestamp()`, read once the row is locked), never a node's, so nodes whose clocks
//! disagree still agree on the budget. A hold is taken only while its node's row is held
//! (`FOR KEY SHARE`), so recovery cannot remove the node between the check and the insert.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::nodes::hold_node;
use super::pg_error;
use crate::error::Error;
use crate::limiter::{Acquire, Bucket, HoldRequest, Limit, LimiterHold, LimiterRecord};
use crate::store::node_dead;

/// The columns every limiter query selects, in the order [`stored_from_row`] reads them.
const COLUMNS: &str = "name, rate, burst, max_holders, tokens, refilled_at, updated_at";

/// The condition a hold counts under, at `$2`: its node registered, not expired.
const LIVE: &str = "node IN (SELECT id FROM offstage_nodes) \
                    AND (expires_at IS NULL OR expires_at > $2)";

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

fn stored_from_row(row: &PgRow) -> sqlx::Result<Stored> {
    Ok(Stored {
        name: row.try_get(0)?,
        limit: Limit {
            rate: row.try_get(1)?,
            burst: row.try_get::<Option<i32>, _>(2)?.map(|b| b as u32),
            max_holders: row.try_get::<Option<i32>, _>(3)?.map(|m| m as u32),
        },
        tokens: row.try_get(4)?,
        refilled_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
    })
}

fn hold_from_row(row: &PgRow) -> sqlx::Result<LimiterHold> {
    Ok(LimiterHold {
        id: row.try_get(0)?,
        node: row.try_get::<Uuid, _>(1)?.into(),
        holder: row.try_get(2)?,
        acquired_at: row.try_get(3)?,
        expires_at: row.try_get(4)?,
    })
}

/// The database server's time, read now (not at the start of the transaction).
async fn clock(conn: &mut PgConnection) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(conn)
        .await
}

async fn select(conn: &mut PgConnection, name: &str, lock: bool) -> sqlx::Result<Option<Stored>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM offstage_limiters WHERE name = $1{lock}"
    ))
    .bind(name)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(stored_from_row)
    .transpose()
}

async fn live_holds(
    conn: &mut PgConnection,
    name: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<LimiterHold>> {
    sqlx::query(&format!(
        "SELECT id, node, holder, acquired_at, expires_at FROM offstage_limiter_holds \
         WHERE limiter = $1 AND {LIVE} ORDER BY acquired_at, id"
    ))
    .bind(name)
    .bind(now)
    .fetch_all(conn)
    .await?
    .iter()
    .map(hold_from_row)
    .collect()
}

async fn record(
    conn: &mut PgConnection,
    stored: Stored,
    now: DateTime<Utc>,
) -> sqlx::Result<LimiterRecord> {
    let holders = live_holds(conn, &stored.name, now).await?;
    Ok(LimiterRecord {
        tokens: stored.bucket().map(|bucket| bucket.level(now)),
        name: stored.name,
        limit: stored.limit,
        holders,
        updated_at: stored.updated_at,
    })
}

pub(super) async fn put(
    pool: &PgPool,
    name: &str,
    limit: &Limit,
) -> Result<(LimiterRecord, Option<Limit>), Error> {
    let err = |e| pg_error("defining a limiter", e);
    let mut tx = pool.begin().await.map_err(err)?;
    let before = select(&mut tx, name, true).await.map_err(err)?;
    let now = clock(&mut tx).await.map_err(err)?;
    let burst = limit.effective_burst().map_or(0.0, f64::from);
    // A bucket that was there keeps its tokens (down to the new burst); a new one starts full.
    let tokens = match before.as_ref().and_then(Stored::bucket) {
        Some(bucket) => bucket.level(now).min(burst),
        None => burst,
    };
    sqlx::query(
        "INSERT INTO offstage_limiters (name, rate, burst, max_holders, tokens, refilled_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (name) DO UPDATE SET rate = excluded.rate, burst = excluded.burst, \
         max_holders = excluded.max_holders, tokens = excluded.tokens, \
         refilled_at = excluded.refilled_at, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(limit.rate)
    .bind(limit.burst.map(|b| b as i32))
    .bind(limit.max_holders.map(|m| m as i32))
    .bind(tokens)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    let stored = select(&mut tx, name, false)
        .await
        .map_err(err)?
        .expect("just written");
    let record = record(&mut tx, stored, now).await.map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok((record, before.map(|b| b.limit)))
}

pub(super) async fn delete(pool: &PgPool, name: &str) -> Result<bool, Error> {
    let err = |e| pg_error("deleting a limiter", e);
    let mut tx = pool.begin().await.map_err(err)?;
    sqlx::query("DELETE FROM offstage_limiter_holds WHERE limiter = $1")
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    let deleted = sqlx::query("DELETE FROM offstage_limiters WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
    tx.commit().await.map_err(err)?;
    Ok(deleted > 0)
}

pub(super) async fn list(pool: &PgPool) -> Result<Vec<LimiterRecord>, Error> {
    let err = |e| pg_error("reading limiters", e);
    let mut conn = pool.acquire().await.map_err(err)?;
    let now = clock(&mut conn).await.map_err(err)?;
    let stored: Vec<Stored> = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM offstage_limiters ORDER BY name"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?
    .iter()
    .map(stored_from_row)
    .collect::<sqlx::Result<_>>()
    .map_err(err)?;
    let mut records = Vec::with_capacity(stored.len());
    for stored in stored {
        records.push(record(&mut conn, stored, now).await.map_err(err)?);
    }
    Ok(records)
}

pub(super) async fn acquire(
    pool: &PgPool,
    name: &str,
    hold: &HoldRequest,
) -> Result<Option<Acquire>, Error> {
    let err = |e| pg_error("acquiring from a limiter", e);
    // The common case in one statement, which holds the row's lock only while it runs: a
    // bucket without holders that has a whole token (the rule of `Bucket::take`). Anything
    // else (no such limiter, holders, no token: the answer says when the next is due) takes
    // the transaction below.
    let taken = sqlx::query(
        "WITH c AS (SELECT clock_timestamp() AS now) \
         UPDATE offstage_limiters l SET \
           tokens = least(coalesce(l.burst, 1)::float8, l.tokens + l.rate * \
             greatest(0, extract(epoch FROM c.now - l.refilled_at)::float8)) - 1, \
           refilled_at = greatest(l.refilled_at, c.now) \
         FROM c WHERE l.name = $1 AND l.max_holders IS NULL AND l.rate IS NOT NULL \
           AND least(coalesce(l.burst, 1)::float8, l.tokens + l.rate * \
             greatest(0, extract(epoch FROM c.now - l.refilled_at)::float8)) >= 1",
    )
    .bind(name)
    .execute(pool)
    .await
    .map_err(err)?
    .rows_affected();
    if taken == 1 {
        return Ok(Some(Acquire::Taken { held: false }));
    }
    // Refused, or not that case: a look without the row's lock says which, so a crowd of
    // refused tries never holds up the tries that would get a token.
    let mut conn = pool.acquire().await.map_err(err)?;
    let Some(stored) = select(&mut conn, name, false).await.map_err(err)? else {
        return Ok(None);
    };
    if stored.limit.max_holders.is_none() {
        let now = clock(&mut conn).await.map_err(err)?;
        if let Some(mut bucket) = stored.bucket() {
            if let Err(due) = bucket.take(now) {
                return Ok(Some(Acquire::NoToken(due)));
            }
        }
        // A token came between the two statements: the caller tries again at once.
        return Ok(Some(Acquire::NoToken(Duration::ZERO)));
    }
    drop(conn);
    let mut tx = pool.begin().await.map_err(err)?;
    let Some(stored) = select(&mut tx, name, true).await.map_err(err)? else {
        return Ok(None);
    };
    // Read once the row is ours: no try that came before can have refilled later than this.
    let now = clock(&mut tx).await.map_err(err)?;
    if let Some(max) = stored.limit.max_holders {
        // Holds that no longer count go first: their node is gone, or they expired.
        sqlx::query(&format!(
            "DELETE FROM offstage_limiter_holds WHERE limiter = $1 AND NOT ({LIVE})"
        ))
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let held: i64 =
            sqlx::query_scalar("SELECT count(*) FROM offstage_limiter_holds WHERE limiter = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
        if held >= i64::from(max) {
            tx.commit().await.map_err(err)?;
            return Ok(Some(Acquire::Full));
        }
        if !hold_node(&mut tx, hold.node).await.map_err(err)? {
            return Err(node_dead(hold.node));
        }
    }
    if let Some(mut bucket) = stored.bucket() {
        if let Err(due) = bucket.take(now) {
            return Ok(Some(Acquire::NoToken(due)));
        }
        sqlx::query("UPDATE offstage_limiters SET tokens = $2, refilled_at = $3 WHERE name = $1")
            .bind(name)
            .bind(bucket.tokens)
            .bind(bucket.refilled_at)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    let held = stored.limit.max_holders.is_some();
    if held {
        let expires_at = hold
            .ttl
            .and_then(|ttl| chrono::Duration::from_std(ttl).ok())
            .map(|ttl| now + ttl);
        sqlx::query(
            "INSERT INTO offstage_limiter_holds (id, limiter, node, holder, acquired_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hold.id)
        .bind(name)
        .bind(hold.node.as_uuid())
        .bind(&hold.holder)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    Ok(Some(Acquire::Taken { held }))
}

pub(super) async fn release(pool: &PgPool, name: &str, hold: Uuid) -> Result<bool, Error> {
    let deleted = sqlx::query("DELETE FROM offstage_limiter_holds WHERE id = $1 AND limiter = $2")
        .bind(hold)
        .bind(name)
        .execute(pool)
        .await
        .map_err(|e| pg_error("releasing a limiter hold", e))?
        .rows_affected();
    Ok(deleted > 0)
}
