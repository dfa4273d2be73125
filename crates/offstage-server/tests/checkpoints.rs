//! Checkpoints with real `offstage serve` processes: a node SIGKILLed mid-task leaves its task
//! `missing` for that attempt, and the retry, on another node, resumes from the last checkpoint
//! (its log says so): on SQLite (a new process on the same file is the other node) and on
//! PostgreSQL (two nodes, one killed). Then the surfaces: the record over HTTP, `offstage
//! show`, and a rerun from the checkpoint over HTTP and from the CLI, with its bad inputs.
//!
//! The PostgreSQL case runs when `OFFSTAGE_TEST_POSTGRES` names a database; without it at build
//! time it is ignored, with the reason.

mod common;

use common::{code, message, stdout, Api, Server};
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::{json, Value};

/// An import long enough to be killed in the middle: 80 items of 50 ms, a checkpoint every 5.
fn import() -> Value {
    json!({ "name": "demo.import", "args": { "items": 80, "every": 5, "interval_ms": 50 } })
}

/// `POST path` with `body` (JSON) if given: the status and the answer.
async fn post(api: &Api, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|body| body.to_string());
    let (status, answer) = common::call(api, reqwest::Method::POST, path, body.as_deref()).await;
    (status.as_u16(), answer)
}

/// Waits on `api`'s stream of task `id` for a checkpoint of at least `done` items; the count it
/// had.
async fn checkpointed(api: &Api, id: &str, done: u64) -> u64 {
    let event = api
        .until(id, |kind, event| {
            kind == "checkpoint" && event["checkpoint"]["done"].as_u64() >= Some(done)
        })
        .await;
    event["checkpoint"]["done"].as_u64().unwrap()
}

/// The log of task `id`, as text lines.
async fn log_of(api: &Api, id: &str) -> Vec<String> {
    let page = api.get(&format!("/api/tasks/{id}/logs?limit=5000")).await;
    page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["message"].as_str().unwrap().to_owned())
        .collect()
}

