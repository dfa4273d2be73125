//! `POST /api/tokens`: mints a scoped token (see `offstage_server::scoped`) for an app's user,
//! with a `control` token.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use offstage::limits::{check_text, MAX_OWNER_CHARS};
use offstage::TaskId;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::Body;
use crate::scoped::{Minted, Rights, Scope, MAX_TTL};
use crate::AppState;

/// `POST /api/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintRequest {
    /// The tasks the token reaches: `{"task": ID}` (one task) or `{"owner": NAME}` (every task
    /// launched with that owner, later ones too).
    #[schema(value_type = Object)]
    scope: serde_json::Map<String, serde_json::Value>,
    /// `["read"]` (state, logs, events, signals, result), optionally with `"kill"` and
    /// `"signal"`: `["read", "kill"]`, `["read", "signal"]`, `["read", "kill", "signal"]`.
    rights: Vec<String>,
    /// How many seconds the token lives: more than 0, at most 604800 (7 days).
    ttl_s: f64,
}

/// A minted token.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct MintedView {
    /// `ost1.…`: send it as `Authorization: Bearer <token>`, or as `?token=` on the event
    /// streams.
    token: String,
    /// When it stops working.
    expires_at: chrono::DateTime<chrono::Utc>,
}

impl From<Minted> for MintedView {
    fn from(minted: Minted) -> Self {
        Self {
            token: minted.token,
            expires_at: minted.expires_at,
        }
    }
}

/// Mints a scoped token: what an app hands its user's browser to read (and, with the `kill`
/// right, kill) that user's tasks and nothing else.
#[utoipa::path(post, path = "/api/tokens", request_body = MintRequest, tag = "tokens",
    responses((status = 201, body = MintedView),
        (status = 400, description = "`invalid_scope`: not exactly one of `task` and `owner`; \
            `invalid_id`; `invalid_argument`: the owner breaks the text rules; `invalid_rights`; \
            `invalid_ttl`", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no task has the scope's id", body = crate::error::ErrorBody),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn mint(
    State(state): State<AppState>,
    Body(request): Body<MintRequest>,
) -> Result<(StatusCode, Json<MintedView>), ApiError> {
    let scope = request.scope;
    let one = |key: &str| match (scope.len(), scope.get(key)) {
        (1, Some(serde_json::Value::String(text))) => Some(text.clone()),
        _ => None,
    };
    let scope = match (one("task"), one("owner")) {
        (Some(id), None) => {
            let id: TaskId = id.parse()?;
            // A token for a task that does not exist would be a token for nothing.
            state.runtime.record(id).await?;
            Scope::Task(id)
        }
        (None, Some(owner)) => {
            if owner.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_scope",
                    "the scope's owner is empty: give the owner tasks are launched with",
                ));
            }
            check_text("owner", &owner, MAX_OWNER_CHARS)?;
            Scope::Owner(owner)
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_scope",
                "give the scope as {\"task\": ID} for one task or {\"owner\": NAME} for every \
                 task of one owner (a string, and nothing else in the object)",
            ))
        }
    };
    let rights = Rights::from_names(&request.rights)
        .map_err(|why| ApiError::bad_request("invalid_rights", why))?;
    let max = MAX_TTL.as_secs();
    let ttl = request.ttl_s;
    if !(ttl.is_finite() && ttl > 0.0 && ttl <= max as f64) {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            format!(
                "ttl_s is {ttl}: give the token's life in seconds, more than 0 and at most \
                 {max} (7 days); keep it short, as a token cannot be revoked before it expires"
            ),
        ));
    }
    let minted = state
        .scoped_tokens
        .mint(scope, rights, Duration::from_secs_f64(ttl));
    Ok((StatusCode::CREATED, Json(minted.into())))
}
