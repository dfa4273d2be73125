//! The `offstage` command line: `serve` runs a server; every other command talks to one over
//! its HTTP API.
//!
//! A **command** is a clap `Args` struct in the file of its group: `tasks.rs` (launch, types,
//! list, show, kill, logs, purge), `schedules.rs`, `shared.rs`, `serve.rs` (serve, migrate),
//! `config.rs` (config check and print, and the config file `serve` reads),
//! `tokens.rs` (token), `stats.rs` (stats) and `worker.rs`. Each has the same method, `run(self, out) -> Result<ExitCode, Failure>`: it
//! reads the server's answers into typed records (`offstage::TaskRecord`, `LogLine`,
//! `ScheduleRecord`, `SharedRecord`, or a small serde struct for a page), prints them as a
//! table or, with `--json`, as the server sent them, and writes only through [`Out`], so that
//! a reader that goes away (`offstage list | head -1`) ends the command quietly.

mod actions;
mod client;
mod config;
mod copy;
mod fleet;
mod limiters;
mod out;
mod output;
mod schedules;
mod serve;
mod shared;
mod signals;
mod stats;
mod tasks;
mod telemetry;
mod tokens;
mod worker;

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use self::client::Client;
use self::out::Out;

/// The command line's arguments.
#[derive(Parser, Debug)]
#[command(
    name = "offstage",
    version,
    about = "Background tasks, durable and killable, over HTTP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the server: the HTTP API and live events (SSE).
    Serve(serve::Serve),
    /// The config file of `serve`: `check` it, or `print` the settings `serve` would run with.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Creates or upgrades the database's schema, and exits. `serve` does this too on start;
    /// run it alone to migrate before rolling out nodes. With --from and --to, copies one
    /// database into another (SQLite to PostgreSQL, or back).
    Migrate(serve::Migrate),
    /// Serves the demo task types for a server, as a remote worker (reconnects until stopped).
    Worker(worker::Worker),
    /// Launches a task.
    Launch(tasks::Launch),
    /// Lists the task types: who serves each, and the args it takes (an example, and with
    /// --json the JSON Schema).
    Types(tasks::Types),
    /// Lists tasks, newest first.
    List(tasks::List),
    /// Shows one task.
    Show(tasks::Show),
    /// Kills a task and waits until it has ended.
    Kill(tasks::Kill),
    /// Prints a task's log.
    Logs(tasks::Logs),
    /// Sends a task a signal (`--payload` JSON), kept until the task waits for it
    /// (`ctx.wait_signal`). Needs a control token, or a scoped token with the signal right.
    Signal(signals::Signal),
    /// Deletes tasks that finished before a time.
    Purge(tasks::Purge),
    /// Launches a finished task again as a new task linked to it, with the same or new args.
    Rerun(actions::Rerun),
    /// Kills, purges or reruns every task matching a filter: shows the count, asks, then
    /// shows progress until done. Recorded with who asked (`offstage actions`).
    Bulk(actions::Bulk),
    /// Lists bulk actions, newest first: who did what, and how far it got.
    Actions(actions::Actions),
    /// Schedules: list, set, pause, resume and delete task types launched on cron ticks.
    #[command(subcommand)]
    Schedule(schedules::ScheduleCommand),
    /// Shared state: list, get, set and watch the named JSON documents tasks share.
    #[command(subcommand)]
    Shared(shared::SharedCommand),
    /// Mints a scoped token (needs a control token): for one task or one owner's tasks, read
    /// only or with kill and/or signal, for a browser. Prints the token.
    Token(tokens::Token),
    /// What each task type did over the last hour (or `--window day`): tasks started,
    /// completed, failed, killed, missing and retried, the queue depth, and wait percentiles.
    Stats(stats::Stats),
    /// Pauses a task type on every node (needs a control token): its queued tasks wait,
    /// launches are still accepted, running ones go on unless --kill-running.
    Pause(fleet::Pause),
    /// Resumes a paused task type on every node (needs a control token).
    Resume(fleet::Resume),
    /// Lists the nodes sharing the server's store: host, pid, start, last heartbeat, running
    /// tasks, task types served, workers and isolated processes.
    Nodes(fleet::Nodes),
    /// Limiters: set, list and delete the named budgets (a rate with a burst, concurrent
    /// holders) that tasks and handlers on every node share.
    #[command(subcommand)]
    Limiter(limiters::LimiterCommand),
}

