//! Task counts by type and status, kept in the statements that change them.
//!
//! Each statement that inserts, moves or deletes tasks is written as a data-modifying `WITH`:
//! the change itself, named `changed` and returning each row's `name` and `status`, then
//! [`count_change`]'s `counted` step, which inserts the difference it made into
//! `offstage_task_counts`. One statement, so the counts commit (or roll back) with the change,
//! and only inserts, so nodes never wait for each other on a counter. [`counts`] sums the
//! rows and [`fold`] (each node's housekeeping) turns them back into one per type and status.

use sqlx::Row;

use super::{pg_error, PostgresStore};
use crate::error::Error;
use crate::status::Status;

/// What a counted statement does to the tasks it returns as `changed`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Change {
    /// Inserts them: `changed` returns their status.
    Insert,
    /// Moves them from this status: `changed` returns the new one.
    Move(Status),
    /// Deletes them: `changed` returns the status they had.
    Delete,
}

/// The `counted AS (...)` step of a counted statement (see the module docs): goes after the
/// `changed AS (...)` step, in the same `WITH`.
pub(super) fn count_change(change: Change) -> String {
    let add = "INSERT INTO offstage_task_counts (name, status, n)";
    match change {
        Change::Insert => {
            format!("counted AS ({add} SELECT name, status, count(*) FROM changed GROUP BY 1, 2)")
        }
        Change::Delete => {
            format!("counted AS ({add} SELECT name, status, -count(*) FROM changed GROUP BY 1, 2)")
        }
        Change::Move(from) => {
            let from = from.as_str();
            format!(
                "counted AS ({add} SELECT name, status, count(*) FROM changed \
                 WHERE status <> '{from}' GROUP BY 1, 2 \
                 UNION ALL SELECT name, '{from}', -count(*) FROM changed \
                 WHERE status <> '{from}' GROUP BY 1)"
            )
        }
    }
}

pub(super) async fn counts(store: &PostgresStore) -> Result<Vec<(String, Status, u64)>, Error> {
    let err = |e| pg_error("counting tasks", e);
    let rows = sqlx::query(
        "SELECT name, status, sum(n)::int8 FROM offstage_task_counts GROUP BY name, status \
         HAVING sum(n) > 0 ORDER BY name, status",
    )
    .fetch_all(&store.pool)
    .await
    .map_err(err)?;
    rows.iter()
        .map(|row| {
            let status: &str = row.try_get(1).map_err(err)?;
            let count: i64 = row.try_get(2).map_err(err)?;
            Ok((row.try_get(0).map_err(err)?, status.parse()?, count as u64))
        })
        .collect()
}

/// Folds the difference rows into one per type and status (dropping the zeros). Exact with
/// writers and other folds running: the delete takes the rows this fold's snapshot sees, a
/// concurrent fold skips the rows this one deleted, and rows inserted meanwhile stay for the
/// next fold.
pub(super) async fn fold(store: &PostgresStore) -> Result<(), Error> {
    sqlx::query(
        "WITH gone AS (DELETE FROM offstage_task_counts RETURNING name, status, n) \
         INSERT INTO offstage_task_counts (name, status, n) \
         SELECT name, status, sum(n) FROM gone GROUP BY name, status HAVING sum(n) <> 0",
    )
    .execute(&store.pool)
    .await
    .map_err(|e| pg_error("folding task counts", e))?;
    Ok(())
}
