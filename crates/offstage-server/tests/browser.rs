//! The dashboard in a real browser: headless Chromium, driven over WebDriver (chromedriver),
//! against a real `offstage serve --demo` process.
//!
//! Runs when `OFFSTAGE_TEST_BROWSER` is set; `tests/common/browser.rs` has the harness and
//! says how it is switched on, where screenshots go and how it waits.

mod common;

use common::{Api, Server};
use fantoccini::Locator;
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::{json, Value};

use common::browser::{enabled, Browser, SERIAL};

/// Launches `name` with `args`, owned by "ada", through the API; the task's id.
async fn launch(api: &Api, name: &str, args: Value) -> String {
    api.launch(json!({ "name": name, "args": args, "owner": "ada" }))
        .await
}

fn row(id: &str) -> String {
    format!("tr[data-id=\"{id}\"]")
}

#[tokio::test]
async fn a_launched_task_appears_live_with_progress_and_logs() {
    if !enabled("a_launched_task_appears_live_with_progress_and_logs") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto("").await;
    browser.wait("h1", "text", json!("Tasks")).await;
    browser.wait("#live", "text", json!("Live")).await;
    browser.wait(".empty", "text", json!("No tasks yet")).await;

    // Launched through the API, it shows up without a reload, and its bar moves.
    let id = launch(&api, "demo.count", json!({ "to": 40, "interval_ms": 100 })).await;
    browser.wait(&row(&id), "count", json!(1)).await;
    browser
        .wait(&format!("{} .badge", row(&id)), "text", json!("running"))
        .await;
    let bar = format!("{} progress", row(&id));
    browser.wait(&bar, "at-least", json!(0.05)).await;
    browser.wait(&bar, "at-least", json!(0.2)).await;
    assert!(browser.text(&row(&id)).await.contains("ada"), "owner shown");

    // Its page: the log streams and the bar keeps moving.
    browser.click(&format!("{} td.name a", row(&id))).await;
    browser.wait("h1", "text", json!("demo.count")).await;
    browser.wait(".log li", "count", json!(12)).await;
    let lines = browser.text(".log").await;
    assert!(lines.contains("counted 1 of 40"), "{lines}");
    browser.wait(".log li", "count", json!(16)).await;
    browser
        .wait(".big-progress progress", "at-least", json!(0.4))
        .await;
    browser
        .wait("pre[aria-label=State]", "text", json!("\"total\": 40"))
        .await;
    browser.screenshot("dashboard-task-running").await;
    assert_eq!(browser.unlabeled().await, Vec::<Value>::new());

    // It ends completed, with its return value, and the log has every line.
    browser.wait(".badge", "text", json!("completed")).await;
    browser
        .wait(".outcome", "text", json!("Return value"))
        .await;
    browser.wait(".log li", "count", json!(40)).await;
    assert!(browser.text(".outcome pre").await.contains("40"));
    browser.wait("#live", "text", json!("Task over")).await;
    browser.close().await;
}

