//! Launching, running, state, logs, failure, listing.

use std::time::Duration;

use serde_json::{json, Value};

use super::tasks::{runtime, runtime_with, start_blocker, Double, DoubleArgs};
use super::Backend;
use crate::testing::wait_for_event;
use crate::{ErrorKind, EventKind, ListFilter, LogLevel, Status, TaskId};

/// A launched task runs, completes with its return value, and its events arrive in order.
pub async fn launch_runs_and_completes(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let mut events = rt.events();
    let task = rt
        .launch_json("test.echo", json!({ "hello": "world" }))
        .await
        .unwrap();
    let record = task.wait().await.unwrap();
    assert_eq!(record.status, Status::Completed);
    assert_eq!(record.termination_status(), Some(Status::Completed));
    assert_eq!(record.return_value, Some(json!({ "hello": "world" })));
    assert_eq!(record.state, json!({}));
    assert_eq!(record.attempt, 1);
    assert!(record.started_at.unwrap() >= record.launched_at);
    assert!(record.finished_at.unwrap() >= record.started_at.unwrap());
    assert!(record.is_completed().unwrap());
    assert!(!task.is_running().await.unwrap());
    let mut kinds = Vec::new();
    while kinds.last() != Some(&"finished") {
        let event = events.recv().await.unwrap();
        assert_eq!(event.task_id, task.id());
        kinds.push(event.kind.name());
    }
    assert_eq!(kinds, ["launched", "started", "finished"]);
    // The handle's own stream replays the same events and ends after `finished`.
    let mut own = task.events();
    let mut own_kinds = Vec::new();
    while let Ok(event) = own.recv().await {
        own_kinds.push(event.kind.name());
    }
    assert_eq!(own_kinds, ["launched", "started", "finished"]);
    // Another handle to the same task reads the same record, from the store.
    let again = rt.get(task.id()).await.unwrap();
    assert_eq!(again.record().await.unwrap(), record);
    assert_eq!(again.name(), "test.echo");
}

/// A task type implementing `TaskType` launches with typed args.
pub async fn typed_launch_runs(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let task = rt.launch::<Double>(DoubleArgs { n: 21 }).await.unwrap();
    assert_eq!(task.wait().await.unwrap().return_value, Some(json!(42)));
}

/// An unknown name is an error at launch that lists the registered names.
pub async fn unknown_task_type_lists_registered_names(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let error = rt.launch_json("test.nope", json!({})).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnknownTaskType);
    assert!(error.message().contains("test.nope"), "{error}");
    assert!(error.message().contains("test.echo, test.fail"), "{error}");
    // A type only workers serve is unknown while none is connected: the message says so.
    assert!(
        error.message().contains("no worker is connected"),
        "{error}"
    );
    assert!(
        error.message().contains("--remote-type test.nope"),
        "{error}"
    );
    assert!(rt.list(&ListFilter::default()).await.unwrap().is_empty());
}

/// Args that do not deserialize into the task type's args fail the launch, not the task.
pub async fn args_that_do_not_fit_are_rejected_at_launch(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let error = rt
        .launch_json("test.sleep", json!({ "seconds": 1 }))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgs);
    assert!(error.message().contains("missing field `ms`"), "{error}");
    let error = rt
        .launch_json("test.double", json!({ "n": "two" }))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgs);
    assert!(rt.list(&ListFilter::default()).await.unwrap().is_empty());
}

/// Every launch option is in the record, read back through another store handle, and a
/// queued task that is killed never runs.
pub async fn launch_options_are_kept(backend: &dyn Backend) {
    let (rt, database) = runtime(backend).await;
    let task = rt
        .launch_json("test.echo", json!(1))
        .key("k-1")
        .owner("ada")
        .priority(7)
        .timeout(Duration::from_secs(90))
        .isolated(true)
        .delay(Duration::from_secs(3600))
        .await
        .unwrap();
    let stored = backend
        .open(&database)
        .await
        .get(task.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, Status::Queued);
    assert_eq!(
        (
            stored.key.as_deref(),
            stored.owner.as_deref(),
            stored.priority
        ),
        (Some("k-1"), Some("ada"), 7)
    );
    assert_eq!(stored.timeout, Some(Duration::from_secs(90)));
    assert!(stored.isolated);
    assert!(stored.run_at > stored.launched_at);
    let plain = rt.launch_json("test.echo", json!(2)).await.unwrap();
    assert!(!plain.wait().await.unwrap().isolated);
    assert_eq!(task.kill().await.unwrap().status, Status::Killed);
}

