//! How the CLI shows tasks, task types and times to people: tables, one task's fields, and
//! progress bars for waits. (`--json` prints the server's answer instead.)

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use offstage::{LogLine, TaskRecord};
use serde_json::Value;

use super::tasks::TaskType;

/// `done`/`total` or `progress` (0..1) from a task's state, as a fraction.
pub(crate) fn progress(state: &Value) -> Option<(u64, u64)> {
    if let (Some(done), Some(total)) = (state["done"].as_u64(), state["total"].as_u64()) {
        return Some((done.min(total), total));
    }
    state["progress"]
        .as_f64()
        .map(|p| ((p.clamp(0.0, 1.0) * 1000.0) as u64, 1000))
}

/// A progress bar for task type `name`'s task.
pub(crate) fn bar(name: &str) -> ProgressBar {
    let bar = ProgressBar::new(1);
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(name.to_owned());
    bar
}

/// A time to the second, in UTC; `-` for none.
pub(crate) fn short_time(time: Option<DateTime<Utc>>) -> String {
    time.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// A JSON value as a cell: strings without quotes, `-` for null.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An optional cell: `-` for none.
fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// One line per task.
pub(crate) fn table(tasks: &[TaskRecord]) -> String {
    let mut out = format!(
        "{:<36}  {:<16} {:<10} {:<19}  {}\n",
        "ID", "NAME", "STATUS", "LAUNCHED", "STATE"
    );
    for task in tasks {
        let mut state = text(&task.state);
        if let Some(signal) = &task.waiting_for {
            state = format!("waiting for {signal:?} · {state}");
        }
        if state.len() > 40 {
            // Cut on a character boundary at or before byte 37.
            let cut = (0..=37)
                .rev()
                .find(|i| state.is_char_boundary(*i))
                .unwrap_or(0);
            state.truncate(cut);
            state.push_str("...");
        }
        out.push_str(&format!(
            "{:<36}  {:<16} {:<10} {:<19}  {}\n",
            task.id.to_string(),
            task.name,
            task.status.as_str(),
            short_time(Some(task.launched_at)),
            state
        ));
    }
    out
}

/// One line per task type: who serves it, and an example of its args (`--args` takes it as
/// it is).
pub(crate) fn task_types(types: &[TaskType]) -> String {
    let mut out = format!(
        "{:<20} {:<24} {}\n",
        "NAME", "SERVED BY", "ARGS, FOR EXAMPLE"
    );
    for task_type in types {
        let mut served = task_type.workers.clone();
        if task_type.isolated {
            served.push("isolated".to_owned());
        }
        let mut served = if served.is_empty() {
            "nothing (queued)".to_owned()
        } else {
            served.join(", ")
        };
        if task_type.paused {
            served.push_str(" [paused]");
        }
        let example = match &task_type.args_example {
            None => "(no schema given)".to_owned(),
            Some(example) => format!("'{example}'"),
        };
        out.push_str(&format!(
            "{:<20} {:<24} {example}\n",
            task_type.name, served
        ));
        if let Some(per_key) = task_type.concurrency_per_key {
            let keys: Vec<String> = task_type
                .concurrency_keys
                .iter()
                .map(|k| format!("{} {} running, {} queued", k.key, k.running, k.queued))
                .collect();
            let keys = if keys.is_empty() {
                "none with work".to_owned()
            } else {
                keys.join("; ")
            };
            out.push_str(&format!("{:<20} {per_key} per key; top keys: {keys}\n", ""));
        }
    }
    out
}

/// Every field of one task, one per line.
pub(crate) fn detail(task: &TaskRecord) -> String {
    let fields = [
        ("id", task.id.to_string()),
        ("name", task.name.clone()),
        ("status", task.status.as_str().to_owned()),
        ("args", text(&task.args)),
        ("state", text(&task.state)),
        ("checkpoint", or_dash(task.checkpoint.as_ref().map(text))),
        ("checkpoint_at", short_time(task.checkpoint_at)),
        (
            "return_value",
            text(task.return_value.as_ref().unwrap_or(&Value::Null)),
        ),
        (
            "error",
            or_dash(
                task.error
                    .as_ref()
                    .map(|e| format!("{} ({})", e.message, e.kind)),
            ),
        ),
        ("launched_at", short_time(Some(task.launched_at))),
        ("run_at", short_time(Some(task.run_at))),
        ("started_at", short_time(task.started_at)),
        ("finished_at", short_time(task.finished_at)),
        ("attempt", task.attempt.to_string()),
        ("priority", task.priority.to_string()),
        ("key", or_dash(task.key.as_ref())),
        ("owner", or_dash(task.owner.as_ref())),
        ("timeout_s", or_dash(task.timeout.map(|t| t.as_secs_f64()))),
        ("isolated", task.isolated.to_string()),
        ("node", or_dash(task.node)),
        ("rerun_of", or_dash(task.rerun_of)),
        (
            "parent",
            or_dash(task.parent.map(|parent| {
                if task.detached {
                    format!("{parent} (detached)")
                } else {
                    parent.to_string()
                }
            })),
        ),
        ("concurrency_key", or_dash(task.concurrency_key.as_ref())),
        ("trace_id", or_dash(task.trace_id())),
    ];
    let mut out = String::new();
    for (field, value) in fields {
        out.push_str(&format!("{field:<13} {value}\n"));
    }
    if let Some(signal) = &task.waiting_for {
        let until = task
            .waiting_until
            .map_or_else(String::new, |u| format!(" until {}", short_time(Some(u))));
        out.push_str(&format!(
            "{:<13} waiting for {signal:?}{until}\n",
            "waiting_for"
        ));
    }
    out
}

/// A task's children as `show` prints them: how many of each status, then the newest few.
/// `children` is a page of them, newest first; `full` says there may be more.
pub(crate) fn children(children: &[TaskRecord], full: bool, shown: usize) -> String {
    if children.is_empty() {
        return "children      -\n".to_owned();
    }
    let mut by_status: Vec<(offstage::Status, usize)> = Vec::new();
    for child in children {
        match by_status
            .iter_mut()
            .find(|(status, _)| *status == child.status)
        {
            Some((_, n)) => *n += 1,
            None => by_status.push((child.status, 1)),
        }
    }
    by_status.sort_by_key(|(status, _)| offstage::Status::ALL.iter().position(|s| s == status));
    let more = if full { "+" } else { "" };
    let counts: Vec<String> = by_status
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    let mut out = format!(
        "children      {}{more} ({})\n",
        children.len(),
        counts.join(", ")
    );
    for child in children.iter().take(shown) {
        out.push_str(&format!(
            "  {}  {:<16} {}\n",
            child.id,
            child.name,
            child.status.as_str()
        ));
    }
    if children.len() > shown {
        out.push_str(&format!(
            "  ... (offstage list --parent {} for all)\n",
            children[0]
                .parent
                .map(|p| p.to_string())
                .unwrap_or_default()
        ));
    }
    out
}

/// One log line: `seq level message`.
pub(crate) fn log_line(line: &LogLine) -> String {
    format!(
        "{:>5} {:<5} {}",
        line.seq,
        line.level.as_str(),
        line.message
    )
}
