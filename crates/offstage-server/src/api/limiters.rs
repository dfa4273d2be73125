//! `/api/limiters`: limiters, named budgets shared by every node (docs/limiters.md). List them
//! with their tokens and holders, define or delete one (control), and acquire and release
//! permits from any language (launch or worker).
//!
//! An acquisition over HTTP waits up to `wait_s` (at most [`MAX_WAIT_S`]) and answers
//! `{"acquired": false}` when it could not go by then: the caller asks again. A hold taken
//! over HTTP is tied to the node that served the request and freed after `hold_s` if the
//! caller never releases it (it may have died), so a client that crashes cannot keep a
//! limiter full for longer than that.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use offstage::{Limit, LimiterRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Body, NamePath};
use crate::AppState;

/// The longest an acquisition over HTTP waits, in seconds.
pub(crate) const MAX_WAIT_S: f64 = 60.0;
/// How long a hold taken over HTTP lasts unless released, by default, in seconds.
pub(crate) const DEFAULT_HOLD_S: f64 = 60.0;
/// The longest a hold taken over HTTP may last, in seconds.
pub(crate) const MAX_HOLD_S: f64 = 86_400.0;

/// The limiters, by name.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LimiterList {
    limiters: Vec<LimiterRecord>,
}

/// `PUT /api/limiters/{name}`: what the limiter allows (a rate with a burst, a number of
/// concurrent holders, or both).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimiterPutRequest {
    /// Tokens per second (fractions allowed): more than 0, at most 1,000,000.
    #[schema(exclusive_minimum = 0, maximum = 1_000_000)]
    rate: Option<f64>,
    /// The most tokens saved up (default 1 with a rate), at most 1,000,000.
    #[serde(default, deserialize_with = "crate::extract::whole::option")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    burst: Option<u32>,
    /// The most permits held at once on all nodes, at most 1,000,000.
    #[serde(default, deserialize_with = "crate::extract::whole::option")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    max_holders: Option<u32>,
}

/// `POST /api/limiters/{name}/acquire` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcquireRequest {
    /// How long to wait for the limiter, in seconds, from 0 (one try, the default) to 60.
    #[schema(minimum = 0, maximum = 60)]
    wait_s: Option<f64>,
    /// For a limiter with `max_holders`: how long the hold lasts unless released, in
    /// seconds (default 60, at most 86,400).
    #[schema(minimum = 0, maximum = 86_400)]
    hold_s: Option<f64>,
    /// Who holds it, for people (default `HTTP API`).
    holder: Option<String>,
}

/// What an acquisition got.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AcquireAnswer {
    /// True when it took a token (and a hold): go ahead.
    acquired: bool,
    /// The hold to release when done, for a limiter with `max_holders`.
    #[serde(skip_serializing_if = "Option::is_none")]
    hold: Option<Uuid>,
}

/// `POST /api/limiters/{name}/release` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseRequest {
    /// The hold an acquisition returned.
    hold: Uuid,
}

/// What a release found.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReleaseAnswer {
    /// False when the hold was not held (released already, expired, or freed with its node).
    released: bool,
}

/// Seconds from a request, within `0..=max`, or the 400 that says what to send.
fn seconds(field: &str, value: Option<f64>, default: f64, max: f64) -> Result<Duration, ApiError> {
    match value {
        None => Ok(Duration::from_secs_f64(default)),
        Some(s) if s.is_finite() && (0.0..=max).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(ApiError::bad_request(
            "invalid_argument",
            format!("{field} is {s}: give a number of seconds from 0 to {max}, or leave it out"),
        )),
    }
}

/// Every limiter with its tokens and holders as of now.
#[utoipa::path(get, path = "/api/limiters", tag = "limiters",
    responses((status = 200, body = LimiterList), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<LimiterList>, ApiError> {
    Ok(Json(LimiterList {
        limiters: state.runtime.limiters().await?,
    }))
}

/// Defines (or redefines) a limiter for every node; the last definition wins.
#[utoipa::path(put, path = "/api/limiters/{name}", tag = "limiters", request_body = LimiterPutRequest,
    params(("name" = String, Path, description = "the limiter's name")),
    responses((status = 200, body = LimiterRecord), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    NamePath(name): NamePath,
    Body(request): Body<LimiterPutRequest>,
) -> Result<Json<LimiterRecord>, ApiError> {
    let limit = Limit {
        rate: request.rate,
        burst: request.burst,
        max_holders: request.max_holders,
    };
    Ok(Json(state.runtime.put_limiter(&name, limit).await?))
}

/// Deletes a limiter and its holds: 204, or 404 if there is none.
#[utoipa::path(delete, path = "/api/limiters/{name}", tag = "limiters",
    params(("name" = String, Path, description = "the limiter's name")),
    responses((status = 204), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    NamePath(name): NamePath,
) -> Result<StatusCode, ApiError> {
    if state.runtime.delete_limiter(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no limiter is named `{name}`: GET /api/limiters lists them"),
        ))
    }
}

/// Takes a token (and a hold) from a limiter, waiting up to `wait_s`; `acquired: false` if
/// it could not go by then. 404 (with how to define it) for an unknown name.
#[utoipa::path(post, path = "/api/limiters/{name}/acquire", tag = "limiters",
    request_body(content = Option<AcquireRequest>),
    params(("name" = String, Path, description = "the limiter's name")),
    responses((status = 200, body = AcquireAnswer), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn acquire(
    State(state): State<AppState>,
    NamePath(name): NamePath,
    body: axum::body::Bytes,
) -> Result<Json<AcquireAnswer>, ApiError> {
    // No body, or `null` (what the document's optional body allows), is the empty request.
    let request: AcquireRequest =
        if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
            AcquireRequest::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    format!(
                    "{e}: the body is optional; if given it is {{\"wait_s\": 5, \"hold_s\": 60, \
                     \"holder\": \"who\"}}"
                ),
                )
            })?
        };
    let wait = seconds("wait_s", request.wait_s, 0.0, MAX_WAIT_S)?;
    let ttl = seconds("hold_s", request.hold_s, DEFAULT_HOLD_S, MAX_HOLD_S)?;
    let holder = request.holder.as_deref().unwrap_or("HTTP API");
    let held = state
        .runtime
        .acquire_limiter(&name, holder, wait, ttl)
        .await?;
    Ok(Json(AcquireAnswer {
        acquired: held.is_some(),
        hold: held.flatten(),
    }))
}

/// Releases a hold an acquisition returned.
#[utoipa::path(post, path = "/api/limiters/{name}/release", tag = "limiters",
    request_body = ReleaseRequest,
    params(("name" = String, Path, description = "the limiter's name")),
    responses((status = 200, body = ReleaseAnswer), (status = "4XX", body = crate::error::ErrorBody)))]
pub(crate) async fn release(
    State(state): State<AppState>,
    NamePath(name): NamePath,
    Body(request): Body<ReleaseRequest>,
) -> Result<Json<ReleaseAnswer>, ApiError> {
    let released = state.runtime.release_limiter(&name, request.hold).await?;
    Ok(Json(ReleaseAnswer { released }))
}
