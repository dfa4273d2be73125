//! Built-in task types for trying Offstage with nothing else (`offstage serve --demo`).

use std::time::Duration;

use offstage::{Context, RuntimeBuilder, TaskError, Worker};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seconds {
    seconds: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    to: u64,
    #[serde(default = "default_interval")]
    interval_ms: u64,
}

fn default_interval() -> u64 {
    100
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Echo {
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fail {
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lines {
    lines: u64,
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

/// Something task types register on: a node's [`RuntimeBuilder`], or a remote [`Worker`].
pub trait Registers: Sized {
    /// Registers a task type whose body is `f(ctx, args)`.
    fn task<A, O, F, Fut>(self, name: &str, f: F) -> Self
    where
        A: serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<O, TaskError>> + Send + 'static;
}

impl Registers for RuntimeBuilder {
    fn task<A, O, F, Fut>(self, name: &str, f: F) -> Self
    where
        A: serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        RuntimeBuilder::task(self, name, f)
    }
}

impl Registers for Worker {
    fn task<A, O, F, Fut>(self, name: &str, f: F) -> Self
    where
        A: serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        Worker::task(self, name, f)
    }
}

/// Registers `demo.sleep`, `demo.count`, `demo.echo`, `demo.fail`, `demo.log` and `demo.spin`.
pub fn register<R: Registers>(builder: R) -> R {
    builder
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
                ctx.log(format!("line {i} of {}", args.lines));
                tokio::task::yield_now().await;
            }
            Ok::<_, TaskError>(args.lines)
        })
        // Burns CPU without ever awaiting. In-process, nothing can stop it before it ends by
        // itself: it is the task isolated workers exist for.
        .task("demo.spin", |ctx: Context, args: Seconds| async move {
            let total = duration(args.seconds)?;
            let start = std::time::Instant::now();
            let mut spins = 0u64;
            while start.elapsed() < total {
                spins = spins.wrapping_add(1);
                std::hint::spin_loop();
            }
            ctx.set_state(&json!({ "spins": spins }))?;
            Ok::<_, TaskError>(spins)
        })
}
