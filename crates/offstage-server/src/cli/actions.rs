//! `offstage rerun` (one finished task, launched again) and `offstage bulk` (kill, purge or
//! rerun every task matching a filter: the count first, then a confirmation, then a progress
//! bar until the action ends).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use offstage::{ActionRecord, ActionStatus, TaskId, TaskRecord};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::client::decode;
use super::out::Out;
use super::{json_arg, output, Failure, Remote};

/// `offstage rerun`.
#[derive(clap::Args, Debug)]
pub(crate) struct Rerun {
    /// The id of the finished task to run again.
    id: String,
    /// The new task's args, as JSON (default: the original's).
    #[arg(long)]
    args: Option<String>,
    /// Start the new task with the original's last checkpoint, so it continues where the
    /// original stopped (the original must have saved one).
    #[arg(long)]
    from_checkpoint: bool,
    #[command(flatten)]
    remote: Remote,
}

impl Rerun {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let id: TaskId = self
            .id
            .parse()
            .map_err(|e: offstage::Error| Failure::Message(e.to_string()))?;
        let mut body = match &self.args {
            Some(text) => json!({ "args": json_arg("--args", text, r#"--args '{"n": 1}'"#)? }),
            None => json!({}),
        };
        if self.from_checkpoint {
            body["from_checkpoint"] = json!(true);
        }
        let answer = self
            .remote
            .client()
            .call(Method::POST, &format!("/api/tasks/{id}/rerun"), Some(&body))
            .await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let task: TaskRecord = decode(&answer)?;
            out.text(&output::detail(&task))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// What `offstage bulk` does to each task.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    /// Kill the live (queued or running) tasks that match.
    Kill,
    /// Delete the finished tasks that match, with their logs.
    Purge,
    /// Launch each finished task that matches again, linked to it.
    Rerun,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Kill => "kill",
            Verb::Purge => "purge",
            Verb::Rerun => "rerun",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Verb::Kill => "live",
            Verb::Purge | Verb::Rerun => "finished",
        }
    }
}

/// `offstage bulk`.
#[derive(clap::Args, Debug)]
pub(crate) struct Bulk {
    /// kill (live tasks), purge or rerun (finished tasks).
    #[arg(value_enum)]
    verb: Verb,
    /// Only tasks of this task type.
    #[arg(long)]
    name: Option<String>,
    /// Only tasks with this status.
    #[arg(long)]
    status: Option<String>,
    /// Only tasks with this owner.
    #[arg(long)]
    owner: Option<String>,
    /// Only tasks with this key.
    #[arg(long)]
    key: Option<String>,
    /// Only children of this task (its id).
    #[arg(long, value_name = "ID")]
    parent: Option<String>,
    /// Only tasks launched at or after this RFC 3339 time, such as 2026-11-01T00:00:00Z.
    #[arg(long)]
    launched_after: Option<String>,
    /// Only tasks launched before this RFC 3339 time.
    #[arg(long)]
    launched_before: Option<String>,
    /// Only print how many tasks it would act on, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// For rerun: launch at most this many a second (fractions allowed).
    #[arg(long, value_name = "N")]
    per_s: Option<f64>,
    /// Go ahead without asking (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    remote: Remote,
}

/// A dry run's answer.
#[derive(Debug, Deserialize)]
struct DryRun {
    matched: u64,
}

impl Bulk {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let mut filter = Map::new();
        for (field, value) in [
            ("name", &self.name),
            ("status", &self.status),
            ("owner", &self.owner),
            ("key", &self.key),
            ("parent", &self.parent),
            ("launched_after", &self.launched_after),
            ("launched_before", &self.launched_before),
        ] {
            if let Some(value) = value {
                filter.insert(field.to_owned(), json!(value));
            }
        }
        let mut body = json!({ "verb": self.verb.as_str(), "filter": filter, "dry_run": true });
        if let Some(per_s) = self.per_s {
            body["per_s"] = json!(per_s);
        }
        let counted = client
            .call(Method::POST, "/api/actions", Some(&body))
            .await?;
        let matched = decode::<DryRun>(&counted)?.matched;
        let verb = self.verb.as_str();
        if self.dry_run {
            if self.remote.json {
                out.json(&counted)?;
            } else {
                out.line(format_args!(
                    "{verb} would act on {matched} {} tasks (dry run)",
                    self.verb.what()
                ))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        if matched == 0 {
            if self.remote.json {
                out.json(&counted)?;
            } else {
                out.line(format_args!(
                    "no {} task matches: nothing to {verb}",
                    self.verb.what()
                ))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !self.yes {
            confirm(&format!(
                "{verb} {matched} {} tasks? [y/N] ",
                self.verb.what()
            ))?;
        }
        body["dry_run"] = json!(false);
        let started = client
            .call(Method::POST, "/api/actions", Some(&body))
            .await?;
        let mut action: ActionRecord = decode(&started)?;
        let path = format!("/api/actions/{}", action.id);
        let bar = (!self.remote.json && std::io::stderr().is_terminal()).then(|| {
            let bar = output::bar(verb);
            bar.set_length(action.matched);
            bar
        });
        // No stream carries an action's progress: it is read every quarter second.
        let mut last = started;
        while !action.is_finished() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            last = client.call(Method::GET, &path, None).await?;
            action = decode(&last)?;
            if let Some(bar) = &bar {
                bar.set_length(action.matched.max(action.done + action.failed));
                bar.set_position(action.done + action.failed);
                if action.failed > 0 {
                    bar.set_message(format!("{} failed", action.failed));
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if self.remote.json {
            out.json(&last)?;
        } else {
            out.line(format_args!(
                "{verb}: {} of {} done, {} failed ({}, action {})",
                action.done, action.matched, action.failed, action.status, action.id
            ))?;
        }
        match (action.status, action.failed, &action.error) {
            (ActionStatus::Completed, 0, _) => Ok(ExitCode::SUCCESS),
            (_, _, Some(error)) => Err(Failure::Message(error.clone())),
            _ => Ok(ExitCode::FAILURE),
        }
    }
}

/// Asks on the terminal; anything but `y` or `yes` stops the command.
fn confirm(question: &str) -> Result<(), Failure> {
    use std::io::Write;
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Message(
            "stdin is not a terminal, so there is nobody to confirm: pass --yes to go ahead, \
             or --dry-run to only count"
                .to_owned(),
        ));
    }
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::Message("stopped: nothing was changed".to_owned())),
    }
}

/// `offstage actions`: who did what.
#[derive(clap::Args, Debug)]
pub(crate) struct Actions {
    /// At most this many, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Deserialize)]
struct ActionPage {
    actions: Vec<ActionRecord>,
}

impl Actions {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let answer = self
            .remote
            .client()
            .call(
                Method::GET,
                &format!("/api/actions?limit={}", self.limit),
                None,
            )
            .await?;
        if self.remote.json {
            out.json(&answer)?;
            return Ok(ExitCode::SUCCESS);
        }
        let page: ActionPage = decode(&answer)?;
        out.line(format_args!(
            "{:<36}  {:<6} {:<9} {:>7} {:>7} {:>6}  {:<19}  {:<24} FILTER",
            "ID", "VERB", "STATUS", "MATCHED", "DONE", "FAILED", "STARTED", "BY"
        ))?;
        for a in page.actions {
            let filter = serde_json::to_value(&a.filter).unwrap_or(Value::Null);
            out.line(format_args!(
                "{:<36}  {:<6} {:<9} {:>7} {:>7} {:>6}  {:<19}  {:<24} {}",
                a.id.to_string(),
                a.verb.as_str(),
                a.status.as_str(),
                a.matched,
                a.done,
                a.failed,
                output::short_time(Some(a.started_at)),
                a.actor,
                compact(&filter)
            ))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A filter as `name=x owner=y`, leaving out what is not set.
fn compact(filter: &Value) -> String {
    let Some(fields) = filter.as_object() else {
        return "-".to_owned();
    };
    let parts: Vec<String> = fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    if parts.is_empty() {
        "(every task)".to_owned()
    } else {
        parts.join(" ")
    }
}