/// What every resumed run shows: it completed on its second attempt, starting after the last
/// checkpoint its first attempt saved (at least `seen`), its log saying so, and its first
/// attempt went missing with its node.
async fn assert_resumed(api: &Api, id: &str, done: &Value, seen: u64) {
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    let from = done["return_value"]["resumed_from"].as_u64().unwrap();
    assert!(
        from >= seen && from < 80,
        "resumed from {from}, saw {seen}: {done}"
    );
    assert_eq!(done["checkpoint"], json!({ "done": 80 }));
    assert!(done["checkpoint_at"].is_string(), "{done}");
    assert_eq!(done["state"], json!({ "done": 80, "total": 80 }));
    let log = log_of(api, id).await;
    let said = |what: &str| log.iter().any(|line| line.contains(what));
    assert!(
        said("attempt 1 of 3 went missing with its node"),
        "{log:#?}"
    );
    assert!(
        said("[offstage] resuming from checkpoint saved at"),
        "{log:#?}"
    );
    assert!(
        said(&format!("resuming from item {}", from + 1)),
        "{log:#?}"
    );
    // The second attempt did only the items after the checkpoint.
    let resuming = log
        .iter()
        .position(|l| l.starts_with("resuming from item"))
        .unwrap();
    let again: Vec<&String> = log[resuming..]
        .iter()
        .filter(|l| l.starts_with("imported item"))
        .collect();
    assert_eq!(again.len() as u64, 80 - from, "{log:#?}");
    assert_eq!(again[0], &format!("imported item {} of 80", from + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_node_killed_mid_task_leaves_it_to_resume_from_its_checkpoint() {
    let db = SqliteBackend.new_database();
    let mut first = Server::start(&db, &[]);
    let api = Api::new(&first, None);
    let id = api.launch(import()).await;
    let seen = checkpointed(&api, &id, 10).await;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let killed = std::time::Instant::now();

    // A new process on the same file is a new node: it finds the first one dead (its lock file
    // is free), queues the task again by its retry policy, and runs it.
    let second = Server::start(&db, &[]);
    let api = Api::new(&second, None);
    api.until(&id, |kind, event| {
        kind == "started" && event["task"]["attempt"] == 2
    })
    .await;
    println!(
        "checkpoints: SQLite, SIGKILL → attempt 2 running on a new process (its start and the \
         retry's backoff included): {:?}",
        killed.elapsed()
    );
    let done = api.finished(&id).await;
    assert_resumed(&api, &id, &done, seen).await;
    let record = api.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(record["checkpoint"], json!({ "done": 80 }));
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_node_killed_mid_task_is_resumed_by_another_from_its_checkpoint() {
    let db = offstage::testing::conformance::PostgresBackend::from_env().new_database();
    let quick = ["--heartbeat-s", "0.2", "--node-timeout-s", "2"];
    let mut doomed = Server::start(&db, &quick);
    let other = Server::start(&db, &quick);
    let (on_doomed, on_other) = (Api::new(&doomed, None), Api::new(&other, None));
    // A free slot: the launch starts it at once, on the node it was launched on.
    let response = post(&on_doomed, "/api/tasks", Some(import())).await;
    assert_eq!(response.0, 201, "{}", response.1);
    assert_eq!(response.1["status"], "running", "{}", response.1);
    let id = response.1["id"].as_str().unwrap().to_owned();
    // The other node sees its checkpoints live, through the database's notices.
    let seen = checkpointed(&on_other, &id, 10).await;
    doomed.child.kill().unwrap(); // SIGKILL
    doomed.child.wait().unwrap();
    let killed = std::time::Instant::now();

    // Within the node timeout the other node declares it dead: the attempt reads `missing`
    // (kind `missing`), queued again by the retry policy, and the other node runs it.
    let again = on_other
        .until(&id, |kind, event| {
            kind == "launched" && event["task"]["error"]["kind"] == "missing"
        })
        .await;
    assert_eq!(again["task"]["status"], "queued");
    assert_eq!(again["task"]["attempt"], 1);
    assert!(again["task"]["checkpoint"]["done"].as_u64() >= Some(seen));
    let missing_after = killed.elapsed();
    on_other
        .until(&id, |kind, event| {
            kind == "started" && event["task"]["attempt"] == 2
        })
        .await;
    println!(
        "checkpoints: PostgreSQL (node timeout 2 s), SIGKILL → queued again {missing_after:?}, \
         → attempt 2 running on the other node {:?}",
        killed.elapsed()
    );
    let done = on_other.finished(&id).await;
    assert_resumed(&on_other, &id, &done, seen).await;
}

/// The checkpoint on every surface: the record, `offstage show`, and a rerun from it over HTTP
/// and from the CLI (a plain one starts with none); asking for a checkpoint a task never saved,
/// or a malformed `from_checkpoint`, is a 4xx that says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_from_the_checkpoint_over_http_and_the_cli_continues_where_it_stopped() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    // It fails after item 7 (its last checkpoint says 6) and its retry resumes after item 6.
    let id = api
        .launch(
            json!({ "name": "demo.import", "args": { "items": 12, "every": 3,
            "interval_ms": 1, "fail_at": 7 } }),
        )
        .await;
    let done = api.finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["return_value"]["resumed_from"], 6, "{done}");

    let shown = stdout(&server.cli(&["show", &id]));
    assert!(
        shown.contains(r#"checkpoint    {"done":12}"#),
        "offstage show prints the checkpoint: {shown}"
    );
    assert!(shown.contains("checkpoint_at"), "{shown}");

    // Over HTTP: from the checkpoint it has nothing left to do; plain, it starts from the top.
    let (status, resumed) = post(
        &api,
        &format!("/api/tasks/{id}/rerun"),
        Some(json!({ "from_checkpoint": true })),
    )
    .await;
    assert_eq!(status, 201, "{resumed}");
    assert_eq!(resumed["checkpoint"], json!({ "done": 12 }));
    assert_eq!(resumed["checkpoint_at"], done["checkpoint_at"]);
    let resumed_id = resumed["id"].as_str().unwrap();
    let resumed = api.finished(resumed_id).await;
    assert_eq!(resumed["return_value"]["resumed_from"], 12, "{resumed}");
    let (status, plain) = post(&api, &format!("/api/tasks/{id}/rerun"), None).await;
    assert_eq!(status, 201, "{plain}");
    assert_eq!(plain["checkpoint"], Value::Null);

    // From the CLI.
    let output = server.cli(&["rerun", &id, "--from-checkpoint", "--json"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let rerun: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(rerun["checkpoint"], json!({ "done": 12 }));
    assert_eq!(rerun["rerun_of"], json!(id));

    // A task that saved none: 409, saying how to rerun it.
    let echo = api
        .launch(json!({ "name": "demo.echo", "args": { "value": 1 } }))
        .await;
    api.finished(&echo).await;
    let (status, body) = post(
        &api,
        &format!("/api/tasks/{echo}/rerun"),
        Some(json!({ "from_checkpoint": true })),
    )
    .await;
    assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
    assert!(message(&body).contains("without from_checkpoint"), "{body}");
    let output = server.cli(&["rerun", &echo, "--from-checkpoint"]);
    assert!(!output.status.success());
    assert!(
        common::stderr(&output).contains("saved no checkpoint"),
        "{}",
        common::stderr(&output)
    );
    // Not a boolean: 422 naming the body's shape.
    let (status, body) = post(
        &api,
        &format!("/api/tasks/{id}/rerun"),
        Some(json!({ "from_checkpoint": "yes" })),
    )
    .await;
    assert_eq!((status, code(&body)), (422, "invalid_body"), "{body}");
    assert!(message(&body).contains("from_checkpoint"), "{body}");
}
