//! Signals on the dashboard in a real browser (headless Chromium over WebDriver, against a real
//! `offstage serve --demo`): a task waiting for approval is marked in the list and on its page,
//! and Send signal (its name prefilled, a JSON payload) completes it; a read-only token sees no
//! Send signal.
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
async fn a_task_waiting_for_approval_is_marked_and_send_signal_completes_it() {
    require_browser();
    let _one = SERIAL.lock().await;
    let tokens = [
        "--token",
        "read:reader-secret",
        "--token",
        "control:admin-secret",
    ];
    let server = Server::start(&SqliteBackend.new_database(), &tokens);
    let api = Api::new(&server, Some("admin-secret"));
    let page = Browser::open(&server.url, (1320, 900)).await;

    page.goto("#/").await;
    page.wait("h1", "text", json!("Sign in")).await;
    page.fill("#token", "admin-secret").await;
    page.click(".signin button[type=submit]").await;
    page.wait("#who", "shown", json!(null)).await;

    // Launched while the list is open: its row is marked once it waits.
    let id = api
        .launch(json!({ "name": "demo.approval", "args": { "what": "refund 42" } }))
        .await;
    let row = format!("tr[data-id=\"{id}\"]");
    page.wait(
        &format!("{row} .waiting-mark"),
        "text",
        json!("waiting for \"approve\""),
    )
    .await;
    page.screenshot("dashboard-list-waiting").await;

    page.goto(&format!("#/tasks/{id}")).await;
    page.wait("h1", "text", json!("demo.approval")).await;
    page.wait(
        ".page-head .waiting-mark",
        "text",
        json!("waiting for \"approve\""),
    )
    .await;
    page.wait("#waiting-for", "text", json!("approve")).await;
    page.wait(".notice.waiting", "text", json!("waiting for \"approve\""))
        .await;
    assert_eq!(
        page.attr(".notice.waiting", "data-code").await.as_deref(),
        Some("signal")
    );

    // Send signal: the name is what it waits for; a payload that is not JSON is refused here.
    page.wait("#signal", "shown", json!(null)).await;
    page.click("#signal").await;
    page.wait("#signal-form", "shown", json!(null)).await;
    assert_eq!(page.value("#signal-name").await, "approve");
    page.fill("#signal-payload", "{approved: yes").await;
    page.click("#signal-submit").await;
    page.wait("#signal-error", "text", json!("not JSON")).await;
    assert_eq!(
        api.get(&format!("/api/tasks/{id}")).await["status"],
        "running"
    );
    page.fill("#signal-payload", r#"{"approved": true, "by": "ann"}"#)
        .await;
    page.screenshot("dashboard-send-signal").await;
    page.click("#signal-submit").await;
    page.wait(".badge", "text", json!("completed")).await;
    page.wait(".outcome", "text", json!("approved_by")).await;
    page.wait(".log li", "text", json!("received signal \"approve\""))
        .await;
    page.wait("#signal", "hidden", json!(null)).await;
    page.wait(".page-head .waiting-mark", "gone", json!(null))
        .await;
    let done = api.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(done["return_value"], json!({ "approved_by": "ann" }));

    // A read-only token sees a waiting task, and no Send signal.
    let other = api
        .launch(json!({ "name": "demo.approval", "args": {} }))
        .await;
    page.click("#signout").await;
    page.wait("h1", "text", json!("Sign in")).await;
    page.fill("#token", "reader-secret").await;
    page.click(".signin button[type=submit]").await;
    page.goto(&format!("#/tasks/{other}")).await;
    page.wait(
        ".page-head .waiting-mark",
        "text",
        json!("waiting for \"approve\""),
    )
    .await;
    assert!(
        !page.is_shown("#signal").await,
        "no Send signal for a reader"
    );
    assert_eq!(page.unlabeled().await, Vec::<serde_json::Value>::new());
    let errors = page.js_errors().await;
    page.close().await;
    assert_eq!(
        errors,
        Vec::<String>::new(),
        "JavaScript errors in the dashboard"
    );
}
