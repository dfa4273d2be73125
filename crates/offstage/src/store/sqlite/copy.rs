//! A copy (`store::copy`) to and from a SQLite file: pages read in key order on a reader
//! connection, and each page written by the writer in one transaction with its position in
//! `offstage_copy`, the task counts tallied as with any launch.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as Sql;
use rusqlite::{params, params_from_iter, Connection};

use super::nodes::{lock_file, lock_is_free, nodes_dir, this_host};
use super::SqliteStore;
use crate::error::Error;
use crate::status::Status;
use crate::store::copy::{
    count_errors, progress_from, Kind, LiveNode, Position, Progress, Row, Table, Value, LIVE_WITHIN,
};

/// Creates the progress table; a no-op when an unfinished copy left it.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS offstage_copy (\
    copied_table TEXT PRIMARY KEY NOT NULL, source TEXT NOT NULL, after_key TEXT, \
    rows_copied INTEGER NOT NULL, rows_before INTEGER NOT NULL)";

pub(crate) async fn count(store: &SqliteStore, table: &'static Table) -> Result<u64, Error> {
    store
        .read(move |conn| {
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {}", table.sql), [], |row| {
                    row.get(0)
                })?;
            Ok(n as u64)
        })
        .await
}

pub(crate) async fn read(
    store: &SqliteStore,
    table: &'static Table,
    after: Option<Row>,
    limit: usize,
) -> Result<Vec<Row>, Error> {
    store
        .read(move |conn| {
            let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            let key = names[..table.key].join(", ");
            let filter = match &after {
                None => String::new(),
                Some(_) => {
                    let marks = vec!["?"; table.key].join(", ");
                    format!("WHERE ({key}) > ({marks})")
                }
            };
            let mut select = conn.prepare_cached(&format!(
                "SELECT {} FROM {} {filter} ORDER BY {key} LIMIT {limit}",
                names.join(", "),
                table.sql
            ))?;
            let key_values: Vec<Sql> = after.iter().flatten().map(to_sql).collect();
            let rows = select.query_map(params_from_iter(key_values), |row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, column)| from_sql(row.get(i)?, column.kind, i))
                    .collect()
            })?;
            rows.collect()
        })
        .await
}

/// Writes `rows` and the position they bring the copy to, in one transaction: under a
/// savepoint of its own, as the writer's transaction may hold other jobs.
pub(crate) async fn write(
    store: &SqliteStore,
    table: &'static Table,
    rows: Vec<Row>,
    position: Position,
) -> Result<(), Error> {
    store
        .write_counted(move |conn, tally| {
            conn.execute_batch("SAVEPOINT offstage_copy_page")?;
            let mut counted = Vec::new();
            let written = insert(conn, table, &rows, &mut counted).and_then(|()| {
                conn.prepare_cached(
                    "UPDATE offstage_copy SET after_key = ?2, rows_copied = ?3 \
                     WHERE copied_table = ?1",
                )?
                .execute(params![
                    table.name,
                    position.after_text(),
                    position.copied as i64
                ])
                .map(drop)
            });
            match written {
                Ok(()) => {
                    conn.execute_batch("RELEASE offstage_copy_page")?;
                    for (name, status) in counted {
                        tally.add(&name, status, 1);
                    }
                    Ok(())
                }
                Err(error) => {
                    conn.execute_batch(
                        "ROLLBACK TO offstage_copy_page; RELEASE offstage_copy_page",
                    )?;
                    Err(error)
                }
            }
        })
        .await
}

/// Inserts `rows`; for tasks, notes the name and status of each one that went in (not those
/// the target had already) in `counted`.
fn insert(
    conn: &Connection,
    table: &Table,
    rows: &[Row],
    counted: &mut Vec<(String, Status)>,
) -> rusqlite::Result<()> {
    let written = table.written();
    let skip = table.columns.len() - written.len();
    let names: Vec<&str> = written.iter().map(|c| c.name).collect();
    let marks = vec!["?"; names.len()].join(", ");
    let conflict = if table.if_absent {
        " ON CONFLICT DO NOTHING"
    } else {
        ""
    };
    let tasks = table.sql == "offstage_tasks";
    let returning = if tasks { " RETURNING name, status" } else { "" };
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO {} ({}) VALUES ({marks}){conflict}{returning}",
        table.sql,
        names.join(", ")
    ))?;
    for row in rows {
        let values = params_from_iter(row[skip..].iter().map(to_sql));
        if tasks {
            let mut inserted = insert.query(values)?;
            if let Some(row) = inserted.next()? {
                let status: String = row.get(1)?;
                let status = status.parse::<Status>().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
                counted.push((row.get(0)?, status));
            }
        } else {
            insert.execute(values)?;
        }
    }
    Ok(())
}

fn to_sql(value: &Value) -> Sql {
    match value {
        Value::Null => Sql::Null,
        Value::Id(id) => Sql::Blob(id.as_bytes().to_vec()),
        Value::Text(text) => Sql::Text(text.clone()),
        Value::Int(n) | Value::Time(n) => Sql::Integer(*n),
        Value::Real(x) => Sql::Real(*x),
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
    }
}

