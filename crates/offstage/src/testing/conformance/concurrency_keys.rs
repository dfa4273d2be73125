//! Concurrency keys (fairness between tenants): the per-key limit across handles, keys in
//! turns, the counts per key through every step, a dead node's places given back, pause,
//! retries and signal waits under a key's limit; and through the runtime, where a task's key
//! comes from and the waiting reason of a full key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::durability::dead_node;
use super::tasks::runtime_with;
use super::Backend;
use crate::id::{NodeId, TaskId};
use crate::status::Status;
use crate::store::{Finish, NodeInfo, Store};
use crate::task::TaskRecord;
use crate::waiting::WaitingCode;
use crate::{ConcurrencyKey, ErrorKind, KeyCount, TaskTypeOptions};

const NAME: &str = "keys.import";

/// A queued record of [`NAME`] with concurrency key `key`, due at `now`.
fn queued(key: &str, now: DateTime<Utc>) -> TaskRecord {
    TaskRecord {
        name: NAME.to_owned(),
        status: Status::Queued,
        started_at: None,
        finished_at: None,
        return_value: None,
        attempt: 0,
        launched_at: now,
        run_at: now,
        node: None,
        concurrency_key: Some(key.to_owned()),
        ..crate::testing::sample_record(TaskId::new())
    }
}

async fn register(store: &dyn Store, now: DateTime<Utc>) -> NodeId {
    let node = NodeId::new();
    store
        .register_node(&NodeInfo {
            id: node,
            host: "conformance".to_owned(),
            pid: std::process::id(),
            started_at: now,
        })
        .await
        .unwrap();
    node
}

/// The keys of `claimed`, sorted.
fn keys_of(claimed: &[TaskRecord]) -> Vec<&str> {
    let mut keys: Vec<&str> = claimed
        .iter()
        .map(|t| t.concurrency_key.as_deref().unwrap())
        .collect();
    keys.sort_unstable();
    keys
}

fn count(key: &str, running: u64, queued: u64) -> KeyCount {
    KeyCount {
        key: key.to_owned(),
        running,
        queued,
    }
}

fn done(now: DateTime<Utc>) -> Finish {
    Finish {
        status: Status::Completed,
        state: "{}".to_owned(),
        return_value: Some(Value::Null),
        error: None,
        finished_at: now,
        logs: Vec::new(),
        retry_at: None,
    }
}

/// At most `per_key` tasks of one key run across two handles (two processes, or two nodes):
/// what one claimed the other counts, keys under their limit are still served, and a finished
/// task gives its key's place back. The global limit holds beside it.
pub async fn a_key_limit_holds_across_two_handles(backend: &dyn Backend) {
    let database = backend.new_database();
    let one = backend.open(&database).await;
    let two = backend.open(&database).await;
    let now = Utc::now();
    let (first, second) = (register(&*one, now).await, register(&*two, now).await);
    for _ in 0..5 {
        one.launch(&queued("a", now)).await.unwrap();
    }
    two.launch(&queued("b", now)).await.unwrap();

    let claimed = one
        .claim_keyed(first, NAME, now, 10, 2, None)
        .await
        .unwrap();
    assert_eq!(keys_of(&claimed), ["a", "a", "b"]);
    assert!(claimed.iter().all(|t| t.status == Status::Running));
    assert!(
        two.claim_keyed(second, NAME, now, 10, 2, None)
            .await
            .unwrap()
            .is_empty(),
        "a's two places are taken on the other handle, and b has nothing more"
    );
    assert_eq!(
        two.concurrency_keys(NAME, 10).await.unwrap(),
        [count("a", 2, 3), count("b", 1, 0)]
    );
    let a = claimed
        .iter()
        .find(|t| t.concurrency_key.as_deref() == Some("a"))
        .unwrap();
    let mut holders = two.key_holders(NAME, "a", 10).await.unwrap();
    holders.sort();
    let mut expected: Vec<TaskId> = claimed
        .iter()
        .filter(|t| t.concurrency_key.as_deref() == Some("a"))
        .map(|t| t.id)
        .collect();
    expected.sort();
    assert_eq!(holders, expected);

    assert!(one.finish(a.id, first, done(now)).await.unwrap());
    let again = two
        .claim_keyed(second, NAME, now, 10, 2, None)
        .await
        .unwrap();
    assert_eq!(
        keys_of(&again),
        ["a"],
        "the finished task gave a's place back"
    );

    // Beside a global limit of 3 (3 hold places now: a, a, b), nothing more is claimed even
    // for a key with room.
    two.launch(&queued("c", now)).await.unwrap();
    assert!(one
        .claim_keyed(first, NAME, now, 10, 2, Some(3))
        .await
        .unwrap()
        .is_empty());
    let c = one
        .claim_keyed(first, NAME, now, 10, 2, Some(4))
        .await
        .unwrap();
    assert_eq!(keys_of(&c), ["c"]);
}

