//! The schedule commands, `offstage schedule ...`: list, set, pause, resume and delete
//! schedules over `/api/schedules`.

use std::process::ExitCode;

use clap::Subcommand;
use offstage::ScheduleRecord;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::decode;
use super::tasks::LaunchFlags;
use super::{json_arg, output, urlencode, Failure, Out, Remote};

/// What `offstage schedule` does.
#[derive(Subcommand, Debug)]
pub(crate) enum ScheduleCommand {
    /// Lists the schedules: name, cron, task type, next tick, last launch, paused.
    List(List),
    /// Creates or changes a schedule (one that exists stays paused if it was).
    Set(Set),
    /// Pauses a schedule on every node: its ticks pass without launching.
    Pause(Pause),
    /// Resumes a paused schedule from its next tick.
    Resume(Resume),
    /// Deletes a schedule (the tasks it launched stay).
    Delete(Delete),
}

impl ScheduleCommand {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        match self {
            ScheduleCommand::List(command) => command.run(out).await,
            ScheduleCommand::Set(command) => command.run(out).await,
            ScheduleCommand::Pause(command) => command.run(out).await,
            ScheduleCommand::Resume(command) => command.run(out).await,
            ScheduleCommand::Delete(command) => command.run(out).await,
        }
    }
}

/// `offstage schedule list`.
#[derive(clap::Args, Debug)]
pub(crate) struct List {
    #[command(flatten)]
    remote: Remote,
}

/// `offstage schedule pause`.
#[derive(clap::Args, Debug)]
pub(crate) struct Pause {
    /// The schedule's name.
    name: String,
    #[command(flatten)]
    remote: Remote,
}

/// `offstage schedule resume`.
#[derive(clap::Args, Debug)]
pub(crate) struct Resume {
    /// The schedule's name.
    name: String,
    #[command(flatten)]
    remote: Remote,
}

/// `offstage schedule delete`.
#[derive(clap::Args, Debug)]
pub(crate) struct Delete {
    /// The schedule's name.
    name: String,
    #[command(flatten)]
    remote: Remote,
}

/// `offstage schedule set`.
#[derive(clap::Args, Debug)]
pub(crate) struct Set {
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
    launch: LaunchFlags,
    #[command(flatten)]
    remote: Remote,
}

/// `PUT /api/schedules/{name}`'s body.
#[derive(Debug, Serialize)]
struct SetBody {
    cron: String,
    task: String,
    args: Value,
    options: SetOptions,
}

/// A schedule's launch options, as the CLI sends them: the ones given, and no others.
#[derive(Debug, Serialize)]
struct SetOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_conflict: Option<String>,
    #[serde(flatten)]
    launch: LaunchFlags,
}

/// `GET /api/schedules`.
#[derive(Debug, Deserialize)]
struct ScheduleList {
    schedules: Vec<ScheduleRecord>,
}

fn path(name: &str) -> String {
    format!("/api/schedules/{}", urlencode(name))
}

/// One line per schedule.
fn table(schedules: &[ScheduleRecord]) -> String {
    let mut out = format!(
        "{:<24} {:<16} {:<24} {:<19}  {:<19}  {}\n",
        "NAME", "CRON", "TASK", "NEXT TICK", "LAST TICK", "STATE"
    );
    for schedule in schedules {
        let state = if schedule.paused { "paused" } else { "active" };
        out.push_str(&format!(
            "{:<24} {:<16} {:<24} {:<19}  {:<19}  {state}\n",
            schedule.name,
            schedule.cron,
            schedule.task,
            output::short_time(schedule.next_tick_at),
            output::short_time(schedule.last_tick_at),
        ));
    }
    out
}

/// A schedule the server answered with: as a one-line table, or with `json` as sent.
fn print_one(out: &mut Out, answer: &Value, json: bool) -> Result<(), Failure> {
    if json {
        return out.json(answer);
    }
    let record: ScheduleRecord = decode(answer)?;
    out.text(&table(std::slice::from_ref(&record)))
}

impl Set {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let body = SetBody {
            args: json_arg("--args", &self.args, r#"'{"n": 3}'"#)?,
            cron: self.cron,
            task: self.task,
            options: SetOptions {
                key: self.key,
                on_conflict: self.on_conflict,
                launch: self.launch,
            },
        };
        let body = serde_json::to_value(&body).map_err(|e| e.to_string())?;
        let client = self.remote.client();
        let answer = client
            .call(Method::PUT, &path(&self.name), Some(&body))
            .await?;
        print_one(out, &answer, self.remote.json)?;
        Ok(ExitCode::SUCCESS)
    }
}

impl List {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let answer = self
            .remote
            .client()
            .call(Method::GET, "/api/schedules", None)
            .await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let list: ScheduleList = decode(&answer)?;
            out.text(&table(&list.schedules))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Pause {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let path = format!("{}/pause", path(&self.name));
        let answer = self.remote.client().call(Method::POST, &path, None).await?;
        print_one(out, &answer, self.remote.json)?;
        Ok(ExitCode::SUCCESS)
    }
}

impl Resume {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let path = format!("{}/resume", path(&self.name));
        let answer = self.remote.client().call(Method::POST, &path, None).await?;
        print_one(out, &answer, self.remote.json)?;
        Ok(ExitCode::SUCCESS)
    }
}

impl Delete {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        self.remote
            .client()
            .call(Method::DELETE, &path(&self.name), None)
            .await?;
        out.line(format_args!("deleted schedule {}", self.name))?;
        Ok(ExitCode::SUCCESS)
    }
}
