//! Checkpoints in PostgreSQL: the last value a running task saved on purpose, in its row of
//! `offstage_tasks` (`checkpoint`, `checkpoint_at`), committed by one statement of its own
//! (durable when the call returns) rather than with the batched state.

use chrono::{DateTime, Utc};

use super::nodes::is_registered;
use super::{pg_error, PostgresStore};
use crate::error::Error;
use crate::id::{NodeId, TaskId};
use crate::store::node_dead;

pub(super) async fn save(
    store: &PostgresStore,
    id: TaskId,
    node: NodeId,
    checkpoint: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let err = |e| pg_error("saving a checkpoint", e);
    // One statement: `me` holds the node's row (KEY SHARE, which recovery's DELETE waits
    // for), so a node declared dead writes nothing; the signals the task received are settled
    // in the same step (the attempt got past them, a later one does not get them again).
    let saved: i64 = sqlx::query_scalar(
        "WITH me AS (SELECT id FROM offstage_nodes WHERE id = $2 FOR KEY SHARE), \
         saved AS (UPDATE offstage_tasks SET checkpoint = $3, checkpoint_at = $4 \
             WHERE id = $1 AND node = $2 AND status = 'running' AND EXISTS (SELECT 1 FROM me) \
             RETURNING id), \
         settled AS (UPDATE offstage_signals SET settled = true \
             WHERE task_id IN (SELECT id FROM saved) AND received_at IS NOT NULL AND NOT settled) \
         SELECT count(*) FROM saved",
    )
    .bind(id.as_uuid())
    .bind(node.as_uuid())
    .bind(checkpoint)
    .bind(now)
    .fetch_one(&store.pool)
    .await
    .map_err(err)?;
    if saved == 0 && !is_registered(store, node).await? {
        return Err(node_dead(node));
    }
    Ok(saved > 0)
}