/// Keys with queued tasks take turns, least recently served first: key a's backlog of 300
/// does not hold key b's one task back past the next claim, and a claim with room for several
/// shares it between the keys.
pub async fn keys_take_turns_so_a_backlog_holds_no_other_key_back(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let now = Utc::now();
    let node = register(&*store, now).await;
    for _ in 0..300 {
        store.launch(&queued("a", now)).await.unwrap();
    }
    let claim = |limit: usize| {
        let store = std::sync::Arc::clone(&store);
        async move {
            store
                .claim_keyed(node, NAME, now, limit, 1_000, None)
                .await
                .unwrap()
        }
    };
    assert_eq!(keys_of(&claim(1).await), ["a"]);
    assert_eq!(
        keys_of(&claim(1).await),
        ["a"],
        "a is the only key with work"
    );
    // b's one task, launched behind a's backlog, is served by the next claim.
    store.launch(&queued("b", now)).await.unwrap();
    assert_eq!(keys_of(&claim(1).await), ["b"]);
    assert_eq!(keys_of(&claim(1).await), ["a"]);
    // With room for several, the keys share it: b's new task and c's are served at once,
    // the oldest of a's first.
    store.launch(&queued("b", now)).await.unwrap();
    store.launch(&queued("c", now)).await.unwrap();
    let shared = claim(6).await;
    assert_eq!(keys_of(&shared), ["a", "a", "a", "a", "b", "c"]);
    // Within a key: highest priority first, then oldest.
    let urgent = TaskRecord {
        priority: 5,
        ..queued("a", now)
    };
    store.launch(&urgent).await.unwrap();
    let next = claim(1).await;
    assert_eq!(next[0].id, urgent.id);
    // Not yet due: a task launched to run later is not claimed before its time.
    let later = TaskRecord {
        run_at: now + chrono::Duration::hours(1),
        ..queued("d", now)
    };
    store.launch(&later).await.unwrap();
    assert!(!claim(300).await.iter().any(|t| t.id == later.id));
    assert_eq!(
        store.concurrency_keys(NAME, 10).await.unwrap()[0],
        count("a", 301, 0)
    );
    assert_eq!(
        store.concurrency_keys(NAME, 10).await.unwrap().last(),
        Some(&count("d", 0, 1))
    );
}

