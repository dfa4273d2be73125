//! Nodes in SQLite: a node is a runtime using the file, registered in `offstage_nodes` and
//! holding the lock file `<db>-nodes/<node-id>.lock` while its process lives. Here are its
//! registration, heartbeat and deregistration, recovery (which marks the tasks of dead nodes
//! `missing`, and sweeps up orphaned ones), and the `registered` check that fences writes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::counts::Tally;
use super::rows::{insert_logs, micros, task_from_row, TASK_COLUMNS};
use super::{shared, SqliteStore};
use crate::error::{Error, TaskError};
use crate::id::{NodeId, TaskId};
use crate::status::Status;
use crate::store::{
    grace_from_ms, json_text, node_dead, requeue_missing, KillRequest, NodeInfo, Rerun,
};
use crate::task::TaskRecord;

pub(super) async fn register(store: &SqliteStore, node: &NodeInfo) -> Result<(), Error> {
    let dir = nodes_dir(store);
    let lock_path = lock_file(&dir, node.id);
    let file = std::fs::create_dir_all(&dir)
        .and_then(|_| File::create(&lock_path))
        .and_then(|file| file.try_lock().map(|_| file).map_err(std::io::Error::from))
        .map_err(|e| Error::store(&format!("locking {}", lock_path.display()), e))?;
    store
        .node_locks
        .lock()
        .expect("node locks poisoned")
        .insert(node.id, file);
    let node = node.clone();
    store
        .write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO offstage_nodes (id, host, pid, started_at, heartbeat_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![node.id, node.host, node.pid, micros(node.started_at)],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn heartbeat(
    store: &SqliteStore,
    node: NodeId,
    now: DateTime<Utc>,
) -> Result<Vec<KillRequest>, Error> {
    store
        .write(move |conn| {
            let beat = conn
                .prepare_cached("UPDATE offstage_nodes SET heartbeat_at = ?2 WHERE id = ?1")?
                .execute(params![node, micros(now)])?;
            if beat == 0 {
                return Ok(Err(node_dead(node)));
            }
            let mut select = conn.prepare_cached(
                "SELECT id, kill_grace_ms FROM offstage_tasks \
                 WHERE kill_grace_ms IS NOT NULL AND node = ?1 AND status = 'running'",
            )?;
            let requests = select
                .query_map([node], |row| {
                    let task_id: TaskId = row.get(0)?;
                    Ok(KillRequest {
                        task_id,
                        grace: grace_from_ms(row.get(1)?),
                    })
                })?
                .filter_map(Result::ok)
                .collect();
            Ok(Ok(requests))
        })
        .await?
}

pub(super) async fn deregister(store: &SqliteStore, node: NodeId) -> Result<(), Error> {
    store
        .write(move |conn| {
            shared::free_locks_of(conn, node)?;
            conn.execute("DELETE FROM offstage_nodes WHERE id = ?1", [node])?;
            Ok(())
        })
        .await?;
    if store
        .node_locks
        .lock()
        .expect("node locks poisoned")
        .remove(&node)
        .is_some()
    {
        let _ = std::fs::remove_file(lock_file(&nodes_dir(store), node));
    }
    Ok(())
}

pub(super) async fn recover(
    store: &SqliteStore,
    me: NodeId,
    now: DateTime<Utc>,
    stale_after: Duration,
    rerun: Option<Rerun>,
) -> Result<Vec<TaskRecord>, Error> {
    let nodes_dir = nodes_dir(store);
    let host = this_host();
    let stale_before = micros(now) - stale_after.as_micros().min(i64::MAX as u128) as i64;
    let sweep_orphans = store.orphans.due(now, stale_after);
    let (records, dead) = store
        .write_counted({
            let nodes_dir = nodes_dir.clone();
            move |conn, tally| {
                let nodes: Vec<(NodeId, String, i64, i64)> = conn
                    .prepare_cached(
                        "SELECT id, host, pid, heartbeat_at FROM offstage_nodes WHERE id != ?1",
                    )?
                    .query_map([me], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut dead = Vec::new();
                for (id, node_host, pid, heartbeat_at) in nodes {
                    let gone = heartbeat_at < stale_before
                        || (node_host == host && lock_is_free(&lock_file(&nodes_dir, id)));
                    if gone {
                        dead.push((id, node_host, pid));
                    }
                }
                let mut records = Vec::new();
                let mut mark = conn.prepare_cached(&format!(
                    "UPDATE offstage_tasks SET status = 'missing', finished_at = ?2, error = ?3, \
                     kill_grace_ms = NULL, waiting_for = NULL, waiting_until = NULL \
                     WHERE status = 'running' AND node = ?1 RETURNING {TASK_COLUMNS}"
                ))?;
                for (id, node_host, pid) in &dead {
                    // The pid was stored from a `u32`: the cast gives it back.
                    let error = TaskError::node_stopped(node_host, *pid as u32);
                    let rows = mark.query_map(
                        params![id, micros(now), json_text(&error)],
                        task_from_row,
                    )?;
                    for row in rows {
                        records.push(row?);
                    }
                    conn.prepare_cached("DELETE FROM offstage_nodes WHERE id = ?1")?
                        .execute([id])?;
                }
                // Shared-state locks of nodes that are gone (just now, or before): cheap, as
                // only locked rows are read, so on every pass.
                shared::free_orphaned_locks(conn, me)?;
                // Running tasks of nodes that are not registered at all (written by hand, or by
                // a node whose row was removed). Not on every pass: the sweep reads every running
                // task, and this runs every heartbeat (see `OrphanSweep`).
                if !sweep_orphans && dead.is_empty() {
                    rerun_missing(conn, tally, &mut records, rerun.as_ref(), now)?;
                    return Ok((records, dead));
                }
                let rows = conn
                    .prepare_cached(&format!(
                        "UPDATE offstage_tasks SET status = 'missing', finished_at = ?2, error = ?3, \
                         kill_grace_ms = NULL, waiting_for = NULL, waiting_until = NULL \
                         WHERE status = 'running' AND node != ?1 \
                         AND node NOT IN (SELECT id FROM offstage_nodes) RETURNING {TASK_COLUMNS}"
                    ))?
                    .query_map(
                        params![me, micros(now), json_text(&TaskError::node_unregistered())],
                        task_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                records.extend(rows);
                rerun_missing(conn, tally, &mut records, rerun.as_ref(), now)?;
                Ok((records, dead))
            }
        })
        .await?;
    for (id, _, _) in dead {
        let _ = std::fs::remove_file(lock_file(&nodes_dir, id));
    }
    Ok(records)
}

/// Queues again, in the recovery's own transaction, each task just marked `missing` that
/// `rerun` says runs again, and updates its record to match.
fn rerun_missing(
    conn: &Connection,
    tally: &mut Tally,
    records: &mut [TaskRecord],
    rerun: Option<&Rerun>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    // Every record here went from running to missing in this step; those run again end queued.
    for record in records.iter() {
        tally.moved(&record.name, Status::Running, Status::Missing);
    }
    let requeues = requeue_missing(records, rerun, now);
    for record in records.iter().filter(|r| r.status == Status::Queued) {
        tally.moved(&record.name, Status::Missing, Status::Queued);
    }
    for requeue in requeues {
        conn.prepare_cached(
            "UPDATE offstage_tasks SET status = 'queued', run_at = ?2, finished_at = NULL, \
             node = NULL WHERE id = ?1",
        )?
        .execute(params![requeue.id, micros(requeue.due)])?;
        insert_logs(conn, requeue.id, std::slice::from_ref(&requeue.line))?;
    }
    Ok(())
}

/// True while `node` is registered: it has not shut down or been declared dead. Run by the
/// writer, whose `BEGIN IMMEDIATE` keeps recovery on any handle from removing it before the
/// caller's write commits.
pub(super) fn registered(conn: &Connection, node: NodeId) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM offstage_nodes WHERE id = ?1")?
        .exists([node])
}

/// The folder of the nodes' lock files, beside the database file.
pub(super) fn nodes_dir(store: &SqliteStore) -> PathBuf {
    let mut dir = store.path.clone().into_os_string();
    dir.push("-nodes");
    PathBuf::from(dir)
}

/// The lock file of `node` in the folder `nodes_dir`.
pub(super) fn lock_file(nodes_dir: &Path, node: NodeId) -> PathBuf {
    nodes_dir.join(format!("{node}.lock"))
}

/// True when nobody holds the lock file at `path` (or it does not exist): its node is gone.
pub(super) fn lock_is_free(path: &Path) -> bool {
    match File::options().write(true).open(path) {
        Ok(file) => file.try_lock().is_ok(),
        Err(_) => true,
    }
}

pub(super) fn this_host() -> String {
    crate::runtime::host_name()
}
