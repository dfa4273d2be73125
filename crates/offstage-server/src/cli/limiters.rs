//! The limiter commands, `offstage limiter ...`: define, list and delete limiters over
//! `/api/limiters` (docs/limiters.md).

use std::process::ExitCode;

use clap::Subcommand;
use offstage::LimiterRecord;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::decode;
use super::{urlencode, Failure, Out, Remote};

/// What `offstage limiter` does.
#[derive(Subcommand, Debug)]
pub(crate) enum LimiterCommand {
    /// Defines (or redefines) a limiter for every node: a rate with a burst, a number of
    /// concurrent holders, or both. Needs a control token.
    Set(Set),
    /// Lists the limiters: rate, burst, tokens now, holders.
    List(List),
    /// Deletes a limiter and its holds. Needs a control token.
    Delete(Delete),
}

impl LimiterCommand {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        match self {
            LimiterCommand::Set(command) => command.run(out).await,
            LimiterCommand::List(command) => command.run(out).await,
            LimiterCommand::Delete(command) => command.run(out).await,
        }
    }
}

/// `offstage limiter set`.
#[derive(clap::Args, Debug)]
pub(crate) struct Set {
    /// The limiter's name.
    name: String,
    /// Tokens per second (fractions allowed: 0.5 is one every two seconds).
    #[arg(long)]
    rate: Option<f64>,
    /// The most tokens saved up, so the most calls in a row after a quiet spell (default 1).
    #[arg(long)]
    burst: Option<u32>,
    /// The most permits held at once on all nodes.
    #[arg(long)]
    max_holders: Option<u32>,
    #[command(flatten)]
    remote: Remote,
}

/// `offstage limiter list`.
#[derive(clap::Args, Debug)]
pub(crate) struct List {
    #[command(flatten)]
    remote: Remote,
}

/// `offstage limiter delete`.
#[derive(clap::Args, Debug)]
pub(crate) struct Delete {
    /// The limiter's name.
    name: String,
    #[command(flatten)]
    remote: Remote,
}

/// `GET /api/limiters`.
#[derive(Debug, Deserialize)]
struct LimiterList {
    limiters: Vec<LimiterRecord>,
}

fn path(name: &str) -> String {
    format!("/api/limiters/{}", urlencode(name))
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// One line per limiter.
fn table(limiters: &[LimiterRecord]) -> String {
    let mut out = format!(
        "{:<32} {:>10} {:>7} {:>8} {:>9}\n",
        "NAME", "RATE/S", "BURST", "TOKENS", "HOLDERS"
    );
    for limiter in limiters {
        let holders = match limiter.limit.max_holders {
            Some(max) => format!("{}/{max}", limiter.holders.len()),
            None => "-".to_owned(),
        };
        out.push_str(&format!(
            "{:<32} {:>10} {:>7} {:>8} {:>9}\n",
            limiter.name,
            or_dash(limiter.limit.rate),
            or_dash(limiter.limit.effective_burst()),
            or_dash(limiter.tokens.map(|t| format!("{t:.2}"))),
            holders,
        ));
    }
    out
}

impl Set {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let body = json!({
            "rate": self.rate,
            "burst": self.burst,
            "max_holders": self.max_holders,
        });
        let client = self.remote.client();
        let answer = client
            .call(Method::PUT, &path(&self.name), Some(&body))
            .await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let record: LimiterRecord = decode(&answer)?;
            out.line(format_args!("limiter {}: {}", record.name, record.limit))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl List {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let answer = client.call(Method::GET, "/api/limiters", None).await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let list: LimiterList = decode(&answer)?;
            out.text(&table(&list.limiters))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Delete {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        self.remote
            .client()
            .call(Method::DELETE, &path(&self.name), None)
            .await?;
        out.line(format_args!("deleted limiter {}", self.name))?;
        Ok(ExitCode::SUCCESS)
    }
}