/// The counts per key follow every step that changes them (launch, claim, a signal wait and
/// its end, a retry, a kill of a queued task, a finish), on both handles, and a key with
/// nothing queued or running is not listed. The top keys come most running first.
pub async fn counts_per_key_follow_every_step(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let other = backend.open(&database).await;
    let now = Utc::now();
    let node = register(&*store, now).await;
    let tasks: Vec<TaskRecord> = (0..3).map(|_| queued("a", now)).collect();
    for task in &tasks {
        store.launch(task).await.unwrap();
    }
    store.launch(&queued("b", now)).await.unwrap();
    // A task of a type without keys is counted nowhere.
    store
        .launch(&TaskRecord {
            concurrency_key: None,
            name: "keys.plain".to_owned(),
            ..queued("x", now)
        })
        .await
        .unwrap();
    assert_eq!(
        other.concurrency_keys(NAME, 10).await.unwrap(),
        [count("a", 0, 3), count("b", 0, 1)]
    );
    assert!(other
        .concurrency_keys("keys.plain", 10)
        .await
        .unwrap()
        .is_empty());

    let claimed = store
        .claim_keyed(node, NAME, now, 2, 2, None)
        .await
        .unwrap();
    assert_eq!(keys_of(&claimed), ["a", "b"]);
    assert_eq!(
        other.concurrency_keys(NAME, 10).await.unwrap(),
        [count("a", 1, 2), count("b", 1, 0)]
    );
    assert_eq!(
        other.concurrency_keys(NAME, 1).await.unwrap(),
        [count("a", 1, 2)],
        "the top key: most running, then most queued"
    );

    // A task that waits for a signal holds no place; its key's place comes back when it
    // resumes, only while the key has room.
    let a = claimed
        .iter()
        .find(|t| t.concurrency_key.as_deref() == Some("a"))
        .unwrap();
    let of_a = || async {
        let counts = other.concurrency_keys(NAME, 10).await.unwrap();
        counts.into_iter().find(|c| c.key == "a").unwrap()
    };
    store.signal_wait(a.id, node, "go", None).await.unwrap();
    assert_eq!(of_a().await, count("a", 0, 2));
    let filler = store
        .claim_keyed(node, NAME, now, 10, 1, None)
        .await
        .unwrap();
    assert_eq!(
        keys_of(&filler),
        ["a"],
        "the waiting task's place went to another of a"
    );
    assert!(
        !store
            .signal_resume_keyed(a.id, node, NAME, "a", 1, None)
            .await
            .unwrap(),
        "a's one place is taken: the waiting task waits for it"
    );
    assert!(store
        .signal_resume_keyed(a.id, node, NAME, "a", 2, None)
        .await
        .unwrap());
    assert_eq!(of_a().await, count("a", 2, 1));

    // A retry queues it again; a kill of a queued task and a finish take them off.
    let retry = Finish {
        status: Status::Queued,
        retry_at: Some(now),
        return_value: None,
        error: Some(crate::TaskError::new("flaky", "again")),
        ..done(now)
    };
    assert!(store.finish(a.id, node, retry).await.unwrap());
    assert_eq!(of_a().await, count("a", 1, 2));
    let queued_a = other
        .list(&crate::ListFilter {
            name: Some(NAME.to_owned()),
            status: Some(Status::Queued),
            ..Default::default()
        })
        .await
        .unwrap();
    for task in &queued_a {
        other.kill(task.id, None, now).await.unwrap();
    }
    for task in store
        .list(&crate::ListFilter {
            name: Some(NAME.to_owned()),
            status: Some(Status::Running),
            ..Default::default()
        })
        .await
        .unwrap()
    {
        assert!(store.finish(task.id, node, done(now)).await.unwrap());
    }
    assert!(other.concurrency_keys(NAME, 10).await.unwrap().is_empty());
    store.tidy().await.unwrap();
    assert!(other.concurrency_keys(NAME, 10).await.unwrap().is_empty());
}

