//! Offstage over HTTP: the JSON API, live events over Server-Sent Events, bearer-token auth and
//! the dashboard, as an axum [`Router`] that an app mounts or the `offstage` binary serves.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = offstage::Runtime::builder().sqlite("app.db").build().await?;
//! let router = offstage_server::app(offstage_server::AppState::new(runtime));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7700").await?;
//! axum::serve(listener, router).await?;
//! # Ok(()) }
//! ```

// Every public item documented, nothing `pub` that is not reachable from the crate root, and
// nothing reachable that cannot be named: the public surface is what this file exports, and
// all of it is promised.
#![warn(missing_docs, unreachable_pub, unnameable_types)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
pub mod auth;
mod dashboard;
pub mod error;
mod extract;
pub mod metrics;
pub mod schema;
pub mod sites;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};

pub use auth::{Role, Tokens};
pub use error::ApiError;
pub use sites::Sites;

/// Largest request body the API reads.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The runtime the API drives.
    pub runtime: offstage::Runtime,
    /// Who may do what.
    pub tokens: Tokens,
    /// Task durations for `/metrics`.
    pub durations: metrics::Durations,
    /// The host names the API answers to and the origins that may change things, beyond the
    /// defaults (see [`sites`]).
    pub sites: Sites,
}

impl AppState {
    /// An open API (no tokens) over `runtime`. Call it inside a tokio runtime: it starts
    /// recording task durations for `/metrics`.
    pub fn new(runtime: offstage::Runtime) -> Self {
        let durations = metrics::Durations::record(&runtime);
        Self {
            runtime,
            tokens: Tokens::default(),
            durations,
            sites: Sites::default(),
        }
    }

    /// The same state, requiring `tokens`.
    pub fn with_tokens(mut self, tokens: Tokens) -> Self {
        self.tokens = tokens;
        self
    }

    /// The same state, also answering to the host name `host` (`offstage.example.com`, or
    /// `*.example.com` for every name under it, or `*` for any). IP addresses, `localhost`
    /// and names under `.localhost` are always answered; any other `Host` gets 403, so that
    /// no web page can reach the API by DNS rebinding (see [`sites`]).
    ///
    /// # Panics
    ///
    /// If `host` is not a host name (the message says what is expected).
    pub fn allow_host(mut self, host: &str) -> Self {
        self.sites = self
            .sites
            .allow_host(host)
            .unwrap_or_else(|e| panic!("{e}"));
        self
    }

    /// The same state, also taking state-changing requests (kill, launch, purge, ...) from
    /// pages on `origin` (`https://admin.example`, as the browser sends it in `Origin`; `*`
    /// for any). Pages on other origins get 403 for those; same-origin pages (the
    /// dashboard) and clients that send no `Origin` (the CLI, scripts) always pass.
    ///
    /// # Panics
    ///
    /// If `origin` is not an origin (the message says what is expected).
    pub fn allow_origin(mut self, origin: &str) -> Self {
        self.sites = self
            .sites
            .allow_origin(origin)
            .unwrap_or_else(|e| panic!("{e}"));
        self
    }

    /// The same state, with these hosts and origins (see [`Sites`]).
    pub fn with_sites(mut self, sites: Sites) -> Self {
        self.sites = sites;
        self
    }
}

/// [`app`] for mounting under `prefix` (such as `/offstage`): every route under it, and the
/// dashboard at both `{prefix}` and `{prefix}/` (a plain `Router::nest` answers only the
/// first). Merge it into the app's router.
///
/// ```no_run
/// # async fn demo(runtime: offstage::Runtime) {
/// let app = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "the app's own page" }))
///     .merge(offstage_server::app_at("/offstage", offstage_server::AppState::new(runtime)));
/// # }
/// ```
pub fn app_at(prefix: &str, state: AppState) -> Router {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return app(state);
    }
    Router::new()
        .nest(prefix, app(state))
        .route(&format!("{prefix}/"), get(dashboard::index))
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or, on Unix, SIGTERM (what
/// systemd, Docker and Kubernetes send). For `axum::serve(…).with_graceful_shutdown(…)`,
/// before `Runtime::shutdown` drains the tasks.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return interrupt.await.unwrap_or(()),
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// The whole HTTP API as a router.
pub fn app(state: AppState) -> Router {
    let read = Router::new()
        .route("/api/tasks", get(api::tasks::list))
        .route("/api/tasks/{id}", get(api::tasks::show))
        .route("/api/tasks/{id}/logs", get(api::tasks::logs))
        .route("/api/tasks/{id}/events", get(api::events::task))
        .route("/api/events", get(api::events::all))
        .route("/api/task-types", get(api::tasks::task_types))
        .route("/api/schedules", get(api::schedules::list))
        .route("/api/schedules/{name}", get(api::schedules::show))
        .route("/api/shared", get(api::shared::list))
        .route("/api/shared/{name}", get(api::shared::show))
        .route("/api/shared/{name}/events", get(api::shared::events))
        .route("/metrics", get(metrics::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::read));
    let launch = Router::new()
        .route("/api/tasks", post(api::tasks::launch))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::launch));
    let control = Router::new()
        .route("/api/tasks/{id}/kill", post(api::tasks::kill))
        .route("/api/tasks", axum::routing::delete(api::tasks::purge))
        // Overwrites whatever tasks wrote: an operator's action, like a kill.
        .route("/api/shared/{name}", axum::routing::put(api::shared::set))
        // Schedules launch on their own from then on: more than one launch's worth of trust.
        .route(
            "/api/schedules/{name}",
            axum::routing::put(api::schedules::put).delete(api::schedules::delete),
        )
        .route("/api/schedules/{name}/pause", post(api::schedules::pause))
        .route("/api/schedules/{name}/resume", post(api::schedules::resume))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::control));
    let worker = Router::new()
        .route("/api/workers", get(api::workers::connect))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::worker));
    Router::new()
        .merge(read)
        .merge(worker)
        .merge(launch)
        .merge(control)
        .route("/healthz", get(api::health::healthz))
        .route("/readyz", get(api::health::readyz))
        .route("/api/openapi.json", get(api::openapi::document))
        .route("/api/me", get(api::session::me))
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/offstage.js", get(dashboard::client))
        .route("/offstage.d.ts", get(dashboard::client))
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "no_such_route",
                "no such route: /api/openapi.json lists the API's routes; the dashboard is at /",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Outermost: a request from a site that may not use the API is refused before any
        // token check or handler sees it.
        .layer(middleware::from_fn_with_state(state.clone(), sites::guard))
        .with_state(state)
}
