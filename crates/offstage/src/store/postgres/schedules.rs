//! Schedules in PostgreSQL: each function is one store step.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::pg_error;
use super::rows::TaskArrays;
use super::rows::{schedule_from_row, SCHEDULE_COLUMNS};
use super::tasks::live_with_key;
use crate::error::Error;
use crate::schedule::{Fired, Schedule, ScheduleRecord};
use crate::store::json_text;
use crate::task::TaskRecord;

/// A new schedule's `last_tick_at` is `now`, as is a changed cron expression's (never moving
/// it back): ticks are counted from when the schedule was declared, on every node alike.
pub(super) async fn put(
    pool: &PgPool,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<ScheduleRecord, Error> {
    let row = sqlx::query(&format!(
        "INSERT INTO offstage_schedules AS s (name, task_name, cron, args, options, paused, \
         last_tick_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, false, $6, $6, $6) \
         ON CONFLICT (name) DO UPDATE SET task_name = excluded.task_name, cron = excluded.cron, \
         args = excluded.args, options = excluded.options, updated_at = excluded.updated_at, \
         last_tick_at = CASE WHEN s.last_tick_at IS NULL OR s.cron <> excluded.cron \
         THEN greatest(s.last_tick_at, excluded.last_tick_at) ELSE s.last_tick_at END \
         RETURNING {SCHEDULE_COLUMNS}"
    ))
    .bind(&schedule.name)
    .bind(&schedule.task)
    .bind(&schedule.cron)
    .bind(json_text(&schedule.args))
    .bind(json_text(&schedule.options))
    .bind(now)
    .fetch_one(pool)
    .await
    .map_err(|e| pg_error("storing a schedule", e))?;
    schedule_from_row(&row).map_err(|e| pg_error("reading a schedule", e))
}

pub(super) async fn list(pool: &PgPool) -> Result<Vec<ScheduleRecord>, Error> {
    let failed = |e| pg_error("reading schedules", e);
    sqlx::query(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM offstage_schedules ORDER BY name"
    ))
    .fetch_all(pool)
    .await
    .map_err(failed)?
    .iter()
    .map(|row| schedule_from_row(row).map_err(failed))
    .collect()
}

pub(super) async fn pause(
    pool: &PgPool,
    name: &str,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<Option<ScheduleRecord>, Error> {
    let failed = |e| pg_error("pausing a schedule", e);
    let row = sqlx::query(&format!(
        "UPDATE offstage_schedules SET paused = $2, updated_at = $3, \
         last_tick_at = CASE WHEN $2 THEN last_tick_at ELSE greatest(last_tick_at, $3) END \
         WHERE name = $1 RETURNING {SCHEDULE_COLUMNS}"
    ))
    .bind(name)
    .bind(paused)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(failed)?;
    row.map(|row| schedule_from_row(&row).map_err(failed))
        .transpose()
}

pub(super) async fn delete(pool: &PgPool, name: &str) -> Result<bool, Error> {
    let deleted = sqlx::query("DELETE FROM offstage_schedules WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await
        .map_err(|e| pg_error("deleting a schedule", e))?;
    Ok(deleted.rows_affected() == 1)
}

pub(super) async fn fire(
    pool: &PgPool,
    name: &str,
    tick: DateTime<Utc>,
    task: &TaskRecord,
    unique: bool,
) -> Result<Fired, Error> {
    let failed = |e| pg_error("launching a scheduled task", e);
    let mut tx = pool.begin().await.map_err(failed)?;
    // The row lock this takes makes a racing node's update wait for our commit, then find
    // `last_tick_at` no longer before the tick: it updates nothing.
    let taken = sqlx::query(
        "UPDATE offstage_schedules SET last_tick_at = $2, last_task_id = $3 \
         WHERE name = $1 AND NOT paused AND (last_tick_at IS NULL OR last_tick_at < $2)",
    )
    .bind(name)
    .bind(tick)
    .bind(task.id.as_uuid())
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    if taken.rows_affected() == 0 {
        return Ok(Fired::NotFired);
    }
    if unique {
        if let Some(live) = live_with_key(&mut tx, task).await.map_err(failed)? {
            sqlx::query("UPDATE offstage_schedules SET last_task_id = $2 WHERE name = $1")
                .bind(name)
                .bind(live.id.as_uuid())
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            return Ok(Fired::Skipped(live.id));
        }
    }
    TaskArrays::from(task)
        .insert(&mut tx)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(Fired::Launched)
}
