//! The fleet in PostgreSQL: paused task types (`offstage_paused`, read by the claim statements
//! in `tasks.rs`), the nodes' reports, and when kills were asked.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{pg_error, PostgresStore};
use crate::error::Error;
use crate::fleet::{NodeRecord, NodeReport, PausedTaskType};
use crate::id::{NodeId, TaskId};
use crate::store::{grace_from_ms, json_text};

pub(super) async fn pause(
    store: &PostgresStore,
    name: &str,
    now: DateTime<Utc>,
) -> Result<PausedTaskType, Error> {
    // The no-op update makes RETURNING give the row a second pause finds, with its first time.
    let paused_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO offstage_paused (name, paused_at) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET paused_at = offstage_paused.paused_at \
         RETURNING paused_at",
    )
    .bind(name)
    .bind(now)
    .fetch_one(&store.pool)
    .await
    .map_err(|e| pg_error("pausing a task type", e))?;
    Ok(PausedTaskType {
        name: name.to_owned(),
        paused_at,
    })
}

pub(super) async fn resume(store: &PostgresStore, name: &str) -> Result<bool, Error> {
    let done = sqlx::query("DELETE FROM offstage_paused WHERE name = $1")
        .bind(name)
        .execute(&store.pool)
        .await
        .map_err(|e| pg_error("resuming a task type", e))?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn paused(store: &PostgresStore) -> Result<Vec<PausedTaskType>, Error> {
    let err = |e| pg_error("reading the paused task types", e);
    let rows = sqlx::query("SELECT name, paused_at FROM offstage_paused ORDER BY name")
        .fetch_all(&store.pool)
        .await
        .map_err(err)?;
    rows.iter()
        .map(|row| {
            Ok(PausedTaskType {
                name: row.try_get(0)?,
                paused_at: row.try_get(1)?,
            })
        })
        .collect::<sqlx::Result<_>>()
        .map_err(err)
}

pub(super) async fn report(
    store: &PostgresStore,
    node: NodeId,
    report: &NodeReport,
) -> Result<(), Error> {
    sqlx::query("UPDATE offstage_nodes SET report = $2 WHERE id = $1")
        .bind(node.as_uuid())
        .bind(json_text(report))
        .execute(&store.pool)
        .await
        .map_err(|e| pg_error("storing the node's report", e))?;
    Ok(())
}

pub(super) async fn nodes(store: &PostgresStore) -> Result<Vec<NodeRecord>, Error> {
    let err = |e| pg_error("reading the nodes", e);
    let rows = sqlx::query(
        "SELECT id, host, pid, started_at, heartbeat_at, report FROM offstage_nodes \
         ORDER BY started_at, id",
    )
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    rows.iter()
        .map(|row| {
            let report: Option<String> = row.try_get(5)?;
            Ok(NodeRecord {
                id: row.try_get::<Uuid, _>(0)?.into(),
                host: row.try_get(1)?,
                // The pid was stored from a `u32`: the cast gives it back.
                pid: row.try_get::<i32, _>(2)? as u32,
                started_at: row.try_get(3)?,
                heartbeat_at: row.try_get(4)?,
                // A report this Offstage cannot read (a newer one wrote it) is no report.
                report: report.and_then(|text| serde_json::from_str(&text).ok()),
            })
        })
        .collect::<sqlx::Result<_>>()
        .map_err(err)
}

pub(super) async fn kill_asked(
    store: &PostgresStore,
    id: TaskId,
) -> Result<Option<(DateTime<Utc>, Option<Duration>)>, Error> {
    let err = |e| pg_error("reading a kill request", e);
    let row = sqlx::query(
        "SELECT kill_asked_at, kill_grace_ms FROM offstage_tasks \
         WHERE id = $1 AND status = 'running' AND kill_grace_ms IS NOT NULL \
         AND kill_asked_at IS NOT NULL",
    )
    .bind(id.as_uuid())
    .fetch_optional(&store.pool)
    .await
    .map_err(err)?;
    row.map(|row| Ok((row.try_get(0)?, grace_from_ms(row.try_get(1)?))))
        .transpose()
        .map_err(err)
}
