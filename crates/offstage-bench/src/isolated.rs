//! Isolated tasks: a kill of a task that never awaits, and a launch onto a warm worker process.
//!
//! The worker processes are this benchmark binary re-run with `--isolated-worker`, which goes
//! straight to [`worker_main`]: the same task types, built into a worker.

use std::path::Path;
use std::time::Instant;

use offstage::{
    Context, EventKind, Isolation, Runtime, RuntimeBuilder, Status, TaskError, TaskTypeOptions,
};
use serde_json::{json, Value};

/// The flag that makes this binary an isolated worker process.
pub const WORKER_FLAG: &str = "--isolated-worker";

fn types(builder: RuntimeBuilder) -> RuntimeBuilder {
    let isolated = TaskTypeOptions::default().isolated();
    builder
        // Says it is running, then never awaits again.
        .task_with("spin", isolated, |ctx: Context, _: Value| async move {
            ctx.set_state(&json!({ "spinning": true }))?;
            loop {
                std::hint::spin_loop();
            }
            #[allow(unreachable_code)]
            Ok::<_, TaskError>(())
        })
        .task_with("probe", isolated, |ctx: Context, _: Value| async move {
            ctx.set_state(&json!({ "running": true }))?;
            Ok::<_, TaskError>(())
        })
}

/// This process as a worker: never returns.
pub async fn worker_main() {
    let _ = types(Runtime::builder()).build().await;
    unreachable!("an isolated worker's build does not return");
}

async fn runtime(db: &Path) -> Runtime {
    let isolation = Isolation {
        args: vec![WORKER_FLAG.into()],
        warm: 2,
        ..Isolation::default()
    };
    types(Runtime::builder().sqlite(db).isolation(isolation))
        .build()
        .await
        .unwrap()
}

/// Waits for the first state event of `task`.
async fn running(rt: &Runtime, events: &mut offstage::Subscription, task: offstage::TaskId) {
    loop {
        let event = events.recv().await.unwrap();
        if event.task_id != task {
            continue;
        }
        match event.kind {
            EventKind::State { .. } => return,
            EventKind::Finished { .. } => {
                panic!("{task} ended before it ran: {:?}", rt.record(task).await)
            }
            _ => {}
        }
    }
}

/// Kill with zero grace of an isolated task spinning without awaits → `killed` recorded, and
/// its process reaped (the runtime reaps it before it records the outcome). (p50, p99) ms.
pub async fn kill_hard(db: &Path, n: usize) -> (f64, f64) {
    let rt = runtime(db).await;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let mut events = rt.events();
        let task = rt.launch_json("spin", Value::Null).await.unwrap();
        running(&rt, &mut events, task.id()).await;
        let before = Instant::now();
        let record = rt
            .kill_with_grace(task.id(), std::time::Duration::ZERO)
            .await
            .unwrap();
        samples.push(before.elapsed().as_secs_f64() * 1e3);
        assert_eq!(record.status, Status::Killed);
    }
    rt.shutdown().await.unwrap();
    (
        crate::measure::percentile(&mut samples, 0.5),
        crate::measure::percentile(&mut samples, 0.99),
    )
}

/// Launch → the body's first state write has reached the node, with a warm worker process
/// waiting. (p50, p99) ms.
pub async fn launch_warm(db: &Path, n: usize) -> (f64, f64) {
    let rt = runtime(db).await;
    // The first launch waits for a process if the pool is still starting.
    rt.launch_json("probe", Value::Null)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let mut events = rt.events();
        let before = Instant::now();
        let task = rt.launch_json("probe", Value::Null).await.unwrap();
        running(&rt, &mut events, task.id()).await;
        samples.push(before.elapsed().as_secs_f64() * 1e3);
        // Its process goes back to the pool before the outcome is recorded.
        task.wait().await.unwrap();
    }
    rt.shutdown().await.unwrap();
    (
        crate::measure::percentile(&mut samples, 0.5),
        crate::measure::percentile(&mut samples, 0.99),
    )
}
