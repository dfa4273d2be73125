//! Isolated worker processes as an app starts them: one that dies before its handshake fails
//! its task at once with why, and `offstage::isolation_entry` at the top of `main` serves the
//! node before anything else of the app runs.

use std::time::Duration;

use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::{
    Context, Isolation, Retry, Runtime, RuntimeBuilder, Status, TaskError, TaskTypeOptions,
};
use serde_json::{json, Value};

/// The app's task types, registered the same way by the node and by its worker processes.
fn tasks(builder: RuntimeBuilder) -> RuntimeBuilder {
    let quick = Retry::new(2).backoff(Duration::from_millis(1), Duration::from_millis(1));
    builder
        .task_with(
            "test.isolated_double",
            TaskTypeOptions::default().isolated(),
            |_ctx: Context, n: u64| async move { Ok(n * 2) },
        )
        .task_with(
            "test.isolated_resumable",
            TaskTypeOptions::default().isolated().retry(quick),
            |ctx: Context, _args: Value| async move {
                let from: Option<u64> = ctx.checkpoint()?;
                if ctx.attempt() == 1 {
                    // Over the cap: refused in the worker, before anything is sent.
                    let big = ctx.save_checkpoint(&"x".repeat(2 << 20)).await.unwrap_err();
                    ctx.log(format!("refused: {big}"));
                    ctx.save_checkpoint(&5u64).await?;
                    ctx.save_checkpoint(&6u64).await?;
                    let read: Option<u64> = ctx.checkpoint()?;
                    return Err(TaskError::new("flaky", format!("stopped at {read:?}")));
                }
                Ok::<_, TaskError>(json!({ "from": from, "attempt": ctx.attempt() }))
            },
        )
        // Tries to launch a child, and to wait for one, from its worker process: returns what
        // it was told.
        .task_with(
            "test.isolated_parent",
            TaskTypeOptions::default().isolated(),
            |ctx: Context, _args: serde_json::Value| async move {
                let launch = ctx
                    .launch_json("test.isolated_double", json!(1))
                    .await
                    .unwrap_err();
                let wait = ctx.wait_all(&[]).await.unwrap_err();
                Ok(json!({ "launch": launch.message(), "wait": wait.message }))
            },
        )
}

async fn runtime(isolation: Isolation) -> Runtime {
    let store = SqliteBackend.open(&SqliteBackend.new_database()).await;
    tasks(Runtime::builder().store(store))
        .isolation(isolation)
        .build()
        .await
        .expect("building the runtime")
}

/// Regression: a worker process that exited before connecting (an app that bound its port
/// again in the worker) left the task `running` for 20 s, then failed it with nothing about
/// the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_before_its_handshake_fails_the_task_with_its_status_and_stderr() {
    let script = "echo 'starting the app' >&2; \
                  echo 'error: could not bind 127.0.0.1:3000: address in use' >&2; exit 3";
    let rt = runtime(Isolation {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        warm: 0,
    })
    .await;
    // Well inside the 20 s a worker process has to connect: its death is noticed at once.
    let record = double_21(&rt, Duration::from_secs(10)).await;
    assert_eq!(record.status, Status::Failed, "{record:?}");
    let error = record.error.expect("a failed task has an error");
    assert_eq!(error.kind, "worker_spawn", "{error:?}");
    for expected in [
        "exited with code 3",
        "before it connected",
        "starting the app",
        "could not bind 127.0.0.1:3000: address in use",
        "offstage::isolation_entry",
    ] {
        assert!(
            error.message.contains(expected),
            "`{expected}` is missing from: {}",
            error.message
        );
    }
    rt.shutdown().await.unwrap();
}

/// Launches `test.isolated_double` of 21 on `rt`; its final record, within `limit`.
async fn double_21(rt: &offstage::Runtime, limit: Duration) -> offstage::TaskRecord {
    let task = rt
        .launch_json("test.isolated_double", json!(21))
        .await
        .unwrap();
    tokio::time::timeout(limit, task.wait())
        .await
        .expect("the task ends within the limit")
        .unwrap()
}

const APP_MAIN_RAN: &str = "the app's main went on past isolation_entry";

