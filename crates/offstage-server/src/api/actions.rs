//! `POST /api/tasks/{id}/rerun`, and bulk actions: `POST /api/actions` (a dry run's count, or
//! an action started), `GET /api/actions`, `GET /api/actions/{id}`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use offstage::{ActionId, ActionRecord, Bulk, BulkVerb, ListFilter, Status, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::api::tasks::TaskView;
use crate::error::ApiError;
use crate::extract::{Body, Query, TaskIdPath};
use crate::AppState;

/// `POST /api/tasks/{id}/rerun` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RerunRequest {
    /// The args for the new task; the original's when left out.
    #[schema(value_type = Option<Object>)]
    args: Option<Value>,
    /// Start the new task with the original's last checkpoint (`checkpoint`), so it continues
    /// where the original stopped; 409 if the original saved none. Default false: from the top.
    #[serde(default)]
    from_checkpoint: bool,
}

/// Launches a finished task again as a new task linked to it (`rerun_of`): the same task
/// type and launch options (priority, timeout, isolation, owner, key), with `args` if given,
/// and with the original's checkpoint if `from_checkpoint` says so.
#[utoipa::path(post, path = "/api/tasks/{id}/rerun", params(("id" = String, Path, description = "id of the finished task to run again"),
        ("traceparent" = Option<String>, Header, description = "W3C Trace Context: the rerun \
        is launched in this trace. A rerun is a new trace, never the original's; with \
        OpenTelemetry on, its launch span links to the original's trace.")),
    request_body(content = Option<RerunRequest>), tag = "tasks",
    responses((status = 201, body = TaskView),
        (status = 404, description = "no task has that id", body = crate::error::ErrorBody),
        (status = 409, description = "the task is still queued or running (kill it or wait), a \
            live task of its type has its key, or `from_checkpoint` asks for a checkpoint the \
            task never saved", body = crate::error::ErrorBody),
        (status = 422, description = "`invalid_args`: the edited args do not fit the task type; \
            `invalid_body`", body = crate::error::ErrorBody),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn rerun(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The body is optional: empty or `null` reruns with the original's args.
    let invalid = |why: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!(
                "{why}: the rerun body is optional; if given it is {{\"args\": ..., \
                 \"from_checkpoint\": true}}, both optional: the new task's args, and whether it \
                 starts with the original's checkpoint"
            ),
        )
    };
    let request: RerunRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RerunRequest::default()
    } else {
        match serde_json::from_slice::<Value>(&body).map_err(|e| invalid(e.to_string()))? {
            Value::Null => RerunRequest::default(),
            object @ Value::Object(_) => {
                serde_json::from_value(object).map_err(|e| invalid(e.to_string()))?
            }
            _ => return Err(invalid("the body is not a JSON object".to_owned())),
        }
    };
    let options = offstage::RerunOptions {
        args: request.args,
        from_checkpoint: request.from_checkpoint,
        trace_parent: super::tasks::trace_context(&headers),
    };
    let task = state.runtime.rerun_with(id, options).await?;
    Ok((
        StatusCode::CREATED,
        Json(TaskView::from(task.snapshot().clone())),
    ))
}

/// Which tasks a bulk action applies to: the list's filter.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkFilter {
    /// Only tasks of this task type.
    name: Option<String>,
    /// Only tasks with this status (empty: any).
    status: Option<String>,
    /// Only tasks with this owner.
    owner: Option<String>,
    /// Only tasks with this key.
    key: Option<String>,
    /// Only reruns of this task.
    rerun_of: Option<String>,
    /// Only children of this task.
    parent: Option<String>,
    /// Only tasks launched at or after this time (RFC 3339).
    launched_after: Option<DateTime<Utc>>,
    /// Only tasks launched before this time (RFC 3339).
    launched_before: Option<DateTime<Utc>>,
}

