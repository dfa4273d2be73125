//! The fleet: paused task types (in the claims, across handles and restarts), the nodes'
//! reports, and the waiting reasons the runtime computes from them.

use std::time::Duration;

use serde_json::{json, Value};

use super::tasks::{runtime_with, start_blocker};
use super::Backend;
use crate::fleet::{IsolatedProcess, NodeReport, WorkerReport};
use crate::id::{NodeId, TaskId};
use crate::status::Status;
use crate::store::{KillOutcome, NodeInfo, Store};
use crate::task::TaskRecord;
use crate::waiting::WaitingCode;
use crate::ErrorKind;

/// A queued record of task type `name`, due at `now`.
fn queued(name: &str, now: chrono::DateTime<chrono::Utc>) -> TaskRecord {
    TaskRecord {
        name: name.to_owned(),
        status: Status::Queued,
        started_at: None,
        finished_at: None,
        return_value: None,
        attempt: 0,
        launched_at: now,
        run_at: now,
        ..crate::testing::sample_record(TaskId::new())
    }
}

async fn register(store: &dyn Store, now: chrono::DateTime<chrono::Utc>) -> NodeId {
    let node = NodeId::new();
    store
        .register_node(&NodeInfo {
            id: node,
            host: "conformance".to_owned(),
            pid: std::process::id(),
            started_at: now,
        })
        .await
        .unwrap();
    node
}

/// A paused type is claimed by neither `claim` nor `claim_limited`, on any handle, also after
/// the store is opened again; launches still go in, and once resumed its tasks are claimed.
pub async fn a_paused_type_is_never_claimed_until_resumed(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let now = chrono::Utc::now();
    let node = register(&*store, now).await;
    let names = ["fleet.paused".to_owned(), "fleet.free".to_owned()];
    let first = queued("fleet.paused", now);
    store.launch(&first).await.unwrap();
    let paused = store.pause_task_type("fleet.paused", now).await.unwrap();
    assert_eq!(paused.name, "fleet.paused");
    // Pausing again keeps the first time.
    let later = now + chrono::Duration::seconds(5);
    assert_eq!(
        store.pause_task_type("fleet.paused", later).await.unwrap(),
        paused
    );
    // Launches are accepted while paused.
    let second = queued("fleet.paused", now);
    store.launch(&second).await.unwrap();
    let free = queued("fleet.free", now);
    store.launch(&free).await.unwrap();

    let claimed = store.claim(node, &names, later, 10).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|t| t.id).collect();
    assert_eq!(ids, [free.id], "only the unpaused type is claimed");
    assert!(store
        .claim_limited(node, "fleet.paused", later, 10, 10)
        .await
        .unwrap()
        .is_empty());

    // Another handle (another process, or the same one after a restart) sees the pause.
    drop(store);
    let store = backend.open(&database).await;
    let node = register(&*store, now).await;
    assert_eq!(
        store.paused_task_types().await.unwrap(),
        std::slice::from_ref(&paused)
    );
    assert!(store
        .claim(node, &names, later, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .claim_limited(node, "fleet.paused", later, 10, 10)
        .await
        .unwrap()
        .is_empty());

    assert!(store.resume_task_type("fleet.paused").await.unwrap());
    assert!(
        !store.resume_task_type("fleet.paused").await.unwrap(),
        "resuming twice finds nothing paused"
    );
    assert!(store.paused_task_types().await.unwrap().is_empty());
    let limited = store
        .claim_limited(node, "fleet.paused", later, 1, 10)
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    let rest = store.claim(node, &names, later, 10).await.unwrap();
    let mut ids: Vec<_> = limited.iter().chain(&rest).map(|t| t.id).collect();
    ids.sort();
    assert_eq!(ids, [first.id, second.id]);
}

