//! Launching inside the app's own transaction.
//!
//! The reason to keep a queue in the app's database: the task exists if, and only if, the
//! app's write committed. [`launch_in`] inserts the task through the app's connection, so it
//! commits or rolls back with everything else in that transaction, and sends the `Queued`
//! notice through it too, which PostgreSQL delivers only on commit. The runtime's
//! `Launch::in_transaction` is the way to call it.

use sqlx::PgConnection;

use super::{json_text, pg_error, task_arrays, CHANNEL_SQL};
use crate::error::Error;
use crate::store::Notice;
use crate::task::TaskRecord;

/// Inserts `task` (which must be `queued`) through `conn`, typically inside the app's open
/// transaction, and tells the nodes on the database to claim it once that commits.
///
/// `conn` must reach the same database and schema (`search_path`) as the runtime's store.
pub async fn launch_in(conn: &mut PgConnection, task: &TaskRecord) -> Result<(), Error> {
    task_arrays(task)
        .insert(&mut *conn)
        .await
        .map_err(|e| pg_error("launch in the caller's transaction", e))?;
    sqlx::query(&format!("SELECT pg_notify({CHANNEL_SQL}, $1)"))
        .bind(format!(
            "{}[{}]",
            super::notices::sender(None),
            json_text(&Notice::Queued)
        ))
        .execute(&mut *conn)
        .await
        .map_err(|e| pg_error("NOTIFY in the caller's transaction", e))?;
    Ok(())
}
