//! A headless Chromium driven over WebDriver (chromedriver), for the browser suites of the
//! dashboard and of the crawler example (which includes this file by path).
//!
//! The suites run when `OFFSTAGE_TEST_BROWSER` is set (to `1`, or to the Chromium binary's
//! path; the default is `/usr/bin/chromium`, and `chromedriver` is looked up on `PATH` unless
//! `OFFSTAGE_CHROMEDRIVER` names it); without it at build time each test is ignored, with the reason.
//! Screenshots go to the test target's tmpdir, and to `docs/img/` when
//! `OFFSTAGE_UPDATE_SCREENSHOTS=1`. Waits are events, not sleeps: each is a `MutationObserver`
//! in the page that answers as soon as its condition holds, bounded by the script timeout.

// Each suite uses a different part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(30);

/// One browser at a time in a test binary: two cores do not run several Chromiums well.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Fails the test, saying how to turn the suite on, unless `OFFSTAGE_TEST_BROWSER` is set. The
/// browser tests are ignored unless the build saw the variable (`build.rs` sets
/// `offstage_test_browser`), so this fires only for a test run anyway (`--include-ignored`),
/// which must not pass having tested nothing.
pub fn require_browser() {
    assert!(
        std::env::var_os("OFFSTAGE_TEST_BROWSER").is_some(),
        "OFFSTAGE_TEST_BROWSER is not set: set it to 1 (or to the Chromium binary's path) to run \
         the browser tests; they need Debian's chromium and chromium-driver"
    );
}

/// Headless Chromium under chromedriver, both killed when dropped (a failing test too).
pub struct Browser {
    _driver: Driver,
    pub client: Client,
    base: String,
    /// chromedriver's own address, for what fantoccini does not ask it (the console log).
    driver_url: String,
}

impl Browser {
    /// A browser window of `size` (width, height) on the app at `url`.
    pub async fn open(url: &str, size: (u32, u32)) -> Browser {
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
        // The console's errors, for `js_errors`.
        capabilities.insert(
            "goog:loggingPrefs".to_owned(),
            json!({ "browser": "SEVERE" }),
        );
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage",
                    format!("--window-size={},{}", size.0, size.1),
                    "--force-device-scale-factor=1",
                ],
            }),
        );
        let driver_url = format!("http://127.0.0.1:{port}");
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver_url)
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
            base: format!("{url}/"),
            driver_url,
        }
    }

    pub async fn goto(&self, route: &str) {
        self.client
            .goto(&format!("{}{route}", self.base))
            .await
            .unwrap();
    }

    /// Waits until `selector` satisfies `mode`: `text` (some match contains `arg`), `exact` (some
    /// match's trimmed text is `arg`), `count` (at
    /// least `arg` matches), `gone` (no match), `shown` (some match is displayed), `hidden`
    /// (every match is hidden), `at-least` (some match's `value` is at least `arg`).
    pub async fn wait(&self, selector: &str, mode: &str, arg: Value) {
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
    pub async fn unlabeled(&self) -> Vec<Value> {
        const SCRIPT: &str = "return [...document.querySelectorAll('input, select, textarea')]
            .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label'))
            .map((el) => el.outerHTML)";
        let found = self.client.execute(SCRIPT, vec![]).await.unwrap();
        found.as_array().cloned().unwrap_or_default()
    }

    pub async fn text(&self, selector: &str) -> String {
        match self.client.find(Locator::Css(selector)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => format!("(nothing matches {selector})"),
        }
    }

    /// The current value of the form control at `selector`.
    pub async fn value(&self, selector: &str) -> String {
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        element.prop("value").await.unwrap().unwrap_or_default()
    }

    pub async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        element.attr(name).await.unwrap()
    }

    pub async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
    }

    /// Waits for the `<option>` at `selector`, then picks it.
    pub async fn choose(&self, selector: &str) {
        self.wait(selector, "count", json!(1)).await;
        self.click(selector).await;
    }

    pub async fn fill(&self, selector: &str, text: &str) {
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    pub async fn is_shown(&self, selector: &str) -> bool {
        match self.client.find(Locator::Css(selector)).await {
            Ok(element) => element.is_displayed().await.unwrap(),
            Err(_) => false,
        }
    }

    pub async fn screenshot(&self, name: &str) {
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

    /// The JavaScript errors of the pages this browser showed since the last call, as
    /// Chromium's console logged them: uncaught exceptions and rejections, what the
    /// Content-Security-Policy refused, and a page's own files (under `/assets/`: scripts,
    /// modules, styles) that did not load. Other failed requests are left out: an API answer
    /// that is an error (a 404 for an unknown task, a 401 before signing in) is the page's to
    /// show, and a `/favicon.ico` the browser guessed at is nobody's.
    pub async fn js_errors(&self) -> Vec<String> {
        let session = self.client.session_id().await.unwrap().expect("a session");
        let url = format!("{}/session/{session}/se/log", self.driver_url);
        let request = reqwest::Client::new()
            .post(url)
            .json(&json!({ "type": "browser" }));
        let log: Value = request.send().await.unwrap().json().await.unwrap();
        let entries = log["value"].as_array().cloned().unwrap_or_default();
        entries
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .filter(|entry| {
                let message = entry["message"].as_str().unwrap_or_default();
                entry["source"] != "network" || message.contains("/assets/")
            })
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Kills chromedriver's whole process group (Chromium included).
pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}
