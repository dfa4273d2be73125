//! `/api/tasks`: launch, list, show, kill, logs, purge; `/api/task-types`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use offstage::{LaunchOptions, ListFilter, LogLine, OnConflict, Status, TaskId, TaskRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Access;
use crate::error::ApiError;
use crate::extract::{Body, Query, Retired, TaskIdPath};
use crate::scoped::Scope;
use crate::AppState;

/// A task as the API shows it: every field of the record, plus the derived ones.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskView {
    #[serde(flatten)]
    record: TaskRecord,
    /// `null` while queued or running, then how it ended.
    termination_status: Option<Status>,
    /// True while queued or running.
    is_running: bool,
    /// Why it waits (queued), or why it still runs after a kill (`kill_overdue`): only in
    /// `GET /api/tasks/{id}` with a role token, absent when there is nothing to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting: Option<offstage::Waiting>,
    /// The id of the trace the task was launched in (32 lowercase hex digits), read from
    /// `traceparent`: the W3C trace context current at launch (the `traceparent` header of
    /// `POST /api/tasks`, the launching task's, or the launching app's span). With
    /// OpenTelemetry on, each attempt of the task is a span in this trace. `null` when the
    /// launch had no trace context.
    trace_id: Option<String>,
}

impl From<TaskRecord> for TaskView {
    fn from(record: TaskRecord) -> Self {
        Self {
            termination_status: record.termination_status(),
            is_running: record.is_running(),
            waiting: None,
            trace_id: record.trace_id().map(str::to_owned),
            record,
        }
    }
}

/// The W3C trace context of a request: its `traceparent` header, with its `tracestate`. A
/// header that is not a valid `traceparent` is ignored, as the W3C Trace Context
/// specification asks (the task then starts a trace of its own, or none).
pub(crate) fn trace_context(headers: &axum::http::HeaderMap) -> Option<offstage::TraceContext> {
    let parent = headers.get("traceparent")?.to_str().ok()?;
    let state = headers
        .get_all("tracestate")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    offstage::TraceContext::parse(parent, Some(&state))
        .or_else(|_| offstage::TraceContext::parse(parent, None))
        .map_err(|error| tracing::debug!(%error, "ignoring the request's traceparent"))
        .ok()
}

/// `POST /api/tasks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LaunchRequest {
    /// The task type's name (see `GET /api/task-types`).
    name: String,
    /// The args, as the task type takes them.
    #[serde(default)]
    #[schema(value_type = Object)]
    args: Value,
    /// A key to find the task by later; with `on_conflict`, at most one live task of the type
    /// has it.
    key: Option<String>,
    /// With `key`, when a task of the same type and key is queued or running: `reject` (409
    /// naming it), `existing` (200 with that task), or `supersede` (kill it, then launch).
    on_conflict: Option<String>,
    /// Fail the task if it runs longer than this many seconds (fractions allowed).
    timeout_s: Option<f64>,
    /// Refused: the timeout is `timeout_s`, in seconds.
    #[serde(default)]
    #[schema(ignore)]
    timeout_ms: Retired,
    /// Higher runs first among queued tasks.
    #[serde(default, deserialize_with = "crate::extract::whole::option")]
    priority: Option<i32>,
    /// Do not start before this time (RFC 3339).
    run_at: Option<DateTime<Utc>>,
    /// Do not start for this many seconds (instead of `run_at`).
    delay_s: Option<f64>,
    /// Who the task belongs to.
    owner: Option<String>,
    /// Run it in a worker process of its own (or, with false, in-process), whatever its task
    /// type says.
    isolated: Option<bool>,
    /// Launch it as a child of this task (its id; it must be queued or running). The child
    /// inherits the parent's owner unless `owner` is given, is killed when the parent is
    /// killed, and when the parent ends while it still runs unless `detached`. How a task
    /// that runs in a worker launches children.
    #[schema(value_type = Option<String>, format = Uuid)]
    parent: Option<String>,
    /// With `parent`: leave this child running when its parent ends by itself (a kill of the
    /// parent still kills it).
    detached: Option<bool>,
    /// The concurrency key the task counts under, for a task type with a limit per key
    /// (instead of the key the type takes from the owner or the args): at most that many of
    /// one key run at once, and keys take turns.
    concurrency_key: Option<String>,
}

