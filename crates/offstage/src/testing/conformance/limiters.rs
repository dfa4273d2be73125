//! Limiters and back-off: a token bucket refilled by the store's clock that never passes its
//! burst, concurrent holds released on drop and freed with a dead node, one budget for two
//! nodes (two handles on one SQLite file, two runtimes on one PostgreSQL), a wait that ends
//! with its task's kill; and `back_off`, which queues a task again without counting the
//! attempt, its state and checkpoint kept.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use super::durability::dead_node;
use super::tasks::runtime_with;
use super::Backend;
use crate::testing::{wait_for_event, wait_started};
use crate::{
    Acquire, Context, ErrorKind, EventKind, HoldRequest, Limit, Retry, Status, TaskError,
    TaskTypeOptions, WaitingCode,
};

/// How long a check waits for something that takes milliseconds, before it fails.
const LIMIT: Duration = Duration::from_secs(30);

fn hold(node: crate::NodeId) -> HoldRequest {
    HoldRequest {
        id: uuid::Uuid::now_v7(),
        node,
        holder: "the check".into(),
        ttl: None,
    }
}

/// A bucket of 5 tokens a second with a burst of 3 gives 3 at once, then refuses, saying
/// when the next is due (within 200 ms); that one is there when due. A second later the
/// bucket holds 3 again, not 5: no more than the burst in a row. Real time, since on
/// PostgreSQL the bucket runs on the database server's clock.
pub async fn a_limiter_s_bucket_refills_and_never_passes_its_burst(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        b.limiter("api", Limit::per_second(5.0).burst(3))
    })
    .await;
    let store = rt.store();
    let me = rt.node_id();
    let record = &rt.limiters().await.unwrap()[0];
    assert_eq!(record.name, "api");
    assert_eq!(record.limit, Limit::per_second(5.0).burst(3));
    assert!(
        record.tokens.unwrap() > 2.99,
        "a new bucket starts full: {record:?}"
    );
    let take = || {
        let store = std::sync::Arc::clone(store);
        async move { store.limiter_acquire("api", &hold(me), Utc::now()).await }
    };
    for _ in 0..3 {
        assert_eq!(take().await.unwrap(), Some(Acquire::Taken { held: false }));
    }
    let Some(Acquire::NoToken(due)) = take().await.unwrap() else {
        panic!("the burst is spent");
    };
    assert!(due <= Duration::from_millis(200), "due in {due:?}");
    tokio::time::sleep(due).await;
    assert_eq!(take().await.unwrap(), Some(Acquire::Taken { held: false }));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let tokens = rt.limiters().await.unwrap()[0].tokens.unwrap();
    assert!(
        (2.99..=3.0).contains(&tokens),
        "capped at the burst: {tokens}"
    );
    let mut taken = 0;
    while let Some(Acquire::Taken { .. }) = take().await.unwrap() {
        taken += 1;
    }
    assert_eq!(taken, 3, "no more than the burst in a row");

    // Through the handle: try_acquire refuses at once, acquire waits for the next token.
    let api = rt.limiter("api").unwrap();
    assert!(api.try_acquire().await.unwrap().is_none());
    let permit = api.acquire_timeout(LIMIT).await.unwrap();
    assert!(permit.is_some(), "the next token came");
}