/// A node that dies (SIGKILLed, or silent past the node timeout) holding a key's places gives
/// them back: recovery marks its tasks missing (or queues them again, when their type
/// retries), and the next claim on a live node takes the key's queued tasks.
pub async fn a_dead_node_s_places_under_a_key_come_back(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let (dead, long_ago) = dead_node(&*store).await;
    let now = Utc::now();
    for _ in 0..4 {
        store.launch(&queued("a", long_ago)).await.unwrap();
    }
    let taken = store
        .claim_keyed(dead.id, NAME, long_ago, 10, 2, None)
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    let live = register(&*store, now).await;
    assert!(
        store
            .claim_keyed(live, NAME, now, 10, 2, None)
            .await
            .unwrap()
            .is_empty(),
        "the dead node's tasks still hold a's places"
    );
    // One of them runs again (its type retries), the other stays missing.
    let retried = taken[0].id;
    let rerun: crate::store::Rerun = std::sync::Arc::new(move |task: &TaskRecord, at| {
        (task.id == retried).then(|| {
            let line = crate::log::LogLine {
                seq: 1,
                at,
                level: crate::log::LogLevel::Warn,
                message: "again".to_owned(),
            };
            (at, line)
        })
    });
    let recovered = store
        .recover(live, now, Duration::from_secs(10), Some(rerun))
        .await
        .unwrap();
    assert_eq!(recovered.len(), 2);
    assert_eq!(
        store.concurrency_keys(NAME, 10).await.unwrap(),
        [count("a", 0, 3)]
    );
    let claimed = store
        .claim_keyed(live, NAME, now, 10, 2, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2, "both places came back");
    assert_eq!(
        store.get(taken[1].id).await.unwrap().unwrap().status,
        Status::Missing
    );
}

/// A paused keyed type is claimed on no handle until resumed; a node that is not registered
/// claims nothing.
pub async fn a_paused_keyed_type_is_not_claimed(backend: &dyn Backend) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let other = backend.open(&database).await;
    let now = Utc::now();
    let node = register(&*store, now).await;
    store.launch(&queued("a", now)).await.unwrap();
    other.pause_task_type(NAME, now).await.unwrap();
    assert!(store
        .claim_keyed(node, NAME, now, 10, 2, None)
        .await
        .unwrap()
        .is_empty());
    other.resume_task_type(NAME).await.unwrap();
    assert_eq!(
        store
            .claim_keyed(node, NAME, now, 10, 2, None)
            .await
            .unwrap()
            .len(),
        1
    );
    let error = store
        .claim_keyed(NodeId::new(), NAME, now, 10, 2, None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NodeDead);
}

/// Through the runtime: a task's key is its launch's own, else its owner or its args' field
/// (a number as its text), as its type says, kept in the record (children get their parent's
/// owner, and so its key); a launch with no key to give is refused, saying how to give one.
pub async fn the_concurrency_key_comes_from_the_launch_the_owner_or_an_arg(backend: &dyn Backend) {
    let database = backend.new_database();
    let hold = |ctx: crate::Context, _args: Value| async move {
        ctx.cancelled().await;
        Ok::<_, crate::TaskError>(())
    };
    let rt = runtime_with(backend, &database, |b| {
        b.task_with(
            "keys.by_owner",
            TaskTypeOptions::default().concurrency_per_key(1, ConcurrencyKey::Owner),
            hold,
        )
        .task_with(
            "keys.by_tenant",
            TaskTypeOptions::default().concurrency_per_key(1, ConcurrencyKey::Arg("tenant")),
            hold,
        )
        .task_with(
            "keys.by_launch",
            TaskTypeOptions::default().concurrency_per_key(1, ConcurrencyKey::Launch),
            hold,
        )
        .task_with(
            "keys.parent",
            TaskTypeOptions::default(),
            |ctx: crate::Context, _args: Value| async move {
                let child = ctx.launch_json("keys.by_owner", json!(null)).await?;
                Ok::<_, crate::TaskError>(child.id().to_string())
            },
        )
    })
    .await;
    let key = |task: &crate::Task| task.snapshot().concurrency_key.clone();

    let owned = rt
        .launch_json("keys.by_owner", json!(null))
        .owner("u1")
        .await
        .unwrap();
    assert_eq!(key(&owned).as_deref(), Some("u1"));
    let tenant = rt
        .launch_json("keys.by_tenant", json!({ "tenant": "acme" }))
        .await
        .unwrap();
    assert_eq!(key(&tenant).as_deref(), Some("acme"));
    let numbered = rt
        .launch_json("keys.by_tenant", json!({ "tenant": 42 }))
        .await
        .unwrap();
    assert_eq!(key(&numbered).as_deref(), Some("42"));
    let explicit = rt
        .launch_json("keys.by_tenant", json!({ "tenant": "acme" }))
        .concurrency_key("acme-bulk")
        .await
        .unwrap();
    assert_eq!(key(&explicit).as_deref(), Some("acme-bulk"));
    assert_eq!(
        rt.record(explicit.id())
            .await
            .unwrap()
            .concurrency_key
            .as_deref(),
        Some("acme-bulk"),
        "kept in the store"
    );
    let launched = rt
        .launch_json("keys.by_launch", json!(null))
        .concurrency_key("k")
        .await
        .unwrap();
    assert_eq!(key(&launched).as_deref(), Some("k"));
    // A type without keys keeps a given key as it is, and resolves none.
    let plain = rt
        .launch_json("test.echo", json!(1))
        .owner("u1")
        .await
        .unwrap();
    assert_eq!(key(&plain), None);

    for (name, args, says) in [
        ("keys.by_owner", json!(null), "launch it with an owner"),
        ("keys.by_tenant", json!({}), "`tenant` field"),
        ("keys.by_tenant", json!({ "tenant": [1] }), "`tenant` field"),
        ("keys.by_launch", json!(null), "concurrency_key"),
    ] {
        let error = rt.launch_json(name, args).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{error}");
        assert!(error.to_string().contains(says), "{error}");
    }
    let empty = rt
        .launch_json("keys.by_owner", json!(null))
        .concurrency_key("")
        .await
        .unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::InvalidArgument);

    let parent = rt
        .launch_json("keys.parent", json!(null))
        .owner("u7")
        .await
        .unwrap();
    let child: TaskId = parent
        .wait()
        .await
        .unwrap()
        .return_value
        .unwrap()
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        rt.record(child).await.unwrap().concurrency_key.as_deref(),
        Some("u7")
    );
}

