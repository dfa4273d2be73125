//! A **copy**: the history and data of one Offstage database written into another, with ids,
//! statuses and timestamps as they were. It is the road from a SQLite file to PostgreSQL when
//! one box is no longer enough (or back, to take a cluster's history home), and what
//! `offstage migrate --from SRC --to DST` drives.
//!
//! ```no_run
//! # async fn demo() -> Result<(), offstage::Error> {
//! use offstage::store::copy::DatabaseCopy;
//! let copy = DatabaseCopy::open("sqlite:offstage.db", "postgres://app@db.internal/app").await?;
//! let plan = copy.plan().await?;
//! let report = copy.run(&plan, |progress| println!("{} {}/{}", progress.table, progress.copied, progress.total)).await?;
//! assert!(report.matches());
//! # Ok(()) }
//! ```
//!
//! What is copied is [`TABLES`], in that order: tasks (every column, `running` ones as they
//! are), their logs, schedules, shared documents (value and version, without a lock: the lock's
//! node does not exist in the target), signals (in order; the target numbers them anew), bulk
//! actions, limiters (without holds), paused task types and the per-minute stats. Not copied is
//! what describes live processes: nodes, limiter holds, shared-document locks, the notices
//! between nodes, whose turn periodic work is, and each concurrency key's last turn. The task
//! counts by type and status and the counts per concurrency key are kept by the target's own
//! writes as rows go in, as with any other write.
//!
//! A copy goes table by table, in pages ordered by each table's key. Each page goes into the
//! target in one transaction together with the position it reached, kept in the target's
//! `offstage_copy` table; so a copy that was interrupted (killed, a lost connection) resumes
//! after its last committed page when it is run again from the same source, and writes no row
//! twice. The table is dropped once every count matches.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, ErrorKind};

/// How long after its last heartbeat a node still counts as running, for [`DatabaseCopy::plan`]:
/// three times the default node timeout.
pub const LIVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The rows a page holds, unless [`DatabaseCopy::batch`] says otherwise.
pub const DEFAULT_BATCH: usize = 5_000;

/// What a column holds, the same on both backends (a UUID is 16 bytes in SQLite and `uuid` in
/// PostgreSQL; a time is microseconds in SQLite and `timestamptz` in PostgreSQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Id,
    Text,
    Int,
    Real,
    Time,
    Bool,
}

/// One column of a copied table.
#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

/// A table a copy writes: its columns, the leading ones of which are its key (the order pages
/// are read in).
#[derive(Debug)]
pub struct Table {
    /// Its name in messages and the count check: `tasks`, `logs`, ...
    pub name: &'static str,
    pub(crate) sql: &'static str,
    pub(crate) columns: &'static [Column],
    /// How many leading columns make the key.
    pub(crate) key: usize,
    /// False when rows may share a key (stats): a page then never ends inside a key.
    pub(crate) unique: bool,
    /// The first column is read (it orders the pages) but not written: the target numbers
    /// the rows itself (signals' `seq`).
    pub(crate) renumbered: bool,
    /// Rows whose key the target already has are left as they are (`ON CONFLICT DO
    /// NOTHING`); false for tables with no unique key or a renumbered one.
    pub(crate) if_absent: bool,
}

use Kind::{Bool, Id, Int, Real, Text, Time};

