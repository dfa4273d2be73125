//! What a task type takes: `/api/task-types` publishes each type's args as JSON Schema with an
//! example built from it, and that example launches.

// The binary's demo task types (`offstage serve --demo`), compiled into this test: they are not
// library API.
#[path = "../src/demo.rs"]
mod demo;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::{Context, Runtime, TaskError};
use offstage_server::{app, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(router: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn every_demo_type_publishes_its_args_schema_and_an_example_that_launches() {
    let db = SqliteBackend.new_database();
    let builder = demo::register(Runtime::builder().sqlite(db))
        // A closure with a schema by hand, given before it is registered.
        .args_schema(
            "app.greet",
            json!({ "type": "string", "examples": ["Ada"] }),
        )
        .task("app.greet", |_ctx: Context, name: String| async move {
            Ok::<_, TaskError>(format!("hello {name}"))
        })
        .task("app.bare", |_ctx: Context, (): ()| async move {
            Ok::<_, TaskError>(())
        });
    let rt = builder.build().await.unwrap();
    let router = app(AppState::new(rt.clone()));
    let (status, body) = call(
        &router,
        Request::get("/api/task-types").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let types = body["task_types"].as_array().unwrap();
    let by_name = |name: &str| {
        types
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {body}"))
    };

    let count = by_name("demo.count");
    assert_eq!(count["args_schema"]["type"], "object", "{count}");
    assert_eq!(count["args_schema"]["required"], json!(["to"]), "{count}");
    assert_eq!(
        count["args_schema"]["properties"]["to"]["description"],
        "Counts from 1 to this."
    );
    assert_eq!(
        count["args_example"],
        json!({ "to": 20, "interval_ms": 200 })
    );
    assert_eq!(by_name("app.greet")["args_example"], json!("Ada"));
    let bare = by_name("app.bare");
    assert!(
        bare["args_schema"].is_null() && bare["args_example"].is_null(),
        "{bare}"
    );

    // Every example fits: launched as it is, each type accepts it.
    for task_type in types {
        let example = &task_type["args_example"];
        if example.is_null() {
            continue;
        }
        let launch = json!({ "name": task_type["name"], "args": example, "delay_s": 3600 });
        let (status, answer) = call(
            &router,
            Request::post("/api/tasks")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(launch.to_string()))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{launch}: {answer}");
    }
    rt.shutdown().await.unwrap();
}
