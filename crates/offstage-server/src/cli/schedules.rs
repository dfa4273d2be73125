//! `offstage schedule ...`: list, create, pause, resume and delete schedules over the HTTP API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Client, Failure};
use super::{print_json, urlencode, Remote};

/// What `offstage schedule` does.
#[derive(Subcommand, Debug)]
pub(super) enum ScheduleCommand {
    /// Lists the schedules: name, cron, task type, next tick, last launch, paused.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Creates or changes a schedule (one that exists stays paused if it was).
    Set {
        /// The schedule's name.
        name: String,
        /// When: `minute hour day-of-month month day-of-week` in UTC, such as '0 3 * * *'
        /// (03:00 every day), or six fields with seconds first.
        #[arg(long)]
        cron: String,
        /// The task type it launches.
        #[arg(long)]
        task: String,
        /// The args of every launch, as JSON.
        #[arg(long, default_value = "null")]
        args: String,
        /// A key for its launches; with --on-conflict, a tick launches nothing while the
        /// previous launch is live.
        #[arg(long)]
        key: Option<String>,
        /// With --key: reject or existing (both skip the tick while the last launch is live).
        #[arg(long, value_parser = ["reject", "existing"], requires = "key")]
        on_conflict: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Pauses a schedule on every node: its ticks pass without launching.
    Pause {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resumes a paused schedule from its next tick.
    Resume {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Deletes a schedule (the tasks it launched stay).
    Delete {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

fn path(name: &str) -> String {
    format!("/api/schedules/{}", urlencode(name))
}

fn time(value: &Value) -> String {
    value
        .as_str()
        .and_then(|s| s.parse::<chrono::DateTime<chrono::Utc>>().ok())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// One line per schedule.
fn table(schedules: &[Value]) -> String {
    let mut out = format!(
        "{:<24} {:<16} {:<24} {:<19}  {:<19}  {}\n",
        "NAME", "CRON", "TASK", "NEXT TICK", "LAST TICK", "STATE"
    );
    for schedule in schedules {
        let state = if schedule["paused"].as_bool() == Some(true) {
            "paused"
        } else {
            "active"
        };
        out.push_str(&format!(
            "{:<24} {:<16} {:<24} {:<19}  {:<19}  {state}\n",
            schedule["name"].as_str().unwrap_or("?"),
            schedule["cron"].as_str().unwrap_or("?"),
            schedule["task"].as_str().unwrap_or("?"),
            time(&schedule["next_tick_at"]),
            time(&schedule["last_tick_at"]),
        ));
    }
    out
}

fn print_one(record: &Value, json: bool) {
    if json {
        print_json(record);
    } else {
        print!("{}", table(std::slice::from_ref(record)));
    }
}

pub(super) async fn run(command: ScheduleCommand) -> Result<ExitCode, Failure> {
    match command {
        ScheduleCommand::List { remote } => {
            let client = Client::new(&remote.server, remote.token);
            let list = client.call(Method::GET, "/api/schedules", None).await?;
            if remote.json {
                print_json(&list);
            } else {
                let schedules = list["schedules"].as_array().cloned().unwrap_or_default();
                print!("{}", table(&schedules));
            }
        }
        ScheduleCommand::Set {
            name,
            cron,
            task,
            args,
            key,
            on_conflict,
            remote,
        } => {
            let args: Value = serde_json::from_str(&args).map_err(|e| {
                Failure(format!(
                    "--args is not JSON ({e}): quote it for the shell, such as '{{\"n\": 3}}'"
                ))
            })?;
            let body = json!({
                "cron": cron,
                "task": task,
                "args": args,
                "options": { "key": key, "on_conflict": on_conflict },
            });
            let client = Client::new(&remote.server, remote.token);
            let record = client.call(Method::PUT, &path(&name), Some(&body)).await?;
            print_one(&record, remote.json);
        }
        ScheduleCommand::Pause { name, remote } => {
            let client = Client::new(&remote.server, remote.token);
            let record = client
                .call(Method::POST, &format!("{}/pause", path(&name)), None)
                .await?;
            print_one(&record, remote.json);
        }
        ScheduleCommand::Resume { name, remote } => {
            let client = Client::new(&remote.server, remote.token);
            let record = client
                .call(Method::POST, &format!("{}/resume", path(&name)), None)
                .await?;
            print_one(&record, remote.json);
        }
        ScheduleCommand::Delete { name, remote } => {
            let client = Client::new(&remote.server, remote.token);
            client.call(Method::DELETE, &path(&name), None).await?;
            println!("deleted schedule {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
