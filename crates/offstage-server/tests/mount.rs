//! Offstage's router mounted in an app's own: under a prefix, the dashboard answers with and
//! without the trailing slash, and the API lives under the prefix too.

// The binary's demo task types (`offstage serve --demo`), compiled into this test: they are not
// library API.
#[path = "../src/demo.rs"]
mod demo;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::Runtime;
use offstage_server::{app_at, AppState};
use tower::ServiceExt;

async fn get_text(app: &Router, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Regression: nested with `Router::nest("/offstage", …)`, `/offstage/` was an empty 404.
#[tokio::test]
async fn the_dashboard_mounted_under_a_prefix_answers_with_and_without_the_slash() {
    let db = SqliteBackend.new_database();
    let rt = demo::register(Runtime::builder().sqlite(db))
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/", get(|| async { "the app's own page" }))
        .merge(app_at("/offstage/", AppState::new(rt.clone())));

    for path in ["/offstage", "/offstage/"] {
        let (status, page) = get_text(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        assert!(
            page.contains(r#"<meta name="offstage-base" content="/offstage/">"#),
            "{path}: every URL the page builds starts at the prefix: {page}"
        );
    }
    let (status, types) = get_text(&app, "/offstage/api/task-types").await;
    assert_eq!(status, StatusCode::OK);
    assert!(types.contains("demo.sleep"), "{types}");
    let (status, asset) = get_text(&app, "/offstage/assets/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(asset.contains("import"), "the entry module: {asset}");
    // The API client reads the prefix the page was served under.
    let (status, asset) = get_text(&app, "/offstage/assets/api.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(asset.contains("offstage-base"));
    assert_eq!(get_text(&app, "/").await.1, "the app's own page");
    assert_eq!(
        get_text(&app, "/api/task-types").await.0,
        StatusCode::NOT_FOUND
    );
    rt.shutdown().await.unwrap();
}
