//! The dashboard's task types view in a real browser (headless Chromium over WebDriver,
//! against a real `offstage serve --demo`): for `demo.tenant`, limited per tenant, the top
//! concurrency keys with their running and queued counts, following launches live; the
//! waiting sentence of a task whose key is full.
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
async fn the_task_types_view_shows_the_top_keys_and_a_full_key_says_why() {
    require_browser();
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let page = Browser::open(&server.url, (1320, 900)).await;
    page.goto("#/task-types").await;
    let tenant = r#"tr[data-name="demo.tenant"]"#;
    page.wait(
        &format!("{tenant} td.keys"),
        "text",
        json!("2 per key (args.tenant)"),
    )
    .await;
    page.wait(
        &format!("{tenant} td.keys"),
        "text",
        json!("none with work"),
    )
    .await;
    let echo = r#"tr[data-name="demo.echo"] td.keys"#;
    page.wait(echo, "exact", json!("—")).await;

    let job = json!({"name": "demo.tenant", "args": {"tenant": "acme", "seconds": 60}});
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(api.launch(job.clone()).await);
    }
    api.launch(json!({"name": "demo.tenant", "args": {"tenant": "globex", "seconds": 60}}))
        .await;
    // Live: the counts follow the launches and starts.
    page.wait(
        &format!(r#"{tenant} li[data-key="acme"] .counts"#),
        "exact",
        json!("2 running, 1 queued"),
    )
    .await;
    page.wait(
        &format!(r#"{tenant} li[data-key="globex"] .counts"#),
        "exact",
        json!("1 running, 0 queued"),
    )
    .await;
    page.screenshot("dashboard-task-types-keys").await;

    // The third of acme waits, and its page says its key is full.
    page.goto(&format!("#/tasks/{}", ids[2])).await;
    page.wait(".notice.waiting", "text", json!("per concurrency key"))
        .await;
    assert_eq!(
        page.attr(".notice.waiting", "data-code").await.as_deref(),
        Some("key_limit")
    );
    assert!(page.js_errors().await.is_empty());
    page.close().await;
}
