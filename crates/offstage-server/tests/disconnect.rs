//! A task tied to a connection is killed when the connection closes: an app route streams a
//! task's events over SSE holding its `KillOnDrop` guard, and a real client over TCP goes away.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use axum::Router;
use futures::{Stream, StreamExt};
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::{Context, Runtime, Status, TaskError};
use serde_json::json;

/// The app's task types: `preview` counts until it is killed (a preview of something long);
/// `quick` ends at once.
fn app_runtime(db: &str) -> offstage::RuntimeBuilder {
    Runtime::builder()
        .sqlite(db)
        .task("preview", |ctx: Context, (): ()| async move {
            for done in 1u64.. {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                    () = ctx.cancelled() => return Err(TaskError::cancelled()),
                }
                ctx.set_state(&json!({ "done": done }))?;
            }
            Ok::<_, TaskError>(())
        })
        .task("quick", |_ctx: Context, (): ()| async move {
            Ok::<_, TaskError>(())
        })
}

/// The app's route: a preview that lives only as long as somebody watches it.
async fn preview(State(rt): State<Runtime>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let task = rt.launch_json("preview", json!(null)).await.unwrap();
    // One line ties the task to the connection: the guard lives in the response stream.
    let guard = task.kill_on_drop();
    let stream = task.events().into_stream().map(move |event| {
        let _tied = &guard;
        let event = event.map_or_else(|_| json!(null), |e| json!(e));
        Ok(Event::default().data(event.to_string()))
    });
    Sse::new(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_tied_to_a_connection_is_killed_when_the_client_goes_away() {
    let db = SqliteBackend.new_database();
    let rt = app_runtime(&db).build().await.unwrap();
    let app = Router::new()
        .route("/preview", get(preview))
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let response = reqwest::get(format!("http://{addr}/preview"))
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    // The first event names the task; it is running.
    let first = body.next().await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&first);
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let event: serde_json::Value = serde_json::from_str(data).unwrap();
    let id: offstage::TaskId = event["task_id"].as_str().unwrap().parse().unwrap();
    let task = rt.get(id).await.unwrap();
    assert!(task.is_running().await.unwrap());

    // The client goes away: the connection closes, the stream and its guard are dropped.
    drop(body);
    let ended = tokio::time::timeout(Duration::from_secs(20), task.wait())
        .await
        .expect("the task ends once its client has gone")
        .unwrap();
    assert_eq!(ended.status, Status::Killed);

    // A disarmed guard lets the task run on.
    let kept = rt.launch_json("quick", json!(null)).await.unwrap();
    kept.kill_on_drop().disarm();
    assert_eq!(kept.wait().await.unwrap().status, Status::Completed);
    rt.shutdown().await.unwrap();
}