/// A limiter of 2 holders: two permits go, a third caller waits until one is dropped, and
/// the record shows who holds them. A redefinition to 3 lets one more in at once.
pub async fn concurrent_holders_wait_for_a_release(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.limiter("llm", Limit::holders(2))).await;
    let llm = rt.limiter("llm").unwrap();
    let first = llm.acquire().await.unwrap();
    let second = llm.clone().holder("handler 2").acquire().await.unwrap();
    assert!(first.hold().is_some() && second.hold().is_some());
    assert!(
        llm.try_acquire().await.unwrap().is_none(),
        "both holds taken"
    );
    let record = llm.record().await.unwrap().unwrap();
    assert_eq!(record.tokens, None, "no bucket");
    let holders: Vec<&str> = record.holders.iter().map(|h| h.holder.as_str()).collect();
    assert_eq!(holders.len(), 2);
    assert!(holders.contains(&"handler 2"), "{holders:?}");
    assert!(record.holders.iter().all(|h| h.node == rt.node_id()));

    let waiting = tokio::spawn({
        let llm = llm.clone();
        async move { llm.acquire().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    drop(first);
    let third = tokio::time::timeout(LIMIT, waiting)
        .await
        .expect("a dropped permit wakes the waiter")
        .unwrap()
        .unwrap();
    third.release().await.unwrap();
    second.release().await.unwrap();
    assert!(llm.record().await.unwrap().unwrap().holders.is_empty());

    let (held_a, held_b) = (llm.acquire().await.unwrap(), llm.acquire().await.unwrap());
    rt.put_limiter("llm", Limit::holders(3)).await.unwrap();
    let held_c = llm.try_acquire().await.unwrap();
    assert!(held_c.is_some(), "room for a third after the redefinition");
    drop((held_a, held_b, held_c));
}

/// Two nodes on one database (two handles on one SQLite file; two runtimes on one
/// PostgreSQL) share one limiter: its holds and its bucket count both nodes' permits, and a
/// release on one node wakes a waiter on the other.
pub async fn two_nodes_share_one_limiter(backend: &dyn Backend) {
    let database = backend.new_database();
    let define = |b: crate::RuntimeBuilder| {
        b.limiter("stripe", Limit::per_second(0.01).burst(4).max_holders(3))
    };
    let a = runtime_with(backend, &database, define).await;
    let b = runtime_with(backend, &database, define).await;
    let (on_a, on_b) = (a.limiter("stripe").unwrap(), b.limiter("stripe").unwrap());
    let b1 = on_b.acquire().await.unwrap();
    let b2 = on_b.acquire().await.unwrap();
    let a1 = on_a.acquire().await.unwrap();
    assert!(
        on_a.try_acquire().await.unwrap().is_none(),
        "3 holds on 2 nodes"
    );
    assert!(on_b.try_acquire().await.unwrap().is_none());

    let waiting = tokio::spawn({
        let on_a = on_a.clone();
        async move { on_a.acquire().await }
    });
    tokio::task::yield_now().await;
    b1.release().await.unwrap();
    // The fourth token of the burst, taken by a's waiter once b's release reached it.
    let a2 = tokio::time::timeout(LIMIT, waiting)
        .await
        .expect("a release on b wakes the waiter on a")
        .unwrap()
        .unwrap();
    drop(b2);
    // A hold is free now (once the dropped permit's release is in), but the bucket (a token
    // every 100 s) is spent, on both nodes.
    let mut record = on_a.record().await.unwrap().unwrap();
    for _ in 0..1000 {
        if record.holders.len() == 2 {
            break;
        }
        tokio::task::yield_now().await;
        record = on_a.record().await.unwrap().unwrap();
    }
    assert_eq!(record.holders.len(), 2, "b2's drop released its hold");
    assert!(record.tokens.unwrap() < 1.0, "{record:?}");
    assert!(on_a.try_acquire().await.unwrap().is_none(), "no token left");
    assert!(on_b.try_acquire().await.unwrap().is_none(), "no token left");
    drop((a1, a2));
}

/// A hold taken through a node that died is freed with it: held, it blocks the limiter; once
/// recovery removes the node, a waiter gets its place, and the dead holder's release finds
/// nothing to release.
pub async fn a_dead_node_s_limiter_holds_are_freed(backend: &dyn Backend) {
    let database = backend.new_database();
    // No heartbeat (and so no recovery) during the check but the one it runs itself.
    let quiet = |b: crate::RuntimeBuilder| {
        b.heartbeat(Duration::from_secs(60), Duration::from_secs(120))
            .limiter("llm", Limit::holders(1))
    };
    let rt = runtime_with(backend, &database, quiet).await;
    let store = rt.store();
    let (dead, _) = dead_node(&**store).await;
    let theirs = hold(dead.id);
    assert_eq!(
        store
            .limiter_acquire("llm", &theirs, rt.now())
            .await
            .unwrap(),
        Some(Acquire::Taken { held: true })
    );
    let llm = rt.limiter("llm").unwrap();
    assert!(
        llm.try_acquire().await.unwrap().is_none(),
        "held by the dead node"
    );
    let waiting = tokio::spawn({
        let llm = llm.clone();
        async move { llm.acquire_timeout(LIMIT).await }
    });
    store
        .recover(rt.node_id(), rt.now(), Duration::from_secs(10), None)
        .await
        .unwrap();
    let permit = waiting.await.unwrap().unwrap();
    assert!(permit.is_some(), "recovery freed the dead node's hold");
    assert!(!store.limiter_release("llm", theirs.id).await.unwrap());

    // A node that is not registered takes no hold, even where one is free.
    permit.unwrap().release().await.unwrap();
    let error = store
        .limiter_acquire("llm", &hold(dead.id), rt.now())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NodeDead);
}

/// A task waiting for a limiter is killed at once (the wait ends with the kill), and the hold
/// it would have taken is not left behind; an unknown name and a bad limit are errors that
/// say how to fix them.
pub async fn a_task_waiting_for_a_limiter_is_killed_and_unknown_names_say_how_to_define(
    backend: &dyn Backend,
) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        b.limiter("one", Limit::holders(1)).task(
            "test.limited",
            |ctx: Context, name: String| async move {
                ctx.set_state(&json!({ "waiting": true }))?;
                let _permit = ctx.limiter(&name)?.acquire().await?;
                Ok::<_, TaskError>(())
            },
        )
    })
    .await;
    let held = rt.limiter("one").unwrap().acquire().await.unwrap();
    let mut events = rt.events();
    let task = rt.launch_json("test.limited", json!("one")).await.unwrap();
    wait_for_event(&mut events, LIMIT, |e| {
        e.task_id == task.id()
            && matches!(&e.kind, EventKind::State { state } if state["waiting"] == json!(true))
    })
    .await;
    let killed = tokio::time::timeout(LIMIT, task.kill())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(killed.status, Status::Killed);
    assert!(
        killed.error.unwrap().message.contains("stopped by itself"),
        "the wait ended with the kill, within the grace period"
    );
    drop(held);
    let free = rt
        .limiter("one")
        .unwrap()
        .acquire_timeout(LIMIT)
        .await
        .unwrap();
    assert!(free.is_some(), "nothing left behind");

    let error = rt.limiter("nope").unwrap().acquire().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert!(
        error.message().contains("RuntimeBuilder::limiter"),
        "{error}"
    );
    let task = rt.launch_json("test.limited", json!("nope")).await.unwrap();
    let failed = task.wait().await.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert!(failed
        .error
        .unwrap()
        .message
        .contains("PUT /api/limiters/nope"));
    let error = rt
        .put_limiter("bad", Limit::per_second(-1.0))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(rt.limiter("").is_err());
    assert!(rt.delete_limiter("one").await.unwrap());
    assert!(!rt.delete_limiter("one").await.unwrap());
}