/// The tables a copy writes, in order.
pub const TABLES: &[Table] = &[
    Table {
        name: "tasks",
        sql: "offstage_tasks",
        columns: &[
            col("id", Id),
            col("name", Text),
            col("args", Text),
            col("status", Text),
            col("state", Text),
            col("return_value", Text),
            col("error", Text),
            col("launched_at", Time),
            col("run_at", Time),
            col("started_at", Time),
            col("finished_at", Time),
            col("attempt", Int),
            col("priority", Int),
            col("task_key", Text),
            col("owner", Text),
            col("timeout_ms", Int),
            col("node", Id),
            col("kill_grace_ms", Int),
            col("isolated", Bool),
            col("kill_asked_at", Time),
            col("rerun_of", Id),
            col("parent", Id),
            col("detached", Bool),
            col("checkpoint", Text),
            col("checkpoint_at", Time),
            col("waiting_for", Text),
            col("waiting_until", Time),
            col("concurrency_key", Text),
            col("traceparent", Text),
            col("tracestate", Text),
        ],
        key: 1,
        unique: true,
        renumbered: false,
        if_absent: true,
    },
    Table {
        name: "logs",
        sql: "offstage_logs",
        columns: &[
            col("task_id", Id),
            col("seq", Int),
            col("at", Time),
            col("level", Text),
            col("message", Text),
        ],
        key: 2,
        unique: true,
        renumbered: false,
        if_absent: true,
    },
    Table {
        name: "schedules",
        sql: "offstage_schedules",
        columns: &[
            col("name", Text),
            col("task_name", Text),
            col("cron", Text),
            col("args", Text),
            col("options", Text),
            col("paused", Bool),
            col("last_tick_at", Time),
            col("last_task_id", Id),
            col("created_at", Time),
            col("updated_at", Time),
        ],
        key: 1,
        unique: true,
        renumbered: false,
        if_absent: true,
    },
    Table {
        name: "shared",
        sql: "offstage_shared",
        columns: &[
            col("name", Text),
            col("value", Text),
            col("version", Int),
            col("updated_at", Time),
        ],
        key: 1,
        unique: true,
        renumbered: false,
        if_absent: true,
    },
    Table {
        name: "signals",
        sql: "offstage_signals",
        columns: &[
            col("seq", Int),
            col("task_id", Id),
            col("name", Text),
            col("payload", Text),
            col("sent_at", Time),
            col("sent_by", Text),
            col("received_attempt", Int),
            col("received_at", Time),
            col("settled", Bool),
        ],
        key: 1,
        unique: true,
        renumbered: true,
        if_absent: false,
    },
    Table {
        name: "actions",
        sql: "offstage_actions",
        columns: &[
            col("id", Id),
            col("verb", Text),
            col("filter", Text),
            col("per_s", Real),
            col("actor", Text),
            col("node", Id),
            col("status", Text),
            col("started_at", Time),
            col("updated_at", Time),
            col("ended_at", Time),
            col("matched", Int),
            col("done", Int),
            col("failed", Int),
            col("error", Text),
        ],
        key: 1,
        unique: true,
        renumbered: false,
        if_absent: true,
    },
    Table {
        name: "limiters",
        sql: "offstage_limiters",
        columns: &[
            col("name", Text),
            col("rate", Real),
            col("burst", Int),
            col("max_holders", Int),
            col("tokens", Real),
            col("refilled_at", Time),
            col("updated_at", Time),
        ],
        key: 1,
        unique: true,
        renumbered: false,
        if_absent: true,
    },
    Table {
        name: "paused",
        sql: "offstage_paused",
        columns: &[col("name", Text), col("paused_at", Time)],
        key: 1,
        unique: true,
        renumbered: false,
        if_absent: true,
    },
    Table {
        name: "stats",
        sql: "offstage_stats",
        columns: &[
            col("minute", Int),
            col("node", Id),
            col("name", Text),
            col("started", Int),
            col("completed", Int),
            col("failed", Int),
            col("killed", Int),
            col("missing", Int),
            col("retried", Int),
            col("wait", Text),
            col("queued", Int),
        ],
        key: 3,
        unique: false,
        renumbered: false,
        if_absent: false,
    },
];

impl Table {
    /// The columns the target is given.
    pub(crate) fn written(&self) -> &'static [Column] {
        if self.renumbered {
            &self.columns[1..]
        } else {
            self.columns
        }
    }
}

/// One value of a copied row, whichever backend it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Value {
    Null,
    Id(Uuid),
    Text(String),
    Int(i64),
    Real(f64),
    /// Microseconds since the Unix epoch.
    Time(i64),
    Bool(bool),
}

impl Value {
    pub(crate) fn time(at: DateTime<Utc>) -> Value {
        Value::Time(at.timestamp_micros())
    }

    pub(crate) fn as_time(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::Time(micros) => DateTime::from_timestamp_micros(*micros),
            _ => None,
        }
    }
}

/// A row, its values in its table's column order.
pub(crate) type Row = Vec<Value>;

/// Where a table's copy stands in the target: recorded in the transaction of each page.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Position {
    /// The key of the last row copied; none before the first page.
    pub(crate) after: Option<Row>,
    /// Rows copied so far.
    pub(crate) copied: u64,
    /// Rows the target had before the copy began.
    pub(crate) before: u64,
}

impl Position {
    pub(crate) fn after_text(&self) -> Option<String> {
        self.after
            .as_ref()
            .map(|key| serde_json::to_string(key).expect("a key is plain JSON"))
    }

    pub(crate) fn after_from(text: Option<String>) -> Result<Option<Row>, Error> {
        text.map(|text| {
            serde_json::from_str(&text).map_err(|e| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "the target's offstage_copy table holds a position Offstage cannot \
                         read ({e}): drop that table and copy into a new database"
                    ),
                )
            })
        })
        .transpose()
    }
}

