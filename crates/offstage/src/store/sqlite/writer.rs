//! The writer thread and the readers: every write runs in the writer's next transaction
//! (group commit); reads use pooled connections beside it (WAL).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::counts::Tally;
use super::SqliteStore;
use crate::error::{Error, ErrorKind};

/// A work item for the writer thread: runs inside the open transaction, adds what it changed
/// in the task counts to the transaction's tally, and returns what to do once the transaction
/// has committed (or failed to).
pub(super) type Job = Box<dyn FnOnce(&Connection, &mut Tally) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Result<(), &Failed>) + Send>;

/// Why a whole transaction failed (its `BEGIN` or its `COMMIT`), for every job in it.
pub(super) struct Failed {
    message: String,
    full: bool,
}

impl Failed {
    fn new(path: &Path, error: &rusqlite::Error) -> Self {
        Self {
            message: error.to_string(),
            full: is_full(path, error),
        }
    }
}

/// True when `error` means the disk is full: SQLite says so (`SQLITE_FULL`, which is what its
/// Unix layer makes of `ENOSPC` on a write), or it reports an I/O error (a grown WAL index, an
/// fsync) while the file's filesystem has next to no space left. SQLite keeps the OS error
/// number on the connection only, so the filesystem is asked instead.
fn is_full(path: &Path, error: &rusqlite::Error) -> bool {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => true,
        Some(rusqlite::ErrorCode::SystemIoFailure) => fs_nearly_full(path),
        _ => false,
    }
}

/// True when the filesystem holding `path` has less than 256 KiB left for unprivileged
/// writers: too little for SQLite to grow its WAL by a batch.
fn fs_nearly_full(path: &Path) -> bool {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // The field types are the platform's (`fsblkcnt_t`, `c_ulong`): u64 here, not everywhere.
    #[allow(clippy::unnecessary_cast)]
    nix::sys::statvfs::statvfs(dir).is_ok_and(|fs| {
        (fs.blocks_available() as u64).saturating_mul(fs.fragment_size() as u64) < 256 * 1024
    })
}

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
    if is_full(path, &error) {
        return Error::storage_full(&path.display().to_string(), &error);
    }
    Error::store(&format!("SQLite {what} on {}", path.display()), error)
}

impl SqliteStore {
    /// Runs `f` in the writer's next transaction and returns its result once committed. `f`
    /// launches, moves or deletes no task (see [`SqliteStore::write_counted`]).
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        self.write_counted(move |conn, _| f(conn)).await
    }

    /// [`SqliteStore::write`] for a write that launches, moves or deletes tasks: it adds each
    /// change to the tally, which the writer adds to the task counts in the same transaction.
    pub(super) async fn write_counted<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut Tally) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let path = self.path.clone();
        let job: Job = Box::new(move |conn, tally| {
            let result = f(conn, tally);
            Box::new(move |commit| {
                let result = match commit {
                    Ok(()) => result.map_err(|e| sqlite_error(&path, "write", e)),
                    Err(failed) if failed.full => Err(Error::storage_full(
                        &path.display().to_string(),
                        &failed.message,
                    )),
                    Err(failed) => Err(Error::new(
                        ErrorKind::Store,
                        format!(
                            "SQLite commit on {} failed: {}",
                            path.display(),
                            failed.message
                        ),
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

pub(super) fn write_loop(path: &Path, conn: Connection, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    let mut tally = Tally::default();
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut pending = batch.drain(..);
        'transactions: loop {
            if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
                let failed = Failed::new(path, &error);
                for job in pending.by_ref() {
                    // Its caller hears why (the job runs outside a transaction, as SQLite's
                    // autocommit: a write that goes in anyway is one its caller was told
                    // failed, never the other way round).
                    let reply = job(&conn, &mut tally);
                    // And its counts with it, the same way.
                    let _ = tally.flush(&conn);
                    tally.clear();
                    reply(Err(&failed));
                }
                break;
            }
            for job in pending.by_ref() {
                replies.push(job(&conn, &mut tally));
                if conn.is_autocommit() {
                    tally.clear();
                    // SQLite rolled the whole transaction back on an error in this job (it
                    // does on `SQLITE_FULL` and some I/O errors): every job so far is undone,
                    // and says so; the rest go in a new transaction, never in autocommit.
                    let failed = Failed {
                        message: "SQLite rolled the transaction back after an error in it".into(),
                        full: fs_nearly_full(path),
                    };
                    for reply in replies.drain(..) {
                        reply(Err(&failed));
                    }
                    continue 'transactions;
                }
            }
            break;
        }
        drop(pending);
        if replies.is_empty() {
            continue;
        }
        // The counts change in the transaction whose writes changed them.
        let committed = tally
            .flush(&conn)
            .and_then(|()| conn.execute_batch("COMMIT"))
            .map_err(|e| Failed::new(path, &e));
        tally.clear();
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies.drain(..) {
            reply(committed.as_ref().map(|_| ()));
        }
    }
}
