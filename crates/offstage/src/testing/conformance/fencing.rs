//! Fencing: a task has one owner at a time, and a node that lost its tasks (another node
//! declared it dead) can no longer change them, claim, or start anything under its old id.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::durability::running_record;
use super::tasks::runtime_with;
use super::Backend;
use crate::store::{Finish, NodeInfo, Pending, Store};
use crate::testing::wait_started;
use crate::{ErrorKind, LogLevel, LogLine, NodeId, Status};

/// A node registered an hour ago and silent since, on this host: recovery on any other handle
/// takes it for dead.
async fn silent_node(store: &dyn Store) -> NodeInfo {
    let long_ago = Utc::now() - chrono::Duration::hours(1);
    let node = NodeInfo {
        id: NodeId::new(),
        host: crate::runtime::host_name(),
        pid: std::process::id(),
        started_at: long_ago,
    };
    store.register_node(&node).await.unwrap();
    node
}

fn line(seq: u64, message: &str) -> LogLine {
    LogLine {
        seq,
        at: Utc::now(),
        level: LogLevel::Info,
        message: message.to_owned(),
    }
}

fn pending(state: serde_json::Value, lines: &[LogLine]) -> Pending {
    Pending {
        state: Some(state.to_string()),
        logs: lines.to_vec(),
    }
}

/// Once another node has declared a node dead, the store refuses everything that node does
/// about tasks: its saves (state and log lines), its finish, its heartbeat, its claims and its
/// direct starts. What recovery recorded stays exactly as it was.
pub async fn a_node_declared_dead_can_no_longer_change_its_tasks(backend: &dyn Backend) {
    let database = backend.new_database();
    let zombie_store = backend.open(&database).await;
    let other_store = backend.open(&database).await;
    let zombie = silent_node(&*zombie_store).await;

    // While it is registered, its writes apply.
    let task = running_record(zombie.id, zombie.started_at);
    zombie_store.launch(&task).await.unwrap();
    zombie_store
        .save(
            zombie.id,
            vec![(task.id, pending(json!({"n": 1}), &[line(1, "one")]))],
        )
        .await
        .unwrap();
    let saved = zombie_store.get(task.id).await.unwrap().unwrap();
    assert_eq!(saved.state, json!({"n": 1}));

    // Another node declares it dead.
    let other = NodeId::new();
    let recovered = other_store
        .recover(other, Utc::now(), Duration::from_secs(10), None)
        .await
        .unwrap();
    assert_eq!(
        recovered.iter().map(|t| t.id).collect::<Vec<_>>(),
        [task.id]
    );
    let missing = other_store.get(task.id).await.unwrap().unwrap();
    assert_eq!(missing.status, Status::Missing);

    // Its late state and log lines are dropped.
    zombie_store
        .save(
            zombie.id,
            vec![(task.id, pending(json!({"n": 2}), &[line(2, "two")]))],
        )
        .await
        .unwrap();
    // Its late finish does not apply, and brings no log lines either.
    let finish = Finish {
        status: Status::Completed,
        state: json!({"n": 3}).to_string(),
        return_value: Some(json!("late")),
        error: None,
        finished_at: Utc::now(),
        logs: vec![line(3, "three")],
        retry_at: None,
    };
    assert!(!zombie_store
        .finish(task.id, zombie.id, finish)
        .await
        .unwrap());
    assert_eq!(other_store.get(task.id).await.unwrap().unwrap(), missing);
    let lines: Vec<_> = other_store
        .logs(task.id, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(lines, ["one"]);

    // Its heartbeat says it is dead.
    let beat = zombie_store.heartbeat(zombie.id, Utc::now()).await;
    assert_eq!(beat.unwrap_err().kind(), ErrorKind::NodeDead);

    // It claims nothing, limited or not, and the queued task stays queued for others.
    let mut queued = crate::testing::sample_record(crate::TaskId::new());
    queued.name = "test.sleep".to_owned();
    queued.status = Status::Queued;
    queued.finished_at = None;
    queued.return_value = None;
    queued.started_at = None;
    queued.node = None;
    queued.run_at = Utc::now() - chrono::Duration::seconds(1);
    zombie_store.launch(&queued).await.unwrap();
    let names = ["test.sleep".to_owned()];
    let claim = zombie_store.claim(zombie.id, &names, Utc::now(), 10).await;
    assert_eq!(claim.unwrap_err().kind(), ErrorKind::NodeDead);
    let claim = zombie_store
        .claim_limited(zombie.id, "test.sleep", Utc::now(), 10, 5)
        .await;
    assert_eq!(claim.unwrap_err().kind(), ErrorKind::NodeDead);
    let still = other_store.get(queued.id).await.unwrap().unwrap();
    assert_eq!(still.status, Status::Queued);

    // It starts nothing directly, with or without a key; nothing is inserted.
    let direct = running_record(zombie.id, Utc::now());
    let refused = zombie_store.launch(&direct).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NodeDead);
    let mut keyed = running_record(zombie.id, Utc::now());
    keyed.key = Some("k".to_owned());
    let refused = zombie_store.launch_unique(&keyed).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NodeDead);
    assert!(other_store.get(direct.id).await.unwrap().is_none());
    assert!(other_store.get(keyed.id).await.unwrap().is_none());
}