/// An unfinished copy the target records: where it came from and how far each table got.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    pub(crate) source: String,
    /// By table name.
    pub(crate) tables: Vec<(String, Position)>,
}

/// A live node found in a database: it may still be writing.
#[derive(Clone, Debug)]
pub(crate) struct LiveNode {
    pub(crate) id: Uuid,
    pub(crate) host: String,
    pub(crate) pid: i64,
    pub(crate) heartbeat_at: DateTime<Utc>,
}

/// One of the two databases of a copy.
enum Database {
    #[cfg(feature = "sqlite")]
    Sqlite(super::sqlite::SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(super::postgres::PostgresStore),
}

/// Calls the backend's `copy` function `$f` with the store and the arguments.
macro_rules! on_backend {
    ($db:expr, $f:ident ( $($arg:expr),* )) => {
        match $db {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(store) => super::sqlite::copy::$f(store, $($arg),*).await,
            #[cfg(feature = "postgres")]
            Database::Postgres(store) => super::postgres::copy::$f(store, $($arg),*).await,
        }
    };
}

impl Database {
    /// Opens `text` (`sqlite:PATH`, a bare path, or a `postgres://` URL), migrating it. With
    /// `existing`, a database that is not there yet is an error instead of a new one.
    async fn open(text: &str, existing: bool, flag: &str) -> Result<(Database, String), Error> {
        #[cfg(feature = "postgres")]
        if super::postgres::is_postgres_url(text) {
            if existing && !super::postgres::copy::exists(text).await? {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "{flag} {}: there is no Offstage database there (no offstage_tasks \
                         table on its search_path): check the database and the \
                         options[search_path] in the URL",
                        super::postgres::copy::shown(text)
                    ),
                ));
            }
            let store = super::postgres::PostgresStore::open(text).await?;
            let name = super::postgres::copy::shown(text);
            return Ok((Database::Postgres(store), name));
        }
        #[cfg(feature = "sqlite")]
        {
            let path = text
                .strip_prefix("sqlite://")
                .or_else(|| text.strip_prefix("sqlite:"))
                .unwrap_or(text);
            if path.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "{flag} is empty: give a SQLite file (sqlite:offstage.db or a path) or \
                         a postgres:// URL"
                    ),
                ));
            }
            if existing && !std::path::Path::new(path).is_file() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "{flag} {path}: no such file: give the SQLite file the nodes used \
                         (their --db), or a postgres:// URL"
                    ),
                ));
            }
            let store = super::sqlite::SqliteStore::open(path).await?;
            let name = std::fs::canonicalize(path)
                .map(|p| format!("sqlite:{}", p.display()))
                .unwrap_or_else(|_| format!("sqlite:{path}"));
            Ok((Database::Sqlite(store), name))
        }
        #[cfg(not(feature = "sqlite"))]
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{flag} {text} is not a postgres:// URL, and this Offstage has no SQLite"),
        ))
    }

    async fn count(&self, table: &'static Table) -> Result<u64, Error> {
        on_backend!(self, count(table))
    }

    async fn read(
        &self,
        table: &'static Table,
        after: Option<Row>,
        limit: usize,
    ) -> Result<Vec<Row>, Error> {
        on_backend!(self, read(table, after, limit))
    }

    async fn write(
        &self,
        table: &'static Table,
        rows: Vec<Row>,
        position: Position,
    ) -> Result<(), Error> {
        on_backend!(self, write(table, rows, position))
    }

    async fn progress(&self) -> Result<Option<Progress>, Error> {
        on_backend!(self, progress())
    }

    async fn begin(&self, progress: Progress) -> Result<(), Error> {
        on_backend!(self, begin(progress))
    }

    async fn end(&self) -> Result<(), Error> {
        on_backend!(self, end())
    }

    async fn live_nodes(&self, now: DateTime<Utc>) -> Result<Vec<LiveNode>, Error> {
        on_backend!(self, live_nodes(now))
    }

    async fn task_count_errors(&self) -> Result<Vec<String>, Error> {
        on_backend!(self, task_count_errors())
    }
}

/// A copy from one Offstage database into another. [`DatabaseCopy::plan`] checks that it may go
/// ahead, [`DatabaseCopy::run`] does it.
pub struct DatabaseCopy {
    from: Database,
    to: Database,
    /// The source as the target's progress records it (a canonical path, or the URL without
    /// its password).
    source: String,
    target: String,
    into_non_empty: bool,
    force: bool,
    batch: usize,
}

impl fmt::Debug for DatabaseCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseCopy")
            .field("from", &self.source)
            .field("to", &self.target)
            .finish()
    }
}

