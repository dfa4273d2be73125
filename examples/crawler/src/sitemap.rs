//! A **sitemap**: the XML file in which a site lists its pages.
//!
//! Two kinds exist (<https://www.sitemaps.org/protocol.html>): a `<urlset>` lists pages, and a
//! `<sitemapindex>` lists further sitemaps. Both put each address in a `<loc>` element. This
//! module parses either with `quick-xml`, a real XML parser, so entities (`&amp;` in query
//! strings), CDATA, comments and namespaces work, and a file that is not well-formed XML is an
//! error that says where, not an empty list.
//!
//! ```ignore
//! let xml = r#"<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
//!   <url><loc>https://example.com/a?x=1&amp;y=2</loc></url>
//! </urlset>"#;
//! assert_eq!(sitemap::parse(xml)?, Sitemap::Urls(vec!["https://example.com/a?x=1&y=2".into()]));
//! ```

use quick_xml::events::Event;
use quick_xml::Reader;

/// What a sitemap file lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sitemap {
    /// A `<urlset>`: the addresses of pages.
    Urls(Vec<String>),
    /// A `<sitemapindex>`: the addresses of more sitemaps.
    Index(Vec<String>),
}

/// Why a sitemap could not be read. The message says what was wrong and where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct SitemapError(String);

/// Parses a sitemap file: a `<urlset>` or a `<sitemapindex>`, with `<loc>` entries.
pub fn parse(xml: &str) -> Result<Sitemap, SitemapError> {
    let mut reader = Reader::from_str(xml);
    let mut root: Option<String> = None;
    let mut locs = Vec::new();
    // The text of the `<loc>` being read, while inside one.
    let mut loc: Option<String> = None;
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| {
            SitemapError(format!(
                "the sitemap is not well-formed XML (at byte {}): {e}",
                reader.error_position()
            ))
        })?;
        match event {
            Event::Start(element) => {
                let name = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
                if depth == 0 {
                    if root.is_some() {
                        return Err(SitemapError(
                            "the sitemap has more than one root element".into(),
                        ));
                    }
                    root = Some(name.clone());
                }
                depth += 1;
                if name == "loc" {
                    loc = Some(String::new());
                }
            }
            Event::Empty(element) if depth == 0 => {
                let name = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
                root = Some(name);
            }
            Event::End(element) => {
                depth = depth.saturating_sub(1);
                if element.local_name().as_ref() == b"loc" {
                    if let Some(text) = loc.take() {
                        let text = text.trim();
                        if !text.is_empty() {
                            locs.push(text.to_owned());
                        }
                    }
                }
            }
            Event::Text(text) => {
                if let Some(loc) = &mut loc {
                    loc.push_str(&text.xml_content().map_err(encoding)?);
                }
            }
            Event::CData(text) => {
                if let Some(loc) = &mut loc {
                    loc.push_str(&text.decode().map_err(encoding)?);
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(loc) = &mut loc {
                    let name = reference.decode().map_err(encoding)?;
                    if let Some(c) = reference.resolve_char_ref().map_err(|e| {
                        SitemapError(format!("the sitemap has a bad character reference: {e}"))
                    })? {
                        loc.push(c);
                    } else if let Some(text) = quick_xml::escape::resolve_xml_entity(&name) {
                        loc.push_str(text);
                    } else {
                        return Err(SitemapError(format!(
                            "the sitemap uses the entity `&{name};`, which XML does not define"
                        )));
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth > 0 {
        return Err(SitemapError(
            "the sitemap is not well-formed XML: it ends before its elements are closed".into(),
        ));
    }
    match root.as_deref() {
        Some("urlset") => Ok(Sitemap::Urls(locs)),
        Some("sitemapindex") => Ok(Sitemap::Index(locs)),
        Some(other) => Err(SitemapError(format!(
            "expected a sitemap (a <urlset> or <sitemapindex> root element), found <{other}>"
        ))),
        None => Err(SitemapError(
            "the sitemap is empty: expected a <urlset> or <sitemapindex> root element".into(),
        )),
    }
}

fn encoding(error: quick_xml::encoding::EncodingError) -> SitemapError {
    SitemapError(format!("the sitemap's text is not valid UTF-8: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urlset_lists_its_pages() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
            <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <url><loc>http://example.com/</loc><lastmod>2026-01-01</lastmod></url>
              <url><loc>
                  http://example.com/search?q=a&amp;page=2
              </loc></url>
              <!-- a comment, then CDATA -->
              <url><loc><![CDATA[http://example.com/a&b]]></loc></url>
            </urlset>"#;
        assert_eq!(
            parse(xml),
            Ok(Sitemap::Urls(vec![
                "http://example.com/".into(),
                "http://example.com/search?q=a&page=2".into(),
                "http://example.com/a&b".into(),
            ]))
        );
    }

    #[test]
    fn a_sitemap_index_lists_its_sitemaps() {
        let xml = r#"<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <sitemap><loc>http://example.com/sitemaps/1.xml</loc></sitemap>
              <sitemap><loc>http://example.com/sitemaps/2.xml</loc></sitemap>
            </sitemapindex>"#;
        assert_eq!(
            parse(xml),
            Ok(Sitemap::Index(vec![
                "http://example.com/sitemaps/1.xml".into(),
                "http://example.com/sitemaps/2.xml".into(),
            ]))
        );
    }

    #[test]
    fn a_prefixed_namespace_and_an_empty_urlset_parse() {
        let xml = r#"<sm:urlset xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9">
              <sm:url><sm:loc>http://example.com/x</sm:loc></sm:url></sm:urlset>"#;
        assert_eq!(
            parse(xml),
            Ok(Sitemap::Urls(vec!["http://example.com/x".into()]))
        );
        assert_eq!(parse("<urlset/>"), Ok(Sitemap::Urls(vec![])));
    }

    #[test]
    fn malformed_xml_is_an_error_that_says_where() {
        let error = parse("<urlset><url><loc>http://example.com/</url></urlset>").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("the sitemap is not well-formed XML (at byte"),
            "{error}"
        );
        assert!(
            error.to_string().contains("loc"),
            "names the element: {error}"
        );

        let error = parse("<urlset><url><loc>http://example.com/</loc>").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the sitemap is not well-formed XML: it ends before its elements are closed"
        );
    }

    #[test]
    fn html_and_empty_files_are_not_sitemaps() {
        let error = parse("<html><body>Not found</body></html>").unwrap_err();
        assert_eq!(
            error.to_string(),
            "expected a sitemap (a <urlset> or <sitemapindex> root element), found <html>"
        );
        let error = parse("  ").unwrap_err();
        assert!(
            error.to_string().starts_with("the sitemap is empty"),
            "{error}"
        );
    }

    #[test]
    fn an_undefined_entity_is_an_error() {
        let error = parse("<urlset><url><loc>http://x/&nbsp;</loc></url></urlset>").unwrap_err();
        assert!(error.to_string().contains("&nbsp;"), "{error}");
    }
}
