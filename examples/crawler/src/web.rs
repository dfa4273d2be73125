//! The crawler's **web** routes: its page, and the JSON routes that page uses.
//!
//! Every browser gets a session: a random id in an `HttpOnly`, `SameSite=Strict` cookie, set on
//! its first request. A crawl is launched with a name derived from that session (never the
//! cookie itself) as its Offstage `owner` and `key` (with `on_conflict: reject`, so two Runs
//! racing still start one crawl). The page watches and stops its crawls through Offstage's own
//! API, mounted beside these routes at `/offstage`, with a scoped token `GET /token` mints for
//! the session's owner: the token reaches this session's crawls and nothing else, so another
//! browser's crawl is a 404 to it. This app has no relay, no event stream and no ownership
//! check of its own.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (and `/assets/app.js`, `/assets/style.css`) |
//! | `GET /token` | a scoped token for this session's crawls: read and kill, short-lived |
//! | `POST /crawls` `{sitemap}` | launch a crawl owned by this session → 201 and the task |
//! | `GET /pages` | how many pages the table holds |
//! | `GET /search?q=` | pages whose text has the words, best first |

use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use offstage::{ListFilter, Runtime, TaskRecord, TaskType};
use offstage_server::{ApiError, AppState, Rights, Scope, ScopedTokens};
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
    /// True when Offstage's dashboard at `/offstage` is open to whoever runs the app (on a
    /// loopback address, or with a control token), for the page to link to it.
    pub dashboard: bool,
    /// What `GET /token` signs with: the secret Offstage's router at `/offstage` checks.
    pub tokens: ScopedTokens,
    /// How long a token `GET /token` mints lives. The page asks for a new one halfway.
    pub token_ttl: Duration,
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

// ANCHOR: app
/// The crawler's routes, and Offstage's router at `/offstage` (its API, `/offstage.js` and the
/// dashboard) as `offstage` configures it for operators, checking the scoped tokens
/// `GET /token` mints: one secret for both, set here.
pub fn app(state: WebState, offstage: AppState) -> Router {
    let offstage = offstage.scoped_tokens(state.tokens.clone());
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(script))
        .route("/assets/style.css", get(style))
        .route("/token", get(token))
        .route("/crawls", post(start))
        .route("/pages", get(pages))
        .route("/search", get(search))
        .layer(middleware::from_fn(session))
        .with_state(state)
        // `app_at`, not `nest`: the dashboard answers at `/offstage/` too.
        .merge(offstage_server::app_at("/offstage", offstage))
}
// ANCHOR_END: app

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

// ANCHOR: start
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
// ANCHOR_END: start

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

/// `GET /pages`: how many pages the table holds.
async fn pages(State(state): State<WebState>) -> Result<Json<Value>, ApiError> {
    let count = state.pages.count().await.map_err(internal)?;
    Ok(Json(json!({ "count": count })))
}

