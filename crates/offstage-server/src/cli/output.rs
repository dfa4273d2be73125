//! How the CLI shows tasks: tables for people, JSON for scripts, progress bars for waits.

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// `done`/`total` or `progress` (0..1) from a task's state, as a fraction.
pub fn progress(state: &Value) -> Option<(u64, u64)> {
    if let (Some(done), Some(total)) = (state["done"].as_u64(), state["total"].as_u64()) {
        return Some((done.min(total), total));
    }
    state["progress"]
        .as_f64()
        .map(|p| ((p.clamp(0.0, 1.0) * 1000.0) as u64, 1000))
}

pub fn bar(name: &str) -> ProgressBar {
    let bar = ProgressBar::new(1);
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(name.to_owned());
    bar
}

fn short_time(value: &Value) -> String {
    value
        .as_str()
        .and_then(|s| s.parse::<DateTime<Utc>>().ok())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One line per task.
pub fn table(tasks: &[Value]) -> String {
    let mut out = format!(
        "{:<36}  {:<16} {:<10} {:<19}  {}\n",
        "ID", "NAME", "STATUS", "LAUNCHED", "STATE"
    );
    for task in tasks {
        let mut state = text(&task["state"]);
        if state.len() > 40 {
            state.truncate(37);
            state.push_str("...");
        }
        out.push_str(&format!(
            "{:<36}  {:<16} {:<10} {:<19}  {}\n",
            text(&task["id"]),
            text(&task["name"]),
            text(&task["status"]),
            short_time(&task["launched_at"]),
            state
        ));
    }
    out
}

/// One line per task type: who serves it, and an example of its args (`--args` takes it as
/// it is).
pub fn task_types(types: &[Value]) -> String {
    let mut out = format!(
        "{:<20} {:<24} {}\n",
        "NAME", "SERVED BY", "ARGS, FOR EXAMPLE"
    );
    for task_type in types {
        let mut served: Vec<String> = task_type["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        if task_type["isolated"] == Value::Bool(true) {
            served.push("isolated".to_owned());
        }
        let served = if served.is_empty() {
            "nothing (queued)".to_owned()
        } else {
            served.join(", ")
        };
        let example = match &task_type["args_example"] {
            Value::Null => "(no schema given)".to_owned(),
            example => format!("'{example}'"),
        };
        out.push_str(&format!(
            "{:<20} {:<24} {example}\n",
            text(&task_type["name"]),
            served
        ));
    }
    out
}

/// Every field of one task, one per line.
pub fn detail(task: &Value) -> String {
    let mut out = String::new();
    for field in [
        "id",
        "name",
        "status",
        "args",
        "state",
        "return_value",
        "error",
        "launched_at",
        "started_at",
        "finished_at",
        "attempt",
        "priority",
        "key",
        "owner",
        "timeout_s",
        "isolated",
        "node",
    ] {
        out.push_str(&format!("{field:<13} {}\n", text(&task[field])));
    }
    out
}
