//! `GET /healthz` (liveness) and `GET /readyz` (readiness), for load balancers and
//! orchestrators, with no token.
//!
//! Live means the process answers: restarting it would not help anything that `/healthz`
//! can see. Ready means it can take work now: the runtime is not shutting down and its store
//! commits a write (a full disk is not ready). A node that is live but not ready should get no
//! new traffic, and should not be restarted for it: a full disk passes when space is freed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use offstage::ErrorKind;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::AppState;

/// Health: `{"ok": true}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always true: an answer at all is the news.
    ok: bool,
}

/// Liveness: the server answers. Needs no token.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { ok: true })
}

/// Readiness: the runtime takes new work and its store commits a write (one heartbeat).
/// 503 with `storage_full` (and `Retry-After`) while the store's disk is full, `shutting_down`
/// while the server drains. Needs no token.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match state.runtime.ready().await {
        Ok(()) => Ok(Json(Health { ok: true })),
        Err(error) => match error.kind() {
            ErrorKind::StorageFull | ErrorKind::ShuttingDown => Err(error.into()),
            // A store that fails for another reason is not ready either: a 503, not a failed
            // request, with the cause in the log.
            _ => {
                tracing::error!(%error, "not ready: the store cannot write");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store cannot write: the server's log has the cause",
                )
                .retry_after(crate::error::STORAGE_FULL_RETRY_S))
            }
        },
    }
}
