//! The **crawl**: the Offstage task type that reads a sitemap and stores every page it lists.
//!
//! A crawl fetches the sitemap (following a sitemap index to its sitemaps), then requests each
//! page in turn, logging "Requesting URL …" to its own task log and upserting the page into
//! the [`Pages`] table. After each page it writes its state, `{done, total}`, which every
//! watcher gets at once (the crawler's page over SSE, the Offstage dashboard). A page that
//! fails (a timeout, a 404) is logged and skipped; it still counts as done.
//!
//! It cooperates with kill: it waits on `ctx.cancelled()` around every network request and
//! every pause, so a Stop ends it within milliseconds, between two pages. Each page's upsert is
//! one transaction, so the pages it stored before the Stop stay.

use std::collections::HashSet;
use std::time::Duration;

use offstage::{Context, LogLevel, TaskError, TaskType};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::pages::Pages;
use crate::sitemap::{self, Sitemap};

/// The largest page or sitemap a crawl reads.
const MAX_BODY: usize = 5 << 20;

/// Most sitemap files one crawl reads (an index of indexes is allowed, a loop is not).
const MAX_SITEMAPS: usize = 100;

/// The crawl task type. Registered once; each launch crawls one sitemap.
#[derive(Clone, Debug)]
pub struct Crawl {
    /// Where pages go.
    pub pages: Pages,
    /// The HTTP client, with its timeouts.
    pub http: reqwest::Client,
    /// The pause between two pages: politeness to the site, and a crawl slow enough to watch.
    pub delay: Duration,
}

/// What a crawl is launched with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CrawlArgs {
    /// The sitemap's address (a `<urlset>` or a `<sitemapindex>`).
    pub sitemap: String,
}

/// What a crawl returns when it completes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CrawlOutput {
    /// Pages stored.
    pub stored: usize,
    /// Pages that failed and were skipped.
    pub failed: usize,
}

impl Crawl {
    /// An HTTP client with the crawler's timeouts.
    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent("offstage-crawler/0.1")
            .build()
            .expect("an HTTP client with timeouts")
    }

    /// The body of `url`, or why not: an error of kind `cancelled` if the task is asked to stop
    /// meanwhile.
    async fn fetch(&self, ctx: &Context, url: &str) -> Result<String, TaskError> {
        let request = async {
            let mut response = self
                .http
                .get(url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| describe(&e))?;
            // Read at most MAX_BODY: a page is for reading, not a way to fill the disk.
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(format!("larger than {} MiB", MAX_BODY >> 20));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(String::from_utf8_lossy(&body).into_owned())
        };
        tokio::select! {
            _ = ctx.cancelled() => Err(TaskError::cancelled()),
            body = request => body.map_err(|message| TaskError::new("fetch", message)),
        }
    }

    /// Every page address the sitemap at `url` lists, following sitemap indexes, without
    /// duplicates, in the order the sitemaps list them.
    async fn page_urls(&self, ctx: &Context, url: &str) -> Result<Vec<String>, TaskError> {
        let mut sitemaps = vec![url.to_owned()];
        let mut seen_sitemaps = HashSet::new();
        let mut seen_pages = HashSet::new();
        let mut pages = Vec::new();
        while let Some(sitemap_url) = sitemaps.pop() {
            if !seen_sitemaps.insert(sitemap_url.clone()) {
                continue;
            }
            if seen_sitemaps.len() > MAX_SITEMAPS {
                return Err(TaskError::new(
                    "sitemap",
                    format!("more than {MAX_SITEMAPS} sitemap files: is the index a loop?"),
                ));
            }
            ctx.log(format!("Reading sitemap {sitemap_url}"));
            let xml = self.fetch(ctx, &sitemap_url).await.map_err(|e| {
                if e.kind == "cancelled" {
                    return e;
                }
                TaskError::new(
                    "sitemap",
                    format!("could not fetch the sitemap {sitemap_url}: {}", e.message),
                )
            })?;
            match sitemap::parse(&xml)
                .map_err(|e| TaskError::new("sitemap", format!("{sitemap_url}: {e}")))?
            {
                Sitemap::Urls(urls) => {
                    pages.extend(urls.into_iter().filter(|u| seen_pages.insert(u.clone())));
                }
                // Pushed in reverse so they are read in the order the index lists them.
                Sitemap::Index(more) => sitemaps.extend(more.into_iter().rev()),
            }
        }
        Ok(pages)
    }

    // ANCHOR: pause
    /// Sleeps for the delay between pages, or returns early if the task is asked to stop.
    async fn pause(&self, ctx: &Context) -> Result<(), TaskError> {
        tokio::select! {
            _ = ctx.cancelled() => Err(TaskError::cancelled()),
            _ = tokio::time::sleep(self.delay) => Ok(()),
        }
    }
    // ANCHOR_END: pause
}

// ANCHOR: task_type
impl TaskType for Crawl {
    const NAME: &'static str = "crawler.crawl";
    type Args = CrawlArgs;
    type Output = CrawlOutput;

    async fn run(&self, ctx: Context, args: CrawlArgs) -> Result<CrawlOutput, TaskError> {
        check_url(&args.sitemap).map_err(|e| TaskError::new("invalid_args", e))?;
        let urls = self.page_urls(&ctx, &args.sitemap).await?;
        let total = urls.len();
        ctx.log(format!("The sitemap lists {total} pages"));
        ctx.set_state(&json!({ "done": 0, "total": total }))?;
        let (mut stored, mut failed) = (0, 0);
        for (i, url) in urls.iter().enumerate() {
            ctx.check_cancelled()?;
            ctx.log(format!("Requesting URL {url}"));
            match self.fetch(&ctx, url).await {
                Ok(html) => {
                    let now = chrono::Utc::now();
                    self.pages
                        .upsert(url, &html, now)
                        .await
                        .map_err(|e| TaskError::new("database", e.to_string()))?;
                    stored += 1;
                }
                Err(e) if e.kind == "cancelled" => return Err(e),
                Err(e) => {
                    ctx.log_at(LogLevel::Warn, format!("Skipped {url}: {}", e.message));
                    failed += 1;
                }
            }
            ctx.set_state(&json!({ "done": i + 1, "total": total }))?;
            if i + 1 < total {
                self.pause(&ctx).await?;
            }
        }
        ctx.log(format!(
            "Crawled {total} pages: {stored} stored, {failed} skipped"
        ));
        Ok(CrawlOutput { stored, failed })
    }
}
// ANCHOR_END: task_type

/// `Ok` for an address this crawler can fetch; otherwise why not, in words.
pub fn check_url(url: &str) -> Result<(), String> {
    match url.split_once("://") {
        Some(("http", rest)) if !rest.is_empty() => Ok(()),
        Some(("https", _)) => Err(format!(
            "{url}: this build of the crawler fetches plain http only (it is built without TLS, \
             so it compiles fast and runs offline); crawl the demo site, or a site on http"
        )),
        _ => Err(format!(
            "{url} is not an http address: give the sitemap's full URL, like \
             http://127.0.0.1:8080/sitemap.xml"
        )),
    }
}

/// A request error in words, with its cause (reqwest's own message leaves it out).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if let Some(status) = error.status() {
        format!("the server answered {status}")
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = std::fmt::Write::write_fmt(&mut text, format_args!(": {cause}"));
        source = cause.source();
    }
    text
}