/// Launches a task.
#[utoipa::path(post, path = "/api/tasks", request_body = LaunchRequest, tag = "tasks",
    params(("traceparent" = Option<String>, Header, description = "W3C Trace Context: the task \
        is launched in this trace, kept with it (`traceparent`, `trace_id`), and with \
        OpenTelemetry on each of its attempts is a span in it. A header that is not a valid \
        `traceparent` is ignored, as the specification asks."),
        ("tracestate" = Option<String>, Header, description = "W3C Trace Context: vendor data \
        kept with `traceparent`.")),
    responses((status = 201, body = TaskView),
        (status = 200, description = "`on_conflict: existing`: the live task with that key", body = TaskView),
        (status = 400, description = "`unknown_task_type`: `name` is no task type this server runs \
            or a worker serves (`GET /api/task-types` lists them); `invalid_timeout`, \
            `invalid_delay`: both `run_at` and `delay_s`; `invalid_argument`; `retired_field`: \
            `timeout_ms` (give `timeout_s`, in seconds)", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: `parent` names no task", body = crate::error::ErrorBody),
        (status = 409, description = "`on_conflict: reject` and a live task has the key; or \
            `parent` names a task that has ended", body = crate::error::ErrorBody),
        (status = 422, description = "`invalid_args`: the args do not fit the task type (its \
            `args_schema` in `GET /api/task-types`); `invalid_body`", body = crate::error::ErrorBody),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn launch(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Body(request): Body<LaunchRequest>,
) -> Result<impl IntoResponse, ApiError> {
    request
        .timeout_ms
        .refuse("timeout_ms", "give `timeout_s`, in seconds")?;
    let on_conflict = request
        .on_conflict
        .as_deref()
        .map(str::parse::<OnConflict>)
        .transpose()?;
    let timeout = timeout("timeout_s", request.timeout_s)?;
    let delay = match (request.delay_s, request.run_at) {
        (None, _) => None,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_delay",
                "give run_at (a time) or delay_s (seconds from now), not both",
            ))
        }
        (Some(seconds), None) if seconds.is_finite() && (0.0..1e9).contains(&seconds) => {
            Some(Duration::from_secs_f64(seconds))
        }
        (Some(seconds), None) => {
            return Err(ApiError::bad_request(
                "invalid_delay",
                format!("delay_s is {seconds}: give a number of seconds from 0, or leave it out"),
            ))
        }
    };
    let options = LaunchOptions {
        key: request.key,
        owner: request.owner,
        priority: request.priority,
        timeout,
        run_at: request.run_at,
        isolated: request.isolated,
        on_conflict,
        concurrency_key: request.concurrency_key,
    };
    let mut launch = state
        .runtime
        .launch_json(&request.name, request.args)
        .options(options);
    if let Some(delay) = delay {
        launch = launch.delay(delay);
    }
    if let Some(parent) = request.parent.as_deref() {
        launch = launch.parent(parse_id("parent", parent)?);
    }
    if let Some(detached) = request.detached {
        launch = launch.detached(detached);
    }
    if let Some(trace) = trace_context(&headers) {
        launch = launch.trace_parent(trace.traceparent());
        if let Some(state) = trace.tracestate() {
            launch = launch.trace_state(state);
        }
    }
    let task = launch.await?;
    let record = task.snapshot().clone();
    let status = if task.is_existing() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(TaskView::from(record))))
}

/// A task id given as field `field` (`parent`): a 400 that names the field when it is not one.
pub(crate) fn parse_id(field: &str, id: &str) -> Result<TaskId, ApiError> {
    id.parse::<TaskId>().map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!("{field} is `{id}`, which is not a task id: give the id of a task, as `GET /api/tasks` shows it"),
        )
    })
}

