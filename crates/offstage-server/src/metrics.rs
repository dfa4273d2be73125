//! `GET /metrics`: Prometheus text exposition.
//!
//! Task counts by name and status and the queue depth come from the store at scrape time (so
//! they cover every node sharing the database). The timing histograms (queue wait, run time,
//! end to end, per task type: [`offstage::Runtime::timings`]) are this node's, counted by its
//! executor for the attempts it ran, so Prometheus adds the nodes' series up. Nothing here
//! subscribes to the event stream: on PostgreSQL it carries every node's tasks, and a
//! histogram fed by it counted other nodes' tasks on each of them.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use offstage::Status;

use crate::error::ApiError;
use crate::AppState;

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let counts = state.runtime.counts().await?;
    let mut out = String::new();
    out.push_str("# HELP offstage_tasks Tasks in the store, by task type and status.\n");
    out.push_str("# TYPE offstage_tasks gauge\n");
    let mut queued = 0;
    for (name, status, count) in &counts {
        let _ = writeln!(
            out,
            "offstage_tasks{{name=\"{}\",status=\"{status}\"}} {count}",
            label(name)
        );
        if *status == Status::Queued {
            queued += count;
        }
    }
    out.push_str(
        "# HELP offstage_queue_depth Tasks waiting to start.\n# TYPE offstage_queue_depth gauge\n",
    );
    let _ = writeln!(out, "offstage_queue_depth {queued}");
    out.push_str(
        "# HELP offstage_running Tasks running on this node.\n# TYPE offstage_running gauge\n",
    );
    let _ = writeln!(out, "offstage_running {}", state.runtime.running());
    out.push_str("# HELP offstage_events_total Events published on this node.\n# TYPE offstage_events_total counter\n");
    let _ = writeln!(
        out,
        "offstage_events_total {}",
        state.runtime.events_published()
    );
    timings(&mut out, &state.runtime.timings());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

/// The timing histograms of the attempts this node ran, per task type.
fn timings(out: &mut String, all: &[offstage::TypeTimings]) {
    out.push_str(
        "# HELP offstage_task_queue_wait_seconds Time from when a task was due (launched, or the \
         end of its delay or retry backoff) to when an attempt started, on this node.\n\
         # TYPE offstage_task_queue_wait_seconds histogram\n",
    );
    for timings in all {
        let labels = format!("name=\"{}\"", label(&timings.name));
        histogram(
            out,
            "offstage_task_queue_wait_seconds",
            &labels,
            &timings.wait,
        );
    }
    out.push_str(
        "# HELP offstage_task_run_seconds Run time of the attempts that ended on this node, by \
         how the attempt ended (retried: failed and queued again).\n\
         # TYPE offstage_task_run_seconds histogram\n",
    );
    for timings in all {
        for (status, run) in &timings.run {
            let labels = format!("name=\"{}\",status=\"{status}\"", label(&timings.name));
            histogram(out, "offstage_task_run_seconds", &labels, run);
        }
    }
    out.push_str(
        "# HELP offstage_task_end_to_end_seconds Time from launch to the terminal status of \
         the tasks that ended on this node, by that status.\n\
         # TYPE offstage_task_end_to_end_seconds histogram\n",
    );
    for timings in all {
        for (status, total) in &timings.end_to_end {
            let labels = format!("name=\"{}\",status=\"{status}\"", label(&timings.name));
            histogram(out, "offstage_task_end_to_end_seconds", &labels, total);
        }
    }
}

fn histogram(out: &mut String, metric: &str, labels: &str, histogram: &offstage::Histogram) {
    for (bound, count) in histogram.cumulative() {
        let bound = if bound.is_infinite() {
            "+Inf".to_owned()
        } else {
            bound.to_string()
        };
        let _ = writeln!(out, "{metric}_bucket{{{labels},le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{metric}_sum{{{labels}}} {}", histogram.sum);
    let _ = writeln!(out, "{metric}_count{{{labels}}} {}", histogram.count);
}
