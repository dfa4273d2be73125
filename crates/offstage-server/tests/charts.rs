//! The dashboard's charts (`#/charts`) in a real browser: headless Chromium over WebDriver
//! against a real `offstage serve --demo` process. The charts are SVG drawn by `chart.js`;
//! the test reads what they draw from their elements (a path per task type, with the sum
//! and count of its points in `data-total` and `data-points`), not from pixels.
//!
//! Runs when `OFFSTAGE_TEST_BROWSER` is set (see `tests/common/browser.rs`).

mod common;

use common::browser::{require_browser, Browser, SERIAL};
use common::{Api, Server};
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::json;

/// The path of `series` in chart `chart`, with extra attribute conditions.
fn path(chart: &str, series: &str, extra: &str) -> String {
    format!("svg[data-chart=\"{chart}\"] path[data-series=\"{series}\"]{extra}")
}

/// Launches `name` with `args` `n` times through the API and waits until each has ended.
async fn run(api: &Api, name: &str, args: serde_json::Value, n: usize) {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(api.launch(json!({ "name": name, "args": args })).await);
    }
    for id in ids {
        api.finished(&id).await;
    }
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn charts_draw_each_task_type_s_completions_failures_queue_and_waits() {
    require_browser();
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    run(&api, "demo.echo", json!({ "value": 1 }), 3).await;
    run(&api, "demo.fail", json!({ "message": "no" }), 2).await;

    let page = Browser::open(&server.url, (1320, 900)).await;
    page.goto("#/charts").await;
    page.wait("h1", "text", json!("Charts")).await;
    page.wait("[data-nav=charts][aria-current=page]", "count", json!(1))
        .await;

    // A line per task type in the completed and failed charts, adding up to what ran.
    page.wait(
        &path("completed", "demo.echo", "[data-total=\"3\"]"),
        "count",
        json!(1),
    )
    .await;
    page.wait(
        &path("completed", "demo.fail", "[data-total=\"0\"]"),
        "count",
        json!(1),
    )
    .await;
    page.wait(
        &path("failed", "demo.fail", "[data-total=\"2\"]"),
        "count",
        json!(1),
    )
    .await;
    page.wait(
        &path("failed", "demo.echo", "[data-total=\"0\"]"),
        "count",
        json!(1),
    )
    .await;
    // One point per minute of the hour, the time along the bottom, a hover read-out each.
    assert_eq!(
        page.attr(&path("completed", "demo.echo", ""), "data-points")
            .await
            .as_deref(),
        Some("60")
    );
    page.wait("svg[data-chart=completed] .tick.x", "count", json!(5))
        .await;
    page.wait("svg[data-chart=completed] rect.hover", "count", json!(60))
        .await;
    page.wait(
        "svg[data-chart=queued] path[data-series]",
        "count",
        json!(2),
    )
    .await;
    // The wait chart shows p50, p90 and p99 of one type, with a point where tasks started.
    page.wait(
        "svg[data-chart=wait] path[data-series=p99]",
        "count",
        json!(1),
    )
    .await;
    let waited = page
        .attr("svg[data-chart=wait] path[data-series=p50]", "data-points")
        .await
        .unwrap();
    assert!(waited.parse::<u32>().unwrap() >= 1, "p50 points: {waited}");
    // The legend names each type with its totals.
    page.wait("li[data-type=\"demo.echo\"]", "text", json!("3 completed"))
        .await;
    page.wait("li[data-type=\"demo.fail\"]", "text", json!("2 failed"))
        .await;
    assert_eq!(page.unlabeled().await, Vec::<serde_json::Value>::new());
    page.screenshot("dashboard-charts").await;

    // More tasks show on the next read.
    run(&api, "demo.echo", json!({ "value": 2 }), 2).await;
    page.click("#ch-reload").await;
    page.wait(
        &path("completed", "demo.echo", "[data-total=\"5\"]"),
        "count",
        json!(1),
    )
    .await;

    // The day: 144 ten-minute buckets, the same totals.
    page.click("#ch-day").await;
    page.wait("#ch-day[aria-pressed=true]", "count", json!(1))
        .await;
    page.wait("svg[data-chart=completed] rect.hover", "count", json!(144))
        .await;
    page.wait(
        &path("completed", "demo.echo", "[data-total=\"5\"]"),
        "count",
        json!(1),
    )
    .await;
    page.wait("h2", "text", json!("Completed per 10 minutes"))
        .await;

    let errors = page.js_errors().await;
    page.close().await;
    assert_eq!(
        errors,
        Vec::<String>::new(),
        "JavaScript errors on the charts page"
    );
}