impl Command {
    async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        match self {
            Command::Serve(command) => command.run(out).await,
            Command::Config(command) => command.run(out).await,
            Command::Migrate(command) => command.run(out).await,
            Command::Worker(command) => command.run(out).await,
            Command::Launch(command) => command.run(out).await,
            Command::Types(command) => command.run(out).await,
            Command::List(command) => command.run(out).await,
            Command::Show(command) => command.run(out).await,
            Command::Kill(command) => command.run(out).await,
            Command::Logs(command) => command.run(out).await,
            Command::Signal(command) => command.run(out).await,
            Command::Purge(command) => command.run(out).await,
            Command::Rerun(command) => command.run(out).await,
            Command::Bulk(command) => command.run(out).await,
            Command::Actions(command) => command.run(out).await,
            Command::Schedule(command) => command.run(out).await,
            Command::Shared(command) => command.run(out).await,
            Command::Token(command) => command.run(out).await,
            Command::Stats(command) => command.run(out).await,
            Command::Pause(command) => command.run(out).await,
            Command::Resume(command) => command.run(out).await,
            Command::Nodes(command) => command.run(out).await,
            Command::Limiter(command) => command.run(out).await,
        }
    }
}

/// Where a command that talks to a server finds it, and how it prints what it answers.
#[derive(Args, Debug)]
struct Remote {
    /// The server to talk to.
    #[arg(
        long,
        env = "OFFSTAGE_SERVER",
        default_value = "http://127.0.0.1:7700",
        global = true
    )]
    server: String,
    /// A bearer token for a server that needs one.
    #[arg(long, env = "OFFSTAGE_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    json: bool,
}

impl Remote {
    fn client(&self) -> Client {
        Client::new(&self.server, self.token.clone())
    }
}

/// Why a command did not do what was asked.
#[derive(Debug)]
pub(crate) enum Failure {
    /// What went wrong, worded for the terminal: printed as `offstage: <message>`, exit 1.
    Message(String),
    /// Stdout's reader went away (`offstage list | head -1`). Not a failure of the command:
    /// the process ends quietly with exit 0, as Unix tools do.
    BrokenPipe,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Message(format!("cannot write the output: {error}"))
        }
    }
}

/// Parses the command line and runs the command; the exit code says how it went.
pub(crate) fn run() -> Result<ExitCode, Failure> {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // `serve`'s config file fills only what the flags and the environment left out.
    if let Command::Serve(serve) = &mut cli.command {
        serve.given = given(&matches);
    }
    if let Command::Config(command) = &mut cli.command {
        command.serve_mut().given = given(&matches);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the async runtime: {e}"))?;
    runtime.block_on(cli.command.run(&mut Out::stdout()))
}

/// The ids of the arguments of the innermost subcommand that the command line or the
/// environment gave (as opposed to a default).
fn given(matches: &ArgMatches) -> std::collections::BTreeSet<String> {
    let mut leaf = matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    leaf.ids()
        .map(|id| id.as_str())
        .filter(|id| {
            matches!(
                leaf.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(str::to_owned)
        .collect()
}

/// Reads a JSON `--args` or value given on the command line, with `example` in the message if
/// it is not JSON.
fn json_arg(flag: &str, text: &str, example: &str) -> Result<serde_json::Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        Failure::Message(format!(
            "{flag} is not JSON ({e}): quote it for the shell, such as {example}"
        ))
    })
}

/// `text` for a URL's path or query: every byte but the unreserved ones percent-encoded.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