#[tokio::test]
async fn the_list_shows_every_status_and_filters() {
    if !enabled("the_list_shows_every_status_and_filters") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let done = launch(&api, "demo.echo", json!({ "value": "hi" })).await;
    let failed = launch(&api, "demo.fail", json!({ "message": "the disk is full" })).await;
    let killed = launch(&api, "demo.sleep", json!({ "seconds": 600 })).await;
    api.request(reqwest::Method::POST, &format!("/api/tasks/{killed}/kill"))
        .json(&json!({ "grace_ms": 0 }))
        .send()
        .await
        .unwrap();
    for id in [&done, &failed, &killed] {
        api.finished(id).await;
    }
    let counting = launch(&api, "demo.count", json!({ "to": 500, "interval_ms": 50 })).await;
    let sleeping = launch(&api, "demo.sleep", json!({ "seconds": 600 })).await;
    launch(&api, "demo.count", json!({ "to": 90, "interval_ms": 40 })).await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let response = api
        .request(reqwest::Method::POST, "/api/tasks")
        .json(&json!({ "name": "demo.echo", "args": { "value": 1 }, "run_at": later }))
        .send()
        .await
        .unwrap();
    let queued: Value = response.json().await.unwrap();
    let queued = queued["id"].as_str().unwrap().to_owned();

    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto("").await;
    for (id, status) in [
        (&done, "completed"),
        (&failed, "failed"),
        (&killed, "killed"),
        (&counting, "running"),
        (&sleeping, "running"),
        (&queued, "queued"),
    ] {
        browser
            .wait(&format!("{} .badge", row(id)), "text", json!(status))
            .await;
    }
    browser
        .wait(
            &format!("{} progress", row(&counting)),
            "at-least",
            json!(0.02),
        )
        .await;
    assert!(browser.text(&row(&queued)).await.contains("waiting"));
    for (status, count) in [
        ("all", "7"),
        ("running", "3"),
        ("failed", "1"),
        ("queued", "1"),
    ] {
        browser
            .wait(
                &format!(".summary [data-status={status}] .count"),
                "exact",
                json!(count),
            )
            .await;
    }
    browser.screenshot("dashboard-tasks").await;
    assert_eq!(browser.unlabeled().await, Vec::<Value>::new());
    // The counts follow what happens.
    let failed_too = launch(&api, "demo.fail", json!({ "message": "again" })).await;
    browser.wait(&row(&failed_too), "count", json!(1)).await;
    browser
        .wait(".summary [data-status=failed] .count", "exact", json!("2"))
        .await;

    // Filtering by status keeps only those, and the filter is in the URL.
    browser.goto("#/?status=failed").await;
    browser.wait(&row(&failed), "count", json!(1)).await;
    browser.wait(&row(&done), "gone", json!(null)).await;
    browser.wait(&row(&failed_too), "count", json!(1)).await;
    let rows = browser.client.find_all(Locator::Css("tbody tr")).await;
    assert_eq!(rows.unwrap().len(), 2, "only the two failed tasks");
    assert!(browser
        .text(".summary [aria-current]")
        .await
        .contains("failed"));

    // Find by id opens the task; a malformed id says what an id looks like.
    browser.goto("").await;
    browser.wait(&row(&done), "count", json!(1)).await;
    browser.fill("#f-id", "not-an-id").await;
    browser.click(".find button").await;
    browser
        .wait("#f-id-error", "text", json!("A task id looks like"))
        .await;
    browser.fill("#f-id", &done).await;
    browser.click(".find button").await;
    browser.wait("h1", "text", json!("demo.echo")).await;
    browser.wait(".outcome", "text", json!("\"hi\"")).await;
    browser.close().await;
}

#[tokio::test]
async fn kill_ends_the_task_killed_and_the_page_shows_it() {
    if !enabled("kill_ends_the_task_killed_and_the_page_shows_it") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let id = launch(
        &api,
        "demo.count",
        json!({ "to": 100000, "interval_ms": 20 }),
    )
    .await;
    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto(&format!("#/tasks/{id}")).await;
    browser.wait(".badge", "text", json!("running")).await;
    browser.wait(".log li", "count", json!(3)).await;

    // Kill asks first; keeping it running changes nothing.
    browser.click(".page-head button.danger").await;
    browser.wait("#kill-dialog", "shown", json!(null)).await;
    assert!(browser.text("#kill-text").await.contains(&id));
    browser.click("#kill-dialog button[value=cancel]").await;
    browser.wait("#kill-dialog", "hidden", json!(null)).await;
    assert_eq!(
        api.get(&format!("/api/tasks/{id}")).await["status"],
        "running"
    );

    browser.click(".page-head button.danger").await;
    browser.wait("#kill-dialog", "shown", json!(null)).await;
    browser.click("#kill-confirm").await;
    browser.wait(".badge", "text", json!("killed")).await;
    browser
        .wait(".outcome", "text", json!("Ended killed"))
        .await;
    browser
        .wait(".page-head button.danger", "hidden", json!(null))
        .await;
    assert_eq!(
        api.get(&format!("/api/tasks/{id}")).await["status"],
        "killed"
    );
    browser.screenshot("dashboard-task-killed").await;
    browser.close().await;
}

