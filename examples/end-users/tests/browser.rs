//! The example end to end in a real browser: headless Chromium, driven over WebDriver
//! (chromedriver), against a real `end-users` process. A user watches their report to the end
//! and stops another; a second user sees nothing of the first's.
//!
//! Runs when `OFFSTAGE_TEST_BROWSER` is set (ignored, with the reason, otherwise); the harness
//! (`crates/offstage-server/tests/common/browser.rs`) says how it is switched on and how it
//! waits.

use serde_json::{json, Value};

// The project's browser harness, shared with the dashboard's suite.
#[path = "../../../crates/offstage-server/tests/common/browser.rs"]
mod harness;

use harness::{require_browser, Browser};

mod common;

use common::App;

/// The token the app gives this browser's user, asked for as the page does.
async fn token_of(browser: &Browser) -> String {
    const SCRIPT: &str = "const done = arguments[0];
        fetch('/token').then((r) => r.json()).then((minted) => done(minted.token))";
    let token = browser.client.execute_async(SCRIPT, vec![]).await.unwrap();
    token.as_str().expect("a token").to_owned()
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn a_user_watches_and_stops_their_reports_and_another_sees_none_of_them() {
    // Ignored unless the build saw the variable (`build.rs`); run anyway, it must not pass.
    require_browser();
    let app = App::start();

    // User A builds a short report and watches it to the end: every page, live.
    let a = Browser::open(&app.url, (900, 900)).await;
    a.goto("").await;
    a.wait("#reports[data-loaded]", "count", json!(1)).await;
    assert_eq!(a.unlabeled().await, Vec::<Value>::new());
    a.fill("#pages", "10").await;
    a.click("#new button").await;
    a.wait("#count", "exact", json!("10 of 10")).await;
    a.wait("#status", "exact", json!("completed")).await;
    a.wait("#bar", "at-least", json!(10)).await;
    a.wait("#log", "text", json!("page 1 of 10 written")).await;
    a.wait("#log", "text", json!("page 10 of 10 written")).await;
    let completed = a.attr("#report", "data-task").await.unwrap();
    a.wait(&format!("#task-{completed}"), "text", json!("completed"))
        .await;

    // A long one, stopped halfway: it ends killed, short of its total.
    a.fill("#pages", "600").await;
    a.click("#new button").await;
    a.wait("#status", "exact", json!("running")).await;
    a.wait("#bar", "at-least", json!(3)).await;
    let stopped = a.attr("#report", "data-task").await.unwrap();
    assert_ne!(stopped, completed);
    a.click("#stop").await;
    a.wait("#status", "exact", json!("killed")).await;
    let count = a.text("#count").await;
    assert!(!count.starts_with("600 "), "stopped at {count}");
    a.wait(&format!("#task-{stopped}"), "text", json!("killed"))
        .await;
    let token_a = token_of(&a).await;
    assert_eq!(a.js_errors().await, Vec::<String>::new());
    a.close().await;

    // User B, another browser: an empty list, and A's tasks answer as ids no task has.
    let b = Browser::open(&app.url, (900, 900)).await;
    b.goto("").await;
    b.wait("#reports[data-loaded]", "count", json!(1)).await;
    assert_eq!(b.attr("#reports", "data-loaded").await.unwrap(), "0");
    b.wait("#reports li", "gone", json!(null)).await;
    assert!(!b.is_shown("#report").await);
    let token_b = token_of(&b).await;
    assert_ne!(token_a, token_b);
    for id in [&completed, &stopped] {
        assert_eq!(app.status_of_get(id, Some(&token_b)).await, 404);
        assert_eq!(app.status_of_get(id, Some(&token_a)).await, 200);
        // Nor may anyone who sends no token: the API is not open.
        assert_eq!(app.status_of_get(id, None).await, 401);
    }
    b.close().await;
}
