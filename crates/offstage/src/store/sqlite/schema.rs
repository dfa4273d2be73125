//! The schema of a SQLite store: opening its file, the pragmas the writing connection runs
//! with, and the versioned migrations (`PRAGMA user_version` counts those applied), applied
//! in one `BEGIN IMMEDIATE` transaction so processes opening the file together migrate once.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::writer::sqlite_error;
use super::Durability;
use crate::error::{Error, ErrorKind};

/// The migrations, in order; version N is the Nth.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_isolated.sql"),
    include_str!("migrations/0003_schedules.sql"),
    include_str!("migrations/0004_shared.sql"),
    include_str!("migrations/0005_timeout_seconds.sql"),
    include_str!("migrations/0006_counts.sql"),
    include_str!("migrations/0007_operations.sql"),
    include_str!("migrations/0008_reruns_and_actions.sql"),
    include_str!("migrations/0009_stats.sql"),
    include_str!("migrations/0010_composition.sql"),
    include_str!("migrations/0011_live_children.sql"),
    include_str!("migrations/0012_signal_holding.sql"),
    include_str!("migrations/0013_concurrency_keys.sql"),
    include_str!("migrations/0014_limiters.sql"),
    include_str!("migrations/0015_trace.sql"),
];

/// Opens (creating if needed) the database at `path` for writing, configured and migrated to
/// the current schema: the connection the writer thread then owns.
pub(super) async fn open(path: &Path, durability: Durability) -> Result<Connection, Error> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(Error::new(
                ErrorKind::Store,
                format!(
                    "cannot create the database {}: the directory {} does not exist; create \
                     it first or choose another path",
                    path.display(),
                    dir.display()
                ),
            ));
        }
    }
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<Connection, Error> {
        let mut conn = Connection::open(&path).map_err(|e| sqlite_error(&path, "open", e))?;
        configure(&conn, durability).map_err(|e| sqlite_error(&path, "open", e))?;
        migrate(&path, &mut conn)?;
        Ok(conn)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Store, format!("opening SQLite failed: {e}")))?
}

fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    // Pages freed by purges and retention go back to the file system (see
    // `SqliteStore::give_back_space`). Takes effect only on a new file, before its first table:
    // a file made by an older Offstage keeps reusing its free pages, and `VACUUM` shrinks it.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
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

fn migrate(path: &Path, conn: &mut Connection) -> Result<(), Error> {
    migrate_to(path, conn, MIGRATIONS.len())
}

/// Creates (or migrates) the database at `path` up to schema version `version` only: for
/// tests of what a later migration does to data an earlier schema held.
#[cfg(any(test, feature = "testing"))]
pub(super) async fn create_at_version(path: &Path, version: usize) -> Result<(), Error> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut conn = Connection::open(&path).map_err(|e| sqlite_error(&path, "open", e))?;
        configure(&conn, Durability::Full).map_err(|e| sqlite_error(&path, "open", e))?;
        migrate_to(&path, &mut conn, version.min(MIGRATIONS.len()))
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Store, format!("opening SQLite failed: {e}")))?
}

fn migrate_to(path: &Path, conn: &mut Connection, upto: usize) -> Result<(), Error> {
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
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(upto)
        .skip(version as usize)
    {
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)
            .map_err(err)?;
    }
    tx.commit().map_err(err)
}
