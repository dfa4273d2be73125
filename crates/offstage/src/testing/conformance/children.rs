//! Child tasks: launched from a context, waited for, and stopped by their parent's end.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::durability::{dead_node, running_record};
use super::tasks::{runtime_with, Double, DoubleArgs};
use super::Backend;
use crate::testing::{wait_for_event, wait_started};
use crate::{
    Context, ErrorKind, EventKind, ListFilter, Runtime, RuntimeBuilder, Status, TaskError, TaskId,
    TaskRecord,
};

/// One child `family.parent` launches.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Child {
    name: String,
    #[serde(default)]
    args: Value,
    #[serde(default)]
    detached: bool,
    /// Launched to start this many seconds from now (it stays queued meanwhile).
    #[serde(default)]
    delay_s: u64,
}

/// What `family.parent` does once its children are launched.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Then {
    /// Returns at once, its children still running.
    Return,
    /// Waits for all of them and returns their results.
    Wait,
    /// Waits for each as it ends, counting them in its state (`{done, total}`), and returns
    /// their results in launch order.
    Each,
    /// Waits to be killed.
    Hold,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Family {
    children: Vec<Child>,
    then: Then,
}

/// Runs `family.parent`: launches its children (their ids in its state as `children`), then
/// does what `then` says. Waiting returns `[{"ok": value} | {"err": error}]`.
async fn family_parent(ctx: Context, family: Family) -> Result<Value, TaskError> {
    let mut children = Vec::new();
    for child in &family.children {
        let launch = ctx
            .launch_json(&child.name, child.args.clone())
            .detached(child.detached);
        let launch = if child.delay_s > 0 {
            launch.delay(Duration::from_secs(child.delay_s))
        } else {
            launch
        };
        children.push(launch.await?);
    }
    let ids: Vec<TaskId> = children.iter().map(|c| c.id()).collect();
    ctx.set_state(&json!({ "children": ids }))?;
    match family.then {
        Then::Return => Ok(json!(ids)),
        Then::Hold => {
            ctx.cancelled().await;
            Err(TaskError::cancelled())
        }
        Then::Each => {
            let mut results = vec![Value::Null; children.len()];
            let mut ends = ctx.wait_each(&children);
            let mut done = 0;
            while let Some((i, result)) = ends.next().await? {
                done += 1;
                ctx.set_state(&json!({ "done": done, "total": children.len() }))?;
                results[i] = match result {
                    Ok(value) => json!({ "ok": value }),
                    Err(error) => json!({ "err": error }),
                };
            }
            Ok(Value::Array(results))
        }
        Then::Wait => {
            let results = ctx.wait_all(&children).await?;
            Ok(Value::Array(
                results
                    .into_iter()
                    .map(|result| match result {
                        Ok(value) => json!({ "ok": value }),
                        Err(error) => json!({ "err": error }),
                    })
                    .collect(),
            ))
        }
    }
}

/// With `"hold"`, holds the type's one slot until it is killed. Otherwise waits for the
/// children it has when it starts (launched for it from elsewhere while it was queued).
async fn family_adopt(ctx: Context, args: Value) -> Result<Value, TaskError> {
    if args == json!("hold") {
        ctx.cancelled().await;
        return Err(TaskError::cancelled());
    }
    let children = ctx.children().await?;
    let results = ctx.wait_all(&children).await?;
    Ok(Value::Array(
        results
            .into_iter()
            .map(|result| match result {
                Ok(value) => json!({ "ok": value }),
                Err(error) => json!({ "err": error }),
            })
            .collect(),
    ))
}

/// The suite's task types, `family.parent`, `family.adopt`, and `family.typed` (launches a typed `Double`
/// child and waits for its typed output).
fn with_family(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .task("family.parent", family_parent)
        .task_with(
            "family.adopt",
            crate::TaskTypeOptions::default().concurrency_limit(1),
            family_adopt,
        )
        .task("family.typed", |ctx: Context, n: i64| async move {
            let child = ctx.launch::<Double>(DoubleArgs { n }).await?;
            let doubled: i64 = ctx.wait_as(&child).await?;
            let siblings = ctx.children().await?;
            Ok::<_, TaskError>(json!({ "doubled": doubled, "children": siblings.len() }))
        })
}

