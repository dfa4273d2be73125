//! The databases a test creates, and their removal when the test ends.
//!
//! A test database is a SQLite file or a PostgreSQL schema that one test asked a [`Backend`]
//! for. libtest runs each test on a thread of its own and ends that thread when the test ends,
//! passed or failed (a panic unwinds it), so the backends note each database in a thread-local
//! list whose `Drop` removes them: after the test's body and everything it owned (its runtime,
//! its server processes) are gone. No test needs to hold a guard, and no call site changes.
//!
//! A run that is killed outright (Ctrl-C, SIGKILL) runs no destructor. Its databases carry
//! their creation time in their names (a UUIDv7), so the first test of a later run that creates
//! one removes those older than [`STALE`], a bound no test comes near.
//!
//! [`Backend`]: super::Backend

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Age past which a test database is a killed run's leftover: no test runs this long, and a run
/// on another checkout sharing the PostgreSQL server keeps its own until then.
pub(super) const STALE: Duration = Duration::from_secs(60 * 60);

/// What one test thread created, removed when the thread ends.
#[derive(Default)]
struct Created {
    files: Vec<PathBuf>,
    #[cfg(feature = "postgres")]
    schemas: Vec<(String, String)>,
}

thread_local! {
    static CREATED: RefCell<Created> = RefCell::new(Created::default());
}

impl Drop for Created {
    fn drop(&mut self) {
        for file in self.files.drain(..) {
            remove_sqlite(&file);
        }
        #[cfg(feature = "postgres")]
        for (url, schema) in self.schemas.drain(..) {
            // A failed drop must not panic here (a panicking thread-local destructor aborts the
            // test binary): the schema is left for the next run's sweep.
            let _ = std::panic::catch_unwind(|| postgres::drop_schemas(&url, vec![schema]));
        }
    }
}

/// A new SQLite file's path in the system's temporary directory, removed when this test ends.
#[cfg(feature = "sqlite")]
pub(super) fn sqlite_file() -> PathBuf {
    let dir = std::env::temp_dir().join("offstage-tests");
    std::fs::create_dir_all(&dir).expect("creating the test directory");
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep_sqlite(&dir));
    let path = dir.join(format!("{}.db", uuid::Uuid::now_v7()));
    let _ = CREATED.try_with(|created| created.borrow_mut().files.push(path.clone()));
    path
}

/// Removes the database file and everything named after it: SQLite's `-wal`, `-shm` and
/// `-journal`, the store's `-nodes` directory of liveness locks, and whatever a test put beside
/// it (a server's log).
fn remove_sqlite(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        if entry_name
            .as_encoded_bytes()
            .starts_with(name.as_encoded_bytes())
        {
            remove_entry(&entry.path());
        }
    }
}

/// Removes a file, or a directory with what it holds.
fn remove_entry(path: &Path) {
    let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir_all(path));
}

/// Removes the files in `dir` that a run older than [`STALE`] left.
#[cfg(feature = "sqlite")]
fn sweep_sqlite(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|name| name.split('.').next()) else {
            continue;
        };
        if is_stale(id) {
            remove_entry(&entry.path());
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// Whether `id`, a UUIDv7 in any of its text forms, was made more than [`STALE`] ago.
fn is_stale(id: &str) -> bool {
    let Some((seconds, _)) = uuid::Uuid::parse_str(id)
        .ok()
        .and_then(|id| id.get_timestamp())
        .map(|at| at.to_unix())
    else {
        return false;
    };
    let made = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
    made.elapsed().is_ok_and(|age| age > STALE)
}

#[cfg(feature = "postgres")]
pub(super) use postgres::schema;

#[cfg(feature = "postgres")]
mod postgres {
    use sqlx::Connection;

    use super::{is_stale, CREATED};

    /// The prefix of every test schema's name; the rest is a UUIDv7.
    const PREFIX: &str = "offstage_test_";

    /// A new schema's name on the database at `url`, dropped when this test ends. (The store
    /// creates the schema when it first opens it.)
    pub(in crate::testing::conformance) fn schema(url: &str) -> String {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| sweep(url));
        let schema = format!("{PREFIX}{}", uuid::Uuid::now_v7().simple());
        let _ = CREATED.try_with(|created| {
            (created.borrow_mut().schemas).push((url.to_owned(), schema.clone()))
        });
        schema
    }

    /// Drops the test schemas that a run older than [`super::STALE`] left on `url`.
    fn sweep(url: &str) {
        let url = url.to_owned();
        let names = on_own_thread(move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.ok()?;
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)",
            )
            .bind(PREFIX)
            .fetch_all(&mut conn)
            .await
            .ok()?;
            Some((url, names))
        });
        if let Some(Some((url, names))) = names {
            let stale = names
                .into_iter()
                .filter(|name| is_stale(&name[PREFIX.len()..]))
                .collect();
            drop_schemas(&url, stale);
        }
    }

    /// Drops `schemas` and all they hold, on a connection of its own.
    pub(super) fn drop_schemas(url: &str, schemas: Vec<String>) {
        if schemas.is_empty() {
            return;
        }
        let url = url.to_owned();
        on_own_thread(move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.ok()?;
            // A backend of the test's last connections may still hold a lock for a moment;
            // never wait on one forever.
            sqlx::query("SET lock_timeout = '10s'")
                .execute(&mut conn)
                .await
                .ok()?;
            for schema in schemas {
                // The test is over: a session of its own still holding a lock in the schema
                // (closing, or mid-statement when its runtime was dropped) is ended first.
                let _ = sqlx::query(
                    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
                     JOIN pg_class c ON c.oid = l.relation \
                     WHERE c.relnamespace = to_regnamespace($1) AND l.pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&mut conn)
                .await;
                let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                let _ = sqlx::query(&drop).execute(&mut conn).await;
            }
            conn.close().await.ok()
        });
    }

    /// Runs `work` on a new thread with a tokio runtime of its own, and waits for it: the
    /// callers run inside a test's runtime (which cannot be blocked on from within) or after
    /// it is gone (in a thread-local destructor).
    fn on_own_thread<F, T>(work: impl FnOnce() -> F + Send + 'static) -> Option<T>
    where
        F: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            Some(runtime.block_on(work()))
        })
        .join()
        .ok()
        .flatten()
    }
}
