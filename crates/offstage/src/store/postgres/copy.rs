//! A copy (`store::copy`) to and from PostgreSQL: pages read in key order, and each page
//! written as one `INSERT ... SELECT FROM unnest(...)` of typed arrays (one statement per
//! page, whatever its size), with its position in `offstage_copy`, in one transaction. Task
//! inserts are counted statements, as launches are.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row as _};
use uuid::Uuid;

use super::counts::{count_change, fold, Change};
use super::schema::{connect, without_password};
use super::{pg_error, PostgresStore};
use crate::error::Error;
use crate::store::copy::{
    count_errors, progress_from, Kind, LiveNode, Position, Progress, Row, Table, Value, LIVE_WITHIN,
};

/// `url` as messages show it: without its password.
pub(crate) fn shown(url: &str) -> String {
    without_password(url)
}

/// True when the database at `url` has Offstage's tables on its `search_path`; looks without
/// creating or migrating anything.
pub(crate) async fn exists(url: &str) -> Result<bool, Error> {
    let pool = connect(url, &without_password(url), 1).await?;
    let found: bool = sqlx::query_scalar("SELECT to_regclass('offstage_tasks') IS NOT NULL")
        .fetch_one(&pool)
        .await
        .map_err(|e| pg_error("looking for Offstage's tables", e))?;
    pool.close().await;
    Ok(found)
}

pub(crate) async fn count(store: &PostgresStore, table: &'static Table) -> Result<u64, Error> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", table.sql))
        .fetch_one(&store.pool)
        .await
        .map_err(|e| pg_error("counting rows", e))?;
    Ok(n as u64)
}

/// The SQL array type of a column kind, and how a column of it is read.
fn pg_type(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Id => ("uuid", ""),
        Kind::Text => ("text", ""),
        Kind::Int => ("int8", "::int8"),
        Kind::Real => ("float8", "::float8"),
        Kind::Time => ("timestamptz", ""),
        Kind::Bool => ("bool", ""),
    }
}

pub(crate) async fn read(
    store: &PostgresStore,
    table: &'static Table,
    after: Option<Row>,
    limit: usize,
) -> Result<Vec<Row>, Error> {
    let err = |e| pg_error("reading rows to copy", e);
    let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let key = names[..table.key].join(", ");
    let selected: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("{}{}", c.name, pg_type(c.kind).1))
        .collect();
    let filter = match &after {
        None => String::new(),
        Some(_) => {
            let marks: Vec<String> = (1..=table.key).map(|i| format!("${i}")).collect();
            format!("WHERE ({key}) > ({})", marks.join(", "))
        }
    };
    let sql = format!(
        "SELECT {} FROM {} {filter} ORDER BY {key} LIMIT {limit}",
        selected.join(", "),
        table.sql
    );
    let mut query = sqlx::query(&sql);
    for value in after.iter().flatten() {
        query = match value {
            Value::Id(id) => query.bind(*id),
            Value::Text(text) => query.bind(text.clone()),
            Value::Int(n) | Value::Time(n) => query.bind(*n),
            Value::Real(x) => query.bind(*x),
            Value::Bool(b) => query.bind(*b),
            Value::Null => query.bind(None::<i64>),
        };
    }
    let rows = query.fetch_all(&store.pool).await.map_err(err)?;
    rows.iter()
        .map(|row| from_row(table, row).map_err(err))
        .collect()
}

fn from_row(table: &Table, row: &PgRow) -> Result<Row, sqlx::Error> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            Ok(match column.kind {
                Kind::Id => row.try_get::<Option<Uuid>, _>(i)?.map(Value::Id),
                Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
                Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
                Kind::Real => row.try_get::<Option<f64>, _>(i)?.map(Value::Real),
                Kind::Time => row.try_get::<Option<DateTime<Utc>>, _>(i)?.map(Value::time),
                Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            }
            .unwrap_or(Value::Null))
        })
        .collect()
}

