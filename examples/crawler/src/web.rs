//! The crawler's **web** routes: its page, and the JSON and SSE routes that page uses.
//!
//! Every browser gets a session: a random id in an `HttpOnly`, `SameSite=Strict` cookie, set on
//! its first request. A crawl is launched with a name derived from that session (never the
//! cookie itself) as its Offstage `owner` and `key` (with `on_conflict: reject`, so two Runs
//! racing still start one crawl), and every route that touches a crawl checks it, so one browser can watch and stop only its own
//! crawls; another's is a 403. The page needs none of Offstage's own API: its live progress
//! comes from `GET /crawls/{id}/events`, which relays the runtime's events for that one task.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (and `/assets/app.js`, `/assets/style.css`) |
//! | `POST /crawls` `{sitemap}` | launch a crawl owned by this session → 201 and the task |
//! | `GET /crawls/current` | this session's latest crawl still running (or `null`), and the page count |
//! | `GET /crawls/{id}/events` | SSE: a `snapshot` of the task, then its `state`, `log` and `finished` events |
//! | `POST /crawls/{id}/stop` | kill the crawl; answers with its final record |
//! | `GET /search?q=` | pages whose text has the words, best first |

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::{Stream, StreamExt};
use offstage::{EventKind, ListFilter, Runtime, TaskId, TaskRecord, TaskType};
use offstage_server::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::crawl::{check_url, Crawl, CrawlArgs};
use crate::pages::Pages;

/// The session cookie's name.
const COOKIE: &str = "crawler_session";

/// What the routes share.
#[derive(Clone, Debug)]
pub struct WebState {
    /// The runtime crawls run on.
    pub runtime: Runtime,
    /// The pages table, for search.
    pub pages: Pages,
    /// What the sitemap box holds when the page opens: the demo site's sitemap.
    pub default_sitemap: String,
    /// True when Offstage's dashboard is mounted at `/offstage`, for the page to link to it.
    pub dashboard: bool,
}

/// Who the browser is, as its crawls' `owner`: a name derived from its session cookie (a
/// SHA-1 name-based UUID), never the cookie itself, since owners are shown wherever Offstage's
/// API and dashboard are open, and the cookie is the browser's secret.
#[derive(Clone, Debug)]
struct Session(String);

impl Session {
    fn of_cookie(secret: &str) -> Session {
        Session(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, secret.as_bytes()).to_string())
    }
}

/// The crawler's routes.
pub fn app(state: WebState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(script))
        .route("/assets/style.css", get(style))
        .route("/crawls", post(start))
        .route("/crawls/current", get(current))
        .route("/crawls/{id}/events", get(events))
        .route("/crawls/{id}/stop", post(stop))
        .route("/search", get(search))
        .layer(middleware::from_fn(session))
        .with_state(state)
}

/// Finds the request's session in its cookie, or makes one and sets the cookie on the answer.
async fn session(mut request: Request, next: Next) -> Response {
    let known = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| uuid::Uuid::try_parse(value).is_ok());
    let (id, new) = match known {
        Some(id) => (id, false),
        None => (uuid::Uuid::new_v4().to_string(), true),
    };
    request.extensions_mut().insert(Session::of_cookie(&id));
    let mut response = next.run(request).await;
    if new {
        let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The page only loads files from this app and talks only to it.
const CSP: &str = "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the page, with the demo site's sitemap in the box.
async fn index(State(state): State<WebState>) -> Response {
    let page = include_str!("../assets/index.html")
        .replace("{{sitemap}}", &escape_attribute(&state.default_sitemap))
        .replace(
            "{{dashboard}}",
            if state.dashboard {
                " · <a href=\"/offstage\">every task on Offstage's dashboard</a>"
            } else {
                ""
            },
        );
    asset("text/html; charset=utf-8", page)
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js").to_owned(),
    )
}

async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../assets/style.css").to_owned(),
    )
}

fn escape_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(Deserialize)]
struct StartBody {
    sitemap: String,
}

