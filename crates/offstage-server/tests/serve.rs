//! A real `offstage serve` process on a free port, driven by the real `offstage` CLI.

mod common;

use std::process::{Command, Output};

use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::{json, Value};

use common::{Api, Server, BIN};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_cli_drives_a_server_with_meaningful_exit_codes() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let done = server.cli(&[
        "launch",
        "demo.count",
        "--args",
        r#"{"to":3,"interval_ms":10}"#,
        "--wait",
        "--json",
    ]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let record: Value = serde_json::from_str(&stdout(&done)).unwrap();
    assert_eq!(
        (record["status"].as_str(), record["return_value"].as_u64()),
        (Some("completed"), Some(3))
    );

    let failed = server.cli(&[
        "launch",
        "demo.fail",
        "--args",
        r#"{"message":"bad input"}"#,
        "--wait",
    ]);
    assert_eq!(
        failed.status.code(),
        Some(3),
        "a task that did not complete: {}",
        stdout(&failed)
    );
    assert!(stdout(&failed).contains("bad input"));

    let launched = server.cli(&["launch", "demo.log", "--args", r#"{"lines":2}"#, "--follow"]);
    assert_eq!(launched.status.code(), Some(0));
    assert!(
        stdout(&launched).contains("line 2 of 2"),
        "--follow prints the log: {}",
        stdout(&launched)
    );
    let id = record["id"].as_str().unwrap();
    let shown = server.cli(&["show", id]);
    assert!(stdout(&shown).contains("completed"), "{}", stdout(&shown));

    let listed = server.cli(&["list", "--json", "--status", "failed"]);
    let page: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1);

    let sleeping = server.cli(&["launch", "demo.sleep", "--args", r#"{"seconds":600}"#]);
    let sleeping_id = stdout(&sleeping).trim().to_owned();
    let killed = server.cli(&["kill", &sleeping_id, "--grace-s", "0"]);
    assert_eq!(killed.status.code(), Some(0), "{}", stderr(&killed));
    assert!(stdout(&killed).contains("killed"), "{}", stdout(&killed));

    // The last line is "<id> completed 2", after the log lines.
    let followed = stdout(&launched);
    let followed_id = followed
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let logs = server.cli(&["logs", followed_id]);
    assert!(stdout(&logs).contains("line 2 of 2"), "{}", stdout(&logs));

    let unknown = server.cli(&["launch", "demo.nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("the registered ones are"),
        "{}",
        stderr(&unknown)
    );
    let bad_id = server.cli(&["show", "nope"]);
    assert_eq!(bad_id.status.code(), Some(1));
    let counted = server.cli(&["purge", "--name", "demo.echo", "--dry-run"]);
    assert!(
        stdout(&counted).starts_with("would purge "),
        "{}",
        stdout(&counted)
    );
    let purged = server.cli(&[
        "purge",
        "--finished-before",
        "2999-01-01T00:00:00Z",
        "--json",
    ]);
    let purged: Value = serde_json::from_str(&stdout(&purged)).unwrap();
    assert!(purged["purged"].as_u64().unwrap() >= 4);
}

#[test]
fn tokens_are_required_when_configured() {
    let server = Server::start(
        &SqliteBackend.new_database(),
        &["--token", "read:r", "--token", "control:c"],
    );
    let anonymous = server.cli(&["list"]);
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(
        stderr(&anonymous).contains("HTTP 401"),
        "{}",
        stderr(&anonymous)
    );
    let reader = server.cli(&[
        "launch",
        "demo.echo",
        "--args",
        r#"{"value":1}"#,
        "--token",
        "r",
    ]);
    assert!(stderr(&reader).contains("HTTP 403"), "{}", stderr(&reader));
    let controller = server.cli(&[
        "launch",
        "demo.echo",
        "--args",
        r#"{"value":1}"#,
        "--token",
        "c",
        "--wait",
    ]);
    assert_eq!(controller.status.code(), Some(0), "{}", stderr(&controller));
}

#[test]
fn refuses_to_serve_beyond_loopback_without_tokens() {
    let output = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "0.0.0.0:0",
            "--db",
            &SqliteBackend.new_database(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--token ROLE:SECRET"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn history_survives_a_killed_server_and_running_tasks_read_missing() {
    let db = SqliteBackend.new_database();
    let mut server = Server::start(&db, &[]);
    let done = server.cli(&[
        "launch",
        "demo.echo",
        "--args",
        r#"{"value":"kept"}"#,
        "--wait",
        "--json",
    ]);
    let done: Value = serde_json::from_str(&stdout(&done)).unwrap();
    let running = server.cli(&["launch", "demo.sleep", "--args", r#"{"seconds":600}"#]);
    let running = stdout(&running).trim().to_owned();
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let server = Server::start(&server.db.clone(), &[]);
    let shown: Value = serde_json::from_str(&stdout(&server.cli(&[
        "show",
        done["id"].as_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(shown["return_value"], "kept");
    let shown: Value =
        serde_json::from_str(&stdout(&server.cli(&["show", &running, "--json"]))).unwrap();
    assert_eq!(shown["status"], "missing");
    assert_eq!(shown["error"]["kind"], "missing");
}

#[test]
fn sigterm_drains_then_records_interrupted_tasks() {
    let db = SqliteBackend.new_database();
    let mut server = Server::start(&db, &["--drain-s", "0.2"]);
    let quick = server.cli(&[
        "launch",
        "demo.echo",
        "--args",
        r#"{"value":1}"#,
        "--wait",
        "--json",
    ]);
    let quick: Value = serde_json::from_str(&stdout(&quick)).unwrap();
    let long = server.cli(&["launch", "demo.sleep", "--args", r#"{"seconds":600}"#]);
    let long = stdout(&long).trim().to_owned();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "a graceful shutdown exits 0: {status}");

    let server = Server::start(&db, &[]);
    let shown: Value =
        serde_json::from_str(&stdout(&server.cli(&["show", &long, "--json"]))).unwrap();
    assert_eq!(
        (shown["status"].as_str(), shown["error"]["kind"].as_str()),
        (Some("missing"), Some("interrupted"))
    );
    let shown: Value = serde_json::from_str(&stdout(&server.cli(&[
        "show",
        quick["id"].as_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(shown["status"], "completed");
}

#[test]
fn sse_over_tcp_resumes_with_last_event_id() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let task: Value = http
            .post(format!("{}/api/tasks", server.url))
            .json(&serde_json::json!({ "name": "demo.count", "args": { "to": 4, "interval_ms": 20 } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = format!("{}/api/tasks/{}/events", server.url, task["id"].as_str().unwrap());
        let read_all = |last: u64| {
            let http = http.clone();
            let events = events.clone();
            async move {
                let response = http.get(&events).header("last-event-id", last.to_string()).send().await.unwrap();
                assert_eq!(response.headers()["content-type"], "text/event-stream");
                response.text().await.unwrap()
            }
        };
        let all = read_all(0).await;
        let ids: Vec<u64> = all.lines().filter_map(|l| l.strip_prefix("id: ")).map(|s| s.parse().unwrap()).collect();
        let kinds: Vec<&str> = all.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(kinds.first(), Some(&"launched"));
        assert_eq!(kinds.last(), Some(&"finished"), "the stream ends after finished");
        assert_eq!(kinds.iter().filter(|k| **k == "state").count(), 4);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
        let rest = read_all(ids[3]).await;
        let rest_ids: Vec<u64> = rest.lines().filter_map(|l| l.strip_prefix("id: ")).map(|s| s.parse().unwrap()).collect();
        assert_eq!(rest_ids, ids[4..], "no gaps, no duplicates");
    });
}

/// Regression test for `offstage list | head -1`, which panicked in `println!` once `head` had
/// gone: a reader that closes the CLI's stdout after one line ends the command with exit 0 and
/// nothing on stderr, whether it was writing one big answer (`list --json`) or a line at a
/// time (`logs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_after_one_line_ends_the_cli_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    // More output than a pipe holds (64 KiB on Linux), so that the CLI is still writing when
    // its reader goes: 40 tasks whose args and return value are 2 KiB each, listed as JSON...
    let value = "x".repeat(2048);
    for _ in 0..40 {
        api.launch(json!({ "name": "demo.echo", "args": { "value": value } }))
            .await;
    }
    // ...and a log of 5000 lines.
    let logged = api
        .launch(json!({ "name": "demo.log", "args": { "lines": 5000 } }))
        .await;
    api.finished(&logged).await;

    for args in [
        vec!["list", "--json", "--limit", "1000"],
        vec!["logs", &logged],
    ] {
        let mut child = Command::new(BIN)
            .args(&args)
            .env("OFFSTAGE_SERVER", &server.url)
            .env_remove("OFFSTAGE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert!(!first.trim().is_empty(), "{args:?} printed a first line");
        // The reader goes away, as `head -1` does.
        drop(reader);
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            (output.status.code(), stderr(&output)),
            (Some(0), String::new()),
            "{args:?} ends quietly"
        );
    }
}
