//! Uniqueness by key: racing launches with one task type and key, from two nodes on one
//! database, under each `on_conflict`.

use futures::future::join_all;
use serde_json::json;

use super::tasks::runtime_with;
use super::Backend;
use crate::{ErrorKind, ListFilter, OnConflict, Runtime, Status, Task};

/// Two runtimes (nodes) on one new database.
async fn two_nodes(backend: &dyn Backend) -> (Runtime, Runtime) {
    let database = backend.new_database();
    let a = runtime_with(backend, &database, |b| b).await;
    let b = runtime_with(backend, &database, |b| b).await;
    (a, b)
}

/// `n` launches of one key at once, alternating between the two nodes.
async fn race(
    a: &Runtime,
    b: &Runtime,
    n: usize,
    on_conflict: OnConflict,
) -> Vec<Result<Task, crate::Error>> {
    join_all((0..n).map(|i| {
        let rt = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            rt.launch_json("test.until_cancelled", json!(i))
                .key("report-42")
                .on_conflict(on_conflict)
                .await
        }
    }))
    .await
}

async fn live_with_key(rt: &Runtime) -> Vec<crate::TaskRecord> {
    let filter = ListFilter {
        key: Some("report-42".into()),
        ..ListFilter::default()
    };
    rt.list(&filter)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.is_running())
        .collect()
}

/// With `reject`, one of the racing launches runs and every other fails with `Conflict`,
/// naming the task that runs. Without `on_conflict`, a key is a label and duplicates run.
pub async fn racing_launches_with_a_key_reject_all_but_one(backend: &dyn Backend) {
    let (a, b) = two_nodes(backend).await;
    let results = race(&a, &b, 12, OnConflict::Reject).await;
    let launched: Vec<&Task> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(launched.len(), 1, "exactly one launch went through");
    let winner = launched[0].id();
    for error in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
        assert!(error.message().contains(&winner.to_string()), "{error}");
    }
    assert_eq!(live_with_key(&a).await.len(), 1);
    // Once it has ended, the key is free again.
    assert_eq!(launched[0].kill().await.unwrap().status, Status::Killed);
    let again = a
        .launch_json("test.echo", json!(1))
        .key("report-42")
        .on_conflict(OnConflict::Reject)
        .await
        .unwrap();
    again.wait().await.unwrap();
    // A launch without on_conflict is not held to the key.
    let first = a
        .launch_json("test.until_cancelled", json!(1))
        .key("report-42")
        .await
        .unwrap();
    let second = a
        .launch_json("test.until_cancelled", json!(2))
        .key("report-42")
        .await
        .unwrap();
    assert_eq!(live_with_key(&a).await.len(), 2);
    first.kill().await.unwrap();
    second.kill().await.unwrap();
}

/// With `existing`, every racing launch returns the same live task, and only one was launched.
pub async fn racing_launches_with_a_key_return_the_existing_task(backend: &dyn Backend) {
    let (a, b) = two_nodes(backend).await;
    let results = race(&a, &b, 12, OnConflict::Existing).await;
    let tasks: Vec<Task> = results.into_iter().map(Result::unwrap).collect();
    let id = tasks[0].id();
    assert!(tasks.iter().all(|t| t.id() == id), "one task for everyone");
    assert_eq!(tasks.iter().filter(|t| !t.is_existing()).count(), 1);
    assert_eq!(live_with_key(&b).await.len(), 1);
    tasks[0].kill().await.unwrap();
}

/// With `supersede`, each launch kills the live task before it runs: at the end exactly one
/// is live, and every other one ended `killed` (none ever ran beside another).
pub async fn racing_launches_with_a_key_supersede_leave_one_running(backend: &dyn Backend) {
    let (a, b) = two_nodes(backend).await;
    let first = a
        .launch_json("test.until_cancelled", json!("first"))
        .key("report-42")
        .on_conflict(OnConflict::Supersede)
        .await
        .unwrap();
    let results = race(&a, &b, 8, OnConflict::Supersede).await;
    let tasks: Vec<Task> = results.into_iter().map(Result::unwrap).collect();
    let live = live_with_key(&a).await;
    assert_eq!(live.len(), 1, "one live task: {live:?}");
    assert_eq!(first.wait().await.unwrap().status, Status::Killed);
    let mut killed = 0;
    for task in &tasks {
        if task.id() != live[0].id {
            assert_eq!(task.wait().await.unwrap().status, Status::Killed);
            killed += 1;
        }
    }
    assert_eq!(killed, tasks.len() - 1);
    a.kill(live[0].id).await.unwrap();
}

