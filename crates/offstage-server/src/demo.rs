//! Built-in task types for trying Offstage with nothing else (`offstage serve --demo`, and
//! `offstage worker` serves them to a server as a remote worker).
//!
//! A module of the `offstage` binary, not of the library: an app registers its own task
//! types. The in-process API tests compile this file into themselves by `#[path]`, to drive
//! the router with the same task types the binary serves.

use std::time::Duration;

#[cfg(feature = "cli")]
use offstage::Worker;
use offstage::{Context, Retry, RuntimeBuilder, TaskError, TaskTypeOptions};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "seconds": 5 }))]
struct Seconds {
    /// How long, in seconds.
    seconds: f64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "tenant": "acme", "seconds": 5 }))]
struct TenantJob {
    /// The customer it works for: its concurrency key.
    tenant: String,
    /// How long, in seconds.
    seconds: f64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "to": 20, "interval_ms": 200 }))]
struct Count {
    /// Counts from 1 to this.
    to: u64,
    /// The wait before each count.
    #[serde(default = "default_interval")]
    interval_ms: u64,
}

fn default_interval() -> u64 {
    100
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "value": "hello" }))]
struct Echo {
    /// Any JSON value: the task returns it.
    value: Value,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "message": "something went wrong" }))]
struct Fail {
    /// The message of the error it fails with.
    message: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "mb": 64 }))]
struct Megabytes {
    /// How many MiB to allocate (more than 256 kills its worker process).
    mb: u64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "lines": 5 }))]
struct Lines {
    /// How many log lines to write.
    lines: u64,
    /// Write them as `tracing` events (captured into the log the same way on a node; with
    /// OpenTelemetry on, events of the attempt's span) rather than with `ctx.log`.
    #[serde(default)]
    tracing: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "name": "jobs.done", "times": 30, "hold_ms": 500 }))]
struct Tally {
    /// The shared document that holds the count.
    name: String,
    /// How many times to count.
    #[serde(default = "one")]
    times: u64,
    /// How long each count holds the document's lock.
    #[serde(default)]
    hold_ms: u64,
}

fn one() -> u64 {
    1
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "items": 100, "every": 10, "interval_ms": 200, "fail_at": 35 }))]
struct Import {
    /// How many items to import.
    items: u64,
    /// Save a checkpoint (the cursor) after every this many items.
    #[serde(default = "ten")]
    every: u64,
    /// How long each item takes.
    #[serde(default = "default_interval")]
    interval_ms: u64,
    /// Fail once, on the first attempt, after this item: the retry resumes from the last
    /// checkpoint, as it does when the node dies.
    #[serde(default)]
    fail_at: Option<u64>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "children": 5, "to": 10, "interval_ms": 200 }))]
struct Fanout {
    /// How many `demo.count` children to launch (1 to 1,000).
    #[serde(default = "five")]
    children: u64,
    /// Each child counts from 1 to this.
    #[serde(default = "ten")]
    to: u64,
    /// The wait before each of a child's counts.
    #[serde(default = "default_interval")]
    interval_ms: u64,
}

fn five() -> u64 {
    5
}

fn ten() -> u64 {
    10
}

/// `demo.import`'s checkpoint: how many items are done.
#[derive(serde::Serialize, Deserialize)]
struct Cursor {
    done: u64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = json!({ "what": "refund order 1042", "timeout_s": 3600 }))]
struct Approval {
    /// What needs approving, for the log.
    #[serde(default = "something")]
    what: String,
    /// How long to wait for the signal `approve`, in seconds.
    #[serde(default = "an_hour")]
    timeout_s: f64,
}

fn something() -> String {
    "the demo".to_owned()
}

fn an_hour() -> f64 {
    3600.0
}

/// The payload of the signal `approve`: `{"approved": true, "by": "ann"}`.
#[derive(Deserialize)]
struct Decision {
    approved: bool,
    #[serde(default)]
    by: Option<String>,
}

fn duration(seconds: f64) -> Result<Duration, TaskError> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| TaskError::new("bad_input", format!("{seconds} is not a number of seconds")))
}

