//! Offstage in one file: launch tasks, watch their live state, kill one, list them all.
//!
//! Run with `cargo run -p quickstart`. It keeps its tasks in `quickstart.db`; run it again and
//! the list shows the earlier runs too.

use std::time::Duration;

use offstage::{Context, EventKind, ListFilter, Runtime, TaskError};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Count {
    to: u64,
    interval_ms: u64,
}

/// Counts to `to`, one step per `interval_ms`, reporting `{done, total}` as its state.
async fn count(ctx: Context, args: Count) -> Result<u64, TaskError> {
    for done in 1..=args.to {
        tokio::select! {
            () = ctx.cancelled() => return Err(TaskError::cancelled()),
            () = tokio::time::sleep(Duration::from_millis(args.interval_ms)) => {}
        }
        ctx.set_state(&json!({ "done": done, "total": args.to }))?;
        if done % 5 == 0 {
            ctx.log(format!("counted to {done}"));
        }
    }
    Ok(args.to)
}

#[tokio::main]
async fn main() -> Result<(), offstage::Error> {
    let rt = Runtime::builder()
        .sqlite("quickstart.db")
        .task("count", count)
        .task("fail", |_ctx: Context, reason: String| async move {
            Err::<(), _>(TaskError::new("bad_input", reason))
        })
        .build()
        .await?;

    let mut events = rt.events();
    let short = rt
        .launch_json("count", json!({ "to": 10, "interval_ms": 50 }))
        .owner("quickstart")
        .await?;
    let long = rt
        .launch_json("count", json!({ "to": 1000, "interval_ms": 50 }))
        .owner("quickstart")
        .await?;
    let failing = rt.launch_json("fail", json!("the input was empty")).await?;
    println!(
        "launched {} (short count), {} (long count), {} (fails)",
        short.id(),
        long.id(),
        failing.id()
    );

    // Watch live: every state write and log line arrives as an event, no polling.
    let mut long_steps = 0;
    while let Ok(event) = events.recv().await {
        let who = if event.task_id == long.id() {
            "long "
        } else {
            "short"
        };
        match &event.kind {
            EventKind::State { state } if event.task_id != failing.id() => {
                println!("  {who} state {state}");
                if event.task_id == long.id() {
                    long_steps += 1;
                }
            }
            EventKind::Log { line } => println!("  {who} log   #{} {}", line.seq, line.message),
            EventKind::Finished { task } => println!("  {} finished: {}", task.name, task.status),
            _ => {}
        }
        if long_steps == 15 {
            break;
        }
    }

    // Kill the long one: it stops at its next await, keeping its last state.
    let killed = long.kill().await?;
    println!(
        "killed {}: status {}, last state {}",
        killed.id, killed.status, killed.state
    );

    let failed = failing.wait().await?;
    println!(
        "{} failed with {:?}",
        failed.id,
        failed.error.map(|e| e.to_string())
    );

    println!("\nlatest tasks in quickstart.db (newest first):");
    println!("{:<38} {:<7} {:<10} state", "id", "name", "status");
    for task in rt
        .list(&ListFilter {
            limit: Some(10),
            ..ListFilter::default()
        })
        .await?
    {
        println!(
            "{:<38} {:<7} {:<10} {}",
            task.id.to_string(),
            task.name,
            task.status.as_str(),
            task.state
        );
    }
    rt.shutdown().await
}