impl BulkFilter {
    fn into_filter(self) -> Result<ListFilter, ApiError> {
        let status = self
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::parse::<Status>)
            .transpose()?;
        let rerun_of = self
            .rerun_of
            .as_deref()
            .map(str::parse::<TaskId>)
            .transpose()?;
        let parent = self
            .parent
            .as_deref()
            .map(|id| super::tasks::parse_id("parent", id))
            .transpose()?;
        if let (Some(after), Some(before)) = (self.launched_after, self.launched_before) {
            if after >= before {
                return Err(ApiError::bad_request(
                    "invalid_filter",
                    format!(
                        "launched_after ({after}) is not before launched_before ({before}): no \
                         task could match; swap them or widen the range"
                    ),
                ));
            }
        }
        let filter = ListFilter {
            name: self.name,
            status,
            owner: self.owner,
            key: self.key,
            rerun_of,
            parent,
            launched_after: self.launched_after,
            launched_before: self.launched_before,
            ..ListFilter::default()
        };
        filter.check()?;
        Ok(filter)
    }
}

/// `POST /api/actions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRequest {
    /// `kill` (the live tasks matching), `purge` or `rerun` (the finished ones).
    verb: BulkVerb,
    /// Which tasks (every task when left out).
    #[serde(default)]
    filter: BulkFilter,
    /// Only count the tasks it would act on, and change nothing.
    #[serde(default)]
    dry_run: bool,
    /// For `rerun`: launch at most this many a second.
    per_s: Option<f64>,
}

/// What a dry run found.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DryRun {
    /// The verb asked for.
    verb: BulkVerb,
    /// Always true.
    dry_run: bool,
    /// How many tasks it would act on now.
    matched: u64,
}

/// Kills, purges or reruns every task matching a filter. With `dry_run`, answers how many
/// tasks it would act on (200) and changes nothing; otherwise starts the action (202) and
/// returns its record, which `GET /api/actions/{id}` follows as it goes.
#[utoipa::path(post, path = "/api/actions", request_body = BulkRequest, tag = "actions",
    responses((status = 202, description = "the action, started", body = ActionRecord),
        (status = 200, description = "`dry_run`: the count", body = DryRun),
        (status = 400, description = "`invalid_argument` (a `per_s` that is not a positive \
            rate, or given for kill or purge), `invalid_filter`, `invalid_id`", body = crate::error::ErrorBody),
        (status = 422, description = "`invalid_body`: an unknown verb or field", body = crate::error::ErrorBody),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(request): Body<BulkRequest>,
) -> Result<axum::response::Response, ApiError> {
    let bulk = Bulk {
        verb: request.verb,
        filter: request.filter.into_filter()?,
        per_s: request.per_s,
    };
    if request.dry_run {
        let matched = state.runtime.bulk_count(&bulk).await?;
        return Ok(Json(DryRun {
            verb: bulk.verb,
            dry_run: true,
            matched,
        })
        .into_response());
    }
    let actor = state.tokens.actor(&headers);
    let action = state.runtime.bulk(&bulk, &actor).await?;
    Ok((StatusCode::ACCEPTED, Json(action.record())).into_response())
}

/// `GET /api/actions` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ActionsQuery {
    /// At most this many (1 to 1000, default 50).
    limit: Option<usize>,
    /// Only actions older than this id: the previous page's `next_before`.
    before: Option<String>,
}

/// A page of actions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActionPage {
    actions: Vec<ActionRecord>,
    /// Pass as `before` for the next page; `null` on the last page.
    #[schema(value_type = Option<String>, format = Uuid)]
    next_before: Option<ActionId>,
}

/// Bulk actions, newest first: who did what, and how far it got.
#[utoipa::path(get, path = "/api/actions", params(ActionsQuery), tag = "actions",
    responses((status = 200, body = ActionPage), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<ActionsQuery>,
) -> Result<Json<ActionPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > 1_000 {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit is {limit}: use 1 to 1000"),
        ));
    }
    let before = query
        .before
        .as_deref()
        .map(str::parse::<ActionId>)
        .transpose()?;
    let actions = state.runtime.actions(before, limit).await?;
    let next_before = (actions.len() == limit)
        .then(|| actions.last().map(|a| a.id))
        .flatten();
    Ok(Json(ActionPage {
        actions,
        next_before,
    }))
}

/// One action: its progress while it runs, then how it ended.
#[utoipa::path(get, path = "/api/actions/{id}", params(("id" = String, Path, description = "action id")), tag = "actions",
    responses((status = 200, body = ActionRecord), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<ActionRecord>, ApiError> {
    let id: ActionId = id.parse()?;
    Ok(Json(state.runtime.action(id).await?))
}
