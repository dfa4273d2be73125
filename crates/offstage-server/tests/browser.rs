//! The dashboard in a real browser: headless Chromium, driven over WebDriver (chromedriver),
//! against a real `offstage serve --demo` process.
//!
//! Runs when `OFFSTAGE_TEST_BROWSER` is set (to `1`, or to the Chromium binary's path; the
//! default is `/usr/bin/chromium`, and `chromedriver` is looked up on `PATH` unless
//! `OFFSTAGE_CHROMEDRIVER` names it). Without it every test here says loudly that it skipped.
//! Screenshots go to `target/screenshots/`, and to `docs/img/` when
//! `OFFSTAGE_UPDATE_SCREENSHOTS=1`.
//!
//! Waits are events, not sleeps: each one is a `MutationObserver` in the page that answers as
//! soon as the condition holds, bounded by the WebDriver script timeout.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Server;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::{json, Value};

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(20);

/// One browser at a time: two cores do not run several Chromiums and a server well.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn enabled(test: &str) -> bool {
    if std::env::var_os("OFFSTAGE_TEST_BROWSER").is_some() {
        return true;
    }
    eprintln!(
        "SKIPPED browser test `{test}`: set OFFSTAGE_TEST_BROWSER=1 to run it \
         (needs Debian's chromium and chromium-driver)"
    );
    false
}

/// Headless Chromium under chromedriver, both killed when dropped (a failing test too).
struct Browser {
    _driver: Driver,
    client: Client,
    base: String,
}

