//! Stats in PostgreSQL: the `offstage_stats` rows, for [`Store::record_stats`] and
//! [`Store::stats_since`](crate::store::Store::stats_since).
//!
//! A flush's rows go in with one `INSERT ... SELECT FROM unnest(...)`, in the same
//! transaction as its retention delete. A read takes the rows of the minutes asked for through
//! the `minute` index and merges them across nodes here; the wait histograms are text the
//! database cannot add.
//!
//! [`Store::record_stats`]: crate::store::Store::record_stats

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use super::pg_error;
use crate::error::Error;
use crate::id::NodeId;
use crate::stats::{from_minutes, minutes, StatsRow, WaitHistogram};

pub(super) async fn record(
    pool: &PgPool,
    node: NodeId,
    rows: Vec<StatsRow>,
    expire_before: DateTime<Utc>,
) -> Result<(), Error> {
    let err = |e| pg_error("recording stats", e);
    let count = |f: fn(&StatsRow) -> u64| rows.iter().map(|r| f(r) as i64).collect::<Vec<_>>();
    let mut tx = pool.begin().await.map_err(err)?;
    if !rows.is_empty() {
        sqlx::query(
            "INSERT INTO offstage_stats (minute, node, name, started, completed, failed, killed, \
             missing, retried, wait, queued) \
             SELECT minute, $2, name, started, completed, failed, killed, missing, retried, \
             wait, queued FROM unnest($1::bigint[], $3::text[], $4::bigint[], $5::bigint[], \
             $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::bigint[]) \
             AS r(minute, name, started, completed, failed, killed, missing, retried, wait, queued)",
        )
        .bind(rows.iter().map(|r| minutes(r.minute)).collect::<Vec<_>>())
        .bind(node.as_uuid())
        .bind(rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(count(|r| r.started))
        .bind(count(|r| r.completed))
        .bind(count(|r| r.failed))
        .bind(count(|r| r.killed))
        .bind(count(|r| r.missing))
        .bind(count(|r| r.retried))
        .bind(rows.iter().map(|r| r.wait.to_text()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.queued.map(|q| q as i64))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    }
    sqlx::query("DELETE FROM offstage_stats WHERE minute < $1")
        .bind(minutes(expire_before))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)
}

pub(super) async fn since(pool: &PgPool, since: DateTime<Utc>) -> Result<Vec<StatsRow>, Error> {
    let err = |e| pg_error("reading stats", e);
    let found = sqlx::query(
        "SELECT minute, name, started, completed, failed, killed, missing, retried, wait, \
         queued FROM offstage_stats WHERE minute >= $1",
    )
    .bind(minutes(since))
    .fetch_all(pool)
    .await
    .map_err(err)?;
    let mut rows = Vec::with_capacity(found.len());
    for row in &found {
        let wait: &str = row.try_get(8).map_err(err)?;
        let get = |i| row.try_get::<i64, _>(i).map(|n| n as u64).map_err(err);
        rows.push(StatsRow {
            minute: from_minutes(row.try_get(0).map_err(err)?),
            name: row.try_get(1).map_err(err)?,
            started: get(2)?,
            completed: get(3)?,
            failed: get(4)?,
            killed: get(5)?,
            missing: get(6)?,
            retried: get(7)?,
            wait: WaitHistogram::from_text(wait)?,
            queued: row
                .try_get::<Option<i64>, _>(9)
                .map_err(err)?
                .map(|q| q as u64),
        });
    }
    Ok(StatsRow::merge_all(rows))
}