/// A timeout given in seconds as field `field` (`timeout_s`, or a schedule's
/// `options.timeout_s`): positive and under 10⁹ s, fractions allowed.
pub(crate) fn timeout(field: &str, seconds: Option<f64>) -> Result<Option<Duration>, ApiError> {
    match seconds {
        None => Ok(None),
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 => {
            Ok(Some(Duration::from_secs_f64(seconds)))
        }
        Some(seconds) => Err(ApiError::bad_request(
            "invalid_timeout",
            format!("{field} is {seconds}: give a positive number of seconds, or leave it out"),
        )),
    }
}

/// `GET /api/tasks` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only tasks of this task type.
    name: Option<String>,
    /// Only tasks with this status: queued, running, completed, failed, killed or missing
    /// (empty: any status).
    status: Option<String>,
    /// Only tasks with this owner.
    owner: Option<String>,
    /// Only tasks with this key.
    key: Option<String>,
    /// `true`: only tasks that have ended (completed, failed, killed, missing); `false`: only
    /// queued and running ones.
    finished: Option<bool>,
    /// Only tasks launched at or after this time (RFC 3339).
    launched_after: Option<DateTime<Utc>>,
    /// Only tasks launched before this time (RFC 3339).
    launched_before: Option<DateTime<Utc>>,
    /// Only reruns of this task (`POST /api/tasks/{id}/rerun`), newest first.
    rerun_of: Option<String>,
    /// Only children of this task (launched from its context, or with `parent`).
    parent: Option<String>,
    /// At most this many (1 to 1000, default 100).
    limit: Option<usize>,
    /// Only tasks older than this id: the previous page's `next_before`.
    before: Option<String>,
}

/// A page of tasks, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskPage {
    tasks: Vec<TaskView>,
    /// Pass as `before` for the next page; `null` on the last page.
    #[schema(value_type = Option<String>, format = Uuid)]
    next_before: Option<TaskId>,
}

/// Lists tasks, newest first. With a scoped token, only the tasks in its scope.
#[utoipa::path(get, path = "/api/tasks", params(ListQuery), tag = "tasks",
    responses((status = 200, body = TaskPage), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    access: Access,
    Query(query): Query<ListQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    // `status=` (a form's "any status") is no filter.
    let status = query
        .status
        .as_deref()
        .filter(|status| !status.is_empty())
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
    let mut filter = ListFilter {
        name: query.name,
        status,
        owner: query.owner,
        key: query.key,
        finished: query.finished,
        launched_after: query.launched_after,
        launched_before: query.launched_before,
        rerun_of: query
            .rerun_of
            .as_deref()
            .map(str::parse::<TaskId>)
            .transpose()?,
        parent: query
            .parent
            .as_deref()
            .map(|id| parse_id("parent", id))
            .transpose()?,
        before,
        limit: query.limit,
    };
    // Bad filters are a 400 whichever way the page is read below.
    filter.check()?;
    let tasks = match access.scope() {
        None => state.runtime.list(&filter).await?,
        Some(Scope::Owner(owner)) => {
            if filter.owner.as_ref().is_some_and(|asked| asked != owner) {
                // Another owner's tasks are none of this token's business: an empty page.
                Vec::new()
            } else {
                filter.owner = Some(owner.clone());
                state.runtime.list(&filter).await?
            }
        }
        Some(Scope::Task(id)) => {
            let record = match state.runtime.record(*id).await {
                Ok(record) => Some(record),
                Err(error) if error.kind() == offstage::ErrorKind::NotFound => None,
                Err(error) => return Err(error.into()),
            };
            record.filter(|r| filter.matches(r)).into_iter().collect()
        }
    };
    let next_before = (tasks.len() == filter.effective_limit())
        .then(|| tasks.last().map(|t| t.id))
        .flatten();
    Ok(Json(TaskPage {
        tasks: tasks.into_iter().map(TaskView::from).collect(),
        next_before,
    }))
}

