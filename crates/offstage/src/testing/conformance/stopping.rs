//! Kills, timeouts and shutdown: every way a task is stopped ends in one recorded status.

use std::time::Duration;

use serde_json::json;

use super::tasks::{runtime, runtime_with, start_blocker};
use super::Backend;
use crate::testing::{wait_for_event, wait_started};
use crate::{ErrorKind, EventKind, Status};

/// A task that watches `ctx.cancelled()` stops within the grace period, ends `killed`, and
/// keeps the last state it wrote.
pub async fn kill_running_task_that_cooperates(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let mut events = rt.events();
    let task = start_blocker(&rt, &mut events).await;
    let record = task.kill().await.unwrap();
    assert_eq!(record.status, Status::Killed);
    assert_eq!(record.state, json!({ "phase": "stopping" }));
    let error = record.error.unwrap();
    assert_eq!(error.kind, "killed");
    assert!(
        error.message.contains("stopped by itself") && !error.message.contains("killed"),
        "{}",
        error.message
    );
    assert_eq!(
        task.is_completed().await.unwrap_err().kind(),
        ErrorKind::TaskKilled
    );
    assert_eq!(rt.running(), 0);
}

/// A task that never looks at its cancellation runs out the grace period and is aborted at
/// its next await; it still ends `killed` with its last state.
pub async fn kill_task_that_ignores_cancellation_aborts_after_grace(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let mut events = rt.events();
    let task = rt.launch_json("test.stubborn", json!(null)).await.unwrap();
    wait_started(&mut events, task.id()).await;
    let kill = task.kill_with_grace(Duration::from_secs(5));
    tokio::pin!(kill);
    // The first poll sends the kill request; yielding lets the supervisor see it and start
    // the grace period before the clock moves.
    assert!(futures::poll!(&mut kill).is_pending());
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(
        task.status().await.unwrap(),
        Status::Running,
        "still in its grace period"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    let record = kill.await.unwrap();
    assert_eq!(record.status, Status::Killed);
    assert!(record.error.unwrap().message.contains("aborted"));
    let n = record.state["n"].as_u64().unwrap();
    assert!(n >= 1, "the last state is kept: {}", record.state);
    assert_eq!(rt.running(), 0);
}

/// Zero grace aborts at once, without waiting for the task.
pub async fn kill_with_zero_grace_aborts_at_once(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let mut events = rt.events();
    let task = rt.launch_json("test.stubborn", json!(null)).await.unwrap();
    wait_started(&mut events, task.id()).await;
    let record = task.kill_with_grace(Duration::ZERO).await.unwrap();
    assert_eq!(record.status, Status::Killed);
}

/// A kill that arrives after the task finished leaves it `completed`.
pub async fn kill_after_completion_stays_completed(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let task = rt.launch_json("test.echo", json!(7)).await.unwrap();
    task.wait().await.unwrap();
    let record = task.kill().await.unwrap();
    assert_eq!(record.status, Status::Completed);
    assert_eq!(record.return_value, Some(json!(7)));
    // Racing: the kill lands while the body is returning. Either outcome is one recorded
    // status, and the store agrees with what `kill` reported.
    for _ in 0..20 {
        let task = rt.launch_json("test.echo", json!(1)).await.unwrap();
        let record = task.kill().await.unwrap();
        assert!(
            matches!(record.status, Status::Completed | Status::Killed),
            "{record:?}"
        );
        assert_eq!(
            rt.store().get(task.id()).await.unwrap().unwrap().status,
            record.status
        );
    }
}

/// A queued task that is killed ends `killed` and never starts.
pub async fn kill_queued_task_never_runs(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.max_concurrency(1)).await;
    let mut events = rt.events();
    let blocker = start_blocker(&rt, &mut events).await;
    let queued = rt.launch_json("test.echo", json!("never")).await.unwrap();
    assert_eq!(queued.status().await.unwrap(), Status::Queued);
    let record = queued.kill().await.unwrap();
    assert_eq!(record.status, Status::Killed);
    assert_eq!(record.started_at, None);
    blocker.kill().await.unwrap();
    let after = rt.launch_json("test.echo", json!("after")).await.unwrap();
    after.wait().await.unwrap();
    assert_eq!(queued.record().await.unwrap().attempt, 0, "it never ran");
}

