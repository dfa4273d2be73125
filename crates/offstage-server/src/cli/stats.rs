//! `offstage stats`: what each task type did over the last hour (or day), one line per type,
//! from `GET /api/stats`.

use std::process::ExitCode;

use reqwest::Method;
use serde::Deserialize;

use super::client::decode;
use super::{urlencode, Failure, Out, Remote};

/// `offstage stats`.
#[derive(clap::Args, Debug)]
pub(crate) struct Stats {
    /// How far back: `hour` or `day`.
    #[arg(long, default_value = "hour")]
    window: String,
    #[command(flatten)]
    remote: Remote,
}

/// `GET /api/stats`, as much of it as the table shows.
#[derive(Debug, Deserialize)]
struct Answer {
    window: String,
    types: Vec<TypeStats>,
}

#[derive(Debug, Deserialize)]
struct TypeStats {
    name: String,
    totals: Totals,
}

#[derive(Debug, Deserialize)]
struct Totals {
    started: u64,
    completed: u64,
    failed: u64,
    killed: u64,
    missing: u64,
    retried: u64,
    queued: u64,
    wait_p50_s: Option<f64>,
    wait_p90_s: Option<f64>,
    wait_p99_s: Option<f64>,
}

impl Stats {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        let client = self.remote.client();
        let path = format!("/api/stats?window={}", urlencode(&self.window));
        let answer = client.call(Method::GET, &path, None).await?;
        if self.remote.json {
            out.json(&answer)?;
        } else {
            let stats: Answer = decode(&answer)?;
            out.text(&table(&stats))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A wait in seconds as people read it: `0.4ms`, `120ms`, `3.2s`, `4m05s`; `-` for none.
fn wait(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".to_owned(),
        Some(s) if s < 0.01 => format!("{:.1}ms", s * 1000.0),
        Some(s) if s < 1.0 => format!("{:.0}ms", s * 1000.0),
        Some(s) if s < 60.0 => format!("{s:.1}s"),
        Some(s) => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
    }
}

fn table(stats: &Answer) -> String {
    if stats.types.is_empty() {
        return format!(
            "no task started, ended or waited in the last {}\n",
            stats.window
        );
    }
    let mut out = format!(
        "{:<24} {:>8} {:>9} {:>7} {:>6} {:>7} {:>7} {:>6}  {:>8} {:>8} {:>8}\n",
        "NAME",
        "STARTED",
        "COMPLETED",
        "FAILED",
        "KILLED",
        "MISSING",
        "RETRIED",
        "QUEUED",
        "WAIT p50",
        "p90",
        "p99"
    );
    for series in &stats.types {
        let t = &series.totals;
        out.push_str(&format!(
            "{:<24} {:>8} {:>9} {:>7} {:>6} {:>7} {:>7} {:>6}  {:>8} {:>8} {:>8}\n",
            series.name,
            t.started,
            t.completed,
            t.failed,
            t.killed,
            t.missing,
            t.retried,
            t.queued,
            wait(t.wait_p50_s),
            wait(t.wait_p90_s),
            wait(t.wait_p99_s),
        ));
    }
    out
}
