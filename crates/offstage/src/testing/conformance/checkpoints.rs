//! Checkpoints: a value a task saves on purpose, durable at once, written only by the node
//! running the task, kept through every requeue and handed back to the next run (a retry, a
//! run after its node died, a rerun from its checkpoint). The state is another thing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::durability::{dead_node, running_record};
use super::tasks::runtime_with;
use super::Backend;
use crate::store::{Finish, NodeInfo, Rerun, Store};
use crate::testing::wait_for_event;
use crate::{
    Context, ErrorKind, EventKind, NodeId, RerunOptions, Retry, RuntimeBuilder, Status, TaskError,
    TaskTypeOptions,
};

/// Now, to the microsecond: what both stores keep of a time.
fn now_micros() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("a valid time")
}

/// A node that is alive (it registered just now).
async fn live_node(store: &dyn Store) -> NodeInfo {
    let node = NodeInfo {
        id: NodeId::new(),
        host: crate::runtime::host_name(),
        pid: std::process::id(),
        started_at: Utc::now(),
    };
    store.register_node(&node).await.unwrap();
    node
}

/// Reads its checkpoint (a count of items done); on its first attempt saves 7 and fails, on
/// the next returns what it started from.
async fn resumable(ctx: Context, _args: Value) -> Result<Value, TaskError> {
    let from: Option<u64> = ctx.checkpoint()?;
    if ctx.attempt() == 1 && ctx.name() != "test.resumable.once" {
        ctx.set_state(&json!({ "done": 7, "total": 10 }))?;
        ctx.save_checkpoint(&7u64).await?;
        return Err(TaskError::new("flaky", "stopped after item 7"));
    }
    Ok(json!({ "from": from, "attempt": ctx.attempt() }))
}

/// The suite's task types, with `test.resumable` retried on any kind (`missing` included).
fn with_resumable(builder: RuntimeBuilder) -> RuntimeBuilder {
    let quick = Retry::new(2).backoff(Duration::from_millis(1), Duration::from_millis(1));
    builder
        .task_with(
            "test.resumable",
            TaskTypeOptions::default().retry(quick),
            resumable,
        )
        .task("test.resumable.never", resumable)
        .task("test.resumable.once", resumable)
}