/// What [`DatabaseCopy::plan`] found: what there is to copy and whether it resumes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Plan {
    /// True when the target holds an unfinished copy from this source, which this one
    /// finishes.
    pub resuming: bool,
    /// Per table: its name, the source's rows, and those already copied.
    pub tables: Vec<(&'static str, u64, u64)>,
    progress: Progress,
}

/// How far a copy has got, handed to [`DatabaseCopy::run`]'s callback after each page.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CopyProgress {
    /// The table being copied.
    pub table: &'static str,
    /// Its rows copied so far (this run's and an earlier one's).
    pub copied: u64,
    /// Its rows in the source.
    pub total: u64,
}

/// The count check at the end of a copy, per table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableCount {
    /// The table.
    pub table: &'static str,
    /// Rows in the source.
    pub source: u64,
    /// Rows the copy added to the target: its rows now less those it had before.
    pub copied: u64,
}

/// What a finished copy counted.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CopyReport {
    /// Per table, source against target.
    pub tables: Vec<TableCount>,
    /// Task counts by type and status that the target keeps and that disagree with its tasks
    /// (none when all is well).
    pub count_errors: Vec<String>,
}

impl CopyReport {
    /// True when every table's count matches and the target's task counts agree with its
    /// tasks.
    pub fn matches(&self) -> bool {
        self.count_errors.is_empty() && self.tables.iter().all(|t| t.source == t.copied)
    }
}

