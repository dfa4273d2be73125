//! What survives: reopening, dead and live nodes, kills across nodes, purge, volume.

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use serde_json::json;

use super::tasks::{runtime, runtime_with, start_blocker};
use super::Backend;
use crate::store::NodeInfo;
use crate::testing::wait_for_event;
use crate::{ErrorKind, EventKind, ListFilter, NodeId, Status, TaskRecord};

/// Everything about finished tasks reads the same after the store is reopened.
pub async fn history_survives_reopening(backend: &dyn Backend) {
    let (rt, database) = runtime(backend).await;
    let done = rt
        .launch_json("test.log", json!(2))
        .owner("alice")
        .await
        .unwrap();
    let done = done.wait().await.unwrap();
    let failed = rt
        .launch_json("test.fail", json!("oops"))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    rt.shutdown().await.unwrap();
    drop(rt);

    let rt = runtime_with(backend, &database, |b| b).await;
    assert_eq!(rt.record(done.id).await.unwrap(), done);
    assert_eq!(rt.record(failed.id).await.unwrap(), failed);
    let task = rt.get(done.id).await.unwrap();
    assert!(task.is_completed().await.unwrap());
    assert_eq!(task.launched_at(), done.launched_at);
    assert_eq!(rt.logs(done.id, 0, 10).await.unwrap().len(), 4);
    let listed = rt.list(&ListFilter::default()).await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [failed.id, done.id]
    );
}

/// A node registered an hour ago on `host` "elsewhere" and silent since: dead to any runtime
/// that looks. Returns it and the time it started.
pub(super) async fn dead_node(
    store: &dyn crate::store::Store,
) -> (NodeInfo, chrono::DateTime<Utc>) {
    let long_ago = Utc::now() - chrono::Duration::hours(1);
    let dead = NodeInfo {
        id: NodeId::new(),
        host: "elsewhere".into(),
        pid: 1,
        started_at: long_ago,
    };
    store.register_node(&dead).await.unwrap();
    (dead, long_ago)
}

pub(super) fn running_record(node: NodeId, launched: chrono::DateTime<Utc>) -> TaskRecord {
    let mut record = crate::testing::sample_record(crate::TaskId::new());
    record.name = "test.sleep".to_owned();
    record.args = json!({ "ms": 1 });
    record.status = Status::Running;
    record.return_value = None;
    record.finished_at = None;
    record.launched_at = launched;
    record.run_at = launched;
    record.started_at = Some(launched);
    record.node = Some(node);
    record
}

/// A node that stopped heartbeating is dead: a runtime starting later marks its running tasks
/// `missing`, and leaves finished ones alone.
pub async fn dead_node_tasks_are_marked_missing(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let (dead, long_ago) = dead_node(&*store).await;
    let orphan = running_record(dead.id, long_ago);
    store.launch(&orphan).await.unwrap();

    let rt = runtime_with(backend, &database, |b| b).await;
    let record = rt.record(orphan.id).await.unwrap();
    assert_eq!(record.status, Status::Missing);
    let error = record.error.unwrap();
    assert_eq!(error.kind, "missing");
    assert!(error.message.contains("elsewhere"), "{}", error.message);
    assert_eq!(
        rt.get(orphan.id)
            .await
            .unwrap()
            .is_completed()
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::TaskMissing
    );
    // Recovery runs once: a second pass finds nothing more.
    assert!(rt
        .store()
        .recover(rt.node_id(), rt.now(), Duration::from_secs(10), None)
        .await
        .unwrap()
        .is_empty());
}

