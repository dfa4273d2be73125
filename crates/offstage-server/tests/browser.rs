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
        .json(&json!({ "grace_s": 0 }))
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
    let server = reader_and_admin_server();
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
    // The form starts from the type's example and lists the fields its schema describes.
    browser
        .wait("#l-args-fields", "text", json!("Counts from 1 to this"))
        .await;
    let example: Value = serde_json::from_str(&browser.value("#l-args").await).unwrap();
    assert_eq!(example, json!({ "to": 20, "interval_ms": 200 }));

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

/// `method path` through the API with a JSON `body`: the status and the JSON answer (null when
/// there is none).
async fn send(api: &Api, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = api.request(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Puts schedule `name` through the API.
async fn put_schedule(api: &Api, name: &str, cron: &str, task: &str, args: Value) {
    let body = json!({ "cron": cron, "task": task, "args": args });
    let path = format!("/api/schedules/{name}");
    let (status, answer) = send(api, reqwest::Method::PUT, &path, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
}

/// Writes shared document `name` through the API; its new version.
async fn put_shared(api: &Api, name: &str, value: Value) -> u64 {
    let path = format!("/api/shared/{name}");
    let body = json!({ "value": value });
    let (status, answer) = send(api, reqwest::Method::PUT, &path, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    answer["version"].as_u64().unwrap()
}

fn named_row(name: &str) -> String {
    format!("tr[data-name=\"{name}\"]")
}

#[tokio::test]
async fn schedules_tick_live_and_pause_resume_add_and_delete() {
    if !enabled("schedules_tick_live_and_pause_resume_add_and_delete") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    put_schedule(
        &api,
        "every-second",
        "* * * * * *",
        "demo.echo",
        json!({ "value": "tick" }),
    )
    .await;
    put_schedule(
        &api,
        "nightly-report",
        "0 3 * * *",
        "demo.count",
        json!({ "to": 10 }),
    )
    .await;
    let (status, _) = send(
        &api,
        reqwest::Method::POST,
        "/api/schedules/nightly-report/pause",
        None,
    )
    .await;
    assert_eq!(status, 200);

    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto("#/schedules").await;
    browser.wait("h1", "text", json!("Schedules")).await;
    browser.wait("#live", "text", json!("Live")).await;
    let every = named_row("every-second");
    browser
        .wait(&format!("{every} td.next [data-until]"), "count", json!(1))
        .await;
    browser
        .wait(&format!("{every} td.next time"), "count", json!(1))
        .await;
    assert!(browser.text(&every).await.contains("demo.echo"));
    let nightly = named_row("nightly-report");
    browser
        .wait(&format!("{nightly} td.next"), "exact", json!("paused"))
        .await;

    // A tick launches a task: the link to it appears, and moves on to the next one, live.
    let link = format!("{every} a.last-task");
    browser.wait(&link, "count", json!(1)).await;
    let first = browser.attr(&link, "href").await.unwrap();
    browser
        .wait(
            &format!("{link}:not([href=\"{first}\"])"),
            "count",
            json!(1),
        )
        .await;
    let latest = browser.attr(&link, "href").await.unwrap();
    let id = latest.trim_start_matches("#/tasks/");
    assert_eq!(
        api.get(&format!("/api/tasks/{id}")).await["name"],
        "demo.echo"
    );
    browser.screenshot("dashboard-schedules").await;

    // Pause: it reads paused, and the API agrees; Resume: active again, with a next tick.
    browser.click(&format!("{every} button.toggle")).await;
    browser
        .wait(&format!("{every}[data-state=paused]"), "count", json!(1))
        .await;
    browser
        .wait(&format!("{every} td.next"), "exact", json!("paused"))
        .await;
    assert!(browser
        .text(&format!("{every} td.state"))
        .await
        .contains("paused"));
    assert_eq!(api.get("/api/schedules/every-second").await["paused"], true);
    browser
        .wait(&format!("{every} button.toggle"), "exact", json!("Resume"))
        .await;
    browser.click(&format!("{every} button.toggle")).await;
    browser
        .wait(&format!("{every}[data-state=active]"), "count", json!(1))
        .await;
    browser
        .wait(&format!("{every} td.next [data-until]"), "count", json!(1))
        .await;
    assert_eq!(
        api.get("/api/schedules/every-second").await["paused"],
        false
    );

    // The form: a bad cron expression gets the server's word on what to write; a good one is
    // saved and shows up.
    browser.fill("#s-name", "weekly").await;
    browser.fill("#s-cron", "every monday").await;
    browser.choose("#s-task option[value=\"demo.sleep\"]").await;
    browser.fill("#s-args", r#"{"seconds": 1}"#).await;
    browser.click(".schedule-form button[type=submit]").await;
    browser.wait("#s-error", "text", json!("minute hour")).await;
    let error = browser.text("#s-error").await;
    assert!(error.contains("not a cron expression"), "{error}");
    assert_eq!(
        browser.attr("#s-cron", "aria-invalid").await.as_deref(),
        Some("true")
    );
    browser.fill("#s-cron", "0 9 * * 1").await;
    browser.click(".schedule-form button[type=submit]").await;
    let weekly = named_row("weekly");
    browser.wait(&weekly, "count", json!(1)).await;
    browser
        .wait("#s-status", "text", json!("Saved schedule weekly"))
        .await;
    let text = browser.text(&weekly).await;
    assert!(
        text.contains("0 9 * * 1") && text.contains("demo.sleep"),
        "{text}"
    );
    let saved = api.get("/api/schedules/weekly").await;
    assert_eq!(saved["cron"], "0 9 * * 1");
    assert_eq!(saved["args"], json!({ "seconds": 1 }));

    // Delete asks first; keeping it changes nothing; confirming removes it.
    browser.click(&format!("{weekly} button.delete")).await;
    browser.wait("#confirm-dialog", "shown", json!(null)).await;
    assert!(browser.text("#confirm-title").await.contains("weekly"));
    browser.click("#confirm-keep").await;
    browser.wait("#confirm-dialog", "hidden", json!(null)).await;
    assert_eq!(api.get("/api/schedules/weekly").await["name"], "weekly");
    browser.click(&format!("{weekly} button.delete")).await;
    browser.wait("#confirm-dialog", "shown", json!(null)).await;
    browser.click("#confirm-ok").await;
    browser.wait(&weekly, "gone", json!(null)).await;
    let (status, _) = send(&api, reqwest::Method::GET, "/api/schedules/weekly", None).await;
    assert_eq!(status, 404);
    browser.close().await;
}

#[tokio::test]
async fn shared_documents_are_listed_watched_live_and_saved_by_version() {
    if !enabled("shared_documents_are_listed_watched_live_and_saved_by_version") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    put_shared(&api, "crawl.pages", json!({ "pages": 1 })).await;
    put_shared(&api, "feature.flags", json!({ "beta": true })).await;
    put_shared(&api, "feature.flags", json!({ "beta": false })).await;
    // A task holds the lock of a third one until killed.
    put_shared(&api, "jobs.done", json!(41)).await;
    let holder = launch(
        &api,
        "demo.tally",
        json!({ "name": "jobs.done", "hold_ms": 600000 }),
    )
    .await;
    api.until(&holder, |kind, _| kind == "log").await;

    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto("#/shared").await;
    browser.wait("h1", "text", json!("Shared state")).await;
    let pages = named_row("crawl.pages");
    browser.wait(&pages, "count", json!(1)).await;
    browser
        .wait(&format!("{pages} td.version"), "exact", json!("1"))
        .await;
    browser
        .wait(
            &format!("{} td.version", named_row("feature.flags")),
            "exact",
            json!("2"),
        )
        .await;
    assert!(browser.text(&pages).await.contains("free"));
    let held = format!(
        "{} a.holder[href=\"#/tasks/{holder}\"]",
        named_row("jobs.done")
    );
    browser.wait(&held, "count", json!(1)).await;
    assert!(browser.text(&held).await.contains("demo.tally"));
    browser.screenshot("dashboard-shared").await;

    // Its page: the value, then a change made through the API arrives without a reload.
    browser.click(&format!("{pages} a")).await;
    browser.wait("h1", "exact", json!("crawl.pages")).await;
    browser
        .wait("pre[aria-label=Value]", "text", json!("\"pages\": 1"))
        .await;
    browser.wait("#sh-version", "exact", json!("1")).await;
    browser.wait("#live", "text", json!("Live")).await;
    put_shared(&api, "crawl.pages", json!({ "pages": 2 })).await;
    browser
        .wait("pre[aria-label=Value]", "text", json!("\"pages\": 2"))
        .await;
    browser.wait("#sh-version", "exact", json!("2")).await;

    // Save writes the edited value at the version it was edited from.
    browser.wait("#sh-help", "text", json!("version 3")).await;
    browser.fill("#sh-value", r#"{"pages": 10}"#).await;
    browser.click("#sh-save").await;
    browser
        .wait("#sh-status", "text", json!("Saved version 3"))
        .await;
    let saved = api.get("/api/shared/crawl.pages").await;
    assert_eq!(saved["value"], json!({ "pages": 10 }));
    assert_eq!(saved["version"], 3);
    browser.wait("#sh-version", "exact", json!("3")).await;

    // A change saved meanwhile: the page says so, and Save is refused, not overwriting it.
    browser.fill("#sh-value", r#"{"pages": 11}"#).await;
    put_shared(&api, "crawl.pages", json!({ "pages": 99 })).await;
    browser
        .wait("pre[aria-label=Value]", "text", json!("\"pages\": 99"))
        .await;
    browser.wait("#sh-stale", "shown", json!(null)).await;
    browser.click("#sh-save").await;
    browser
        .wait("#sh-error", "text", json!("changed meanwhile"))
        .await;
    let error = browser.text("#sh-error").await;
    assert!(error.contains("version 4, not 3"), "{error}");
    let kept = api.get("/api/shared/crawl.pages").await;
    assert_eq!(kept["value"], json!({ "pages": 99 }));
    assert_eq!(kept["version"], 4);
    browser.screenshot("dashboard-shared-conflict").await;
    // Offered the latest, the editor starts again from it.
    browser.click("#sh-reload").await;
    browser
        .wait("#sh-status", "text", json!("Loaded version 4"))
        .await;
    let text = browser
        .client
        .find(Locator::Css("#sh-value"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(text.contains("99"), "{text}");
    assert!(!browser.is_shown("#sh-error").await);

    // The holder of a lock, with a link to it; a kill releases the lock without writing.
    browser.goto("#/shared/jobs.done").await;
    browser
        .wait("pre[aria-label=Value]", "exact", json!("41"))
        .await;
    browser
        .wait(
            &format!(".facts a.holder[href=\"#/tasks/{holder}\"]"),
            "count",
            json!(1),
        )
        .await;
    api.kill(&holder, Some(0.0)).await;
    assert_eq!(api.finished(&holder).await["status"], "killed");
    assert_eq!(api.get("/api/shared/jobs.done").await["value"], json!(41));

    // A name nobody has written says so plainly; saving creates it.
    browser.goto("#/shared/brand.new").await;
    browser.wait("#sh-missing", "shown", json!(null)).await;
    assert!(browser
        .text("#sh-missing")
        .await
        .contains("No shared document is named brand.new yet"));
    browser.fill("#sh-value", r#"{"n": 1}"#).await;
    browser.click("#sh-save").await;
    browser.wait("#sh-version", "exact", json!("1")).await;
    browser.wait("#sh-missing", "hidden", json!(null)).await;
    assert_eq!(
        api.get("/api/shared/brand.new").await["value"],
        json!({ "n": 1 })
    );
    browser.close().await;
}

#[tokio::test]
async fn a_read_only_token_changes_no_schedule_and_no_shared_state() {
    if !enabled("a_read_only_token_changes_no_schedule_and_no_shared_state") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = reader_and_admin_server();
    let api = Api::new(&server, Some("admin-secret"));
    put_schedule(
        &api,
        "nightly",
        "0 3 * * *",
        "demo.echo",
        json!({ "value": 1 }),
    )
    .await;
    put_shared(&api, "feature.flags", json!({ "beta": true })).await;
    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto("#/schedules").await;
    browser.wait("h1", "text", json!("Sign in")).await;
    browser.fill("#token", "reader-secret").await;
    browser.click(".signin button[type=submit]").await;
    let nightly = named_row("nightly");
    browser.wait(&nightly, "count", json!(1)).await;
    browser
        .wait("main", "text", json!("needs role control"))
        .await;
    let buttons = browser.client.find_all(Locator::Css("main button")).await;
    assert_eq!(buttons.unwrap().len(), 0, "no Pause, Resume or Delete");
    assert!(
        !browser.is_shown(".schedule-form").await,
        "no form to add one"
    );

    browser.goto("#/shared/feature.flags").await;
    browser
        .wait("pre[aria-label=Value]", "text", json!("\"beta\": true"))
        .await;
    browser
        .wait("main", "text", json!("needs role control"))
        .await;
    assert!(!browser.is_shown("#sh-value").await, "no editor");
    assert!(!browser.is_shown("#sh-save").await, "no Save");
    browser.close().await;
}

#[tokio::test]
async fn no_form_control_is_unlabeled_on_any_view() {
    if !enabled("no_form_control_is_unlabeled_on_any_view") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let id = launch(&api, "demo.count", json!({ "to": 3, "interval_ms": 10 })).await;
    put_schedule(
        &api,
        "nightly",
        "0 3 * * *",
        "demo.echo",
        json!({ "value": 1 }),
    )
    .await;
    put_shared(&api, "feature.flags", json!({ "beta": true })).await;
    let browser = Browser::open(&server.url, (1320, 900)).await;
    // Each view, and what shows it has drawn its form controls.
    let task = format!("#/tasks/{id}");
    let views = [
        ("", row(&id)),
        (task.as_str(), "#follow".to_owned()),
        ("#/launch", "#l-name option".to_owned()),
        ("#/schedules", "#s-task option".to_owned()),
        ("#/shared", named_row("feature.flags")),
        ("#/shared/feature.flags", "#sh-value".to_owned()),
        (
            "#/shared/nothing.yet",
            "#sh-missing:not([hidden])".to_owned(),
        ),
    ];
    for (route, drawn) in views {
        browser.goto(route).await;
        browser.wait(&drawn, "count", json!(1)).await;
        assert_eq!(
            browser.unlabeled().await,
            Vec::<Value>::new(),
            "on `{route}`"
        );
    }
    browser.close().await;
}

/// A server with two tokens: `reader-secret` (role read) and `admin-secret` (role control).
fn reader_and_admin_server() -> Server {
    Server::start(
        &SqliteBackend.new_database(),
        &[
            "--token",
            "read:reader-secret",
            "--token",
            "control:admin-secret",
        ],
    )
}

/// A web page on another origin (a second server on another loopback port, and on the name
/// `localhost`) sends the requests any page may send to any server: a `no-cors` `POST` to kill
/// a task and to pause a schedule, and a form post. The server has no tokens, as by default
/// on loopback; before the origin check each one did what it asked (202). The tasks keep
/// running; the dashboard, same-origin, still kills.
#[tokio::test]
async fn a_page_on_another_origin_cannot_kill_and_the_dashboard_still_can() {
    if !enabled("a_page_on_another_origin_cannot_kill_and_the_dashboard_still_can") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let victim = launch(&api, "demo.sleep", json!({ "seconds": 600 })).await;
    put_schedule(
        &api,
        "nightly",
        "0 0 * * *",
        "demo.echo",
        json!({ "value": 1 }),
    )
    .await;

    // The other site: one page, served from another port.
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html("<!doctype html><title>another site</title><p>hello</p>")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, page).await });

    let kill = format!("{}/api/tasks/{victim}/kill", server.url);
    let pause = format!("{}/api/schedules/nightly/pause", server.url);
    for origin in [
        format!("http://{other}"),
        format!("http://localhost:{}", other.port()),
    ] {
        let browser = Browser::open(&origin, (800, 600)).await;
        browser.goto("").await;
        browser.wait("p", "text", json!("hello")).await;
        // Both fetches resolve (an opaque answer), whatever the server did with them.
        const SEND: &str = r#"
            const [kill, pause, done] = arguments;
            Promise.all([
                fetch(kill, { method: "POST", mode: "no-cors", body: "{}" }),
                fetch(pause, { method: "POST", mode: "no-cors" }),
            ]).then(() => done("sent"), (e) => done(String(e)));
        "#;
        let sent = browser
            .client
            .execute_async(SEND, vec![json!(kill), json!(pause)])
            .await
            .unwrap();
        assert_eq!(sent, json!("sent"));
        // A plain HTML form, submitted: a top-level navigation to the server's answer.
        const FORM: &str = r#"
            const form = document.createElement("form");
            form.method = "POST";
            form.action = arguments[0];
            form.enctype = "text/plain";
            document.body.append(form);
            form.submit();
        "#;
        browser
            .client
            .execute(FORM, vec![json!(kill)])
            .await
            .unwrap();
        browser.wait("body", "text", json!("cross_site")).await;
        assert!(browser.text("body").await.contains("--allowed-origin"));
        browser.close().await;
        let task = api.get(&format!("/api/tasks/{victim}")).await;
        assert_eq!(task["status"], "running", "from {origin}: {task}");
        let schedule = api.get("/api/schedules/nightly").await;
        assert_eq!(schedule["paused"], false, "from {origin}: {schedule}");
    }

    // The dashboard is same-origin: its Kill button works as before.
    let browser = Browser::open(&server.url, (1320, 900)).await;
    browser.goto(&format!("#/tasks/{victim}")).await;
    browser.wait(".badge", "text", json!("running")).await;
    browser.click(".page-head button.danger").await;
    browser.wait("#kill-dialog", "shown", json!(null)).await;
    browser.click("#kill-confirm").await;
    browser.wait(".badge", "text", json!("killed")).await;
    assert_eq!(
        api.get(&format!("/api/tasks/{victim}")).await["status"],
        "killed"
    );
    browser.close().await;
}

/// Regression: at 420 px wide the navigation ran off the right edge, and Launch could not be
/// reached.
#[tokio::test]
async fn the_navigation_fits_a_narrow_window() {
    if !enabled("the_navigation_fits_a_narrow_window") {
        return;
    }
    let _one = SERIAL.lock().await;
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let browser = Browser::open(&server.url, (420, 800)).await;
    browser.goto("#/").await;
    browser
        .wait("[data-nav=\"launch\"]", "shown", json!(null))
        .await;
    let outside = browser
        .client
        .execute(
            "return [...document.querySelectorAll('.top nav a')]
                .filter((a) => !a.hidden)
                .filter((a) => a.getBoundingClientRect().right > document.documentElement.clientWidth)
                .map((a) => a.textContent)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(outside, json!([]), "links past the window's right edge");
    browser.close().await;
}