/// A checkpoint is in the store when the call returns, for any handle to read; only the node
/// the task runs on writes it, only while it runs; the state is not touched. A node declared
/// dead is told so (`NodeDead`) and writes nothing.
pub async fn a_checkpoint_is_saved_at_once_and_only_by_the_task_s_node(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let other_store = backend.open(&database).await;
    let (me, other) = (live_node(&*store).await, live_node(&*store).await);
    let mut task = running_record(me.id, me.started_at);
    task.state = json!({ "shown": "to people" });
    store.launch(&task).await.unwrap();

    let at = now_micros();
    assert!(store
        .save_checkpoint(task.id, me.id, r#"{"cursor":3}"#, at)
        .await
        .unwrap());
    let saved = other_store.get(task.id).await.unwrap().unwrap();
    assert_eq!(saved.checkpoint, Some(json!({ "cursor": 3 })));
    assert_eq!(saved.checkpoint_at, Some(at));
    assert_eq!(
        saved.state,
        json!({ "shown": "to people" }),
        "state untouched"
    );
    assert_eq!(saved.status, Status::Running);

    // Another node does not own it: nothing changes.
    let later = at + chrono::Duration::seconds(1);
    assert!(!store
        .save_checkpoint(task.id, other.id, r#"{"cursor":99}"#, later)
        .await
        .unwrap());
    // A queued task, and a finished one, run nowhere.
    let mut queued = crate::testing::sample_record(crate::TaskId::new());
    queued.status = Status::Queued;
    queued.return_value = None;
    queued.finished_at = None;
    store.launch(&queued).await.unwrap();
    assert!(!store
        .save_checkpoint(queued.id, me.id, "1", later)
        .await
        .unwrap());
    let finish = Finish {
        status: Status::Completed,
        state: json!({ "shown": "at the end" }).to_string(),
        return_value: Some(json!(1)),
        error: None,
        finished_at: later,
        logs: Vec::new(),
        retry_at: None,
    };
    assert!(store.finish(task.id, me.id, finish).await.unwrap());
    assert!(!store
        .save_checkpoint(task.id, me.id, r#"{"cursor":99}"#, later)
        .await
        .unwrap());
    let ended = store.get(task.id).await.unwrap().unwrap();
    assert_eq!(
        ended.checkpoint,
        Some(json!({ "cursor": 3 })),
        "kept at the end"
    );
    assert_eq!(ended.checkpoint_at, Some(at));
    assert!(store
        .get(queued.id)
        .await
        .unwrap()
        .unwrap()
        .checkpoint
        .is_none());

    // A node declared dead: `NodeDead`, and its task keeps the checkpoint it had.
    let (zombie, long_ago) = dead_node(&*store).await;
    let lost = running_record(zombie.id, long_ago);
    store.launch(&lost).await.unwrap();
    assert!(store
        .save_checkpoint(lost.id, zombie.id, "1", at)
        .await
        .unwrap());
    other_store
        .recover(other.id, Utc::now(), Duration::from_secs(10), None)
        .await
        .unwrap();
    let error = store
        .save_checkpoint(lost.id, zombie.id, "2", later)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NodeDead, "{error}");
    let missing = store.get(lost.id).await.unwrap().unwrap();
    assert_eq!(missing.status, Status::Missing);
    assert_eq!(missing.checkpoint, Some(json!(1)));
}

/// A task queued again keeps its checkpoint, whoever queues it (its node's retry, or recovery
/// of its dead node), and every claim returns it with the task.
pub async fn a_checkpoint_is_kept_through_every_requeue_and_returned_by_every_claim(
    backend: &dyn Backend,
) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let me = live_node(&*store).await;
    let names = ["test.sleep".to_owned()];

    // A retry: the finish queues it again.
    let task = running_record(me.id, me.started_at);
    store.launch(&task).await.unwrap();
    let at = now_micros();
    assert!(store
        .save_checkpoint(task.id, me.id, r#"{"page":4}"#, at)
        .await
        .unwrap());
    let retry = Finish {
        status: Status::Queued,
        state: "{}".into(),
        return_value: None,
        error: Some(TaskError::new("flaky", "try again")),
        finished_at: at,
        logs: Vec::new(),
        retry_at: Some(at - chrono::Duration::seconds(1)),
    };
    assert!(store.finish(task.id, me.id, retry).await.unwrap());
    let queued = store.get(task.id).await.unwrap().unwrap();
    assert_eq!(
        (
            queued.status,
            queued.checkpoint.clone(),
            queued.checkpoint_at
        ),
        (Status::Queued, Some(json!({ "page": 4 })), Some(at))
    );
    let claimed = store.claim(me.id, &names, Utc::now(), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].checkpoint, Some(json!({ "page": 4 })));
    assert_eq!(claimed[0].checkpoint_at, Some(at));

    // Recovery's rerun: the dead node's task is queued in the recovery's step, checkpoint kept.
    let (dead, long_ago) = dead_node(&*store).await;
    let orphan = running_record(dead.id, long_ago);
    store.launch(&orphan).await.unwrap();
    assert!(store
        .save_checkpoint(orphan.id, dead.id, r#"{"page":9}"#, at)
        .await
        .unwrap());
    let due = Utc::now() - chrono::Duration::seconds(1);
    let rerun: Rerun = std::sync::Arc::new(move |_task, now| {
        let line = crate::LogLine {
            seq: 1 << 32,
            at: now,
            level: crate::LogLevel::Warn,
            message: "running again".into(),
        };
        Some((due, line))
    });
    let recovered = store
        .recover(me.id, Utc::now(), Duration::from_secs(10), Some(rerun))
        .await
        .unwrap();
    let requeued = recovered.iter().find(|t| t.id == orphan.id).unwrap();
    assert_eq!(requeued.status, Status::Queued);
    assert_eq!(requeued.checkpoint, Some(json!({ "page": 9 })));
    let claimed = store
        .claim_limited(me.id, "test.sleep", Utc::now(), 10, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, orphan.id);
    assert_eq!(claimed[0].checkpoint, Some(json!({ "page": 9 })));
    assert_eq!(claimed[0].checkpoint_at, Some(at));
}

/// A task that fails after saving a checkpoint starts its retry with it (its log says so);
/// the checkpoint is an event and in the record, the state stays what the task set.
pub async fn a_retried_task_starts_from_its_checkpoint(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, with_resumable).await;
    let mut events = rt.events();
    let task = rt.launch_json("test.resumable", json!(null)).await.unwrap();
    let id = task.id();
    let event = wait_for_event(&mut events, Duration::from_secs(10), |event| {
        event.task_id == id && matches!(event.kind, EventKind::Checkpoint { .. })
    })
    .await;
    assert_eq!(
        event.kind,
        EventKind::Checkpoint {
            checkpoint: std::sync::Arc::new(json!(7))
        }
    );
    let done = task.wait().await.unwrap();
    assert_eq!(done.status, Status::Completed);
    assert_eq!(
        done.return_value,
        Some(json!({ "from": 7, "attempt": 2 })),
        "the retry read the checkpoint"
    );
    assert_eq!(done.checkpoint, Some(json!(7)));
    assert_eq!(done.checkpoint_at, Some(event.at));
    assert_eq!(
        done.state,
        json!({ "done": 7, "total": 10 }),
        "state untouched"
    );
    let stored = rt.store().get(id).await.unwrap().unwrap();
    assert_eq!(
        (stored.checkpoint, stored.checkpoint_at),
        (Some(json!(7)), Some(event.at))
    );
    let logs = rt.logs(id, 0, 100).await.unwrap();
    let resuming: Vec<&str> = logs
        .iter()
        .map(|l| l.message.as_str())
        .filter(|m| m.starts_with("[offstage] resuming from checkpoint saved at"))
        .collect();
    assert_eq!(resuming.len(), 1, "only the retry resumes: {logs:?}");

    // A plain launch starts with none.
    let fresh = rt
        .launch_json("test.resumable.once", json!(null))
        .await
        .unwrap();
    let fresh = fresh.wait().await.unwrap();
    assert_eq!(
        fresh.return_value,
        Some(json!({ "from": null, "attempt": 1 }))
    );
    assert_eq!((fresh.checkpoint, fresh.checkpoint_at), (None, None));
}

/// A task whose node died after it saved a checkpoint is queued again by recovery (its type
/// retries `missing`) and its next attempt, on another node, starts from that checkpoint.
pub async fn a_dead_node_s_task_resumes_from_its_checkpoint(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let (dead, long_ago) = dead_node(&*store).await;
    let mut orphan = running_record(dead.id, long_ago);
    orphan.name = "test.resumable".into();
    orphan.args = Value::Null;
    orphan.attempt = 1;
    store.launch(&orphan).await.unwrap();
    let at = now_micros();
    assert!(store
        .save_checkpoint(orphan.id, dead.id, "41", at)
        .await
        .unwrap());

    let rt = runtime_with(backend, &database, with_resumable).await;
    let done = rt.get(orphan.id).await.unwrap().wait().await.unwrap();
    assert_eq!(
        (done.status, done.return_value),
        (Status::Completed, Some(json!({ "from": 41, "attempt": 2 })))
    );
    let logs = rt.logs(orphan.id, 0, 100).await.unwrap();
    let said = |what: &str| logs.iter().any(|l| l.message.contains(what));
    assert!(said("attempt 1 of 2 went missing"), "{logs:?}");
    assert!(said("[offstage] resuming from checkpoint"), "{logs:?}");
}

/// A rerun starts with no checkpoint; a rerun from the checkpoint starts with the original's
/// (and its time); a task that saved none cannot be rerun from one, and says how to rerun it.
pub async fn a_rerun_from_its_checkpoint_starts_where_the_original_stopped(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, with_resumable).await;
    let original = rt
        .launch_json("test.resumable.never", json!(null))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(original.status, Status::Failed);
    assert_eq!(original.checkpoint, Some(json!(7)));

    let plain = rt.rerun(original.id, None).await.unwrap();
    assert_eq!(plain.snapshot().checkpoint, None);
    let plain = plain.wait().await.unwrap();
    assert_eq!(
        plain.status,
        Status::Failed,
        "from the top: fails again at 7"
    );

    let options = RerunOptions {
        from_checkpoint: true,
        ..RerunOptions::default()
    };
    let resumed = rt.rerun_with(original.id, options.clone()).await.unwrap();
    // What the rerun was inserted with (the store's copy may already be the rerun's own next
    // save: it starts at once, and saves 7 again before it fails).
    assert_eq!(
        (
            resumed.snapshot().checkpoint.clone(),
            resumed.snapshot().checkpoint_at
        ),
        (Some(json!(7)), original.checkpoint_at)
    );
    let resumed = resumed.wait().await.unwrap();
    assert_eq!(resumed.rerun_of, Some(original.id));
    assert_eq!(resumed.status, Status::Failed);
    assert!(rt
        .logs(resumed.id, 0, 100)
        .await
        .unwrap()
        .iter()
        .any(|l| l.message.starts_with("[offstage] resuming from checkpoint")));

    let none = rt
        .launch_json("test.resumable.once", json!(null))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let error = rt.rerun_with(none.id, options).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert!(
        error.message().contains("saved no checkpoint")
            && error.message().contains("without from_checkpoint"),
        "{error}"
    );
}

