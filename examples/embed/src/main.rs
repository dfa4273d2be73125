//! An axum app with Offstage inside: its own routes, its own task type, and Offstage's whole
//! HTTP API (and live events) mounted beside them.
//!
//! Run with `cargo run -p embed`, then:
//!
//! ```sh
//! curl -X POST localhost:3000/reports/2026-10          # the app's own route launches a task
//! curl localhost:3000/api/tasks                        # Offstage's API, same process
//! curl -N localhost:3000/api/events                    # every change, live
//! ```

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use offstage::{Context, Runtime, TaskError, TaskType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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
            ctx.checkpoint()?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            ctx.set_state(&json!({ "done": page, "total": pages }))?;
        }
        ctx.log(format!("report for {} is ready", args.month));
        Ok(format!("/files/report-{}.pdf", args.month))
    }
}

/// `POST /reports/{month}`: the app's handler launches and answers at once with the task id.
async fn launch_report(State(rt): State<Runtime>, Path(month): Path<String>) -> Json<Value> {
    match rt
        .launch::<BuildReport>(ReportArgs { month })
        .owner("demo-user")
        .await
    {
        Ok(task) => {
            Json(json!({ "task": task.id(), "watch": format!("/api/tasks/{}/events", task.id()) }))
        }
        Err(error) => Json(json!({ "error": error.to_string() })),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    rt.shutdown().await?;
    Ok(())
}
