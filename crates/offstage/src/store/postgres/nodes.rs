//! Nodes in PostgreSQL: a node is a runtime using the database, registered in
//! `offstage_nodes` and alive while it heartbeats there. Here are its registration, heartbeat
//! and deregistration, recovery (which marks the tasks of nodes silent for the node timeout
//! `missing`, and sweeps up orphaned ones), and the checks that fence writes on a registered
//! node.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::counts::{count_change, Change};
use super::rows::{task_from_row, LogArrays, TASK_COLUMNS};
use super::{notices, pg_error, shared, PostgresStore};
use crate::error::{Error, TaskError};
use crate::id::NodeId;
use crate::status::Status;
use crate::store::{
    grace_from_ms, json_text, node_dead, requeue_missing, KillRequest, NodeInfo, Rerun,
};
use crate::task::TaskRecord;

pub(super) async fn register(store: &PostgresStore, node: &NodeInfo) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO offstage_nodes (id, host, pid, started_at, heartbeat_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO UPDATE SET heartbeat_at = $4",
    )
    .bind(node.id.as_uuid())
    .bind(&node.host)
    .bind(node.pid as i32)
    .bind(node.started_at)
    .execute(&store.pool)
    .await
    .map_err(|e| pg_error("registering the node", e))?;
    refresh_peers(store, node.id).await?;
    notices::announce_joined(&store.pool, &store.channel, node.id).await
}

pub(super) async fn heartbeat(
    store: &PostgresStore,
    node: NodeId,
    now: DateTime<Utc>,
) -> Result<Vec<KillRequest>, Error> {
    let err = |e| pg_error("heartbeat", e);
    let beat = sqlx::query("UPDATE offstage_nodes SET heartbeat_at = $2 WHERE id = $1")
        .bind(node.as_uuid())
        .bind(now)
        .execute(&store.pool)
        .await
        .map_err(err)?;
    if beat.rows_affected() == 0 {
        // Another node declared this one dead (it was silent for the node timeout) and
        // marked its tasks missing; nothing it writes about them applies any more.
        return Err(node_dead(node));
    }
    refresh_peers(store, node).await?;
    let rows = sqlx::query(
        "SELECT id, kill_grace_ms FROM offstage_tasks \
         WHERE kill_grace_ms IS NOT NULL AND node = $1 AND status = 'running'",
    )
    .bind(node.as_uuid())
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    rows.iter()
        .map(|row| {
            Ok(KillRequest {
                task_id: row.try_get::<Uuid, _>(0)?.into(),
                grace: grace_from_ms(row.try_get(1)?),
            })
        })
        .collect::<sqlx::Result<_>>()
        .map_err(err)
}

pub(super) async fn deregister(store: &PostgresStore, node: NodeId) -> Result<(), Error> {
    let err = |e| pg_error("deregistering the node", e);
    let mut tx = store.pool.begin().await.map_err(err)?;
    shared::free_locks_of(&mut tx, node).await.map_err(err)?;
    sqlx::query("DELETE FROM offstage_nodes WHERE id = $1")
        .bind(node.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)
}

