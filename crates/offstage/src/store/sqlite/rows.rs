//! Mapping between rows and records: `offstage_tasks` rows and [`TaskRecord`]s (a new task
//! made into SQL values, [`NewTask`]; log lines inserted, [`insert_logs`]), and schedule rows.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Row};

use super::counts::Tally;
use crate::id::{NodeId, TaskId};
use crate::log::LogLine;
use crate::schedule::ScheduleRecord;
use crate::status::Status;
use crate::store::json_text;
use crate::task::{millis, whole_millis, TaskRecord};

/// The columns every task query selects, in the order [`task_from_row`] reads them.
pub(super) const TASK_COLUMNS: &str = "id, name, args, status, state, return_value, error, \
    launched_at, run_at, started_at, finished_at, attempt, priority, task_key, owner, timeout_ms, node, \
    isolated, rerun_of, parent, detached, checkpoint, checkpoint_at, waiting_for, waiting_until, concurrency_key, traceparent, tracestate";

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn bad_column(index: usize, what: &str, error: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("column {index} is not a valid {what}: {error}").into(),
    )
}

fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| bad_column(index, "JSON value", e))
}

fn json_opt<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<T>> {
    match row.get::<_, Option<String>>(index)? {
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| bad_column(index, "JSON value", e)),
        None => Ok(None),
    }
}

fn parsed<T: std::str::FromStr<Err = crate::Error>>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    text.parse().map_err(|e| bad_column(index, "value", e))
}

pub(super) fn task_from_row(row: &Row<'_>) -> rusqlite::Result<TaskRecord> {
    Ok(TaskRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        args: json(row, 2)?,
        status: parsed(row, 3)?,
        state: json(row, 4)?,
        return_value: json_opt(row, 5)?,
        error: json_opt(row, 6)?,
        launched_at: from_micros(row.get(7)?),
        run_at: from_micros(row.get(8)?),
        started_at: row.get::<_, Option<i64>>(9)?.map(from_micros),
        finished_at: row.get::<_, Option<i64>>(10)?.map(from_micros),
        attempt: row.get(11)?,
        priority: row.get(12)?,
        key: row.get(13)?,
        owner: row.get(14)?,
        timeout: row.get::<_, Option<i64>>(15)?.map(millis),
        node: row.get(16)?,
        isolated: row.get(17)?,
        rerun_of: row.get(18)?,
        parent: row.get(19)?,
        detached: row.get(20)?,
        checkpoint: json_opt(row, 21)?,
        checkpoint_at: row.get::<_, Option<i64>>(22)?.map(from_micros),
        waiting_for: row.get(23)?,
        waiting_until: row.get::<_, Option<i64>>(24)?.map(from_micros),
        concurrency_key: row.get(25)?,
        traceparent: row.get(26)?,
        tracestate: row.get(27)?,
    })
}