/// A dead node's task runs again when its type's retry policy retries `missing` (and has
/// attempts left), with a line in its log saying why; a type whose policy does not, or with
/// no policy, stays `missing`.
pub async fn a_dead_nodes_task_runs_again_when_its_type_retries(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let (dead, long_ago) = dead_node(&*store).await;
    let orphan = |name: &str| {
        let mut record = running_record(dead.id, long_ago);
        record.name = name.to_owned();
        record.attempt = 1;
        record
    };
    let (resilient, picky, plain) = (
        orphan("test.resilient"),
        orphan("test.picky"),
        orphan("test.sleep"),
    );
    for record in [&resilient, &picky, &plain] {
        store.launch(record).await.unwrap();
    }

    let rt = runtime_with(backend, &database, |builder| {
        let quick = |retry: crate::Retry| {
            crate::TaskTypeOptions::default()
                .retry(retry.backoff(Duration::from_millis(1), Duration::from_millis(1)))
        };
        builder
            .task_with(
                "test.resilient",
                quick(crate::Retry::new(2)),
                |ctx: crate::Context, _args: serde_json::Value| async move {
                    Ok::<_, crate::TaskError>(ctx.attempt())
                },
            )
            .task_with(
                "test.picky",
                quick(crate::Retry::new(2).kinds(&["flaky"])),
                |_ctx: crate::Context, _args: serde_json::Value| async {
                    Ok::<_, crate::TaskError>(0)
                },
            )
    })
    .await;
    let again = rt.get(resilient.id).await.unwrap().wait().await.unwrap();
    assert_eq!(
        (again.status, again.attempt, again.return_value),
        (Status::Completed, 2, Some(json!(2)))
    );
    let logs = rt.logs(resilient.id, 0, 10).await.unwrap();
    assert!(
        logs.iter()
            .any(|l| l.message.contains("attempt 1 of 2 went missing")),
        "{logs:?}"
    );
    for stays in [&picky, &plain] {
        let record = rt.record(stays.id).await.unwrap();
        assert_eq!(record.status, Status::Missing, "{}", record.name);
    }

    // The store's side: recovery queues what `rerun` says in its own step, so the task is
    // never read `missing`; its error and the log line are kept.
    let (dead, long_ago) = dead_node(&*store).await;
    let orphan = running_record(dead.id, long_ago);
    store.launch(&orphan).await.unwrap();
    let due = rt.now() + chrono::Duration::hours(1);
    let rerun: crate::store::Rerun = std::sync::Arc::new(move |_task, now| {
        let line = crate::LogLine {
            seq: 1 << 32,
            at: now,
            level: crate::LogLevel::Warn,
            message: "running again".into(),
        };
        Some((due, line))
    });
    let recovered = store
        .recover(rt.node_id(), rt.now(), Duration::from_secs(10), Some(rerun))
        .await
        .unwrap();
    assert_eq!(recovered.len(), 1);
    for record in [
        recovered[0].clone(),
        store.get(orphan.id).await.unwrap().unwrap(),
    ] {
        assert_eq!(
            (record.status, record.run_at, record.node),
            (Status::Queued, due, None)
        );
        assert_eq!(record.error.as_ref().unwrap().kind, "missing");
    }
    let logs = store.logs(orphan.id, 0, 10).await.unwrap();
    assert_eq!(logs.last().unwrap().message, "running again");
    rt.shutdown().await.unwrap();
}

/// Two nodes recovering the same dead node at the same moment mark each of its tasks once
/// between them: no task is reported (or announced) missing twice.
pub async fn recovery_marks_each_task_exactly_once(backend: &dyn Backend) {
    let database = backend.new_database();
    let (one, two) = (backend.open(&database).await, backend.open(&database).await);
    let (dead, long_ago) = dead_node(&*one).await;
    let mut orphans = Vec::new();
    for _ in 0..50 {
        let record = running_record(dead.id, long_ago);
        one.launch(&record).await.unwrap();
        orphans.push(record.id);
    }
    let now = Utc::now();
    let stale = Duration::from_secs(10);
    let (a, b) = futures::join!(
        one.recover(NodeId::new(), now, stale, None),
        two.recover(NodeId::new(), now, stale, None)
    );
    let mut marked: Vec<_> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(|r| r.id)
        .collect();
    marked.sort();
    orphans.sort();
    assert_eq!(marked, orphans, "each task marked once, by one of the two");
    for id in orphans {
        assert_eq!(one.get(id).await.unwrap().unwrap().status, Status::Missing);
    }
}

/// A second runtime opening the same database never marks a live runtime's tasks missing.
pub async fn live_node_tasks_are_never_marked_missing(backend: &dyn Backend) {
    let (first, database) = runtime(backend).await;
    let mut events = first.events();
    let task = start_blocker(&first, &mut events).await;
    let second = runtime_with(backend, &database, |b| b).await;
    let recovered = second
        .store()
        .recover(
            second.node_id(),
            second.now(),
            Duration::from_secs(10),
            None,
        )
        .await
        .unwrap();
    assert!(recovered.is_empty(), "{recovered:?}");
    assert_eq!(
        second.record(task.id()).await.unwrap().status,
        Status::Running
    );
    assert_eq!(task.kill().await.unwrap().status, Status::Killed);
}

/// A kill sent through one node stops a task running on another.
pub async fn kill_reaches_a_task_on_another_node(backend: &dyn Backend) {
    let database = backend.new_database();
    let fast =
        |b: crate::RuntimeBuilder| b.heartbeat(Duration::from_millis(50), Duration::from_secs(10));
    let first = runtime_with(backend, &database, fast).await;
    let second = runtime_with(backend, &database, fast).await;
    let mut events = first.events();
    let task = start_blocker(&first, &mut events).await;
    let record = second.kill(task.id()).await.unwrap();
    assert_eq!(record.status, Status::Killed);
    assert_eq!(record.node, Some(first.node_id()));
}

