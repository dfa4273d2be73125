//! Remote workers: real `offstage serve` and `offstage worker` processes, talking the worker
//! protocol over a WebSocket on loopback.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Api, Server, BIN};
use futures::{SinkExt, StreamExt};
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const TOKENS: [&str; 4] = ["--token", "worker:w-secret", "--token", "control:c-secret"];

/// A server where only workers run `demo.sleep` and `demo.count`.
fn server() -> Server {
    server_at(&SqliteBackend.new_database(), "127.0.0.1:0")
}

fn server_at(db: &str, addr: &str) -> Server {
    Server::start_at(
        db,
        addr,
        &[
            TOKENS[0],
            TOKENS[1],
            TOKENS[2],
            TOKENS[3],
            "--remote-type",
            "demo.sleep",
            "--remote-type",
            "demo.count",
        ],
    )
}

/// An `offstage worker` process serving the demo types; killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(server: &Server, name: &str) -> WorkerProcess {
        let child = Command::new(BIN)
            .args(["worker", "--name", name, "--server", &server.url])
            .env("OFFSTAGE_TOKEN", "w-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        WorkerProcess(child)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_work_waits_for_a_worker_then_runs_there_live() {
    let server = server();
    let api = Api::new(&server, Some("c-secret"));
    let id = api
        .launch(json!({ "name": "demo.count", "args": { "to": 5, "interval_ms": 20 } }))
        .await;
    let types = api.get("/api/task-types").await;
    let count = types["task_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "demo.count")
        .unwrap()
        .clone();
    assert_eq!(count["workers"], json!([]), "nobody serves it yet: {types}");
    assert_eq!(
        api.get(&format!("/api/tasks/{id}")).await["status"],
        "queued"
    );

    let _worker = WorkerProcess::start(&server, "worker-a");
    // Its state arrives live, then its log, then the end.
    let state = api
        .until(&id, |kind, event| {
            kind == "state" && event["state"]["done"] == 3
        })
        .await;
    assert_eq!(state["state"]["total"], 5);
    let done = api.finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["return_value"], 5);
    let logs = api.get(&format!("/api/tasks/{id}/logs")).await;
    assert_eq!(logs["lines"].as_array().unwrap().len(), 5, "{logs}");
    let types = api.get("/api/task-types").await;
    assert!(
        types.to_string().contains("worker-a"),
        "the worker is listed: {types}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_reaches_the_worker_and_the_task_stops_cooperatively() {
    let server = server();
    let api = Api::new(&server, Some("c-secret"));
    let _worker = WorkerProcess::start(&server, "worker-k");
    let id = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
        .await;
    api.until(&id, |kind, _| kind == "state").await;
    api.kill(&id, None).await;
    let done = api.finished(&id).await;
    assert_eq!(done["status"], "killed", "{done}");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(message.contains("stopped by itself"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_leaves_missing_tasks_and_the_next_worker_picks_up_the_queue()
{
    let server = server();
    let api = Api::new(&server, Some("c-secret"));
    let mut worker = WorkerProcess::start(&server, "worker-doomed");
    let running = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
        .await;
    api.until(&running, |kind, _| kind == "state").await;
    worker.0.kill().unwrap(); // SIGKILL
    worker.0.wait().unwrap();
    let lost = api.finished(&running).await;
    assert_eq!(lost["status"], "missing", "{lost}");
    assert_eq!(lost["error"]["kind"], "worker_lost");

    // Work launched with no worker waits, and the next worker takes it.
    let queued = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 0.01 } }))
        .await;
    assert_eq!(
        api.get(&format!("/api/tasks/{queued}")).await["status"],
        "queued"
    );
    let _next = WorkerProcess::start(&server, "worker-next");
    let done = api.finished(&queued).await;
    assert_eq!(done["status"], "completed", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_is_declared_lost_within_two_heartbeats() {
    let server = server();
    let api = Api::new(&server, Some("c-secret"));
    let worker = WorkerProcess::start(&server, "worker-frozen");
    let id = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
        .await;
    api.until(&id, |kind, _| kind == "state").await;
    // Frozen, not dead: the connection stays open, but nothing more comes from it.
    let pid = worker.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    let lost = api.finished(&id).await;
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    assert_eq!(lost["status"], "missing", "{lost}");
    assert!(
        lost["error"]["message"]
            .as_str()
            .unwrap()
            .contains("two heartbeat"),
        "{lost}"
    );
    // The default heartbeat is 1 s; the window is two of them, plus one tick of slack.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_closes_only_that_connection_with_a_reason() {
    let server = server();
    let api = Api::new(&server, Some("c-secret"));
    let _worker = WorkerProcess::start(&server, "worker-good");
    let url = server.url.replace("http://", "ws://") + "/api/workers";

    // No token, or a token of another role: refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(refused.is_err());
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer c-secret".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err());

    let connect = || async {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", "Bearer w-secret".parse().unwrap());
        tokio_tungstenite::connect_async(request).await.unwrap().0
    };
    for (first, expect) in [
        ("this is not json", "not a worker message"),
        (r#"{"type": "heartbeat"}"#, "first message must be `hello`"),
        (
            r#"{"type": "hello", "protocol": 1, "task_types": [], "concurrency": 1}"#,
            "at least one task type",
        ),
        (
            r#"{"type": "hello", "protocol": 9, "task_types": ["x"], "concurrency": 1}"#,
            "protocol 9 is not supported",
        ),
    ] {
        let mut socket = connect().await;
        socket.send(Message::Text(first.into())).await.unwrap();
        let error = socket.next().await.unwrap().unwrap();
        let error: Value = serde_json::from_str(error.to_text().unwrap()).unwrap();
        assert_eq!(error["type"], "error");
        assert!(
            error["message"].as_str().unwrap().contains(expect),
            "{first}: {error}"
        );
        match socket.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1008);
                assert!(frame.reason.contains(expect), "{}", frame.reason);
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    // Out of order: state for a task this connection was never given.
    let mut socket = connect().await;
    let hello =
        json!({ "type": "hello", "protocol": 1, "task_types": ["other.type"], "concurrency": 1 });
    socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    let welcome: Value =
        serde_json::from_str(socket.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(welcome["type"], "welcome");
    let stray = json!({ "type": "state", "task_id": offstage::TaskId::new(), "state": {} });
    socket
        .send(Message::Text(stray.to_string().into()))
        .await
        .unwrap();
    let mut reason = String::new();
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Close(Some(frame)) = message {
            reason = frame.reason.to_string();
            break;
        }
    }
    assert!(reason.contains("not assigned to this worker"), "{reason}");

    // And the good worker still works.
    let id = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 0.01 } }))
        .await;
    assert_eq!(api.finished(&id).await["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reconnects_when_its_server_comes_back_and_takes_the_queued_work() {
    let db = SqliteBackend.new_database();
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let mut server = server_at(&db, &addr);
    let _worker = WorkerProcess::start(&server, "worker-r");
    let api = Api::new(&server, Some("c-secret"));
    let first = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 0.01 } }))
        .await;
    assert_eq!(api.finished(&first).await["status"], "completed");

    // The server dies and comes back on the same address and database; the same worker
    // process reconnects by itself.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let server = server_at(&db, &addr);
    let api = Api::new(&server, Some("c-secret"));
    let queued = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 0.01 } }))
        .await;
    let done = api.finished(&queued).await;
    assert_eq!(done["status"], "completed", "{done}");
}
