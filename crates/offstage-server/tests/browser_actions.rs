//! Reruns and bulk actions in the dashboard, in a real headless Chromium against a real
//! `offstage serve --demo`: a task's Rerun button with edited args, and the task list's
//! "select all matching this filter" (the count first, then a bulk kill with its progress, and
//! the Actions view with who did it).
//!
//! Runs when `OFFSTAGE_TEST_BROWSER` is set, like `tests/browser.rs`.

mod common;

use common::browser::{require_browser, Browser, SERIAL};
use common::{Api, Server};
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::{json, Value};

const WINDOW: (u32, u32) = (1320, 900);

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn rerun_with_edited_args_opens_a_new_task_linked_to_the_original() {
    require_browser();
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let original = api
        .launch(json!({ "name": "demo.echo", "args": { "value": "first" }, "owner": "ada" }))
        .await;
    api.finished(&original).await;
    let page = Browser::open(&server.url, WINDOW).await;
    page.goto(&format!("#/tasks/{original}")).await;
    page.wait(".badge", "text", json!("completed")).await;
    page.wait("#rerun", "shown", json!(null)).await;

    // The editor starts from the original's args.
    page.click("#rerun").await;
    page.wait("#rerun-form", "shown", json!(null)).await;
    let prefilled: Value = serde_json::from_str(&page.value("#rerun-args").await).unwrap();
    assert_eq!(prefilled, json!({ "value": "first" }));
    assert_eq!(page.unlabeled().await, Vec::<Value>::new());

    // Args that are not JSON are caught before anything is sent.
    page.fill("#rerun-args", "{nope").await;
    page.click("#rerun-submit").await;
    page.wait("#rerun-error", "shown", json!(null)).await;
    assert_eq!(
        api.get(&format!("/api/tasks?rerun_of={original}")).await["tasks"],
        json!([])
    );

    page.fill("#rerun-args", r#"{"value": "second"}"#).await;
    page.click("#rerun-submit").await;
    // The new task's page, linked back to the original.
    page.wait("#rerun-of", "text", json!(original.as_str()))
        .await;
    page.wait(".badge", "text", json!("completed")).await;
    page.wait(".outcome", "text", json!("second")).await;
    let reruns = api.get(&format!("/api/tasks?rerun_of={original}")).await;
    let rerun = &reruns["tasks"][0];
    assert_eq!(rerun["args"], json!({ "value": "second" }));
    assert_eq!(rerun["owner"], "ada");
    page.screenshot("dashboard-rerun").await;

    // The original's page lists it.
    page.goto(&format!("#/tasks/{original}")).await;
    page.wait("#reruns a", "count", json!(1)).await;
    let errors = page.js_errors().await;
    page.close().await;
    assert_eq!(
        errors,
        Vec::<String>::new(),
        "JavaScript errors in the dashboard"
    );
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn select_all_matching_shows_the_count_then_a_bulk_kill_completes() {
    require_browser();
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let mut targets = Vec::new();
    for _ in 0..3 {
        targets.push(
            api.launch(
                json!({ "name": "demo.sleep", "args": { "seconds": 600 }, "owner": "batch" }),
            )
            .await,
        );
    }
    let done = api
        .launch(json!({ "name": "demo.echo", "args": { "value": 1 }, "owner": "batch" }))
        .await;
    api.finished(&done).await;
    let bystander = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 }, "owner": "other" }))
        .await;

    let page = Browser::open(&server.url, WINDOW).await;
    page.goto("#/?owner=batch").await;
    page.wait("tbody tr", "count", json!(4)).await;
    page.click("#bulk-select").await;
    // The counts come first, and nothing has happened yet.
    page.wait("#bulk-live", "exact", json!("3")).await;
    page.wait("#bulk-finished", "exact", json!("1")).await;
    assert_eq!(api.get("/api/actions").await["actions"], json!([]));
    for id in &targets {
        assert_eq!(
            api.get(&format!("/api/tasks/{id}")).await["is_running"],
            true
        );
    }
    assert_eq!(page.unlabeled().await, Vec::<Value>::new());
    page.screenshot("dashboard-bulk-count").await;

    // Kill asks first; cancelling changes nothing.
    page.click("#bulk-kill").await;
    page.wait("#confirm-dialog", "shown", json!(null)).await;
    page.click("#confirm-keep").await;
    page.wait("#confirm-dialog", "hidden", json!(null)).await;
    assert_eq!(api.get("/api/actions").await["actions"], json!([]));

    page.click("#bulk-kill").await;
    page.wait("#confirm-dialog", "shown", json!(null)).await;
    page.click("#confirm-ok").await;
    page.wait("#bulk-status[data-status=completed]", "count", json!(1))
        .await;
    page.wait("#bulk-status", "text", json!("3 of 3")).await;
    for id in &targets {
        assert_eq!(
            api.get(&format!("/api/tasks/{id}")).await["status"],
            "killed"
        );
    }
    assert_eq!(
        api.get(&format!("/api/tasks/{bystander}")).await["is_running"],
        true
    );

    // Filtered by a finished status, only the finished side is counted; a paced rerun of them
    // runs to its end.
    page.goto("#/?owner=batch&status=killed").await;
    page.wait("tbody tr[data-status=killed]", "count", json!(3))
        .await;
    page.click("#bulk-select").await;
    page.wait("#bulk-finished", "exact", json!("3")).await;
    page.wait("#bulk-live", "exact", json!("0")).await;
    page.fill("#bulk-per-s", "50").await;
    page.click("#bulk-rerun").await;
    page.wait("#confirm-dialog", "shown", json!(null)).await;
    page.click("#confirm-ok").await;
    page.wait("#bulk-status[data-status=completed]", "count", json!(1))
        .await;
    for id in &targets {
        let reruns = api.get(&format!("/api/tasks?rerun_of={id}")).await;
        assert_eq!(reruns["tasks"].as_array().unwrap().len(), 1, "{reruns}");
    }

    // The Actions view says who did what.
    page.goto("#/actions").await;
    page.wait(
        "tr[data-verb=kill][data-status=completed]",
        "count",
        json!(1),
    )
    .await;
    page.wait(".actions-table .actor", "text", json!("anonymous"))
        .await;
    page.wait(".actions-table .filter", "text", json!("owner=batch"))
        .await;
    page.screenshot("dashboard-actions").await;
    let errors = page.js_errors().await;
    page.close().await;
    assert_eq!(
        errors,
        Vec::<String>::new(),
        "JavaScript errors in the dashboard"
    );
    api.kill(&bystander, Some(0.0)).await;
}

