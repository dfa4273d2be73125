//! Reruns and bulk actions: a rerun is a new task linked to the one it reruns; a bulk action
//! acts on every task its filter matches and leaves a record of who did what, readable from
//! every node.

use std::time::Duration;

use serde_json::json;

use super::tasks::{runtime, runtime_with};
use super::Backend;
use crate::{ActionStatus, Bulk, BulkVerb, ErrorKind, ListFilter, Status, TaskId};

fn filter_owner(owner: &str) -> ListFilter {
    ListFilter {
        owner: Some(owner.to_owned()),
        ..ListFilter::default()
    }
}

/// A rerun is a new task of the same type and launch options, with the original's args or
/// edited ones, linked by `rerun_of` (kept by the store and listed by it); only a finished
/// task can be rerun, an unknown one is not found, and edited args are checked like a
/// launch's.
pub async fn a_rerun_is_a_new_task_linked_to_the_finished_one(backend: &dyn Backend) {
    let (rt, database) = runtime(backend).await;
    let original = rt
        .launch_json("test.echo", json!({ "n": 1 }))
        .owner("team-a")
        .key("report-7")
        .priority(5)
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    original.wait().await.unwrap();

    let same = rt.rerun(original.id(), None).await.unwrap();
    let same = same.wait().await.unwrap();
    assert_eq!(same.rerun_of, Some(original.id()));
    assert_ne!(same.id, original.id());
    assert_eq!(same.name, "test.echo");
    assert_eq!(same.args, json!({ "n": 1 }));
    assert_eq!(same.return_value, Some(json!({ "n": 1 })));
    assert_eq!(same.owner.as_deref(), Some("team-a"));
    assert_eq!(same.key.as_deref(), Some("report-7"));
    assert_eq!(same.priority, 5);
    assert_eq!(same.timeout, Some(Duration::from_secs(30)));

    let edited = rt
        .rerun(original.id(), Some(json!({ "n": 2 })))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(edited.return_value, Some(json!({ "n": 2 })));
    assert_eq!(edited.rerun_of, Some(original.id()));

    // The link is durable, and the store finds a task's reruns, newest first.
    let other = runtime_with(backend, &database, |b| b).await;
    let stored = other.record(edited.id).await.unwrap();
    assert_eq!(stored.rerun_of, Some(original.id()));
    let reruns = other
        .list(&ListFilter {
            rerun_of: Some(original.id()),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<TaskId> = reruns.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![edited.id, same.id]);
    assert_eq!(other.record(original.id()).await.unwrap().rerun_of, None);

    // A live task cannot be rerun: the message says what to do.
    let live = rt
        .launch_json("test.until_cancelled", json!(null))
        .key("nightly")
        .await
        .unwrap();
    let error = rt.rerun(live.id(), None).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
    assert!(error.message().contains("Kill it or wait"), "{error}");
    assert_eq!(live.kill().await.unwrap().status, Status::Killed);

    // The key is kept, and a live task of the type with that key is not duplicated.
    let holder = rt
        .launch_json("test.until_cancelled", json!(null))
        .key("nightly")
        .await
        .unwrap();
    let error = rt.rerun(live.id(), None).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
    assert!(
        error.message().contains(&holder.id().to_string()),
        "{error}"
    );
    holder.kill().await.unwrap();
    let again = rt.rerun(live.id(), None).await.unwrap();
    assert_eq!(again.snapshot().key.as_deref(), Some("nightly"));
    again.kill().await.unwrap();

    let error = rt.rerun(TaskId::new(), None).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    let slept = rt
        .launch_json("test.sleep", json!({ "ms": 1 }))
        .await
        .unwrap();
    slept.wait().await.unwrap();
    let error = rt
        .rerun(slept.id(), Some(json!("not a duration")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgs, "{error}");
}

/// A bulk kill counts the live tasks its filter matches (the dry run changes nothing), then
/// kills each of them and no other, and its record, read from another node, says who asked,
/// what matched and that all of it was done. A record that ended no longer changes.
pub async fn a_bulk_kill_ends_every_live_match_and_is_recorded(backend: &dyn Backend) {
    let (rt, database) = runtime(backend).await;
    let mut targets = Vec::new();
    for i in 0..5 {
        let task = rt
            .launch_json("test.until_cancelled", json!(i))
            .owner("tenant-1")
            .await
            .unwrap();
        targets.push(task);
    }
    let bystander = rt
        .launch_json("test.until_cancelled", json!("other"))
        .owner("tenant-2")
        .await
        .unwrap();
    let done = rt
        .launch_json("test.echo", json!(1))
        .owner("tenant-1")
        .await
        .unwrap();
    done.wait().await.unwrap();

    let bulk = Bulk {
        verb: BulkVerb::Kill,
        filter: filter_owner("tenant-1"),
        per_s: None,
    };
    assert_eq!(rt.bulk_count(&bulk).await.unwrap(), 5);
    for task in &targets {
        assert!(
            task.is_running().await.unwrap(),
            "a dry run changes nothing"
        );
    }

    let action = rt.bulk(&bulk, "ops@example.com").await.unwrap();
    let ended = action.wait().await;
    assert_eq!(ended.status, ActionStatus::Completed, "{ended:?}");
    assert_eq!((ended.matched, ended.done, ended.failed), (5, 5, 0));
    for task in &targets {
        assert_eq!(task.status().await.unwrap(), Status::Killed);
    }
    assert!(bystander.is_running().await.unwrap());
    assert_eq!(done.status().await.unwrap(), Status::Completed);

    let other = runtime_with(backend, &database, |b| b).await;
    let read = other.action(action.id()).await.unwrap();
    assert_eq!(read.actor, "ops@example.com");
    assert_eq!(read.verb, BulkVerb::Kill);
    assert_eq!(read.filter, filter_owner("tenant-1"));
    assert_eq!(read.status, ActionStatus::Completed);
    assert_eq!((read.matched, read.done, read.failed), (5, 5, 0));
    assert!(read.ended_at.is_some());
    let listed = other.actions(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, action.id());

    // An ended action's record is final.
    let mut late = read.clone();
    late.status = ActionStatus::Running;
    late.done = 0;
    rt.store().action_update(&late).await.unwrap();
    assert_eq!(other.action(action.id()).await.unwrap(), read);

    let error = other.action(crate::ActionId::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    bystander.kill().await.unwrap();
}

/// A bulk rerun launches one rerun of each finished task its filter matches (live ones are
/// left alone), each linked to its original; the action never meets its own reruns.
pub async fn a_bulk_rerun_launches_one_rerun_of_each_finished_match(backend: &dyn Backend) {
    let (rt, _database) = runtime(backend).await;
    let mut failed = Vec::new();
    for i in 0..4 {
        let task = rt
            .launch_json("test.fail", json!(format!("outage {i}")))
            .owner("mailer")
            .await
            .unwrap();
        assert_eq!(task.wait().await.unwrap().status, Status::Failed);
        failed.push(task.id());
    }
    let live = rt
        .launch_json("test.until_cancelled", json!(null))
        .owner("mailer")
        .await
        .unwrap();
    let bulk = Bulk {
        verb: BulkVerb::Rerun,
        filter: ListFilter {
            status: Some(Status::Failed),
            ..filter_owner("mailer")
        },
        per_s: None,
    };
    assert_eq!(rt.bulk_count(&bulk).await.unwrap(), 4);
    let ended = rt.bulk(&bulk, "oncall").await.unwrap().wait().await;
    assert_eq!(ended.status, ActionStatus::Completed, "{ended:?}");
    assert_eq!((ended.matched, ended.done, ended.failed), (4, 4, 0));
    for id in &failed {
        let reruns = rt
            .list(&ListFilter {
                rerun_of: Some(*id),
                ..ListFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(reruns.len(), 1, "one rerun of {id}");
        assert_eq!(reruns[0].owner.as_deref(), Some("mailer"));
    }
    assert!(live.is_running().await.unwrap());
    // Purge and kill take no pace; a pace must be a rate.
    let bad = Bulk {
        verb: BulkVerb::Kill,
        per_s: Some(5.0),
        ..bulk.clone()
    };
    assert_eq!(
        rt.bulk_count(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let bad = Bulk {
        per_s: Some(0.0),
        ..bulk
    };
    assert_eq!(
        rt.bulk(&bad, "oncall").await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    live.kill().await.unwrap();
}

/// A bulk rerun launches ordinary queued tasks, so their type's concurrency limit holds
/// whatever the pace: of 4 reruns of a type limited to one at a time, never two run together.
pub async fn a_bulk_rerun_respects_the_types_concurrency_limit(backend: &dyn Backend) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let database = backend.new_database();
    let (r, m) = (Arc::clone(&running), Arc::clone(&most));
    let rt = runtime_with(backend, &database, move |builder| {
        builder.task_with(
            "test.one_at_a_time",
            crate::TaskTypeOptions::default().concurrency_limit(1),
            move |_ctx: crate::Context, _args: serde_json::Value| {
                let (running, most) = (Arc::clone(&r), Arc::clone(&m));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, crate::TaskError>(())
                }
            },
        )
    })
    .await;
    for i in 0..4 {
        rt.launch_json("test.one_at_a_time", json!(i))
            .owner("limited")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    most.store(0, Ordering::SeqCst);
    let bulk = Bulk {
        verb: BulkVerb::Rerun,
        filter: filter_owner("limited"),
        per_s: None,
    };
    let ended = rt.bulk(&bulk, "oncall").await.unwrap().wait().await;
    assert_eq!((ended.done, ended.failed), (4, 0), "{ended:?}");
    let reruns: Vec<_> = rt
        .list(&filter_owner("limited"))
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.rerun_of.is_some())
        .collect();
    assert_eq!(reruns.len(), 4);
    for task in reruns {
        let record = rt.get(task.id).await.unwrap().wait().await.unwrap();
        assert_eq!(record.status, Status::Completed);
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "two reruns ran at once");
}

/// A bulk purge deletes the finished tasks its filter matches, and no live one; a status no
/// finished task has is refused, saying what to filter by.
pub async fn a_bulk_purge_deletes_the_finished_matches(backend: &dyn Backend) {
    let (rt, _database) = runtime(backend).await;
    for i in 0..5 {
        rt.launch_json("test.echo", json!(i))
            .owner("old")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    let live = rt
        .launch_json("test.until_cancelled", json!(null))
        .owner("old")
        .await
        .unwrap();
    let kept = rt
        .launch_json("test.echo", json!("kept"))
        .owner("new")
        .await
        .unwrap();
    kept.wait().await.unwrap();
    let bulk = Bulk {
        verb: BulkVerb::Purge,
        filter: filter_owner("old"),
        per_s: None,
    };
    assert_eq!(rt.bulk_count(&bulk).await.unwrap(), 5);
    let ended = rt.bulk(&bulk, "janitor").await.unwrap().wait().await;
    assert_eq!(ended.status, ActionStatus::Completed, "{ended:?}");
    assert_eq!((ended.matched, ended.done), (5, 5));
    let left: Vec<TaskId> = rt
        .list(&filter_owner("old"))
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(left, vec![live.id()]);
    assert!(rt.record(kept.id()).await.is_ok());
    let running = Bulk {
        filter: ListFilter {
            status: Some(Status::Running),
            ..ListFilter::default()
        },
        ..bulk
    };
    let error = rt.bulk_count(&running).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(error.message().contains("finished tasks"), "{error}");
    live.kill().await.unwrap();
}

/// A paced bulk rerun launches no faster than `per_s`: with one a second, the first rerun goes
/// at once and each next one only when the (paused) clock has moved a second on, so their
/// launch times are a second apart.
pub async fn a_paced_bulk_rerun_launches_no_faster_than_asked(backend: &dyn Backend) {
    let (rt, _database) = runtime(backend).await;
    for i in 0..4 {
        rt.launch_json("test.echo", json!(i))
            .owner("paced")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    let bulk = Bulk {
        verb: BulkVerb::Rerun,
        filter: filter_owner("paced"),
        per_s: Some(1.0),
    };
    let mut action = rt.bulk(&bulk, "oncall").await.unwrap();
    assert_eq!(action.record().per_s, Some(1.0));
    for launched in 1..=4 {
        if launched > 1 {
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        while action.record().done < launched {
            assert!(!action.record().is_finished(), "{:?}", action.record());
            action.changed().await;
        }
    }
    let ended = action.wait().await;
    assert_eq!((ended.done, ended.failed), (4, 0), "{ended:?}");
    let mut reruns: Vec<_> = rt
        .list(&filter_owner("paced"))
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.rerun_of.is_some())
        .map(|t| t.launched_at)
        .collect();
    reruns.sort();
    assert_eq!(reruns.len(), 4);
    for pair in reruns.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::seconds(1),
            "reruns launched {:?} apart",
            pair[1] - pair[0]
        );
    }
}

/// An action cannot outlive its node: when the node running it stops before it ends, every
/// other node reads it `failed`, interrupted, with how far it got.
pub async fn an_action_whose_node_stopped_reads_failed(backend: &dyn Backend) {
    let (rt, database) = runtime(backend).await;
    for i in 0..3 {
        rt.launch_json("test.echo", json!(i))
            .owner("slow")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    // One launch now, the next in an hour: the node stops in between.
    let bulk = Bulk {
        verb: BulkVerb::Rerun,
        filter: ListFilter {
            status: Some(Status::Completed),
            ..filter_owner("slow")
        },
        per_s: Some(1.0 / 3600.0),
    };
    let mut action = rt.bulk(&bulk, "oncall").await.unwrap();
    while action.record().done < 1 {
        action.changed().await;
    }
    let other = runtime_with(backend, &database, |b| b).await;
    rt.shutdown().await.unwrap();
    let read = other.action(action.id()).await.unwrap();
    assert_eq!(read.status, ActionStatus::Failed, "{read:?}");
    assert!(read.ended_at.is_some());
    let error = read.error.unwrap_or_default();
    assert!(error.contains("interrupted"), "{error}");
}