fn child(name: &str, args: Value) -> Child {
    Child {
        name: name.to_owned(),
        args,
        detached: false,
        delay_s: 0,
    }
}

async fn family_runtime(backend: &dyn Backend) -> (Runtime, String) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, with_family).await;
    (rt, database)
}

/// Launches `family.parent` with `family` and waits until it has launched its children:
/// returns its id and theirs.
async fn launch_family(rt: &Runtime, family: Family) -> (TaskId, Vec<TaskId>) {
    let mut events = rt.events();
    let parent = rt
        .launch_json("family.parent", serde_json::to_value(family).unwrap())
        .owner("alice")
        .await
        .unwrap();
    let event = wait_for_event(&mut events, Duration::from_secs(30), |e| {
        e.task_id == parent.id()
            && matches!(&e.kind, EventKind::State { state } if state.get("children").is_some())
    })
    .await;
    let EventKind::State { state } = event.kind else {
        unreachable!()
    };
    let children = serde_json::from_value(state["children"].clone()).unwrap();
    (parent.id(), children)
}

async fn status_of(rt: &Runtime, id: TaskId) -> Status {
    rt.record(id).await.unwrap().status
}

/// A task launches children from its context (typed and by name): each is a task like any
/// other, with `parent` set and its parent's owner, listed by the `parent` filter; waiting
/// for them returns each one's result, and a child's failure as a value the parent handles.
pub async fn a_parent_launches_children_and_waits_for_their_results(backend: &dyn Backend) {
    let (rt, _database) = family_runtime(backend).await;
    let family = Family {
        children: vec![
            child("test.echo", json!("hello")),
            child("test.double", json!({ "n": 21 })),
            child("test.fail", json!("no")),
        ],
        then: Then::Wait,
    };
    let parent = rt
        .launch_json("family.parent", serde_json::to_value(family).unwrap())
        .owner("alice")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(parent.status, Status::Completed, "{:?}", parent.error);
    let results = parent.return_value.unwrap();
    assert_eq!(results[0], json!({ "ok": "hello" }));
    assert_eq!(results[1], json!({ "ok": 42 }));
    let error: TaskError = serde_json::from_value(results[2]["err"].clone()).unwrap();
    assert_eq!(error.kind, "child_failed");
    assert!(error.message.contains("bad_input: no"), "{}", error.message);
    let detail: Value = serde_json::from_str(error.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["status"], "failed");

    let children = rt
        .list(&ListFilter {
            parent: Some(parent.id),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(children.len(), 3);
    for child in &children {
        assert_eq!(child.parent, Some(parent.id));
        assert!(!child.detached);
        assert_eq!(child.owner.as_deref(), Some("alice"), "inherited");
        assert!(child.status.is_terminal());
    }
    assert_eq!(
        rt.count_matching(&ListFilter {
            parent: Some(parent.id),
            ..ListFilter::default()
        })
        .await
        .unwrap(),
        3
    );

    // Typed: `Context::launch::<T>` and `wait_as` with `T::Output`; `children` finds it.
    let typed = rt
        .launch_json("family.typed", json!(5))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(
        typed.return_value,
        Some(json!({ "doubled": 10, "children": 1 }))
    );

    // A launch that names a parent: it must exist and be live.
    let unknown = TaskId::new();
    let error = rt
        .launch_json("test.noop", json!(null))
        .parent(unknown)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert!(error.message().contains("parent"), "{error}");
    let error = rt
        .launch_json("test.noop", json!(null))
        .parent(parent.id)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert!(error.message().contains("has ended"), "{error}");
    rt.shutdown().await.unwrap();
}

/// Waiting for many children costs one subscription and one listing per round: 200 children
/// (past the one-by-one reads) are all awaited, each as it ends (`wait_each`), its result in
/// its place.
pub async fn a_parent_waits_for_two_hundred_children(backend: &dyn Backend) {
    let (rt, _database) = family_runtime(backend).await;
    let family = Family {
        children: (0..200).map(|i| child("test.echo", json!(i))).collect(),
        then: Then::Each,
    };
    let parent = rt
        .launch_json("family.parent", serde_json::to_value(family).unwrap())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(parent.status, Status::Completed, "{:?}", parent.error);
    let results = parent.return_value.unwrap();
    let expected: Vec<Value> = (0..200).map(|i| json!({ "ok": i })).collect();
    assert_eq!(results, Value::Array(expected));
    assert_eq!(parent.state, json!({ "done": 200, "total": 200 }));
    rt.shutdown().await.unwrap();
}

/// Killing a parent kills its live children, detached or not, queued or running, and theirs;
/// a parent waiting for them stops waiting with `cancelled`.
pub async fn killing_a_parent_kills_its_children_and_theirs(backend: &dyn Backend) {
    let (rt, _database) = family_runtime(backend).await;
    let grandchildren = Family {
        children: vec![child("test.until_cancelled", json!(null))],
        then: Then::Hold,
    };
    let family = Family {
        children: vec![
            child("test.until_cancelled", json!(null)),
            Child {
                detached: true,
                ..child("test.until_cancelled", json!(null))
            },
            Child {
                delay_s: 3600,
                ..child("test.noop", json!(null))
            },
            child(
                "family.parent",
                serde_json::to_value(grandchildren).unwrap(),
            ),
        ],
        then: Then::Wait,
    };
    let (parent, children) = launch_family(&rt, family).await;
    let (_, grandchild) = {
        let mut events = rt.events();
        let middle = children[3];
        let record = rt.record(middle).await.unwrap();
        if record.state.get("children").is_some() {
            let ids: Vec<TaskId> =
                serde_json::from_value(record.state["children"].clone()).unwrap();
            (middle, ids[0])
        } else {
            let event = wait_for_event(&mut events, Duration::from_secs(30), |e| {
                e.task_id == middle
                    && matches!(&e.kind, EventKind::State { state } if state.get("children").is_some())
            })
            .await;
            let EventKind::State { state } = event.kind else {
                unreachable!()
            };
            let ids: Vec<TaskId> = serde_json::from_value(state["children"].clone()).unwrap();
            (middle, ids[0])
        }
    };
    assert_eq!(
        rt.record(grandchild).await.unwrap().parent,
        Some(children[3])
    );

    let killed = rt.kill(parent).await.unwrap();
    assert_eq!(killed.status, Status::Killed);
    assert_eq!(killed.error.unwrap().kind, "killed");
    // The kill returns once the whole family has ended.
    for id in children.iter().chain([&grandchild]) {
        assert_eq!(status_of(&rt, *id).await, Status::Killed, "{id}");
    }
    assert!(rt.store().children_to_stop(10).await.unwrap().is_empty());
    rt.shutdown().await.unwrap();
}

/// A parent that ends by itself kills its children that still run, except detached ones.
pub async fn a_parent_that_ends_stops_its_children_but_not_detached_ones(backend: &dyn Backend) {
    let (rt, _database) = family_runtime(backend).await;
    let family = Family {
        children: vec![
            child("test.until_cancelled", json!(null)),
            Child {
                delay_s: 3600,
                ..child("test.noop", json!(null))
            },
            Child {
                detached: true,
                ..child("test.until_cancelled", json!(null))
            },
        ],
        then: Then::Return,
    };
    let parent = rt
        .launch_json("family.parent", serde_json::to_value(family).unwrap())
        .await
        .unwrap();
    let parent = parent.wait().await.unwrap();
    assert_eq!(parent.status, Status::Completed);
    let children: Vec<TaskId> = serde_json::from_value(parent.return_value.unwrap()).unwrap();
    for id in &children[..2] {
        let ended = rt.get(*id).await.unwrap().wait().await.unwrap();
        assert_eq!(ended.status, Status::Killed, "{id}");
    }
    let detached = rt.record(children[2]).await.unwrap();
    assert!(detached.detached);
    assert_eq!(detached.status, Status::Running, "a detached child runs on");
    // Nothing left for the sweep: the detached child is the rules' to leave.
    assert!(rt.store().children_to_stop(10).await.unwrap().is_empty());
    rt.kill(children[2]).await.unwrap();
    rt.shutdown().await.unwrap();
}

/// The store's side of the sweep: which live children their parent's end says to stop. Every
/// child of a killed parent; the children not detached of one that completed, failed, went
/// missing or is gone; none of a parent that is live (queued again, say). The runtime's sweep
/// then kills exactly those.
pub async fn the_sweep_finds_and_kills_children_their_parent_left_behind(backend: &dyn Backend) {
    // The runtime's own sweep runs once a heartbeat: an hour apart here, so that on a loaded
    // machine it does not kill the orphans this test counts before the test looks (CI saw it).
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        with_family(b).heartbeat(Duration::from_secs(3_600), Duration::from_secs(36_000))
    })
    .await;
    let store = rt.store();
    let now = rt.now();
    let later = now + chrono::Duration::hours(1);
    let queued = |parent: Option<TaskId>, detached: bool| {
        let mut record = crate::testing::sample_record(TaskId::new());
        record.name = "test.noop".into();
        record.status = Status::Queued;
        record.return_value = None;
        record.started_at = None;
        record.finished_at = None;
        record.attempt = 0;
        record.launched_at = now;
        record.run_at = later;
        record.parent = parent;
        record.detached = detached;
        record
    };
    // Parents: one to kill, one to complete, one live, and one that never existed (purged).
    let killed = queued(None, false);
    let completed = {
        let mut record = queued(None, false);
        record.status = Status::Running;
        record.run_at = now;
        record.started_at = Some(now);
        record.attempt = 1;
        record.node = Some(rt.node_id());
        record
    };
    let live = queued(None, false);
    let gone = TaskId::new();
    for record in [&killed, &completed, &live] {
        store.launch(record).await.unwrap();
    }
    let children = [
        queued(Some(killed.id), false),
        queued(Some(killed.id), true),
        queued(Some(completed.id), false),
        queued(Some(completed.id), true),
        queued(Some(live.id), false),
        queued(Some(gone), false),
        queued(Some(gone), true),
    ];
    for record in &children[..5] {
        store.launch(record).await.unwrap();
    }
    assert!(
        store.children_to_stop(10).await.unwrap().is_empty(),
        "no parent has ended"
    );
    for record in &children[5..] {
        store.launch(record).await.unwrap();
    }
    store.kill(killed.id, None, now).await.unwrap();
    let finish = crate::store::Finish {
        status: Status::Completed,
        state: "{}".into(),
        return_value: Some(json!(null)),
        error: None,
        finished_at: now,
        logs: Vec::new(),
        retry_at: None,
    };
    assert!(store
        .finish(completed.id, rt.node_id(), finish)
        .await
        .unwrap());
    let mut expected = vec![
        children[0].id,
        children[1].id,
        children[2].id,
        children[5].id,
    ];
    expected.sort();
    assert_eq!(store.children_to_stop(10).await.unwrap(), expected);
    assert_eq!(store.children_to_stop(2).await.unwrap(), expected[..2]);

    assert_eq!(rt.sweep_children().await.unwrap(), 4);
    for (i, record) in children.iter().enumerate() {
        let want = if expected.contains(&record.id) {
            Status::Killed
        } else {
            Status::Queued
        };
        assert_eq!(status_of(&rt, record.id).await, want, "child {i}");
    }
    assert!(store.children_to_stop(10).await.unwrap().is_empty());
    rt.shutdown().await.unwrap();
}

