//! The `offstage` command line: `serve` runs a server; every other command talks to one.

mod client;
mod output;
mod schedules;
mod serve;
mod shared;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use self::client::{Client, Failure};

/// Exit code when a waited-for task ended but did not complete.
const TASK_DID_NOT_COMPLETE: u8 = 3;

/// The command line's arguments.
#[derive(Parser, Debug)]
#[command(
    name = "offstage",
    version,
    about = "Background tasks, durable and killable, over HTTP"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

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

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the server: the HTTP API and live events (SSE).
    Serve(serve::Serve),
    /// Creates or upgrades the database's schema, and exits. `serve` does this too on start;
    /// run it alone to migrate before rolling out nodes.
    Migrate(serve::Migrate),
    /// Serves the demo task types for a server, as a remote worker (reconnects until stopped).
    Worker {
        /// The name the server shows for this worker.
        #[arg(long)]
        name: Option<String>,
        /// How many tasks it runs at once.
        #[arg(long, default_value_t = 4)]
        concurrency: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Launches a task.
    Launch {
        /// The task type's name.
        name: String,
        /// The args as JSON.
        #[arg(long, default_value = "null")]
        args: String,
        /// Who the task belongs to.
        #[arg(long)]
        owner: Option<String>,
        /// Higher runs first.
        #[arg(long)]
        priority: Option<i32>,
        /// Fail the task if it runs longer than this many seconds.
        #[arg(long)]
        timeout_s: Option<f64>,
        /// Run it in a worker process of its own, so a kill stops it even if it never awaits.
        #[arg(long)]
        isolated: bool,
        /// Do not start it before this time (RFC 3339, such as 2026-12-01T03:00:00Z).
        #[arg(long, conflicts_with = "delay_s")]
        run_at: Option<String>,
        /// Do not start it for this many seconds.
        #[arg(long)]
        delay_s: Option<f64>,
        /// A key to find it by; with --on-conflict, one live task of the type per key.
        #[arg(long)]
        key: Option<String>,
        /// With --key, when a task of the type with that key is live: reject, existing or
        /// supersede.
        #[arg(long, value_parser = ["reject", "existing", "supersede"], requires = "key")]
        on_conflict: Option<String>,
        /// Wait until it ends, with a progress bar; exit 3 unless it completed.
        #[arg(long)]
        wait: bool,
        /// Like --wait, and print its log lines as they come.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Lists the task types: who serves each, and the args it takes (an example, and with
    /// --json the JSON Schema).
    Types {
        #[command(flatten)]
        remote: Remote,
    },
    /// Lists tasks, newest first.
    List {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        remote: Remote,
    },
    /// Shows one task.
    Show {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Kills a task and waits until it has ended.
    Kill {
        id: String,
        /// How many seconds the task gets to stop by itself before it is aborted (default:
        /// the server's --kill-grace-s).
        #[arg(long)]
        grace_s: Option<f64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Prints a task's log.
    Logs {
        id: String,
        /// Keep printing new lines until the task ends.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Schedules: list, set, pause, resume and delete task types launched on cron ticks.
    Schedule {
        #[command(subcommand)]
        command: schedules::ScheduleCommand,
    },
    /// Shared state: list, get, set and watch the named JSON documents tasks share.
    Shared {
        #[command(subcommand)]
        command: shared::SharedCommand,
    },
    /// Deletes tasks that finished before a time.
    Purge {
        /// An RFC 3339 time, such as 2026-11-01T00:00:00Z.
        #[arg(long)]
        finished_before: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("offstage: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(Failure(message)) => {
            eprintln!("offstage: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn task_path(id: &str) -> Result<String, Failure> {
    let id: offstage::TaskId = id
        .parse()
        .map_err(|e: offstage::Error| Failure(e.to_string()))?;
    Ok(format!("/api/tasks/{id}"))
}

async fn run(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Serve(serve) => serve::run(serve)
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(Failure),
        Command::Migrate(migrate) => serve::migrate(migrate)
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(Failure),
        Command::Worker {
            name,
            concurrency,
            remote,
        } => {
            let mut worker = offstage::Worker::new(&remote.server).concurrency(concurrency);
            if let Some(token) = remote.token {
                worker = worker.token(token);
            }
            if let Some(name) = name {
                worker = worker.name(name);
            }
            eprintln!(
                "offstage worker serving the demo task types for {}",
                remote.server
            );
            crate::demo::register(worker)
                .run()
                .await
                .map(|()| ExitCode::SUCCESS)
                .map_err(|e| Failure(e.to_string()))
        }
        Command::Launch {
            name,
            args,
            owner,
            priority,
            timeout_s,
            isolated,
            run_at,
            delay_s,
            key,
            on_conflict,
            wait,
            follow,
            remote,
        } => {
            let client = Client::new(&remote.server, remote.token);
            let args: Value = serde_json::from_str(&args).map_err(|e| {
                Failure(format!(
                    "--args is not JSON ({e}): for example --args '{{\"to\": 10}}'"
                ))
            })?;
            let mut body = json!({ "name": name, "args": args, "owner": owner, "priority": priority, "timeout_s": timeout_s });
            if isolated {
                body["isolated"] = json!(true);
            }
            if let Some(run_at) = run_at {
                body["run_at"] = json!(run_at);
            }
            if let Some(delay_s) = delay_s {
                body["delay_s"] = json!(delay_s);
            }
            if let Some(key) = key {
                body["key"] = json!(key);
            }
            if let Some(on_conflict) = on_conflict {
                body["on_conflict"] = json!(on_conflict);
            }
            let task = client.call(Method::POST, "/api/tasks", Some(&body)).await?;
            if !(wait || follow) {
                if remote.json {
                    print_json(&task);
                } else {
                    println!("{}", task["id"].as_str().unwrap_or_default());
                }
                return Ok(ExitCode::SUCCESS);
            }
            let id = task["id"].as_str().unwrap_or_default().to_owned();
            if !remote.json {
                eprintln!("launched {id}");
            }
            wait_for(&client, &id, follow, remote.json).await
        }
        Command::Types { remote } => {
            let client = Client::new(&remote.server, remote.token);
            let types = client.call(Method::GET, "/api/task-types", None).await?;
            if remote.json {
                print_json(&types);
            } else {
                print!(
                    "{}",
                    output::task_types(
                        types["task_types"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or_default()
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List {
            name,
            status,
            owner,
            limit,
            remote,
        } => {
            let client = Client::new(&remote.server, remote.token);
            let mut query = vec![format!("limit={limit}")];
            for (key, value) in [("name", name), ("status", status), ("owner", owner)] {
                if let Some(value) = value {
                    query.push(format!("{key}={}", urlencode(&value)));
                }
            }
            let page = client
                .call(
                    Method::GET,
                    &format!("/api/tasks?{}", query.join("&")),
                    None,
                )
                .await?;
            if remote.json {
                print_json(&page);
            } else {
                print!(
                    "{}",
                    output::table(
                        page["tasks"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or_default()
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { id, remote } => {
            let client = Client::new(&remote.server, remote.token);
            let task = client.call(Method::GET, &task_path(&id)?, None).await?;
            if remote.json {
                print_json(&task);
            } else {
                print!("{}", output::detail(&task));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Kill {
            id,
            grace_s,
            remote,
        } => {
            let client = Client::new(&remote.server, remote.token);
            let path = task_path(&id)?;
            let body = grace_s
                .map(|seconds| json!({ "grace_s": seconds }))
                .unwrap_or_else(|| json!({}));
            client
                .call(Method::POST, &format!("{path}/kill"), Some(&body))
                .await?;
            let mut last = Value::Null;
            client
                .follow(&format!("{path}/events"), None, |name, data| {
                    if name == "finished" {
                        last = data["task"].clone();
                        return false;
                    }
                    true
                })
                .await?;
            if last.is_null() {
                last = client.call(Method::GET, &path, None).await?;
            }
            if remote.json {
                print_json(&last);
            } else {
                println!(
                    "{} {}",
                    last["id"].as_str().unwrap_or(&id),
                    last["status"].as_str().unwrap_or("?")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs { id, follow, remote } => {
            let client = Client::new(&remote.server, remote.token);
            let path = task_path(&id)?;
            let mut after = 0u64;
            loop {
                let page = client
                    .call(Method::GET, &format!("{path}/logs?after={after}"), None)
                    .await?;
                let lines = page["lines"].as_array().cloned().unwrap_or_default();
                for line in &lines {
                    print_line(line, remote.json);
                }
                after = page["next_after"].as_u64().unwrap_or(after);
                if lines.is_empty() {
                    break;
                }
            }
            if after == 0 && !remote.json {
                // Silence would look like a failure to read it; to stderr, so stdout stays the log.
                eprintln!("{id} has no log lines{}", if follow { " yet" } else { "" });
            }
            if follow {
                let events = format!("{path}/events");
                client
                    .follow(&events, Some(0), |name, data| {
                        if name == "log" && data["line"]["seq"].as_u64().unwrap_or(0) > after {
                            print_line(&data["line"], remote.json);
                        }
                        name != "finished"
                    })
                    .await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Shared { command } => shared::run(command).await,
        Command::Schedule { command } => schedules::run(command).await,
        Command::Purge {
            finished_before,
            remote,
        } => {
            let client = Client::new(&remote.server, remote.token);
            let path = format!("/api/tasks?finished_before={}", urlencode(&finished_before));
            let result = client.call(Method::DELETE, &path, None).await?;
            if remote.json {
                print_json(&result);
            } else {
                println!("purged {} tasks", result["purged"]);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_line(line: &Value, json: bool) {
    if json {
        println!("{line}");
    } else {
        let seq = line["seq"].as_u64().unwrap_or(0);
        let level = line["level"].as_str().unwrap_or("");
        println!(
            "{seq:>5} {level:<5} {}",
            line["message"].as_str().unwrap_or("")
        );
    }
}

/// Follows task `id` to its end with a progress bar; the exit code says whether it completed.
async fn wait_for(
    client: &Client,
    id: &str,
    show_logs: bool,
    json: bool,
) -> Result<ExitCode, Failure> {
    let path = format!("/api/tasks/{id}");
    let current = client.call(Method::GET, &path, None).await?;
    // Hidden until the task's state says how far it is: a task without progress gets no bar
    // (an empty `0/1` bar would only stand between its log lines).
    let bar = output::bar(current["name"].as_str().unwrap_or("task"));
    bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    let mut shown = false;
    let mut last = current.clone();
    let ended = current["termination_status"].is_string();
    if ended && show_logs {
        // Over before we got here: its whole log is in the store.
        let logs = client
            .call(Method::GET, &format!("{path}/logs"), None)
            .await?;
        for line in logs["lines"].as_array().into_iter().flatten() {
            print_line(line, json);
        }
    }
    if !ended {
        client
            .follow(&format!("{path}/events"), Some(0), |name, data| {
                match name {
                    "state" => {
                        if let Some((done, total)) = output::progress(&data["state"]) {
                            bar.set_length(total);
                            bar.set_position(done);
                            if !shown && !json {
                                shown = true;
                                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                            }
                        }
                    }
                    // Printed above the bar, to stdout, also when stdout is not a terminal.
                    "log" if show_logs => bar.suspend(|| print_line(&data["line"], json)),
                    "finished" => {
                        last = data["task"].clone();
                        return false;
                    }
                    _ => {}
                }
                true
            })
            .await?;
    }
    bar.finish_and_clear();
    if last["status"] != "completed" && last["termination_status"].is_null() {
        // The stream ended without a final record: read it.
        last = client.call(Method::GET, &path, None).await?;
    }
    if json {
        print_json(&last);
    } else {
        let status = last["status"].as_str().unwrap_or("?");
        match &last["error"] {
            Value::Null => println!("{id} {status} {}", last["return_value"]),
            error => println!(
                "{id} {status}: {} ({})",
                error["message"].as_str().unwrap_or(""),
                error["kind"].as_str().unwrap_or("")
            ),
        }
    }
    Ok(if last["status"] == "completed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(TASK_DID_NOT_COMPLETE)
    })
}

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
