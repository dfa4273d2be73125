//! Checkpoints in SQLite: the last value a running task saved on purpose, in its row of
//! `offstage_tasks` (`checkpoint`, `checkpoint_at`), written at once through the writer (one
//! commit, durable when the call returns) rather than with the batched state.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::nodes::registered;
use super::rows::micros;
use super::SqliteStore;
use crate::error::Error;
use crate::id::{NodeId, TaskId};
use crate::store::node_dead;

pub(super) async fn save(
    store: &SqliteStore,
    id: TaskId,
    node: NodeId,
    checkpoint: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let checkpoint = checkpoint.to_owned();
    store
        .write(move |conn| {
            // Fenced, in the writer's BEGIN IMMEDIATE: recovery on any handle cannot remove
            // the node between this check and the write.
            if !registered(conn, node)? {
                return Ok(Err(node_dead(node)));
            }
            let saved = conn
                .prepare_cached(
                    "UPDATE offstage_tasks SET checkpoint = ?3, checkpoint_at = ?4 \
                     WHERE id = ?1 AND node = ?2 AND status = 'running'",
                )?
                .execute(params![id, node, checkpoint, micros(now)])?;
            if saved == 0 {
                return Ok(Ok(false));
            }
            // The attempt got past every signal it received: a later one does not get them
            // again.
            conn.prepare_cached(
                "UPDATE offstage_signals SET settled = 1 \
                 WHERE task_id = ?1 AND received_at IS NOT NULL AND NOT settled",
            )?
            .execute([id])?;
            Ok(Ok(true))
        })
        .await?
}