/// A parent whose node died goes `missing`, and its children that are not detached are
/// killed (by the node that recovered it, without waiting for the sweep); a parent its retry
/// policy runs again keeps its children for the new attempt.
pub async fn a_missing_parent_s_children_are_killed_unless_it_runs_again(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let (dead, long_ago) = dead_node(&*store).await;
    let lost = running_record(dead.id, long_ago);
    let mut retried = running_record(dead.id, long_ago);
    retried.name = "family.retried".into();
    retried.attempt = 1;
    let kid = |parent: &TaskRecord, detached: bool| {
        let mut record = crate::testing::sample_record(TaskId::new());
        record.name = "test.noop".into();
        record.status = Status::Queued;
        record.return_value = None;
        record.started_at = None;
        record.finished_at = None;
        record.attempt = 0;
        record.run_at = Utc::now() + chrono::Duration::hours(1);
        record.parent = Some(parent.id);
        record.detached = detached;
        record
    };
    let (stopped, left, kept) = (kid(&lost, false), kid(&lost, true), kid(&retried, false));
    for record in [&lost, &retried, &stopped, &left, &kept] {
        store.launch(record).await.unwrap();
    }
    let rt = runtime_with(backend, &database, |builder| {
        with_family(builder).task_with(
            "family.retried",
            crate::TaskTypeOptions::default().retry(
                crate::Retry::new(3).backoff(Duration::from_secs(3600), Duration::from_secs(3600)),
            ),
            |_ctx: Context, _args: Value| async { Ok::<_, TaskError>(()) },
        )
    })
    .await;
    assert_eq!(status_of(&rt, lost.id).await, Status::Missing);
    assert_eq!(status_of(&rt, retried.id).await, Status::Queued);
    let stopped = rt.get(stopped.id).await.unwrap().wait().await.unwrap();
    assert_eq!(stopped.status, Status::Killed);
    assert_eq!(status_of(&rt, left.id).await, Status::Queued, "detached");
    assert_eq!(
        status_of(&rt, kept.id).await,
        Status::Queued,
        "its parent runs again"
    );
    assert!(rt.store().children_to_stop(10).await.unwrap().is_empty());
    rt.shutdown().await.unwrap();
}

