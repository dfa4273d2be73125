//! `/api/tasks`: launch, list, show, kill, logs, purge; `/api/task-types`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use offstage::{LaunchOptions, ListFilter, LogLine, Status, TaskId, TaskRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::{Body, Query, TaskIdPath};
use crate::AppState;

/// A task as the API shows it: every field of the record, plus the derived ones.
#[derive(Debug, Serialize)]
pub struct TaskView {
    #[serde(flatten)]
    record: TaskRecord,
    termination_status: Option<Status>,
    is_running: bool,
}

impl From<TaskRecord> for TaskView {
    fn from(record: TaskRecord) -> Self {
        Self {
            termination_status: record.termination_status(),
            is_running: record.is_running(),
            record,
        }
    }
}

/// `POST /api/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchRequest {
    name: String,
    #[serde(default)]
    args: Value,
    key: Option<String>,
    on_conflict: Option<String>,
    timeout_s: Option<f64>,
    priority: Option<i32>,
    run_at: Option<DateTime<Utc>>,
    owner: Option<String>,
}

pub(crate) async fn launch(
    State(state): State<AppState>,
    Body(request): Body<LaunchRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if request.on_conflict.is_some() {
        return Err(ApiError::bad_request(
            "unsupported",
            "on_conflict is not supported by this server yet: launch without it",
        ));
    }
    let timeout = match request.timeout_s {
        None => None,
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 => {
            Some(Duration::from_secs_f64(seconds))
        }
        Some(seconds) => {
            return Err(ApiError::bad_request(
                "invalid_timeout",
                format!(
                    "timeout_s is {seconds}: give a positive number of seconds, or leave it out"
                ),
            ))
        }
    };
    let options = LaunchOptions {
        key: request.key,
        owner: request.owner,
        priority: request.priority,
        timeout,
        run_at: request.run_at,
    };
    let task = state
        .runtime
        .launch_json(&request.name, request.args)
        .options(options)
        .await?;
    let record = task.record().await?;
    Ok((StatusCode::CREATED, Json(TaskView::from(record))))
}

/// `GET /api/tasks` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    name: Option<String>,
    status: Option<String>,
    owner: Option<String>,
    key: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

/// A page of tasks, newest first.
#[derive(Debug, Serialize)]
pub struct TaskPage {
    tasks: Vec<TaskView>,
    /// Pass as `before` for the next page; `null` on the last page.
    next_before: Option<TaskId>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    let status = query
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()?;
    let before = query
        .before
        .as_deref()
        .map(str::parse::<TaskId>)
        .transpose()?;
    if let Some(limit) = query.limit {
        if limit == 0 || limit > ListFilter::MAX_LIMIT {
            return Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit is {limit}: use 1 to {}", ListFilter::MAX_LIMIT),
            ));
        }
    }
    let filter = ListFilter {
        name: query.name,
        status,
        owner: query.owner,
        key: query.key,
        before,
        limit: query.limit,
    };
    let tasks = state.runtime.list(&filter).await?;
    let next_before = (tasks.len() == filter.effective_limit())
        .then(|| tasks.last().map(|t| t.id))
        .flatten();
    Ok(Json(TaskPage {
        tasks: tasks.into_iter().map(TaskView::from).collect(),
        next_before,
    }))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<TaskView>, ApiError> {
    Ok(Json(state.runtime.record(id).await?.into()))
}

/// `POST /api/tasks/{id}/kill` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillRequest {
    grace_ms: Option<u64>,
}

pub(crate) async fn kill(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The body is optional: empty means the runtime's grace period.
    let request: KillRequest = if body.iter().all(u8::is_ascii_whitespace) {
        KillRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("{e}: the kill body is optional; if given it is {{\"grace_ms\": 1000}}"),
            )
        })?
    };
    let record = state.runtime.record(id).await?;
    if record.status.is_terminal() {
        return Ok((StatusCode::OK, Json(TaskView::from(record))));
    }
    let runtime = state.runtime.clone();
    // The kill runs on; the answer does not wait for the grace period.
    tokio::spawn(async move {
        let result = match request.grace_ms {
            Some(ms) => runtime.kill_with_grace(id, Duration::from_millis(ms)).await,
            None => runtime.kill(id).await,
        };
        if let Err(error) = result {
            tracing::warn!(task = %id, %error, "kill failed");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(TaskView::from(record))))
}

/// `GET /api/tasks/{id}/logs` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// Log lines in order.
#[derive(Debug, Serialize)]
pub struct LogPage {
    lines: Vec<LogLine>,
    /// Pass as `after` for the next lines.
    next_after: u64,
}

pub(crate) async fn logs(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
    Query(query): Query<LogsQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let limit = query.limit.unwrap_or(1_000);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit is {limit}: use 1 to 10000"),
        ));
    }
    let lines = state.runtime.logs(id, query.after, limit).await?;
    let next_after = lines.last().map_or(query.after, |line| line.seq);
    Ok(Json(LogPage { lines, next_after }))
}

/// `DELETE /api/tasks` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeQuery {
    finished_before: Option<DateTime<Utc>>,
}

pub(crate) async fn purge(
    State(state): State<AppState>,
    Query(query): Query<PurgeQuery>,
) -> Result<Json<Value>, ApiError> {
    let Some(before) = query.finished_before else {
        return Err(ApiError::bad_request(
            "missing_finished_before",
            "say which tasks to purge with ?finished_before=2026-11-01T00:00:00Z (RFC 3339)",
        ));
    };
    let purged = state.runtime.purge(before).await?;
    Ok(Json(serde_json::json!({ "purged": purged })))
}

pub(crate) async fn task_types(State(state): State<AppState>) -> Json<Value> {
    let types: Vec<Value> = state
        .runtime
        .task_types()
        .into_iter()
        .map(|name| serde_json::json!({ "name": name, "workers": ["in-process"] }))
        .collect();
    Json(serde_json::json!({ "task_types": types }))
}
