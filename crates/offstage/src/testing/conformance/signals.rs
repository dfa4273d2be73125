//! Signals: kept until received, received oldest first and once per attempt, fenced to the
//! task's node; a waiting task holds no slot and survives its node's death; timeouts, kills
//! and wake-ups across nodes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use super::durability::{dead_node, running_record};
use super::tasks::runtime_with;
use super::Backend;
use crate::store::{Finish, NodeInfo, Purge};
use crate::testing::{wait_for_event, wait_started};
use crate::{
    Context, ErrorKind, EventKind, NodeId, RuntimeBuilder, SignalSent, Status, TaskError,
    TaskTypeOptions, WaitingCode,
};

/// A node registered now, as a runtime would be.
async fn live_node(store: &dyn crate::store::Store) -> NodeId {
    let node = NodeInfo {
        id: NodeId::new(),
        host: crate::runtime::host_name(),
        pid: std::process::id(),
        started_at: Utc::now(),
    };
    store.register_node(&node).await.unwrap();
    node.id
}

fn sent(outcome: SignalSent) -> crate::SignalRecord {
    match outcome {
        SignalSent::Sent(signal) => signal,
        SignalSent::Ended(task) => panic!("the task had ended: {task:?}"),
    }
}

/// The store's side: a signal is kept for a queued or running task until it is received;
/// signals of a name are received oldest first, each once per attempt, and again by a later
/// attempt while unsettled; receiving is fenced to the task's node; a task that ended gets
/// none; a purge deletes a task's signals with it.
pub async fn signals_are_kept_and_received_oldest_first_once_per_attempt(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let node = live_node(&*store).await;
    let now = Utc::now();
    let mut task = running_record(node, now);
    task.attempt = 1;
    store.launch(&task).await.unwrap();

    let unknown = store
        .signal_send(crate::TaskId::new(), "approve", "1".into(), None, now)
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);

    let first = sent(
        store
            .signal_send(
                task.id,
                "approve",
                r#"{"n":1}"#.into(),
                Some("ann".into()),
                now,
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        (first.task_id, first.name.as_str(), &first.payload),
        (task.id, "approve", &json!({"n": 1}))
    );
    assert_eq!(first.sent_by.as_deref(), Some("ann"));
    assert_eq!((first.received_attempt, first.settled), (None, false));
    let second = sent(
        store
            .signal_send(task.id, "approve", r#"{"n":2}"#.into(), None, now)
            .await
            .unwrap(),
    );
    sent(
        store
            .signal_send(task.id, "other", "3".into(), None, now)
            .await
            .unwrap(),
    );
    assert!(second.seq > first.seq);

    // Fenced: another node receives nothing, and nothing is marked received.
    let stranger = NodeId::new();
    assert_eq!(
        store
            .signal_receive(task.id, stranger, 1, "approve", now)
            .await
            .unwrap(),
        None
    );
    // Oldest first, once per attempt.
    let got = store
        .signal_receive(task.id, node, 1, "approve", now)
        .await
        .unwrap()
        .expect("the first signal");
    assert_eq!((got.seq, got.received_attempt), (first.seq, Some(1)));
    assert!(got.received_at.is_some());
    let got = store
        .signal_receive(task.id, node, 1, "approve", now)
        .await
        .unwrap()
        .expect("the second signal");
    assert_eq!(got.seq, second.seq);
    assert_eq!(
        store
            .signal_receive(task.id, node, 1, "approve", now)
            .await
            .unwrap(),
        None
    );
    // A later attempt receives again what earlier ones did not settle, oldest first.
    let again = store
        .signal_receive(task.id, node, 2, "approve", now)
        .await
        .unwrap()
        .expect("received again by attempt 2");
    assert_eq!((again.seq, again.received_attempt), (first.seq, Some(2)));

    let listed = store.signals(task.id, 10).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.name.as_str(), s.received_attempt))
            .collect::<Vec<_>>(),
        [("approve", Some(2)), ("approve", Some(1)), ("other", None)]
    );

    // Waiting shows in the record, and ends.
    let until = now + chrono::Duration::hours(1);
    store
        .signal_wait(task.id, node, "approve", Some(until))
        .await
        .unwrap();
    let waiting = store.get(task.id).await.unwrap().unwrap();
    assert_eq!(waiting.waiting_for.as_deref(), Some("approve"));
    assert_eq!(
        waiting.waiting_until.map(|u| u.timestamp_micros()),
        Some(until.timestamp_micros())
    );
    // Fenced too.
    assert!(store
        .signal_resume(task.id, stranger, &task.name, None)
        .await
        .unwrap());
    assert!(store
        .get(task.id)
        .await
        .unwrap()
        .unwrap()
        .waiting_for
        .is_some());

    // A finish ends the wait; a task that ended gets no signal.
    let finish = Finish {
        status: Status::Completed,
        state: "{}".into(),
        return_value: Some(json!(null)),
        error: None,
        finished_at: now,
        logs: Vec::new(),
        retry_at: None,
    };
    assert!(store.finish(task.id, node, finish).await.unwrap());
    let ended = store.get(task.id).await.unwrap().unwrap();
    assert_eq!((ended.waiting_for, ended.waiting_until), (None, None));
    match store
        .signal_send(task.id, "approve", "4".into(), None, now)
        .await
        .unwrap()
    {
        SignalSent::Ended(record) => assert_eq!(record.status, Status::Completed),
        SignalSent::Sent(signal) => panic!("kept for an ended task: {signal:?}"),
    }
    assert_eq!(store.signals(task.id, 10).await.unwrap().len(), 3);

    // A purge deletes the task's signals with it.
    let purge = Purge {
        finished_before: Some(now + chrono::Duration::seconds(1)),
        ..Purge::default()
    };
    assert_eq!(store.purge(&purge, 100).await.unwrap(), 1);
    assert!(store.signals(task.id, 10).await.unwrap().is_empty());
}

