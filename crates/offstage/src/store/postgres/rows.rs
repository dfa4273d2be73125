//! Mapping between rows and records: `offstage_tasks` rows and [`TaskRecord`]s (tasks and log
//! lines made into arrays, to insert many in one statement), and schedule rows.

use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::schedule::ScheduleRecord;
use crate::store::json_text;
use crate::task::{millis, whole_millis, TaskRecord};

/// The columns every task query selects, in the order [`task_from_row`] reads them.
pub(super) const TASK_COLUMNS: &str = "id, name, args, status, state, return_value, error, \
    launched_at, run_at, started_at, finished_at, attempt, priority, task_key, owner, timeout_ms, node, \
    isolated, rerun_of, parent, detached, checkpoint, checkpoint_at, waiting_for, waiting_until, concurrency_key, traceparent, tracestate";

fn bad_column(index: usize, error: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: format!("column {index} is not valid: {error}").into(),
    }
}

fn json<T: serde::de::DeserializeOwned>(row: &PgRow, index: usize) -> sqlx::Result<T> {
    let text: &str = row.try_get(index)?;
    serde_json::from_str(text).map_err(|e| bad_column(index, e))
}

fn json_opt<T: serde::de::DeserializeOwned>(row: &PgRow, index: usize) -> sqlx::Result<Option<T>> {
    match row.try_get::<Option<&str>, _>(index)? {
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| bad_column(index, e)),
        None => Ok(None),
    }
}

pub(super) fn task_from_row(row: &PgRow) -> sqlx::Result<TaskRecord> {
    let status: &str = row.try_get(3)?;
    Ok(TaskRecord {
        id: row.try_get::<Uuid, _>(0)?.into(),
        name: row.try_get(1)?,
        args: json(row, 2)?,
        status: status.parse().map_err(|e| bad_column(3, e))?,
        state: json(row, 4)?,
        return_value: json_opt(row, 5)?,
        error: json_opt(row, 6)?,
        launched_at: row.try_get(7)?,
        run_at: row.try_get(8)?,
        started_at: row.try_get(9)?,
        finished_at: row.try_get(10)?,
        attempt: row.try_get::<i32, _>(11)? as u32,
        priority: row.try_get(12)?,
        key: row.try_get(13)?,
        owner: row.try_get(14)?,
        timeout: row.try_get::<Option<i64>, _>(15)?.map(millis),
        node: row.try_get::<Option<Uuid>, _>(16)?.map(Into::into),
        isolated: row.try_get(17)?,
        rerun_of: row.try_get::<Option<Uuid>, _>(18)?.map(Into::into),
        parent: row.try_get::<Option<Uuid>, _>(19)?.map(Into::into),
        detached: row.try_get(20)?,
        checkpoint: json_opt(row, 21)?,
        checkpoint_at: row.try_get(22)?,
        waiting_for: row.try_get(23)?,
        waiting_until: row.try_get(24)?,
        concurrency_key: row.try_get(25)?,
        traceparent: row.try_get(26)?,
        tracestate: row.try_get(27)?,
    })
}

/// A task's columns as arrays, one element per task, for inserting many in one statement.
#[derive(Default)]
pub(super) struct TaskArrays {
    pub(super) id: Vec<Uuid>,
    pub(super) name: Vec<String>,
    pub(super) args: Vec<String>,
    pub(super) status: Vec<&'static str>,
    pub(super) state: Vec<String>,
    pub(super) launched_at: Vec<chrono::DateTime<chrono::Utc>>,
    pub(super) run_at: Vec<chrono::DateTime<chrono::Utc>>,
    pub(super) started_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    pub(super) attempt: Vec<i32>,
    pub(super) priority: Vec<i32>,
    pub(super) key: Vec<Option<String>>,
    pub(super) owner: Vec<Option<String>>,
    pub(super) timeout_ms: Vec<Option<i64>>,
    pub(super) node: Vec<Option<Uuid>>,
    pub(super) isolated: Vec<bool>,
    pub(super) rerun_of: Vec<Option<Uuid>>,
    pub(super) parent: Vec<Option<Uuid>>,
    pub(super) detached: Vec<bool>,
    pub(super) checkpoint: Vec<Option<String>>,
    pub(super) checkpoint_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    pub(super) concurrency_key: Vec<Option<String>>,
    pub(super) traceparent: Vec<Option<String>>,
    pub(super) tracestate: Vec<Option<String>>,
}

/// Inserts every task in `arrays`, and counts them (see `counts.rs`).
pub(super) static INSERT_TASKS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH changed AS (INSERT INTO offstage_tasks (id, name, args, status, state, \
         launched_at, run_at, started_at, attempt, priority, task_key, owner, timeout_ms, node, \
         isolated, rerun_of, parent, detached, checkpoint, checkpoint_at, concurrency_key, \
         traceparent, tracestate) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::int4[], $10::int4[], \
         $11::text[], $12::text[], $13::int8[], $14::uuid[], $15::bool[], $16::uuid[], \
         $17::uuid[], $18::bool[], $19::text[], $20::timestamptz[], $21::text[], $22::text[], \
         $23::text[]) \
         RETURNING name, status), {} \
         SELECT 1 FROM changed",
        super::counts::count_change(super::counts::Change::Insert)
    )
});