/// `get` of an id nobody launched is `NotFound`, never a fake pending task.
pub async fn unknown_id_is_not_found(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let id = TaskId::new();
    assert_eq!(rt.get(id).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(rt.kill(id).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        rt.logs(id, 0, 10).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(rt.store().get(id).await.unwrap(), None);
}

/// State changes reach readers at once, and the final state is saved with the status.
pub async fn state_is_live_for_readers_and_saved_at_the_end(backend: &dyn Backend) {
    let (rt, database) = runtime(backend).await;
    let mut events = rt.events();
    let task = rt
        .launch_json("test.until_cancelled", json!(null))
        .await
        .unwrap();
    let event = wait_for_event(&mut events, Duration::from_secs(30), |e| {
        matches!(e.kind, EventKind::State { .. })
    })
    .await;
    let EventKind::State { state } = event.kind else {
        unreachable!()
    };
    assert_eq!(*state, json!({ "phase": "waiting" }));
    // A read-only handle sees the latest state while it runs.
    assert_eq!(task.state().await.unwrap(), json!({ "phase": "waiting" }));
    assert_eq!(task.status().await.unwrap(), Status::Running);
    assert!(task.is_running().await.unwrap());
    assert_eq!(task.termination_status().await.unwrap(), None);
    let record = task.kill().await.unwrap();
    assert_eq!(record.status, Status::Killed);
    assert_eq!(record.state, json!({ "phase": "stopping" }));
    // What the store kept is the same, as another process opening the database sees it.
    let other = backend.open(&database).await;
    assert_eq!(
        other.get(task.id()).await.unwrap().unwrap().state,
        json!({ "phase": "stopping" })
    );
}

/// A state over the cap is refused with an error the task can handle; the old state stays.
pub async fn oversized_state_is_an_error_the_task_can_handle(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.state_limit(1024)).await;
    let record = rt
        .launch_json("test.big_state", json!(2000))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(record.status, Status::Completed);
    assert_eq!(
        record.return_value,
        Some(json!({ "refused": true, "state": { "small": true } }))
    );
    assert_eq!(record.state, json!({ "small": true }));
    let record = rt
        .launch_json("test.big_state", json!(10))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(record.return_value.unwrap()["refused"], json!(false));
}

/// `ctx.log` and `tracing` events inside the task land in its log, numbered in order.
pub async fn logs_are_sequenced_and_capture_tracing(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let task = rt.launch_json("test.log", json!(3)).await.unwrap();
    task.wait().await.unwrap();
    let lines = rt.logs(task.id(), 0, 100).await.unwrap();
    let text: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        text,
        [
            "line 1",
            "traced i=1",
            "line 2",
            "traced i=2",
            "line 3",
            "traced i=3"
        ]
    );
    assert_eq!(
        lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(lines.iter().all(|l| l.level == LogLevel::Info));
    let after = rt.logs(task.id(), 4, 100).await.unwrap();
    assert_eq!(after.iter().map(|l| l.seq).collect::<Vec<_>>(), [5, 6]);
}

/// Past the line cap, or the byte cap, the log ends with a visible truncation mark.
pub async fn log_cap_leaves_a_truncation_mark(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.log_limits(5, 1 << 20)).await;
    let task = rt.launch_json("test.log", json!(50)).await.unwrap();
    task.wait().await.unwrap();
    let lines = rt.logs(task.id(), 0, 1000).await.unwrap();
    assert_eq!(lines.len(), 5);
    let last = lines.last().unwrap();
    assert_eq!(last.level, LogLevel::Warn);
    assert!(last.message.contains("log truncated"), "{}", last.message);
    assert_eq!(
        lines[..4].iter().map(|l| l.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    // "line N" and "traced i=N" lines of 6 and 10 bytes: 35 bytes hold four of them.
    let rt = runtime_with(backend, &database, |b| b.log_limits(1_000, 35)).await;
    let task = rt.launch_json("test.log", json!(50)).await.unwrap();
    task.wait().await.unwrap();
    let lines = rt.logs(task.id(), 0, 1000).await.unwrap();
    let text: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(text[..4], ["line 1", "traced i=1", "line 2", "traced i=2"]);
    assert_eq!(lines.len(), 5, "{text:?}");
    assert!(lines[4].message.contains("log truncated"));
}

/// A task that returns an error ends `failed` with that error; `is_completed` reports it.
pub async fn failed_task_keeps_its_error(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let task = rt
        .launch_json("test.fail", json!("no such file"))
        .await
        .unwrap();
    let record = task.wait().await.unwrap();
    assert_eq!(record.status, Status::Failed);
    let error = record.error.clone().unwrap();
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        ("bad_input", "no such file")
    );
    assert_eq!(error.detail.as_deref(), Some("some detail"));
    let raised = task.is_completed().await.unwrap_err();
    assert_eq!(raised.kind(), ErrorKind::TaskFailed);
    assert_eq!(raised.task_error(), Some(&error));
    assert_eq!(task.error().await.unwrap(), Some(error));
    assert_eq!(task.return_value().await.unwrap(), None);
}

/// A panic ends the task `failed` with kind `panic`; other tasks carry on.
pub async fn panic_fails_the_task_and_the_runtime_keeps_running(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let record = rt
        .launch_json("test.panic", json!("it broke"))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(record.status, Status::Failed);
    let error = record.error.unwrap();
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        ("panic", "it broke")
    );
    let after = rt
        .launch_json("test.echo", json!(1))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(after.status, Status::Completed);
}