/// `POST /crawls`: launches a crawl owned by this session. One at a time per session: a second
/// while the first runs is a 409 that names the first.
async fn start(
    State(state): State<WebState>,
    Extension(Session(session)): Extension<Session>,
    body: Result<Json<StartBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<TaskRecord>), ApiError> {
    let Json(StartBody { sitemap }) = body.map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("send JSON like {{\"sitemap\": \"http://…/sitemap.xml\"}}: {e}"),
        )
    })?;
    let sitemap = sitemap.trim().to_owned();
    check_url(&sitemap).map_err(|e| ApiError::bad_request("invalid_sitemap", e))?;
    if let Some(running) = running_crawl(&state.runtime, &session).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_crawling",
            format!(
                "crawl {} is still running: stop it, or wait for it to end, before starting another",
                running.id
            ),
        ));
    }
    // The look above gives the friendly answer; the key makes it hold when two Runs race.
    let task = state
        .runtime
        .launch::<Crawl>(CrawlArgs { sitemap })
        .owner(session.clone())
        .key(session)
        .on_conflict(offstage::OnConflict::Reject)
        .await
        .map_err(|error| {
            if error.kind() == offstage::ErrorKind::Conflict {
                ApiError::new(StatusCode::CONFLICT, "already_crawling", error.message())
            } else {
                error.into()
            }
        })?;
    Ok((StatusCode::CREATED, Json(task.snapshot().clone())))
}

/// This session's latest crawl that is still queued or running.
async fn running_crawl(rt: &Runtime, session: &str) -> Result<Option<TaskRecord>, ApiError> {
    let filter = ListFilter {
        name: Some(Crawl::NAME.to_owned()),
        owner: Some(session.to_owned()),
        limit: Some(20),
        ..ListFilter::default()
    };
    // Newest first; a session has at most one running at a time, but older ones may linger
    // `queued` or `running` on a node that died, until recovery marks them `missing`.
    let tasks = rt.list(&filter).await?;
    for task in tasks.into_iter().filter(TaskRecord::is_running) {
        // The list comes from the store; the runtime's own answer is the live one.
        let record = rt.record(task.id).await?;
        if record.is_running() {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

/// `GET /crawls/current`: what the page reattaches to when it opens.
async fn current(
    State(state): State<WebState>,
    Extension(Session(session)): Extension<Session>,
) -> Result<Json<Value>, ApiError> {
    let task = running_crawl(&state.runtime, &session).await?;
    let pages = state.pages.count().await.map_err(internal)?;
    Ok(Json(json!({ "task": task, "pages": pages })))
}

/// Task `id`, if it is a crawl of this session's: 404 for no such crawl, 403 for someone
/// else's.
async fn owned(rt: &Runtime, id: &str, session: &str) -> Result<TaskRecord, ApiError> {
    let id: TaskId = id.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!("`{id}` is not a task id: use the id POST /crawls answered with"),
        )
    })?;
    let record = rt.record(id).await?;
    if record.name != Crawl::NAME {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_a_crawl",
            format!("task {id} is not a crawl"),
        ));
    }
    if record.owner.as_deref() != Some(session) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_your_crawl",
            format!(
                "crawl {id} was started by another browser session: only the session that \
                 started a crawl may watch or stop it"
            ),
        ));
    }
    Ok(record)
}

