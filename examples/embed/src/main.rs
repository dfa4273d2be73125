//! An axum app with Offstage inside: its own routes, its own task type, and Offstage's whole
//! HTTP API (and live events) mounted beside them.
//!
//! Run with `cargo run -p embed` (or `cargo run -p embed -- 127.0.0.1:4000` for another
//! address), then:
//!
//! ```sh
//! curl -X POST localhost:3001/reports/2026-10          # the app's own route launches a task
//! curl -i -X POST localhost:3001/reports/2026-10       # again while it runs: 409, with why
//! curl localhost:3001/api/tasks                        # Offstage's API, same process
//! curl -N localhost:3001/api/events                    # every change, live
//! ```
//!
//! Ctrl-C or SIGTERM stops accepting requests, then drains the running tasks.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use offstage::{Context, OnConflict, Runtime, TaskError, TaskType};
use offstage_server::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where it listens unless given an address: not the crawler's 3000, so both can run.
const ADDR: &str = "127.0.0.1:3001";

// ANCHOR: task_type
/// The app's own task type: builds a monthly report, page by page.
struct BuildReport;

#[derive(Serialize, Deserialize)]
struct ReportArgs {
    month: String,
}

impl TaskType for BuildReport {
    const NAME: &'static str = "reports.build";
    type Args = ReportArgs;
    type Output = String;

    async fn run(&self, ctx: Context, args: ReportArgs) -> Result<String, TaskError> {
        let pages = 20;
        for page in 1..=pages {
            ctx.check_cancelled()?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            ctx.set_state(&json!({ "done": page, "total": pages }))?;
        }
        ctx.log(format!("report for {} is ready", args.month));
        Ok(format!("/files/report-{}.pdf", args.month))
    }
}
// ANCHOR_END: task_type

// ANCHOR: handler
/// `POST /reports/{month}`: the app's handler launches and answers at once with the task id.
///
/// One report per month at a time: the key makes a second launch fail with
/// [`offstage::ErrorKind::Conflict`], and `?` turns that `offstage::Error` into an
/// [`ApiError`]: `409 {"error": {"code": "conflict", "message": …}}`. Every other
/// `offstage::Error` gets its own status the same way (404 for an unknown id, 422 for args
/// that do not fit, 500 with the cause logged and not sent), never a 200.
async fn launch_report(
    State(rt): State<Runtime>,
    Path(month): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let task = rt
        .launch::<BuildReport>(ReportArgs {
            month: month.clone(),
        })
        .key(month)
        .on_conflict(OnConflict::Reject)
        .owner("demo-user")
        .await?;
    let watch = format!("/api/tasks/{}/events", task.id());
    Ok((
        StatusCode::CREATED,
        Json(json!({ "task": task.id(), "watch": watch })),
    ))
}
// ANCHOR_END: handler

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| ADDR.to_owned());
    // ANCHOR: router
    let rt = Runtime::builder()
        .sqlite("embed.db")
        .register(BuildReport)
        .build()
        .await?;
    let app = Router::new()
        .route("/reports/{month}", post(launch_report))
        .with_state(rt.clone())
        .merge(offstage_server::app(offstage_server::AppState::new(
            rt.clone(),
        )));
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
        format!(
            "cannot listen on {addr}: {e}; if another program has that port, stop it or give \
             this one another address: cargo run -p embed -- 127.0.0.1:4000"
        )
    })?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(offstage_server::shutdown_signal())
        .await?;
    rt.shutdown().await?;
    // ANCHOR_END: router
    Ok(())
}
