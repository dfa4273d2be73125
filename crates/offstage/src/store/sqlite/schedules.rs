//! Schedules in SQLite: a schedule is a row of `offstage_schedules`, a cron expression that
//! launches a task at each tick. Each function is one store step, run by the writer (or a
//! reader).

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::rows::{micros, schedule_from_row, NewTask, SCHEDULE_COLUMNS};
use super::tasks::live_with_key;
use super::SqliteStore;
use crate::error::Error;
use crate::schedule::{Fired, Schedule, ScheduleRecord};
use crate::store::json_text;
use crate::task::TaskRecord;

/// A new schedule's `last_tick_at` is `now`, as is a changed cron expression's (never moving
/// it back): ticks are counted from when the schedule was declared, on every node alike.
pub(super) async fn put(
    store: &SqliteStore,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<ScheduleRecord, Error> {
    let schedule = schedule.clone();
    store
        .write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO offstage_schedules (name, task_name, cron, args, options, paused, \
                 last_tick_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6, ?6) \
                 ON CONFLICT (name) DO UPDATE SET task_name = excluded.task_name, cron = excluded.cron, \
                 args = excluded.args, options = excluded.options, updated_at = excluded.updated_at, \
                 last_tick_at = CASE WHEN last_tick_at IS NULL OR cron <> excluded.cron \
                 THEN max(coalesce(last_tick_at, excluded.last_tick_at), excluded.last_tick_at) \
                 ELSE last_tick_at END \
                 RETURNING {SCHEDULE_COLUMNS}"
            ))?
            .query_row(
                params![
                    schedule.name,
                    schedule.task,
                    schedule.cron,
                    json_text(&schedule.args),
                    json_text(&schedule.options),
                    micros(now)
                ],
                schedule_from_row,
            )
        })
        .await
}

pub(super) async fn list(store: &SqliteStore) -> Result<Vec<ScheduleRecord>, Error> {
    store
        .read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {SCHEDULE_COLUMNS} FROM offstage_schedules ORDER BY name"
            ))?
            .query_map([], schedule_from_row)?
            .collect()
        })
        .await
}

pub(super) async fn pause(
    store: &SqliteStore,
    name: &str,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<Option<ScheduleRecord>, Error> {
    let name = name.to_owned();
    store
        .write(move |conn| {
            conn.prepare_cached(&format!(
                "UPDATE offstage_schedules SET paused = ?2, updated_at = ?3, \
                 last_tick_at = CASE WHEN ?2 THEN last_tick_at ELSE max(coalesce(last_tick_at, ?3), ?3) END \
                 WHERE name = ?1 RETURNING {SCHEDULE_COLUMNS}"
            ))?
            .query_row(params![name, paused, micros(now)], schedule_from_row)
            .optional()
        })
        .await
}

pub(super) async fn delete(store: &SqliteStore, name: &str) -> Result<bool, Error> {
    let name = name.to_owned();
    store
        .write(move |conn| {
            Ok(conn
                .prepare_cached("DELETE FROM offstage_schedules WHERE name = ?1")?
                .execute([name])?
                == 1)
        })
        .await
}

/// Inside the writer's `BEGIN IMMEDIATE` batch: no other process can write between the check
/// of `last_tick_at` and the insert.
pub(super) async fn fire(
    store: &SqliteStore,
    name: &str,
    tick: DateTime<Utc>,
    task: &TaskRecord,
    unique: bool,
) -> Result<Fired, Error> {
    let (name, task) = (name.to_owned(), NewTask::from(task));
    store
        .write_counted(move |conn, tally| {
            let taken = conn
                .prepare_cached(
                    "UPDATE offstage_schedules SET last_tick_at = ?2, last_task_id = ?3 \
                     WHERE name = ?1 AND paused = 0 AND (last_tick_at IS NULL OR last_tick_at < ?2)",
                )?
                .execute(params![name, micros(tick), task.id])?;
            if taken == 0 {
                return Ok(Fired::NotFired);
            }
            if unique {
                if let Some(live) = live_with_key(conn, &task.name, task.key.as_deref())? {
                    conn.prepare_cached(
                        "UPDATE offstage_schedules SET last_task_id = ?2 WHERE name = ?1",
                    )?
                    .execute(params![name, live.id])?;
                    return Ok(Fired::Skipped(live.id));
                }
            }
            task.insert(conn, tally)?;
            Ok(Fired::Launched)
        })
        .await
}
