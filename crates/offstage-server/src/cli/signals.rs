//! The `signal` command: sends a task a signal over `POST /api/tasks/{id}/signals/{name}`.

use std::process::ExitCode;

use offstage::{SignalRecord, TaskId};
use reqwest::Method;

use super::client::decode;
use super::{json_arg, urlencode, Failure, Out, Remote};

/// `offstage signal`.
#[derive(clap::Args, Debug)]
pub(crate) struct Signal {
    /// The task's id.
    id: String,
    /// The signal's name: what the task waits for (`offstage show` says, as `waiting for
    /// "approve"`).
    name: String,
    /// The payload as JSON.
    #[arg(long, default_value = "null")]
    payload: String,
    #[command(flatten)]
    remote: Remote,
}

impl Signal {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let id: TaskId = self
            .id
            .parse()
            .map_err(|e: offstage::Error| Failure::Message(e.to_string()))?;
        let payload = json_arg(
            "--payload",
            &self.payload,
            r#"--payload '{"approved": true, "by": "ann"}'"#,
        )?;
        let path = format!("/api/tasks/{id}/signals/{}", urlencode(&self.name));
        let answer = self
            .remote
            .client()
            .call(Method::POST, &path, Some(&payload))
            .await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let signal: SignalRecord = decode(&answer)?;
            out.line(format_args!(
                "sent signal {:?} to task {} (#{}): it is received when the task waits for it",
                signal.name, signal.task_id, signal.seq
            ))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
