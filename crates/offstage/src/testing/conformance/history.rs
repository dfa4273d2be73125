//! History at scale: task counts kept exact by every write, purges in short steps, retention,
//! and the turns nodes take at shared periodic work.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use serde_json::{json, Value};

use super::durability::{dead_node, running_record};
use super::tasks::{runtime_with, start_blocker};
use super::Backend;
use crate::store::Purge;
use crate::{
    Context, ErrorKind, ListFilter, Retention, Retry, Runtime, Status, TaskError, TaskTypeOptions,
};

/// Every task in the store, by listing them page by page: the truth the counts must match.
async fn counted_by_listing(rt: &Runtime) -> Vec<(String, Status, u64)> {
    let mut counts: BTreeMap<(String, &'static str), (Status, u64)> = BTreeMap::new();
    let mut filter = ListFilter {
        limit: Some(ListFilter::MAX_LIMIT),
        ..ListFilter::default()
    };
    loop {
        let page = rt.list(&filter).await.unwrap();
        for task in &page {
            counts
                .entry((task.name.clone(), task.status.as_str()))
                .or_insert((task.status, 0))
                .1 += 1;
        }
        match page.last() {
            Some(last) if page.len() == ListFilter::MAX_LIMIT => filter.before = Some(last.id),
            _ => break,
        }
    }
    counts
        .into_iter()
        .map(|((name, _), (status, n))| (name, status, n))
        .collect()
}

/// `rt.counts()` is what listing every task finds, before and after the store's housekeeping.
async fn assert_counts_exact(rt: &Runtime, when: &str) {
    let truth = counted_by_listing(rt).await;
    assert_eq!(rt.counts().await.unwrap(), truth, "counts {when}");
    rt.store().tidy().await.unwrap();
    assert_eq!(
        rt.counts().await.unwrap(),
        truth,
        "counts {when}, after tidying"
    );
}

/// The counts by type and status stay exact through every way a task is inserted, moved and
/// deleted: launches (queued and started at once), keyed launches, claims, completions,
/// failures, retries, kills of queued and running tasks, recovery of a dead node's tasks (to
/// `missing`, and queued again by a retry policy), purges; and across reopening the store.
pub async fn counts_are_exact_through_every_step(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let (dead, long_ago) = dead_node(&*store).await;
    let lost = running_record(dead.id, long_ago);
    store.launch(&lost).await.unwrap();
    let mut lost_again = running_record(dead.id, long_ago);
    lost_again.name = "test.retried".to_owned();
    store.launch(&lost_again).await.unwrap();
    let quick = Retry::new(3).backoff(Duration::from_millis(1), Duration::from_millis(2));
    let rt = runtime_with(backend, &database, |b| {
        b.max_concurrency(1).task_with(
            "test.retried",
            TaskTypeOptions::default().retry(quick),
            |ctx: Context, _args: Value| async move {
                if ctx.attempt() < 2 {
                    Err(TaskError::new("flaky", "not yet"))
                } else {
                    Ok(ctx.attempt())
                }
            },
        )
    })
    .await;
    // Recovery has run: one task `missing`, the other queued again and (one slot) run.
    assert_eq!(rt.record(lost.id).await.unwrap().status, Status::Missing);
    rt.get(lost_again.id).await.unwrap().wait().await.unwrap();
    assert_counts_exact(&rt, "after recovery").await;

    let done = rt.launch_json("test.echo", json!(1)).await.unwrap();
    let failed = rt.launch_json("test.fail", json!("no")).await.unwrap();
    let retried = rt.launch_json("test.retried", json!(null)).await.unwrap();
    for task in [&done, &failed, &retried] {
        task.wait().await.unwrap();
    }
    assert_eq!(retried.record().await.unwrap().attempt, 2);
    assert_counts_exact(&rt, "after completions, failures and retries").await;

    let mut events = rt.events();
    let running = start_blocker(&rt, &mut events).await;
    let queued = rt.launch_json("test.echo", json!(2)).await.unwrap();
    let keyed = rt
        .launch_json("test.echo", json!(3))
        .key("k")
        .await
        .unwrap();
    assert_counts_exact(&rt, "with tasks queued and running").await;
    rt.kill(queued.id()).await.unwrap();
    running.kill().await.unwrap();
    keyed.wait().await.unwrap();
    assert_counts_exact(&rt, "after kills").await;

    let purge = Purge {
        filter: ListFilter {
            name: Some("test.echo".into()),
            ..ListFilter::default()
        },
        ..Purge::default()
    };
    assert_eq!(rt.purge_with(&purge, |_| {}).await.unwrap(), 3);
    assert_counts_exact(&rt, "after a purge").await;
    let before = rt.counts().await.unwrap();
    drop(rt);
    let reopened = runtime_with(backend, &database, |b| b).await;
    assert_eq!(
        reopened.counts().await.unwrap(),
        before,
        "counts after reopening"
    );
}

/// A purge step deletes at most its limit, oldest first, with the tasks' logs; it keeps live
/// tasks whatever the filter, honours every condition, and the dry-run count is what the
/// steps then delete.
pub async fn purge_steps_delete_oldest_first(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.max_concurrency(1)).await;
    let mut finished = Vec::new();
    for i in 0..12 {
        let task = rt.launch_json("test.log", json!(2)).await.unwrap();
        task.wait().await.unwrap();
        finished.push(task.id());
        if i == 5 {
            let failed = rt.launch_json("test.fail", json!("no")).await.unwrap();
            failed.wait().await.unwrap();
        }
    }
    let mut events = rt.events();
    let running = start_blocker(&rt, &mut events).await;
    let queued = rt.launch_json("test.log", json!(1)).await.unwrap();
    let store = rt.store();
    let logs = Purge {
        filter: ListFilter {
            name: Some("test.log".into()),
            ..ListFilter::default()
        },
        ..Purge::default()
    };
    assert_eq!(rt.purge_count(&logs).await.unwrap(), 12);
    let keep_five = Purge {
        keep_newest: Some(5),
        ..logs.clone()
    };
    assert_eq!(rt.purge_count(&keep_five).await.unwrap(), 7);

    // One step of 4: the four oldest go, with their logs.
    assert_eq!(store.purge(&keep_five, 4).await.unwrap(), 4);
    for id in &finished[..4] {
        assert_eq!(rt.get(*id).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(
            rt.logs(*id, 0, 10).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
    assert!(!rt.logs(finished[4], 0, 10).await.unwrap().is_empty());
    // The rest of the seven, then nothing: five newest kept.
    assert_eq!(store.purge(&keep_five, 4).await.unwrap(), 3);
    assert_eq!(store.purge(&keep_five, 4).await.unwrap(), 0);
    for id in &finished[7..] {
        assert_eq!(rt.record(*id).await.unwrap().status, Status::Completed);
    }
    // By status: the failed task only; live tasks never, and asking for them is an error.
    let failures = Purge {
        filter: ListFilter {
            status: Some(Status::Failed),
            ..ListFilter::default()
        },
        ..Purge::default()
    };
    assert_eq!(rt.purge_with(&failures, |_| {}).await.unwrap(), 1);
    let live = Purge {
        filter: ListFilter {
            status: Some(Status::Running),
            ..ListFilter::default()
        },
        ..Purge::default()
    };
    assert_eq!(
        rt.purge_count(&live).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // Finished before a time, and launched in a range.
    let last = rt.record(finished[11]).await.unwrap();
    let by_time = Purge {
        finished_before: last.finished_at,
        filter: ListFilter {
            launched_after: Some(rt.record(finished[8]).await.unwrap().launched_at),
            ..ListFilter::default()
        },
        ..Purge::default()
    };
    assert_eq!(
        rt.purge_count(&by_time).await.unwrap(),
        3,
        "tasks 8, 9 and 10"
    );
    let mut seen = Vec::new();
    assert_eq!(rt.purge_with(&by_time, |n| seen.push(n)).await.unwrap(), 3);
    assert_eq!(seen, [3]);
    assert_eq!(
        rt.record(finished[7]).await.unwrap().status,
        Status::Completed
    );
    assert_eq!(
        rt.record(finished[11]).await.unwrap().status,
        Status::Completed
    );
    assert_eq!(running.status().await.unwrap(), Status::Running);
    assert_eq!(queued.status().await.unwrap(), Status::Queued);
    running.kill().await.unwrap();
}

/// Counting by filter: by type and status it matches what a listing finds, and the other
/// filters (owner, key, launch time, finished or not) count what they list.
pub async fn count_matching_counts_what_the_list_lists(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.max_concurrency(1)).await;
    for i in 0..5 {
        let owner = if i % 2 == 0 { "ada" } else { "bob" };
        let task = rt
            .launch_json("test.echo", json!(i))
            .owner(owner)
            .await
            .unwrap();
        task.wait().await.unwrap();
    }
    let mut events = rt.events();
    let running = start_blocker(&rt, &mut events).await;
    let filters = [
        ListFilter::default(),
        ListFilter {
            name: Some("test.echo".into()),
            ..ListFilter::default()
        },
        ListFilter {
            finished: Some(true),
            ..ListFilter::default()
        },
        ListFilter {
            finished: Some(false),
            ..ListFilter::default()
        },
        ListFilter {
            status: Some(Status::Running),
            ..ListFilter::default()
        },
        ListFilter {
            owner: Some("ada".into()),
            ..ListFilter::default()
        },
        ListFilter {
            owner: Some("bob".into()),
            finished: Some(true),
            launched_before: Some(Utc::now() + chrono::Duration::hours(1)),
            ..ListFilter::default()
        },
    ];
    for filter in filters {
        let listed = rt.list(&filter).await.unwrap();
        assert!(listed.iter().all(|t| filter.matches(t)), "{filter:?}");
        assert_eq!(
            rt.count_matching(&filter).await.unwrap(),
            listed.len() as u64,
            "{filter:?}"
        );
    }
    running.kill().await.unwrap();
}

/// Retention removes, per task type, the finished tasks its rule no longer keeps: a type's own
/// rule (the newest three) in place of the default (none finished), a type kept forever, and
/// never a live task.
pub async fn retention_applies_each_types_rule(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        b.max_concurrency(1)
            .retention(Retention::max_age(Duration::ZERO))
            .retention_for("test.echo", Retention::max_count(3))
            .retention_for("test.fail", Retention::forever())
    })
    .await;
    let mut echoes = Vec::new();
    for i in 0..6 {
        let task = rt.launch_json("test.echo", json!(i)).await.unwrap();
        task.wait().await.unwrap();
        echoes.push(task.id());
    }
    let logged = rt.launch_json("test.log", json!(3)).await.unwrap();
    logged.wait().await.unwrap();
    let failed = rt.launch_json("test.fail", json!("kept")).await.unwrap();
    failed.wait().await.unwrap();
    let mut events = rt.events();
    let running = start_blocker(&rt, &mut events).await;

    assert_eq!(
        rt.retention_pass().await.unwrap(),
        4,
        "three echoes and the log task"
    );
    for id in &echoes[..3] {
        assert_eq!(rt.get(*id).await.unwrap_err().kind(), ErrorKind::NotFound);
    }
    for id in &echoes[3..] {
        assert_eq!(rt.record(*id).await.unwrap().status, Status::Completed);
    }
    assert_eq!(
        rt.logs(logged.id(), 0, 10).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(failed.status().await.unwrap(), Status::Failed);
    assert_eq!(running.status().await.unwrap(), Status::Running);
    assert_eq!(
        rt.retention_pass().await.unwrap(),
        0,
        "nothing more to remove"
    );
    assert_counts_exact(&rt, "after retention").await;
    running.kill().await.unwrap();
}

/// Of many nodes asking at once for a turn at shared periodic work, exactly one gets it; the
/// next turn comes when its time does.
pub async fn a_maintenance_turn_goes_to_one_node(backend: &dyn Backend) {
    let database = backend.new_database();
    let stores = [backend.open(&database).await, backend.open(&database).await];
    let now = Utc::now();
    let next = now + chrono::Duration::seconds(60);
    let asks = (0..20).map(|i| {
        let store = std::sync::Arc::clone(&stores[i % 2]);
        async move { store.take_turn("job", now, next).await.unwrap() }
    });
    let taken = join_all(asks).await;
    assert_eq!(taken.iter().filter(|t| **t).count(), 1, "{taken:?}");
    let soon = now + chrono::Duration::seconds(59);
    assert!(!stores[1]
        .take_turn("job", soon, soon + chrono::Duration::seconds(60))
        .await
        .unwrap());
    assert!(stores[0].take_turn("other", soon, next).await.unwrap());
    let asks = (0..20).map(|i| {
        let store = std::sync::Arc::clone(&stores[i % 2]);
        async move {
            store
                .take_turn("job", next, next + chrono::Duration::seconds(60))
                .await
                .unwrap()
        }
    });
    let taken = join_all(asks).await;
    assert_eq!(taken.iter().filter(|t| **t).count(), 1, "{taken:?}");
}
