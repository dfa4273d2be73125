//! A back-off in SQLite: a running task put back in the queue without counting its attempt,
//! for [`Store::back_off`](crate::store::Store::back_off).

use rusqlite::params;

use super::rows::{insert_logs, micros};
use super::SqliteStore;
use crate::error::Error;
use crate::id::{NodeId, TaskId};
use crate::status::Status;
use crate::store::{json_text, BackOff};

pub(super) async fn back_off(
    store: &SqliteStore,
    id: TaskId,
    node: NodeId,
    back_off: BackOff,
) -> Result<bool, Error> {
    let BackOff {
        state,
        error,
        run_at,
        logs,
    } = back_off;
    let error = json_text(&error);
    store
        .write_counted(move |conn, tally| {
            // Fenced like a finish: only the node the task runs on puts it back.
            let changed = conn
                .prepare_cached(
                    "UPDATE offstage_tasks SET status = 'queued', state = ?3, error = ?4, \
                     run_at = ?5, node = NULL, attempt = max(attempt - 1, 0), \
                     kill_grace_ms = NULL, waiting_for = NULL, waiting_until = NULL \
                     WHERE id = ?1 AND node = ?2 AND status = 'running'",
                )?
                .execute(params![id, node, state, error, micros(run_at)])?;
            if changed == 0 {
                return Ok(false);
            }
            let (name, attempt): (String, i64) = conn
                .prepare_cached("SELECT name, attempt FROM offstage_tasks WHERE id = ?1")?
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            tally.moved(&name, Status::Running, Status::Queued);
            // The next run is numbered as this one was: what this one received and did not
            // get past is received again.
            conn.prepare_cached(
                "UPDATE offstage_signals SET received_attempt = NULL, received_at = NULL \
                 WHERE task_id = ?1 AND received_attempt = ?2 AND settled = 0",
            )?
            .execute(params![id, attempt + 1])?;
            insert_logs(conn, id, &logs)?;
            Ok(true)
        })
        .await
}