/// Through the runtime: with one place per owner, a second task of a busy owner waits, saying
/// that its key is full and which task holds it, while another owner's task runs at once; the
/// waiting one runs when the holder ends.
pub async fn a_full_key_holds_its_own_tasks_and_says_so(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| {
        b.task_with(
            "keys.held",
            TaskTypeOptions::default().concurrency_per_key(1, ConcurrencyKey::Owner),
            |ctx: crate::Context, _args: Value| async move {
                ctx.cancelled().await;
                Ok::<_, crate::TaskError>(())
            },
        )
    })
    .await;
    let mut events = rt.events();
    let holder = rt
        .launch_json("keys.held", json!(null))
        .owner("u1")
        .await
        .unwrap();
    crate::testing::wait_started(&mut events, holder.id()).await;
    let second = rt
        .launch_json("keys.held", json!(null))
        .owner("u1")
        .await
        .unwrap();
    let other = rt
        .launch_json("keys.held", json!(null))
        .owner("u2")
        .await
        .unwrap();
    crate::testing::wait_started(&mut events, other.id()).await;

    let record = rt.record(second.id()).await.unwrap();
    assert_eq!(record.status, Status::Queued);
    let waiting = rt.waiting(&record).await.unwrap().unwrap();
    assert_eq!(waiting.code, WaitingCode::KeyLimit, "{}", waiting.message);
    assert_eq!(waiting.holders, [holder.id()]);
    assert_eq!(waiting.limit, Some(1));
    assert_eq!(waiting.concurrency_key.as_deref(), Some("u1"));
    assert!(waiting.message.contains("\"u1\""), "{}", waiting.message);
    assert!(waiting.message.contains(&holder.id().to_string()));
    assert_eq!(
        rt.concurrency_keys("keys.held", KeyCount::TOP)
            .await
            .unwrap(),
        [count("u1", 1, 1), count("u2", 1, 0)]
    );

    holder.kill().await.unwrap();
    crate::testing::wait_started(&mut events, second.id()).await;
}