/// Through the runtime: a pause on one node holds the type's tasks queued (saying why) while
/// the other types run; a resume on another node runs them; `kill_running` kills the running
/// ones; an unknown type is not found.
pub async fn pausing_a_type_holds_its_tasks_on_every_node_until_resumed(backend: &dyn Backend) {
    let database = backend.new_database();
    let a = runtime_with(backend, &database, |b| b).await;
    let b = runtime_with(backend, &database, |b| b).await;
    let paused = a.pause_task_type("test.echo", false).await.unwrap();
    assert_eq!(paused.task_type.name, "test.echo");
    assert!(paused.killing.is_empty());
    assert_eq!(
        a.paused_task_types().await.unwrap(),
        std::slice::from_ref(&paused.task_type)
    );

    let held = a.launch_json("test.echo", json!("held")).await.unwrap();
    let other = a.launch_json("test.noop", json!(null)).await.unwrap();
    assert_eq!(other.wait().await.unwrap().status, Status::Completed);
    let record = held.record().await.unwrap();
    assert_eq!(record.status, Status::Queued);
    let waiting = a
        .waiting(&record)
        .await
        .unwrap()
        .expect("a queued task waits");
    assert_eq!(waiting.code, WaitingCode::Paused);
    assert!(waiting.message.contains("offstage resume test.echo"));
    assert_eq!(waiting.since, Some(paused.task_type.paused_at));

    b.resume_task_type("test.echo").await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), held.wait())
        .await
        .expect("a resume runs the held task")
        .unwrap();
    assert_eq!(done.return_value, Some(json!("held")));
    assert!(a.paused_task_types().await.unwrap().is_empty());

    // Kill the running ones.
    let mut events = a.events();
    let blocker = start_blocker(&a, &mut events).await;
    let paused = b
        .pause_task_type("test.until_cancelled", true)
        .await
        .unwrap();
    assert_eq!(paused.killing, [blocker.id()]);
    let ended = tokio::time::timeout(Duration::from_secs(10), blocker.wait())
        .await
        .expect("the running task is killed")
        .unwrap();
    assert_eq!(ended.status, Status::Killed);
    b.resume_task_type("test.until_cancelled").await.unwrap();

    for error in [
        a.pause_task_type("fleet.nobody", false).await.unwrap_err(),
        a.resume_task_type("fleet.nobody").await.unwrap_err(),
    ] {
        assert_eq!(error.kind(), ErrorKind::NotFound);
        assert!(error.message().contains("test.echo"), "{}", error.message());
    }
    assert_eq!(
        a.pause_task_type("bad\nname", false)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
}

/// A node's report round-trips through the store, and each runtime reports what it serves.
pub async fn node_reports_round_trip(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let now = chrono::Utc::now();
    let node = register(&*store, now).await;
    let before = store.nodes().await.unwrap();
    let mine = before.iter().find(|n| n.id == node).expect("registered");
    assert_eq!(mine.report, None);
    assert_eq!(mine.host, "conformance");
    let report = NodeReport {
        task_types: vec!["a".to_owned(), "b".to_owned()],
        slots: 8,
        running: 3,
        workers: vec![WorkerReport {
            name: "w1".to_owned(),
            task_types: vec!["c".to_owned()],
            concurrency: 2,
            running: 1,
            connected_at: now,
        }],
        isolated: vec![IsolatedProcess {
            pid: 42,
            task_id: Some(TaskId::new()),
        }],
    };
    store.report_node(node, &report).await.unwrap();
    let after = store.nodes().await.unwrap();
    let mine = after.iter().find(|n| n.id == node).unwrap();
    assert_eq!(mine.report.as_ref(), Some(&report));
    assert!(report.serves("c") && !report.serves("d"));

    let rt = runtime_with(backend, &database, |b| b.max_concurrency(7)).await;
    let nodes = rt.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    let me = nodes.iter().find(|n| n.id == rt.node_id()).unwrap();
    let report = me.report.as_ref().unwrap();
    assert_eq!(report.slots, 7);
    assert!(report.task_types.contains(&"test.echo".to_owned()));
    // The report the runtime wrote when it started is in the store, for the other nodes.
    let stored = store.nodes().await.unwrap();
    let written = stored.iter().find(|n| n.id == rt.node_id()).unwrap();
    assert_eq!(
        written.report.as_ref().map(|r| &r.task_types),
        Some(&report.task_types)
    );
}