/// One task.
#[utoipa::path(get, path = "/api/tasks/{id}", params(("id" = String, Path, description = "task id")), tag = "tasks",
    responses((status = 200, body = TaskView), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    access: Access,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<TaskView>, ApiError> {
    let record = state.runtime.record(id).await?;
    access.check_sees(&record)?;
    // Not for a scoped token: the reasons name other tasks (a limit's holders) and nodes.
    let waiting = match access.scope() {
        None => state.runtime.waiting(&record).await?,
        Some(_) => None,
    };
    let mut view = TaskView::from(record);
    view.waiting = waiting;
    Ok(Json(view))
}

/// `POST /api/tasks/{id}/kill` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KillRequest {
    /// How many seconds the task gets to stop by itself before it is aborted (fractions
    /// allowed; default: the server's `--kill-grace-s`).
    grace_s: Option<f64>,
    /// Refused: the grace period is `grace_s`, in seconds.
    #[serde(default)]
    #[schema(ignore)]
    grace_ms: Retired,
}

/// Kills a task: 202 while it stops, 200 if it had already ended.
#[utoipa::path(post, path = "/api/tasks/{id}/kill", params(("id" = String, Path, description = "task id")),
    request_body(content = Option<KillRequest>), tag = "tasks",
    responses((status = 202, body = TaskView), (status = 200, body = TaskView), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn kill(
    State(state): State<AppState>,
    access: Access,
    TaskIdPath(id): TaskIdPath,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The body is optional: empty or `null` means the runtime's grace period.
    let invalid = |why: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("{why}: the kill body is optional; if given it is {{\"grace_s\": 1.5}}"),
        )
    };
    let request: KillRequest = if body.iter().all(u8::is_ascii_whitespace) {
        KillRequest::default()
    } else {
        match serde_json::from_slice::<Value>(&body).map_err(|e| invalid(e.to_string()))? {
            Value::Null => KillRequest::default(),
            object @ Value::Object(_) => {
                serde_json::from_value(object).map_err(|e| invalid(e.to_string()))?
            }
            _ => return Err(invalid("the body is not a JSON object".to_owned())),
        }
    };
    request
        .grace_ms
        .refuse("grace_ms", "give `grace_s`, in seconds")?;
    let grace = match request.grace_s {
        None => None,
        // Up to 10⁹ s inclusive: a decimal just under the bound that reads as the f64 1e9 is
        // still what the document allows.
        Some(seconds) if seconds.is_finite() && (0.0..=1e9).contains(&seconds) => {
            Some(Duration::from_secs_f64(seconds))
        }
        Some(seconds) => {
            return Err(ApiError::bad_request(
                "invalid_grace",
                format!("grace_s is {seconds}: give a number of seconds from 0, or leave it out"),
            ))
        }
    };
    let record = state.runtime.record(id).await?;
    access.check_kills(&record)?;
    if record.status.is_terminal() {
        return Ok((StatusCode::OK, Json(TaskView::from(record))));
    }
    let runtime = state.runtime.clone();
    // The kill runs on; the answer does not wait for the grace period.
    tokio::spawn(async move {
        let result = match grace {
            Some(grace) => runtime.kill_with_grace(id, grace).await,
            None => runtime.kill(id).await,
        };
        if let Err(error) = result {
            tracing::warn!(task = %id, %error, "kill failed");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(TaskView::from(record))))
}

/// `GET /api/tasks/{id}/logs` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogsQuery {
    /// Only lines with a higher sequence number (default 0: from the start).
    #[serde(default)]
    after: u64,
    /// At most this many (1 to 10000, default 1000).
    limit: Option<usize>,
}

/// Log lines in order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogPage {
    lines: Vec<LogLine>,
    /// Pass as `after` for the next lines.
    next_after: u64,
}

