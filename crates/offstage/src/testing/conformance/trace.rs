//! Trace context: kept with the task from its launch, handed to its children, new for a rerun.

use serde_json::{json, Value};

use super::tasks::{runtime, runtime_with};
use super::Backend;
use crate::{Context, ErrorKind, Runtime, TaskError};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A launch keeps its `traceparent` and `tracestate` through the store (the direct start, a
/// claim from the queue, a read after the end); a bad one fails the launch, saying why.
pub async fn a_launch_keeps_its_trace_context(backend: &dyn Backend) {
    let (rt, database) = runtime(backend).await;
    let direct = rt
        .launch_json("test.echo", json!(1))
        .trace_parent(PARENT)
        .trace_state("vendor=opaque")
        .await
        .unwrap();
    assert_eq!(direct.snapshot().traceparent.as_deref(), Some(PARENT));
    let queued = rt
        .launch_json("test.echo", json!(2))
        .trace_parent(PARENT)
        .delay(std::time::Duration::from_millis(20))
        .await
        .unwrap();
    for task in [direct, queued] {
        let ended = task.wait().await.unwrap();
        let stored = rt.get(task.id()).await.unwrap().snapshot().clone();
        for record in [ended, stored] {
            assert_eq!(record.traceparent.as_deref(), Some(PARENT));
            assert_eq!(record.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        }
    }
    let stored = rt.list(&Default::default()).await.unwrap();
    assert!(stored
        .iter()
        .any(|record| record.tracestate.as_deref() == Some("vendor=opaque")));
    let plain = rt.launch_json("test.echo", json!(3)).await.unwrap();
    assert_eq!(plain.wait().await.unwrap().traceparent, None);

    for (parent, state) in [("00-nope", None), (PARENT, Some("\u{7}"))] {
        let mut launch = rt.launch_json("test.echo", json!(4)).trace_parent(parent);
        if let Some(state) = state {
            launch = launch.trace_state(state);
        }
        let error = launch.await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{error}");
    }
    let error = rt
        .launch_json("test.echo", json!(5))
        .trace_state("vendor=opaque")
        .await
        .unwrap_err();
    assert!(error.message().contains("needs its traceparent"), "{error}");
    rt.shutdown().await.unwrap();
    drop(database);
}

/// A child launched from its parent's context is in its parent's trace, and the parent's
/// context says which (`Context::trace_parent`).
pub async fn a_child_is_launched_in_its_parents_trace(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |builder| {
        builder.task("trace.parent", |ctx: Context, _: Value| async move {
            let child = ctx.launch_json("test.echo", json!("child")).await?;
            ctx.wait(&child).await?;
            Ok::<_, TaskError>(json!({
                "child": child.id().to_string(),
                "mine": ctx.trace_parent().map(|cx| cx.traceparent().to_owned()),
            }))
        })
    })
    .await;
    let parent = rt
        .launch_json("trace.parent", json!(null))
        .trace_parent(PARENT)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let output = parent.return_value.unwrap();
    let mine = output["mine"]
        .as_str()
        .expect("the parent has a trace context");
    assert_eq!(&mine[3..35], "4bf92f3577b34da6a3ce929d0e0e4736");
    let child_id = output["child"].as_str().unwrap().parse().unwrap();
    let child = rt.get(child_id).await.unwrap().snapshot().clone();
    assert_eq!(child.traceparent.as_deref(), Some(mine));
    assert_eq!(
        child.trace_id(),
        parent.traceparent.as_deref().map(|p| &p[3..35])
    );
    rt.shutdown().await.unwrap();
}

/// A rerun is a new trace: it does not take the original's context, only the one it is given.
pub async fn a_rerun_starts_a_new_trace(backend: &dyn Backend) {
    let (rt, database) = runtime(backend).await;
    let original = rt
        .launch_json("test.echo", json!(1))
        .trace_parent(PARENT)
        .await
        .unwrap();
    original.wait().await.unwrap();
    let rerun = rerun(&rt, original.id()).await;
    assert_eq!(rerun.traceparent, None);
    let request = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let rerun = rerun_in(&rt, original.id(), request).await;
    assert_eq!(rerun.trace_id(), Some("0af7651916cd43dd8448eb211c80319c"));
    assert_eq!(rerun.rerun_of, Some(original.id()));
    rt.shutdown().await.unwrap();
    drop(database);
}

async fn rerun(rt: &Runtime, id: crate::TaskId) -> crate::TaskRecord {
    rt.rerun(id, None).await.unwrap().wait().await.unwrap()
}

async fn rerun_in(rt: &Runtime, id: crate::TaskId, traceparent: &str) -> crate::TaskRecord {
    let options = crate::RerunOptions {
        trace_parent: Some(crate::TraceContext::parse(traceparent, None).unwrap()),
        ..Default::default()
    };
    rt.rerun_with(id, options)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap()
}
