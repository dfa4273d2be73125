//! The shared-state commands, `offstage shared ...`: list, read, write and watch shared
//! documents over `/api/shared`.

use std::ops::ControlFlow;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use offstage::{SharedChange, SharedLock, SharedRecord};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::decode;
use super::{json_arg, output, urlencode, Failure, Out, Remote};

/// What `offstage shared` does.
#[derive(Subcommand, Debug)]
pub(crate) enum SharedCommand {
    /// Lists the shared documents: name, version, last write, lock holder.
    List(List),
    /// Prints a shared document's value (with --json, its whole record).
    Get(Get),
    /// Writes a shared document under its lock, creating it if needed.
    Set(Set),
    /// Prints a shared document's value, then each change, until interrupted.
    Watch(Watch),
}

impl SharedCommand {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        match self {
            SharedCommand::List(command) => command.run(out).await,
            SharedCommand::Get(command) => command.run(out).await,
            SharedCommand::Set(command) => command.run(out).await,
            SharedCommand::Watch(command) => command.run(out).await,
        }
    }
}

/// `offstage shared list`.
#[derive(clap::Args, Debug)]
pub(crate) struct List {
    #[command(flatten)]
    remote: Remote,
}

/// `offstage shared get`.
#[derive(clap::Args, Debug)]
pub(crate) struct Get {
    /// The document's name.
    name: String,
    #[command(flatten)]
    remote: Remote,
}

/// `offstage shared set`.
#[derive(clap::Args, Debug)]
pub(crate) struct Set {
    /// The document's name.
    name: String,
    /// The new value as JSON, such as '{"paused": true}' or '42'.
    value: String,
    /// Write only if the document is at this version (exit 1 if it is not).
    #[arg(long)]
    version: Option<u64>,
    #[command(flatten)]
    remote: Remote,
}

/// `offstage shared watch`.
#[derive(clap::Args, Debug)]
pub(crate) struct Watch {
    /// The document's name.
    name: String,
    #[command(flatten)]
    remote: Remote,
}

/// `GET /api/shared`.
#[derive(Debug, Deserialize)]
struct SharedList {
    shared: Vec<SharedSummary>,
}

/// One document in the list: everything but its value.
#[derive(Debug, Deserialize)]
struct SharedSummary {
    name: String,
    version: u64,
    updated_at: DateTime<Utc>,
    locked_by: Option<SharedLock>,
}

fn path(name: &str) -> String {
    format!("/api/shared/{}", urlencode(name))
}

/// One line per document.
fn table(documents: &[SharedSummary]) -> String {
    let mut out = format!(
        "{:<32} {:>8}  {:<19}  {}\n",
        "NAME", "VERSION", "UPDATED", "LOCKED BY"
    );
    for doc in documents {
        let holder = doc.locked_by.as_ref().map_or("-", |lock| &lock.holder);
        out.push_str(&format!(
            "{:<32} {:>8}  {:<19}  {holder}\n",
            doc.name,
            doc.version,
            output::short_time(Some(doc.updated_at)),
        ));
    }
    out
}

impl List {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let answer = client.call(Method::GET, "/api/shared", None).await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let list: SharedList = decode(&answer)?;
            out.text(&table(&list.shared))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Get {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let answer = client.call(Method::GET, &path(&self.name), None).await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let record: SharedRecord = decode(&answer)?;
            out.json(&record.value)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Set {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let value = json_arg(
            "the value",
            &self.value,
            r#"'{"paused": true}', '42' or '"text"'"#,
        )?;
        let mut body = json!({ "value": value });
        if let Some(version) = self.version {
            body["version"] = json!(version);
        }
        let client = self.remote.client();
        let answer = client
            .call(Method::PUT, &path(&self.name), Some(&body))
            .await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let record: SharedRecord = decode(&answer)?;
            out.line(format_args!("{} version {}", self.name, record.version))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Watch {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let events = format!("{}/events", path(&self.name));
        client
            .follow(&events, None, |event, data| {
                if event == "change" {
                    if self.remote.json {
                        out.json_line(data)?;
                    } else {
                        let change: SharedChange = decode(data)?;
                        out.line(format_args!("{} {}", change.version, change.value))?;
                    }
                }
                Ok(ControlFlow::Continue(()))
            })
            .await?;
        Ok(ExitCode::SUCCESS)
    }
}