pub(super) async fn recover(
    store: &PostgresStore,
    me: NodeId,
    now: DateTime<Utc>,
    stale_after: Duration,
    rerun: Option<Rerun>,
) -> Result<Vec<TaskRecord>, Error> {
    let err = |e| pg_error("recovery", e);
    let stale_before =
        now - chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
    let sweep_orphans = store.orphans.due(now, stale_after);
    let mut tx = store.pool.begin().await.map_err(err)?;
    // A node frozen inside a transaction holds its locks until the server ends its session
    // (`IDLE_IN_TRANSACTION_TIMEOUT`): give up this pass rather than wait for it, so this
    // node's own heartbeat goes on; the next pass finds the locks gone.
    sqlx::query("SET LOCAL lock_timeout = '1s'")
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    // Deleting the dead nodes' rows is what makes recovery happen once: of two nodes
    // recovering at the same moment, only the one whose DELETE returned the row marks
    // its tasks (the other's DELETE waits on the row lock, then finds it gone).
    let dead = sqlx::query(
        "DELETE FROM offstage_nodes WHERE id <> $1 AND heartbeat_at < $2 \
         RETURNING id, host, pid",
    )
    .bind(me.as_uuid())
    .bind(stale_before)
    .fetch_all(&mut *tx)
    .await
    .map_err(err)?;
    let mut records = Vec::new();
    for row in &dead {
        let id: Uuid = row.try_get(0).map_err(err)?;
        let host: String = row.try_get(1).map_err(err)?;
        let pid: i32 = row.try_get(2).map_err(err)?;
        // The pid was stored from a `u32`: the cast gives it back.
        let error = TaskError::node_stopped_heartbeating(&host, pid as u32);
        let marked = sqlx::query(&format!(
            "WITH changed AS (UPDATE offstage_tasks SET status = 'missing', finished_at = $2, \
             error = $3, kill_grace_ms = NULL, waiting_for = NULL, waiting_until = NULL \
             WHERE status = 'running' AND node = $1 \
             RETURNING {TASK_COLUMNS}), {} SELECT * FROM changed",
            count_change(Change::Move(Status::Running))
        ))
        .bind(id)
        .bind(now)
        .bind(json_text(&error))
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        for row in &marked {
            records.push(task_from_row(row).map_err(err)?);
        }
    }
    if sweep_orphans || !dead.is_empty() {
        // Running tasks of nodes that are not registered at all (a node whose row was
        // removed by hand, or that was declared dead and went on claiming).
        let marked = sqlx::query(&format!(
            "WITH changed AS (UPDATE offstage_tasks t SET status = 'missing', finished_at = $2, \
             error = $3, kill_grace_ms = NULL, waiting_for = NULL, waiting_until = NULL \
             WHERE t.status = 'running' AND t.node <> $1 \
             AND NOT EXISTS (SELECT 1 FROM offstage_nodes n WHERE n.id = t.node) \
             RETURNING {TASK_COLUMNS}), {} SELECT * FROM changed",
            count_change(Change::Move(Status::Running))
        ))
        .bind(me.as_uuid())
        .bind(now)
        .bind(json_text(&TaskError::node_unregistered()))
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        for row in &marked {
            records.push(task_from_row(row).map_err(err)?);
        }
    }
    // The tasks `rerun` says run again are queued in this same transaction: nobody ever reads
    // them `missing`.
    let mut lines = LogArrays::default();
    for requeue in requeue_missing(&mut records, rerun.as_ref(), now) {
        sqlx::query(&format!(
            "WITH changed AS (UPDATE offstage_tasks SET status = 'queued', run_at = $2, \
             finished_at = NULL, node = NULL WHERE id = $1 RETURNING name, status), {} \
             SELECT 1 FROM changed",
            count_change(Change::Move(Status::Missing))
        ))
        .bind(requeue.id.as_uuid())
        .bind(requeue.due)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        lines.push(requeue.id, std::slice::from_ref(&requeue.line));
    }
    lines.insert(&mut tx, None).await.map_err(err)?;
    // Shared-state locks of nodes that are gone (just now, or before): cheap, as only locked
    // rows are read, so on every pass.
    shared::free_orphaned_locks(&mut tx, me)
        .await
        .map_err(err)?;
    notices::delete_old(&mut tx).await.map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(records)
}

/// Whether nodes other than `me` are registered, for [`Store::notify`](crate::store::Store::notify)
/// to know.
async fn refresh_peers(store: &PostgresStore, me: NodeId) -> Result<(), Error> {
    let mark = store.peers.mark();
    let others: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM offstage_nodes WHERE id <> $1)")
            .bind(me.as_uuid())
            .fetch_one(&store.pool)
            .await
            .map_err(|e| pg_error("reading the nodes", e))?;
    store.peers.counted(mark, others);
    Ok(())
}

/// Holds `node`'s row until the end of the transaction (KEY SHARE: heartbeats go on, recovery's
/// DELETE waits), or returns false when it is not registered (declared dead, or shut down).
pub(super) async fn hold_node(conn: &mut sqlx::PgConnection, node: NodeId) -> sqlx::Result<bool> {
    let row = sqlx::query("SELECT 1 FROM offstage_nodes WHERE id = $1 FOR KEY SHARE")
        .bind(node.as_uuid())
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// True while `node` is registered: it has not shut down or been declared dead. Unlike
/// [`hold_node`] it holds nothing: for telling why a fenced statement wrote nothing.
pub(super) async fn is_registered(store: &PostgresStore, node: NodeId) -> Result<bool, Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM offstage_nodes WHERE id = $1)")
        .bind(node.as_uuid())
        .fetch_one(&store.pool)
        .await
        .map_err(|e| pg_error("reading the node", e))
}
