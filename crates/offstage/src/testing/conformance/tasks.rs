//! The task types the conformance suite runs, and runtimes that know them.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Backend;
use crate::{Context, Runtime, RuntimeBuilder, TaskError, TaskType};

/// A typed task type: doubles a number.
#[derive(Debug)]
pub(super) struct Double;

/// [`Double`]'s args.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DoubleArgs {
    /// The number to double.
    pub n: i64,
}

impl TaskType for Double {
    const NAME: &'static str = "test.double";
    type Args = DoubleArgs;
    type Output = i64;

    async fn run(&self, _ctx: Context, args: DoubleArgs) -> Result<i64, TaskError> {
        Ok(args.n * 2)
    }
}

/// Args naming a duration in milliseconds.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Millis {
    /// How long.
    pub ms: u64,
}

/// Args of `test.increment`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Increment {
    /// The shared counter.
    pub name: String,
    /// How long to hold the lock between reading and writing (0: use `update`).
    #[serde(default)]
    pub hold_ms: u64,
}

/// Registers the suite's task types on `builder`.
pub(super) fn with_test_tasks(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .register(Double)
        .task("test.noop", |_ctx: Context, _args: Value| async {
            Ok::<_, TaskError>(())
        })
        .task("test.echo", |_ctx: Context, args: Value| async move {
            Ok::<_, TaskError>(args)
        })
        .task("test.sleep", |ctx: Context, args: Millis| async move {
            ctx.set_state(&json!({ "sleeping": args.ms }))?;
            tokio::time::sleep(Duration::from_millis(args.ms)).await;
            Ok::<_, TaskError>(args.ms)
        })
        // Writes state, then waits to be told to stop, and stops.
        .task(
            "test.until_cancelled",
            |ctx: Context, _args: Value| async move {
                ctx.set_state(&json!({ "phase": "waiting" }))?;
                ctx.cancelled().await;
                ctx.set_state(&json!({ "phase": "stopping" }))?;
                ctx.check_cancelled()?;
                Ok::<_, TaskError>(())
            },
        )
        // Never looks at its cancellation: only an abort stops it.
        .task("test.stubborn", |ctx: Context, _args: Value| async move {
            let mut n = 0u64;
            while n < u64::MAX {
                n += 1;
                ctx.set_state(&json!({ "n": n }))?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<_, TaskError>(n)
        })
        .task("test.fail", |_ctx: Context, message: String| async move {
            Err::<(), _>(TaskError::new("bad_input", message).with_detail("some detail"))
        })
        .task("test.panic", |_ctx: Context, message: String| async move {
            if !message.is_empty() {
                panic!("{message}");
            }
            Ok::<_, TaskError>(())
        })
        .task("test.big_state", |ctx: Context, bytes: usize| async move {
            ctx.set_state(&json!({ "small": true }))?;
            let refused = ctx.set_state(&json!({ "big": "x".repeat(bytes) })).is_err();
            Ok::<_, TaskError>(json!({ "refused": refused, "state": ctx.state() }))
        })
        // Adds one to the shared counter it is given, under the lock; returns the new count.
        // With `hold_ms`, it holds the lock across a sleep between reading and writing, as real
        // work would (a lost update then shows at once if the lock is not exclusive).
        .task(
            "test.increment",
            |ctx: Context, args: Increment| async move {
                let counter = ctx.shared(&args.name)?;
                if args.hold_ms == 0 {
                    return Ok(counter.update(|n: &mut u64| *n += 1).await?);
                }
                let mut guard = counter.lock().await?;
                let n: u64 = if guard.version() == 0 {
                    0
                } else {
                    guard.get()?
                };
                tokio::time::sleep(Duration::from_millis(args.hold_ms)).await;
                guard.set(&(n + 1))?;
                guard.save().await?;
                Ok::<_, TaskError>(n + 1)
            },
        )
        // Locks the shared document it is given, changes the value without saving it, says so
        // in its state, then waits forever without looking at its cancellation.
        .task("test.hold_lock", |ctx: Context, name: String| async move {
            let mut guard = ctx.shared(&name)?.lock().await?;
            guard.set(&json!("half-written"))?;
            ctx.set_state(&json!({ "locked": true }))?;
            std::future::pending::<()>().await;
            Ok::<_, TaskError>(())
        })
        .task("test.log", |ctx: Context, lines: u64| async move {
            for i in 1..=lines {
                ctx.log(format!("line {i}"));
                tracing::info!(i, "traced");
            }
            Ok::<_, TaskError>(lines)
        })
}

/// A runtime on a new database of `backend`, knowing the suite's task types.
pub async fn runtime(backend: &dyn Backend) -> (Runtime, String) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b).await;
    (rt, database)
}

/// A runtime on `database`, knowing the suite's task types, configured further by `configure`.
pub async fn runtime_with(
    backend: &dyn Backend,
    database: &str,
    configure: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder,
) -> Runtime {
    let store = backend.open(database).await;
    let builder = with_test_tasks(Runtime::builder().store(Arc::clone(&store)));
    configure(builder)
        .build()
        .await
        .expect("building the runtime")
}

/// Launches `test.until_cancelled` on `rt` and waits until it runs: a task that holds its slot
/// until it is killed. `events` must have been subscribed before.
pub(super) async fn start_blocker(rt: &Runtime, events: &mut crate::Subscription) -> crate::Task {
    let task = rt
        .launch_json("test.until_cancelled", json!(null))
        .await
        .unwrap();
    crate::testing::wait_started(events, task.id()).await;
    task
}
