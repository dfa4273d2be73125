//! Retries: a task type's policy runs a failed task again after an exponential backoff with
//! jitter; without a policy, or for other error kinds, a failure is final. Paused time.

use std::time::Duration;

use serde_json::{json, Value};

use super::tasks::runtime_with;
use super::Backend;
use crate::testing::{wait_for_event, wait_started};
use crate::{Context, EventKind, Retry, Status, TaskError, TaskTypeOptions};

/// Fails its first two attempts (kind `flaky`), then completes.
async fn flaky(ctx: Context, _args: Value) -> Result<u32, TaskError> {
    if ctx.attempt() < 3 {
        return Err(TaskError::new(
            "flaky",
            format!("attempt {} failed", ctx.attempt()),
        ));
    }
    Ok(ctx.attempt())
}

/// A failing task runs again after 10 s ± 25%, then 20 s ± 25%, and completes on its third
/// attempt, its failures in its log; a task with no policy, or failing with a kind its policy
/// does not retry, never runs again.
pub async fn a_failing_task_retries_with_backoff_then_completes(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |builder| {
        let retry = Retry::new(3).backoff(Duration::from_secs(10), Duration::from_secs(60));
        builder
            .task_with("test.flaky", TaskTypeOptions::default().retry(retry), flaky)
            .task_with(
                "test.picky",
                TaskTypeOptions::default().retry(Retry::new(3).kinds(&["flaky"])),
                |_ctx: Context, _args: Value| async {
                    Err::<(), _>(TaskError::new("other", "not a kind that retries"))
                },
            )
    })
    .await;
    let mut events = rt.events();
    let task = rt.launch_json("test.flaky", json!(null)).await.unwrap();

    // Attempt 1 fails and the task is queued again, due 7.5–12.5 s later.
    let id = task.id();
    let again = |attempt: u32| {
        move |event: &crate::Event| {
            event.task_id == id
                && matches!(&event.kind, EventKind::Launched { task }
                    if task.status == Status::Queued && task.attempt == attempt)
        }
    };
    wait_for_event(&mut events, Duration::from_secs(30), again(1)).await;
    let queued = task.record().await.unwrap();
    assert_eq!(queued.status, Status::Queued);
    assert_eq!(queued.error.as_ref().unwrap().kind, "flaky");
    let due_in = (queued.run_at - rt_now(&rt).await).num_milliseconds();
    assert!((7_000..=12_600).contains(&due_in), "due in {due_in} ms");
    tokio::time::advance(Duration::from_millis(due_in as u64 - 1_000)).await;
    assert_eq!(
        task.status().await.unwrap(),
        Status::Queued,
        "not before its time"
    );

    tokio::time::advance(Duration::from_millis(1_500)).await;
    wait_started(&mut events, id).await;
    wait_for_event(&mut events, Duration::from_secs(30), again(2)).await;
    let queued = task.record().await.unwrap();
    let due_in = (queued.run_at - rt_now(&rt).await).num_milliseconds();
    assert!(
        (14_000..=25_100).contains(&due_in),
        "second backoff doubles: {due_in} ms"
    );
    tokio::time::advance(Duration::from_millis(due_in as u64 + 500)).await;
    let done = task.wait().await.unwrap();
    assert_eq!((done.status, done.attempt), (Status::Completed, 3));
    assert_eq!(done.return_value, Some(json!(3)));
    let logs = rt.logs(id, 0, 100).await.unwrap();
    let failures: Vec<&str> = logs
        .iter()
        .map(|l| l.message.as_str())
        .filter(|m| m.starts_with("[offstage] attempt"))
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("attempt 1 of 3 failed (flaky: attempt 1 failed)"));

    // No policy: a failure is final. A kind the policy does not name: final too.
    for name in ["test.fail", "test.picky"] {
        let args = if name == "test.fail" {
            json!("once")
        } else {
            json!(null)
        };
        let task = rt.launch_json(name, args).await.unwrap();
        let ended = task.wait().await.unwrap();
        assert_eq!((ended.status, ended.attempt), (Status::Failed, 1), "{name}");
        tokio::time::advance(Duration::from_secs(3_600)).await;
        let later = task.record().await.unwrap();
        assert_eq!((later.status, later.attempt), (Status::Failed, 1), "{name}");
    }
}

/// The runtime's clock, as the store sees it (the time of a launch that completes at once).
async fn rt_now(rt: &crate::Runtime) -> chrono::DateTime<chrono::Utc> {
    rt.launch_json("test.echo", json!(0))
        .await
        .unwrap()
        .record()
        .await
        .unwrap()
        .launched_at
}