#[tokio::test]
async fn a_failed_task_shows_its_error() {
    if !enabled("a_failed_task_shows_its_error") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let id = launch(&api, "demo.fail", json!({ "message": "the disk is full" })).await;
    api.finished(&id).await;
    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto(&format!("#/tasks/{id}")).await;
    browser.wait(".badge", "text", json!("failed")).await;
    browser
        .wait(".outcome .kind", "text", json!("demo_failure"))
        .await;
    browser
        .wait(".outcome .message", "text", json!("the disk is full"))
        .await;
    browser.screenshot("dashboard-task-failed").await;

    // An id that names no task says so.
    browser
        .goto("#/tasks/00000000-0000-7000-8000-000000000000")
        .await;
    browser.wait("h1", "text", json!("No such task")).await;
    browser.close().await;
}

#[tokio::test]
async fn a_reload_keeps_the_view_and_its_live_data() {
    if !enabled("a_reload_keeps_the_view_and_its_live_data") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let id = launch(
        &api,
        "demo.count",
        json!({ "to": 100000, "interval_ms": 30 }),
    )
    .await;
    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto(&format!("#/tasks/{id}")).await;
    browser.wait(".log li", "count", json!(5)).await;
    browser.client.refresh().await.unwrap();
    // The same task, its earlier lines read back, and new ones still streaming.
    browser.wait("h1", "text", json!("demo.count")).await;
    browser
        .wait(".log li[data-seq=\"1\"]", "count", json!(1))
        .await;
    browser.wait(".log li", "count", json!(12)).await;
    let seqs: Vec<u64> = browser
        .client
        .execute(
            "return [...document.querySelectorAll('.log li')].map((li) => +li.dataset.seq)",
            vec![],
        )
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "every line once, in order: {seqs:?}"
    );
    browser
        .wait(".big-progress progress", "count", json!(1))
        .await;

    // A filtered list keeps its filter.
    browser.goto("#/?status=running&name=demo.count").await;
    browser.wait(&row(&id), "count", json!(1)).await;
    browser.client.refresh().await.unwrap();
    browser.wait(&row(&id), "count", json!(1)).await;
    let chosen = browser
        .client
        .find(Locator::Css("#f-status"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("running"));
    browser.close().await;
}

#[tokio::test]
async fn tokens_sign_in_and_a_read_only_token_sees_no_kill_or_launch() {
    if !enabled("tokens_sign_in_and_a_read_only_token_sees_no_kill_or_launch") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(
        &SqliteBackend.new_database(),
        &[
            "--token",
            "read:reader-secret",
            "--token",
            "control:admin-secret",
        ],
    );
    let api = Api::new(&server, Some("admin-secret"));
    let id = launch(&api, "demo.sleep", json!({ "seconds": 600 })).await;
    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto(&format!("#/tasks/{id}")).await;
    browser.wait("h1", "text", json!("Sign in")).await;
    browser.fill("#token", "wrong").await;
    browser.click(".signin button[type=submit]").await;
    browser
        .wait(
            ".signin [role=alert]",
            "text",
            json!("not one this server knows"),
        )
        .await;
    browser.screenshot("dashboard-sign-in").await;
    assert_eq!(browser.unlabeled().await, Vec::<Value>::new());

    browser.fill("#token", "reader-secret").await;
    browser.click(".signin button[type=submit]").await;
    browser.wait("h1", "text", json!("demo.sleep")).await;
    browser.wait(".badge", "text", json!("running")).await;
    browser.wait("#who", "text", json!("read-only")).await;
    assert!(
        !browser.is_shown(".page-head button.danger").await,
        "no Kill"
    );
    assert!(!browser.is_shown("[data-nav=launch]").await, "no Launch");

    // The token lasts the tab's session: a reload stays signed in.
    browser.client.refresh().await.unwrap();
    browser.wait(".badge", "text", json!("running")).await;
    assert!(!browser.is_shown(".page-head button.danger").await);

    // A control token sees both.
    browser.click("#signout").await;
    browser.wait("h1", "text", json!("Sign in")).await;
    browser.fill("#token", "admin-secret").await;
    browser.click(".signin button[type=submit]").await;
    browser
        .wait(".page-head button.danger", "shown", json!(null))
        .await;
    assert!(browser.is_shown("[data-nav=launch]").await);
    browser.close().await;
}