// ANCHOR: token
/// `GET /token`: a scoped token for this session's crawls (scope `owner` = the session, rights
/// read and kill), which the page gives Offstage's browser client. It is the page's whole
/// access to Offstage: another session's crawls are outside its scope, and it can launch
/// nothing (crawls are launched by `POST /crawls`, which sets the owner). `ttl_s` says when to
/// ask again; `no-store`, since it is a credential.
async fn token(
    State(state): State<WebState>,
    Extension(Session(session)): Extension<Session>,
) -> Response {
    let minted = state.tokens.mint(
        Scope::Owner(session),
        Rights::READ_AND_KILL,
        state.token_ttl,
    );
    let body = json!({
        "token": minted.token,
        "expires_at": minted.expires_at,
        "ttl_s": state.token_ttl.as_secs(),
    });
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
// ANCHOR_END: token

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

    /// The crawler's routes and Offstage's, closed to operators (a control token), over a fresh
    /// database in a temporary directory, crawling a demo site on a free port.
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
            tokens: ScopedTokens::random(),
            token_ttl: Duration::from_secs(60),
        };
        let operators = offstage_server::Tokens::new([(
            offstage_server::Role::Control,
            "operator-secret".to_owned(),
        )]);
        let offstage = AppState::new(runtime.clone()).with_tokens(operators);
        (app(state, offstage), sitemap, runtime, dir)
    }

    /// `method uri` with the session `cookie` and the bearer `token`, if given: the status, the
    /// cookie set, and the JSON answer.
    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        (cookie, token): (Option<&str>, Option<&str>),
        body: Option<Value>,
    ) -> (StatusCode, Option<String>, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
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

    /// A new session: its cookie, and the token `GET /token` gives it.
    async fn session(app: &Router) -> (String, String) {
        let (status, cookie, minted) = call(app, "GET", "/token", (None, None), None).await;
        assert_eq!(status, StatusCode::OK, "{minted}");
        let cookie = cookie.expect("a session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let cookie = cookie.split(';').next().unwrap().to_owned();
        (cookie, minted["token"].as_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn a_sessions_token_reaches_its_own_crawls_and_no_others() {
        let (app, sitemap, runtime, dir) = app_and_sitemap().await;
        let (mine, token) = session(&app).await;
        let me = (Some(mine.as_str()), Some(token.as_str()));

        // The crawl belongs to the session: its owner is derived from the cookie, and never is
        // the cookie (a secret).
        let body = json!({ "sitemap": sitemap });
        let (status, _, task) = call(&app, "POST", "/crawls", me, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
        let id = task["id"].as_str().unwrap().to_owned();
        let secret = mine.split_once('=').map(|(_, v)| v).unwrap();
        assert_eq!(task["owner"], Session::of_cookie(secret).0.as_str());
        assert_ne!(task["owner"], secret);
        let body = json!({ "sitemap": sitemap });
        let (status, _, error) = call(&app, "POST", "/crawls", me, Some(body)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{error}");

        // Its token finds it running through Offstage's API: what the page reattaches to.
        let list = "/offstage/api/tasks?name=crawler.crawl";
        let (status, _, found) = call(&app, "GET", list, me, None).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found["tasks"][0]["id"], id.as_str());
        assert_eq!(found["tasks"][0]["status"], "running");

        // Another session's token sees nothing of it and may not stop it: 404, as for no task.
        let (other, other_token) = session(&app).await;
        let them = (Some(other.as_str()), Some(other_token.as_str()));
        let (_, _, found) = call(&app, "GET", list, them, None).await;
        assert_eq!(found["tasks"], json!([]));
        let show = format!("/offstage/api/tasks/{id}");
        let (status, _, _) = call(&app, "GET", &show, them, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let kill = format!("/offstage/api/tasks/{id}/kill");
        let (status, _, _) = call(&app, "POST", &kill, them, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Without a token, Offstage's API is the operator's: closed here.
        let (status, _, _) = call(&app, "GET", &show, (Some(&mine), None), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Nor may the session's token launch: crawls are launched through the app.
        let launch = json!({ "name": "crawler.crawl", "args": { "sitemap": sitemap } });
        let (status, _, _) = call(&app, "POST", "/offstage/api/tasks", me, Some(launch)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // Its own token stops it: killed, its pages so far kept.
        let (status, _, record) = call(&app, "POST", &kill, me, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{record}");
        let record = runtime.get(id.parse().unwrap()).await.unwrap().wait().await;
        let record = record.unwrap();
        assert_eq!(record.status, offstage::Status::Killed);
        let (_, _, pages) = call(&app, "GET", "/pages", me, None).await;
        // The state has no `done` yet if the kill came while the sitemap was being read.
        let done = record.state["done"].as_u64().unwrap_or(0);
        assert_eq!(pages["count"].as_u64(), Some(done));
        runtime.shutdown().await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn an_https_or_missing_sitemap_is_refused_with_a_reason() {
        let (app, _, runtime, dir) = app_and_sitemap().await;
        let body = json!({ "sitemap": "https://example.com/sitemap.xml" });
        let (status, _, error) = call(&app, "POST", "/crawls", (None, None), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plain http"));
        let (status, _, error) = call(&app, "POST", "/crawls", (None, None), Some(json!({}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        runtime.shutdown().await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