/// With one slot, queued tasks start by priority, then in launch order.
pub async fn concurrency_limit_then_priority_then_launch_order(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.max_concurrency(1)).await;
    let mut events = rt.events();
    let blocker = start_blocker(&rt, &mut events).await;
    let low = rt
        .launch_json("test.echo", json!("low"))
        .priority(-1)
        .await
        .unwrap();
    let first = rt.launch_json("test.echo", json!("first")).await.unwrap();
    let high = rt
        .launch_json("test.echo", json!("high"))
        .priority(5)
        .await
        .unwrap();
    let second = rt.launch_json("test.echo", json!("second")).await.unwrap();
    for task in [&low, &first, &high, &second] {
        assert_eq!(task.status().await.unwrap(), Status::Queued);
    }
    assert_eq!(rt.running(), 1);
    blocker.kill().await.unwrap();
    let mut order = Vec::new();
    while order.len() < 4 {
        let event = events.recv().await.unwrap();
        if let EventKind::Started { task } = event.kind {
            order.push(task.args.clone());
        }
    }
    assert_eq!(
        order,
        [json!("high"), json!("first"), json!("second"), json!("low")]
    );
    for task in [low, first, high, second] {
        assert_eq!(task.wait().await.unwrap().status, Status::Completed);
    }
}

/// `list` filters by name, status and owner and pages newest first.
pub async fn list_filters_and_pages_newest_first(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let owner = if i % 2 == 0 { "alice" } else { "bob" };
        let task = rt
            .launch_json("test.echo", json!(i))
            .owner(owner)
            .key(format!("k{i}"))
            .await
            .unwrap();
        task.wait().await.unwrap();
        ids.push(task.id());
    }
    let failed = rt.launch_json("test.fail", json!("x")).await.unwrap();
    failed.wait().await.unwrap();

    let all = rt.list(&ListFilter::default()).await.unwrap();
    let listed: Vec<TaskId> = all.iter().map(|t| t.id).collect();
    let mut expected = ids.clone();
    expected.push(failed.id());
    expected.reverse();
    assert_eq!(listed, expected, "newest first");

    let page = |before: Option<TaskId>| ListFilter {
        limit: Some(2),
        before,
        ..ListFilter::default()
    };
    let first = rt.list(&page(None)).await.unwrap();
    let second = rt.list(&page(Some(first[1].id))).await.unwrap();
    assert_eq!(
        [first[0].id, first[1].id, second[0].id, second[1].id],
        expected[..4]
    );

    let by = |filter: ListFilter| {
        let rt = rt.clone();
        async move {
            rt.list(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        by(ListFilter {
            owner: Some("bob".into()),
            ..Default::default()
        })
        .await,
        [ids[3], ids[1]]
    );
    assert_eq!(
        by(ListFilter {
            status: Some(Status::Failed),
            ..Default::default()
        })
        .await,
        [failed.id()]
    );
    assert_eq!(
        by(ListFilter {
            name: Some("test.echo".into()),
            ..Default::default()
        })
        .await
        .len(),
        5
    );
    assert_eq!(
        by(ListFilter {
            key: Some("k2".into()),
            ..Default::default()
        })
        .await,
        [ids[2]]
    );
    assert!(by(ListFilter {
        name: Some("test.nothing".into()),
        ..Default::default()
    })
    .await
    .is_empty());
}

/// Events after a sequence number replay from the buffer with no gap or duplicate.
pub async fn events_resume_after_a_sequence_number(backend: &dyn Backend) {
    let (rt, _) = runtime(backend).await;
    let mut live = rt.events();
    let task = rt.launch_json("test.log", json!(3)).await.unwrap();
    task.wait().await.unwrap();
    let mut seen = Vec::new();
    loop {
        let event = live.recv().await.unwrap();
        let done = matches!(event.kind, EventKind::Finished { .. });
        seen.push(event);
        if done {
            break;
        }
    }
    let resume_after = seen[2].seq;
    let mut resumed = rt.events_since(resume_after);
    for expected in &seen[3..] {
        assert_eq!(&resumed.recv().await.unwrap(), expected);
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let _: Value = serde_json::to_value(&seen[0]).unwrap();
}
