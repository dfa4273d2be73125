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
//!
//! To show an app's users their own tasks from the browser, mint them [scoped tokens](scoped)
//! ([`ScopedTokens`], or `POST /api/tokens`): signed, expiring, for one task or one owner.
//! `docs/end-users.md` explains the model and its threat model.
//!
//! # Feature flags
//!
//! | Feature    | Default | What it turns on |
//! |------------|---------|------------------|
//! | `cli`      | yes     | The `offstage` binary: `serve`, `config`, `migrate`, `worker` and the client commands (`clap`, `reqwest`, `indicatif`, `toml`, `tracing-subscriber`, and the library's `worker`). |
//! | `postgres` | yes     | `offstage serve --db postgres://…`: the library's PostgreSQL store. |
//! | `otel`     | yes     | The library's task spans and, in `offstage serve`, an OTLP exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. |
//!
//! An app that mounts the router turns the default features off
//! (`default-features = false`) and needs none of them: the router is always there.

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
pub mod scoped;
pub mod sites;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};

use auth::Gate;
pub use auth::{Access, Role, Tokens};
pub use error::ApiError;
pub use scoped::{Grant, Minted, Rights, Scope, ScopedTokens};
pub use sites::Sites;

/// Checks a trace URL template (`--trace-url`, [`AppState::trace_url`]): an `http://` or
/// `https://` URL with `{trace_id}` where the trace id goes.
pub fn parse_trace_url(template: &str) -> Result<String, String> {
    let template = template.trim();
    if !(template.starts_with("https://") || template.starts_with("http://")) {
        return Err(format!(
            "the trace URL `{template}` is not an http:// or https:// URL: give the tracing \
             backend's page of a trace, as https://jaeger.example/trace/{{trace_id}}"
        ));
    }
    if !template.contains("{trace_id}") {
        return Err(format!(
            "the trace URL `{template}` has no {{trace_id}}: put it where the trace id goes, as \
             in https://jaeger.example/trace/{{trace_id}}"
        ));
    }
    Ok(template.to_owned())
}

/// Largest request body the API reads.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The runtime the API drives.
    pub runtime: offstage::Runtime,
    /// Who may do what.
    pub tokens: Tokens,
    /// The host names the API answers to and the origins that may change things, beyond the
    /// defaults (see [`sites`]).
    pub sites: Sites,
    /// The secret scoped tokens are signed with (see [`scoped`]). [`AppState::new`] makes one
    /// up at random: the tokens it signs are good on this process only, until it stops.
    pub scoped_tokens: ScopedTokens,
    /// The web origins whose pages may call the API from the browser (CORS), with a token;
    /// none by default. [`app`] adds each to the allowed origins of [`AppState::sites`], so the
    /// two lists cannot disagree.
    pub cors_origins: Vec<String>,
    /// Where the dashboard links a task's trace id: a URL with `{trace_id}` in it (see
    /// [`AppState::trace_url`]); no link when `None`.
    pub trace_url: Option<String>,
}

impl AppState {
    /// An open API (no tokens) over `runtime`.
    pub fn new(runtime: offstage::Runtime) -> Self {
        Self {
            runtime,
            tokens: Tokens::default(),
            sites: Sites::default(),
            scoped_tokens: ScopedTokens::random(),
            cors_origins: Vec::new(),
            trace_url: None,
        }
    }

    /// The same state, with the dashboard's task page linking the task's trace id to
    /// `template` with `{trace_id}` replaced (`https://jaeger.example/trace/{trace_id}`): the
    /// tracing backend's page of the trace. `GET /api/me` hands it to the dashboard.
    ///
    /// # Panics
    ///
    /// If `template` is not an http(s) URL with `{trace_id}` in it ([`parse_trace_url`] says
    /// why).
    pub fn trace_url(mut self, template: &str) -> Self {
        self.trace_url = Some(parse_trace_url(template).unwrap_or_else(|e| panic!("{e}")));
        self
    }

    /// The same state, signing and checking scoped tokens with `tokens`: give it the
    /// [`ScopedTokens`] the app mints with, and every node on one database the same secret.
    pub fn scoped_tokens(mut self, tokens: ScopedTokens) -> Self {
        self.scoped_tokens = tokens;
        self
    }

