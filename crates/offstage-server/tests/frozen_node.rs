//! A node that is frozen (SIGSTOP) past the node timeout and then resumed (SIGCONT): the other
//! node declares it dead and marks its tasks `missing`; the resumed node can no longer change
//! them, stops them, starts nothing under its old id, and rejoins as a new node whose tasks are
//! recovered like any other's when it is SIGKILLed afterwards.
//!
//! Two real `offstage serve` processes: on one PostgreSQL database when `OFFSTAGE_TEST_POSTGRES`
//! is set (ignored, with the reason, otherwise), and on one SQLite file (always).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use offstage::testing::conformance::{Backend, PostgresBackend, SqliteBackend};
use serde_json::{json, Value};

use common::{Api, Server, BIN};

/// `offstage serve --demo` with a short heartbeat and node timeout, its log in a file.
fn node(db: &str, log: &PathBuf) -> Server {
    Server::start_logging(
        db,
        "127.0.0.1:0",
        &["--demo", "--heartbeat-s", "0.5", "--node-timeout-s", "2"],
        std::fs::File::create(log).unwrap(),
    )
}

fn signal(server: &Server, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// Reads `path` from `api` until `done` accepts it, for at most `limit` (a process-level outcome
/// with no event of its own to wait on: a frozen process sends none).
async fn poll(api: &Api, path: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let value = api.get(path).await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} after {limit:?}: {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn logs(api: &Api, id: &str) -> Value {
    api.get(&format!("/api/tasks/{id}/logs")).await
}

fn frozen_then_resumed(db: &str) {
    let dir = std::env::temp_dir().join(format!("offstage-frozen-{}", offstage::TaskId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log_a, log_b) = (dir.join("a.log"), dir.join("b.log"));
    let a = node(db, &log_a);
    let b = node(db, &log_b);
    let (api_a, api_b) = (Api::new(&a, None), Api::new(&b, None));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            // Three long counting tasks, started on A (a launch there starts there). They
            // count slowly: on SQLite a node frozen in the middle of a commit holds the file's
            // write lock, and B cannot mark anything until it resumes, so the fewer commits A
            // makes, the less often the freeze lands inside one (a limit of one shared file).
            let mut lost = Vec::new();
            for _ in 0..3 {
                let id = api_a
                    .launch(
                        json!({"name": "demo.count", "args": {"to": 100000, "interval_ms": 500}}),
                    )
                    .await;
                api_a
                    .until(&id, |kind, event| {
                        kind == "state" && event["state"]["done"].as_u64() >= Some(2)
                    })
                    .await;
                lost.push(id);
            }
            let first = api_a.get(&format!("/api/tasks/{}", lost[0])).await;
            let old_node = first["node"].as_str().unwrap().to_owned();

            // Freeze A past the node timeout: B declares it dead.
            freeze_between_commits(&a, &api_b, &old_node).await;
            let mut recorded = Vec::new();
            for id in &lost {
                let task = poll(
                    &api_b,
                    &format!("/api/tasks/{id}"),
                    Duration::from_secs(20),
                    |t| t["status"] == "missing",
                )
                .await;
                recorded.push((task, logs(&api_b, id).await));
            }

            // Resume it. A launch on it at once is not started under its dead id.
            signal(&a, "CONT");
            let echo = api_a
                .launch(json!({"name": "demo.echo", "args": {"value": 7}}))
                .await;
            let echoed = api_a.finished(&echo).await;
            assert_eq!(echoed["status"], "completed", "{echoed}");
            assert_ne!(echoed["node"].as_str(), Some(old_node.as_str()), "{echoed}");

            // A said what happened, and rejoined.
            let said = poll_file(&log_a, "declared dead", 1, Duration::from_secs(10)).await;
            assert!(said.contains("rejoin"), "{said}");

            // Its lost tasks, which it went on running for a moment, are stopped (each says so in
            // its log) and nothing they did after recovery reached the store.
            poll_file(
                &log_a,
                "no longer owns",
                lost.len(),
                Duration::from_secs(15),
            )
            .await;
            for (id, (task, lines)) in lost.iter().zip(&recorded) {
                assert_eq!(&api_b.get(&format!("/api/tasks/{id}")).await, task);
                assert_eq!(&logs(&api_b, id).await, lines);
                assert_eq!(&api_a.get(&format!("/api/tasks/{id}")).await, task);
            }

            // Work started by the rejoined node is recovered like any other's when it dies.
            let sleeper = api_a
                .launch(json!({"name": "demo.sleep", "args": {"seconds": 600}}))
                .await;
            api_a.until(&sleeper, |kind, _| kind == "started").await;
            let mut a = a;
            a.child.kill().unwrap();
            a.child.wait().unwrap();
            let ended = poll(
                &api_b,
                &format!("/api/tasks/{sleeper}"),
                Duration::from_secs(20),
                |t| t["status"] == "missing",
            )
            .await;
            assert_eq!(ended["error"]["kind"], "missing", "{ended}");
            let running = api_b.get("/api/tasks?status=running").await;
            assert_eq!(running["tasks"], json!([]), "{running}");
        });
    drop(b);
    let _ = std::fs::remove_dir_all(dir);
}

/// Freezes node `a` (id `a_id`) at a moment it holds no write lock, as B's heartbeats show. On
/// SQLite a node frozen inside a commit holds the file's write lock, and no other node writes
/// anything until it resumes (one shared file's limit: docs/many-nodes.md runs many nodes on
/// PostgreSQL); freezing it again a moment later lands between commits. On PostgreSQL the
/// first freeze always does.
async fn freeze_between_commits(a: &Server, api_b: &Api, a_id: &str) {
    let b_heartbeat = || async {
        let nodes = api_b.get("/api/nodes").await;
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|node| node["id"] != a_id)
            .map(|node| node["heartbeat_at"].clone())
            .unwrap()
    };
    for _ in 0..5 {
        signal(a, "STOP");
        let before = b_heartbeat().await;
        // Three of B's heartbeats (0.5 s), and under the node timeout (2 s): a retry does not
        // leave A silent long enough to be declared dead by it.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
        while tokio::time::Instant::now() < deadline {
            if b_heartbeat().await != before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // B could not write: A stopped inside a commit. Let it finish that commit (a moment;
        // nothing outside the process shows when), and freeze it again.
        signal(a, "CONT");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("node B could not write while A was frozen, five times in a row");
}

/// Reads the log file at `path` until it has `count` lines containing `needle`; the first.
async fn poll_file(path: &PathBuf, needle: &str, count: usize, limit: Duration) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let found: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
        if found.len() >= count {
            return found[0].to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{needle}` in {}:\n{text}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[test]
fn a_frozen_then_resumed_node_on_postgres_cannot_change_what_it_lost() {
    let backend = PostgresBackend::from_env();
    let db = backend.new_database();
    let migrated = Command::new(BIN)
        .args(["migrate", "--db", &db])
        .output()
        .unwrap();
    assert!(migrated.status.success());
    frozen_then_resumed(&db);
}

#[test]
fn a_frozen_then_resumed_node_on_sqlite_cannot_change_what_it_lost() {
    frozen_then_resumed(&SqliteBackend.new_database());
}