/// Each waiting reason of a queued task, and of a running task whose kill is overdue.
pub async fn waiting_reasons_say_why_a_task_waits(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        b.max_concurrency(1).remote_task("fleet.remote").task_with(
            "fleet.limited",
            crate::TaskTypeOptions::default().concurrency_limit(1),
            |ctx: crate::Context, _args: Value| async move {
                ctx.cancelled().await;
                Ok::<_, crate::TaskError>(())
            },
        )
    })
    .await;
    let now = rt.now();
    let reason = |record: TaskRecord| {
        let rt = rt.clone();
        async move { rt.waiting(&record).await.unwrap() }
    };

    // Due, nothing in the way.
    let due = reason(queued("test.echo", now)).await.unwrap();
    assert_eq!(due.code, WaitingCode::Due, "{}", due.message);

    // Later: scheduled, or a retry's backoff.
    let later = now + chrono::Duration::seconds(60);
    let scheduled = reason(TaskRecord {
        run_at: later,
        ..queued("test.echo", now)
    })
    .await
    .unwrap();
    assert_eq!(scheduled.code, WaitingCode::Scheduled);
    assert_eq!(scheduled.run_at, Some(later));
    let backoff = reason(TaskRecord {
        run_at: later,
        attempt: 1,
        error: Some(crate::TaskError::new("flaky", "it broke")),
        ..queued("test.echo", now)
    })
    .await
    .unwrap();
    assert_eq!(backoff.code, WaitingCode::RetryBackoff);
    assert!(backoff.message.contains("flaky"), "{}", backoff.message);

    // Nothing serves it: a type declared for workers, none connected.
    let remote = rt.launch_json("fleet.remote", json!(1)).await.unwrap();
    let nobody = reason(remote.record().await.unwrap()).await.unwrap();
    assert_eq!(nobody.code, WaitingCode::NoWorker);
    assert!(
        nobody.served.iter().any(|line| line.contains("test.echo")),
        "{:?}",
        nobody.served
    );

    // The concurrency limit, held by the running one.
    let mut events = rt.events();
    let holder = rt.launch_json("fleet.limited", json!(null)).await.unwrap();
    crate::testing::wait_started(&mut events, holder.id()).await;
    let limited = reason(queued("fleet.limited", now)).await.unwrap();
    assert_eq!(limited.code, WaitingCode::ConcurrencyLimit);
    assert_eq!(limited.holders, [holder.id()]);
    assert_eq!(limited.limit, Some(1));

    // The only slot is taken (by the holder): every node serving it is busy.
    let busy = reason(queued("test.echo", now)).await.unwrap();
    assert_eq!(busy.code, WaitingCode::SlotsBusy, "{}", busy.message);
    assert!(!busy.served.is_empty());
    holder.kill().await.unwrap();

    // Not waiting: a running task nobody asked to kill, and finished ones.
    let blocker = start_blocker(&rt, &mut events).await;
    assert_eq!(reason(blocker.record().await.unwrap()).await, None);
    let ended = blocker.kill().await.unwrap();
    assert_eq!(reason(ended).await, None);

    // A kill asked of a node that does not act on it, past its grace period: overdue.
    let other = backend.open(&database).await;
    let stuck_node = register(&*other, rt.now()).await;
    let stuck = TaskRecord {
        status: Status::Running,
        started_at: Some(rt.now()),
        node: Some(stuck_node),
        attempt: 1,
        ..queued("test.echo", rt.now())
    };
    other.launch(&stuck).await.unwrap();
    let asked = rt.now() - chrono::Duration::seconds(30);
    let outcome = other
        .kill(stuck.id, Some(Duration::from_secs(1)), asked)
        .await
        .unwrap();
    assert_eq!(outcome, KillOutcome::Requested { node: stuck_node });
    // A second kill keeps the time of the first.
    other
        .kill(stuck.id, Some(Duration::from_secs(1)), rt.now())
        .await
        .unwrap();
    let overdue = reason(stuck.clone()).await.unwrap();
    assert_eq!(
        overdue.code,
        WaitingCode::KillOverdue,
        "{}",
        overdue.message
    );
    assert_eq!(overdue.since, Some(asked));
    other.deregister_node(stuck_node).await.unwrap();
}