/// `on_conflict` without a key is refused with advice.
pub async fn on_conflict_needs_a_key(backend: &dyn Backend) {
    let (a, _b) = two_nodes(backend).await;
    let error = a
        .launch_json("test.echo", json!(1))
        .on_conflict(OnConflict::Reject)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(error.message().contains("needs a key"), "{error}");
}

/// A task type limited to one running task: 50 launches at once through two nodes on one
/// database all complete, and never do two run at the same time.
pub async fn a_concurrency_limit_of_one_holds_across_two_nodes(backend: &dyn Backend) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let database = backend.new_database();
    let node = |running: Arc<AtomicUsize>, most: Arc<AtomicUsize>| {
        runtime_with(backend, &database, move |builder| {
            builder.task_with(
                "test.one_at_a_time",
                crate::TaskTypeOptions::default().concurrency_limit(1),
                move |_ctx: crate::Context, _args: serde_json::Value| {
                    let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                    async move {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, crate::TaskError>(())
                    }
                },
            )
        })
    };
    let a = node(Arc::clone(&running), Arc::clone(&most)).await;
    let b = node(Arc::clone(&running), Arc::clone(&most)).await;
    let tasks = join_all((0..50).map(|i| {
        let rt = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            rt.launch_json("test.one_at_a_time", json!(i))
                .await
                .unwrap()
        }
    }))
    .await;
    for task in &tasks {
        assert_eq!(task.wait().await.unwrap().status, Status::Completed);
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two at once");
}

/// Keys, owners and names follow one rule on every store (`crate::limits`): a NUL, or any
/// control character, and text over the limit are `InvalidArgument` with the limit in the
/// message, at launch and in list filters, before the store sees them. PostgreSQL refused a
/// NUL in `text` with an error that reached HTTP clients as a 500, where SQLite stored it.
/// Text at the limit is kept whole.
pub async fn bad_keys_owners_and_names_are_refused_alike(backend: &dyn Backend) {
    let (rt, _) = super::runtime(backend).await;
    let refused = |result: Result<(), crate::Error>, what: &str| {
        let error = result.expect_err(what);
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{what}: {error}");
        assert!(error.message().contains("at most"), "{what}: {error}");
    };
    let launch = |key: Option<String>, owner: Option<String>| {
        let rt = rt.clone();
        async move {
            let mut launch = rt.launch_json("test.echo", json!(1));
            if let Some(key) = key {
                launch = launch.key(key);
            }
            if let Some(owner) = owner {
                launch = launch.owner(owner);
            }
            launch.await.map(drop)
        }
    };
    refused(launch(Some("a\0b".into()), None).await, "NUL in a key");
    refused(launch(None, Some("a\0b".into())).await, "NUL in an owner");
    refused(
        launch(Some("line\nbreak".into()), None).await,
        "newline in a key",
    );
    refused(
        launch(Some("k".repeat(100_000)), None).await,
        "100,000-character key",
    );
    refused(
        launch(None, Some("o".repeat(crate::limits::MAX_OWNER_CHARS + 1))).await,
        "owner over the limit",
    );
    refused(
        rt.launch_json(&"n".repeat(100_000), json!(1))
            .await
            .map(drop),
        "100,000-character task type name",
    );
    refused(
        rt.launch_json("test.echo\0", json!(1)).await.map(drop),
        "NUL in a task type name",
    );
    for filter in [
        ListFilter {
            owner: Some("\0".into()),
            ..ListFilter::default()
        },
        ListFilter {
            key: Some("\0".into()),
            ..ListFilter::default()
        },
        ListFilter {
            name: Some("\0".into()),
            ..ListFilter::default()
        },
    ] {
        refused(rt.list(&filter).await.map(drop), "NUL in a list filter");
    }
    assert!(
        rt.list(&ListFilter::default()).await.unwrap().is_empty(),
        "nothing was stored"
    );
    // At the limit, in characters (not bytes), both stores keep the text whole.
    let key = "é".repeat(crate::limits::MAX_KEY_CHARS);
    let owner = "ö".repeat(crate::limits::MAX_OWNER_CHARS);
    let task = rt
        .launch_json("test.echo", json!(1))
        .key(key.clone())
        .owner(owner.clone())
        .await
        .unwrap();
    task.wait().await.unwrap();
    let filter = ListFilter {
        key: Some(key.clone()),
        owner: Some(owner.clone()),
        ..ListFilter::default()
    };
    let found = rt.list(&filter).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].key.as_ref(), found[0].owner.as_ref()),
        (Some(&key), Some(&owner))
    );
}
