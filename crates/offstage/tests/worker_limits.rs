//! A type with a concurrency limit that remote workers serve too: the workers' claims count
//! against the limit like the node's own. The worker here speaks the protocol over an
//! in-memory transport (the node's side is the real one).

use std::time::Duration;

use futures::channel::mpsc;
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::{Context, EventKind, Runtime, Status, TaskError, TaskTypeOptions};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_holds_for_a_type_workers_also_serve() {
    let rt = Runtime::builder()
        .sqlite(SqliteBackend.new_database())
        .task_with(
            "limited",
            TaskTypeOptions::default().concurrency_limit(1),
            |ctx: Context, _args: Value| async move {
                ctx.cancelled().await;
                Err::<(), _>(TaskError::cancelled())
            },
        )
        .build()
        .await
        .unwrap();
    // A worker with room for five, that stops whatever it is told to kill.
    let (to_node, incoming) = mpsc::unbounded::<String>();
    let (outgoing, mut from_node) = tokio::sync::mpsc::unbounded_channel::<String>();
    let hello =
        json!({ "type": "hello", "protocol": 1, "task_types": ["limited"], "concurrency": 5 });
    to_node.unbounded_send(hello.to_string()).unwrap();
    let serving = rt.clone();
    tokio::spawn(async move { serving.serve_worker(incoming, outgoing, "in-memory").await });
    let worker = to_node.clone();
    tokio::spawn(async move {
        while let Some(text) = from_node.recv().await {
            let message: Value = serde_json::from_str(&text).unwrap();
            let reply = match message["type"].as_str() {
                Some("kill" | "abort") => json!({
                    "type": "failed",
                    "task_id": message["task_id"],
                    "error": { "kind": "killed", "message": "stopped as asked" },
                }),
                Some("heartbeat") => json!({ "type": "heartbeat" }),
                _ => continue,
            };
            let _ = worker.unbounded_send(reply.to_string());
        }
    });

    // Five tasks, each killed as soon as it starts, on the node or on the worker: never more
    // than one running at a time.
    let mut events = rt.events();
    for _ in 0..5 {
        rt.launch_json("limited", json!(null)).await.unwrap();
    }
    let (mut running, mut most, mut ended) = (0, 0, 0);
    while ended < 5 {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("the tasks keep moving")
            .unwrap();
        match &event.kind {
            EventKind::Started { .. } => {
                running += 1;
                most = most.max(running);
                let rt = rt.clone();
                tokio::spawn(async move { rt.kill(event.task_id).await });
            }
            EventKind::Finished { task } => {
                assert_eq!(task.status, Status::Killed, "{task:?}");
                running -= 1;
                ended += 1;
            }
            _ => {}
        }
    }
    assert_eq!(most, 1, "the limit of one held");
    drop(to_node);
    rt.shutdown().await.unwrap();
}
