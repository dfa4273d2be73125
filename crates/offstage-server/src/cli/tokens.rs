//! `offstage token`: mints a scoped token over `POST /api/tokens`, for a script or an app that
//! hands it to a browser.

use std::process::ExitCode;

use reqwest::Method;

use super::{Failure, Out, Remote};

/// `offstage token`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("scope").required(true).args(["task", "owner"]))]
pub(crate) struct Token {
    /// The token reaches this one task.
    #[arg(long, value_name = "ID")]
    task: Option<String>,
    /// The token reaches every task launched with this owner.
    #[arg(long, value_name = "NAME")]
    owner: Option<String>,
    /// The token may also kill those tasks (the right `kill`, beside `read`).
    #[arg(long)]
    kill: bool,
    /// The token may also send signals to those tasks (the right `signal`, beside `read`).
    #[arg(long)]
    signal: bool,
    /// How many seconds the token lives (at most 604800, 7 days).
    #[arg(long, default_value_t = 900.0)]
    ttl_s: f64,
    #[command(flatten)]
    remote: Remote,
}

impl Token {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let scope = match (self.task, self.owner) {
            (Some(task), _) => serde_json::json!({ "task": task }),
            (None, owner) => serde_json::json!({ "owner": owner }),
        };
        let mut rights = vec!["read"];
        if self.kill {
            rights.push("kill");
        }
        if self.signal {
            rights.push("signal");
        }
        let body = serde_json::json!({ "scope": scope, "rights": rights, "ttl_s": self.ttl_s });
        let answer = self
            .remote
            .client()
            .call(Method::POST, "/api/tokens", Some(&body))
            .await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            // The token alone, for `$(offstage token --owner u1)`.
            let token = answer["token"].as_str().unwrap_or_default();
            out.line(format_args!("{token}"))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
