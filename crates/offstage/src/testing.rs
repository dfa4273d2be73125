//! Helpers for testing apps that use Offstage, and the conformance suite every store passes.
//!
//! Enable the `testing` feature in your dev-dependencies.

pub mod conformance;

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::event::{Event, EventKind, Subscription};
use crate::id::TaskId;
use crate::status::Status;
use crate::task::TaskRecord;

/// A plausible finished record, for tests of code that consumes records.
pub fn sample_record(id: TaskId) -> TaskRecord {
    let now = Utc::now();
    TaskRecord {
        id,
        name: "sample".to_owned(),
        args: Value::Null,
        status: Status::Completed,
        state: serde_json::json!({}),
        return_value: Some(Value::Null),
        error: None,
        launched_at: now,
        run_at: now,
        started_at: Some(now),
        finished_at: Some(now),
        attempt: 1,
        priority: 0,
        key: None,
        owner: None,
        timeout: None,
        node: None,
        isolated: false,
        rerun_of: None,
        parent: None,
        detached: false,
        checkpoint: None,
        checkpoint_at: None,
        waiting_for: None,
        waiting_until: None,
        concurrency_key: None,
        traceparent: None,
        tracestate: None,
    }
}

/// Waits for the first event that `pred` accepts, failing after `limit` of tokio time.
pub async fn wait_for_event(
    events: &mut Subscription,
    limit: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let found = tokio::time::timeout(limit, async {
        loop {
            match events.recv().await {
                Ok(event) if pred(&event) => return event,
                Ok(_) => continue,
                Err(error) => panic!("event stream ended while waiting: {error}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no matching event within {limit:?}"))
}

/// Waits until task `id` has started running.
pub async fn wait_started(events: &mut Subscription, id: TaskId) -> Event {
    wait_for_event(events, Duration::from_secs(30), |e| {
        e.task_id == id && matches!(e.kind, EventKind::Started { .. })
    })
    .await
}

/// Keeps a paused tokio clock from jumping ahead on its own while the test holds the guard.
///
/// With `start_paused = true`, tokio advances the clock to the next timer whenever every task
/// is idle, including while a task waits on a store's I/O thread, which would fire grace
/// periods and timeouts early. Holding this guard (a parked blocking task) stops that; the
/// test moves time itself with `tokio::time::advance`.
pub fn hold_clock() -> ClockHold {
    let (release, parked) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = parked.recv();
    });
    ClockHold { _release: release }
}

/// Returned by [`hold_clock`]; lets the clock auto-advance again when dropped.
#[derive(Debug)]
pub struct ClockHold {
    _release: std::sync::mpsc::Sender<()>,
}

/// Runs one task to its end on a throwaway runtime (its own SQLite file in the system's
/// temporary directory) and returns the final record: a unit test of a task body in one line.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use offstage::{Context, Runtime, Status, TaskError};
///
/// let builder = Runtime::builder()
///     .task("double", |_ctx: Context, n: i64| async move { Ok::<_, TaskError>(n * 2) });
/// let record = offstage::testing::run_inline(builder, "double", serde_json::json!(21)).await.unwrap();
/// assert_eq!(record.status, Status::Completed);
/// assert_eq!(record.return_value, Some(serde_json::json!(42)));
/// # }
/// ```
#[cfg(feature = "sqlite")]
pub async fn run_inline(
    builder: crate::RuntimeBuilder,
    name: &str,
    args: Value,
) -> Result<TaskRecord, crate::Error> {
    use conformance::Backend;
    let database = conformance::SqliteBackend.new_database();
    let rt = builder.sqlite(&database).build().await?;
    let record = rt.launch_json(name, args).await?.wait().await;
    rt.shutdown().await?;
    drop(rt);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{database}{suffix}"));
    }
    let _ = std::fs::remove_dir_all(format!("{database}-nodes"));
    record
}
