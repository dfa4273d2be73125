//! Named in-process tasks (`spawn`, `get_task`, `cancel_task`) and startup tasks, on two nodes
//! sharing one database.

use serde_json::json;

use super::tasks::runtime_with;
use super::Backend;
use crate::{Context, ErrorKind, ListFilter, RuntimeBuilder, Status, TaskError};

fn with_startup(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .on_start("test.every_node", |ctx: Context| async move {
            ctx.cancelled().await;
            Ok::<_, TaskError>(())
        })
        .on_start_once("test.one_node", |ctx: Context| async move {
            ctx.cancelled().await;
            Ok::<_, TaskError>(())
        })
}

/// Spawned names are unique while live on every node, found from any node, cancelled with an
/// awaitable call, and free again once the task ended; startup tasks run on every node, or on
/// one node when asked.
pub async fn spawned_tasks_are_named_unique_and_cancellable(backend: &dyn Backend) {
    let database = backend.new_database();
    let a = runtime_with(backend, &database, with_startup).await;
    let b = runtime_with(backend, &database, with_startup).await;
    let running = |name: &'static str| {
        let a = a.clone();
        async move {
            let filter = ListFilter {
                name: Some(name.to_owned()),
                status: Some(Status::Running),
                ..ListFilter::default()
            };
            a.list(&filter).await.unwrap().len()
        }
    };
    assert_eq!(running("test.every_node").await, 2, "one on each node");
    assert_eq!(running("test.one_node").await, 1, "one node only");

    let task = a
        .spawn("ws.receiver", |ctx: Context| async move {
            ctx.log("listening");
            ctx.cancelled().await;
            Err::<(), _>(TaskError::cancelled())
        })
        .await
        .unwrap();
    let duplicate = b
        .spawn("ws.receiver", |_ctx: Context| async {
            Ok::<_, TaskError>(())
        })
        .await
        .unwrap_err();
    assert_eq!(duplicate.kind(), ErrorKind::Conflict);
    assert!(
        duplicate.message().contains(&task.id().to_string()),
        "{duplicate}"
    );

    let found = b.get_task("ws.receiver").await.unwrap().unwrap();
    assert_eq!(found.id(), task.id());
    let ended = b.cancel_task("ws.receiver").await.unwrap().unwrap();
    assert_eq!(ended.status, Status::Killed);
    assert!(a.get_task("ws.receiver").await.unwrap().is_none());
    assert!(b.cancel_task("ws.receiver").await.unwrap().is_none());

    // The name is free again, and a spawned task's return value is kept like any other.
    let again = a
        .spawn("ws.receiver", |_ctx: Context| async {
            Ok::<_, TaskError>(7)
        })
        .await
        .unwrap();
    let done = again.wait().await.unwrap();
    assert_eq!(
        (done.status, done.return_value),
        (Status::Completed, Some(json!(7)))
    );
}