/// The test is also its own worker process: the node it starts runs this same binary, filtered
/// to this test, and there the first lines are an app's `main` in miniature. Outside a worker
/// process `isolation_entry` returns at once and the test goes on as the node. (The worker's
/// side was a test of its own, which passed without testing anything when run alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_entry_at_the_top_of_main_serves_the_node_and_nothing_else_runs() {
    offstage::isolation_entry(tasks);
    // In a worker process nothing below may run: it would be the app binding its port again.
    // The variable the node names its socket in when it starts a worker process.
    if std::env::var_os("OFFSTAGE_ISOLATED_SOCKET").is_some() {
        eprintln!("{APP_MAIN_RAN}");
        std::process::exit(3);
    }
    let rt = runtime(Isolation {
        program: std::env::current_exe().unwrap(),
        args: [
            "--exact",
            "isolation_entry_at_the_top_of_main_serves_the_node_and_nothing_else_runs",
            "--nocapture",
            "--test-threads=1",
        ]
        .map(Into::into)
        .to_vec(),
        warm: 0,
    })
    .await;
    let record = double_21(&rt, Duration::from_secs(30)).await;
    assert_eq!(
        (record.status, record.return_value.clone()),
        (Status::Completed, Some(json!(42))),
        "{record:?}"
    );
    let logs = rt.logs(record.id, 0, 1_000).await.unwrap();
    assert!(
        logs.iter()
            .any(|l| l.message.contains("running in isolated worker process")),
        "{logs:?}"
    );
    assert!(
        !logs.iter().any(|l| l.message.contains(APP_MAIN_RAN)),
        "{logs:?}"
    );
    rt.shutdown().await.unwrap();
}

/// An isolated task saves checkpoints through its worker process (each confirmed by the node
/// before the call returns) and its retry, in another process, starts from the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_task_s_checkpoint_reaches_the_store_and_its_retry() {
    offstage::isolation_entry(tasks);
    if std::env::var_os("OFFSTAGE_ISOLATED_SOCKET").is_some() {
        std::process::exit(3);
    }
    let rt = runtime(Isolation {
        program: std::env::current_exe().unwrap(),
        args: [
            "--exact",
            "an_isolated_task_s_checkpoint_reaches_the_store_and_its_retry",
            "--nocapture",
            "--test-threads=1",
        ]
        .map(Into::into)
        .to_vec(),
        warm: 0,
    })
    .await;
    let task = rt
        .launch_json("test.isolated_resumable", json!(null))
        .await
        .unwrap();
    let record = tokio::time::timeout(Duration::from_secs(60), task.wait())
        .await
        .expect("the task ends")
        .unwrap();
    assert_eq!(
        (record.status, record.return_value.clone()),
        (Status::Completed, Some(json!({ "from": 6, "attempt": 2 }))),
        "{record:?}"
    );
    assert_eq!(record.checkpoint, Some(json!(6)));
    assert!(record.checkpoint_at.is_some());
    let logs = rt.logs(record.id, 0, 1_000).await.unwrap();
    let said = |what: &str| logs.iter().any(|l| l.message.contains(what));
    assert!(
        said("stopped at Some(6)"),
        "the worker reads what it saved: {logs:?}"
    );
    assert!(said("refused: the checkpoint of task"), "{logs:?}");
    assert!(
        said("[offstage] resuming from checkpoint saved at"),
        "{logs:?}"
    );
    rt.shutdown().await.unwrap();
}

/// A task in a worker process has no runtime to launch children on: `ctx.launch` fails, saying
/// to launch the child over HTTP with `parent`, and waiting fails saying how to follow one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_in_a_worker_process_is_told_how_to_launch_a_child() {
    offstage::isolation_entry(tasks);
    if std::env::var_os("OFFSTAGE_ISOLATED_SOCKET").is_some() {
        std::process::exit(3);
    }
    let rt = runtime(Isolation {
        program: std::env::current_exe().unwrap(),
        args: [
            "--exact",
            "a_task_in_a_worker_process_is_told_how_to_launch_a_child",
            "--nocapture",
            "--test-threads=1",
        ]
        .map(Into::into)
        .to_vec(),
        warm: 0,
    })
    .await;
    let task = rt
        .launch_json("test.isolated_parent", json!(null))
        .await
        .unwrap();
    let record = tokio::time::timeout(Duration::from_secs(30), task.wait())
        .await
        .expect("the task ends within the limit")
        .unwrap();
    assert_eq!(record.status, Status::Completed, "{record:?}");
    let told = record.return_value.unwrap();
    let launch = told["launch"].as_str().unwrap();
    assert!(launch.contains("runs in a worker"), "{launch}");
    assert!(launch.contains("POST /api/tasks"), "{launch}");
    assert!(
        launch.contains(&format!("\"parent\": \"{}\"", record.id)),
        "{launch}"
    );
    let wait = told["wait"].as_str().unwrap();
    assert!(wait.contains("/api/tasks/{id}/events"), "{wait}");
    // Nothing was launched.
    let children = rt
        .list(&offstage::ListFilter {
            parent: Some(record.id),
            ..offstage::ListFilter::default()
        })
        .await
        .unwrap();
    assert!(children.is_empty());
    rt.shutdown().await.unwrap();
}
