//! The crawler end to end in a real browser: headless Chromium, driven over WebDriver
//! (chromedriver), against a real `crawler` process and its demo site. Offstage's API is closed
//! to operators (a control token the page never sees) and the page's scoped tokens live 3 s, so
//! the page works only through its own token, and renews it several times per crawl.
//!
//! Runs when `OFFSTAGE_TEST_BROWSER` is set (ignored, with the reason, otherwise); the harness
//! (`crates/offstage-server/tests/common/browser.rs`) says how it is switched on, where the
//! screenshot goes (`docs/img/crawler.png` with `OFFSTAGE_UPDATE_SCREENSHOTS=1`) and how it
//! waits.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

// The project's browser harness, shared with the dashboard's suite.
#[path = "../../../crates/offstage-server/tests/common/browser.rs"]
mod harness;

use harness::{require_browser, Browser};

/// Pages on the demo site; its sitemap lists one more that answers 404.
const PAGES: usize = 150;

/// The operator's control token for Offstage's API at `/offstage`; the page never has it.
const OPERATOR: &str = "crawler-browser-test-operator";

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
            .args(["--offstage-token", OPERATOR, "--token-ttl-s", "3"])
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

/// The paths of the requests the page has made since it loaded (the Resource Timing entries:
/// a request appears once its answer has been read to the end).
async fn requested(browser: &Browser) -> Vec<String> {
    const SCRIPT: &str = "return performance.getEntriesByType('resource')
        .map((entry) => new URL(entry.name).pathname)";
    let paths = browser.client.execute(SCRIPT, vec![]).await.unwrap();
    serde_json::from_value(paths).unwrap()
}

/// "n of total" as the page shows it: n.
fn done_of(text: &str) -> usize {
    let (done, _) = text.split_once(" of ").expect(text);
    done.trim().parse().expect(text)
}

#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn crawl_watch_stop_reattach_and_search() {
    // Ignored unless the build saw the variable (`build.rs`); run anyway, it must not pass.
    require_browser();
    let app = App::start();
    let browser = Browser::open(&app.url, (1100, 1000)).await;
    browser.goto("").await;
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

    // Another browser session, with the token the app gives it, can neither see nor stop it:
    // 404, as for a task that does not exist.
    let other = reqwest::Client::new();
    let minted: Value = other
        .get(format!("{}/token", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let theirs = minted["token"].as_str().unwrap();
    let task = format!("{}/offstage/api/tasks/{id}", app.url);
    let response = other.get(&task).bearer_auth(theirs).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let kill = format!("{task}/kill");
    let response = other.post(&kill).bearer_auth(theirs).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let list = format!("{}/offstage/api/tasks?name=crawler.crawl", app.url);
    let found: Value = other
        .get(&list)
        .bearer_auth(theirs)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["tasks"], json!([]));
    // Without a token Offstage's API is closed, and the app's old relay is gone.
    let response = other.get(&task).send().await.unwrap();
    assert_eq!(response.status(), 401);
    for gone in [format!("/crawls/{id}/events"), "/crawls/current".to_owned()] {
        let response = other
            .get(format!("{}{gone}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{gone}");
    }

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

    // The page watched it through Offstage's API at `/offstage`, with the session's token,
    // renewed as it expired (the stream ends with each token, and reopens with the next), and
    // never through an app route of its own.
    let second = browser.attr("#crawl", "data-task").await.unwrap();
    let paths = requested(&browser).await;
    let watched = format!("/offstage/api/tasks/{second}/events");
    let streams = paths.iter().filter(|path| **path == watched).count();
    let tokens = paths.iter().filter(|path| *path == "/token").count();
    assert!(streams >= 2 && tokens >= 2, "{paths:?}");
    assert!(
        paths.iter().any(|path| path == "/offstage/offstage.js"),
        "{paths:?}"
    );
    assert!(
        !paths
            .iter()
            .any(|path| path.starts_with("/crawls/") || path.starts_with("/api/")),
        "{paths:?}"
    );
    assert_eq!(browser.js_errors().await, Vec::<String>::new());

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
