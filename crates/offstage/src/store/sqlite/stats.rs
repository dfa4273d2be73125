//! Stats in SQLite: the `offstage_stats` rows, for [`Store::record_stats`] and
//! [`Store::stats_since`](crate::store::Store::stats_since).
//!
//! A flush's rows and its retention delete are one job on the writer thread, so they commit
//! together. A read takes the rows of the minutes asked for through the `minute` index and
//! merges them across nodes here; the wait histograms are text the database cannot add.
//!
//! [`Store::record_stats`]: crate::store::Store::record_stats

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::SqliteStore;
use crate::error::Error;
use crate::id::NodeId;
use crate::stats::{from_minutes, minutes, StatsRow, WaitHistogram};

pub(super) async fn record(
    store: &SqliteStore,
    node: NodeId,
    rows: Vec<StatsRow>,
    expire_before: DateTime<Utc>,
) -> Result<(), Error> {
    store
        .write(move |conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO offstage_stats (minute, node, name, started, completed, failed, \
                 killed, missing, retried, wait, queued) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for row in &rows {
                insert.execute(params![
                    minutes(row.minute),
                    node,
                    row.name,
                    row.started as i64,
                    row.completed as i64,
                    row.failed as i64,
                    row.killed as i64,
                    row.missing as i64,
                    row.retried as i64,
                    row.wait.to_text(),
                    row.queued.map(|q| q as i64),
                ])?;
            }
            conn.prepare_cached("DELETE FROM offstage_stats WHERE minute < ?1")?
                .execute([minutes(expire_before)])?;
            Ok(())
        })
        .await
}

pub(super) async fn since(
    store: &SqliteStore,
    since: DateTime<Utc>,
) -> Result<Vec<StatsRow>, Error> {
    let rows = store
        .read(move |conn| {
            conn.prepare_cached(
                "SELECT minute, name, started, completed, failed, killed, missing, retried, \
                 wait, queued FROM offstage_stats WHERE minute >= ?1",
            )?
            .query_map([minutes(since)], |row| {
                Ok((
                    StatsRow {
                        minute: from_minutes(row.get(0)?),
                        name: row.get(1)?,
                        started: row.get::<_, i64>(2)? as u64,
                        completed: row.get::<_, i64>(3)? as u64,
                        failed: row.get::<_, i64>(4)? as u64,
                        killed: row.get::<_, i64>(5)? as u64,
                        missing: row.get::<_, i64>(6)? as u64,
                        retried: row.get::<_, i64>(7)? as u64,
                        wait: WaitHistogram::default(),
                        queued: row.get::<_, Option<i64>>(9)?.map(|q| q as u64),
                    },
                    row.get::<_, String>(8)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?;
    let rows = rows
        .into_iter()
        .map(|(mut row, wait)| {
            row.wait = WaitHistogram::from_text(&wait)?;
            Ok(row)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(StatsRow::merge_all(rows))
}