/// A task `running` on a node that is not registered (its row was removed without its tasks
/// being marked) is swept by recovery within the node timeout, not only when a node starts.
pub async fn orphaned_tasks_are_swept_within_the_node_timeout(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let me = NodeId::new();
    let timeout = Duration::from_secs(10);
    let start = Utc::now();
    let orphan = || async {
        let node = silent_node(&*store).await;
        let task = running_record(node.id, node.started_at);
        store.launch(&task).await.unwrap();
        // Gone without a trace: its row removed, its task left `running`.
        store.deregister_node(node.id).await.unwrap();
        task
    };
    let first = orphan().await;
    let swept = store.recover(me, start, timeout, None).await.unwrap();
    assert_eq!(swept.iter().map(|t| t.id).collect::<Vec<_>>(), [first.id]);

    let second = orphan().await;
    let at = |s: i64| start + chrono::Duration::seconds(s);
    // Not on every pass (that would read every running task each heartbeat)...
    assert!(store
        .recover(me, at(1), timeout, None)
        .await
        .unwrap()
        .is_empty());
    // ...but once half the node timeout has passed.
    let swept = store.recover(me, at(5), timeout, None).await.unwrap();
    assert_eq!(swept.iter().map(|t| t.id).collect::<Vec<_>>(), [second.id]);
    let record = store.get(second.id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Missing);
}

/// A runtime that another node declared dead finds out at its next heartbeat: it stops the
/// task it was running without recording anything (the record keeps what recovery wrote), a
/// launch meanwhile is queued rather than started under the dead id, and the node rejoins
/// under a new id and runs new work.
pub async fn a_node_declared_dead_stops_its_tasks_and_rejoins(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        b.heartbeat(Duration::from_secs(1), Duration::from_secs(10))
            .kill_grace(Duration::from_millis(500))
    })
    .await;
    let old = rt.node_id();
    let mut events = rt.events();
    // Writes its state every 100 ms and never looks at its cancellation.
    let stubborn = rt.launch_json("test.stubborn", json!(null)).await.unwrap();
    wait_started(&mut events, stubborn.id()).await;
    for _ in 0..7 {
        tokio::time::advance(Duration::from_millis(50)).await;
    }

    // Another node, an hour on, finds this one silent and declares it dead.
    let other = backend.open(&database).await;
    let recovered = other
        .recover(
            NodeId::new(),
            rt.now() + chrono::Duration::hours(1),
            Duration::from_secs(10),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        recovered.iter().map(|t| t.id).collect::<Vec<_>>(),
        [stubborn.id()]
    );
    let missing = other.get(stubborn.id()).await.unwrap().unwrap();
    assert_eq!(missing.status, Status::Missing);
    let lines = other.logs(stubborn.id(), 0, 100).await.unwrap();

    // A launch before the node has heard: not started under the dead id, but queued, and it
    // runs once the node has rejoined.
    let echo = rt.launch_json("test.echo", json!("hi")).await.unwrap();
    let ended = echo.wait().await.unwrap();
    assert_eq!(ended.status, Status::Completed);
    let new = rt.node_id();
    assert_ne!(new, old, "the node rejoined under a new id");
    assert_eq!(ended.node, Some(new));

    // The lost task is stopped once its grace is over, and nothing it did since was recorded.
    for _ in 0..12 {
        tokio::time::advance(Duration::from_millis(50)).await;
    }
    let seen = stubborn.wait().await.unwrap();
    assert_eq!(seen.status, Status::Missing);
    for _ in 0..20 {
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    assert_eq!(other.get(stubborn.id()).await.unwrap().unwrap(), missing);
    assert_eq!(other.logs(stubborn.id(), 0, 100).await.unwrap(), lines);
    // The node heartbeats under its new id: a recovery now leaves it alone.
    let again = other
        .recover(NodeId::new(), rt.now(), Duration::from_secs(10), None)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    let next = rt.launch_json("test.echo", json!(2)).await.unwrap();
    assert_eq!(next.wait().await.unwrap().node, Some(new));
    rt.shutdown().await.unwrap();
}
