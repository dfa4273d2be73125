//! The **dashboard**: every task, live, with kill, logs and a launch form, at `/`.
//!
//! Plain HTML, CSS and JavaScript files under `assets/`, compiled into the binary with
//! `include_bytes!`: no build step, nothing to install, and the page an app serves is the one its
//! `offstage-server` version was tested with. The page talks to the same JSON API and event
//! stream as every other client (it reads events with `fetch`, not `EventSource`, so it can send
//! the bearer token). The page is told the path it was served at, and builds every URL from it,
//! so the router works mounted under a prefix too (`Router::nest("/offstage", app(state))`).

use std::borrow::Cow;

use axum::extract::{OriginalUri, Path};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../assets/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../assets/favicon.svg"),
    },
];

/// The page itself only loads files from this server and talks only to it.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

/// A strong validator for `bytes`: FNV-1a, enough to tell versions of a file apart.
fn etag(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    serve_bytes(asset.content_type, Cow::Borrowed(asset.bytes), headers)
}

fn serve_bytes(
    content_type: &'static str,
    bytes: Cow<'static, [u8]>,
    headers: &HeaderMap,
) -> Response {
    let tag = etag(&bytes);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|seen| seen.as_bytes() == tag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
    };
    let headers = response.headers_mut();
    // Revalidate every time: a new server version must never run an old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, tag);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /`: the page, with the path it is served at as the base of every URL it uses.
pub(crate) async fn index(OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let path = uri.path();
    // `http::Uri` keeps quotes and angle brackets out of a path, so it is safe in an attribute.
    let base = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    let page = String::from_utf8_lossy(ASSETS[0].bytes).replace("{{base}}", &base);
    serve_bytes(
        ASSETS[0].content_type,
        Cow::Owned(page.into_bytes()),
        &headers,
    )
}

/// `GET /assets/{file}`: its scripts, styles and icon.
pub(crate) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_asset",
            format!("the dashboard has no file `{file}`: open / for the dashboard"),
        )
        .into_response(),
    }
}
