//! Launching inside the app's own transaction.
//!
//! The reason to keep a queue in the app's database: the task exists if, and only if, the
//! app's write committed. [`PostgresStore::launch_in`] inserts the task through the app's
//! connection, so it commits or rolls back with everything else in that transaction, and sends
//! the `Queued` notice through it too, which PostgreSQL delivers only on commit. The runtime's
//! `Launch::in_transaction` is the way to call it.

use sqlx::PgConnection;

use super::rows::TaskArrays;
use super::{pg_error, PostgresStore, CHANNEL_SQL};
use crate::error::{Error, ErrorKind};
use crate::store::{json_text, Notice};
use crate::task::TaskRecord;

impl PostgresStore {
    /// Inserts `task` (which must be `queued`) through `conn`, typically inside the app's open
    /// transaction, and tells the nodes on the database to claim it once that commits.
    ///
    /// `conn` must reach the same schema as this store (its `search_path` decides); if it does
    /// not, this is an error and nothing is inserted.
    pub async fn launch_in(&self, conn: &mut PgConnection, task: &TaskRecord) -> Result<(), Error> {
        // Checked before anything is written: a task in another schema would never run.
        let channel: Option<String> = sqlx::query_scalar(&format!("SELECT {CHANNEL_SQL}"))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| pg_error("reading the caller's schema", e))?;
        if channel.as_deref() != Some(self.channel.as_str()) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "the connection given to launch in a transaction is on schema {}, but the \
                     runtime's store is on {}: give the connection the same search_path as the \
                     runtime's URL (options[search_path]=...)",
                    channel
                        .as_deref()
                        .map_or("(none)", |c| c.trim_start_matches("offstage:")),
                    self.channel.trim_start_matches("offstage:")
                ),
            ));
        }
        TaskArrays::from(task)
            .insert(&mut *conn)
            .await
            .map_err(|e| pg_error("launch in the caller's transaction", e))?;
        // PostgreSQL delivers this only if the transaction commits: then every node claims.
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
}