/// Ids are stored as their 16 UUID bytes: a third of the text form, in every index that
/// carries them, and in the same (time) order.
macro_rules! blob_id {
    ($id:ty) => {
        impl rusqlite::ToSql for $id {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::Owned(
                    rusqlite::types::Value::Blob(self.as_uuid().as_bytes().to_vec()),
                ))
            }
        }

        impl rusqlite::types::FromSql for $id {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let bytes = value.as_blob()?;
                uuid::Uuid::from_slice(bytes)
                    .map(<$id>::from)
                    .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

blob_id!(crate::id::TaskId);
blob_id!(crate::id::NodeId);
blob_id!(crate::id::ActionId);

/// The columns every schedule query selects, in the order [`schedule_from_row`] reads them.
pub(super) const SCHEDULE_COLUMNS: &str = "name, cron, task_name, args, options, paused, \
    last_tick_at, last_task_id, created_at, updated_at";

pub(super) fn schedule_from_row(row: &Row<'_>) -> rusqlite::Result<ScheduleRecord> {
    Ok(ScheduleRecord {
        name: row.get(0)?,
        cron: row.get(1)?,
        task: row.get(2)?,
        args: json(row, 3)?,
        options: json(row, 4)?,
        paused: row.get(5)?,
        last_tick_at: row.get::<_, Option<i64>>(6)?.map(from_micros),
        last_task_id: row.get(7)?,
        next_tick_at: None,
        created_at: from_micros(row.get(8)?),
        updated_at: from_micros(row.get(9)?),
    })
}

/// A new task's columns as SQL values, made on the caller's thread so the writer only runs SQL.
pub(super) struct NewTask {
    pub(super) id: TaskId,
    pub(super) name: String,
    args: String,
    status: Status,
    state: String,
    times: (i64, i64, Option<i64>),
    attempt: u32,
    priority: i32,
    pub(super) key: Option<String>,
    owner: Option<String>,
    timeout_ms: Option<i64>,
    node: Option<NodeId>,
    isolated: bool,
    rerun_of: Option<TaskId>,
    parent: Option<TaskId>,
    detached: bool,
    checkpoint: Option<(String, i64)>,
    concurrency_key: Option<String>,
    trace: (Option<String>, Option<String>),
}

impl From<&TaskRecord> for NewTask {
    fn from(task: &TaskRecord) -> Self {
        Self {
            id: task.id,
            name: task.name.clone(),
            args: json_text(&task.args),
            status: task.status,
            state: json_text(&task.state),
            times: (
                micros(task.launched_at),
                micros(task.run_at),
                task.started_at.map(micros),
            ),
            attempt: task.attempt,
            priority: task.priority,
            key: task.key.clone(),
            owner: task.owner.clone(),
            timeout_ms: task.timeout.map(|t| whole_millis(t) as i64),
            node: task.node,
            isolated: task.isolated,
            rerun_of: task.rerun_of,
            parent: task.parent,
            detached: task.detached,
            checkpoint: task.checkpoint.as_ref().map(|value| {
                (
                    json_text(value),
                    micros(task.checkpoint_at.unwrap_or(task.launched_at)),
                )
            }),
            concurrency_key: task.concurrency_key.clone(),
            trace: (task.traceparent.clone(), task.tracestate.clone()),
        }
    }
}

impl NewTask {
    /// Inserts the task, and counts it in `tally`.
    pub(super) fn insert(&self, conn: &Connection, tally: &mut Tally) -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO offstage_tasks (id, name, args, status, state, launched_at, run_at, \
             started_at, attempt, priority, task_key, owner, timeout_ms, node, isolated, \
             rerun_of, parent, detached, checkpoint, checkpoint_at, concurrency_key, traceparent, \
             tracestate) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, ?20, ?21, ?22, ?23)",
        )?
        .execute(params![
            self.id,
            self.name,
            self.args,
            self.status.as_str(),
            self.state,
            self.times.0,
            self.times.1,
            self.times.2,
            self.attempt,
            self.priority,
            self.key,
            self.owner,
            self.timeout_ms,
            self.node,
            self.isolated,
            self.rerun_of,
            self.parent,
            self.detached,
            self.checkpoint.as_ref().map(|c| &c.0),
            self.checkpoint.as_ref().map(|c| c.1),
            self.concurrency_key,
            self.trace.0,
            self.trace.1,
        ])?;
        tally.add(&self.name, self.status, 1);
        Ok(())
    }
}

/// Inserts `logs`, lines of task `id`; a line already there (same task and `seq`) is kept.
pub(super) fn insert_logs(conn: &Connection, id: TaskId, logs: &[LogLine]) -> rusqlite::Result<()> {
    if logs.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO offstage_logs (task_id, seq, at, level, message) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for line in logs {
        insert.execute(params![
            id,
            line.seq as i64,
            micros(line.at),
            line.level.as_str(),
            line.message
        ])?;
    }
    Ok(())
}
