//! The fleet over HTTP: `POST /api/task-types/{name}/pause` and `/resume` (every node at
//! once), and `GET /api/nodes` (every node sharing the store, with what it serves and runs).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use offstage::{NodeRecord, Paused};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::NamePath;
use crate::AppState;

/// `POST /api/task-types/{name}/pause` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PauseRequest {
    /// Also kill the type's running tasks (each with the server's grace period); by default
    /// they run on to their end.
    #[serde(default)]
    kill_running: bool,
}

/// Pauses a task type on every node: its queued tasks wait (their `waiting` says so) until it
/// is resumed, across restarts; launches are still accepted; running tasks go on unless
/// `kill_running`.
#[utoipa::path(post, path = "/api/task-types/{name}/pause", tag = "tasks",
    params(("name" = String, Path, description = "the task type's name")),
    request_body(content = Option<PauseRequest>),
    responses((status = 200, body = Paused), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    NamePath(name): NamePath,
    body: axum::body::Bytes,
) -> Result<Json<Paused>, ApiError> {
    let invalid = |why: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("{why}: the pause body is optional; if given it is {{\"kill_running\": true}}"),
        )
    };
    let request: PauseRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PauseRequest::default()
    } else {
        match serde_json::from_slice::<Value>(&body).map_err(|e| invalid(e.to_string()))? {
            Value::Null => PauseRequest::default(),
            object @ Value::Object(_) => {
                serde_json::from_value(object).map_err(|e| invalid(e.to_string()))?
            }
            _ => return Err(invalid("the body is not a JSON object".to_owned())),
        }
    };
    Ok(Json(
        state
            .runtime
            .pause_task_type(&name, request.kill_running)
            .await?,
    ))
}

/// A task type after a resume.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Resumed {
    /// The task type's name.
    name: String,
    /// Always false: it is not paused now.
    paused: bool,
}

/// Resumes a paused task type on every node: its queued tasks are claimed again at once.
/// Resuming a type that is not paused changes nothing.
#[utoipa::path(post, path = "/api/task-types/{name}/resume", tag = "tasks",
    params(("name" = String, Path, description = "the task type's name")),
    responses((status = 200, body = Resumed), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    NamePath(name): NamePath,
) -> Result<Json<Resumed>, ApiError> {
    state.runtime.resume_task_type(&name).await?;
    Ok(Json(Resumed {
        name,
        paused: false,
    }))
}

/// Every node.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeList {
    /// Every node registered in the store, oldest first. A node that died stays until
    /// recovery removes it (within the node timeout); its `heartbeat_at` stops moving.
    nodes: Vec<NodeRecord>,
    /// How long a node may go without a heartbeat before it is declared dead, in seconds.
    node_timeout_s: f64,
}

/// Every node sharing the store: host, pid, start, last heartbeat, and what it last reported
/// (task types served in-process, slots and running tasks, connected workers, isolated
/// processes).
#[utoipa::path(get, path = "/api/nodes", tag = "nodes",
    responses((status = 200, body = NodeList), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn nodes(State(state): State<AppState>) -> Result<Json<NodeList>, ApiError> {
    Ok(Json(NodeList {
        nodes: state.runtime.nodes().await?,
        node_timeout_s: state.runtime.node_timeout().as_secs_f64(),
    }))
}