/// A checkpoint over the state cap is refused, saving nothing, with how to fix it; one that
/// does not read as the type asked for says what is stored.
pub async fn a_checkpoint_over_the_cap_or_of_another_shape_is_an_error_that_says_why(
    backend: &dyn Backend,
) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |builder| {
        builder.state_limit(64).task(
            "test.checkpoint.errors",
            |ctx: Context, _args: Value| async move {
                let big = ctx
                    .save_checkpoint(&"x".repeat(100))
                    .await
                    .map(|()| String::new())
                    .unwrap_or_else(|e| format!("{:?}: {}", e.kind(), e.message()));
                let before = ctx.checkpoint_value();
                ctx.save_checkpoint(&json!({ "cursor": "abc" })).await?;
                let wrong = ctx
                    .checkpoint::<u64>()
                    .map(|_| String::new())
                    .unwrap_or_else(|e| format!("{:?}: {}", e.kind(), e.message()));
                Ok::<_, TaskError>(json!({ "big": big, "before": before, "wrong": wrong }))
            },
        )
    })
    .await;
    let done = rt
        .launch_json("test.checkpoint.errors", json!(null))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let out = done.return_value.unwrap();
    let big = out["big"].as_str().unwrap();
    assert!(
        big.starts_with("StateTooLarge") && big.contains("RuntimeBuilder::state_limit"),
        "{big}"
    );
    assert_eq!(out["before"], Value::Null, "the refused one was not saved");
    let wrong = out["wrong"].as_str().unwrap();
    assert!(
        wrong.starts_with("InvalidArgument")
            && wrong.contains("u64")
            && wrong.contains(r#"{"cursor":"abc"}"#),
        "{wrong}"
    );
    assert_eq!(done.checkpoint, Some(json!({ "cursor": "abc" })));
}