/// Waits `total`, or stops early when the task is killed: the demo tasks cooperate, so a kill
/// takes effect at once instead of after the grace period.
async fn pause(ctx: &Context, total: Duration) -> Result<(), TaskError> {
    tokio::select! {
        () = tokio::time::sleep(total) => Ok(()),
        () = ctx.cancelled() => Err(TaskError::cancelled()),
    }
}

/// Something task types register on: a node's [`RuntimeBuilder`], or a remote
/// `offstage::Worker` (with feature `cli`, which `offstage worker` needs).
pub trait Registers: Sized {
    /// Registers a task type with options. A remote worker has no use for them: it is a
    /// process of its own already.
    fn task_with<A, O, F, Fut>(self, name: &str, options: TaskTypeOptions, f: F) -> Self
    where
        A: serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<O, TaskError>> + Send + 'static;

    /// Registers a task type whose body is `f(ctx, args)`.
    fn task<A, O, F, Fut>(self, name: &str, f: F) -> Self
    where
        A: serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        self.task_with(name, TaskTypeOptions::default(), f)
    }

    /// Describes task type `name`'s args as JSON Schema, where the registry keeps one.
    fn args_schema(self, name: &str, schema: Value) -> Self {
        let _ = (name, schema);
        self
    }
}

impl Registers for RuntimeBuilder {
    fn task_with<A, O, F, Fut>(self, name: &str, options: TaskTypeOptions, f: F) -> Self
    where
        A: serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        RuntimeBuilder::task_with(self, name, options, f)
    }

    fn args_schema(self, name: &str, schema: Value) -> Self {
        RuntimeBuilder::args_schema(self, name, schema)
    }
}

#[cfg(feature = "cli")]
impl Registers for Worker {
    fn task_with<A, O, F, Fut>(self, name: &str, _options: TaskTypeOptions, f: F) -> Self
    where
        A: serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        Worker::task(self, name, f)
    }
}