/// The store's side of the slot a waiting task gives back: limited claims do not count tasks
/// waiting for a signal, and a wait ends only while the limit admits one more.
pub async fn limited_claims_do_not_count_tasks_waiting_for_a_signal(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let node = live_node(&*store).await;
    let now = Utc::now();
    let running = |name: &str| {
        let mut record = running_record(node, now);
        record.name = name.to_owned();
        record
    };
    let (a, b) = (running("test.limited"), running("test.limited"));
    for record in [&a, &b] {
        store.launch(record).await.unwrap();
    }
    let mut queued = crate::testing::sample_record(crate::TaskId::new());
    queued.name = "test.limited".to_owned();
    queued.status = Status::Queued;
    queued.finished_at = None;
    queued.return_value = None;
    queued.run_at = now - chrono::Duration::seconds(1);
    store.launch(&queued).await.unwrap();

    let claim = || store.claim_limited(node, "test.limited", now, 10, 2);
    assert!(claim().await.unwrap().is_empty(), "two run: the limit");
    store
        .signal_wait(a.id, node, "approve", None)
        .await
        .unwrap();
    let holders = store.limit_holders("test.limited", 10).await.unwrap();
    assert_eq!(holders, [b.id]);
    let claimed = claim().await.unwrap();
    assert_eq!(
        claimed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [queued.id],
        "a waiting task holds no place"
    );

    // Two hold the limit again: the waiting one cannot go on until one of them ends.
    assert!(!store
        .signal_resume(a.id, node, "test.limited", Some(2))
        .await
        .unwrap());
    assert!(store
        .get(a.id)
        .await
        .unwrap()
        .unwrap()
        .waiting_for
        .is_some());
    let finish = Finish {
        status: Status::Completed,
        state: "{}".into(),
        return_value: None,
        error: None,
        finished_at: now,
        logs: Vec::new(),
        retry_at: None,
    };
    assert!(store.finish(b.id, node, finish).await.unwrap());
    assert!(store
        .signal_resume(a.id, node, "test.limited", Some(2))
        .await
        .unwrap());
    assert_eq!(store.get(a.id).await.unwrap().unwrap().waiting_for, None);
    let mut holders = store.limit_holders("test.limited", 10).await.unwrap();
    holders.sort();
    let mut expected = vec![a.id, queued.id];
    expected.sort();
    assert_eq!(holders, expected);
}