impl DatabaseCopy {
    /// Opens the source `from` (which must exist) and the target `to` (created if missing),
    /// each `sqlite:PATH`, a bare path, or a `postgres://` URL, and migrates both to this
    /// Offstage's schema.
    pub async fn open(from: &str, to: &str) -> Result<DatabaseCopy, Error> {
        let (from, source) = Database::open(from, true, "--from").await?;
        let (to, target) = Database::open(to, false, "--to").await?;
        if source == target {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("--from and --to are the same database ({source}): give another --to"),
            ));
        }
        Ok(DatabaseCopy {
            from,
            to,
            source,
            target,
            into_non_empty: false,
            force: false,
            batch: DEFAULT_BATCH,
        })
    }

    /// Copies into a target that already holds tasks or other rows, keeping them; rows whose
    /// key it already has are left as they are.
    pub fn into_non_empty(mut self, yes: bool) -> Self {
        self.into_non_empty = yes;
        self
    }

    /// Copies even from a source with nodes that heartbeat within [`LIVE_WITHIN`].
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }

    /// Rows per page, each written in one transaction (default [`DEFAULT_BATCH`]).
    pub fn batch(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
        self
    }

    /// The source, as messages name it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The target, as messages name it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Checks that the copy may go ahead, and counts what it will copy: refuses a source with
    /// live nodes (unless [`DatabaseCopy::force`]) or an unfinished copy of its own (it is
    /// only part of another database), a target with an unfinished copy from another
    /// source, and a target that holds data (unless [`DatabaseCopy::into_non_empty`]). A target with
    /// an unfinished copy from this source is resumed.
    pub async fn plan(&self) -> Result<Plan, Error> {
        let live = self.from.live_nodes(Utc::now()).await?;
        if !live.is_empty() && !self.force {
            let nodes: Vec<String> = live
                .iter()
                .map(|n| {
                    format!(
                        "{} (pid {} on {}, last heartbeat {})",
                        n.id,
                        n.pid,
                        n.host,
                        n.heartbeat_at.format("%H:%M:%S UTC")
                    )
                })
                .collect();
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} has {} running node(s): {}. Stop every node on it first, so that \
                     nothing changes during the copy (a node that was killed counts as running \
                     until {}s after its last heartbeat); or pass --force to copy anyway",
                    self.source,
                    live.len(),
                    nodes.join(", "),
                    LIVE_WITHIN.as_secs()
                ),
            ));
        }
        if let Some(unfinished) = self.from.progress().await? {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} is itself an unfinished copy from {}: finish that copy first (run it \
                     again), then copy from it",
                    self.source, unfinished.source
                ),
            ));
        }
        let mut tables = Vec::new();
        let progress = match self.to.progress().await? {
            Some(progress) if progress.source == self.source => progress,
            Some(progress) => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "{} holds an unfinished copy from {}: run the copy from that source \
                         again to finish it, or copy {} into another database",
                        self.target, progress.source, self.source
                    ),
                ));
            }
            None => {
                let mut progress = Progress {
                    source: self.source.clone(),
                    tables: Vec::new(),
                };
                let mut held = Vec::new();
                for table in TABLES {
                    let before = self.to.count(table).await?;
                    if before > 0 {
                        held.push(format!("{before} {}", table.name));
                    }
                    progress.tables.push((
                        table.name.to_owned(),
                        Position {
                            before,
                            ..Position::default()
                        },
                    ));
                }
                if !held.is_empty() && !self.into_non_empty {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "{} is not empty (it holds {}): copy into an empty database (a new \
                             file, or a new schema with ?options[search_path]=NAME), or pass \
                             --into-non-empty to add the source's rows to these",
                            self.target,
                            held.join(", ")
                        ),
                    ));
                }
                for table in TABLES {
                    tables.push((table.name, self.from.count(table).await?, 0));
                }
                return Ok(Plan {
                    resuming: false,
                    tables,
                    progress,
                });
            }
        };
        for table in TABLES {
            let copied = position(&progress, table).copied;
            tables.push((table.name, self.from.count(table).await?, copied));
        }
        Ok(Plan {
            resuming: true,
            tables,
            progress,
        })
    }

    /// Copies every table from where `plan` found it, calling `on_progress` after each page,
    /// then counts both sides. The target's progress record is removed when the counts
    /// match, and kept (so the same copy can be run again) when they do not.
    pub async fn run(
        &self,
        plan: &Plan,
        mut on_progress: impl FnMut(&CopyProgress),
    ) -> Result<CopyReport, Error> {
        if !plan.resuming {
            self.to.begin(plan.progress.clone()).await?;
        }
        let mut report = CopyReport {
            tables: Vec::new(),
            count_errors: Vec::new(),
        };
        for (table, (_, total, _)) in TABLES.iter().zip(&plan.tables) {
            let mut at = position(&plan.progress, table);
            on_progress(&CopyProgress {
                table: table.name,
                copied: at.copied,
                total: *total,
            });
            let mut page = self.page(table, at.after.clone()).await?;
            while !page.is_empty() {
                at.copied += page.len() as u64;
                at.after = page.last().map(|row| row[..table.key].to_vec());
                // The next page is read while this one is written.
                let (written, next) = tokio::join!(
                    self.to.write(table, page, at.clone()),
                    self.page(table, at.after.clone())
                );
                written?;
                page = next?;
                on_progress(&CopyProgress {
                    table: table.name,
                    copied: at.copied,
                    total: *total,
                });
            }
            report.tables.push(TableCount {
                table: table.name,
                source: self.from.count(table).await?,
                copied: self.to.count(table).await?.saturating_sub(at.before),
            });
        }
        report.count_errors = self.to.task_count_errors().await?;
        if report.matches() {
            self.to.end().await?;
        }
        Ok(report)
    }

    /// The source's next page of `table` after the key `after`. For a table whose rows may
    /// share a key, a full page ends before the last key it reached, so a key's rows are never
    /// split between pages.
    async fn page(&self, table: &'static Table, after: Option<Row>) -> Result<Vec<Row>, Error> {
        let mut rows = self.from.read(table, after, self.batch).await?;
        if !table.unique && rows.len() == self.batch {
            let last = rows[rows.len() - 1][..table.key].to_vec();
            let whole = rows
                .iter()
                .rposition(|row| row[..table.key] != last[..])
                .map_or(0, |i| i + 1);
            if whole == 0 {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "{} has more than {} rows with one key: copy with a larger batch",
                        table.name, self.batch
                    ),
                ));
            }
            rows.truncate(whole);
        }
        Ok(rows)
    }
}

fn position(progress: &Progress, table: &Table) -> Position {
    progress
        .tables
        .iter()
        .find(|(name, _)| name == table.name)
        .map(|(_, at)| at.clone())
        .unwrap_or_default()
}

/// The progress record read from `offstage_copy`'s rows, the same on both backends.
pub(crate) fn progress_from(
    rows: Vec<(String, String, Option<String>, i64, i64)>,
) -> Result<Progress, Error> {
    let mut progress = Progress::default();
    for (table, source, after, copied, before) in rows {
        progress.source = source;
        progress.tables.push((
            table,
            Position {
                after: Position::after_from(after)?,
                copied: copied as u64,
                before: before as u64,
            },
        ));
    }
    Ok(progress)
}

/// Each (type, status) whose kept count is not its number of tasks, as a sentence.
pub(crate) fn count_errors(
    kept: HashMap<(String, String), i64>,
    actual: HashMap<(String, String), i64>,
) -> Vec<String> {
    let mut keys: Vec<&(String, String)> = kept.keys().chain(actual.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (k, a) = (
                kept.get(key).copied().unwrap_or(0),
                actual.get(key).copied().unwrap_or(0),
            );
            (k != a).then(|| format!("{} {}: counted {k}, stored {a}", key.0, key.1))
        })
        .collect()
}
