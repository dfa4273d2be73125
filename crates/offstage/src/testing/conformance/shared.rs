//! Shared state: no lost update under contention from two nodes, locks that never outlive
//! their holder (killed, or on a dead node), snapshots and changes seen from every node.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};

use super::durability::dead_node;
use super::tasks::{runtime, runtime_with};
use super::Backend;
use crate::testing::wait_for_event;
use crate::{ErrorKind, EventKind, Runtime, Status};

/// How long a check waits for something that takes milliseconds, before it fails.
const LIMIT: Duration = Duration::from_secs(30);

async fn two_nodes(backend: &dyn Backend) -> (Runtime, Runtime) {
    let database = backend.new_database();
    let a = runtime_with(backend, &database, |b| b).await;
    let b = runtime_with(backend, &database, |b| b).await;
    (a, b)
}

/// 100 tasks at once, half on each of two nodes, each add one to a shared counter under the
/// lock (half with `update`, half holding the lock across a sleep): the counter ends at
/// exactly 100, version 100, and every task saw a different count.
pub async fn shared_increments_from_100_tasks_on_two_nodes_lose_no_update(backend: &dyn Backend) {
    let (a, b) = two_nodes(backend).await;
    let launches = (0..100).map(|i| {
        let rt = if i % 2 == 0 { a.clone() } else { b.clone() };
        let hold_ms = (i / 2) % 2;
        async move {
            rt.launch_json(
                "test.increment",
                json!({ "name": "counter", "hold_ms": hold_ms }),
            )
            .await
            .unwrap()
        }
    });
    let tasks = join_all(launches).await;
    let mut counts = Vec::new();
    for record in join_all(tasks.iter().map(|t| t.wait())).await {
        let record = record.unwrap();
        assert_eq!(record.status, Status::Completed, "{:?}", record.error);
        counts.push(record.return_value.and_then(|v| v.as_u64()).unwrap());
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=100).collect::<Vec<u64>>(),
        "each saw the one before"
    );
    let record = b
        .shared("counter")
        .unwrap()
        .record()
        .await
        .unwrap()
        .unwrap();
    assert_eq!((record.value, record.version), (json!(100), 100));
    assert_eq!(record.locked_by, None);
}

/// A task killed (zero grace) while it holds a lock and awaits something forever, never looking
/// at its cancellation, loses the lock with its future: another locker gets it, and the value
/// it had changed but not saved was never written.
pub async fn a_lock_holder_killed_mid_lock_releases_it(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let report = rt.shared("report").unwrap();
    report
        .update(|value: &mut Value| *value = json!({ "rows": 1 }))
        .await
        .unwrap();
    let mut events = rt.events();
    let task = rt
        .launch_json("test.hold_lock", json!("report"))
        .await
        .unwrap();
    wait_for_event(&mut events, LIMIT, |e| {
        e.task_id == task.id()
            && matches!(&e.kind, EventKind::State { state } if state["locked"] == json!(true))
    })
    .await;
    let held = report.record().await.unwrap().unwrap().locked_by.unwrap();
    assert_eq!(held.node, rt.node_id());
    assert!(held.holder.contains(&task.id().to_string()), "{held:?}");

    let killed = task.kill_with_grace(Duration::ZERO).await.unwrap();
    assert_eq!(killed.status, Status::Killed);
    let guard = report
        .lock_timeout(LIMIT)
        .await
        .expect("the killed holder's lock is released");
    assert_eq!(guard.version(), 1);
    assert_eq!(guard.value(), &json!({ "rows": 1 }), "nothing half-written");
    guard.release().await.unwrap();
    let record = report.record().await.unwrap().unwrap();
    assert_eq!((record.version, record.locked_by), (1, None));
}

/// A lock held on a node that died is freed by the recovery that marks the node's tasks
/// missing; a locker waiting for it then gets it, and the dead holder's token writes nothing.
pub async fn a_dead_node_s_shared_lock_is_freed_by_recovery(backend: &dyn Backend) {
    let database = backend.new_database();
    // No heartbeat (and so no recovery) during the check but the one it runs itself.
    let quiet =
        |b: crate::RuntimeBuilder| b.heartbeat(Duration::from_secs(60), Duration::from_secs(120));
    let rt = runtime_with(backend, &database, quiet).await;
    let store = rt.store();
    let (dead, long_ago) = dead_node(&**store).await;
    let token = uuid::Uuid::now_v7();
    let created = store
        .shared_lock("jobs", token, dead.id, "task on a dead node", long_ago)
        .await
        .unwrap()
        .expect("nobody held it");
    assert_eq!((created.version, created.value.clone()), (0, Value::Null));
    assert_eq!(created.locked_by.as_ref().map(|l| l.node), Some(dead.id));
    let taken = store
        .shared_lock("jobs", uuid::Uuid::now_v7(), rt.node_id(), "me", rt.now())
        .await
        .unwrap();
    assert_eq!(taken, None, "held by the dead node");

    let jobs = rt.shared("jobs").unwrap();
    let waiting = tokio::spawn(async move { jobs.lock_timeout(LIMIT).await });
    let missing = store
        .recover(rt.node_id(), rt.now(), Duration::from_secs(10), None)
        .await
        .unwrap();
    assert!(missing.is_empty(), "the dead node ran no task: {missing:?}");
    let mut guard = waiting.await.unwrap().expect("recovery freed the lock");
    guard.set(&json!(["first"])).unwrap();
    let saved = guard.save().await.unwrap();
    assert_eq!((saved.version, saved.locked_by), (1, None));
    let late = store
        .shared_unlock("jobs", token, Some("\"late\"".into()), rt.now())
        .await
        .unwrap();
    assert_eq!(late, None, "the dead holder's token holds nothing");
    let record = rt.shared("jobs").unwrap().record().await.unwrap().unwrap();
    assert_eq!((record.value, record.version), (json!(["first"]), 1));
}

