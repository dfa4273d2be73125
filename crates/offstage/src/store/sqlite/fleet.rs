//! The fleet in SQLite: paused task types (`offstage_paused`, read by the claim statements in
//! `tasks.rs`), the nodes' reports, and when kills were asked.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::rows::{from_micros, micros};
use super::SqliteStore;
use crate::error::Error;
use crate::fleet::{NodeRecord, NodeReport, PausedTaskType};
use crate::id::{NodeId, TaskId};
use crate::store::{grace_from_ms, json_text};

pub(super) async fn pause(
    store: &SqliteStore,
    name: &str,
    now: DateTime<Utc>,
) -> Result<PausedTaskType, Error> {
    let name = name.to_owned();
    store
        .write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO offstage_paused (name, paused_at) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, micros(now)])?;
            let paused_at: i64 = conn
                .prepare_cached("SELECT paused_at FROM offstage_paused WHERE name = ?1")?
                .query_row([&name], |row| row.get(0))?;
            Ok(PausedTaskType {
                name,
                paused_at: from_micros(paused_at),
            })
        })
        .await
}

pub(super) async fn resume(store: &SqliteStore, name: &str) -> Result<bool, Error> {
    let name = name.to_owned();
    store
        .write(move |conn| {
            let gone = conn
                .prepare_cached("DELETE FROM offstage_paused WHERE name = ?1")?
                .execute([name])?;
            Ok(gone == 1)
        })
        .await
}

pub(super) async fn paused(store: &SqliteStore) -> Result<Vec<PausedTaskType>, Error> {
    store
        .read(|conn| {
            conn.prepare_cached("SELECT name, paused_at FROM offstage_paused ORDER BY name")?
                .query_map([], |row| {
                    Ok(PausedTaskType {
                        name: row.get(0)?,
                        paused_at: from_micros(row.get(1)?),
                    })
                })?
                .collect()
        })
        .await
}

pub(super) async fn report(
    store: &SqliteStore,
    node: NodeId,
    report: &NodeReport,
) -> Result<(), Error> {
    let report = json_text(report);
    store
        .write(move |conn| {
            conn.prepare_cached("UPDATE offstage_nodes SET report = ?2 WHERE id = ?1")?
                .execute(params![node, report])?;
            Ok(())
        })
        .await
}

pub(super) async fn nodes(store: &SqliteStore) -> Result<Vec<NodeRecord>, Error> {
    store
        .read(|conn| {
            conn.prepare_cached(
                "SELECT id, host, pid, started_at, heartbeat_at, report FROM offstage_nodes \
                 ORDER BY started_at, id",
            )?
            .query_map([], |row| {
                let report: Option<String> = row.get(5)?;
                Ok(NodeRecord {
                    id: row.get(0)?,
                    host: row.get(1)?,
                    // The pid was stored from a `u32`: the cast gives it back.
                    pid: row.get::<_, i64>(2)? as u32,
                    started_at: from_micros(row.get(3)?),
                    heartbeat_at: from_micros(row.get(4)?),
                    // A report this Offstage cannot read (a newer one wrote it) is no report.
                    report: report.and_then(|text| serde_json::from_str(&text).ok()),
                })
            })?
            .collect()
        })
        .await
}

pub(super) async fn kill_asked(
    store: &SqliteStore,
    id: TaskId,
) -> Result<Option<(DateTime<Utc>, Option<Duration>)>, Error> {
    store
        .read(move |conn| {
            conn.prepare_cached(
                "SELECT kill_asked_at, kill_grace_ms FROM offstage_tasks \
                 WHERE id = ?1 AND status = 'running' AND kill_grace_ms IS NOT NULL \
                 AND kill_asked_at IS NOT NULL",
            )?
            .query_row([id], |row| {
                Ok((from_micros(row.get(0)?), grace_from_ms(row.get(1)?)))
            })
            .optional()
        })
        .await
}
