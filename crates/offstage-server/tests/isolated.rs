//! Isolated tasks: a real `offstage serve --demo` whose `demo.spin` and `demo.hog` run in
//! worker processes of their own, killed for real.

mod common;

use common::{Api, Server};
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::json;

/// What the isolated tests ask of a server beyond the common API.
trait Isolated {
    async fn log_line(&self, id: &str, text: &str) -> String;
    async fn worker_pid(&self, id: &str) -> u32;
}

impl Isolated for Api {
    /// Reads the task's events from its launch until a log line contains `text`; returns it.
    async fn log_line(&self, id: &str, text: &str) -> String {
        let event = self
            .until(id, |kind, event| {
                kind == "log" && event["line"]["message"].as_str().unwrap().contains(text)
            })
            .await;
        event["line"]["message"].as_str().unwrap().to_owned()
    }

    /// The pid of the worker process running task `id`, from the line the node logs for it.
    async fn worker_pid(&self, id: &str) -> u32 {
        let line = self
            .log_line(id, "running in isolated worker process")
            .await;
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }
}

fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_never_awaits_is_killed_with_zero_grace_and_its_process_is_gone() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let id = api
        .launch(json!({ "name": "demo.spin", "args": { "seconds": 600 } }))
        .await;
    let pid = api.worker_pid(&id).await;
    // Its own stdout is in its log.
    api.log_line(&id, &format!("spinning for 600 s in process {pid}"))
        .await;
    assert!(exists(pid));
    api.kill(&id, Some(0.0)).await;
    let done = api.finished(&id).await;
    assert_eq!(done["status"], "killed", "{done}");
    assert!(
        !exists(pid),
        "process {pid} is gone once the task reads killed"
    );

    // The pool has a process again: the next isolated task runs, in a new process.
    let next = api
        .launch(json!({ "name": "demo.spin", "args": { "seconds": 0.01 } }))
        .await;
    let next_pid = api.worker_pid(&next).await;
    assert_ne!(next_pid, pid);
    assert_eq!(api.finished(&next).await["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_stops_a_task_that_never_awaits_and_its_process_is_gone() {
    let server = Server::start(&SqliteBackend.new_database(), &["--kill-grace-s", "0.2"]);
    let api = Api::new(&server, None);
    let id = api
        .launch(json!({ "name": "demo.spin", "args": { "seconds": 600 }, "timeout_s": 0.5 }))
        .await;
    let pid = api.worker_pid(&id).await;
    let done = api.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["kind"], "timeout");
    assert!(!exists(pid), "process {pid} is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_killed_mid_task_fails_it_as_crashed_and_the_pool_refills() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let id = api
        .launch(json!({ "name": "demo.spin", "args": { "seconds": 600 } }))
        .await;
    let pid = api.worker_pid(&id).await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let done = api.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["kind"], "worker_crashed");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(message.contains("SIGKILL"), "{message}");

    let next = api
        .launch(json!({ "name": "demo.spin", "args": { "seconds": 0.01 } }))
        .await;
    assert_eq!(api.finished(&next).await["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_its_memory_limit_fails_and_one_under_it_completes() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let hog = api
        .launch(json!({ "name": "demo.hog", "args": { "mb": 1024 } }))
        .await;
    let done = api.finished(&hog).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["kind"], "worker_crashed", "{done}");

    let small = api
        .launch(json!({ "name": "demo.hog", "args": { "mb": 16 } }))
        .await;
    let done = api.finished(&small).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["return_value"], 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_launch_can_ask_for_isolation() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    // demo.count runs in-process, unless a launch asks otherwise.
    let id = api
        .launch(json!({
            "name": "demo.count", "args": { "to": 100000, "interval_ms": 10 }, "isolated": true
        }))
        .await;
    let pid = api.worker_pid(&id).await;
    api.until(&id, |kind, _| kind == "state").await;
    api.kill(&id, Some(0.0)).await;
    let done = api.finished(&id).await;
    assert_eq!(done["status"], "killed", "{done}");
    assert_eq!(done["isolated"], true);
    assert!(!exists(pid), "process {pid} is gone");

    let plain = api
        .launch(json!({ "name": "demo.count", "args": { "to": 1, "interval_ms": 1 } }))
        .await;
    let done = api.finished(&plain).await;
    assert_eq!(
        (done["status"].as_str(), &done["isolated"]),
        (Some("completed"), &json!(false))
    );
}