    /// The same state, answering browsers' cross-origin requests (CORS) from pages on `origin`
    /// (`https://app.example`, as the browser sends it in `Origin`; `*` for any): `GET` and
    /// `POST` with the headers `Authorization`, `Content-Type` and `Last-Event-ID`. This is how
    /// a page on the app's origin uses a scoped token against an Offstage server on another
    /// origin. The origin is also allowed to change things ([`AppState::allow_origin`]), so
    /// its pages' kills pass the cross-site check; what they may do is still what their token
    /// allows.
    ///
    /// # Panics
    ///
    /// If `origin` is not an origin (the message says what is expected).
    pub fn cors_origin(mut self, origin: &str) -> Self {
        let origin = Sites::parse_origin(origin).unwrap_or_else(|e| panic!("{e}"));
        self.cors_origins.push(origin);
        self
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

/// The middleware that lets a route group's requests through as `gate` allows, with their
/// `Access` for the handlers (`auth::require`).
macro_rules! guard {
    ($state:expr, $gate:expr $(,)?) => {
        middleware::from_fn_with_state(($state.clone(), $gate), auth::require)
    };
}

/// The whole HTTP API as a router.
pub fn app(mut state: AppState) -> Router {
    // A page the browser may let call the API (CORS) may also change things through it: one
    // list for both checks, whatever order the state was built in.
    for origin in &state.cors_origins {
        state.sites = state
            .sites
            .clone()
            .allow_origin(origin)
            .unwrap_or_else(|e| panic!("AppState::cors_origins: {e}"));
    }
    // Tasks seen through a role or a scoped token (the handlers hold the latter to its scope).
    let scoped = Router::new()
        .route("/api/tasks", get(api::tasks::list))
        .route("/api/tasks/{id}", get(api::tasks::show))
        .route("/api/tasks/{id}/logs", get(api::tasks::logs))
        .route("/api/tasks/{id}/signals", get(api::signals::list))
        .route_layer(guard!(
            &state,
            Gate::Scoped {
                role: Role::Read,
                query: false,
            },
        ));
    // The same for the event streams, whose scoped token may also be in the URL.
    let events = Router::new()
        .route("/api/tasks/{id}/events", get(api::events::task))
        .route("/api/events", get(api::events::all))
        .route_layer(guard!(
            &state,
            Gate::Scoped {
                role: Role::Read,
                query: true,
            },
        ));
    let read = Router::new()
        .route("/api/task-types", get(api::tasks::task_types))
        .route("/api/nodes", get(api::fleet::nodes))
        .route("/api/schedules", get(api::schedules::list))
        .route("/api/schedules/{name}", get(api::schedules::show))
        .route("/api/shared", get(api::shared::list))
        .route("/api/shared/{name}", get(api::shared::show))
        .route("/api/shared/{name}/events", get(api::shared::events))
        .route("/api/stats", get(api::stats::stats))
        .route("/api/limiters", get(api::limiters::list))
        .route("/metrics", get(metrics::metrics))
        // Who did what: the record of bulk actions.
        .route("/api/actions", get(api::actions::list))
        .route("/api/actions/{id}", get(api::actions::show))
        .route_layer(guard!(&state, Gate::Role(Role::Read)));
    let launch = Router::new()
        .route("/api/tasks", post(api::tasks::launch))
        // A rerun is a launch (of a task that is over), with the original's options.
        .route("/api/tasks/{id}/rerun", post(api::actions::rerun))
        .route_layer(guard!(&state, Gate::Role(Role::Launch)));
    // A scoped token with the `kill` right kills within its scope; one with the `signal`
    // right sends signals there.
    let kill = Router::new()
        .route("/api/tasks/{id}/kill", post(api::tasks::kill))
        .route("/api/tasks/{id}/signals/{name}", post(api::signals::send))
        .route_layer(guard!(
            &state,
            Gate::Scoped {
                role: Role::Control,
                query: false,
            },
        ));
    let control = Router::new()
        .route("/api/tasks", axum::routing::delete(api::tasks::purge))
        // Kill, purge or rerun every task matching a filter: control (which includes launch,
        // for reruns).
        .route("/api/actions", post(api::actions::start))
        // A token reaches as far as whoever minted it: an operator's grant.
        .route("/api/tokens", post(api::tokens::mint))
        // Overwrites whatever tasks wrote: an operator's action, like a kill.
        .route("/api/shared/{name}", axum::routing::put(api::shared::set))
        // Schedules launch on their own from then on: more than one launch's worth of trust.
        .route(
            "/api/schedules/{name}",
            axum::routing::put(api::schedules::put).delete(api::schedules::delete),
        )
        .route("/api/schedules/{name}/pause", post(api::schedules::pause))
        .route("/api/schedules/{name}/resume", post(api::schedules::resume))
        // Changes every node's budget for an outside API: an operator's action.
        .route(
            "/api/limiters/{name}",
            axum::routing::put(api::limiters::put).delete(api::limiters::delete),
        )
        // Holds work back on every node, or lets it go: an operator's action.
        .route("/api/task-types/{name}/pause", post(api::fleet::pause))
        .route("/api/task-types/{name}/resume", post(api::fleet::resume))
        .route_layer(guard!(&state, Gate::Role(Role::Control)));
    // A limiter's permits: for whoever launches work and for workers that run it (a Python
    // task acquires with its worker token).
    let limiter = Router::new()
        .route("/api/limiters/{name}/acquire", post(api::limiters::acquire))
        .route("/api/limiters/{name}/release", post(api::limiters::release))
        .route_layer(guard!(&state, Gate::Either(Role::Launch, Role::Worker)));
    let worker = Router::new()
        .route("/api/workers", get(api::workers::connect))
        .route_layer(guard!(&state, Gate::Role(Role::Worker)));
    let router = Router::new()
        .merge(scoped)
        .merge(events)
        .merge(read)
        .merge(worker)
        .merge(limiter)
        .merge(launch)
        .merge(kill)
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
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    // Inside the site check: a host it refuses gets no CORS answer either.
    let router = match cors(&state.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        // Outermost: a request from a site that may not use the API is refused before any
        // token check or handler sees it.
        .layer(middleware::from_fn_with_state(state.clone(), sites::guard))
        .with_state(state)
}

/// The CORS layer for `origins` (already parsed by [`Sites::parse_origin`]); none for none.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
