//! `offstage migrate --from --to`: a SQLite file filled through the real runtime (tasks in every
//! status, with logs, state, checkpoints, return values, errors, keys, owners, a parent and
//! its child, a pending signal, a schedule, a shared document, a limiter, a paused type, the
//! stats, and a task left `running` by a SIGKILLed server) is copied by the real `offstage`
//! binary, and the target, opened with the library, reads the same.
//!
//! SQLite → SQLite runs everywhere, with the refusals (a live source, a non-empty target, a
//! missing source). SQLite → PostgreSQL → SQLite, the resumed copy after a SIGKILL and a server
//! on the copied database run when `OFFSTAGE_TEST_POSTGRES` names a database, each in a schema
//! of its own; without it at build time they are ignored, with the reason.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{stderr, stdout, Api, Server, BIN};
use futures::StreamExt;
use offstage::store::Store;
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::{
    Context, Limit, ListFilter, LogLevel, Retention, Runtime, Schedule, TaskError, TaskId,
};
use serde_json::{json, Value};

/// `offstage migrate` with `args`.
fn migrate(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("migrate")
        .args(args)
        .output()
        .unwrap()
}

/// What [`fill`] left in the source, to look for in the target.
struct Filled {
    completed: TaskId,
    running: String,
}

/// Fills the SQLite file `db`: the runtime's part, then a `running` task whose server is
/// SIGKILLed (with the refusal of a copy while that server lives, when `refused_while_live`
/// names a target to try).
async fn fill(db: &str, refused_while_live: Option<&str>) -> Filled {
    let rt = Runtime::builder()
        .database(db)
        .retention(Retention::forever())
        .task("m.ok", |ctx: Context, args: Value| async move {
            ctx.log("first line");
            ctx.log_at(LogLevel::Warn, "second line");
            ctx.set_state(&json!({ "done": 3, "total": 3 }))
                .map_err(|e| TaskError::new("state", e.to_string()))?;
            ctx.save_checkpoint(&json!({ "at": 3 }))
                .await
                .map_err(|e| TaskError::new("checkpoint", e.to_string()))?;
            Ok::<_, TaskError>(json!({ "echo": args }))
        })
        .task("m.fail", |ctx: Context, _args: Value| async move {
            ctx.log("about to fail");
            Err::<(), _>(TaskError::new("boom", "failed on purpose"))
        })
        .task("m.slow", |ctx: Context, _args: Value| async move {
            ctx.log("waiting to be killed");
            ctx.cancelled().await;
            Ok::<_, TaskError>(())
        })
        .task("m.parent", |ctx: Context, _args: Value| async move {
            let child = ctx
                .launch_json("m.ok", json!("child"))
                .await
                .map_err(|e| TaskError::new("launch", e.to_string()))?;
            ctx.wait(&child).await?;
            Ok::<_, TaskError>(json!("parent done"))
        })
        .task("m.later", |_ctx: Context, _args: Value| async move {
            Ok::<_, TaskError>(())
        })
        .task("m.stuck", |_ctx: Context, _args: Value| async move {
            // Deaf to the shutdown: it goes missing when the drain ends.
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok::<_, TaskError>(())
        })
        .shutdown_drain(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let mut events = rt.events();
    let completed = rt
        .launch_json("m.ok", json!({ "n": 1 }))
        .key("the-key")
        .owner("alice")
        .trace_parent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .await
        .unwrap();
    completed.wait().await.unwrap();
    let failed = rt.launch_json("m.fail", json!({})).await.unwrap();
    assert_eq!(
        failed.wait().await.unwrap().status,
        offstage::Status::Failed
    );
    let slow = rt.launch_json("m.slow", json!({})).await.unwrap();
    offstage::testing::wait_started(&mut events, slow.id()).await;
    slow.kill().await.unwrap();
    let parent = rt.launch_json("m.parent", json!({})).await.unwrap();
    parent.wait().await.unwrap();
    let later = rt
        .launch_json("m.later", json!({ "when": "later" }))
        .delay(Duration::from_secs(3_600))
        .priority(5)
        .await
        .unwrap();
    rt.signal(later.id(), "go", &json!({ "please": true }))
        .await
        .unwrap();
    rt.put_schedule(Schedule::new("nightly", "0 3 * * *", "m.ok").args(json!({ "n": 2 })))
        .await
        .unwrap();
    let mut doc = rt.shared("settings").unwrap().lock().await.unwrap();
    doc.set(&json!({ "mode": "fast" })).unwrap();
    doc.save().await.unwrap();
    rt.put_limiter("api", Limit::holders(3)).await.unwrap();
    rt.pause_task_type("m.later", false).await.unwrap();
    let stuck = rt.launch_json("m.stuck", json!({})).await.unwrap();
    offstage::testing::wait_started(&mut events, stuck.id()).await;
    rt.shutdown().await.unwrap();

    // A task left running: its server is SIGKILLed mid-task.
    let mut server = Server::start(db, &[]);
    let api = Api::new(&server, None);
    let running = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
        .await;
    api.until(&running, |kind, _| kind == "started").await;
    if let Some(target) = refused_while_live {
        let output = migrate(&["--from", db, "--to", target]);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        let said = stderr(&output);
        assert!(said.contains("running node"), "{said}");
        assert!(said.contains("--force"), "{said}");
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    Filled {
        completed: completed.id(),
        running,
    }
}

/// Every task of `store`, newest first, page by page.
async fn all_tasks(store: &dyn Store) -> Vec<Value> {
    let mut tasks = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(&ListFilter {
                before,
                limit: Some(1_000),
                ..ListFilter::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return tasks;
        };
        before = Some(last.id);
        tasks.extend(page.iter().map(|t| serde_json::to_value(t).unwrap()));
    }
}

/// Everything a copy keeps, read through the store: tasks, each one's log and signals (without
/// their numbers, which the target gives anew), schedules, shared documents, limiters, paused
/// types and the counts.
async fn contents(store: &dyn Store) -> Value {
    let tasks = all_tasks(store).await;
    let mut logs = Vec::new();
    let mut signals = Vec::new();
    for task in &tasks {
        let id: TaskId = task["id"].as_str().unwrap().parse().unwrap();
        let lines = store.logs(id, 0, 10_000).await.unwrap();
        logs.push(serde_json::to_value(lines).unwrap());
        let mut sent = serde_json::to_value(store.signals(id, 100).await.unwrap()).unwrap();
        for signal in sent.as_array_mut().unwrap() {
            signal.as_object_mut().unwrap().remove("seq");
        }
        signals.push(sent);
    }
    let now = chrono::Utc::now();
    json!({
        "tasks": tasks,
        "logs": logs,
        "signals": signals,
        "schedules": serde_json::to_value(store.schedules().await.unwrap()).unwrap(),
        "shared": serde_json::to_value(store.shared_list().await.unwrap()).unwrap(),
        "limiters": serde_json::to_value(store.limiters(now).await.unwrap()).unwrap(),
        "paused": serde_json::to_value(store.paused_task_types().await.unwrap()).unwrap(),
        "counts": serde_json::to_value(store.counts().await.unwrap()).unwrap(),
    })
}

/// Checks that `copied` holds what `source` does, and that the source had what [`fill`] put
/// in it.
async fn assert_same(source: &dyn Store, copied: &dyn Store, filled: &Filled) {
    let (source, copied) = (contents(source).await, contents(copied).await);
    let tasks = source["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 8, "{source:#}");
    for status in [
        "completed",
        "failed",
        "killed",
        "queued",
        "running",
        "missing",
    ] {
        assert!(
            tasks.iter().any(|t| t["status"] == status),
            "no {status} task in {source:#}"
        );
    }
    let completed = tasks
        .iter()
        .find(|t| t["id"] == filled.completed.to_string())
        .unwrap();
    assert_eq!(completed["return_value"], json!({ "echo": { "n": 1 } }));
    assert_eq!(completed["owner"], "alice");
    assert_eq!(completed["checkpoint"], json!({ "at": 3 }));
    assert!(source["signals"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s.as_array().is_some_and(|s| !s.is_empty())));
    assert_eq!(source["schedules"].as_array().unwrap().len(), 1);
    assert_eq!(source["shared"].as_array().unwrap().len(), 1);
    assert_eq!(source["limiters"].as_array().unwrap().len(), 1);
    assert_eq!(source["paused"].as_array().unwrap().len(), 1);
    for part in [
        "tasks",
        "logs",
        "signals",
        "schedules",
        "shared",
        "limiters",
        "paused",
        "counts",
    ] {
        assert_eq!(copied[part], source[part], "{part} differ");
    }
}

/// The count check's table in `offstage migrate`'s output: each table's copied count.
fn copied_counts(output: &Output) -> Vec<(String, u64, u64)> {
    let text = stdout(output);
    text.lines()
        .skip_while(|line| !line.starts_with("TABLE"))
        .skip(1)
        .filter_map(|line| {
            let mut cells = line.split_whitespace();
            let table = cells.next()?.to_owned();
            let source = cells.next()?.parse().ok()?;
            let copied = cells.next()?.parse().ok()?;
            Some((table, source, copied))
        })
        .collect()
}

fn assert_copied(output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(output),
        stderr(output)
    );
    let counts = copied_counts(output);
    assert_eq!(counts.len(), 9, "{}", stdout(output));
    for (table, source, copied) in counts {
        assert_eq!(source, copied, "{table}");
    }
    assert!(stdout(output).contains("done: every count matches"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_sqlite_copies_everything_and_refuses_what_it_should() {
    let source = SqliteBackend.new_database();
    let target = SqliteBackend.new_database();
    let filled = fill(&source, Some(&target)).await;

    let missing = format!("{source}.absent");
    let output = migrate(&["--from", &missing, "--to", &target]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no such file"),
        "{}",
        stderr(&output)
    );
    let output = migrate(&["--from", &source, "--to", &format!("sqlite:{source}")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("the same database"),
        "{}",
        stderr(&output)
    );

    let output = migrate(&["--from", &format!("sqlite:{source}"), "--to", &target]);
    assert_copied(&output);
    // Off a terminal, the progress is plain lines.
    assert!(
        stdout(&output).contains("tasks: 8/8 copied"),
        "{}",
        stdout(&output)
    );
    let from = SqliteBackend.open(&source).await;
    let to = SqliteBackend.open(&target).await;
    assert_same(&*from, &*to, &filled).await;

    let again = migrate(&["--from", &source, "--to", &target]);
    assert_eq!(again.status.code(), Some(1));
    let said = stderr(&again);
    assert!(
        said.contains("is not empty") && said.contains("8 tasks"),
        "{said}"
    );
    assert!(said.contains("--into-non-empty"), "{said}");
    // Told to, it adds nothing twice: every row is there already, so the check fails loudly.
    let into = migrate(&["--from", &source, "--to", &target, "--into-non-empty"]);
    assert_eq!(into.status.code(), Some(1), "{}", stdout(&into));
    assert!(
        stderr(&into).contains("tasks: 8 in the source, 0 copied"),
        "{}",
        stderr(&into)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
async fn sqlite_to_postgres_and_back_reads_the_same_and_serves() {
    use offstage::testing::conformance::PostgresBackend;
    let postgres = PostgresBackend::from_env();
    let source = SqliteBackend.new_database();
    let filled = fill(&source, None).await;
    let target = postgres.new_database();

    let output = migrate(&["--from", &format!("sqlite:{source}"), "--to", &target]);
    assert_copied(&output);
    let from = SqliteBackend.open(&source).await;
    let to = postgres.open(&target).await;
    assert_same(&*from, &*to, &filled).await;

    // And back: PostgreSQL into a new SQLite file.
    let back = SqliteBackend.new_database();
    let output = migrate(&["--from", &target, "--to", &back]);
    assert_copied(&output);
    let home = SqliteBackend.open(&back).await;
    assert_same(&*from, &*home, &filled).await;
    drop((from, to, home));

    let again = migrate(&["--from", &source, "--to", &target]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("is not empty"),
        "{}",
        stderr(&again)
    );

    // A server on the copy serves the tasks; the one left running went missing with its node.
    let server = Server::start(&target, &[]);
    let api = Api::new(&server, None);
    let task = api.get(&format!("/api/tasks/{}", filled.completed)).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["return_value"], json!({ "echo": { "n": 1 } }));
    let lines = api
        .get(&format!("/api/tasks/{}/logs", filled.completed))
        .await;
    let messages: Vec<&str> = lines["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["first line", "second line"]);
    let running = api.get(&format!("/api/tasks/{}", filled.running)).await;
    assert_eq!(running["status"], "missing", "{running}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
async fn a_copy_killed_midway_finishes_when_run_again() {
    use offstage::testing::conformance::PostgresBackend;
    const TASKS: u64 = 50_000;
    let postgres = PostgresBackend::from_env();
    let source = SqliteBackend.new_database();
    let rt = Runtime::builder()
        .database(&source)
        .task("m.later", |_ctx: Context, _args: Value| async move {
            Ok::<_, TaskError>(())
        })
        .build()
        .await
        .unwrap();
    futures::stream::iter(0..TASKS)
        .map(|i| {
            let rt = rt.clone();
            async move {
                rt.launch_json("m.later", json!(i))
                    .delay(Duration::from_secs(3_600))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(1_000)
        .for_each(|()| async {})
        .await;
    rt.shutdown().await.unwrap();
    let target = postgres.new_database();

    // Killed once the copy of the tasks is under way.
    let mut copy = Command::new(BIN)
        .args([
            "migrate", "--from", &source, "--to", &target, "--batch", "500",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(copy.stdout.take().unwrap());
    for line in lines.lines() {
        let line = line.unwrap();
        let copied = line
            .strip_prefix("tasks: ")
            .and_then(|rest| rest.split('/').next())
            .and_then(|n| n.parse::<u64>().ok());
        if copied.is_some_and(|n| n > 0) {
            break;
        }
    }
    copy.kill().unwrap();
    copy.wait().unwrap();
    let store = postgres.open(&target).await;
    let halfway = store.count(&ListFilter::default()).await.unwrap();
    assert!(halfway > 0 && halfway < TASKS, "{halfway} copied");
    drop(store);

    // Another source cannot use the half-done target.
    let other = SqliteBackend.new_database();
    offstage::store::sqlite::SqliteStore::open(&other)
        .await
        .unwrap();
    let refused = migrate(&["--from", &other, "--to", &target]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("holds an unfinished copy from"),
        "{}",
        stderr(&refused)
    );

    // Nor can the half-done target be copied from.
    let onward = SqliteBackend.new_database();
    let refused = migrate(&["--from", &target, "--to", &onward]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("is itself an unfinished copy"),
        "{}",
        stderr(&refused)
    );

    // The same command again finishes it, with no task twice.
    let output = migrate(&["--from", &source, "--to", &target]);
    assert_copied(&output);
    assert!(
        stdout(&output).contains("resuming the unfinished copy"),
        "{}",
        stdout(&output)
    );
    let store: Arc<dyn Store> = postgres.open(&target).await;
    assert_eq!(store.count(&ListFilter::default()).await.unwrap(), TASKS);
    let counted: u64 = store.counts().await.unwrap().iter().map(|c| c.2).sum();
    assert_eq!(counted, TASKS);
}
