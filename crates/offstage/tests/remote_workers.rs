//! Remote workers and the task type's policies: a concurrency limit counts the workers' tasks
//! too, and a retry policy runs a task again when its worker disconnects. The worker here
//! speaks the protocol over an in-memory transport (the node's side is the real one).

use std::time::Duration;

use futures::channel::mpsc;
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::{
    Context, EventKind, ListFilter, Retry, Runtime, Status, TaskError, TaskTypeOptions,
};
use serde_json::{json, Value};

/// A limit per concurrency key counts the tasks a worker runs too: with one place per owner,
/// a node and a worker with room for five run one task of owner u1 between them, and u2's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limit_holds_for_a_type_workers_also_serve() {
    let rt = Runtime::builder()
        .sqlite(SqliteBackend.new_database())
        .task_with(
            "keyed",
            TaskTypeOptions::default().concurrency_per_key(1, offstage::ConcurrencyKey::Owner),
            |ctx: Context, _args: Value| async move {
                ctx.cancelled().await;
                Err::<(), _>(TaskError::cancelled())
            },
        )
        .build()
        .await
        .unwrap();
    // A worker with room for five that keeps whatever it is given running, and stops what it
    // is told to kill.
    let (to_node, incoming) = mpsc::unbounded::<String>();
    let (outgoing, mut from_node) = tokio::sync::mpsc::unbounded_channel::<String>();
    let hello =
        json!({ "type": "hello", "protocol": 1, "task_types": ["keyed"], "concurrency": 5 });
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

    let mut events = rt.events();
    let mut u1 = Vec::new();
    for _ in 0..3 {
        u1.push(
            rt.launch_json("keyed", json!(null))
                .owner("u1")
                .await
                .unwrap()
                .id(),
        );
    }
    let u2 = rt
        .launch_json("keyed", json!(null))
        .owner("u2")
        .await
        .unwrap()
        .id();
    let keys = |running_u1: u64, queued_u1: u64| {
        vec![
            offstage::KeyCount {
                key: "u1".into(),
                running: running_u1,
                queued: queued_u1,
            },
            offstage::KeyCount {
                key: "u2".into(),
                running: 1,
                queued: 0,
            },
        ]
    };
    let mut started = Vec::new();
    // Each of u1's tasks in turn: one at a time, wherever it runs; u2's beside them.
    for round in 0..3 {
        while started.len() < round + 2 {
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("the tasks keep moving")
                .unwrap();
            if let EventKind::Started { .. } = event.kind {
                started.push(event.task_id);
            }
        }
        assert!(started.contains(&u2));
        assert_eq!(
            rt.concurrency_keys("keyed", 10).await.unwrap(),
            keys(1, 2 - round as u64),
            "round {round}"
        );
        let holder = *started.iter().rev().find(|id| u1.contains(id)).unwrap();
        rt.kill(holder).await.unwrap();
    }
    drop(to_node);
    rt.shutdown().await.unwrap();
}

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

    // Five tasks, each killed as soon as it starts, on the node or on the worker: whenever one
    // starts, the store has it alone running. (Events cannot tell: the next task may start,
    // rightly, before the last one's `finished` event is out.)
    let mut events = rt.events();
    for _ in 0..5 {
        rt.launch_json("limited", json!(null)).await.unwrap();
    }
    let running = ListFilter {
        name: Some("limited".into()),
        status: Some(Status::Running),
        ..ListFilter::default()
    };
    let (mut most, mut ended) = (0, 0);
    while ended < 5 {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("the tasks keep moving")
            .unwrap();
        match &event.kind {
            EventKind::Started { .. } => {
                most = most.max(rt.list(&running).await.unwrap().len());
                let rt = rt.clone();
                tokio::spawn(async move { rt.kill(event.task_id).await });
            }
            EventKind::Finished { task } => {
                assert_eq!(task.status, Status::Killed, "{task:?}");
                ended += 1;
            }
            _ => {}
        }
    }
    assert_eq!(most, 1, "the limit of one held");
    drop(to_node);
    rt.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_lost_with_its_worker_runs_again_when_its_type_retries() {
    let quick = Retry::new(2).backoff(Duration::from_millis(1), Duration::from_millis(1));
    let rt = Runtime::builder()
        .sqlite(SqliteBackend.new_database())
        .max_concurrency(1)
        .task("blocker", |ctx: Context, _args: Value| async move {
            ctx.cancelled().await;
            Err::<(), _>(TaskError::cancelled())
        })
        .task_with(
            "resilient",
            TaskTypeOptions::default().retry(quick),
            |ctx: Context, _args: Value| async move { Ok::<_, TaskError>(ctx.attempt()) },
        )
        .build()
        .await
        .unwrap();
    // The node's one slot is taken, so the worker is the one to claim `resilient`.
    let mut events = rt.events();
    let blocker = rt.launch_json("blocker", json!(null)).await.unwrap();
    offstage::testing::wait_started(&mut events, blocker.id()).await;

    let (to_node, incoming) = mpsc::unbounded::<String>();
    let (outgoing, mut from_node) = tokio::sync::mpsc::unbounded_channel::<String>();
    let hello =
        json!({ "type": "hello", "protocol": 1, "task_types": ["resilient"], "concurrency": 1 });
    to_node.unbounded_send(hello.to_string()).unwrap();
    let serving = rt.clone();
    tokio::spawn(async move { serving.serve_worker(incoming, outgoing, "in-memory").await });
    let task = rt.launch_json("resilient", json!(null)).await.unwrap();
    loop {
        let text = tokio::time::timeout(Duration::from_secs(30), from_node.recv())
            .await
            .expect("the worker is given the task")
            .expect("the node keeps the connection");
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] == "assign" {
            assert_eq!(message["task_id"], json!(task.id()));
            break;
        }
    }
    // The worker goes away holding it: attempt 1 is lost, and the policy runs it again, here
    // once the node has room.
    drop(to_node);
    let requeued = offstage::testing::wait_for_event(&mut events, Duration::from_secs(30), |e| {
        e.task_id == task.id()
            && matches!(&e.kind, EventKind::Launched { task } if task.attempt == 1)
    })
    .await;
    let EventKind::Launched { task: queued } = &requeued.kind else {
        unreachable!()
    };
    assert_eq!(queued.error.as_ref().unwrap().kind, "worker_lost");
    rt.kill(blocker.id()).await.unwrap();
    let done = task.wait().await.unwrap();
    assert_eq!(
        (done.status, done.attempt, done.return_value),
        (Status::Completed, 2, Some(json!(2)))
    );
    rt.shutdown().await.unwrap();
}