/// A child launched from a task that runs on a node starts like any task; a parent that
/// waits ends its wait with `cancelled` when it is asked to stop, and the child it waited
/// for is killed with it.
pub async fn a_waiting_parent_stops_waiting_when_killed(backend: &dyn Backend) {
    let (rt, _database) = family_runtime(backend).await;
    let mut events = rt.events();
    let family = Family {
        children: vec![child("test.until_cancelled", json!(null))],
        then: Then::Wait,
    };
    let (parent, children) = launch_family(&rt, family).await;
    wait_started(&mut events, children[0]).await;
    let killed = rt.kill(parent).await.unwrap();
    assert_eq!(killed.status, Status::Killed);
    assert_eq!(
        killed.error.unwrap().message,
        "it stopped by itself within the grace period",
        "the wait ended with `cancelled`, so the body returned at once"
    );
    assert_eq!(status_of(&rt, children[0]).await, Status::Killed);
    rt.shutdown().await.unwrap();
}

/// A child whose node died goes `missing`, and its parent's wait returns that as the child's
/// failure (kind `child_missing`, with the child's own error), for the parent to handle.
pub async fn a_child_whose_node_died_is_a_failure_its_parent_handles(backend: &dyn Backend) {
    let (rt, _database) = family_runtime(backend).await;
    // The parent waits queued behind the type's one slot while its child is put in place.
    let mut events = rt.events();
    let holder = rt.launch_json("family.adopt", json!("hold")).await.unwrap();
    wait_started(&mut events, holder.id()).await;
    let parent = rt.launch_json("family.adopt", json!(null)).await.unwrap();
    // The child runs on a node that is gone: the next recovery marks it missing.
    let (dead, long_ago) = dead_node(&**rt.store()).await;
    let mut child = running_record(dead.id, long_ago);
    child.parent = Some(parent.id());
    rt.store().launch(&child).await.unwrap();
    holder.kill().await.unwrap();

    let parent = parent.wait().await.unwrap();
    assert_eq!(parent.status, Status::Completed, "{:?}", parent.error);
    let results = parent.return_value.unwrap();
    let error: TaskError = serde_json::from_value(results[0]["err"].clone()).unwrap();
    assert_eq!(error.kind, "child_missing");
    assert!(error.message.contains("went missing"), "{}", error.message);
    assert!(
        error
            .message
            .contains("missing: the node running this task"),
        "{}",
        error.message
    );
    assert_eq!(status_of(&rt, child.id).await, Status::Missing);
    rt.shutdown().await.unwrap();
}
