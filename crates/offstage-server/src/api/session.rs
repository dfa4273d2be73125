//! `GET /api/me`: what the presented token may do, so a client (the dashboard) shows only what
//! it can use.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::scoped::PREFIX;
use crate::AppState;

/// The caller, as the server sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Me {
    /// The token's role: `read`, `launch`, `control` or `worker`. `control` on an open server.
    role: String,
    /// False when the server runs open (no tokens configured).
    auth_required: bool,
    /// Where a task's trace is shown, `{trace_id}` standing for its trace id (`--trace-url`);
    /// absent when none is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_url: Option<String>,
}

/// The presented token's role.
#[utoipa::path(get, path = "/api/me", tag = "session",
    responses((status = 200, body = Me), (status = 401, body = crate::error::ErrorBody),
        (status = 403, description = "a scoped token, which has no role: the message says what it allows", body = crate::error::ErrorBody)))]
pub(crate) async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Me>, ApiError> {
    if let Some(token) = crate::auth::bearer(&headers).filter(|t| t.starts_with(PREFIX)) {
        // A scoped token has no role: say what it allows instead.
        let grant = crate::auth::verify(&state, token)?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            grant.describe(),
        ));
    }
    let role = state.tokens.role_of(&headers)?;
    Ok(Json(Me {
        role: role.to_string(),
        auth_required: !state.tokens.is_open(),
        trace_url: state.trace_url.clone(),
    }))
}
