//! Restart recovery with real processes: a child process runs a task and is killed with
//! SIGKILL mid-task; a runtime opening the database afterwards finds the task `missing`, while
//! one opening it as long as the child lives leaves the task alone.

use std::process::Stdio;
use std::time::Duration;

use offstage::testing::conformance::{runtime_with, Backend, SqliteBackend};
use offstage::{Status, TaskId};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Set in the child process: the database it runs its task on.
const CHILD_DATABASE: &str = "OFFSTAGE_TEST_CHILD_DATABASE";

/// The test starts this same binary again, filtered to itself and with `CHILD_DATABASE` set,
/// as the process to kill; in that child it runs [`child`] instead. (Regression: the child's
/// body was a test of its own, which passed without testing anything when run alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_process_leaves_its_task_missing_and_a_live_one_is_left_alone() {
    if let Ok(database) = std::env::var(CHILD_DATABASE) {
        return child(&database).await;
    }
    let database = SqliteBackend.new_database();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkilled_process_leaves_its_task_missing_and_a_live_one_is_left_alone",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DATABASE, &database)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let id: TaskId = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the child exited before its task ran");
        // The harness prints "test sigkilled_process_… ... " on the same line first.
        if let Some((_, id)) = line.split_once("child task ") {
            break id.parse().unwrap();
        }
    };

    // While the child lives, another runtime on the same database leaves its task running.
    let observer = runtime_with(&SqliteBackend, &database, |b| b).await;
    assert_eq!(observer.record(id).await.unwrap().status, Status::Running);
    observer.shutdown().await.unwrap();
    drop(observer);

    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success());

    let rt = runtime_with(&SqliteBackend, &database, |b| b).await;
    let record = rt.record(id).await.unwrap();
    assert_eq!(record.status, Status::Missing);
    assert_eq!(record.error.as_ref().unwrap().kind, "missing");
    assert!(
        record.state["n"].as_u64().unwrap() >= 1,
        "the last saved state is kept"
    );
    assert!(record.finished_at.is_some());
}

/// The child process: launches a task that keeps running, says its id once a state write has
/// reached the store (the parent checks it is kept), and waits to be killed.
async fn child(database: &str) {
    let rt = runtime_with(&SqliteBackend, database, |b| b).await;
    let task = rt.launch_json("test.stubborn", json!(null)).await.unwrap();
    // A handle of its own on the file, to read what is saved rather than the live state. No
    // event says a write has reached the file, so this polls.
    let store = SqliteBackend.open(database).await;
    loop {
        let saved = store.get(task.id()).await.unwrap().unwrap();
        if saved.state.get("n").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("child task {}", task.id());
    std::future::pending::<()>().await;
}