/// Binds one column of `rows` as an array of its kind.
fn bind_column<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    rows: &[Row],
    index: usize,
    kind: Kind,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    let values = rows.iter().map(|row| &row[index]);
    match kind {
        Kind::Id => query.bind(
            values
                .map(|v| match v {
                    Value::Id(id) => Some(*id),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        Kind::Text => query.bind(
            values
                .map(|v| match v {
                    Value::Text(text) => Some(text.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        Kind::Int => query.bind(
            values
                .map(|v| match v {
                    Value::Int(n) => Some(*n),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        Kind::Real => query.bind(
            values
                .map(|v| match v {
                    Value::Real(x) => Some(*x),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        Kind::Time => query.bind(values.map(Value::as_time).collect::<Vec<_>>()),
        Kind::Bool => query.bind(
            values
                .map(|v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
    }
}

/// Writes `rows` and the position they bring the copy to, in one transaction.
pub(crate) async fn write(
    store: &PostgresStore,
    table: &'static Table,
    rows: Vec<Row>,
    position: Position,
) -> Result<(), Error> {
    let err = |e| pg_error("writing copied rows", e);
    let written = table.written();
    let skip = table.columns.len() - written.len();
    let names: Vec<&str> = written.iter().map(|c| c.name).collect();
    let arrays: Vec<String> = written
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, pg_type(c.kind).0))
        .collect();
    let names = names.join(", ");
    let conflict = if table.if_absent {
        " ON CONFLICT DO NOTHING"
    } else {
        ""
    };
    // In the source's order, so that renumbered rows (signals) keep it.
    let insert = format!(
        "INSERT INTO {} ({names}) SELECT {names} FROM unnest({}) WITH ORDINALITY \
         AS page ({names}, copy_order) ORDER BY copy_order{conflict}",
        table.sql,
        arrays.join(", ")
    );
    let sql = if table.sql == "offstage_tasks" {
        format!(
            "WITH changed AS ({insert} RETURNING name, status), {} \
             SELECT count(*) FROM changed",
            count_change(Change::Insert)
        )
    } else {
        insert
    };
    let mut query = sqlx::query(&sql);
    for (i, column) in written.iter().enumerate() {
        query = bind_column(query, &rows, skip + i, column.kind);
    }
    let mut tx = store.pool.begin().await.map_err(err)?;
    query.execute(&mut *tx).await.map_err(err)?;
    sqlx::query(
        "UPDATE offstage_copy SET after_key = $2, rows_copied = $3 WHERE copied_table = $1",
    )
    .bind(table.name)
    .bind(position.after_text())
    .bind(position.copied as i64)
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)
}

pub(crate) async fn progress(store: &PostgresStore) -> Result<Option<Progress>, Error> {
    let err = |e| pg_error("reading the copy's progress", e);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('offstage_copy') IS NOT NULL")
        .fetch_one(&store.pool)
        .await
        .map_err(err)?;
    if !exists {
        return Ok(None);
    }
    let rows: Vec<(String, String, Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT copied_table, source, after_key, rows_copied, rows_before FROM offstage_copy",
    )
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    progress_from(rows).map(Some)
}

pub(crate) async fn begin(store: &PostgresStore, progress: Progress) -> Result<(), Error> {
    let err = |e| pg_error("recording the copy's start", e);
    let mut tx = store.pool.begin().await.map_err(err)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS offstage_copy (copied_table text PRIMARY KEY, \
         source text NOT NULL, after_key text, rows_copied bigint NOT NULL, \
         rows_before bigint NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    sqlx::query("DELETE FROM offstage_copy")
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    for (table, at) in &progress.tables {
        sqlx::query(
            "INSERT INTO offstage_copy (copied_table, source, after_key, rows_copied, \
             rows_before) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(table)
        .bind(&progress.source)
        .bind(at.after_text())
        .bind(at.copied as i64)
        .bind(at.before as i64)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    }
    tx.commit().await.map_err(err)
}

/// Drops the progress record, and folds the many rows of count differences the copy's pages
/// added into one per type and status.
pub(crate) async fn end(store: &PostgresStore) -> Result<(), Error> {
    sqlx::query("DROP TABLE IF EXISTS offstage_copy")
        .execute(&store.pool)
        .await
        .map_err(|e| pg_error("ending the copy", e))?;
    fold(store).await
}

pub(crate) async fn live_nodes(
    store: &PostgresStore,
    now: DateTime<Utc>,
) -> Result<Vec<LiveNode>, Error> {
    let since = now - chrono::Duration::from_std(LIVE_WITHIN).expect("a short duration");
    let rows: Vec<(Uuid, String, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, host, pid::int8, heartbeat_at FROM offstage_nodes WHERE heartbeat_at >= $1",
    )
    .bind(since)
    .fetch_all(&store.pool)
    .await
    .map_err(|e| pg_error("reading the nodes", e))?;
    Ok(rows
        .into_iter()
        .map(|(id, host, pid, heartbeat_at)| LiveNode {
            id,
            host,
            pid,
            heartbeat_at,
        })
        .collect())
}

pub(crate) async fn task_count_errors(store: &PostgresStore) -> Result<Vec<String>, Error> {
    let err = |e| pg_error("checking the task counts", e);
    let pairs = |sql: &'static str| async move {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(sql)
            .fetch_all(&store.pool)
            .await
            .map_err(err)?;
        Ok::<_, Error>(
            rows.into_iter()
                .map(|(name, status, n)| ((name, status), n))
                .collect::<HashMap<_, _>>(),
        )
    };
    let kept = pairs(
        "SELECT name, status, sum(n)::int8 FROM offstage_task_counts GROUP BY name, status \
         HAVING sum(n) <> 0",
    )
    .await?;
    let actual =
        pairs("SELECT name, status, count(*) FROM offstage_tasks GROUP BY name, status").await?;
    Ok(count_errors(kept, actual))
}
