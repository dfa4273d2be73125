//! An app whose users watch their own background tasks live, and stop them, straight from the
//! browser: the app launches each user's task with `owner` = that user and mints the browser a
//! scoped token for that owner; the page talks to Offstage's router with it. The app has no
//! relay: no event stream and no task-reading route of its own.
//!
//! Run with `cargo run -p end-users` (or `cargo run -p end-users -- 127.0.0.1:4000 other.db`
//! for another address or database), then open <http://127.0.0.1:3002/> in two browsers: each
//! is a user, and each sees only its own reports.
//!
//! The sign-in is a cookie with a random user id, given on the first visit. It is NOT
//! authentication (anyone can send any cookie): put your app's real session where
//! `User` reads the cookie. `TOKEN_SECRET` signs the users' tokens (random by default) and
//! `OPERATOR_TOKEN` is the dashboard's `control` token (none by default); see the README.

use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use offstage::{Context, Runtime, TaskError, TaskType};
use offstage_server::{ApiError, AppState, Minted, Rights, Role, Scope, ScopedTokens, Tokens};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where it listens unless given an address: not the crawler's 3000 nor embed's 3001.
const ADDR: &str = "127.0.0.1:3002";

/// How long a token the page gets lives. The page asks for a new one when it runs out, so this
/// is how long a token that leaks stays good.
const TOKEN_TTL: Duration = Duration::from_secs(10 * 60);

/// The task type: builds a report page by page, saying how far it got.
struct BuildReport;

#[derive(Serialize, Deserialize)]
struct ReportArgs {
    pages: u32,
}

impl TaskType for BuildReport {
    const NAME: &'static str = "report.build";
    type Args = ReportArgs;
    type Output = String;

    async fn run(&self, ctx: Context, args: ReportArgs) -> Result<String, TaskError> {
        let total = args.pages;
        for done in 1..=total {
            // Stop here when the user pressed Stop (a kill).
            ctx.check_cancelled()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            ctx.set_state(&json!({ "done": done, "total": total }))?;
            ctx.log(format!("page {done} of {total} written"));
        }
        Ok(format!("a report of {total} pages"))
    }
}

/// What the app's own routes share.
#[derive(Clone)]
struct App {
    runtime: Runtime,
    /// The same secret the mounted router checks tokens with.
    tokens: ScopedTokens,
}

/// The signed-in user, read from the `user` cookie; a request without one gets 401.
struct User(String);

impl User {
    fn from_headers(headers: &HeaderMap) -> Option<User> {
        let cookies = headers.get(COOKIE)?.to_str().ok()?;
        let id = cookies
            .split(';')
            .find_map(|cookie| cookie.trim().strip_prefix("user="))?;
        Some(User(id.to_owned()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<User, ApiError> {
        User::from_headers(&parts.headers).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "not signed in: open the app's page (/) in this browser first",
            )
        })
    }
}

/// `GET /`: the page, signing in a browser that has no user yet.
async fn page(headers: HeaderMap) -> Response {
    let page = Html(include_str!("page.html"));
    if User::from_headers(&headers).is_some() {
        return page.into_response();
    }
    let cookie = format!(
        "user=u-{}; Path=/; HttpOnly; SameSite=Strict",
        uuid::Uuid::new_v4().simple()
    );
    ([(SET_COOKIE, cookie)], page).into_response()
}

#[derive(Deserialize)]
struct NewReport {
    pages: u32,
}

/// `POST /reports`: launches a report owned by the user, and answers with its id.
async fn launch_report(
    State(app): State<App>,
    User(user): User,
    Json(new): Json<NewReport>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let task = app
        .runtime
        .launch::<BuildReport>(ReportArgs { pages: new.pages })
        .owner(user)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "task": task.id() }))))
}

/// `GET /token`: a token for the user's own tasks, to read them and stop them.
async fn token(State(app): State<App>, User(user): User) -> Json<Minted> {
    Json(
        app.tokens
            .mint(Scope::Owner(user), Rights::READ_AND_KILL, TOKEN_TTL),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| ADDR.to_owned());
    let db = args.next().unwrap_or_else(|| "end-users.db".to_owned());
    let runtime = Runtime::builder()
        .sqlite(&db)
        .register(BuildReport)
        .build()
        .await?;
    // Tokens outlive a restart, and work on every node, only with a secret of the app's; without
    // one they are good until this process stops.
    let tokens = match std::env::var("TOKEN_SECRET") {
        Ok(secret) => ScopedTokens::try_new(secret.as_bytes())?,
        Err(_) => ScopedTokens::random(),
    };
    // Without a role token the API would be open to anyone who sends no token at all: the
    // operator's (dashboard, CLI) is `OPERATOR_TOKEN`, or none, and then only the users'
    // scoped tokens get in.
    let operators = match std::env::var("OPERATOR_TOKEN") {
        Ok(operator) => Tokens::new([(Role::Control, operator)]),
        Err(_) => Tokens::closed(),
    };
    let offstage = AppState::new(runtime.clone())
        .with_tokens(operators)
        .scoped_tokens(tokens.clone());
    let app = Router::new()
        .route("/", get(page))
        .route("/reports", post(launch_report))
        .route("/token", get(token))
        .with_state(App {
            runtime: runtime.clone(),
            tokens,
        })
        .merge(offstage_server::app_at("/offstage", offstage));
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
        format!(
            "cannot listen on {addr}: {e}; if another program has that port, stop it or give \
             this one another address: cargo run -p end-users -- 127.0.0.1:4000"
        )
    })?;
    println!("end-users listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(offstage_server::shutdown_signal())
        .await?;
    runtime.shutdown().await?;
    Ok(())
}