/// Task type `test.approval`: waits for signal `approve` (with the timeout its args give, in
/// seconds, if any) and returns the payload; ends `refused` if the payload says so.
fn with_approval(builder: RuntimeBuilder, options: TaskTypeOptions) -> RuntimeBuilder {
    builder.task_with(
        "test.approval",
        options,
        |ctx: Context, timeout_s: Option<u64>| async move {
            let timeout = timeout_s.map(Duration::from_secs);
            match ctx.wait_signal::<Value>("approve", timeout).await {
                Ok(payload) if payload["approved"] == json!(false) => {
                    Err(TaskError::new("refused", "not approved"))
                }
                Ok(payload) => Ok(payload),
                Err(e) if e.kind() == ErrorKind::SignalTimeout => Ok(json!("timed out")),
                Err(e) => Err(TaskError::new("wait", e.to_string())),
            }
        },
    )
}

/// A type limited to 2 can have 50 tasks waiting for a signal at once: while they wait they
/// hold no slot (another task of the type runs meanwhile), the API shows what they wait for,
/// and once signalled they go on, never more than 2 at a time.
pub async fn a_type_limited_to_2_has_50_tasks_waiting_for_a_signal(backend: &dyn Backend) {
    let database = backend.new_database();
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (a, m) = (Arc::clone(&active), Arc::clone(&most));
    let rt = runtime_with(backend, &database, move |builder| {
        builder.task_with(
            "test.gated",
            TaskTypeOptions::default().concurrency_limit(2),
            move |ctx: Context, wait: bool| {
                let (active, most) = (Arc::clone(&a), Arc::clone(&m));
                async move {
                    if wait {
                        ctx.wait_signal::<Value>("approve", None).await?;
                    }
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    for _ in 0..10 {
                        tokio::task::yield_now().await;
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, TaskError>(())
                }
            },
        )
    })
    .await;
    let mut events = rt.events();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        tasks.push(rt.launch_json("test.gated", json!(true)).await.unwrap());
    }
    let mut waiting = 0;
    while waiting < 50 {
        wait_for_event(&mut events, Duration::from_secs(60), |e| {
            matches!(&e.kind, EventKind::Log { line } if line.message == "waiting for signal \"approve\"")
        })
        .await;
        waiting += 1;
    }
    let record = rt.record(tasks[7].id()).await.unwrap();
    assert_eq!(record.status, Status::Running);
    assert_eq!(record.waiting_for.as_deref(), Some("approve"));
    let stored = rt.store().get(tasks[7].id()).await.unwrap().unwrap();
    assert_eq!(stored.waiting_for.as_deref(), Some("approve"));
    let reason = rt.waiting(&record).await.unwrap().expect("a reason");
    assert_eq!(reason.code, WaitingCode::Signal);
    assert_eq!(reason.signal.as_deref(), Some("approve"));
    assert!(
        reason.message.contains("waiting for \"approve\""),
        "{}",
        reason.message
    );

    // The type's places are free: a task that does not wait runs now.
    let free = rt.launch_json("test.gated", json!(false)).await.unwrap();
    assert_eq!(free.wait().await.unwrap().status, Status::Completed);

    for task in &tasks {
        task.signal("approve", &json!({"approved": true}))
            .await
            .unwrap();
    }
    for task in &tasks {
        let done = task.wait().await.unwrap();
        assert_eq!(done.status, Status::Completed, "{done:?}");
        assert_eq!(done.waiting_for, None);
    }
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "{} at once",
        most.load(Ordering::SeqCst)
    );
    let logs = rt.logs(tasks[0].id(), 0, 10).await.unwrap();
    let lines: Vec<_> = logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        lines,
        [
            "waiting for signal \"approve\"",
            "received signal \"approve\""
        ]
    );
}