/// Events of a task running on one node reach subscribers on another node live, and a handle
/// on that other node waits for the task's end without polling the store.
pub async fn events_of_a_task_on_another_node_arrive_live(backend: &dyn Backend) {
    let database = backend.new_database();
    let first = runtime_with(backend, &database, |b| b).await;
    let second = runtime_with(backend, &database, |b| b).await;
    let mut here = first.events();
    let mut there = second.events();
    let task = start_blocker(&first, &mut here).await;
    let limit = Duration::from_secs(10);
    wait_for_event(&mut there, limit, |e| {
        e.task_id == task.id() && matches!(e.kind, EventKind::Launched { .. })
    })
    .await;
    let state = wait_for_event(&mut there, limit, |e| {
        e.task_id == task.id() && matches!(e.kind, EventKind::State { .. })
    })
    .await;
    assert!(
        matches!(&state.kind, EventKind::State { state } if **state == json!({ "phase": "waiting" }))
    );
    let remote = second.get(task.id()).await.unwrap();
    let mut remote_events = remote.events();
    let waiting = tokio::spawn(async move { remote.wait().await });
    task.kill().await.unwrap();
    let finished = wait_for_event(&mut remote_events, limit, |e| {
        matches!(e.kind, EventKind::Finished { .. })
    })
    .await;
    let EventKind::Finished { task: record } = finished.kind else {
        unreachable!()
    };
    assert_eq!(record.status, Status::Killed);
    let waited = tokio::time::timeout(limit, waiting).await.unwrap().unwrap();
    assert_eq!(waited.unwrap().status, Status::Killed);
}

/// A task queued through one node runs on another that has a free slot.
pub async fn a_task_queued_on_a_full_node_runs_on_another(backend: &dyn Backend) {
    let database = backend.new_database();
    let full = runtime_with(backend, &database, |b| b.max_concurrency(1)).await;
    let mut events = full.events();
    let blocker = start_blocker(&full, &mut events).await;
    let other = runtime_with(backend, &database, |b| b).await;
    let task = full.launch_json("test.echo", json!(7)).await.unwrap();
    let record = tokio::time::timeout(Duration::from_secs(10), task.wait())
        .await
        .expect("the other node claims it")
        .unwrap();
    assert_eq!(record.status, Status::Completed);
    assert_eq!(record.node, Some(other.node_id()));
    blocker.kill().await.unwrap();
}

/// Purge deletes finished tasks older than the cutoff, with their logs, and nothing else.
pub async fn purge_deletes_finished_before(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.max_concurrency(1)).await;
    let old = rt.launch_json("test.log", json!(2)).await.unwrap();
    let finished = old.wait().await.unwrap().finished_at.unwrap();
    let cutoff = finished + chrono::Duration::microseconds(1);
    let mut events = rt.events();
    let running = start_blocker(&rt, &mut events).await;
    let queued = rt.launch_json("test.echo", json!(1)).await.unwrap();
    assert_eq!(rt.purge(cutoff).await.unwrap(), 1);
    assert_eq!(
        rt.get(old.id()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        rt.logs(old.id(), 0, 10).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(running.status().await.unwrap(), Status::Running);
    assert_eq!(queued.status().await.unwrap(), Status::Queued);
    running.kill().await.unwrap();
    queued.wait().await.unwrap();
    assert_eq!(
        rt.purge(cutoff).await.unwrap(),
        0,
        "both finished after the cutoff"
    );
    assert_eq!(
        rt.purge(rt.now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        2
    );
    assert!(rt.list(&ListFilter::default()).await.unwrap().is_empty());
}

/// 10,000 tasks launched at once all run exactly once and end `completed`.
pub async fn ten_thousand_tasks_none_lost(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.max_concurrency(200)).await;
    let launches = (0..10_000).map(|i| {
        let rt = rt.clone();
        async move { rt.launch_json("test.echo", json!(i)).await.unwrap() }
    });
    let tasks = join_all(launches).await;
    let records = join_all(tasks.iter().map(|t| t.wait())).await;
    for (i, record) in records.into_iter().enumerate() {
        let record = record.unwrap();
        assert_eq!((record.status, record.attempt), (Status::Completed, 1));
        assert_eq!(record.return_value, Some(json!(i)));
    }
    let counts = rt.counts().await.unwrap();
    assert_eq!(
        counts,
        [("test.echo".to_owned(), Status::Completed, 10_000)]
    );
}
