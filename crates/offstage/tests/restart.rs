//! Restart recovery with real processes: a child process runs a task and is killed with
//! SIGKILL mid-task; a runtime opening the database afterwards finds the task `missing`, while
//! one opening it as long as the child lives leaves the task alone.

use std::process::Stdio;
use std::time::Duration;

use offstage::testing::conformance::{runtime_with, Backend, SqliteBackend};
use offstage::{Status, TaskId};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const CHILD_DATABASE: &str = "OFFSTAGE_TEST_CHILD_DATABASE";

/// Not a test on its own: the body of the child process, which runs only when the parent test
/// starts this binary with `CHILD_DATABASE` set.
#[tokio::test]
async fn restart_child_process() {
    let Ok(database) = std::env::var(CHILD_DATABASE) else {
        return;
    };
    let rt = runtime_with(&SqliteBackend, &database, |b| b).await;
    let task = rt.launch_json("test.stubborn", json!(null)).await.unwrap();
    // Wait until a state write has reached the store, as the parent will check it.
    let store = offstage::store::sqlite::SqliteStore::open(&database)
        .await
        .unwrap();
    loop {
        let saved = offstage::store::Store::get(&store, task.id())
            .await
            .unwrap()
            .unwrap();
        if saved.state.get("n").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("child task {}", task.id());
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_process_leaves_its_task_missing_and_a_live_one_is_left_alone() {
    let database = SqliteBackend.new_database();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "restart_child_process",
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
        // The harness prints "test restart_child_process ... " on the same line first.
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
