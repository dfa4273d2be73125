//! `GET /api/me`: what the presented token may do, so a client (the dashboard) shows only what
//! it can use.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::AppState;

/// The caller, as the server sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Me {
    /// The token's role: `read`, `launch`, `control` or `worker`. `control` on an open server.
    role: String,
    /// False when the server runs open (no tokens configured).
    auth_required: bool,
}

/// The presented token's role.
#[utoipa::path(get, path = "/api/me", tag = "session",
    responses((status = 200, body = Me), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Me>, ApiError> {
    let role = state.tokens.role_of(&headers)?;
    Ok(Json(Me {
        role: role.to_string(),
        auth_required: !state.tokens.is_open(),
    }))
}
