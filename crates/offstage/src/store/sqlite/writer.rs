//! The writer thread and the readers: every write runs in the writer's next transaction
//! (group commit); reads use pooled connections beside it (WAL).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{Durability, SqliteStore, MIGRATIONS};
use crate::error::{Error, ErrorKind};

/// A work item for the writer thread: runs inside the open transaction and returns what to do
/// once the transaction has committed (or failed to).
pub(super) type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// The most jobs one transaction takes, so one commit never waits on an unbounded batch.
const MAX_BATCH: usize = 4096;

pub(super) fn sqlite_error(path: &Path, what: &str, error: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    if let rusqlite::Error::SqliteFailure(failure, _) = &error {
        if matches!(
            failure.code,
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt
        ) {
            return Error::new(
                ErrorKind::Corrupt,
                format!(
                    "{} is not an Offstage database or is damaged ({error}): point Offstage at a \
                     new file, or restore this one from a backup",
                    path.display()
                ),
            )
            .with_source(error);
        }
    }
    Error::store(&format!("SQLite {what} on {}", path.display()), error)
}

pub(super) fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    // Up to 64 MiB of page cache (allocated only as pages are used): with a few hundred
    // thousand tasks the indexes stop falling out of the cache between commits.
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

pub(super) fn migrate(path: &Path, conn: &mut Connection) -> Result<(), Error> {
    let err = |e| sqlite_error(path, "migration", e);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(err)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(Error::new(
            ErrorKind::SchemaTooNew,
            format!(
                "{} has schema version {version}, but this Offstage knows versions up to {known}: \
                 it was written by a newer Offstage; upgrade Offstage to open it",
                path.display()
            ),
        ));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)
            .map_err(err)?;
    }
    tx.commit().map_err(err)
}

impl SqliteStore {
    /// Runs `f` in the writer's next transaction and returns its result once committed.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let path = self.path.clone();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            Box::new(move |commit| {
                let result = match commit {
                    Ok(()) => result.map_err(|e| sqlite_error(&path, "write", e)),
                    Err(message) => Err(Error::new(
                        ErrorKind::Store,
                        format!("SQLite commit on {} failed: {message}", path.display()),
                    )),
                };
                let _ = tx.send(result);
            })
        });
        self.writer.send(job).map_err(|_| self.writer_gone())?;
        rx.await.map_err(|_| self.writer_gone())?
    }

    fn writer_gone(&self) -> Error {
        Error::new(
            ErrorKind::Store,
            format!(
                "the SQLite writer for {} has stopped; reopen the store",
                self.path.display()
            ),
        )
    }

    /// Runs `f` on a pooled read connection.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().expect("reader pool poisoned").pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    let conn =
                        Connection::open(&path).map_err(|e| sqlite_error(&path, "open", e))?;
                    conn.busy_timeout(Duration::from_secs(10))
                        .map_err(|e| sqlite_error(&path, "open", e))?;
                    conn
                }
            };
            let result = f(&conn).map_err(|e| sqlite_error(&path, "read", e));
            let mut pool = readers.lock().expect("reader pool poisoned");
            if pool.len() < 8 {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Store, format!("SQLite read task failed: {e}")))?
    }
}

pub(super) fn write_loop(conn: Connection, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
            let message = error.to_string();
            for job in batch.drain(..) {
                // The job never ran; tell its caller why.
                job(&conn)(Err(&message));
            }
            continue;
        }
        replies.extend(batch.drain(..).map(|job| job(&conn)));
        let committed = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies.drain(..) {
            reply(committed.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}
