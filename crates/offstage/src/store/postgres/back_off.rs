//! A back-off in PostgreSQL: a running task put back in the queue without counting its
//! attempt, for [`Store::back_off`](crate::store::Store::back_off).

use super::counts::{count_change, Change};
use super::rows::LogArrays;
use super::{pg_error, PostgresStore};
use crate::error::Error;
use crate::id::{NodeId, TaskId};
use crate::status::Status;
use crate::store::{json_text, BackOff};

pub(super) async fn back_off(
    store: &PostgresStore,
    id: TaskId,
    node: NodeId,
    back_off: BackOff,
) -> Result<bool, Error> {
    let err = |e| pg_error("backing a task off", e);
    let mut tx = store.pool.begin().await.map_err(err)?;
    // Fenced like a finish: only the node the task runs on puts it back. Counted in the same
    // statement (running → queued).
    let attempt: Option<i32> = sqlx::query_scalar(&format!(
        "WITH changed AS (UPDATE offstage_tasks SET status = 'queued', state = $3, error = $4, \
         run_at = $5, node = NULL, attempt = greatest(attempt - 1, 0), kill_grace_ms = NULL, \
         waiting_for = NULL, waiting_until = NULL \
         WHERE id = $1 AND node = $2 AND status = 'running' \
         RETURNING name, status, attempt), {} \
         SELECT attempt FROM changed",
        count_change(Change::Move(Status::Running))
    ))
    .bind(id.as_uuid())
    .bind(node.as_uuid())
    .bind(&back_off.state)
    .bind(json_text(&back_off.error))
    .bind(back_off.run_at)
    .fetch_optional(&mut *tx)
    .await
    .map_err(err)?;
    let Some(attempt) = attempt else {
        return Ok(false);
    };
    // The next run is numbered as this one was: what this one received and did not get past
    // is received again.
    sqlx::query(
        "UPDATE offstage_signals SET received_attempt = NULL, received_at = NULL \
         WHERE task_id = $1 AND received_attempt = $2 AND NOT settled",
    )
    .bind(id.as_uuid())
    .bind(attempt + 1)
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    let mut logs = LogArrays::default();
    logs.push(id, &back_off.logs);
    logs.insert(&mut tx, None).await.map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(true)
}