/// A task's log lines, in order.
#[utoipa::path(get, path = "/api/tasks/{id}/logs", params(("id" = String, Path, description = "task id"), LogsQuery), tag = "tasks",
    responses((status = 200, body = LogPage), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn logs(
    State(state): State<AppState>,
    access: Access,
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
    match access.scope() {
        None => {}
        Some(Scope::Task(task)) if *task != id => return Err(crate::auth::not_found(id)),
        Some(Scope::Task(_)) => {}
        // Whose task it is needs the record.
        Some(Scope::Owner(_)) => access.check_sees(&state.runtime.record(id).await?)?,
    }
    let lines = state.runtime.logs(id, query.after, limit).await?;
    let next_after = lines.last().map_or(query.after, |line| line.seq);
    Ok(Json(LogPage { lines, next_after }))
}

/// `DELETE /api/tasks` query: which finished tasks to delete. At least one condition is
/// required, so that a bare `DELETE` never empties the store by accident.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PurgeQuery {
    /// Only tasks that finished before this time (RFC 3339).
    finished_before: Option<DateTime<Utc>>,
    /// All but the newest this many (by launch) of the finished tasks matching the rest.
    keep_newest: Option<u64>,
    /// Only tasks of this task type.
    name: Option<String>,
    /// Only tasks that ended with this status: completed, failed, killed or missing.
    status: Option<String>,
    /// Only tasks with this owner.
    owner: Option<String>,
    /// Only tasks with this key.
    key: Option<String>,
    /// Only tasks launched at or after this time (RFC 3339).
    launched_after: Option<DateTime<Utc>>,
    /// Only tasks launched before this time (RFC 3339).
    launched_before: Option<DateTime<Utc>>,
    /// `true`: delete nothing, answer how many would go (`{"would_purge": n}`).
    dry_run: Option<bool>,
}

/// Deletes finished tasks, with their logs, in short steps (launches meanwhile are not held
/// up); or, with `dry_run`, counts them.
#[utoipa::path(delete, path = "/api/tasks", params(PurgeQuery), tag = "tasks",
    responses((status = 200, description = "`{\"purged\": n}`, or `{\"would_purge\": n}` for a dry run"), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn purge(
    State(state): State<AppState>,
    Query(query): Query<PurgeQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = query
        .status
        .as_deref()
        .filter(|status| !status.is_empty())
        .map(str::parse::<Status>)
        .transpose()?;
    let purge = offstage::Purge {
        filter: ListFilter {
            name: query.name,
            status,
            owner: query.owner,
            key: query.key,
            launched_after: query.launched_after,
            launched_before: query.launched_before,
            ..ListFilter::default()
        },
        finished_before: query.finished_before,
        keep_newest: query.keep_newest,
    };
    if purge == offstage::Purge::default() {
        return Err(ApiError::bad_request(
            "missing_finished_before",
            "say which tasks to purge: ?finished_before=2026-11-01T00:00:00Z (RFC 3339), \
             ?keep_newest=N, or a filter (name, status, owner, key, launched_after, \
             launched_before); add dry_run=true to count them first",
        ));
    }
    if query.dry_run == Some(true) {
        let count = state.runtime.purge_count(&purge).await?;
        return Ok(Json(serde_json::json!({ "would_purge": count })));
    }
    let purged = state.runtime.purge_with(&purge, |_| {}).await?;
    Ok(Json(serde_json::json!({ "purged": purged })))
}

/// One task type: who serves it and how many of its tasks the store holds.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskTypeView {
    /// The task type's name.
    name: String,
    /// Where its tasks run: `in-process` when this node runs it, and the name of each connected
    /// worker serving it. Empty when nothing serves it: its tasks wait queued.
    workers: Vec<String>,
    /// How many of its tasks the store holds, by status (every status, zeros included).
    #[schema(value_type = Object)]
    counts: BTreeMap<Status, u64>,
    /// Its tasks run in worker processes of their own.
    isolated: bool,
    /// At most this many of its tasks run at once, on all nodes.
    concurrency_limit: Option<u32>,
    /// Failed tasks run again, up to this many attempts in all.
    max_attempts: Option<u32>,
    /// Paused on every node: its queued tasks wait until it is resumed.
    paused: bool,
    /// When it was paused; `null` when it is not.
    paused_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its args as a JSON Schema, when the task type gives one.
    #[schema(value_type = Option<Object>)]
    args_schema: Option<serde_json::Value>,
    /// Args that fit `args_schema`, to start from (see `offstage_server::schema::example`).
    #[schema(value_type = Option<Object>)]
    args_example: Option<serde_json::Value>,
    /// At most this many of its tasks of one concurrency key run at once, on all nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency_per_key: Option<u32>,
    /// Where each task's concurrency key comes from when its launch gives none: `owner`,
    /// `args.FIELD` or `launch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency_key: Option<String>,
    /// For a type with a per-key limit: its top ten keys with tasks queued or running, most
    /// running first, then most queued, then by key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    concurrency_keys: Vec<offstage::KeyCount>,
}