/// A remote worker's `checkpoint` is stored by the node, which answers `checkpoint_saved` with
/// its `seq` (and why, for one over the cap); the next attempt's `assign` carries the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_s_checkpoint_is_confirmed_and_assigned_with_the_next_attempt() {
    let database = SqliteBackend.new_database();
    let store = SqliteBackend.open(&database).await;
    let rt = Runtime::builder()
        .sqlite(&database)
        .remote_task("remote.resumable")
        .state_limit(1_000)
        .build()
        .await
        .unwrap();
    let (to_node, incoming) = mpsc::unbounded::<String>();
    let (outgoing, mut from_node) = tokio::sync::mpsc::unbounded_channel::<String>();
    let hello = json!({ "type": "hello", "protocol": 1, "task_types": ["remote.resumable"],
        "concurrency": 1 });
    to_node.unbounded_send(hello.to_string()).unwrap();
    let serving = rt.clone();
    tokio::spawn(async move { serving.serve_worker(incoming, outgoing, "in-memory").await });
    let task = rt
        .launch_json("remote.resumable", json!(null))
        .await
        .unwrap();
    let assign = next(&mut from_node, "assign").await;
    assert_eq!(assign["task_id"], json!(task.id()));
    assert!(
        assign.get("checkpoint").is_none(),
        "a new task has none: {assign}"
    );
    let send = |message: Value| to_node.unbounded_send(message.to_string()).unwrap();
    send(
        json!({ "type": "checkpoint", "task_id": task.id(), "seq": 1,
        "checkpoint": { "page": 3 } }),
    );
    let saved = next(&mut from_node, "checkpoint_saved").await;
    assert_eq!(
        saved,
        json!({ "type": "checkpoint_saved", "task_id": task.id(), "seq": 1 })
    );
    assert_eq!(
        store.get(task.id()).await.unwrap().unwrap().checkpoint,
        Some(json!({ "page": 3 })),
        "in the store when confirmed"
    );
    send(
        json!({ "type": "checkpoint", "task_id": task.id(), "seq": 2,
        "checkpoint": "x".repeat(2_000) }),
    );
    let refused = next(&mut from_node, "checkpoint_saved").await;
    assert_eq!(refused["seq"], json!(2));
    let why = refused["error"].as_str().unwrap();
    assert!(why.contains("over the cap of 1000 bytes"), "{why}");
    assert_eq!(
        task.record().await.unwrap().checkpoint,
        Some(json!({ "page": 3 }))
    );

    // The worker goes away; the task is lost (`worker_lost`), rerun from its checkpoint.
    drop(to_node);
    let lost = task.wait().await.unwrap();
    assert_eq!(lost.status, Status::Missing);
    let again = rt
        .rerun_with(
            task.id(),
            offstage::RerunOptions {
                from_checkpoint: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (to_node, incoming) = mpsc::unbounded::<String>();
    let (outgoing, mut from_node) = tokio::sync::mpsc::unbounded_channel::<String>();
    to_node.unbounded_send(hello.to_string()).unwrap();
    let serving = rt.clone();
    tokio::spawn(async move { serving.serve_worker(incoming, outgoing, "in-memory").await });
    let assign = next(&mut from_node, "assign").await;
    assert_eq!(assign["task_id"], json!(again.id()));
    assert_eq!(assign["checkpoint"], json!({ "page": 3 }));
    // A checkpoint about the task the first connection lost is answered, refused.
    let stray = json!({ "type": "checkpoint", "task_id": task.id(), "seq": 7, "checkpoint": 1 });
    to_node.unbounded_send(stray.to_string()).unwrap();
    let refused = next(&mut from_node, "checkpoint_saved").await;
    assert_eq!(refused["seq"], json!(7));
    let why = refused["error"].as_str().unwrap();
    assert!(why.contains("not assigned to this connection"), "{why}");
    assert_eq!(
        task.record().await.unwrap().checkpoint,
        Some(json!({ "page": 3 }))
    );
    drop(to_node);
    rt.shutdown().await.unwrap();
}

/// The next message of type `wanted` the node sends (others are passed over).
async fn next(from_node: &mut tokio::sync::mpsc::UnboundedReceiver<String>, wanted: &str) -> Value {
    loop {
        let text = tokio::time::timeout(Duration::from_secs(30), from_node.recv())
            .await
            .expect("the node answers")
            .expect("the node keeps the connection");
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] == wanted {
            return message;
        }
    }
}