/// The task page shows the last checkpoint and when it was saved, live while the task runs
/// (the `checkpoint` event); its Rerun offers "start from its last checkpoint", and the new
/// task starts with it.
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn the_task_page_shows_the_checkpoint_live_and_reruns_from_it() {
    require_browser();
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let slow = api
        .launch(json!({ "name": "demo.import",
            "args": { "items": 400, "every": 2, "interval_ms": 100 } }))
        .await;
    let page = Browser::open(&server.url, WINDOW).await;
    page.goto(&format!("#/tasks/{slow}")).await;
    page.wait(".badge", "text", json!("running")).await;
    // Saved after the page loaded: only the event can have brought these.
    page.wait("#checkpoint", "text", json!("\"done\": 4")).await;
    page.wait("#checkpoint", "text", json!("\"done\": 6")).await;
    page.wait("#checkpoint-note", "text", json!("saved")).await;
    api.kill(&slow, None).await;
    page.wait(".badge", "text", json!("killed")).await;
    page.screenshot("dashboard-checkpoint").await;

    // Rerun from it: the box is there because the task saved a checkpoint.
    page.wait("#rerun", "shown", json!(null)).await;
    page.click("#rerun").await;
    page.wait("#rerun-form", "shown", json!(null)).await;
    page.wait("#rerun-from-checkpoint", "shown", json!(null))
        .await;
    assert_eq!(page.unlabeled().await, Vec::<Value>::new());
    page.click("#rerun-from-checkpoint").await;
    page.click("#rerun-submit").await;
    page.wait("#rerun-of", "text", json!(slow.as_str())).await;
    let reruns = api.get(&format!("/api/tasks?rerun_of={slow}")).await;
    let rerun = &reruns["tasks"][0];
    let killed = api.get(&format!("/api/tasks/{slow}")).await;
    assert_eq!(rerun["checkpoint"], killed["checkpoint"], "{rerun}");
    let rerun_id = rerun["id"].as_str().unwrap();
    api.kill(rerun_id, None).await;

    // A task that saved none: no such box.
    let echo = api
        .launch(json!({ "name": "demo.echo", "args": { "value": 1 } }))
        .await;
    api.finished(&echo).await;
    page.goto(&format!("#/tasks/{echo}")).await;
    page.wait(".badge", "text", json!("completed")).await;
    page.wait("#checkpoint-note", "text", json!("none saved"))
        .await;
    page.click("#rerun").await;
    page.wait("#rerun-form", "shown", json!(null)).await;
    page.wait("#rerun-from-checkpoint", "hidden", json!(null))
        .await;
    let errors = page.js_errors().await;
    page.close().await;
    assert_eq!(
        errors,
        Vec::<String>::new(),
        "JavaScript errors in the dashboard"
    );
}