/// The task types.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskTypes {
    /// Registered task types, then those only stored tasks name, each sorted by name.
    task_types: Vec<TaskTypeView>,
}

/// The registered task types, with their task counts.
#[utoipa::path(get, path = "/api/task-types", tag = "tasks",
    responses((status = 200, body = TaskTypes), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn task_types(State(state): State<AppState>) -> Result<Json<TaskTypes>, ApiError> {
    let zeros = || Status::ALL.iter().map(|status| (*status, 0)).collect();
    let mut types: Vec<TaskTypeView> = state
        .runtime
        .task_types()
        .into_iter()
        .map(|name| {
            let options = state.runtime.task_type_options(&name).unwrap_or_default();
            let args_schema = state.runtime.task_type_args_schema(&name);
            TaskTypeView {
                args_example: args_schema.as_ref().map(crate::schema::example),
                args_schema,
                name,
                workers: vec!["in-process".to_owned()],
                counts: zeros(),
                isolated: options.isolated,
                concurrency_limit: options.concurrency_limit,
                max_attempts: options.retry.map(|r| r.max_attempts),
                paused: false,
                paused_at: None,
                concurrency_per_key: options.concurrency_per_key,
                concurrency_key: options.concurrency_key.map(|k| k.to_string()),
                concurrency_keys: Vec::new(),
            }
        })
        .collect();
    // Types workers serve (or are declared to): each connected worker that serves it, by name.
    let workers = state.runtime.workers();
    for name in state.runtime.worker_task_types() {
        let index = match types.iter().position(|t| t.name == name) {
            Some(index) => index,
            None => {
                types.push(TaskTypeView {
                    name: name.clone(),
                    workers: Vec::new(),
                    counts: zeros(),
                    isolated: false,
                    concurrency_limit: None,
                    max_attempts: None,
                    paused: false,
                    paused_at: None,
                    args_schema: None,
                    args_example: None,
                    concurrency_per_key: None,
                    concurrency_key: None,
                    concurrency_keys: Vec::new(),
                });
                types.len() - 1
            }
        };
        let serving = workers.iter().filter(|w| w.task_types.contains(&name));
        types[index].workers.extend(serving.map(|w| w.name.clone()));
    }
    for (name, status, count) in state.runtime.counts().await? {
        let index = match types.iter().position(|t| t.name == name) {
            Some(index) => index,
            None => {
                types.push(TaskTypeView {
                    name,
                    workers: Vec::new(),
                    counts: zeros(),
                    isolated: false,
                    concurrency_limit: None,
                    max_attempts: None,
                    paused: false,
                    paused_at: None,
                    args_schema: None,
                    args_example: None,
                    concurrency_per_key: None,
                    concurrency_key: None,
                    concurrency_keys: Vec::new(),
                });
                types.len() - 1
            }
        };
        types[index].counts.insert(status, count);
    }
    for paused in state.runtime.paused_task_types().await? {
        let index = match types.iter().position(|t| t.name == paused.name) {
            Some(index) => index,
            None => {
                types.push(TaskTypeView {
                    name: paused.name.clone(),
                    workers: Vec::new(),
                    counts: zeros(),
                    isolated: false,
                    concurrency_limit: None,
                    max_attempts: None,
                    paused: false,
                    paused_at: None,
                    args_schema: None,
                    args_example: None,
                    concurrency_per_key: None,
                    concurrency_key: None,
                    concurrency_keys: Vec::new(),
                });
                types.len() - 1
            }
        };
        types[index].paused = true;
        types[index].paused_at = Some(paused.paused_at);
    }
    for task_type in types.iter_mut().filter(|t| t.concurrency_per_key.is_some()) {
        task_type.concurrency_keys = state
            .runtime
            .concurrency_keys(&task_type.name, offstage::KeyCount::TOP)
            .await?;
    }
    Ok(Json(TaskTypes { task_types: types }))
}
