//! The **pages** table: every crawled page, and a full-text index over its words.
//!
//! `pages` holds `url`, `html` and `last_indexed`, one row per address; a crawl upserts a page
//! in one transaction, so a page is either wholly there or not at all, and a crawl that is
//! stopped keeps every page it finished. `pages_fts` is an SQLite FTS5 table over each page's
//! title and visible text, written in the same transaction. SQLite is the workspace's
//! `rusqlite` with its bundled SQLite, which is built with FTS5.
//!
//! ```ignore
//! let pages = Pages::open("crawler.db")?;
//! pages.upsert("http://example.com/", "<title>Hi</title><p>quokka</p>", Utc::now()).await?;
//! assert_eq!(pages.search("quokka").await?[0].url, "http://example.com/");
//! ```

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;

/// The pages table, shared by the crawl and the search route. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Pages {
    /// One connection: SQLite takes one writer at a time anyway, and every call is short. Used
    /// from `spawn_blocking`, so a slow disk never stalls the async runtime.
    conn: Arc<Mutex<Connection>>,
}

/// One search result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// The page's address.
    pub url: String,
    /// Its `<title>`, or the address if it has none.
    pub title: String,
    /// A few words around the match; the matched words are between `\u{2}` and `\u{3}`, for
    /// the page to mark up without parsing HTML.
    pub snippet: String,
}

/// Errors of the pages table: SQLite's, or a worker thread that died.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

impl Pages {
    /// Opens (or creates) the pages table in the SQLite file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Pages, Error> {
        let conn = Connection::open(path)?;
        // The file may be shared with Offstage's own store, which writes from other threads.
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS pages (
                 url TEXT PRIMARY KEY,
                 html TEXT NOT NULL,
                 last_indexed TEXT NOT NULL
             );
             CREATE VIRTUAL TABLE IF NOT EXISTS pages_fts USING fts5(url UNINDEXED, title, body);",
        )?;
        Ok(Pages {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await?
        .map_err(Into::into)
    }

    /// Inserts or replaces the page at `url`, and its words in the index, in one transaction.
    pub async fn upsert(&self, url: &str, html: &str, at: DateTime<Utc>) -> Result<(), Error> {
        let (url, html) = (url.to_owned(), html.to_owned());
        let (title, body) = text_of(&html);
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO pages (url, html, last_indexed) VALUES (?1, ?2, ?3)
                 ON CONFLICT (url) DO UPDATE SET html = excluded.html,
                                                 last_indexed = excluded.last_indexed",
                params![url, html, at.to_rfc3339()],
            )?;
            tx.execute("DELETE FROM pages_fts WHERE url = ?1", params![url])?;
            tx.execute(
                "INSERT INTO pages_fts (url, title, body) VALUES (?1, ?2, ?3)",
                params![url, title.unwrap_or_else(|| url.clone()), body],
            )?;
            tx.commit()
        })
        .await
    }

    /// How many pages the table holds.
    pub async fn count(&self) -> Result<u64, Error> {
        self.with(|conn| conn.query_row("SELECT count(*) FROM pages", [], |row| row.get(0)))
            .await
    }

    /// Up to 50 pages whose text has every word of `query` (the last one as a prefix, so
    /// results come as you type), best match first. Any text is a valid query: the words are
    /// quoted, so FTS5's own syntax never reaches it.
    pub async fn search(&self, query: &str) -> Result<Vec<Hit>, Error> {
        let Some(fts) = fts_query(query) else {
            return Ok(Vec::new());
        };
        self.with(move |conn| {
            let mut statement = conn.prepare(
                "SELECT url, title, snippet(pages_fts, 2, char(2), char(3), '…', 12)
                 FROM pages_fts WHERE pages_fts MATCH ?1 ORDER BY rank LIMIT 50",
            )?;
            let hits = statement.query_map(params![fts], |row| {
                Ok(Hit {
                    url: row.get(0)?,
                    title: row.get(1)?,
                    snippet: row.get(2)?,
                })
            })?;
            hits.collect()
        })
        .await
    }
}

