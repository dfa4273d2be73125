//! The fleet over HTTP and the CLI, on real `offstage serve` processes: pausing and resuming a
//! task type (roles, errors, restarts, killing the running ones), a queued task's `waiting`,
//! and `GET /api/nodes`.

mod common;

use offstage::testing::conformance::{Backend, SqliteBackend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{call, code, message, stdout, Api, Server};

fn task_type<'a>(types: &'a Value, name: &str) -> &'a Value {
    types["task_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {types}"))
}

#[tokio::test]
async fn a_paused_type_holds_its_tasks_says_why_and_survives_a_restart() {
    let db = SqliteBackend.new_database();
    let roles = [
        "--token",
        "read:r",
        "--token",
        "launch:l",
        "--token",
        "control:c",
    ];
    let server = Server::start(&db, &roles);
    let (read, launch, control) = (
        Api::new(&server, Some("r")),
        Api::new(&server, Some("l")),
        Api::new(&server, Some("c")),
    );

    // Control role only.
    for api in [&read, &launch] {
        let (status, _) = call(api, Method::POST, "/api/task-types/demo.echo/pause", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Bad input: a clear 4xx each.
    let (status, body) = call(
        &control,
        Method::POST,
        "/api/task-types/demo.nope/pause",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(message(&body).contains("demo.echo"), "{body}");
    let (status, body) = call(
        &control,
        Method::POST,
        "/api/task-types/demo.echo/pause",
        Some(r#"{"kill_running": "yes"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "invalid_body");
    assert!(
        message(&body).contains(r#"{"kill_running": true}"#),
        "{body}"
    );
    let (status, body) = call(
        &control,
        Method::POST,
        "/api/task-types/demo.nope/resume",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, paused) = call(
        &control,
        Method::POST,
        "/api/task-types/demo.echo/pause",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["name"], "demo.echo");
    assert_eq!(paused["killing"], json!([]));
    let types = read.get("/api/task-types").await;
    assert_eq!(task_type(&types, "demo.echo")["paused"], true);
    assert_eq!(
        task_type(&types, "demo.echo")["paused_at"],
        paused["paused_at"]
    );
    assert_eq!(task_type(&types, "demo.log")["paused"], false);

    // Launches are accepted, and wait, saying why.
    let held = launch
        .launch(json!({ "name": "demo.echo", "args": { "value": "held" } }))
        .await;
    let other = launch
        .launch(json!({ "name": "demo.log", "args": { "lines": 1 } }))
        .await;
    assert_eq!(read.finished(&other).await["status"], "completed");
    let task = read.get(&format!("/api/tasks/{held}")).await;
    assert_eq!(task["status"], "queued", "{task}");
    assert_eq!(task["waiting"]["code"], "paused", "{task}");
    assert!(
        task["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("offstage resume demo.echo"),
        "{task}"
    );
    // The list stays cheap: no waiting there.
    let page = read.get("/api/tasks?name=demo.echo").await;
    assert!(page["tasks"][0].get("waiting").is_none(), "{page}");

    // The pause is in the store: a restarted server still holds the task.
    drop(server);
    let server = Server::start(&db, &roles);
    let (read, control) = (Api::new(&server, Some("r")), Api::new(&server, Some("c")));
    let types = read.get("/api/task-types").await;
    assert_eq!(task_type(&types, "demo.echo")["paused"], true);
    let task = read.get(&format!("/api/tasks/{held}")).await;
    assert_eq!(task["status"], "queued", "{task}");
    assert_eq!(task["waiting"]["code"], "paused");

    let (status, body) = call(
        &control,
        Method::POST,
        "/api/task-types/demo.echo/resume",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "name": "demo.echo", "paused": false }));
    let done = read.finished(&held).await;
    assert_eq!(done["return_value"], "held", "{done}");
    let task = read.get(&format!("/api/tasks/{held}")).await;
    assert!(task.get("waiting").is_none(), "{task}");
}

#[tokio::test]
async fn pausing_with_kill_running_kills_the_running_tasks() {
    let server = Server::start(&SqliteBackend.new_database(), &["--kill-grace-s", "0"]);
    let api = Api::new(&server, None);
    let sleeping = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
        .await;
    api.until(&sleeping, |kind, _| kind == "started").await;
    let (status, paused) = call(
        &api,
        Method::POST,
        "/api/task-types/demo.sleep/pause",
        Some(r#"{"kill_running": true}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["killing"], json!([sleeping]));
    assert_eq!(api.finished(&sleeping).await["status"], "killed");
}

#[tokio::test]
async fn nodes_lists_this_node_with_what_it_serves() {
    let server = Server::start(&SqliteBackend.new_database(), &["--token", "read:r"]);
    let (status, _) = call(&Api::new(&server, None), Method::GET, "/api/nodes", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let nodes = Api::new(&server, Some("r")).get("/api/nodes").await;
    let list = nodes["nodes"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{nodes}");
    let node = &list[0];
    assert_eq!(node["pid"], server.child.id(), "{node}");
    assert!(node["heartbeat_at"].is_string());
    let report = &node["report"];
    assert!(
        report["task_types"]
            .as_array()
            .unwrap()
            .contains(&json!("demo.echo")),
        "{node}"
    );
    assert!(report["slots"].as_u64().unwrap() > 0);
    assert!(nodes["node_timeout_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_cli_pauses_resumes_shows_why_and_lists_nodes() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let paused = server.cli(&["pause", "demo.echo"]);
    assert!(paused.status.success(), "{paused:?}");
    assert!(
        stdout(&paused).contains("demo.echo is paused on every node"),
        "{}",
        stdout(&paused)
    );
    let launched = server.cli(&["launch", "demo.echo", "--args", r#"{"value": 1}"#, "--json"]);
    assert!(launched.status.success(), "{launched:?}");
    let task: Value = serde_json::from_slice(&launched.stdout).unwrap();
    let id = task["id"].as_str().unwrap();
    let shown = server.cli(&["show", id]);
    let text = stdout(&shown);
    assert!(
        text.contains("waiting       paused: its task type `demo.echo` is paused"),
        "{text}"
    );

    let types = stdout(&server.cli(&["types"]));
    let echo = types.lines().find(|l| l.starts_with("demo.echo")).unwrap();
    assert!(echo.contains("[paused]"), "{types}");
    let log = types.lines().find(|l| l.starts_with("demo.log")).unwrap();
    assert!(!log.contains("[paused]"), "{types}");

    let nodes = server.cli(&["nodes"]);
    let text = stdout(&nodes);
    assert!(nodes.status.success(), "{nodes:?}");
    assert!(text.contains(&server.child.id().to_string()), "{text}");
    assert!(text.contains("demo.echo"), "{text}");

    let unknown = server.cli(&["pause", "demo.nope"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no node serves a task type named `demo.nope`"),
        "{unknown:?}"
    );
    let resumed = server.cli(&["resume", "demo.echo"]);
    assert!(resumed.status.success(), "{resumed:?}");
    let waited = server.cli(&["launch", "demo.echo", "--args", r#"{"value": 2}"#, "--wait"]);
    assert!(waited.status.success(), "{waited:?}");
}
