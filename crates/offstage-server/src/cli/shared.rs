//! `offstage shared ...`: list, read, write and watch shared documents over the HTTP API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Client, Failure};
use super::{print_json, urlencode, Remote};

/// What `offstage shared` does.
#[derive(Subcommand, Debug)]
pub(super) enum SharedCommand {
    /// Lists the shared documents: name, version, last write, lock holder.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Prints a shared document's value (with --json, its whole record).
    Get {
        /// The document's name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Writes a shared document under its lock, creating it if needed.
    Set {
        /// The document's name.
        name: String,
        /// The new value as JSON, such as '{"paused": true}' or '42'.
        value: String,
        /// Write only if the document is at this version (exit 1 if it is not).
        #[arg(long)]
        version: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Prints a shared document's value, then each change, until interrupted.
    Watch {
        /// The document's name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

fn path(name: &str) -> String {
    format!("/api/shared/{}", urlencode(name))
}

/// One line per document.
fn table(documents: &[Value]) -> String {
    let mut out = format!(
        "{:<32} {:>8}  {:<19}  {}\n",
        "NAME", "VERSION", "UPDATED", "LOCKED BY"
    );
    for doc in documents {
        let updated = doc["updated_at"]
            .as_str()
            .and_then(|s| s.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".to_owned());
        let holder = doc["locked_by"]["holder"].as_str().unwrap_or("-");
        out.push_str(&format!(
            "{:<32} {:>8}  {updated:<19}  {holder}\n",
            doc["name"].as_str().unwrap_or("?"),
            doc["version"],
        ));
    }
    out
}

pub(super) async fn run(command: SharedCommand) -> Result<ExitCode, Failure> {
    match command {
        SharedCommand::List { remote } => {
            let client = Client::new(&remote.server, remote.token);
            let list = client.call(Method::GET, "/api/shared", None).await?;
            if remote.json {
                print_json(&list);
            } else {
                let documents = list["shared"].as_array().cloned().unwrap_or_default();
                print!("{}", table(&documents));
            }
        }
        SharedCommand::Get { name, remote } => {
            let client = Client::new(&remote.server, remote.token);
            let record = client.call(Method::GET, &path(&name), None).await?;
            if remote.json {
                print_json(&record);
            } else {
                print_json(&record["value"]);
            }
        }
        SharedCommand::Set {
            name,
            value,
            version,
            remote,
        } => {
            let value: Value = serde_json::from_str(&value).map_err(|e| {
                Failure(format!(
                    "the value is not JSON ({e}): quote it for the shell, for example \
                     '{{\"paused\": true}}', '42' or '\"text\"'"
                ))
            })?;
            let client = Client::new(&remote.server, remote.token);
            let mut body = json!({ "value": value });
            if let Some(version) = version {
                body["version"] = json!(version);
            }
            let record = client.call(Method::PUT, &path(&name), Some(&body)).await?;
            if remote.json {
                print_json(&record);
            } else {
                println!("{name} version {}", record["version"]);
            }
        }
        SharedCommand::Watch { name, remote } => {
            let client = Client::new(&remote.server, remote.token);
            let events = format!("{}/events", path(&name));
            client
                .follow(&events, None, |event, data| {
                    if event == "change" {
                        if remote.json {
                            println!("{data}");
                        } else {
                            println!("{} {}", data["version"], data["value"]);
                        }
                    }
                    true
                })
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