#[tokio::test]
async fn the_launch_form_shows_why_args_do_not_fit_then_launches() {
    if !enabled("the_launch_form_shows_why_args_do_not_fit_then_launches") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto("#/launch").await;
    browser.choose("#l-name option[value=\"demo.count\"]").await;

    browser.fill("#l-args", "{\"to\": ").await;
    browser.click(".launch button[type=submit]").await;
    browser.wait("#l-error", "text", json!("not JSON")).await;

    browser.fill("#l-args", r#"{"to": "many"}"#).await;
    browser.click(".launch button[type=submit]").await;
    browser
        .wait("#l-error", "text", json!("Not launched"))
        .await;
    let error = browser.text("#l-error").await;
    assert!(error.contains("demo.count"), "{error}");
    browser.screenshot("dashboard-launch-error").await;
    assert_eq!(browser.unlabeled().await, Vec::<Value>::new());

    browser
        .fill("#l-args", r#"{"to": 3, "interval_ms": 10}"#)
        .await;
    browser.click(".launch summary").await;
    browser.fill("#l-owner", "grace").await;
    browser.click(".launch button[type=submit]").await;
    browser.wait("h1", "text", json!("demo.count")).await;
    browser.wait(".badge", "text", json!("completed")).await;
    browser.wait(".facts", "text", json!("grace")).await;

    // A key with "refuse": the second launch is refused, naming the live task; "open the live
    // one" goes to it.
    let launch_keyed = |conflict: &'static str| {
        let browser = &browser;
        async move {
            browser.goto("#/launch").await;
            browser.choose("#l-name option[value=\"demo.sleep\"]").await;
            browser.fill("#l-args", r#"{"seconds": 600}"#).await;
            browser
                .client
                .execute(
                    "document.querySelector('.launch details').open = true",
                    vec![],
                )
                .await
                .unwrap();
            browser.fill("#l-key", "nightly").await;
            browser
                .choose(&format!("#l-conflict option[value={conflict}]"))
                .await;
            browser.click(".launch button[type=submit]").await;
        }
    };
    launch_keyed("reject").await;
    browser.wait("h1", "text", json!("demo.sleep")).await;
    let url = browser.client.current_url().await.unwrap();
    let first = url
        .fragment()
        .unwrap()
        .trim_start_matches("/tasks/")
        .to_owned();
    launch_keyed("reject").await;
    browser
        .wait("#l-error", "text", json!(first.as_str()))
        .await;
    launch_keyed("existing").await;
    browser.wait("h1", "text", json!("demo.sleep")).await;
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.fragment().unwrap(), format!("/tasks/{first}"));
    browser.close().await;
}

#[tokio::test]
async fn the_list_pages_through_history_newest_first() {
    if !enabled("the_list_pages_through_history_newest_first") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(launch(&api, "demo.echo", json!({ "value": i })).await);
    }
    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto("").await;
    browser.wait(&row(&ids[59]), "count", json!(1)).await;
    let shown = |browser: &Browser| {
        let client = browser.client.clone();
        async move {
            let ids = client
                .execute(
                    "return [...document.querySelectorAll('tbody tr')].map((tr) => tr.dataset.id)",
                    vec![],
                )
                .await
                .unwrap();
            serde_json::from_value::<Vec<String>>(ids).unwrap()
        }
    };
    let first: Vec<String> = ids[10..].iter().rev().cloned().collect();
    assert_eq!(shown(&browser).await, first, "the newest 50, newest first");

    browser.click(".pager a:not([hidden])").await;
    browser.wait(&row(&ids[0]), "count", json!(1)).await;
    let rest: Vec<String> = ids[..10].iter().rev().cloned().collect();
    assert_eq!(shown(&browser).await, rest, "then the 10 oldest");
    // A new task does not land on an older page.
    let newer = launch(&api, "demo.echo", json!({ "value": "new" })).await;
    api.finished(&newer).await;
    // The counts moving shows the page has had the new task's events.
    browser
        .wait(".summary [data-status=all] .count", "exact", json!("61"))
        .await;
    assert!(!shown(&browser).await.contains(&newer));
    assert_eq!(shown(&browser).await, rest);
    browser.client.back().await.unwrap();
    browser.wait(&row(&newer), "count", json!(1)).await;
    assert_eq!(shown(&browser).await.len(), 50);
    browser.close().await;
}
