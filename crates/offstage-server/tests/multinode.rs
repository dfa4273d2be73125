//! Three real `offstage serve` processes on one PostgreSQL database: work spreads across them,
//! kills and live events cross between them, and a SIGKILLed node's tasks read `missing`.
//!
//! Runs when `OFFSTAGE_TEST_POSTGRES` names a database (each test takes a schema of its own);
//! without it at build time every test is ignored, with the reason (`build.rs`).

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;

use offstage::store::postgres::PostgresStore;
use offstage::store::Store;
use offstage::testing::conformance::{Backend, PostgresBackend};
use offstage::{ListFilter, Status};
use serde_json::{json, Value};

use common::{Api, Server as Node, Sse, BIN};

/// How long a node may be silent before the others declare it dead, in the test that kills
/// one. (The other keeps the default 10 s, so a node starved of CPU under load is not taken for
/// dead.)
const NODE_TIMEOUT_S: f64 = 3.0;

/// An `offstage serve --demo` node with a short heartbeat.
fn node(db: &str, node_timeout_s: f64) -> Node {
    Node::start(
        db,
        &[
            "--heartbeat-s",
            "0.2",
            "--node-timeout-s",
            &node_timeout_s.to_string(),
        ],
    )
}

/// A new schema on the test database, migrated by `offstage migrate`, and three nodes on it.
fn cluster(node_timeout_s: f64) -> (String, [Node; 3]) {
    let backend = PostgresBackend::from_env();
    let db = backend.new_database();
    let migrated = Command::new(BIN)
        .args(["migrate", "--db", &db])
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "offstage migrate: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("migrated from schema version 0"));
    let start = || node(&db, node_timeout_s);
    let nodes = [start(), start(), start()];
    (db, nodes)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn launch(http: &reqwest::Client, node: &Node, name: &str, args: Value) -> String {
    let response = http
        .post(format!("{}/api/tasks", node.url))
        .json(&json!({ "name": name, "args": args }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let task: Value = response.json().await.unwrap();
    task["id"].as_str().unwrap().to_owned()
}

async fn show(http: &reqwest::Client, node: &Node, id: &str) -> Value {
    http.get(format!("{}/api/tasks/{id}", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[test]
fn ten_thousand_tasks_across_three_nodes_each_end_once() {
    let (db, nodes) = cluster(10.0);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let launches = futures::stream::iter(0..10_000u32)
            .map(|i| {
                let (http, node) = (http.clone(), &nodes[i as usize % 3]);
                async move {
                    (
                        launch(&http, node, "demo.echo", json!({ "value": i })).await,
                        i,
                    )
                }
            })
            .buffer_unordered(48)
            .collect::<Vec<_>>()
            .await;
        let expected: HashMap<String, u32> = launches.into_iter().collect();

        // The store is the witness: every task, read straight from the database.
        let store = PostgresStore::open(&db).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let counts = store.counts().await.unwrap();
            let completed: u64 = counts
                .iter()
                .filter(|(_, status, _)| *status == Status::Completed)
                .map(|(_, _, n)| n)
                .sum();
            let ended_otherwise = counts
                .iter()
                .any(|(_, status, _)| status.is_terminal() && *status != Status::Completed);
            assert!(!ended_otherwise, "some tasks did not complete: {counts:?}");
            if completed == 10_000 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {completed} of 10,000 completed within 120 s: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut seen = 0;
        let mut by_node = HashMap::new();
        let mut filter = ListFilter {
            limit: Some(ListFilter::MAX_LIMIT),
            ..ListFilter::default()
        };
        loop {
            let page = store.list(&filter).await.unwrap();
            let Some(last) = page.last() else { break };
            filter.before = Some(last.id);
            for record in &page {
                let i = expected[&record.id.to_string()];
                assert_eq!(record.status, Status::Completed);
                assert_eq!(record.attempt, 1, "task {} ran more than once", record.id);
                assert_eq!(record.return_value, Some(json!(i)));
                *by_node.entry(record.node.unwrap()).or_insert(0) += 1;
                seen += 1;
            }
        }
        assert_eq!(seen, 10_000);
        assert_eq!(by_node.len(), 3, "every node ran some: {by_node:?}");
    });
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[test]
fn kills_and_live_events_cross_nodes_and_a_killed_node_tasks_read_missing() {
    let (_db, [a, b, mut c]) = cluster(NODE_TIMEOUT_S);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let limit = Duration::from_secs(15);

        // A kill sent to node A stops a task running on node C.
        let sleeper = launch(&http, &c, "demo.sleep", json!({ "seconds": 600 })).await;
        let mut on_a = Sse::open(
            &Api::new(&a, None),
            &format!("/api/tasks/{sleeper}/events"),
            None,
        )
        .await;
        let response = http
            .post(format!("{}/api/tasks/{sleeper}/kill", a.url))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let (_, finished) = on_a.wait_for(limit, |kind, _| kind == "finished").await;
        assert_eq!(finished["task"]["status"], "killed");
        assert_eq!(show(&http, &c, &sleeper).await["status"], "killed");

        // SSE on node B streams, live, a task running on node C.
        let counter = launch(
            &http,
            &c,
            "demo.count",
            json!({ "to": 5, "interval_ms": 300 }),
        )
        .await;
        let mut on_b = Sse::open(
            &Api::new(&b, None),
            &format!("/api/tasks/{counter}/events"),
            None,
        )
        .await;
        let mut done = Vec::new();
        loop {
            let (kind, data) = on_b.wait_for(limit, |_, _| true).await;
            match kind.as_str() {
                "state" => done.push(data["state"]["done"].as_u64().unwrap()),
                "finished" => {
                    assert_eq!(data["task"]["status"], "completed");
                    break;
                }
                _ => {}
            }
        }
        assert!(
            done.len() >= 4 && done.last() == Some(&5),
            "states seen on B: {done:?}"
        );

        // SIGKILL node C mid-run: its running tasks read `missing` within the node timeout,
        // and nothing else is lost.
        let mut all_on_a = Sse::open(&Api::new(&a, None), "/api/events", None).await;
        let mut on_c = HashSet::new();
        for _ in 0..4 {
            on_c.insert(launch(&http, &c, "demo.sleep", json!({ "seconds": 600 })).await);
        }
        let mut elsewhere = Vec::new();
        for node in [&a, &b] {
            elsewhere.push(launch(&http, node, "demo.sleep", json!({ "seconds": 600 })).await);
        }
        let mut started: HashSet<String> = HashSet::new();
        while started.len() < 6 {
            let (_, data) = all_on_a.wait_for(limit, |kind, _| kind == "started").await;
            started.insert(data["task_id"].as_str().unwrap().to_owned());
        }
        c.child.kill().unwrap();
        c.child.wait().unwrap();
        let killed_at = tokio::time::Instant::now();
        let mut missing = HashSet::new();
        while missing.len() < on_c.len() {
            let window = Duration::from_secs_f64(NODE_TIMEOUT_S + 3.0);
            let (_, data) = all_on_a
                .wait_for(window, |kind, data| {
                    kind == "finished" && data["task"]["status"] == "missing"
                })
                .await;
            let id = data["task_id"].as_str().unwrap().to_owned();
            assert!(on_c.contains(&id), "a task not on C went missing: {data}");
            missing.insert(id);
        }
        assert!(killed_at.elapsed() < Duration::from_secs_f64(NODE_TIMEOUT_S + 3.0));
        for id in &on_c {
            let record = show(&http, &a, id).await;
            assert_eq!(record["status"], "missing");
            assert_eq!(record["error"]["kind"], "missing");
        }
        for (id, node) in elsewhere.iter().zip([&a, &b]) {
            assert_eq!(show(&http, node, id).await["status"], "running", "{id}");
        }
        // The survivors still take work, and still stop theirs when told.
        let echo = launch(&http, &b, "demo.echo", json!({ "value": "after" })).await;
        // A finished task's stream is its `finished` event, so this never misses the end.
        let mut echo_events = Sse::open(
            &Api::new(&a, None),
            &format!("/api/tasks/{echo}/events"),
            None,
        )
        .await;
        echo_events
            .wait_for(limit, |kind, _| kind == "finished")
            .await;
        assert_eq!(show(&http, &a, &echo).await["return_value"], "after");
        for id in &elsewhere {
            let response = http
                .post(format!("{}/api/tasks/{id}/kill", b.url))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
    });
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[test]
fn a_schedule_ticks_once_per_tick_across_three_nodes() {
    let (db, nodes) = cluster(10.0);
    let [a, b, c] = &nodes;
    runtime().block_on(async {
        let mut launched_on_b = Sse::open(&Api::new(b, None), "/api/events", None).await;
        let (status, record) = common::call(
            &Api::new(a, None),
            reqwest::Method::PUT,
            "/api/schedules/tick",
            Some(r#"{"cron": "* * * * * *", "task": "demo.echo", "args": {"value": "tick"}}"#),
        )
        .await;
        assert_eq!(status, 200, "{record}");
        // Five ticks, each launched by whichever node took it, each seen live on B.
        for _ in 0..5 {
            launched_on_b
                .wait_for(Duration::from_secs(30), |kind, data| {
                    kind == "launched" && data["task"]["name"] == "demo.echo"
                })
                .await;
        }
        let (status, paused) = common::call(
            &Api::new(c, None),
            reqwest::Method::POST,
            "/api/schedules/tick/pause",
            None,
        )
        .await;
        assert_eq!(
            (status.as_u16(), paused["paused"].as_bool()),
            (200, Some(true))
        );

        let store = PostgresStore::open(&db).await.unwrap();
        let filter = ListFilter {
            name: Some("demo.echo".into()),
            limit: Some(1_000),
            ..ListFilter::default()
        };
        let tasks = store.list(&filter).await.unwrap();
        let ticks: HashSet<_> = tasks.iter().map(|t| t.run_at).collect();
        assert!(tasks.len() >= 5, "{tasks:?}");
        assert_eq!(ticks.len(), tasks.len(), "a tick launched twice: {tasks:?}");
        assert!(ticks.iter().all(|t| t.timestamp_subsec_micros() == 0));
    });
}
