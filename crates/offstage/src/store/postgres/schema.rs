//! The schema of a PostgreSQL store: connecting (with the session settings every connection
//! gets), then the search-path schema created if missing and versioned migrations applied
//! under an advisory lock, so nodes starting together migrate once.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::pg_error;
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

/// How long PostgreSQL lets one of the store's sessions sit idle inside a transaction before
/// it ends the session (and so releases its locks).
pub(super) const IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";

/// `url` with its password (if any) replaced by `***`, for messages and logs.
pub(super) fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

pub(super) async fn connect(
    url: &str,
    display: &str,
    max_connections: u32,
) -> Result<PgPool, Error> {
    let options = PgConnectOptions::from_str(url).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "`{display}` is not a PostgreSQL URL Offstage can use ({e}): write it as \
                 postgres://user:password@host:5432/database"
            ),
        )
    })?;
    // A node whose process is frozen (SIGSTOP, a stalled VM) in the middle of one of its short
    // transactions would hold that transaction's row locks, its node row's among them, for as
    // long as it stays frozen, and the other nodes' recovery would wait on them instead of
    // declaring it dead. The server ends such a session after a few seconds idle in a
    // transaction, which lets the locks go; Offstage's own transactions never idle that long.
    let options = options.options([(
        "idle_in_transaction_session_timeout",
        IDLE_IN_TRANSACTION_TIMEOUT,
    )]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        // A burst of reads (ten thousand waits at once) queues for the pool's connections; on
        // a loaded machine that queue can take longer than ten seconds to drain, which is
        // slow, not broken.
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Store,
                format!(
                    "cannot connect to PostgreSQL at {display}: {e}. Check that the server is \
                     running and reachable, and that the user, password and database in the URL \
                     are right"
                ),
            )
            .with_source(e)
        })?;
    Ok(pool)
}

/// Creates the schema if the `search_path` names one that does not exist, then applies the
/// migrations this database lacks, all under a lock so concurrent nodes migrate once.
pub(super) async fn migrate(pool: &PgPool, display: &str) -> Result<(u32, u32), Error> {
    ensure_schema(pool, display).await?;
    apply_migrations(pool, display, MIGRATIONS.len()).await
}

/// [`migrate`], up to schema version `version` only: for tests of what a later migration does
/// to data an earlier schema held.
#[cfg(feature = "testing")]
pub(super) async fn migrate_to(
    pool: &PgPool,
    display: &str,
    version: usize,
) -> Result<(u32, u32), Error> {
    ensure_schema(pool, display).await?;
    apply_migrations(pool, display, version.min(MIGRATIONS.len())).await
}

async fn ensure_schema(conn: &PgPool, display: &str) -> Result<(), Error> {
    let err = |e| pg_error("migration", e);
    let current: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(conn)
        .await
        .map_err(err)?;
    if current.is_none() {
        let path: String = sqlx::query_scalar("SHOW search_path")
            .fetch_one(conn)
            .await
            .map_err(err)?;
        let first = path
            .split(',')
            .map(|s| s.trim().trim_matches('"'))
            .find(|s| !s.is_empty() && *s != "$user")
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "the search_path of {display} names no schema: add \
                         ?options[search_path]=myschema to the URL"
                    ),
                )
            })?
            .to_owned();
        sqlx::query(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{}\"",
            first.replace('"', "\"\"")
        ))
        .execute(conn)
        .await
        .or_else(|e| match &e {
            // Two nodes creating it at once: the other one won.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                Ok(Default::default())
            }
            _ => Err(e),
        })
        .map_err(err)?;
    }
    Ok(())
}

async fn apply_migrations(pool: &PgPool, display: &str, upto: usize) -> Result<(u32, u32), Error> {
    let err = |e| pg_error("migration", e);
    let mut tx = pool.begin().await.map_err(err)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':offstage-migrate'))")
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS offstage_migrations (\
         version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    let version: i32 =
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM offstage_migrations")
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
    let known = MIGRATIONS.len() as i32;
    if version > known {
        return Err(Error::new(
            ErrorKind::SchemaTooNew,
            format!(
                "{display} has Offstage schema version {version}, but this Offstage knows versions \
                 up to {known}: it was migrated by a newer Offstage; upgrade Offstage to use it"
            ),
        ));
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(upto)
        .skip(version as usize)
    {
        // A plain string runs as a simple query, which may hold many statements. (`raw_sql`
        // would too, but its future is not `Send` in an async trait method.)
        sqlx::Executor::execute(&mut *tx, *sql).await.map_err(err)?;
        sqlx::query("INSERT INTO offstage_migrations (version) VALUES ($1)")
            .bind(index as i32 + 1)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    Ok((version as u32, upto.max(version as usize) as u32))
}