/// Registers `demo.sleep`, `demo.count`, `demo.echo`, `demo.fail`, `demo.log`, `demo.tally`,
/// `demo.import` (resumable: it checkpoints its cursor, and retries), `demo.fanout` (children),
/// `demo.approval` (waits for a signal), and the isolated `demo.spin` and `demo.hog`.
pub fn register<R: Registers>(builder: R) -> R {
    use offstage::args_schema as schema;
    builder
        .args_schema("demo.sleep", schema::<Seconds>())
        .args_schema("demo.count", schema::<Count>())
        .args_schema("demo.echo", schema::<Echo>())
        .args_schema("demo.fail", schema::<Fail>())
        .args_schema("demo.log", schema::<Lines>())
        .args_schema("demo.tally", schema::<Tally>())
        .args_schema("demo.import", schema::<Import>())
        .args_schema("demo.approval", schema::<Approval>())
        .args_schema("demo.spin", schema::<Seconds>())
        .args_schema("demo.hog", schema::<Megabytes>())
        .args_schema("demo.fanout", schema::<Fanout>())
        .args_schema("demo.tenant", schema::<TenantJob>())
        .task("demo.sleep", |ctx: Context, args: Seconds| async move {
            let total = duration(args.seconds)?;
            ctx.set_state(&json!({ "sleeping_s": args.seconds }))?;
            pause(&ctx, total).await?;
            Ok::<_, TaskError>(args.seconds)
        })
        .task("demo.count", |ctx: Context, args: Count| async move {
            for done in 1..=args.to {
                pause(&ctx, Duration::from_millis(args.interval_ms)).await?;
                ctx.set_state(&json!({ "done": done, "total": args.to }))?;
                ctx.log(format!("counted {done} of {}", args.to));
            }
            Ok::<_, TaskError>(args.to)
        })
        .task("demo.echo", |_ctx: Context, args: Echo| async move {
            Ok::<_, TaskError>(args.value)
        })
        .task("demo.fail", |_ctx: Context, args: Fail| async move {
            Err::<(), _>(TaskError::new("demo_failure", args.message))
        })
        .task("demo.log", |ctx: Context, args: Lines| async move {
            for i in 1..=args.lines {
                if args.tracing {
                    tracing::info!(line = i, "line {i} of {}", args.lines);
                } else {
                    ctx.log(format!("line {i} of {}", args.lines));
                }
                tokio::task::yield_now().await;
            }
            Ok::<_, TaskError>(args.lines)
        })
        // Counts in a shared document, `times` times, each under its lock held for `hold_ms`:
        // the dashboard's shared-state view shows the holder, then each new version. A kill
        // while it holds the lock releases it without writing.
        .task("demo.tally", |ctx: Context, args: Tally| async move {
            let counter = ctx.shared(&args.name)?;
            let mut count = 0;
            for done in 1..=args.times {
                let mut guard = counter.lock().await?;
                ctx.log(format!("holding the lock of {}", args.name));
                pause(&ctx, Duration::from_millis(args.hold_ms)).await?;
                count = guard.value().as_u64().unwrap_or(0) + 1;
                guard.set(&count)?;
                guard.save().await?;
                ctx.set_state(&json!({ "done": done, "total": args.times }))?;
            }
            Ok::<_, TaskError>(count)
        })
        // A resumable import: walks `items`, saving its cursor as a checkpoint every `every`
        // items. Its type retries a lost node (`missing`), a lost worker and its own demo
        // failure, and a retry (or a rerun from its checkpoint) starts after the last saved
        // item, saying so in the log. The state is what people see; the checkpoint is what
        // the task needs.
        .task_with(
            "demo.import",
            TaskTypeOptions::default().retry(
                Retry::new(3)
                    .kinds(&["missing", "worker_lost", "demo_failure"])
                    .backoff(Duration::from_secs(1), Duration::from_secs(5)),
            ),
            |ctx: Context, args: Import| async move {
                let start = ctx.checkpoint::<Cursor>()?.map_or(0, |cursor| cursor.done);
                if start > 0 {
                    ctx.log(format!(
                        "resuming from item {} ({start} of {} were imported before)",
                        start + 1,
                        args.items
                    ));
                }
                let every = args.every.max(1);
                for item in start + 1..=args.items {
                    pause(&ctx, Duration::from_millis(args.interval_ms)).await?;
                    ctx.set_state(&json!({ "done": item, "total": args.items }))?;
                    ctx.log(format!("imported item {item} of {}", args.items));
                    if item % every == 0 || item == args.items {
                        ctx.save_checkpoint(&Cursor { done: item }).await?;
                    }
                    if args.fail_at == Some(item) && ctx.attempt() == 1 {
                        return Err(TaskError::new(
                            "demo_failure",
                            format!("the import failed after item {item} (fail_at)"),
                        ));
                    }
                }
                Ok::<_, TaskError>(json!({ "imported": args.items, "resumed_from": start }))
            },
        )
        // Launches `children` counting children and waits for them, counting them in its
        // state as they end: the task page shows the children live, each one's page the path
        // back to this one. Killing it kills them; they are its to wait for, so a child's
        // failure is counted, not fatal.
        .task("demo.fanout", |ctx: Context, args: Fanout| async move {
            if !(1..=1000).contains(&args.children) {
                return Err(TaskError::new(
                    "bad_input",
                    format!("children is {}: give 1 to 1000", args.children),
                ));
            }
            let total = args.children;
            let mut children = Vec::new();
            for _ in 0..total {
                let count = json!({ "to": args.to, "interval_ms": args.interval_ms });
                children.push(ctx.launch_json("demo.count", count).await?);
            }
            ctx.log(format!("launched {total} children"));
            ctx.set_state(&json!({ "done": 0, "total": total }))?;
            let (mut done, mut failed) = (0u64, 0u64);
            let mut ends = ctx.wait_each(&children);
            while let Some((i, result)) = ends.next().await? {
                done += 1;
                if let Err(error) = result {
                    failed += 1;
                    ctx.log(format!(
                        "child {} did not complete: {error}",
                        children[i].id()
                    ));
                }
                ctx.set_state(&json!({ "done": done, "total": total }))?;
            }
            Ok::<_, TaskError>(json!({ "completed": done - failed, "failed": failed }))
        })
        // Waits for a person: the signal `approve` (`{"approved": true, "by": "ann"}`), sent
        // with the task page's Send signal, `offstage signal ID approve --payload …` or
        // `POST /api/tasks/{id}/signals/approve`; then completes or fails by it. Limited to 2
        // at a time, yet any number can wait: a task waiting for a signal holds no slot. If its
        // node dies while it waits it runs again (kind `missing` retries) and receives the
        // signal sent meanwhile. In a remote worker it fails at once (signals are for tasks
        // that run on a node).
        .task_with(
            "demo.approval",
            TaskTypeOptions::default().concurrency_limit(2).retry(
                offstage::Retry::new(3)
                    .kinds(&["missing"])
                    .backoff(Duration::from_millis(200), Duration::from_secs(5)),
            ),
            |ctx: Context, args: Approval| async move {
                let timeout = duration(args.timeout_s)?;
                ctx.log(format!("asking for approval of {}", args.what));
                let decision: Decision = match ctx.wait_signal("approve", Some(timeout)).await {
                    Ok(decision) => decision,
                    Err(e) if e.kind() == offstage::ErrorKind::SignalTimeout => {
                        return Err(TaskError::new(
                            "unapproved",
                            format!("nobody approved {} in {} s", args.what, args.timeout_s),
                        ))
                    }
                    Err(e) => return Err(e.into()),
                };
                let by = decision.by.unwrap_or_else(|| "someone".to_owned());
                if !decision.approved {
                    return Err(TaskError::new(
                        "refused",
                        format!("{by} refused {}", args.what),
                    ));
                }
                ctx.log(format!("{by} approved {}", args.what));
                Ok::<_, TaskError>(json!({ "approved_by": by }))
            },
        )
        // Work for one customer: at most 2 run at once per `tenant` (its concurrency key), on
        // all nodes, and tenants take turns, so one tenant's thousand jobs do not hold another
        // tenant's first one behind them.
        .task_with(
            "demo.tenant",
            TaskTypeOptions::default()
                .concurrency_per_key(2, offstage::ConcurrencyKey::Arg("tenant")),
            |ctx: Context, args: TenantJob| async move {
                let total = duration(args.seconds)?;
                ctx.set_state(&json!({ "tenant": args.tenant, "sleeping_s": args.seconds }))?;
                pause(&ctx, total).await?;
                Ok::<_, TaskError>(args.tenant)
            },
        )
        // Burns CPU without ever awaiting: nothing in-process could stop it before it ends by
        // itself, so it runs isolated, in a worker process of its own, where a kill or a
        // timeout ends it with SIGKILL after the grace period.
        .task_with(
            "demo.spin",
            TaskTypeOptions::default().isolated(),
            |ctx: Context, args: Seconds| async move {
                let total = duration(args.seconds)?;
                // Plain stdout: an isolated task's output lands in its log.
                println!(
                    "spinning for {} s in process {}",
                    args.seconds,
                    std::process::id()
                );
                let start = std::time::Instant::now();
                let mut spins = 0u64;
                while start.elapsed() < total {
                    spins = spins.wrapping_add(1);
                    std::hint::spin_loop();
                }
                ctx.set_state(&json!({ "spins": spins }))?;
                Ok::<_, TaskError>(spins)
            },
        )
        // Allocates `mb` MiB, in a worker process whose task may add at most 256 MiB: more,
        // and the process dies (`failed`, kind `worker_crashed`).
        .task_with(
            "demo.hog",
            TaskTypeOptions::default().memory_limit(256 * 1024 * 1024),
            |_ctx: Context, args: Megabytes| async move {
                let mut held = Vec::new();
                for _ in 0..args.mb {
                    // Touch every page, so the memory is really used.
                    held.push(vec![1u8; 1024 * 1024]);
                }
                Ok::<_, TaskError>(held.len())
            },
        )
}
