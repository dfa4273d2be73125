//! The task commands: `launch`, `types`, `list`, `show`, `kill`, `logs` and `purge`, over
//! `/api/tasks` and `/api/task-types`.

use std::ops::ControlFlow;
use std::process::ExitCode;

use offstage::{EventKind, LogLine, TaskId, TaskRecord};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{decode, Client};
use super::{json_arg, output, urlencode, Failure, Out, Remote};

/// How many children `show` reads to count them by status.
const CHILDREN_PAGE: usize = 1000;
/// How many children `show` lists, newest first.
const CHILDREN_SHOWN: usize = 10;

/// Exit code when a waited-for task ended but did not complete.
const TASK_DID_NOT_COMPLETE: u8 = 3;

/// `offstage launch`.
#[derive(clap::Args, Debug)]
pub(crate) struct Launch {
    /// The task type's name.
    name: String,
    /// The args as JSON.
    #[arg(long, default_value = "null")]
    args: String,
    #[command(flatten)]
    options: LaunchFlags,
    /// Do not start it before this time (RFC 3339, such as 2026-12-01T03:00:00Z).
    #[arg(long, conflicts_with = "delay_s")]
    run_at: Option<String>,
    /// Do not start it for this many seconds.
    #[arg(long)]
    delay_s: Option<f64>,
    /// A key to find it by; with --on-conflict, one live task of the type per key.
    #[arg(long)]
    key: Option<String>,
    /// With --key, when a task of the type with that key is live: reject, existing or
    /// supersede.
    #[arg(long, value_parser = ["reject", "existing", "supersede"], requires = "key")]
    on_conflict: Option<String>,
    /// Wait until it ends, with a progress bar; exit 3 unless it completed.
    #[arg(long)]
    wait: bool,
    /// Like --wait, and print its log lines as they come.
    #[arg(long)]
    follow: bool,
    /// Launch it as a child of this task (its id): killed with it, and when it ends.
    #[arg(long, value_name = "ID")]
    parent: Option<String>,
    /// With --parent: leave it running when its parent ends by itself.
    #[arg(long, requires = "parent")]
    detached: bool,
    /// The concurrency key it counts under, for a task type with a limit per key (instead of
    /// the key the type takes from the owner or the args).
    #[arg(long, value_name = "KEY")]
    concurrency_key: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// The options a launch and a schedule's launches share, as flags and as the request sends
/// them: the ones given, and no others.
#[derive(clap::Args, Debug, Serialize)]
pub(crate) struct LaunchFlags {
    /// Who the task belongs to (for a schedule: each launch).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    /// Higher runs first among queued tasks.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i32>,
    /// Fail the task if it runs longer than this many seconds (fractions allowed).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_s: Option<f64>,
    /// Run it in a worker process of its own, so a kill stops it even if it never awaits.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    isolated: bool,
}

/// `POST /api/tasks`'s body, as the CLI sends it: the options given, and no others.
#[derive(Debug, Serialize)]
struct LaunchBody {
    name: String,
    args: Value,
    #[serde(flatten)]
    options: LaunchFlags,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delay_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_conflict: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    detached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency_key: Option<String>,
}

impl Launch {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let body = LaunchBody {
            args: json_arg("--args", &self.args, r#"--args '{"to": 10}'"#)?,
            name: self.name,
            options: self.options,
            run_at: self.run_at,
            delay_s: self.delay_s,
            key: self.key,
            on_conflict: self.on_conflict,
            parent: self.parent,
            detached: self.detached,
            concurrency_key: self.concurrency_key,
        };
        let body = serde_json::to_value(&body).map_err(|e| e.to_string())?;
        let answer = client.call(Method::POST, "/api/tasks", Some(&body)).await?;
        let task: TaskRecord = decode(&answer)?;
        if !(self.wait || self.follow) {
            if self.remote.json {
                out.json(&answer)?;
            } else {
                out.line(task.id)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !self.remote.json {
            eprintln!("launched {}", task.id);
        }
        wait_for(&client, task.id, self.follow, self.remote.json, out).await
    }
}

/// `offstage types`.
#[derive(clap::Args, Debug)]
pub(crate) struct Types {
    #[command(flatten)]
    remote: Remote,
}

/// `GET /api/task-types`.
#[derive(Debug, Deserialize)]
struct TaskTypes {
    task_types: Vec<TaskType>,
}

/// One task type, as `offstage types` shows it.
#[derive(Debug, Deserialize)]
pub(crate) struct TaskType {
    /// Its name.
    pub(crate) name: String,
    /// What serves it: `in-process`, and each connected worker by name.
    pub(crate) workers: Vec<String>,
    /// Its tasks run in worker processes of their own.
    pub(crate) isolated: bool,
    /// Args that fit its schema, when it gives one.
    pub(crate) args_example: Option<Value>,
    /// Paused on every node (`offstage pause`).
    #[serde(default)]
    pub(crate) paused: bool,
    /// The limit per concurrency key, for a type with one.
    #[serde(default)]
    pub(crate) concurrency_per_key: Option<u32>,
    /// Its top concurrency keys, with their running and queued counts.
    #[serde(default)]
    pub(crate) concurrency_keys: Vec<offstage::KeyCount>,
}

impl Types {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let answer = client.call(Method::GET, "/api/task-types", None).await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let types: TaskTypes = decode(&answer)?;
            out.text(&output::task_types(&types.task_types))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `offstage list`.
#[derive(clap::Args, Debug)]
pub(crate) struct List {
    /// Only tasks of this task type.
    #[arg(long)]
    name: Option<String>,
    /// Only tasks with this status: queued, running, completed, failed, killed or missing.
    #[arg(long)]
    status: Option<String>,
    /// Only tasks with this owner.
    #[arg(long)]
    owner: Option<String>,
    /// Only children of this task (its id).
    #[arg(long, value_name = "ID")]
    parent: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    remote: Remote,
}

/// `GET /api/tasks`: a page of tasks, newest first.
#[derive(Debug, Deserialize)]
struct TaskPage {
    tasks: Vec<TaskRecord>,
}

impl List {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let mut query = vec![format!("limit={}", self.limit)];
        for (key, value) in [
            ("name", self.name),
            ("status", self.status),
            ("owner", self.owner),
            ("parent", self.parent),
        ] {
            if let Some(value) = value {
                query.push(format!("{key}={}", urlencode(&value)));
            }
        }
        let path = format!("/api/tasks?{}", query.join("&"));
        let answer = client.call(Method::GET, &path, None).await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let page: TaskPage = decode(&answer)?;
            out.text(&output::table(&page.tasks))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `offstage show`.
#[derive(clap::Args, Debug)]
pub(crate) struct Show {
    /// The task's id.
    id: String,
    #[command(flatten)]
    remote: Remote,
}

impl Show {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let answer = client
            .call(Method::GET, &task_path(&self.id)?, None)
            .await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let task: TaskRecord = decode(&answer)?;
            out.text(&output::detail(&task))?;
            if let Some(line) = super::fleet::waiting_line(&answer) {
                out.text(&line)?;
            }
            // Its children: counted by status over one page of them, the newest listed.
            let path = format!("/api/tasks?parent={}&limit={CHILDREN_PAGE}", task.id);
            let page: TaskPage = decode(&client.call(Method::GET, &path, None).await?)?;
            let full = page.tasks.len() == CHILDREN_PAGE;
            out.text(&output::children(&page.tasks, full, CHILDREN_SHOWN))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `offstage kill`.
#[derive(clap::Args, Debug)]
pub(crate) struct Kill {
    /// The task's id.
    id: String,
    /// How many seconds the task gets to stop by itself before it is aborted (default: the
    /// server's --kill-grace-s).
    #[arg(long)]
    grace_s: Option<f64>,
    #[command(flatten)]
    remote: Remote,
}

impl Kill {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let path = task_path(&self.id)?;
        let body = match self.grace_s {
            Some(seconds) => serde_json::json!({ "grace_s": seconds }),
            None => serde_json::json!({}),
        };
        client
            .call(Method::POST, &format!("{path}/kill"), Some(&body))
            .await?;
        let mut last = None;
        client
            .follow(&format!("{path}/events"), None, |name, data| {
                if let Some(EventKind::Finished { task }) = task_event(name, data)? {
                    last = Some(task);
                    return Ok(ControlFlow::Break(()));
                }
                Ok(ControlFlow::Continue(()))
            })
            .await?;
        let answer = match last {
            Some(task) => as_json(&task)?,
            None => client.call(Method::GET, &path, None).await?,
        };
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let task: TaskRecord = decode(&answer)?;
            out.line(format_args!("{} {}", task.id, task.status))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `offstage logs`.
#[derive(clap::Args, Debug)]
pub(crate) struct Logs {
    /// The task's id.
    id: String,
    /// Keep printing new lines until the task ends.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    remote: Remote,
}

/// `GET /api/tasks/{id}/logs`: log lines in order.
#[derive(Debug, Deserialize)]
struct LogPage {
    lines: Vec<LogLine>,
    next_after: u64,
}

impl Logs {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let path = task_path(&self.id)?;
        let json = self.remote.json;
        let mut after = 0u64;
        loop {
            let answer = client
                .call(Method::GET, &format!("{path}/logs?after={after}"), None)
                .await?;
            let page: LogPage = decode(&answer)?;
            for line in &page.lines {
                print_line(out, line, json)?;
            }
            after = page.next_after;
            if page.lines.is_empty() {
                break;
            }
        }
        if after == 0 && !json {
            // Silence would look like a failure to read it; to stderr, so stdout stays the log.
            let yet = if self.follow { " yet" } else { "" };
            eprintln!("{} has no log lines{yet}", self.id);
        }
        if self.follow {
            client
                .follow(&format!("{path}/events"), Some(0), |name, data| {
                    match task_event(name, data)? {
                        Some(EventKind::Log { line }) if line.seq > after => {
                            print_line(out, &line, json)?;
                        }
                        Some(EventKind::Finished { .. }) => return Ok(ControlFlow::Break(())),
                        _ => {}
                    }
                    Ok(ControlFlow::Continue(()))
                })
                .await?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `offstage purge`: deletes finished tasks, with their logs.
#[derive(clap::Args, Debug)]
pub(crate) struct Purge {
    /// Only tasks that finished before this RFC 3339 time, such as 2026-11-01T00:00:00Z.
    #[arg(long)]
    finished_before: Option<String>,
    /// Keep the newest N (by launch) of the finished tasks that match; delete the rest.
    #[arg(long, value_name = "N")]
    keep_newest: Option<u64>,
    /// Only tasks of this task type.
    #[arg(long)]
    name: Option<String>,
    /// Only tasks that ended with this status: completed, failed, killed or missing.
    #[arg(long)]
    status: Option<String>,
    /// Only tasks with this owner.
    #[arg(long)]
    owner: Option<String>,
    /// Only tasks with this key.
    #[arg(long)]
    key: Option<String>,
    /// Only tasks launched at or after this RFC 3339 time.
    #[arg(long)]
    launched_after: Option<String>,
    /// Only tasks launched before this RFC 3339 time.
    #[arg(long)]
    launched_before: Option<String>,
    /// Count the tasks that would go, and delete nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    remote: Remote,
}

/// `DELETE /api/tasks`'s answer.
#[derive(Debug, Deserialize)]
struct Purged {
    purged: Option<u64>,
    would_purge: Option<u64>,
}

impl Purge {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let keep_newest = self.keep_newest.map(|n| n.to_string());
        let conditions = [
            ("finished_before", self.finished_before.as_deref()),
            ("keep_newest", keep_newest.as_deref()),
            ("name", self.name.as_deref()),
            ("status", self.status.as_deref()),
            ("owner", self.owner.as_deref()),
            ("key", self.key.as_deref()),
            ("launched_after", self.launched_after.as_deref()),
            ("launched_before", self.launched_before.as_deref()),
            ("dry_run", self.dry_run.then_some("true")),
        ];
        let query: Vec<String> = conditions
            .iter()
            .filter_map(|(name, value)| value.map(|v| format!("{name}={}", urlencode(v))))
            .collect();
        let path = format!("/api/tasks?{}", query.join("&"));
        let answer = client.call(Method::DELETE, &path, None).await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let purged: Purged = decode(&answer)?;
            match (purged.purged, purged.would_purge) {
                (_, Some(n)) => out.line(format_args!("would purge {n} tasks (dry run)"))?,
                (n, None) => out.line(format_args!("purged {} tasks", n.unwrap_or(0)))?,
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `/api/tasks/{id}` for a task id given on the command line, refused here if it is none.
fn task_path(id: &str) -> Result<String, Failure> {
    let id: TaskId = id
        .parse()
        .map_err(|e: offstage::Error| Failure::Message(e.to_string()))?;
    Ok(format!("/api/tasks/{id}"))
}

/// What a task's event stream says, typed: `None` for what is not a task event (a `gap`).
fn task_event(name: &str, data: &Value) -> Result<Option<EventKind>, Failure> {
    match name {
        "launched" | "started" | "state" | "log" | "finished" => {
            Ok(Some(decode::<offstage::Event>(data)?.kind))
        }
        _ => Ok(None),
    }
}

/// The final record a `finished` event carries, as `--json` prints it (the same fields as the
/// event's).
fn as_json(task: &TaskRecord) -> Result<Value, Failure> {
    serde_json::to_value(task).map_err(|e| Failure::Message(e.to_string()))
}

/// One log line: `seq level message`, or with `json` the line as JSON.
fn print_line(out: &mut Out, line: &LogLine, json: bool) -> Result<(), Failure> {
    if json {
        out.json_line(line)
    } else {
        out.line(output::log_line(line))
    }
}

/// Follows task `id` to its end with a progress bar; the exit code says whether it completed.
async fn wait_for(
    client: &Client,
    id: TaskId,
    show_logs: bool,
    json: bool,
    out: &mut Out,
) -> Result<ExitCode, Failure> {
    let path = format!("/api/tasks/{id}");
    let answer = client.call(Method::GET, &path, None).await?;
    let current: TaskRecord = decode(&answer)?;
    // Hidden until the task's state says how far it is: a task without progress gets no bar
    // (an empty `0/1` bar would only stand between its log lines).
    let bar = output::bar(&current.name);
    bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    let mut shown = false;
    let ended = current.status.is_terminal();
    let mut last = ended.then_some(answer);
    if ended && show_logs {
        // Over before we got here: its whole log is in the store.
        let logs = client
            .call(Method::GET, &format!("{path}/logs"), None)
            .await?;
        let page: LogPage = decode(&logs)?;
        for line in &page.lines {
            print_line(out, line, json)?;
        }
    }
    if !ended {
        client
            .follow(&format!("{path}/events"), Some(0), |name, data| {
                match task_event(name, data)? {
                    Some(EventKind::State { state }) => {
                        if let Some((done, total)) = output::progress(&state) {
                            bar.set_length(total);
                            bar.set_position(done);
                            if !shown && !json {
                                shown = true;
                                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                            }
                        }
                    }
                    // Printed above the bar, to stdout, also when stdout is not a terminal.
                    Some(EventKind::Log { line }) if show_logs => {
                        bar.suspend(|| print_line(out, &line, json))?;
                    }
                    Some(EventKind::Finished { task }) => {
                        last = Some(as_json(&task)?);
                        return Ok(ControlFlow::Break(()));
                    }
                    _ => {}
                }
                Ok(ControlFlow::Continue(()))
            })
            .await?;
    }
    bar.finish_and_clear();
    let answer = match last {
        Some(answer) => answer,
        // The stream ended without a final record: read it.
        None => client.call(Method::GET, &path, None).await?,
    };
    let task: TaskRecord = decode(&answer)?;
    if json {
        out.json(&answer)?;
    } else {
        match &task.error {
            None => out.line(format_args!(
                "{id} {} {}",
                task.status,
                task.return_value.as_ref().unwrap_or(&Value::Null)
            ))?,
            Some(error) => out.line(format_args!(
                "{id} {}: {} ({})",
                task.status, error.message, error.kind
            ))?,
        }
    }
    Ok(if task.status == offstage::Status::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(TASK_DID_NOT_COMPLETE)
    })
}