/// A task killed after saving a checkpoint ends with it in its final record (the event's and
/// the store's alike), so a rerun from its checkpoint continues where the kill stopped it.
pub async fn a_killed_task_keeps_its_checkpoint_for_a_rerun(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |builder| {
        builder.task(
            "test.checkpoint.then_wait",
            |ctx: Context, _args: Value| async move {
                let from: Option<u64> = ctx.checkpoint()?;
                ctx.save_checkpoint(&(from.unwrap_or(0) + 1)).await?;
                ctx.cancelled().await;
                Err::<(), _>(TaskError::cancelled())
            },
        )
    })
    .await;
    let mut events = rt.events();
    let task = rt
        .launch_json("test.checkpoint.then_wait", json!(null))
        .await
        .unwrap();
    let id = task.id();
    wait_for_event(&mut events, Duration::from_secs(10), |event| {
        event.task_id == id && matches!(event.kind, EventKind::Checkpoint { .. })
    })
    .await;
    rt.kill(id).await.unwrap();
    let killed = task.wait().await.unwrap();
    assert_eq!(killed.status, Status::Killed);
    assert_eq!(killed.checkpoint, Some(json!(1)));
    let stored = rt.store().get(id).await.unwrap().unwrap();
    assert_eq!(
        (stored.checkpoint, stored.checkpoint_at),
        (killed.checkpoint.clone(), killed.checkpoint_at)
    );
    let options = RerunOptions {
        from_checkpoint: true,
        ..RerunOptions::default()
    };
    let again = rt.rerun_with(id, options).await.unwrap();
    let again_id = again.id();
    wait_for_event(&mut events, Duration::from_secs(10), |event| {
        event.task_id == again_id
            && matches!(&event.kind, EventKind::Checkpoint { checkpoint } if **checkpoint == json!(2))
    })
    .await;
    rt.kill(again_id).await.unwrap();
    assert_eq!(again.wait().await.unwrap().checkpoint, Some(json!(2)));
}
