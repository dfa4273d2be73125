//! The dashboard in a real browser: headless Chromium, driven over WebDriver (chromedriver),
//! against a real `offstage serve --demo` process.
//!
//! Runs when `OFFSTAGE_TEST_BROWSER` is set; `tests/common/browser.rs` has the harness and
//! says how it is switched on, where screenshots go and how it waits. Each test starts a
//! [`Dashboard`] and reads as what it checks.

mod common;

use std::ops::Deref;

use common::browser::{require_browser, Browser, SERIAL};
use common::{Api, Server};
use fantoccini::Locator;
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::{json, Value};

/// The window most tests look through.
const WINDOW: (u32, u32) = (1320, 900);

/// One test's dashboard: an `offstage serve --demo` process on a new SQLite file, a client of
/// its API, and a headless Chromium on it. Everything stops when it is dropped, a failing test
/// too; [`Dashboard::close`] ends a test that passed, and checks the pages had no JavaScript
/// error. It derefs to its [`Browser`], so a test says `page.wait(...)`.
struct Dashboard {
    /// The browser; dropped first, so chromedriver and Chromium go before the server.
    browser: Browser,
    /// The server's API, as another client (the CLI, a script) uses it.
    api: Api,
    server: Server,
    /// One browser at a time in this binary: held until the end of the test.
    _one: tokio::sync::MutexGuard<'static, ()>,
}

impl Dashboard {
    /// The dashboard of a server without tokens, in a 1320×900 window. `None` when the browser
    /// suite is off, after saying so.
    async fn start() -> Dashboard {
        Dashboard::start_with(&[], None, WINDOW).await
    }

    /// The dashboard of a server with two tokens: `reader-secret` (role read) and
    /// `admin-secret` (role control), the one the API client uses. The browser has none yet.
    async fn with_reader_and_admin() -> Dashboard {
        let tokens = [
            "--token",
            "read:reader-secret",
            "--token",
            "control:admin-secret",
        ];
        Dashboard::start_with(&tokens, Some("admin-secret"), WINDOW).await
    }

    /// A server started with `args`, its API used with `token`, and a browser `window` (width,
    /// height) on it. The one place that decides whether the browser suite runs.
    async fn start_with(args: &[&str], token: Option<&str>, window: (u32, u32)) -> Dashboard {
        require_browser();
        let one = SERIAL.lock().await;
        let server = Server::start(&SqliteBackend.new_database(), args);
        let api = Api::new(&server, token);
        let browser = Browser::open(&server.url, window).await;
        Dashboard {
            browser,
            api,
            server,
            _one: one,
        }
    }

    /// Ends a test that passed: the browser closes, and no page it showed had a JavaScript
    /// error (an exception, a module that did not load, a script the CSP refused).
    async fn close(self) {
        let errors = self.browser.js_errors().await;
        self.browser.close().await;
        assert_eq!(
            errors,
            Vec::<String>::new(),
            "JavaScript errors in the dashboard"
        );
    }

    /// Launches `name` with `args`, owned by "ada", through the API; the task's id.
    async fn launch(&self, name: &str, args: Value) -> String {
        self.api
            .launch(json!({ "name": name, "args": args, "owner": "ada" }))
            .await
    }

