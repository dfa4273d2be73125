//! `/api/schedules`: task types launched on the ticks of cron expressions. List them, create
//! or change one, pause and resume one, delete one. Each tick launches once across all nodes
//! (see `offstage::schedule`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use offstage::{LaunchOptions, OnConflict, Schedule, ScheduleRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{whole, Body, NamePath, Retired};
use crate::AppState;

/// Every schedule, by name.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleList {
    schedules: Vec<ScheduleRecord>,
}

/// `PUT /api/schedules/{name}`: what to launch, and when.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleRequest {
    /// `minute hour day-of-month month day-of-week` (UTC), or six fields with seconds first.
    cron: String,
    /// The task type to launch.
    task: String,
    /// The args of every launch (default `null`).
    #[serde(default)]
    #[schema(value_type = Object)]
    args: Value,
    /// Launch options of every launch.
    #[serde(default)]
    options: ScheduleOptions,
}

/// The launch options of a schedule's launches: a launch's, less `run_at` (the tick is the run
/// time) and `on_conflict: supersede` (it would kill the last launch at every tick).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleOptions {
    /// A key to find the launches by; with `on_conflict`, the key they share.
    key: Option<String>,
    /// With `key`: `reject` or `existing` skip a tick while the last launch is live.
    on_conflict: Option<String>,
    /// Who the launches belong to.
    owner: Option<String>,
    /// Higher runs first among queued tasks.
    #[serde(default, deserialize_with = "whole::option")]
    priority: Option<i32>,
    /// Fail a launch if it runs longer than this many seconds (fractions allowed), as a
    /// launch's `timeout_s`.
    timeout_s: Option<f64>,
    /// Refused: the timeout is `timeout_s`, in seconds (it was milliseconds here).
    #[serde(default)]
    #[schema(ignore)]
    timeout: Retired,
    /// Run each launch in a worker process of its own (or, with false, in-process).
    isolated: Option<bool>,
}

impl ScheduleOptions {
    /// The options as a launch takes them, or the 400 for a value a schedule cannot have.
    fn into_launch_options(self) -> Result<LaunchOptions, ApiError> {
        let options = self;
        options.timeout.refuse(
            "options.timeout",
            "give `options.timeout_s`, in seconds (`options.timeout` was milliseconds)",
        )?;
        Ok(LaunchOptions {
            key: options.key,
            owner: options.owner,
            priority: options.priority,
            timeout: super::tasks::timeout("options.timeout_s", options.timeout_s)?,
            run_at: None,
            isolated: options.isolated,
            // Read as a launch reads it: an unknown value is the same 400.
            on_conflict: options
                .on_conflict
                .as_deref()
                .map(str::parse::<OnConflict>)
                .transpose()?,
            // Each tick's key comes from the owner or the args, as its type says.
            concurrency_key: None,
        })
    }
}

/// Every schedule, with its next tick.
#[utoipa::path(get, path = "/api/schedules", tag = "schedules",
    responses((status = 200, body = ScheduleList), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let schedules = state.runtime.schedules().await?;
    Ok(Json(ScheduleList { schedules }))
}

/// One schedule (404 if there is none).
#[utoipa::path(get, path = "/api/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "the schedule's name")),
    responses((status = 200, body = ScheduleRecord), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    NamePath(name): NamePath,
) -> Result<Json<ScheduleRecord>, ApiError> {
    Ok(Json(state.runtime.schedule(&name).await?))
}

/// Creates or changes a schedule; an existing one stays paused if it was.
#[utoipa::path(put, path = "/api/schedules/{name}", tag = "schedules", request_body = ScheduleRequest,
    params(("name" = String, Path, description = "the schedule's name")),
    responses((status = 200, body = ScheduleRecord),
        (status = 400, description = "`invalid_argument`: `cron` is not a cron expression, or \
            `on_conflict` without `key`; `unknown_task_type`: `task` is no task type this server \
            runs or a worker serves; `invalid_timeout`; `retired_field`: `options.timeout` (give \
            `options.timeout_s`, in seconds)", body = crate::error::ErrorBody),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    NamePath(name): NamePath,
    Body(request): Body<ScheduleRequest>,
) -> Result<Json<ScheduleRecord>, ApiError> {
    let schedule = Schedule::new(name, request.cron, request.task)
        .args(request.args)
        .options(request.options.into_launch_options()?);
    Ok(Json(state.runtime.put_schedule(schedule).await?))
}

/// Pauses a schedule on every node: its ticks pass without launching.
#[utoipa::path(post, path = "/api/schedules/{name}/pause", tag = "schedules",
    params(("name" = String, Path, description = "the schedule's name")),
    responses((status = 200, body = ScheduleRecord), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    NamePath(name): NamePath,
) -> Result<Json<ScheduleRecord>, ApiError> {
    Ok(Json(state.runtime.pause_schedule(&name).await?))
}

/// Resumes a paused schedule from its next tick (missed ticks are not made up).
#[utoipa::path(post, path = "/api/schedules/{name}/resume", tag = "schedules",
    params(("name" = String, Path, description = "the schedule's name")),
    responses((status = 200, body = ScheduleRecord), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    NamePath(name): NamePath,
) -> Result<Json<ScheduleRecord>, ApiError> {
    Ok(Json(state.runtime.resume_schedule(&name).await?))
}

/// Deletes a schedule; the tasks it launched stay.
#[utoipa::path(delete, path = "/api/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "the schedule's name")),
    responses((status = 204), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    NamePath(name): NamePath,
) -> Result<StatusCode, ApiError> {
    state.runtime.delete_schedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