/// A signal sent before the task waits is kept and received at once (the task never shows
/// waiting); a wait that times out is an error the task handles; a bad payload is an error
/// too, and a signal to a finished task is refused, saying so.
pub async fn a_signal_sent_early_is_received_at_once_and_a_timeout_is_an_error(
    backend: &dyn Backend,
) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        with_approval(b, TaskTypeOptions::default())
    })
    .await;
    let mut events = rt.events();

    // Early: sent while the task is queued (due in a minute).
    let early = rt
        .launch_json("test.approval", json!(null))
        .delay(Duration::from_secs(60))
        .await
        .unwrap();
    let signal = early
        .signal("approve", &json!({"by": "ann"}))
        .await
        .unwrap();
    assert_eq!(signal.received_attempt, None);
    tokio::time::advance(Duration::from_secs(61)).await;
    let done = early.wait().await.unwrap();
    assert_eq!(done.return_value, Some(json!({"by": "ann"})));
    let lines: Vec<String> = rt
        .logs(early.id(), 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(lines, ["received signal \"approve\""]);
    let listed = rt.signals(early.id()).await.unwrap();
    assert_eq!(listed[0].received_attempt, Some(1));

    // Timeout: the task goes on and handles it.
    let late = rt.launch_json("test.approval", json!(30)).await.unwrap();
    wait_for_event(&mut events, Duration::from_secs(30), |e| {
        e.task_id == late.id()
            && matches!(&e.kind, EventKind::Log { line } if line.message.starts_with("waiting for signal"))
    })
    .await;
    let record = rt.record(late.id()).await.unwrap();
    let until = record
        .waiting_until
        .expect("a wait with a timeout has an end");
    assert!(until > rt.now() + chrono::Duration::seconds(25), "{until}");
    tokio::time::advance(Duration::from_secs(31)).await;
    let done = late.wait().await.unwrap();
    assert_eq!(
        (done.status, done.return_value),
        (Status::Completed, Some(json!("timed out")))
    );

    // Refused: the task has ended.
    let refused = rt
        .signal(late.id(), "approve", &json!(true))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert!(
        refused.message().contains("already ended (completed)"),
        "{refused}"
    );
    // Bad names and an unknown task.
    for bad in ["", "a\nb"] {
        let error = rt.signal(early.id(), bad, &json!(1)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{bad:?}");
    }
    let unknown = rt
        .signal(crate::TaskId::new(), "approve", &json!(1))
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);
}

/// Killing a task that waits for a signal ends its wait with a cancellation error and the task
/// `killed`, no longer waiting; a signal sent on another node wakes a task waiting on this
/// one.
pub async fn a_waiting_task_is_killed_or_woken_from_another_node(backend: &dyn Backend) {
    let database = backend.new_database();
    let here = runtime_with(backend, &database, |b| {
        with_approval(b, TaskTypeOptions::default())
    })
    .await;
    let there = runtime_with(backend, &database, |b| b).await;
    let mut events = here.events();

    let killed = here
        .launch_json("test.approval", json!(null))
        .await
        .unwrap();
    wait_started(&mut events, killed.id()).await;
    wait_for_event(&mut events, Duration::from_secs(30), |e| {
        e.task_id == killed.id() && matches!(&e.kind, EventKind::Log { line } if line.message.starts_with("waiting for signal"))
    })
    .await;
    let record = here.kill(killed.id()).await.unwrap();
    assert_eq!(record.status, Status::Killed);
    let stored = here.store().get(killed.id()).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.waiting_for), (Status::Killed, None));

    let woken = here
        .launch_json("test.approval", json!(null))
        .await
        .unwrap();
    wait_for_event(&mut events, Duration::from_secs(30), |e| {
        e.task_id == woken.id() && matches!(&e.kind, EventKind::Log { line } if line.message.starts_with("waiting for signal"))
    })
    .await;
    there
        .signal(woken.id(), "approve", &json!({"by": "bob"}))
        .await
        .unwrap();
    let done = woken.wait().await.unwrap();
    assert_eq!(done.return_value, Some(json!({"by": "bob"})));
}