    /// `method path` through the API with a JSON `body`: the status and the JSON answer (null
    /// when there is none).
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.api.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Puts schedule `name` through the API.
    async fn put_schedule(&self, name: &str, cron: &str, task: &str, args: Value) {
        let body = json!({ "cron": cron, "task": task, "args": args });
        let path = format!("/api/schedules/{name}");
        let (status, answer) = self.send(reqwest::Method::PUT, &path, Some(body)).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// Writes shared document `name` through the API; its new version.
    async fn put_shared(&self, name: &str, value: Value) -> u64 {
        let path = format!("/api/shared/{name}");
        let body = json!({ "value": value });
        let (status, answer) = self.send(reqwest::Method::PUT, &path, Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        answer["version"].as_u64().unwrap()
    }
}

impl Deref for Dashboard {
    type Target = Browser;

    fn deref(&self) -> &Browser {
        &self.browser
    }
}

/// The task list's row of task `id`.
fn row(id: &str) -> String {
    format!("tr[data-id=\"{id}\"]")
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn a_launched_task_appears_live_with_progress_and_logs() {
    let page = Dashboard::start().await;
    page.goto("").await;
    page.wait("h1", "text", json!("Tasks")).await;
    page.wait("#live", "text", json!("Live")).await;
    page.wait(".empty", "text", json!("No tasks yet")).await;

    // Launched through the API, it shows up without a reload, and its bar moves.
    let id = page
        .launch("demo.count", json!({ "to": 40, "interval_ms": 100 }))
        .await;
    page.wait(&row(&id), "count", json!(1)).await;
    page.wait(&format!("{} .badge", row(&id)), "text", json!("running"))
        .await;
    let bar = format!("{} progress", row(&id));
    page.wait(&bar, "at-least", json!(0.05)).await;
    page.wait(&bar, "at-least", json!(0.2)).await;
    assert!(page.text(&row(&id)).await.contains("ada"), "owner shown");

    // Its page: the log streams and the bar keeps moving.
    page.click(&format!("{} td.name a", row(&id))).await;
    page.wait("h1", "text", json!("demo.count")).await;
    page.wait(".log li", "count", json!(12)).await;
    let lines = page.text(".log").await;
    assert!(lines.contains("counted 1 of 40"), "{lines}");
    page.wait(".log li", "count", json!(16)).await;
    page.wait(".big-progress progress", "at-least", json!(0.4))
        .await;
    page.wait("pre[aria-label=State]", "text", json!("\"total\": 40"))
        .await;
    page.screenshot("dashboard-task-running").await;
    assert_eq!(page.unlabeled().await, Vec::<Value>::new());

    // It ends completed, with its return value, and the log has every line.
    page.wait(".badge", "text", json!("completed")).await;
    page.wait(".outcome", "text", json!("Return value")).await;
    page.wait(".log li", "count", json!(40)).await;
    assert!(page.text(".outcome pre").await.contains("40"));
    page.wait("#live", "text", json!("Task over")).await;
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn the_list_shows_every_status_and_filters() {
    let page = Dashboard::start().await;
    let done = page.launch("demo.echo", json!({ "value": "hi" })).await;
    let failed = page
        .launch("demo.fail", json!({ "message": "the disk is full" }))
        .await;
    let killed = page.launch("demo.sleep", json!({ "seconds": 600 })).await;
    page.api
        .request(reqwest::Method::POST, &format!("/api/tasks/{killed}/kill"))
        .json(&json!({ "grace_s": 0 }))
        .send()
        .await
        .unwrap();
    for id in [&done, &failed, &killed] {
        page.api.finished(id).await;
    }
    let counting = page
        .launch("demo.count", json!({ "to": 500, "interval_ms": 50 }))
        .await;
    let sleeping = page.launch("demo.sleep", json!({ "seconds": 600 })).await;
    page.launch("demo.count", json!({ "to": 90, "interval_ms": 40 }))
        .await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let response = page
        .api
        .request(reqwest::Method::POST, "/api/tasks")
        .json(&json!({ "name": "demo.echo", "args": { "value": 1 }, "run_at": later }))
        .send()
        .await
        .unwrap();
    let queued: Value = response.json().await.unwrap();
    let queued = queued["id"].as_str().unwrap().to_owned();

    page.goto("").await;
    for (id, status) in [
        (&done, "completed"),
        (&failed, "failed"),
        (&killed, "killed"),
        (&counting, "running"),
        (&sleeping, "running"),
        (&queued, "queued"),
    ] {
        page.wait(&format!("{} .badge", row(id)), "text", json!(status))
            .await;
    }
    page.wait(
        &format!("{} progress", row(&counting)),
        "at-least",
        json!(0.02),
    )
    .await;
    assert!(page.text(&row(&queued)).await.contains("waiting"));
    for (status, count) in [
        ("all", "7"),
        ("running", "3"),
        ("failed", "1"),
        ("queued", "1"),
    ] {
        page.wait(
            &format!(".summary [data-status={status}] .count"),
            "exact",
            json!(count),
        )
        .await;
    }
    page.screenshot("dashboard-tasks").await;
    assert_eq!(page.unlabeled().await, Vec::<Value>::new());
    // The counts follow what happens.
    let failed_too = page
        .launch("demo.fail", json!({ "message": "again" }))
        .await;
    page.wait(&row(&failed_too), "count", json!(1)).await;
    page.wait(".summary [data-status=failed] .count", "exact", json!("2"))
        .await;

    // Filtering by status keeps only those, and the filter is in the URL.
    page.goto("#/?status=failed").await;
    page.wait(&row(&failed), "count", json!(1)).await;
    page.wait(&row(&done), "gone", json!(null)).await;
    page.wait(&row(&failed_too), "count", json!(1)).await;
    let rows = page.client.find_all(Locator::Css("tbody tr")).await;
    assert_eq!(rows.unwrap().len(), 2, "only the two failed tasks");
    assert!(page
        .text(".summary [aria-current]")
        .await
        .contains("failed"));

    // Find by id opens the task; a malformed id says what an id looks like.
    page.goto("").await;
    page.wait(&row(&done), "count", json!(1)).await;
    page.fill("#f-id", "not-an-id").await;
    page.click(".find button").await;
    page.wait("#f-id-error", "text", json!("A task id looks like"))
        .await;
    page.fill("#f-id", &done).await;
    page.click(".find button").await;
    page.wait("h1", "text", json!("demo.echo")).await;
    page.wait(".outcome", "text", json!("\"hi\"")).await;
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn kill_ends_the_task_killed_and_the_page_shows_it() {
    let page = Dashboard::start().await;
    let id = page
        .launch("demo.count", json!({ "to": 100000, "interval_ms": 20 }))
        .await;
    page.goto(&format!("#/tasks/{id}")).await;
    page.wait(".badge", "text", json!("running")).await;
    page.wait(".log li", "count", json!(3)).await;

    // Kill asks first; keeping it running changes nothing.
    page.click(".page-head button.danger").await;
    page.wait("#kill-dialog", "shown", json!(null)).await;
    assert!(page.text("#kill-text").await.contains(&id));
    page.click("#kill-dialog button[value=cancel]").await;
    page.wait("#kill-dialog", "hidden", json!(null)).await;
    assert_eq!(
        page.api.get(&format!("/api/tasks/{id}")).await["status"],
        "running"
    );

    page.click(".page-head button.danger").await;
    page.wait("#kill-dialog", "shown", json!(null)).await;
    page.click("#kill-confirm").await;
    page.wait(".badge", "text", json!("killed")).await;
    page.wait(".outcome", "text", json!("Ended killed")).await;
    page.wait(".page-head button.danger", "hidden", json!(null))
        .await;
    assert_eq!(
        page.api.get(&format!("/api/tasks/{id}")).await["status"],
        "killed"
    );
    page.screenshot("dashboard-task-killed").await;
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn a_failed_task_shows_its_error() {
    let page = Dashboard::start().await;
    let id = page
        .launch("demo.fail", json!({ "message": "the disk is full" }))
        .await;
    page.api.finished(&id).await;
    page.goto(&format!("#/tasks/{id}")).await;
    page.wait(".badge", "text", json!("failed")).await;
    page.wait(".outcome .kind", "text", json!("demo_failure"))
        .await;
    page.wait(".outcome .message", "text", json!("the disk is full"))
        .await;
    page.screenshot("dashboard-task-failed").await;

    // An id that names no task says so.
    page.goto("#/tasks/00000000-0000-7000-8000-000000000000")
        .await;
    page.wait("h1", "text", json!("No such task")).await;
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn a_reload_keeps_the_view_and_its_live_data() {
    let page = Dashboard::start().await;
    let id = page
        .launch("demo.count", json!({ "to": 100000, "interval_ms": 30 }))
        .await;
    page.goto(&format!("#/tasks/{id}")).await;
    page.wait(".log li", "count", json!(5)).await;
    page.client.refresh().await.unwrap();
    // The same task, its earlier lines read back, and new ones still streaming.
    page.wait("h1", "text", json!("demo.count")).await;
    page.wait(".log li[data-seq=\"1\"]", "count", json!(1))
        .await;
    page.wait(".log li", "count", json!(12)).await;
    let seqs: Vec<u64> = page
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
    page.wait(".big-progress progress", "count", json!(1)).await;

    // A filtered list keeps its filter.
    page.goto("#/?status=running&name=demo.count").await;
    page.wait(&row(&id), "count", json!(1)).await;
    page.client.refresh().await.unwrap();
    page.wait(&row(&id), "count", json!(1)).await;
    let chosen = page
        .client
        .find(Locator::Css("#f-status"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("running"));
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn tokens_sign_in_and_a_read_only_token_sees_no_kill_or_launch() {
    let page = Dashboard::with_reader_and_admin().await;
    let id = page.launch("demo.sleep", json!({ "seconds": 600 })).await;
    page.goto(&format!("#/tasks/{id}")).await;
    page.wait("h1", "text", json!("Sign in")).await;
    page.fill("#token", "wrong").await;
    page.click(".signin button[type=submit]").await;
    page.wait(
        ".signin [role=alert]",
        "text",
        json!("not one this server knows"),
    )
    .await;
    page.screenshot("dashboard-sign-in").await;
    assert_eq!(page.unlabeled().await, Vec::<Value>::new());

    page.fill("#token", "reader-secret").await;
    page.click(".signin button[type=submit]").await;
    page.wait("h1", "text", json!("demo.sleep")).await;
    page.wait(".badge", "text", json!("running")).await;
    page.wait("#who", "text", json!("read-only")).await;
    assert!(!page.is_shown(".page-head button.danger").await, "no Kill");
    assert!(!page.is_shown("[data-nav=launch]").await, "no Launch");

    // The token lasts the tab's session: a reload stays signed in.
    page.client.refresh().await.unwrap();
    page.wait(".badge", "text", json!("running")).await;
    assert!(!page.is_shown(".page-head button.danger").await);

    // A control token sees both.
    page.click("#signout").await;
    page.wait("h1", "text", json!("Sign in")).await;
    page.fill("#token", "admin-secret").await;
    page.click(".signin button[type=submit]").await;
    page.wait(".page-head button.danger", "shown", json!(null))
        .await;
    assert!(page.is_shown("[data-nav=launch]").await);
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn the_launch_form_shows_why_args_do_not_fit_then_launches() {
    let page = Dashboard::start().await;
    page.goto("#/launch").await;
    page.choose("#l-name option[value=\"demo.count\"]").await;
    // The form starts from the type's example and lists the fields its schema describes.
    page.wait("#l-args-fields", "text", json!("Counts from 1 to this"))
        .await;
    let example: Value = serde_json::from_str(&page.value("#l-args").await).unwrap();
    assert_eq!(example, json!({ "to": 20, "interval_ms": 200 }));

    page.fill("#l-args", "{\"to\": ").await;
    page.click(".launch button[type=submit]").await;
    page.wait("#l-error", "text", json!("not JSON")).await;

    page.fill("#l-args", r#"{"to": "many"}"#).await;
    page.click(".launch button[type=submit]").await;
    page.wait("#l-error", "text", json!("Not launched")).await;
    let error = page.text("#l-error").await;
    assert!(error.contains("demo.count"), "{error}");
    page.screenshot("dashboard-launch-error").await;
    assert_eq!(page.unlabeled().await, Vec::<Value>::new());

    page.fill("#l-args", r#"{"to": 3, "interval_ms": 10}"#)
        .await;
    page.click(".launch summary").await;
    page.fill("#l-owner", "grace").await;
    page.click(".launch button[type=submit]").await;
    page.wait("h1", "text", json!("demo.count")).await;
    page.wait(".badge", "text", json!("completed")).await;
    page.wait(".facts", "text", json!("grace")).await;

    // A key with "refuse": the second launch is refused, naming the live task; "open the live
    // one" goes to it.
    let launch_keyed = |conflict: &'static str| {
        let page = &page;
        async move {
            page.goto("#/launch").await;
            page.choose("#l-name option[value=\"demo.sleep\"]").await;
            page.fill("#l-args", r#"{"seconds": 600}"#).await;
            page.client
                .execute(
                    "document.querySelector('.launch details').open = true",
                    vec![],
                )
                .await
                .unwrap();
            page.fill("#l-key", "nightly").await;
            page.choose(&format!("#l-conflict option[value={conflict}]"))
                .await;
            page.click(".launch button[type=submit]").await;
        }
    };
    launch_keyed("reject").await;
    page.wait("h1", "text", json!("demo.sleep")).await;
    let url = page.client.current_url().await.unwrap();
    let first = url
        .fragment()
        .unwrap()
        .trim_start_matches("/tasks/")
        .to_owned();
    launch_keyed("reject").await;
    page.wait("#l-error", "text", json!(first.as_str())).await;
    launch_keyed("existing").await;
    page.wait("h1", "text", json!("demo.sleep")).await;
    let url = page.client.current_url().await.unwrap();
    assert_eq!(url.fragment().unwrap(), format!("/tasks/{first}"));
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn the_list_pages_through_history_newest_first() {
    let page = Dashboard::start().await;
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(page.launch("demo.echo", json!({ "value": i })).await);
    }
    page.goto("").await;
    page.wait(&row(&ids[59]), "count", json!(1)).await;
    let shown = |page: &Browser| {
        let client = page.client.clone();
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
    assert_eq!(shown(&page).await, first, "the newest 50, newest first");

    page.click(".pager a:not([hidden])").await;
    page.wait(&row(&ids[0]), "count", json!(1)).await;
    let rest: Vec<String> = ids[..10].iter().rev().cloned().collect();
    assert_eq!(shown(&page).await, rest, "then the 10 oldest");
    // A new task does not land on an older page.
    let newer = page.launch("demo.echo", json!({ "value": "new" })).await;
    page.api.finished(&newer).await;
    // The counts moving shows the page has had the new task's events.
    page.wait(".summary [data-status=all] .count", "exact", json!("61"))
        .await;
    assert!(!shown(&page).await.contains(&newer));
    assert_eq!(shown(&page).await, rest);
    page.client.back().await.unwrap();
    page.wait(&row(&newer), "count", json!(1)).await;
    assert_eq!(shown(&page).await.len(), 50);
    page.close().await;
}

/// The schedule or shared document list's row of `name`.
fn named_row(name: &str) -> String {
    format!("tr[data-name=\"{name}\"]")
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn schedules_tick_live_and_pause_resume_add_and_delete() {
    let page = Dashboard::start().await;
    page.put_schedule(
        "every-second",
        "* * * * * *",
        "demo.echo",
        json!({ "value": "tick" }),
    )
    .await;
    page.put_schedule(
        "nightly-report",
        "0 3 * * *",
        "demo.count",
        json!({ "to": 10 }),
    )
    .await;
    let (status, _) = page
        .send(
            reqwest::Method::POST,
            "/api/schedules/nightly-report/pause",
            None,
        )
        .await;
    assert_eq!(status, 200);

    page.goto("#/schedules").await;
    page.wait("h1", "text", json!("Schedules")).await;
    page.wait("#live", "text", json!("Live")).await;
    let every = named_row("every-second");
    page.wait(&format!("{every} td.next [data-until]"), "count", json!(1))
        .await;
    page.wait(&format!("{every} td.next time"), "count", json!(1))
        .await;
    assert!(page.text(&every).await.contains("demo.echo"));
    let nightly = named_row("nightly-report");
    page.wait(&format!("{nightly} td.next"), "exact", json!("paused"))
        .await;

    // A tick launches a task: the link to it appears, and moves on to the next one, live.
    let link = format!("{every} a.last-task");
    page.wait(&link, "count", json!(1)).await;
    let first = page.attr(&link, "href").await.unwrap();
    page.wait(
        &format!("{link}:not([href=\"{first}\"])"),
        "count",
        json!(1),
    )
    .await;
    let latest = page.attr(&link, "href").await.unwrap();
    let id = latest.trim_start_matches("#/tasks/");
    assert_eq!(
        page.api.get(&format!("/api/tasks/{id}")).await["name"],
        "demo.echo"
    );
    page.screenshot("dashboard-schedules").await;

    // Pause: it reads paused, and the API agrees; Resume: active again, with a next tick.
    page.click(&format!("{every} button.toggle")).await;
    page.wait(&format!("{every}[data-state=paused]"), "count", json!(1))
        .await;
    page.wait(&format!("{every} td.next"), "exact", json!("paused"))
        .await;
    assert!(page
        .text(&format!("{every} td.state"))
        .await
        .contains("paused"));
    assert_eq!(
        page.api.get("/api/schedules/every-second").await["paused"],
        true
    );
    page.wait(&format!("{every} button.toggle"), "exact", json!("Resume"))
        .await;
    page.click(&format!("{every} button.toggle")).await;
    page.wait(&format!("{every}[data-state=active]"), "count", json!(1))
        .await;
    page.wait(&format!("{every} td.next [data-until]"), "count", json!(1))
        .await;
    assert_eq!(
        page.api.get("/api/schedules/every-second").await["paused"],
        false
    );

    // The form: a bad cron expression gets the server's word on what to write; a good one is
    // saved and shows up.
    page.fill("#s-name", "weekly").await;
    page.fill("#s-cron", "every monday").await;
    page.choose("#s-task option[value=\"demo.sleep\"]").await;
    page.fill("#s-args", r#"{"seconds": 1}"#).await;
    page.click(".schedule-form button[type=submit]").await;
    page.wait("#s-error", "text", json!("minute hour")).await;
    let error = page.text("#s-error").await;
    assert!(error.contains("not a cron expression"), "{error}");
    assert_eq!(
        page.attr("#s-cron", "aria-invalid").await.as_deref(),
        Some("true")
    );
    page.fill("#s-cron", "0 9 * * 1").await;
    page.click(".schedule-form button[type=submit]").await;
    let weekly = named_row("weekly");
    page.wait(&weekly, "count", json!(1)).await;
    page.wait("#s-status", "text", json!("Saved schedule weekly"))
        .await;
    let text = page.text(&weekly).await;
    assert!(
        text.contains("0 9 * * 1") && text.contains("demo.sleep"),
        "{text}"
    );
    let saved = page.api.get("/api/schedules/weekly").await;
    assert_eq!(saved["cron"], "0 9 * * 1");
    assert_eq!(saved["args"], json!({ "seconds": 1 }));

    // Delete asks first; keeping it changes nothing; confirming removes it.
    page.click(&format!("{weekly} button.delete")).await;
    page.wait("#confirm-dialog", "shown", json!(null)).await;
    assert!(page.text("#confirm-title").await.contains("weekly"));
    page.click("#confirm-keep").await;
    page.wait("#confirm-dialog", "hidden", json!(null)).await;
    assert_eq!(
        page.api.get("/api/schedules/weekly").await["name"],
        "weekly"
    );
    page.click(&format!("{weekly} button.delete")).await;
    page.wait("#confirm-dialog", "shown", json!(null)).await;
    page.click("#confirm-ok").await;
    page.wait(&weekly, "gone", json!(null)).await;
    let (status, _) = page
        .send(reqwest::Method::GET, "/api/schedules/weekly", None)
        .await;
    assert_eq!(status, 404);
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn shared_documents_are_listed_watched_live_and_saved_by_version() {
    let page = Dashboard::start().await;
    page.put_shared("crawl.pages", json!({ "pages": 1 })).await;
    page.put_shared("feature.flags", json!({ "beta": true }))
        .await;
    page.put_shared("feature.flags", json!({ "beta": false }))
        .await;
    // A task holds the lock of a third one until killed.
    page.put_shared("jobs.done", json!(41)).await;
    let holder = page
        .launch(
            "demo.tally",
            json!({ "name": "jobs.done", "hold_ms": 600000 }),
        )
        .await;
    page.api.until(&holder, |kind, _| kind == "log").await;

    page.goto("#/shared").await;
    page.wait("h1", "text", json!("Shared state")).await;
    let pages = named_row("crawl.pages");
    page.wait(&pages, "count", json!(1)).await;
    page.wait(&format!("{pages} td.version"), "exact", json!("1"))
        .await;
    page.wait(
        &format!("{} td.version", named_row("feature.flags")),
        "exact",
        json!("2"),
    )
    .await;
    assert!(page.text(&pages).await.contains("free"));
    let held = format!(
        "{} a.holder[href=\"#/tasks/{holder}\"]",
        named_row("jobs.done")
    );
    page.wait(&held, "count", json!(1)).await;
    assert!(page.text(&held).await.contains("demo.tally"));
    page.screenshot("dashboard-shared").await;

    // Its page: the value, then a change made through the API arrives without a reload.
    page.click(&format!("{pages} a")).await;
    page.wait("h1", "exact", json!("crawl.pages")).await;
    page.wait("pre[aria-label=Value]", "text", json!("\"pages\": 1"))
        .await;
    page.wait("#sh-version", "exact", json!("1")).await;
    page.wait("#live", "text", json!("Live")).await;
    page.put_shared("crawl.pages", json!({ "pages": 2 })).await;
    page.wait("pre[aria-label=Value]", "text", json!("\"pages\": 2"))
        .await;
    page.wait("#sh-version", "exact", json!("2")).await;

    // Save writes the edited value at the version it was edited from.
    page.wait("#sh-help", "text", json!("version 3")).await;
    page.fill("#sh-value", r#"{"pages": 10}"#).await;
    page.click("#sh-save").await;
    page.wait("#sh-status", "text", json!("Saved version 3"))
        .await;
    let saved = page.api.get("/api/shared/crawl.pages").await;
    assert_eq!(saved["value"], json!({ "pages": 10 }));
    assert_eq!(saved["version"], 3);
    page.wait("#sh-version", "exact", json!("3")).await;

    // A change saved meanwhile: the page says so, and Save is refused, not overwriting it.
    page.fill("#sh-value", r#"{"pages": 11}"#).await;
    page.put_shared("crawl.pages", json!({ "pages": 99 })).await;
    page.wait("pre[aria-label=Value]", "text", json!("\"pages\": 99"))
        .await;
    page.wait("#sh-stale", "shown", json!(null)).await;
    page.click("#sh-save").await;
    page.wait("#sh-error", "text", json!("changed meanwhile"))
        .await;
    let error = page.text("#sh-error").await;
    assert!(error.contains("version 4, not 3"), "{error}");
    let kept = page.api.get("/api/shared/crawl.pages").await;
    assert_eq!(kept["value"], json!({ "pages": 99 }));
    assert_eq!(kept["version"], 4);
    page.screenshot("dashboard-shared-conflict").await;
    // Offered the latest, the editor starts again from it.
    page.click("#sh-reload").await;
    page.wait("#sh-status", "text", json!("Loaded version 4"))
        .await;
    let text = page
        .client
        .find(Locator::Css("#sh-value"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(text.contains("99"), "{text}");
    assert!(!page.is_shown("#sh-error").await);

    // The holder of a lock, with a link to it; a kill releases the lock without writing.
    page.goto("#/shared/jobs.done").await;
    page.wait("pre[aria-label=Value]", "exact", json!("41"))
        .await;
    page.wait(
        &format!(".facts a.holder[href=\"#/tasks/{holder}\"]"),
        "count",
        json!(1),
    )
    .await;
    page.api.kill(&holder, Some(0.0)).await;
    assert_eq!(page.api.finished(&holder).await["status"], "killed");
    assert_eq!(
        page.api.get("/api/shared/jobs.done").await["value"],
        json!(41)
    );

    // A name nobody has written says so plainly; saving creates it.
    page.goto("#/shared/brand.new").await;
    page.wait("#sh-missing", "shown", json!(null)).await;
    assert!(page
        .text("#sh-missing")
        .await
        .contains("No shared document is named brand.new yet"));
    page.fill("#sh-value", r#"{"n": 1}"#).await;
    page.click("#sh-save").await;
    page.wait("#sh-version", "exact", json!("1")).await;
    page.wait("#sh-missing", "hidden", json!(null)).await;
    assert_eq!(
        page.api.get("/api/shared/brand.new").await["value"],
        json!({ "n": 1 })
    );
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn a_read_only_token_changes_no_schedule_and_no_shared_state() {
    let page = Dashboard::with_reader_and_admin().await;
    page.put_schedule("nightly", "0 3 * * *", "demo.echo", json!({ "value": 1 }))
        .await;
    page.put_shared("feature.flags", json!({ "beta": true }))
        .await;
    page.goto("#/schedules").await;
    page.wait("h1", "text", json!("Sign in")).await;
    page.fill("#token", "reader-secret").await;
    page.click(".signin button[type=submit]").await;
    let nightly = named_row("nightly");
    page.wait(&nightly, "count", json!(1)).await;
    page.wait("main", "text", json!("needs role control")).await;
    let buttons = page.client.find_all(Locator::Css("main button")).await;
    assert_eq!(buttons.unwrap().len(), 0, "no Pause, Resume or Delete");
    assert!(!page.is_shown(".schedule-form").await, "no form to add one");

    page.goto("#/shared/feature.flags").await;
    page.wait("pre[aria-label=Value]", "text", json!("\"beta\": true"))
        .await;
    page.wait("main", "text", json!("needs role control")).await;
    assert!(!page.is_shown("#sh-value").await, "no editor");
    assert!(!page.is_shown("#sh-save").await, "no Save");
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn no_form_control_is_unlabeled_on_any_view() {
    let page = Dashboard::start().await;
    let id = page
        .launch("demo.count", json!({ "to": 3, "interval_ms": 10 }))
        .await;
    page.put_schedule("nightly", "0 3 * * *", "demo.echo", json!({ "value": 1 }))
        .await;
    page.put_shared("feature.flags", json!({ "beta": true }))
        .await;
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
        page.goto(route).await;
        page.wait(&drawn, "count", json!(1)).await;
        assert_eq!(page.unlabeled().await, Vec::<Value>::new(), "on `{route}`");
    }
    page.close().await;
}

/// A web page on another origin (a second server on another loopback port, and on the name
/// `localhost`) sends the requests any page may send to any server: a `no-cors` `POST` to kill
/// a task and to pause a schedule, and a form post. The server has no tokens, as by default
/// on loopback; before the origin check each one did what it asked (202). The tasks keep
/// running; the dashboard, same-origin, still kills.
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn a_page_on_another_origin_cannot_kill_and_the_dashboard_still_can() {
    let page = Dashboard::start().await;
    let victim = page.launch("demo.sleep", json!({ "seconds": 600 })).await;
    page.put_schedule("nightly", "0 0 * * *", "demo.echo", json!({ "value": 1 }))
        .await;

    // The other site: one page, served from another port.
    let other_site = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html("<!doctype html><title>another site</title><p>hello</p>")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, other_site).await });

    let kill = format!("{}/api/tasks/{victim}/kill", page.server.url);
    let pause = format!("{}/api/schedules/nightly/pause", page.server.url);
    for origin in [
        format!("http://{other}"),
        format!("http://localhost:{}", other.port()),
    ] {
        page.client.goto(&format!("{origin}/")).await.unwrap();
        page.wait("p", "text", json!("hello")).await;
        // Both fetches resolve (an opaque answer), whatever the server did with them.
        const SEND: &str = r#"
            const [kill, pause, done] = arguments;
            Promise.all([
                fetch(kill, { method: "POST", mode: "no-cors", body: "{}" }),
                fetch(pause, { method: "POST", mode: "no-cors" }),
            ]).then(() => done("sent"), (e) => done(String(e)));
        "#;
        let sent = page
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
        page.client.execute(FORM, vec![json!(kill)]).await.unwrap();
        page.wait("body", "text", json!("cross_site")).await;
        assert!(page.text("body").await.contains("--allowed-origin"));
        let task = page.api.get(&format!("/api/tasks/{victim}")).await;
        assert_eq!(task["status"], "running", "from {origin}: {task}");
        let schedule = page.api.get("/api/schedules/nightly").await;
        assert_eq!(schedule["paused"], false, "from {origin}: {schedule}");
    }

    // The dashboard is same-origin: its Kill button works as before.
    page.goto(&format!("#/tasks/{victim}")).await;
    page.wait(".badge", "text", json!("running")).await;
    page.click(".page-head button.danger").await;
    page.wait("#kill-dialog", "shown", json!(null)).await;
    page.click("#kill-confirm").await;
    page.wait(".badge", "text", json!("killed")).await;
    assert_eq!(
        page.api.get(&format!("/api/tasks/{victim}")).await["status"],
        "killed"
    );
    page.close().await;
}

/// Regression: at 420 px wide the navigation ran off the right edge, and Launch could not be
/// reached.
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn the_navigation_fits_a_narrow_window() {
    let page = Dashboard::start_with(&[], None, (420, 800)).await;
    page.goto("#/").await;
    page.wait("[data-nav=\"launch\"]", "shown", json!(null))
        .await;
    let outside = page
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
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn a_parent_s_page_shows_its_children_live_and_a_child_s_the_path_to_the_root() {
    let page = Dashboard::start().await;
    let parent = page
        .launch(
            "demo.fanout",
            json!({ "children": 3, "to": 40, "interval_ms": 100 }),
        )
        .await;
    page.goto(&format!("#/tasks/{parent}")).await;
    page.wait("h1", "text", json!("demo.fanout")).await;

    // Its children, live: listed with their progress as they run.
    let rows = ".card.children tbody tr";
    page.wait(rows, "count", json!(3)).await;
    page.wait(".card.children .child-counts", "text", json!("3 running"))
        .await;
    page.wait(&format!("{rows} progress"), "at-least", json!(0.1))
        .await;
    // One launched from elsewhere with `parent` appears without a reload.
    let late = page
        .api
        .launch(json!({
            "name": "demo.sleep",
            "args": { "seconds": 600 },
            "parent": parent,
            "detached": true,
        }))
        .await;
    page.wait(rows, "count", json!(4)).await;
    page.wait(
        &format!("{rows}[data-id=\"{late}\"]"),
        "text",
        json!("detached"),
    )
    .await;
    page.screenshot("dashboard-task-children").await;
    assert_eq!(page.unlabeled().await, Vec::<Value>::new());

    // A child's page: its parent in the details and the path up to the root, as links.
    page.click(&format!("{rows}[data-id=\"{late}\"] td.name a"))
        .await;
    page.wait("h1", "text", json!("demo.sleep")).await;
    page.wait("nav.crumbs a.ancestor", "text", json!("demo.fanout"))
        .await;
    page.wait("#parent-link", "text", json!(parent.as_str()))
        .await;
    page.click("nav.crumbs a.ancestor").await;
    page.wait("h1", "text", json!("demo.fanout")).await;

    // The counting children complete; the parent ends with them and its detached child runs on.
    page.wait(".card.children .child-counts", "text", json!("3 completed"))
        .await;
    page.wait(".badge", "text", json!("completed")).await;
    page.wait(
        &format!("{rows}[data-id=\"{late}\"] .badge"),
        "text",
        json!("running"),
    )
    .await;
    page.api.kill(&late, None).await;
    page.wait(
        &format!("{rows}[data-id=\"{late}\"] .badge"),
        "text",
        json!("killed"),
    )
    .await;
    page.close().await;
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn the_task_page_shows_the_trace_id_linked_to_the_trace_url() {
    let template = "https://tracing.example/trace/{trace_id}?from=offstage";
    let page = Dashboard::start_with(&["--trace-url", template], None, WINDOW).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = page
        .api
        .request(reqwest::Method::POST, "/api/tasks")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({ "name": "demo.echo", "args": { "value": 1 } }))
        .send()
        .await
        .unwrap();
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    page.goto(&format!("#/tasks/{id}")).await;
    page.wait("#trace-id", "exact", json!(trace)).await;
    // The facts are drawn again on every event: the link is looked for by its address.
    let link = format!("#trace-link[href='https://tracing.example/trace/{trace}?from=offstage']");
    page.wait(&link, "count", json!(1)).await;
    page.screenshot("dashboard-task-trace").await;

    // A task launched without a trace context says so.
    let plain = page.launch("demo.echo", json!({ "value": 2 })).await;
    page.goto(&format!("#/tasks/{plain}")).await;
    page.wait("h1", "text", json!("demo.echo")).await;
    page.wait(".facts", "text", json!("Trace")).await;
    page.wait("#trace-id", "gone", json!(null)).await;
    page.close().await;
}