/// A task past its timeout ends `failed` with error kind `timeout`.
pub async fn timeout_fails_with_kind_timeout(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let mut events = rt.events();
    let task = rt
        .launch_json("test.until_cancelled", json!(null))
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    wait_started(&mut events, task.id()).await;
    assert_eq!(
        task.record().await.unwrap().timeout,
        Some(Duration::from_secs(30))
    );
    tokio::time::advance(Duration::from_secs(31)).await;
    let record = task.wait().await.unwrap();
    assert_eq!(record.status, Status::Failed);
    assert_eq!(record.error.unwrap().kind, "timeout");
    assert_eq!(record.state, json!({ "phase": "stopping" }));
    // A zero timeout is refused at launch.
    let error = rt
        .launch_json("test.noop", json!(null))
        .timeout(Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
}

/// A delayed task stays queued until its time, then runs.
pub async fn run_at_is_honoured(backend: &dyn Backend) {
    // The clock moves in steps shorter than 30 s: a PostgreSQL pool gives up on a connection
    // after 30 s of tokio time, so one jump past that while a claim waits for a connection
    // fails the claim, and with the clock held nothing moves on to its retry (CI hung here).
    // The node timeout is longer than the test, so the node never finds its own heartbeat
    // stale.
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        b.heartbeat(Duration::from_secs(1), Duration::from_secs(3_600))
    })
    .await;
    let mut events = rt.events();
    let task = rt
        .launch_json("test.echo", json!("later"))
        .delay(Duration::from_secs(60))
        .await
        .unwrap();
    let record = task.record().await.unwrap();
    assert_eq!((record.run_at - record.launched_at).num_seconds(), 60);
    tokio::time::advance(Duration::from_secs(29)).await;
    let now = rt.launch_json("test.echo", json!("now")).await.unwrap();
    now.wait().await.unwrap();
    assert_eq!(task.status().await.unwrap(), Status::Queued);
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(task.status().await.unwrap(), Status::Queued);
    // Past run_at half a second at a time, letting the store's I/O finish between steps (real
    // time, on a blocking thread), until the claimer starts it.
    let started = wait_started(&mut events, task.id());
    tokio::pin!(started);
    loop {
        tokio::select! {
            biased;
            _ = &mut started => break,
            _ = tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(20))) => {
                tokio::time::advance(Duration::from_millis(500)).await;
            }
        }
    }
    let record = task.wait().await.unwrap();
    assert_eq!(record.status, Status::Completed);
    assert!(record.started_at.unwrap() >= record.run_at);
}

/// Shutdown lets running tasks finish within the drain period, then records the rest
/// `missing` with kind `interrupted`, and refuses new launches.
pub async fn shutdown_drains_then_interrupts(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        b.shutdown_drain(Duration::from_secs(10))
    })
    .await;
    let mut events = rt.events();
    let quick = rt
        .launch_json("test.sleep", json!({ "ms": 2_000 }))
        .await
        .unwrap();
    let slow = rt.launch_json("test.stubborn", json!(null)).await.unwrap();
    wait_started(&mut events, slow.id()).await;
    let shutdown = tokio::spawn({
        let rt = rt.clone();
        async move { rt.shutdown().await }
    });
    tokio::task::yield_now().await;
    let refused = rt.launch_json("test.noop", json!(null)).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ShuttingDown);
    tokio::time::advance(Duration::from_secs(3)).await;
    let finished = wait_for_event(&mut events, Duration::from_secs(60), |e| {
        e.task_id == quick.id() && matches!(e.kind, EventKind::Finished { .. })
    })
    .await;
    let EventKind::Finished { task } = finished.kind else {
        unreachable!()
    };
    assert_eq!(
        task.status,
        Status::Completed,
        "finished within the drain period"
    );
    tokio::time::advance(Duration::from_secs(8)).await;
    shutdown.await.unwrap().unwrap();
    let other = backend.open(&database).await;
    let slow = other.get(slow.id()).await.unwrap().unwrap();
    assert_eq!(slow.status, Status::Missing);
    assert_eq!(slow.error.unwrap().kind, "interrupted");
    assert!(slow.state["n"].as_u64().unwrap() >= 1);
}
