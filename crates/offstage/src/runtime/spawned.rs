//! **Named tasks**: work that is not a registered task type (a websocket receiver, a cache
//! warmer), spawned in-process under a name, and tracked like every other task.
//!
//! A spawned task is a record like any other (name = its name, key = its name, `running` on
//! this node from the start), with the same handle, events, kill and log; it is just never
//! queued or claimed, since only this process has its future. Names are unique while live (the
//! store's `launch_unique`), on every node of the database. After a crash or restart it reads
//! `missing`, honestly: nobody else can run it.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use serde::Serialize;
use serde_json::Value;

use super::executor::{self, BodyEnd};
use super::Inner;
use crate::context::Context;
use crate::error::{Error, ErrorKind, TaskError};
use crate::event::EventKind;
use crate::id::TaskId;
use crate::status::Status;
use crate::task::{ListFilter, Task, TaskRecord};

/// Spawns `f` as a task named `name`, unique among live tasks with the same `key`.
pub(crate) async fn spawn<F, Fut, O>(
    rt: &Arc<Inner>,
    name: &str,
    key: String,
    f: F,
) -> Result<Task, Error>
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    O: Serialize + Send + 'static,
{
    if name.trim().is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "a spawned task needs a name to be found by: give it one",
        ));
    }
    crate::limits::check_text("task name", name, crate::limits::MAX_NAME_CHARS)?;
    if rt.is_shutting_down() {
        return Err(Error::new(
            ErrorKind::ShuttingDown,
            "this runtime is shutting down and takes no new tasks",
        ));
    }
    let now = rt.clock.now();
    let mut record = TaskRecord {
        id: TaskId::new(),
        name: name.to_owned(),
        args: Value::Null,
        status: Status::Running,
        state: Value::Object(Default::default()),
        return_value: None,
        error: None,
        launched_at: now,
        run_at: now,
        started_at: Some(now),
        finished_at: None,
        attempt: 1,
        priority: 0,
        key: Some(key),
        owner: None,
        timeout: None,
        node: Some(rt.node()),
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
    };
    let inserted = match rt.store.launch_unique(&record).await {
        Err(error) if error.kind() == ErrorKind::NodeDead => {
            // Declared dead: rejoin, and spawn it as the new node.
            super::maintenance::rejoin(rt, record.node.unwrap_or_else(|| rt.node())).await;
            record.node = Some(rt.node());
            rt.store.launch_unique(&record).await?
        }
        inserted => inserted?,
    };
    if let Some(live) = inserted {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "a task named `{name}` is already {} (task {}): names of spawned tasks are unique \
                 while they run; cancel it first, or pick another name",
                live.status, live.id
            ),
        ));
    }
    let mut queued = record.clone();
    queued.status = Status::Queued;
    queued.started_at = None;
    queued.node = None;
    let seq = rt.publish_at(
        record.id,
        now,
        EventKind::Launched {
            task: Arc::new(queued),
        },
    );
    let record = Arc::new(record);
    let task = Task::new(Arc::clone(rt), Arc::clone(&record), seq - 1, false);
    executor::start_elsewhere(rt, record, move |ctx| {
        f(ctx)
            .map(|result| {
                BodyEnd::Returned(result.and_then(|output| {
                    serde_json::to_value(output).map_err(|e| {
                        TaskError::new("output", format!("the return value is not JSON: {e}"))
                    })
                }))
            })
            .boxed()
    });
    Ok(task)
}

/// A task spawned when a runtime starts: on every node, or on one node at a time.
pub(crate) struct Startup {
    pub(crate) name: String,
    pub(crate) once: bool,
    pub(crate) start: Box<
        dyn FnOnce(Context) -> futures::future::BoxFuture<'static, Result<Value, TaskError>> + Send,
    >,
}

impl std::fmt::Debug for Startup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Startup")
            .field("name", &self.name)
            .field("once", &self.once)
            .finish()
    }
}

/// Spawns the startup tasks of a runtime that has just started. One node at a time runs a
/// `once` task: where another node's is running, this node skips it.
pub(crate) async fn start_all(rt: &Arc<Inner>, startup: Vec<Startup>) -> Result<(), Error> {
    for task in startup {
        let key = if task.once {
            task.name.clone()
        } else {
            format!("{}@{}", task.name, rt.node())
        };
        match spawn(rt, &task.name, key, task.start).await {
            Ok(_) => {}
            Err(error) if task.once && error.kind() == ErrorKind::Conflict => {
                tracing::info!(task = %task.name, "startup task runs on another node already");
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// The live spawned task named `name`: this node's if it has one, else any node's.
pub(crate) async fn get(rt: &Arc<Inner>, name: &str) -> Result<Option<Task>, Error> {
    let filter = ListFilter {
        name: Some(name.to_owned()),
        status: Some(Status::Running),
        limit: Some(100),
        ..ListFilter::default()
    };
    filter.check()?;
    let running = rt.store.list(&filter).await?;
    let mine = running.iter().position(|t| t.node == Some(rt.node()));
    let Some(record) = mine.map_or(running.first(), |i| running.get(i)).cloned() else {
        return Ok(None);
    };
    Ok(Some(Task::new(
        Arc::clone(rt),
        record,
        rt.events.last_seq(),
        false,
    )))
}