/// `query`'s words as an FTS5 query: each one quoted, the last one a prefix.
fn fts_query(query: &str) -> Option<String> {
    let words: Vec<String> = query
        .split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    if words.is_empty() {
        return None;
    }
    Some(format!("{}*", words.join(" ")))
}

/// The `<title>` of an HTML page and its visible text: tags, scripts and styles left out, the
/// common entities decoded. Enough for a search index; not an HTML parser.
fn text_of(html: &str) -> (Option<String>, String) {
    let mut body = String::with_capacity(html.len() / 2);
    let mut title = None;
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        body.push_str(&rest[..open]);
        body.push(' ');
        rest = &rest[open..];
        let Some(close) = rest.find('>') else {
            rest = "";
            break;
        };
        let tag = rest[1..close].trim().to_ascii_lowercase();
        rest = &rest[close + 1..];
        let name = tag.split_whitespace().next().unwrap_or("");
        if matches!(name, "script" | "style" | "title") {
            let end = format!("</{name}");
            let upto = rest.to_ascii_lowercase().find(&end).unwrap_or(rest.len());
            if name == "title" {
                title = Some(decode_entities(rest[..upto].trim()));
            }
            rest = &rest[upto..];
        }
    }
    body.push_str(rest);
    let body = decode_entities(&body);
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    (title.filter(|t| !t.is_empty()), body)
}

fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("crawler-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[tokio::test]
    async fn upsert_replaces_a_page_and_search_finds_it_by_its_words() {
        let path = temp_db("pages.db");
        let pages = Pages::open(&path).unwrap();
        let at = Utc::now();
        pages
            .upsert(
                "http://site/a",
                "<html><head><title>Alpha &amp; co</title><style>p{color:red}</style></head>\
                 <body><p>The quick quokka jumps.</p><script>var hidden = 1;</script></body></html>",
                at,
            )
            .await
            .unwrap();
        pages
            .upsert("http://site/b", "<p>A slow tortoise.</p>", at)
            .await
            .unwrap();
        assert_eq!(pages.count().await.unwrap(), 2);

        let hits = pages.search("quokka").await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].url, "http://site/a");
        assert_eq!(hits[0].title, "Alpha & co");
        assert!(
            hits[0].snippet.contains("\u{2}quokka\u{3}"),
            "{:?}",
            hits[0]
        );
        assert_eq!(pages.search("quok").await.unwrap().len(), 1, "prefix");
        assert!(
            pages.search("hidden").await.unwrap().is_empty(),
            "scripts are not text"
        );
        assert!(
            pages.search("color").await.unwrap().is_empty(),
            "styles are not text"
        );
        assert_eq!(
            pages.search("tortoise").await.unwrap()[0].title,
            "http://site/b"
        );

        // The same address again: one row, and the index has only the new words.
        pages
            .upsert("http://site/a", "<p>Now about a wombat.</p>", at)
            .await
            .unwrap();
        assert_eq!(pages.count().await.unwrap(), 2);
        assert!(pages.search("quokka").await.unwrap().is_empty());
        assert_eq!(
            pages.search("wombat").await.unwrap()[0].url,
            "http://site/a"
        );

        // Reopened, it is all still there.
        drop(pages);
        let pages = Pages::open(&path).unwrap();
        assert_eq!(pages.count().await.unwrap(), 2);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn any_text_is_a_valid_query() {
        let path = temp_db("pages.db");
        let pages = Pages::open(&path).unwrap();
        pages
            .upsert(
                "http://site/a",
                "<p>Say \"hello\" AND goodbye</p>",
                Utc::now(),
            )
            .await
            .unwrap();
        for query in ["\"", "AND", "hello\"", "(", "*", "NEAR(", "a:b", "   "] {
            pages
                .search(query)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"));
        }
        assert_eq!(pages.search("say hello").await.unwrap().len(), 1);
        assert_eq!(pages.search("say tortoise").await.unwrap().len(), 0);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn text_of_keeps_words_and_drops_markup() {
        let (title, body) = text_of("<TITLE>T</TITLE><h1 class=\"x\">One</h1>two<br/>three");
        assert_eq!(title.as_deref(), Some("T"));
        assert_eq!(body, "One two three");
    }
}