/// A node that dies while its task waits leaves the task `missing`; with a retry policy it
/// runs again, reaches the same wait, and receives the signal: the one its first attempt
/// received without getting past it, and one sent while nobody ran it.
pub async fn a_task_whose_node_died_while_waiting_receives_the_signal_when_it_runs_again(
    backend: &dyn Backend,
) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let (dead, long_ago) = dead_node(&*store).await;
    let orphan = |()| {
        let mut record = running_record(dead.id, long_ago);
        record.name = "test.approval".to_owned();
        record.args = json!(null);
        record.attempt = 1;
        record.waiting_for = Some("approve".to_owned());
        record
    };
    let (received, unsent) = (orphan(()), orphan(()));
    for record in [&received, &unsent] {
        store.launch(record).await.unwrap();
        store
            .signal_wait(record.id, dead.id, "approve", None)
            .await
            .unwrap();
    }
    // The first attempt received this one and died before it got past it.
    sent(
        store
            .signal_send(
                received.id,
                "approve",
                r#"{"n":1}"#.into(),
                None,
                Utc::now(),
            )
            .await
            .unwrap(),
    );
    assert!(store
        .signal_receive(received.id, dead.id, 1, "approve", Utc::now())
        .await
        .unwrap()
        .is_some());
    // This one is sent while the task's node is dead.
    sent(
        store
            .signal_send(unsent.id, "approve", r#"{"n":2}"#.into(), None, Utc::now())
            .await
            .unwrap(),
    );

    let rt = runtime_with(backend, &database, |b| {
        let retry =
            crate::Retry::new(2).backoff(Duration::from_millis(1), Duration::from_millis(1));
        with_approval(b, TaskTypeOptions::default().retry(retry))
    })
    .await;
    for (task, n) in [(&received, 1), (&unsent, 2)] {
        let done = rt.get(task.id).await.unwrap().wait().await.unwrap();
        assert_eq!(
            (done.status, done.attempt, done.return_value),
            (Status::Completed, 2, Some(json!({ "n": n })))
        );
        let signals = rt.signals(task.id).await.unwrap();
        assert_eq!(signals[0].received_attempt, Some(2));
    }
}

/// A spawned task (`Runtime::spawn`, which holds none of the node's slots) waits for a signal
/// and goes on holding none: on a node with one slot, a launch still runs after it received.
pub async fn a_spawned_task_waits_for_a_signal_and_takes_no_slot_after(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.max_concurrency(1)).await;
    let mut events = rt.events();
    let spawned = rt
        .spawn("approver", |ctx: Context| async move {
            let go: Value = ctx.wait_signal("go", None).await?;
            ctx.set_state(&go)?;
            ctx.cancelled().await;
            Ok::<_, TaskError>(())
        })
        .await
        .unwrap();
    spawned.signal("go", &json!({"n": 1})).await.unwrap();
    wait_for_event(&mut events, Duration::from_secs(30), |e| {
        e.task_id == spawned.id() && matches!(&e.kind, EventKind::State { .. })
    })
    .await;
    let noop = rt.launch_json("test.noop", json!(null)).await.unwrap();
    assert_eq!(noop.wait().await.unwrap().status, Status::Completed);
    assert_eq!(
        rt.cancel_task("approver").await.unwrap().unwrap().status,
        Status::Killed
    );
}
