//! The dashboard's fleet views in a real browser (headless Chromium over WebDriver, against a
//! real `offstage serve --demo`): Pause and Resume on the task types view, the waiting
//! sentence on a task's page, and the Nodes page.
//!
//! Runs when `OFFSTAGE_TEST_BROWSER` is set, like `tests/browser.rs`.

mod common;

use common::browser::{require_browser, Browser, SERIAL};
use common::{Api, Server};
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::json;

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn pause_shows_why_a_task_waits_resume_runs_it_and_nodes_lists_the_node() {
    require_browser();
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let page = Browser::open(&server.url, (1320, 900)).await;

    // Pause from the task types view.
    page.goto("#/task-types").await;
    page.wait("h1", "text", json!("Task types")).await;
    let echo = r#"tr[data-name="demo.echo"]"#;
    page.wait(&format!("{echo} button.toggle"), "exact", json!("Pause"))
        .await;
    page.click(&format!("{echo} button.toggle")).await;
    page.wait(&format!("{echo} td.state"), "text", json!("paused"))
        .await;
    page.wait(&format!("{echo} button.toggle"), "exact", json!("Resume"))
        .await;
    let types = api.get("/api/task-types").await;
    let paused = types["task_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "demo.echo")
        .unwrap();
    assert_eq!(paused["paused"], true, "{paused}");

    // A launch waits, and its page says why.
    let id = api
        .launch(json!({ "name": "demo.echo", "args": { "value": "held" } }))
        .await;
    page.goto(&format!("#/tasks/{id}")).await;
    page.wait("h1", "text", json!("demo.echo")).await;
    page.wait(".notice.waiting", "text", json!("is paused on every node"))
        .await;
    page.wait(".notice.waiting", "shown", json!(null)).await;
    assert_eq!(
        page.attr(".notice.waiting", "data-code").await.as_deref(),
        Some("paused")
    );
    page.screenshot("dashboard-waiting").await;

    // Resume: the task runs, and its page drops the sentence.
    page.goto("#/task-types").await;
    page.wait(&format!("{echo} button.toggle"), "exact", json!("Resume"))
        .await;
    page.click(&format!("{echo} button.toggle")).await;
    page.wait(&format!("{echo} td.state"), "text", json!("active"))
        .await;
    assert_eq!(api.finished(&id).await["status"], "completed");
    page.goto(&format!("#/tasks/{id}")).await;
    page.wait(".badge", "text", json!("completed")).await;
    page.wait(".notice.waiting", "hidden", json!(null)).await;

    // The Nodes page: this server's node, with what it serves.
    page.goto("#/nodes").await;
    page.wait("h1", "text", json!("Nodes")).await;
    page.wait(".node .pid", "exact", json!(server.child.id().to_string()))
        .await;
    page.wait(".node .types", "text", json!("demo.echo")).await;
    page.wait(".node .running", "text", json!("slots")).await;
    page.screenshot("dashboard-nodes").await;

    let errors = page.js_errors().await;
    page.close().await;
    assert_eq!(
        errors,
        Vec::<String>::new(),
        "JavaScript errors in the dashboard"
    );
}
