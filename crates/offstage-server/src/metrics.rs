//! `GET /metrics`: Prometheus text exposition.
//!
//! Task counts by name and status and the queue depth come from the store at scrape time (so
//! they cover every node sharing the database); durations of tasks that ended on this node are
//! a histogram fed by the event stream.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use offstage::{EventKind, Runtime, Status};

use crate::error::ApiError;
use crate::AppState;

/// Upper bounds of the duration histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 3600.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Durations of tasks that ended on this node, by task type and status.
#[derive(Debug, Default, Clone)]
pub struct Durations {
    by_task: Arc<Mutex<BTreeMap<(String, Status), Histogram>>>,
}

impl Durations {
    /// Starts recording the durations of tasks that end on `runtime`'s node.
    pub fn record(runtime: &Runtime) -> Self {
        let durations = Self::default();
        let by_task = Arc::clone(&durations.by_task);
        let mut events = runtime.events();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        let EventKind::Finished { task } = &event.kind else {
                            continue;
                        };
                        let Some(started) = task.started_at else {
                            continue;
                        };
                        let end = task.finished_at.unwrap_or(event.at);
                        let seconds = (end - started).num_microseconds().unwrap_or(0) as f64 / 1e6;
                        let mut by_task = by_task.lock().expect("metrics poisoned");
                        by_task
                            .entry((task.name.clone(), task.status))
                            .or_default()
                            .observe(seconds);
                    }
                    Err(offstage::RecvError::Gap { .. }) => continue,
                    Err(offstage::RecvError::Closed) => return,
                }
            }
        });
        durations
    }
}

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
    out.push_str(
        "# HELP offstage_task_duration_seconds Run time of tasks that ended on this node.\n",
    );
    out.push_str("# TYPE offstage_task_duration_seconds histogram\n");
    let durations = state
        .durations
        .by_task
        .lock()
        .expect("metrics poisoned")
        .clone();
    for ((name, status), histogram) in durations {
        let labels = format!("name=\"{}\",status=\"{status}\"", label(&name));
        for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
            let _ = writeln!(
                out,
                "offstage_task_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "offstage_task_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            histogram.count
        );
        let _ = writeln!(
            out,
            "offstage_task_duration_seconds_sum{{{labels}}} {}",
            histogram.sum
        );
        let _ = writeln!(
            out,
            "offstage_task_duration_seconds_count{{{labels}}} {}",
            histogram.count
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
