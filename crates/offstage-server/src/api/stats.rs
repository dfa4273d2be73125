//! `GET /api/stats`: what each task type did over the last hour or day, bucket by bucket
//! (started, completed, failed, killed, missing, retried, queue depth, wait percentiles), for
//! the dashboard's charts and `offstage stats`. Read from per-minute rows, so it costs the
//! same with a million tasks in the store as with ten (see `offstage::Stats`).

use axum::extract::State;
use axum::Json;
use offstage::{Stats, StatsWindow};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::extract::Query;
use crate::AppState;

/// `GET /api/stats` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// `hour` (60 one-minute buckets, the default) or `day` (144 ten-minute buckets).
    window: Option<String>,
}

/// The stats of every task type over the window; the last bucket is the one under way.
#[utoipa::path(get, path = "/api/stats", params(StatsQuery), tag = "stats",
    responses((status = 200, body = Stats),
        (status = 400, description = "`invalid_window`: `window` is neither `hour` nor `day`",
            body = crate::error::ErrorBody),
        (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Query(query): Query<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    let window = match query.window.as_deref() {
        None | Some("") => StatsWindow::Hour,
        Some(text) => text
            .parse::<StatsWindow>()
            .map_err(|error| ApiError::bad_request("invalid_window", error.message()))?,
    };
    Ok(Json(state.runtime.stats(window).await?))
}