/// A saved value is what a snapshot on another node reads, and every change, made on either
/// node, reaches watchers on both. Names and sizes are checked.
pub async fn shared_snapshots_and_changes_reach_every_node(backend: &dyn Backend) {
    let (a, b) = two_nodes(backend).await;
    let on_a = a.shared("progress").unwrap();
    let on_b = b.shared("progress").unwrap();
    assert_eq!(on_b.read::<Value>().await.unwrap(), None, "absent");
    let mut watch_a = on_a.watch().await.unwrap();
    let mut watch_b = on_b.watch().await.unwrap();
    assert_eq!(watch_b.current(), None);

    let mut guard = on_a.lock().await.unwrap();
    assert_eq!((guard.version(), guard.value()), (0, &Value::Null));
    guard.set(&json!({ "done": 3, "total": 10 })).unwrap();
    let saved = guard.save().await.unwrap();
    assert_eq!((saved.version, saved.locked_by), (1, None));
    assert_eq!(
        on_b.read::<Value>().await.unwrap(),
        Some(json!({ "done": 3, "total": 10 }))
    );
    for watch in [&mut watch_b, &mut watch_a] {
        let change = tokio::time::timeout(LIMIT, watch.changed())
            .await
            .expect("the change arrives")
            .unwrap();
        assert_eq!(change.name, "progress");
        assert_eq!(
            (change.version, &*change.value),
            (1, &json!({ "done": 3, "total": 10 }))
        );
    }

    let done = on_b
        .update(|p: &mut Value| p["done"] = json!(4))
        .await
        .unwrap();
    assert_eq!(done["done"], 4);
    let change = tokio::time::timeout(LIMIT, watch_a.changed())
        .await
        .expect("a change made on the other node arrives")
        .unwrap();
    assert_eq!((change.version, &change.value["done"]), (2, &json!(4)));
    let watch = on_a.watch().await.unwrap();
    assert_eq!(watch.current().map(|r| r.version), Some(2));

    for name in ["", "bad\nname"] {
        assert_eq!(
            a.shared(name).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    let long = a.shared(&"x".repeat(201)).unwrap_err();
    assert!(long.message().contains("200"), "{long}");
    let mut guard = on_a.lock().await.unwrap();
    let big = guard.set(&"x".repeat(2 << 20)).unwrap_err();
    assert_eq!(big.kind(), ErrorKind::StateTooLarge, "{big}");
    assert_eq!(guard.value()["done"], 4, "a refused value changes nothing");
    guard.release().await.unwrap();
    assert_eq!(on_b.record().await.unwrap().unwrap().version, 2);
}

/// A holder whose lock was taken away (its node was declared dead, and recovery freed it)
/// fails to save with `LockLost`, and writes nothing.
pub async fn saving_after_the_lock_was_taken_away_fails_with_lock_lost(backend: &dyn Backend) {
    let (a, b) = two_nodes(backend).await;
    let on_a = a.shared("ledger").unwrap();
    on_a.update(|n: &mut u64| *n = 1).await.unwrap();
    let mut guard = on_a.lock().await.unwrap();
    guard.set(&99u64).unwrap();

    // Node b finds node a silent for longer than the node timeout (an hour from now).
    b.store()
        .recover(
            b.node_id(),
            b.now() + chrono::Duration::hours(1),
            Duration::from_secs(10),
            None,
        )
        .await
        .unwrap();
    let error = guard.save().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LockLost, "{error}");
    assert!(error.message().contains("nothing was written"), "{error}");

    let on_b = b.shared("ledger").unwrap();
    let record = on_b.record().await.unwrap().unwrap();
    assert_eq!((record.value, record.version), (json!(1), 1));
    assert_eq!(on_b.update(|n: &mut u64| *n += 1).await.unwrap(), 2);
}

/// A locker that waits longer than its timeout gives up with `Conflict`, naming the holder;
/// once the holder releases, the next locker gets it. (Runs with the clock paused.)
pub async fn a_lock_wait_gives_up_after_its_timeout(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let slot = rt.shared("slot").unwrap();
    let held = slot
        .clone()
        .holder("the first locker")
        .lock()
        .await
        .unwrap();
    let waiting = slot.lock_timeout(Duration::from_secs(5));
    tokio::pin!(waiting);
    assert!(futures::poll!(&mut waiting).is_pending());
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(futures::poll!(&mut waiting).is_pending(), "still waiting");
    tokio::time::advance(Duration::from_secs(2)).await;
    let error = waiting.await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert!(error.message().contains("the first locker"), "{error}");
    held.release().await.unwrap();
    let next = slot.lock_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(next.version(), 0);
    next.release().await.unwrap();
}
