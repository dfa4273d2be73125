//! The **demo site**: a few hundred generated pages and their sitemaps, served on a local port
//! so the crawler has something to crawl with no internet.
//!
//! `/sitemap.xml` is a sitemap index that points at `/sitemaps/{n}.xml`, each a `<urlset>` of
//! up to 100 pages at `/pages/{i}`. The text is generated from the page number alone, so every
//! run serves the same site. Most words are common to many pages; a few pages hold a word no
//! other page has (page 42 is the only one that mentions a "quokka"; [`UNIQUE_WORDS`] lists
//! them), so a search can be checked. The last sitemap also lists one address that answers
//! 404, to show a failed page logged and skipped.

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Pages per `<urlset>` file.
const PER_SITEMAP: usize = 100;

/// Words that appear on one page only: (page, word).
pub const UNIQUE_WORDS: &[(usize, &str)] = &[
    (7, "marmalade"),
    (42, "quokka"),
    (99, "zeppelin"),
    (123, "saxophone"),
    (256, "bioluminescence"),
];

const NOUNS: &[&str] = &[
    "garden",
    "river",
    "engine",
    "library",
    "harbour",
    "mountain",
    "kitchen",
    "orchard",
    "lantern",
    "bridge",
    "meadow",
    "workshop",
    "island",
    "market",
    "forest",
    "station",
    "village",
    "tower",
    "canal",
    "valley",
    "museum",
    "bakery",
    "theatre",
    "lighthouse",
];
const ADJECTIVES: &[&str] = &[
    "quiet", "busy", "ancient", "bright", "hidden", "narrow", "golden", "windy", "gentle",
    "crowded", "distant", "rusty", "silver", "patient", "curious", "humble",
];
const VERBS: &[&str] = &[
    "visits",
    "describes",
    "remembers",
    "builds",
    "paints",
    "measures",
    "follows",
    "repairs",
    "explores",
    "maps",
    "guards",
    "celebrates",
];
const PEOPLE: &[&str] = &[
    "the keeper",
    "a traveller",
    "the miller",
    "an engineer",
    "the baker",
    "a poet",
    "the ferryman",
    "a student",
    "the archivist",
    "a gardener",
];

/// The demo site: how many pages it has.
#[derive(Clone, Copy, Debug)]
pub struct DemoSite {
    /// Pages `/pages/1` to `/pages/{pages}`.
    pub pages: usize,
}

impl DemoSite {
    /// The site's routes.
    pub fn router(self) -> Router {
        Router::new()
            .route(
                "/",
                get(|| async {
                    Html("<p>The demo site: see <a href=\"/sitemap.xml\">its sitemap</a>.</p>")
                }),
            )
            .route("/sitemap.xml", get(sitemap_index))
            .route("/sitemaps/{file}", get(urlset))
            .route("/pages/{i}", get(page))
            .with_state(self)
    }

    fn sitemaps(self) -> usize {
        self.pages.div_ceil(PER_SITEMAP).max(1)
    }
}

/// A small deterministic generator (an LCG), seeded by the page number.
struct Words(u64);

impl Words {
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        list[((self.0 >> 33) as usize) % list.len()]
    }
}

/// The HTML of page `i`.
pub fn page_html(i: usize) -> String {
    let mut words = Words(i as u64 * 7919 + 17);
    let (adjective, noun) = (words.pick(ADJECTIVES), words.pick(NOUNS));
    let title = format!("Page {i}: the {adjective} {noun}");
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\
         <h1>{title}</h1>"
    );
    for _ in 0..3 {
        html.push_str("<p>");
        for _ in 0..4 {
            let _ = write!(
                html,
                "{} {} the {} {}. ",
                capitalized(words.pick(PEOPLE)),
                words.pick(VERBS),
                words.pick(ADJECTIVES),
                words.pick(NOUNS),
            );
        }
        html.push_str("</p>");
    }
    for (page, word) in UNIQUE_WORDS {
        if *page == i {
            let _ = write!(html, "<p>Only this page mentions a {word}.</p>");
        }
    }
    let _ = write!(
        html,
        "<p><a href=\"/pages/{}\">next</a></p></body></html>",
        i + 1
    );
    html
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn xml(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /sitemap.xml`: the index of the urlset files.
async fn sitemap_index(State(site): State<DemoSite>, headers: axum::http::HeaderMap) -> Response {
    let base = base_url(&headers);
    let mut body = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    for n in 1..=site.sitemaps() {
        let _ = writeln!(
            body,
            "  <sitemap><loc>{base}/sitemaps/{n}.xml</loc></sitemap>"
        );
    }
    body.push_str("</sitemapindex>\n");
    xml(body)
}

/// `GET /sitemaps/{n}.xml`: one urlset of up to 100 pages.
async fn urlset(
    State(site): State<DemoSite>,
    Path(file): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let n = file
        .strip_suffix(".xml")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=site.sitemaps()).contains(n));
    let Some(n) = n else {
        return (StatusCode::NOT_FOUND, "no such sitemap").into_response();
    };
    let base = base_url(&headers);
    let mut body = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    let first = (n - 1) * PER_SITEMAP + 1;
    let last = (n * PER_SITEMAP).min(site.pages);
    for i in first..=last {
        let _ = writeln!(body, "  <url><loc>{base}/pages/{i}</loc></url>");
    }
    if n == site.sitemaps() {
        let _ = writeln!(body, "  <url><loc>{base}/pages/gone</loc></url>");
    }
    body.push_str("</urlset>\n");
    xml(body)
}

/// `GET /pages/{i}`.
async fn page(State(site): State<DemoSite>, Path(i): Path<String>) -> Response {
    match i.parse::<usize>() {
        Ok(i) if (1..=site.pages).contains(&i) => Html(page_html(i)).into_response(),
        _ => (StatusCode::NOT_FOUND, "no such page").into_response(),
    }
}

/// `http://host:port` as the client addressed this site.
fn base_url(headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_the_same_every_time_and_unique_words_are_unique() {
        assert_eq!(page_html(5), page_html(5));
        assert_ne!(page_html(5), page_html(6));
        for i in 1..=300 {
            let html = page_html(i);
            for (page, word) in UNIQUE_WORDS {
                assert_eq!(html.contains(word), *page == i, "{word} on page {i}");
            }
        }
    }
}