impl Browser {
    async fn open(server: &Server) -> Browser {
        let chromium = match std::env::var("OFFSTAGE_TEST_BROWSER") {
            Ok(path) if path != "1" => path,
            _ => "/usr/bin/chromium".to_owned(),
        };
        let chromedriver =
            std::env::var("OFFSTAGE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut driver = {
            use std::os::unix::process::CommandExt;
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                // Its own process group, so dropping it takes Chromium with it.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {chromedriver}: {e}"))
        };
        // It says when it listens; what it says after that is drained so it never blocks.
        let mut said = BufReader::new(driver.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("started successfully") {
            line.clear();
            if said.read_line(&mut line).unwrap() == 0 {
                panic!("chromedriver exited before it listened");
            }
        }
        std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage", "--window-size=1320,900",
                    "--force-device-scale-factor=1",
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session in Chromium");
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(WAIT),
                Some(WAIT),
                Some(Duration::ZERO),
            ))
            .await
            .unwrap();
        Browser {
            _driver: Driver(driver),
            client,
            base: format!("{}/", server.url),
        }
    }

    async fn goto(&self, route: &str) {
        self.client
            .goto(&format!("{}{route}", self.base))
            .await
            .unwrap();
    }

    /// Waits until `selector` satisfies `mode`: `text` (some match contains `arg`), `exact` (some
    /// match's trimmed text is `arg`), `count` (at
    /// least `arg` matches), `gone` (no match), `shown` (some match is displayed), `hidden`
    /// (every match is hidden), `at-least` (some match's `value` is at least `arg`).
    async fn wait(&self, selector: &str, mode: &str, arg: Value) {
        const SCRIPT: &str = r#"
            const [selector, mode, arg, done] = arguments;
            const shown = (el) => el.getClientRects().length > 0;
            const holds = () => {
                const all = [...document.querySelectorAll(selector)];
                switch (mode) {
                    case "text": return all.some((el) => el.textContent.includes(arg));
                    case "exact": return all.some((el) => el.textContent.trim() === arg);
                    case "count": return all.length >= arg;
                    case "gone": return all.length === 0;
                    case "shown": return all.some(shown);
                    case "hidden": return !all.some(shown);
                    case "at-least": return all.some((el) => Number(el.value) >= arg);
                }
                throw new Error(`unknown mode ${mode}`);
            };
            let observer = null;
            const check = () => {
                if (!holds()) return false;
                if (observer) observer.disconnect();
                done(true);
                return true;
            };
            if (!check()) {
                observer = new MutationObserver(check);
                observer.observe(document.documentElement, {
                    subtree: true, childList: true, characterData: true, attributes: true,
                });
            }
        "#;
        let result = self
            .client
            .execute_async(SCRIPT, vec![json!(selector), json!(mode), arg.clone()])
            .await;
        if let Err(error) = result {
            let page = self.text("main").await;
            panic!("waiting for `{selector}` {mode} {arg}: {error}\nthe page says:\n{page}");
        }
    }

    /// Form controls on the page that no label names: each one is an accessibility bug.
    async fn unlabeled(&self) -> Vec<Value> {
        const SCRIPT: &str = "return [...document.querySelectorAll('input, select, textarea')]
            .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label'))
            .map((el) => el.outerHTML)";
        let found = self.client.execute(SCRIPT, vec![]).await.unwrap();
        found.as_array().cloned().unwrap_or_default()
    }

    async fn text(&self, selector: &str) -> String {
        match self.client.find(Locator::Css(selector)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => format!("(nothing matches {selector})"),
        }
    }

    async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
    }

    /// Waits for the `<option>` at `selector`, then picks it.
    async fn choose(&self, selector: &str) {
        self.wait(selector, "count", json!(1)).await;
        self.click(selector).await;
    }

    async fn fill(&self, selector: &str, text: &str) {
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    async fn is_shown(&self, selector: &str) -> bool {
        match self.client.find(Locator::Css(selector)).await {
            Ok(element) => element.is_displayed().await.unwrap(),
            Err(_) => false,
        }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")];
        if std::env::var_os("OFFSTAGE_UPDATE_SCREENSHOTS").is_some() {
            dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/img"));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        }
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Kills chromedriver's whole process group (Chromium included).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// The API, as another client of the same server would use it.
struct Api {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Api {
    fn new(server: &Server, token: Option<&str>) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: server.url.clone(),
            token: token.map(str::to_owned),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn launch(&self, name: &str, args: Value) -> String {
        let response = self
            .request(reqwest::Method::POST, "/api/tasks")
            .json(&json!({ "name": name, "args": args, "owner": "ada" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let task: Value = response.json().await.unwrap();
        task["id"].as_str().unwrap().to_owned()
    }

    async fn task(&self, id: &str) -> Value {
        self.request(reqwest::Method::GET, &format!("/api/tasks/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits for task `id` to end, over its event stream.
    async fn wait_finished(&self, id: &str) -> Value {
        let response = self
            .request(reqwest::Method::GET, &format!("/api/tasks/{id}/events"))
            .send()
            .await
            .unwrap();
        // The stream ends after `finished`.
        let _ = tokio::time::timeout(WAIT, response.text()).await.unwrap();
        self.task(id).await
    }
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
    let browser = Browser::open(&server).await;
    browser.goto("").await;
    browser.wait("h1", "text", json!("Tasks")).await;
    browser.wait("#live", "text", json!("Live")).await;
    browser.wait(".empty", "text", json!("No tasks yet")).await;

    // Launched through the API, it shows up without a reload, and its bar moves.
    let id = api
        .launch("demo.count", json!({ "to": 40, "interval_ms": 100 }))
        .await;
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
    let done = api.launch("demo.echo", json!({ "value": "hi" })).await;
    let failed = api
        .launch("demo.fail", json!({ "message": "the disk is full" }))
        .await;
    let killed = api.launch("demo.sleep", json!({ "seconds": 600 })).await;
    api.request(reqwest::Method::POST, &format!("/api/tasks/{killed}/kill"))
        .json(&json!({ "grace_ms": 0 }))
        .send()
        .await
        .unwrap();
    for id in [&done, &failed, &killed] {
        api.wait_finished(id).await;
    }
    let counting = api
        .launch("demo.count", json!({ "to": 500, "interval_ms": 50 }))
        .await;
    let sleeping = api.launch("demo.sleep", json!({ "seconds": 600 })).await;
    api.launch("demo.count", json!({ "to": 90, "interval_ms": 40 }))
        .await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let response = api
        .request(reqwest::Method::POST, "/api/tasks")
        .json(&json!({ "name": "demo.echo", "args": { "value": 1 }, "run_at": later }))
        .send()
        .await
        .unwrap();
    let queued: Value = response.json().await.unwrap();
    let queued = queued["id"].as_str().unwrap().to_owned();

    let browser = Browser::open(&server).await;
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
    let failed_too = api.launch("demo.fail", json!({ "message": "again" })).await;
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
    let id = api
        .launch("demo.count", json!({ "to": 100000, "interval_ms": 20 }))
        .await;
    let browser = Browser::open(&server).await;
    browser.goto(&format!("#/tasks/{id}")).await;
    browser.wait(".badge", "text", json!("running")).await;
    browser.wait(".log li", "count", json!(3)).await;

    // Kill asks first; keeping it running changes nothing.
    browser.click(".page-head button.danger").await;
    browser.wait("#kill-dialog", "shown", json!(null)).await;
    assert!(browser.text("#kill-text").await.contains(&id));
    browser.click("#kill-dialog button[value=cancel]").await;
    browser.wait("#kill-dialog", "hidden", json!(null)).await;
    assert_eq!(api.task(&id).await["status"], "running");

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
    assert_eq!(api.task(&id).await["status"], "killed");
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
    let id = api
        .launch("demo.fail", json!({ "message": "the disk is full" }))
        .await;
    api.wait_finished(&id).await;
    let browser = Browser::open(&server).await;
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
    let id = api
        .launch("demo.count", json!({ "to": 100000, "interval_ms": 30 }))
        .await;
    let browser = Browser::open(&server).await;
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
    let id = api.launch("demo.sleep", json!({ "seconds": 600 })).await;
    let browser = Browser::open(&server).await;
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
    let browser = Browser::open(&server).await;
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
        ids.push(api.launch("demo.echo", json!({ "value": i })).await);
    }
    let browser = Browser::open(&server).await;
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
    let newer = api.launch("demo.echo", json!({ "value": "new" })).await;
    api.wait_finished(&newer).await;
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
