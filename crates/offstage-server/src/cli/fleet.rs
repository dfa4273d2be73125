//! `offstage pause TYPE [--kill-running]`, `offstage resume TYPE` and `offstage nodes`: the
//! operator's view of the fleet (task types paused on every node, and the nodes themselves).

use std::process::ExitCode;

use chrono::Utc;
use offstage::{NodeRecord, Paused, Waiting};
use reqwest::Method;
use serde::Deserialize;

use super::client::decode;
use super::output::short_time;
use super::{urlencode, Failure, Out, Remote};

/// Pause a task type on every node: its queued tasks wait (launches are still accepted)
/// until `offstage resume`.
#[derive(clap::Args, Debug)]
pub(crate) struct Pause {
    /// The task type's name.
    name: String,
    /// Also kill its running tasks (with the server's grace period); by default they run on.
    #[arg(long)]
    kill_running: bool,
    #[command(flatten)]
    remote: Remote,
}

impl Pause {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let body = serde_json::json!({ "kill_running": self.kill_running });
        let answer = self
            .remote
            .client()
            .call(Method::POST, &path(&self.name, "pause"), Some(&body))
            .await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let paused: Paused = decode(&answer)?;
            out.line(format!(
                "{} is paused on every node since {}; its queued tasks wait until `offstage \
                 resume {}`",
                paused.task_type.name,
                short_time(Some(paused.task_type.paused_at)),
                paused.task_type.name
            ))?;
            for id in &paused.killing {
                out.line(format!("killing {id}"))?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Resume a paused task type on every node: its queued tasks run again.
#[derive(clap::Args, Debug)]
pub(crate) struct Resume {
    /// The task type's name.
    name: String,
    #[command(flatten)]
    remote: Remote,
}

impl Resume {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let answer = self
            .remote
            .client()
            .call(Method::POST, &path(&self.name, "resume"), None)
            .await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            out.line(format!("{} is running again on every node", self.name))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// List the nodes sharing the server's store: host, pid, start, last heartbeat, what each
/// serves and runs.
#[derive(clap::Args, Debug)]
pub(crate) struct Nodes {
    #[command(flatten)]
    remote: Remote,
}

/// `GET /api/nodes`.
#[derive(Debug, Deserialize)]
struct NodeList {
    nodes: Vec<NodeRecord>,
    node_timeout_s: f64,
}

impl Nodes {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let answer = self
            .remote
            .client()
            .call(Method::GET, "/api/nodes", None)
            .await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let list: NodeList = decode(&answer)?;
            out.text(&nodes_table(&list))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn path(name: &str, verb: &str) -> String {
    format!("/api/task-types/{}/{verb}", urlencode(name))
}

/// One block per node: its line, then its workers and isolated processes.
fn nodes_table(list: &NodeList) -> String {
    let mut out = format!(
        "{:<36}  {:<16} {:>7}  {:<19}  {:<10} {:>9}  {}\n",
        "NODE", "HOST", "PID", "STARTED", "HEARTBEAT", "RUNNING", "TASK TYPES"
    );
    let now = Utc::now();
    for node in &list.nodes {
        let ago = (now - node.heartbeat_at).num_milliseconds().max(0) as f64 / 1000.0;
        let beat = if ago > list.node_timeout_s {
            format!("{ago:.0}s DEAD?")
        } else {
            format!("{ago:.1}s ago")
        };
        let (running, types) = match &node.report {
            Some(report) => (
                format!("{}/{}", report.running, report.slots),
                report.task_types.join(", "),
            ),
            None => ("-".to_owned(), "(no report yet)".to_owned()),
        };
        out.push_str(&format!(
            "{:<36}  {:<16} {:>7}  {:<19}  {:<10} {:>9}  {}\n",
            node.id,
            node.host,
            node.pid,
            short_time(Some(node.started_at)),
            beat,
            running,
            types
        ));
        for worker in node.report.iter().flat_map(|r| &r.workers) {
            out.push_str(&format!(
                "  worker {} ({}/{} running): {}\n",
                worker.name,
                worker.running,
                worker.concurrency,
                worker.task_types.join(", ")
            ));
        }
        for process in node.report.iter().flat_map(|r| &r.isolated) {
            let task = process
                .task_id
                .map_or_else(|| "idle".to_owned(), |id| format!("running {id}"));
            out.push_str(&format!("  isolated process {}: {task}\n", process.pid));
        }
    }
    out
}

/// The `waiting` line `offstage show` prints, from a task as the server sent it.
pub(crate) fn waiting_line(answer: &serde_json::Value) -> Option<String> {
    let waiting: Waiting = serde_json::from_value(answer.get("waiting")?.clone()).ok()?;
    Some(format!(
        "waiting       {}: {}\n",
        waiting.code, waiting.message
    ))
}
