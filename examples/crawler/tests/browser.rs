//! The crawler end to end in a real browser: headless Chromium, driven over WebDriver
//! (chromedriver), against a real `crawler` process and its demo site.
//!
//! Runs when `OFFSTAGE_TEST_BROWSER` is set (to `1`, or to the Chromium binary's path; the
//! default is `/usr/bin/chromium`, and `chromedriver` is looked up on `PATH` unless
//! `OFFSTAGE_CHROMEDRIVER` names it). Without it the test says loudly that it skipped. The
//! screenshot goes to the target's tmpdir, and to `docs/img/crawler.png` when
//! `OFFSTAGE_UPDATE_SCREENSHOTS=1`.
//!
//! Waits are events, not sleeps: each one is a `MutationObserver` in the page that answers as
//! soon as the condition holds, bounded by the WebDriver script timeout.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(30);

/// Pages on the demo site; its sitemap lists one more that answers 404.
const PAGES: usize = 150;

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

/// A `crawler` process on a free port with a database of its own, killed when dropped.
struct App {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl App {
    fn start() -> App {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("crawler-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_crawler"))
            .args(["--addr", "127.0.0.1:0", "--delay-ms", "50"])
            .args(["--demo-pages", &PAGES.to_string()])
            .arg("--db")
            .arg(dir.join("crawler.db"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut said = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        said.read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix("crawler listening on ")
            .unwrap_or_else(|| panic!("the first line names the address: {first:?}"))
            .to_owned();
        std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));
        App { child, url, dir }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
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

/// Headless Chromium under chromedriver, both killed when dropped.
struct Browser {
    client: Client,
    base: String,
    _driver: Driver,
}

impl Browser {
    async fn open(app: &App) -> Browser {
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
        let driver = Driver(driver);
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
                    "--disable-sync", "--disable-dev-shm-usage", "--window-size=1100,1000",
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
            client,
            base: format!("{}/", app.url),
            _driver: driver,
        }
    }

    /// Waits until `selector` satisfies `mode`: `text` (some match contains `arg`), `exact`
    /// (some match's trimmed text is `arg`), `count` (at least `arg` matches), `at-least` (some
    /// match's `value` is at least `arg`).
    async fn wait(&self, selector: &str, mode: &str, arg: Value) {
        const SCRIPT: &str = r#"
            const [selector, mode, arg, done] = arguments;
            const holds = () => {
                const all = [...document.querySelectorAll(selector)];
                switch (mode) {
                    case "text": return all.some((el) => el.textContent.includes(arg));
                    case "exact": return all.some((el) => el.textContent.trim() === arg);
                    case "count": return all.length >= arg;
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

    async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        element.attr(name).await.unwrap()
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

    async fn fill(&self, selector: &str, text: &str) {
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
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
        let _ = self.client.close().await;
    }
}

/// "n of total" as the page shows it: n.
fn done_of(text: &str) -> usize {
    let (done, _) = text.split_once(" of ").expect(text);
    done.trim().parse().expect(text)
}

#[tokio::test]
async fn crawl_watch_stop_reattach_and_search() {
    if !enabled("crawl_watch_stop_reattach_and_search") {
        return;
    }
    let app = App::start();
    let browser = Browser::open(&app).await;
    browser.client.goto(&browser.base).await.unwrap();
    browser.wait("h1", "exact", json!("Crawler")).await;
    let sitemap = browser.attr("#sitemap", "value").await.unwrap();
    assert!(sitemap.ends_with("/sitemap.xml"), "{sitemap}");
    assert_eq!(browser.unlabeled().await, Vec::<Value>::new());
    let total = PAGES + 1;

    // Run: progress arrives live, and the log says which page it is on.
    browser.click("#run").await;
    browser.wait("#status", "exact", json!("running")).await;
    browser.wait("#bar", "at-least", json!(5)).await;
    browser
        .wait("#log li", "text", json!("Requesting URL"))
        .await;
    let id = browser.attr("#crawl", "data-task").await.unwrap();

    // Reload mid-crawl: the page finds the crawl still running and follows it again.
    browser.client.refresh().await.unwrap();
    browser.wait("#crawl[data-task]", "count", json!(1)).await;
    assert_eq!(browser.attr("#crawl", "data-task").await.unwrap(), id);
    browser.wait("#status", "exact", json!("running")).await;
    let reattached = done_of(&browser.text("#progress-text").await);
    browser
        .wait("#bar", "at-least", json!(reattached + 5))
        .await;
    assert!(
        browser
            .text("#progress-text")
            .await
            .ends_with(&format!("of {total}")),
        "the total is the sitemap's"
    );

    // Another session may not stop it.
    let response = reqwest::Client::new()
        .post(format!("{}/crawls/{id}/stop", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("another browser session"), "{message}");

    // Stop: the crawl ends killed, and every page it finished stays in the table.
    browser.click("#stop").await;
    browser.wait("#status", "exact", json!("killed")).await;
    let stopped_at = done_of(&browser.text("#progress-text").await);
    assert!(
        stopped_at > 0 && stopped_at < total,
        "stopped at {stopped_at}"
    );
    browser
        .wait("#pages", "exact", json!(stopped_at.to_string()))
        .await;

    // Run again to the end.
    browser.click("#run").await;
    browser.wait("#status", "exact", json!("running")).await;
    assert_ne!(browser.attr("#crawl", "data-task").await.unwrap(), id);
    browser
        .wait(
            "#progress-text",
            "exact",
            json!(format!("{total} of {total}")),
        )
        .await;
    browser.wait("#status", "exact", json!("completed")).await;
    browser
        .wait("#pages", "exact", json!(PAGES.to_string()))
        .await;
    browser
        .wait("#log li[data-level=warn]", "text", json!("Skipped"))
        .await;

    // Search finds the one page with the word only it contains.
    browser.fill("#q", "quokka").await;
    browser.click("#search-form button").await;
    browser.wait("#results li", "count", json!(1)).await;
    browser.wait("#summary", "text", json!("1 page for")).await;
    assert!(browser.text("#results").await.contains("Page 42"));
    let href = browser.attr("#results li a", "href").await.unwrap();
    assert!(href.ends_with("/pages/42"), "{href}");
    browser.screenshot("crawler").await;
    browser.close().await;
}