/// Backs off for 30 s on its first run, after writing its state and a checkpoint; on the next
/// run returns its attempt and the checkpoint it started with.
async fn backs_off_once(ctx: Context, _args: Value) -> Result<Value, TaskError> {
    match ctx.checkpoint::<u32>()? {
        None => {
            ctx.set_state(&json!({ "step": 1 }))?;
            ctx.save_checkpoint(&1).await?;
            Err(ctx.back_off(Duration::from_secs(30)))
        }
        Some(step) => Ok(json!({ "attempt": ctx.attempt(), "from": step })),
    }
}

/// A task that backs off goes back to `queued`, due 30 s later, its attempt given back, its
/// state and checkpoint kept, the back-off in its log and its waiting reason; a retry policy
/// of one attempt does not stop it running again. Then it runs, as attempt 1 still, from its
/// checkpoint. Killing a task that backed off ends it `killed`; so does a back-off returned
/// by a task that is being killed. Paused time.
pub async fn a_task_that_backs_off_runs_again_without_counting_an_attempt(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        b.task_with(
            "test.backs_off",
            TaskTypeOptions::default().retry(Retry::new(1)),
            backs_off_once,
        )
        .task(
            "test.backs_off_when_killed",
            |ctx: Context, _args: Value| async move {
                ctx.cancelled().await;
                Err::<(), _>(ctx.back_off(Duration::from_secs(5)))
            },
        )
    })
    .await;
    let mut events = rt.events();
    let task = rt.launch_json("test.backs_off", json!(null)).await.unwrap();
    let id = task.id();
    let queued = wait_for_event(&mut events, LIMIT, |e| {
        e.task_id == id
            && matches!(&e.kind, EventKind::Launched { task } if task.status == Status::Queued
                && task.started_at.is_some())
    })
    .await;
    let EventKind::Launched { task: announced } = queued.kind else {
        unreachable!()
    };
    let record = task.record().await.unwrap();
    assert_eq!(record.status, Status::Queued);
    assert_eq!(record.attempt, 0, "the attempt was given back");
    assert_eq!(announced.attempt, 0);
    assert_eq!(record.state, json!({ "step": 1 }));
    assert_eq!(record.checkpoint, Some(json!(1)));
    assert_eq!(record.error.as_ref().unwrap().kind, "backed_off");
    assert_eq!(record.node, None);
    let due_in = (record.run_at - rt.now()).num_milliseconds();
    assert!((29_000..=30_000).contains(&due_in), "due in {due_in} ms");
    let waiting = rt.waiting(&record).await.unwrap().unwrap();
    assert_eq!(waiting.code, WaitingCode::BackedOff);
    assert_eq!(waiting.run_at, Some(record.run_at));
    assert!(
        waiting.message.contains("backed off for 30"),
        "{}",
        waiting.message
    );
    let logs = rt.logs(id, 0, 100).await.unwrap();
    assert!(
        logs.iter()
            .any(|l| l.message.starts_with("[offstage] backed off for 30")),
        "{logs:?}"
    );

    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(
        task.status().await.unwrap(),
        Status::Queued,
        "not before its time"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    wait_started(&mut events, id).await;
    let done = task.wait().await.unwrap();
    assert_eq!(done.status, Status::Completed, "{:?}", done.error);
    assert_eq!(done.attempt, 1);
    assert_eq!(done.return_value, Some(json!({ "attempt": 1, "from": 1 })));
    assert_eq!(done.error, None);

    // Killed while it ran: the back-off it returns in its grace period is not a way out.
    let task = rt
        .launch_json("test.backs_off_when_killed", json!(null))
        .await
        .unwrap();
    wait_started(&mut events, task.id()).await;
    let killed = task.kill().await.unwrap();
    assert_eq!(killed.status, Status::Killed);
    assert_eq!(killed.error.unwrap().kind, "killed");

    // Killed while it waits after a back-off: it never runs again.
    let task = rt.launch_json("test.backs_off", json!(null)).await.unwrap();
    wait_for_event(&mut events, LIMIT, |e| {
        e.task_id == task.id()
            && matches!(&e.kind, EventKind::Launched { task } if task.started_at.is_some())
    })
    .await;
    let killed = task.kill().await.unwrap();
    assert_eq!(killed.status, Status::Killed);
    assert_eq!(killed.checkpoint, Some(json!(1)), "kept for a rerun");
}