/// `POST /crawls/{id}/stop`: kills the crawl (it stops between two pages) and answers with its
/// final record, status `killed` (or `completed`, if it ended first).
async fn stop(
    State(state): State<WebState>,
    Extension(Session(session)): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Json<TaskRecord>, ApiError> {
    let record = owned(&state.runtime, &id, &session).await?;
    Ok(Json(state.runtime.kill(record.id).await?))
}

/// `GET /crawls/{id}/events`: the crawl's record as a `snapshot` event, then each of its events
/// as it happens (`state`, `log`, `finished`). The stream ends after `finished`; a crawl already
/// over gets its `snapshot` and then `finished` at once.
async fn events(
    State(state): State<WebState>,
    Extension(Session(session)): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let record = owned(&state.runtime, &id, &session).await?;
    // The record now and every event after it; for a crawl already over, only `finished`.
    let (record, subscription) = state.runtime.follow(record.id).await?;
    let snapshot = futures::stream::once(async move { Ok(sse("snapshot", &record)) });
    let live = subscription.into_stream().filter_map(|event| async move {
        match event {
            Ok(event) => match &event.kind {
                EventKind::State { state } => Some(Ok(sse("state", state))),
                EventKind::Log { line } => Some(Ok(sse("log", line))),
                EventKind::Finished { task } => Some(Ok(sse("finished", task))),
                EventKind::Launched { .. } | EventKind::Started { .. } => None,
            },
            // Missed events: the page asks for a fresh snapshot by reconnecting.
            Err(offstage::RecvError::Gap { .. }) => Some(Ok(sse("gap", &json!({})))),
            Err(offstage::RecvError::Closed) => None,
        }
    });
    Ok(Sse::new(snapshot.chain(live))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn sse(name: &str, data: &impl serde::Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| SseEvent::default().comment("unserializable event skipped"))
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /search?q=`: up to 50 pages whose text has every word, best first.
async fn search(
    State(state): State<WebState>,
    Query(SearchQuery { q }): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let hits = state.pages.search(&q).await.map_err(internal)?;
    Ok(Json(json!({ "query": q, "hits": hits })))
}

fn internal(error: crate::pages::Error) -> ApiError {
    offstage::Error::new(offstage::ErrorKind::Store, error.to_string()).into()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::demo_site::DemoSite;

    /// The crawler's routes over a fresh database in a temporary directory, crawling a demo
    /// site on a free port.
    async fn app_and_sitemap() -> (Router, String, Runtime, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("crawler-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("crawler.db");
        let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sitemap = format!("http://{}/sitemap.xml", site.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(site, DemoSite { pages: 50 }.router()).await });
        let pages = Pages::open(&db).unwrap();
        let runtime = Runtime::builder()
            .sqlite(&db)
            .register(Crawl {
                pages: pages.clone(),
                http: Crawl::client(),
                delay: Duration::from_millis(20),
            })
            .build()
            .await
            .unwrap();
        let state = WebState {
            runtime: runtime.clone(),
            pages,
            default_sitemap: sitemap.clone(),
            dashboard: false,
        };
        (app(state), sitemap, runtime, dir)
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        cookie: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Option<String>, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let set_cookie = response
            .headers()
            .get(header::SET_COOKIE)
            .map(|value| value.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, set_cookie, json)
    }

    #[tokio::test]
    async fn only_the_session_that_started_a_crawl_may_stop_it() {
        let (app, sitemap, runtime, dir) = app_and_sitemap().await;

        // A first request gets a session cookie, and the crawl belongs to that session.
        let body = json!({ "sitemap": sitemap });
        let (status, cookie, task) = call(&app, "POST", "/crawls", None, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
        let cookie = cookie.expect("a session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let mine = cookie.split(';').next().unwrap().to_owned();
        let id = task["id"].as_str().unwrap().to_owned();
        // The owner is derived from the cookie, and never is the cookie (a secret).
        let secret = mine.split_once('=').map(|(_, v)| v).unwrap();
        assert_eq!(task["owner"], Session::of_cookie(secret).0.as_str());
        assert_ne!(task["owner"], secret);

        // That session finds it running; a second Run while it runs is refused.
        let (_, again, current) = call(&app, "GET", "/crawls/current", Some(&mine), None).await;
        assert_eq!(again, None, "a known session keeps its cookie");
        assert_eq!(current["task"]["id"], id.as_str());
        let body = json!({ "sitemap": sitemap });
        let (status, _, error) = call(&app, "POST", "/crawls", Some(&mine), Some(body)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{error}");

        // Another session sees nothing of it and may not stop or watch it.
        let other = format!("{COOKIE}={}", uuid::Uuid::new_v4());
        let (_, _, current) = call(&app, "GET", "/crawls/current", Some(&other), None).await;
        assert_eq!(current["task"], Value::Null);
        let stop = format!("/crawls/{id}/stop");
        let (status, _, error) = call(&app, "POST", &stop, Some(&other), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error["error"]["code"], "not_your_crawl");
        let events = format!("/crawls/{id}/events");
        let (status, _, _) = call(&app, "GET", &events, Some(&other), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = call(&app, "POST", "/crawls/nonsense/stop", Some(&mine), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // Its own session stops it: killed, its pages so far kept.
        let (status, _, record) = call(&app, "POST", &stop, Some(&mine), None).await;
        assert_eq!(status, StatusCode::OK, "{record}");
        assert_eq!(record["status"], "killed");
        let (_, _, current) = call(&app, "GET", "/crawls/current", Some(&mine), None).await;
        assert_eq!(current["task"], Value::Null);
        // The state has no `done` yet if the kill came while the sitemap was being read.
        let done = record["state"]["done"].as_u64().unwrap_or(0);
        assert_eq!(current["pages"].as_u64(), Some(done));
        runtime.shutdown().await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn an_https_or_missing_sitemap_is_refused_with_a_reason() {
        let (app, _, runtime, dir) = app_and_sitemap().await;
        let body = json!({ "sitemap": "https://example.com/sitemap.xml" });
        let (status, _, error) = call(&app, "POST", "/crawls", None, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plain http"));
        let (status, _, error) = call(&app, "POST", "/crawls", None, Some(json!({}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        runtime.shutdown().await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
