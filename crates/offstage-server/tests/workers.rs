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

    // Reports on a task this connection does not hold (a task declared lost when an earlier
    // connection ended) are refused alone: the connection goes on and gets its next task.
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
    let lost = offstage::TaskId::new();
    for stray in [
        json!({ "type": "state", "task_id": lost, "state": {"late": true} }),
        json!({ "type": "log", "task_id": lost, "level": "info", "message": "late" }),
        json!({ "type": "completed", "task_id": lost, "return_value": 1 }),
        json!({ "type": "failed", "task_id": lost, "error": {"kind": "x", "message": "late"} }),
    ] {
        socket
            .send(Message::Text(stray.to_string().into()))
            .await
            .unwrap();
    }
    let other = api
        .launch(json!({ "name": "other.type", "args": {} }))
        .await;
    let assigned = loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["type"] == "assign" {
                    break message;
                }
            }
            Some(Ok(Message::Close(frame))) => panic!("closed after stray reports: {frame:?}"),
            Some(Ok(_)) => {}
            other => panic!("expected the next task, got {other:?}"),
        }
    };
    assert_eq!(assigned["task_id"], other);
    let done = json!({ "type": "completed", "task_id": other, "return_value": "fine" });
    socket
        .send(Message::Text(done.to_string().into()))
        .await
        .unwrap();
    assert_eq!(api.finished(&other).await["return_value"], "fine");

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

/// A raw WebSocket worker: hello for `demo.sleep` with room for `concurrency`, welcome read.
async fn raw_worker(
    server: &Server,
    concurrency: u32,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = server.url.replace("http://", "ws://") + "/api/workers";
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer w-secret".parse().unwrap());
    let mut socket = tokio_tungstenite::connect_async(request).await.unwrap().0;
    let hello = json!({ "type": "hello", "protocol": 1, "name": "raw",
        "task_types": ["demo.sleep"], "concurrency": concurrency });
    socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    let welcome = next_message(&mut socket).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    socket
}

/// The next message from the server that is not a heartbeat.
async fn next_message(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let frame = socket
                .next()
                .await
                .expect("the connection is open")
                .unwrap();
            let message: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
            if message["type"] != "heartbeat" {
                return message;
            }
        }
    })
    .await
    .expect("a message within 30 s")
}

/// Issue 13: a worker that sent one 20 MB state frame was disconnected with "bye", nothing was
/// logged, and every task it held went `missing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_state_frame_is_refused_alone_and_the_workers_other_task_completes() {
    let db = SqliteBackend.new_database();
    let log = format!("{db}.server-log");
    // A long heartbeat: the test's unoptimised build takes a while over 50 MB frames, and a
    // raw worker sends no heartbeat while it writes one.
    let server = Server::start_logging(
        &db,
        "127.0.0.1:0",
        &[
            TOKENS[0],
            TOKENS[1],
            TOKENS[2],
            TOKENS[3],
            "--remote-type",
            "demo.sleep",
            "--heartbeat-s",
            "15",
            "--node-timeout-s",
            "60",
        ],
        std::fs::File::create(&log).unwrap(),
    );
    let api = Api::new(&server, Some("c-secret"));
    let mut socket = raw_worker(&server, 2).await;
    let a = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
        .await;
    let b = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
        .await;
    let mut assigned = Vec::new();
    while assigned.len() < 2 {
        let message = next_message(&mut socket).await;
        assert_eq!(message["type"], "assign", "{message}");
        assigned.push(message["task_id"].as_str().unwrap().to_owned());
    }
    assigned.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(assigned, expected);

    let send = |value: Value| Message::Text(value.to_string().into());
    socket
        .send(send(
            json!({ "type": "state", "task_id": a, "state": { "done": 1 } }),
        ))
        .await
        .unwrap();
    for megabytes in [20, 50] {
        let blob = "x".repeat(megabytes * 1_000_000);
        let oversized = json!({ "type": "state", "task_id": a, "state": { "blob": blob } });
        socket.send(send(oversized)).await.unwrap();
    }
    socket
        .send(send(
            json!({ "type": "log", "task_id": a, "message": "still here" }),
        ))
        .await
        .unwrap();
    // The log line after both frames arrived: the connection outlived them.
    api.until(&a, |kind, event| {
        kind == "log" && event["line"]["message"] == "still here"
    })
    .await;

    // The other task is untouched and completes normally.
    socket
        .send(send(
            json!({ "type": "completed", "task_id": b, "return_value": 7 }),
        ))
        .await
        .unwrap();
    let done = api.finished(&b).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["return_value"], 7);

    // The offending task runs on with its previous state, and its log says why.
    let task = api.get(&format!("/api/tasks/{a}")).await;
    assert_eq!(task["status"], "running", "{task}");
    assert_eq!(task["state"], json!({ "done": 1 }));
    socket
        .send(send(
            json!({ "type": "completed", "task_id": a, "return_value": null }),
        ))
        .await
        .unwrap();
    let done = api.finished(&a).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["state"], json!({ "done": 1 }));
    let logs = api.get(&format!("/api/tasks/{a}/logs")).await;
    let refusals: Vec<&Value> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| {
            line["level"] == "warn" && line["message"].as_str().unwrap().contains("state refused")
        })
        .collect();
    assert_eq!(refusals.len(), 2, "{logs}");
    assert!(
        refusals[1]["message"]
            .as_str()
            .unwrap()
            .contains("over the state cap of 1048576 bytes"),
        "{logs}"
    );

    // Over the protocol's 64 MiB limit the frame cannot be skipped: the connection closes
    // with 1009, the server's log says why, and the task that worker held is `missing`.
    socket.close(None).await.unwrap();
    drop(socket);
    let mut socket = raw_worker(&server, 1).await;
    let c = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
        .await;
    assert_eq!(next_message(&mut socket).await["task_id"], c.as_str());
    let blob = "x".repeat(65 * 1024 * 1024);
    let huge = json!({ "type": "state", "task_id": c, "state": blob });
    // The server may close before it has all of it: the send can fail.
    let _ = socket.send(send(huge)).await;
    let lost = api.finished(&c).await;
    assert_eq!(lost["status"], "missing", "{lost}");
    assert_eq!(lost["error"]["kind"], "worker_lost");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("closing a worker connection with 1009")
            && logged.contains("over the worker protocol's limit of 64 MiB"),
        "{logged}"
    );
}