impl TaskArrays {
    pub(super) fn push(&mut self, task: &TaskRecord) {
        self.id.push(task.id.as_uuid());
        self.name.push(task.name.clone());
        self.args.push(json_text(&task.args));
        self.status.push(task.status.as_str());
        self.state.push(json_text(&task.state));
        self.launched_at.push(task.launched_at);
        self.run_at.push(task.run_at);
        self.started_at.push(task.started_at);
        self.attempt.push(task.attempt as i32);
        self.priority.push(task.priority);
        self.key.push(task.key.clone());
        self.owner.push(task.owner.clone());
        self.timeout_ms
            .push(task.timeout.map(|t| whole_millis(t) as i64));
        self.node.push(task.node.map(|n| n.as_uuid()));
        self.isolated.push(task.isolated);
        self.rerun_of.push(task.rerun_of.map(|id| id.as_uuid()));
        self.parent.push(task.parent.map(|id| id.as_uuid()));
        self.detached.push(task.detached);
        self.checkpoint
            .push(task.checkpoint.as_ref().map(json_text));
        self.checkpoint_at.push(
            task.checkpoint
                .as_ref()
                .map(|_| task.checkpoint_at.unwrap_or(task.launched_at)),
        );
        self.concurrency_key.push(task.concurrency_key.clone());
        self.traceparent.push(task.traceparent.clone());
        self.tracestate.push(task.tracestate.clone());
    }

    pub(super) fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    pub(super) async fn insert(
        self,
        conn: &mut sqlx::PgConnection,
    ) -> sqlx::Result<sqlx::postgres::PgQueryResult> {
        sqlx::query(&INSERT_TASKS)
            .bind(self.id)
            .bind(self.name)
            .bind(self.args)
            .bind(self.status)
            .bind(self.state)
            .bind(self.launched_at)
            .bind(self.run_at)
            .bind(self.started_at)
            .bind(self.attempt)
            .bind(self.priority)
            .bind(self.key)
            .bind(self.owner)
            .bind(self.timeout_ms)
            .bind(self.node)
            .bind(self.isolated)
            .bind(self.rerun_of)
            .bind(self.parent)
            .bind(self.detached)
            .bind(self.checkpoint)
            .bind(self.checkpoint_at)
            .bind(self.concurrency_key)
            .bind(self.traceparent)
            .bind(self.tracestate)
            .execute(conn)
            .await
    }
}

/// One task's insert, as the group commit does it (for the launches outside it: a keyed
/// launch, a schedule's tick, a launch in the app's transaction).
impl From<&TaskRecord> for TaskArrays {
    fn from(task: &TaskRecord) -> Self {
        let mut arrays = TaskArrays::default();
        arrays.push(task);
        arrays
    }
}

/// Log lines as arrays, for inserting many in one statement.
#[derive(Default)]
pub(super) struct LogArrays {
    task_id: Vec<Uuid>,
    seq: Vec<i64>,
    at: Vec<chrono::DateTime<chrono::Utc>>,
    level: Vec<&'static str>,
    message: Vec<String>,
}

impl LogArrays {
    pub(super) fn push(&mut self, task: crate::TaskId, lines: &[crate::LogLine]) {
        for line in lines {
            self.task_id.push(task.as_uuid());
            self.seq.push(line.seq as i64);
            self.at.push(line.at);
            self.level.push(line.level.as_str());
            self.message.push(line.message.clone());
        }
    }

    /// Inserts the lines. With `running_on`, only those of tasks still running on that node
    /// (fenced: a node writes only about its own tasks); the others' are dropped.
    pub(super) async fn insert(
        self,
        conn: &mut sqlx::PgConnection,
        running_on: Option<crate::id::NodeId>,
    ) -> sqlx::Result<()> {
        if self.task_id.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO offstage_logs (task_id, seq, at, level, message) \
             SELECT l.* FROM unnest($1::uuid[], $2::int8[], $3::timestamptz[], $4::text[], \
                                    $5::text[]) AS l(task_id, seq, at, level, message) \
             WHERE $6::uuid IS NULL OR EXISTS (SELECT 1 FROM offstage_tasks t \
                 WHERE t.id = l.task_id AND t.node = $6 AND t.status = 'running') \
             ON CONFLICT DO NOTHING",
        )
        .bind(self.task_id)
        .bind(self.seq)
        .bind(self.at)
        .bind(self.level)
        .bind(self.message)
        .bind(running_on.map(|node| node.as_uuid()))
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// The columns every schedule query selects, in the order [`schedule_from_row`] reads them.
pub(super) const SCHEDULE_COLUMNS: &str = "name, cron, task_name, args, options, paused, \
    last_tick_at, last_task_id, created_at, updated_at";

pub(super) fn schedule_from_row(row: &PgRow) -> sqlx::Result<ScheduleRecord> {
    Ok(ScheduleRecord {
        name: row.try_get(0)?,
        cron: row.try_get(1)?,
        task: row.try_get(2)?,
        args: json(row, 3)?,
        options: json(row, 4)?,
        paused: row.try_get(5)?,
        last_tick_at: row.try_get(6)?,
        last_task_id: row.try_get::<Option<Uuid>, _>(7)?.map(Into::into),
        next_tick_at: None,
        created_at: row.try_get(8)?,
        updated_at: row.try_get(9)?,
    })
}