fn from_sql(value: Sql, kind: Kind, index: usize) -> rusqlite::Result<Value> {
    let wrong = |found: rusqlite::types::Type| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            found,
            format!("column {index} does not hold a {kind:?}").into(),
        )
    };
    Ok(match (value, kind) {
        (Sql::Null, _) => Value::Null,
        (Sql::Blob(bytes), Kind::Id) => Value::Id(
            uuid::Uuid::from_slice(&bytes).map_err(|_| wrong(rusqlite::types::Type::Blob))?,
        ),
        (Sql::Text(text), Kind::Text) => Value::Text(text),
        (Sql::Integer(n), Kind::Int) => Value::Int(n),
        (Sql::Integer(n), Kind::Time) => Value::Time(n),
        (Sql::Integer(n), Kind::Bool) => Value::Bool(n != 0),
        (Sql::Integer(n), Kind::Real) => Value::Real(n as f64),
        (Sql::Real(x), Kind::Real) => Value::Real(x),
        (Sql::Blob(_), _) => return Err(wrong(rusqlite::types::Type::Blob)),
        (Sql::Text(_), _) => return Err(wrong(rusqlite::types::Type::Text)),
        (Sql::Integer(_), _) => return Err(wrong(rusqlite::types::Type::Integer)),
        (Sql::Real(_), _) => return Err(wrong(rusqlite::types::Type::Real)),
    })
}

pub(crate) async fn progress(store: &SqliteStore) -> Result<Option<Progress>, Error> {
    store
        .read(|conn| {
            let exists = conn
                .prepare(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'offstage_copy'",
                )?
                .exists([])?;
            if !exists {
                return Ok(None);
            }
            let rows: Vec<(String, String, Option<String>, i64, i64)> = conn
                .prepare(
                    "SELECT copied_table, source, after_key, rows_copied, rows_before \
                     FROM offstage_copy",
                )?
                .query_map([], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Some(rows))
        })
        .await?
        .map(progress_from)
        .transpose()
}

pub(crate) async fn begin(store: &SqliteStore, progress: Progress) -> Result<(), Error> {
    store
        .write(move |conn| {
            conn.execute_batch(CREATE)?;
            conn.execute("DELETE FROM offstage_copy", [])?;
            let mut insert = conn.prepare(
                "INSERT INTO offstage_copy \
                 (copied_table, source, after_key, rows_copied, rows_before) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (table, at) in &progress.tables {
                insert.execute(params![
                    table,
                    progress.source,
                    at.after_text(),
                    at.copied as i64,
                    at.before as i64
                ])?;
            }
            Ok(())
        })
        .await
}

pub(crate) async fn end(store: &SqliteStore) -> Result<(), Error> {
    store
        .write(|conn| conn.execute_batch("DROP TABLE IF EXISTS offstage_copy"))
        .await
}

/// The nodes that heartbeat within [`LIVE_WITHIN`] of `now`, less those on this machine whose
/// lock file is free (their process is gone).
pub(crate) async fn live_nodes(
    store: &SqliteStore,
    now: DateTime<Utc>,
) -> Result<Vec<LiveNode>, Error> {
    let dir = nodes_dir(store);
    let since = now.timestamp_micros() - LIVE_WITHIN.as_micros() as i64;
    let nodes: Vec<(Vec<u8>, String, i64, i64)> = store
        .read(move |conn| {
            conn.prepare(
                "SELECT id, host, pid, heartbeat_at FROM offstage_nodes WHERE heartbeat_at >= ?1",
            )?
            .query_map([since], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect()
        })
        .await?;
    let host = this_host();
    Ok(nodes
        .into_iter()
        .filter_map(|(id, node_host, pid, heartbeat_at)| {
            let id = uuid::Uuid::from_slice(&id).ok()?;
            let gone = node_host == host && lock_is_free(&lock_file(&dir, id.into()));
            (!gone).then(|| LiveNode {
                id,
                host: node_host,
                pid,
                heartbeat_at: DateTime::from_timestamp_micros(heartbeat_at).unwrap_or(now),
            })
        })
        .collect())
}

/// The task counts by type and status the store keeps that disagree with its tasks.
pub(crate) async fn task_count_errors(store: &SqliteStore) -> Result<Vec<String>, Error> {
    let (kept, actual) = store
        .read(|conn| {
            let pairs = |sql: &str| -> rusqlite::Result<HashMap<(String, String), i64>> {
                conn.prepare(sql)?
                    .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))?
                    .collect()
            };
            Ok((
                pairs("SELECT name, status, n FROM offstage_task_counts WHERE n <> 0")?,
                pairs("SELECT name, status, count(*) FROM offstage_tasks GROUP BY name, status")?,
            ))
        })
        .await?;
    Ok(count_errors(kept, actual))
}
