//! The **dashboard**: every task, live, with kill, logs and a launch form, at `/`.
//!
//! Plain HTML, CSS and JavaScript files under `assets/`, compiled into the binary with
//! `include_bytes!`: no build step, nothing to install, and the page an app serves is the one its
//! `offstage-server` version was tested with. The scripts are ES modules (`app.js` starts the
//! page and imports the others: one per view, the API client, the shared drawing helpers), which
//! the browser loads from `/assets/` by their relative imports. The page talks to the same JSON
//! API and event stream as every other client (it reads events with `fetch`, not `EventSource`,
//! so it can send the bearer token). The page is told the path it was served at, and builds every
//! URL from it, so the router works mounted under a prefix too
//! (`Router::nest("/offstage", app(state))`).
//!
//! The same way it serves the browser client for apps' own pages (`clients/js/` in the
//! repository) at `/offstage.js`, with its TypeScript declarations at `/offstage.d.ts`.

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

/// The file `assets/$name`, compiled in.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The page, served at `/` with its base path filled in (not under `/assets/`).
const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// What the page loads, served at `/assets/{name}`. A new module must be listed here: the test
/// below checks every file under `assets/` is.
const ASSETS: &[Asset] = &[
    asset!("app.js", JAVASCRIPT),
    asset!("api.js", JAVASCRIPT),
    asset!("ui.js", JAVASCRIPT),
    asset!("task-list.js", JAVASCRIPT),
    asset!("task.js", JAVASCRIPT),
    asset!("launch.js", JAVASCRIPT),
    asset!("schedules.js", JAVASCRIPT),
    asset!("shared-list.js", JAVASCRIPT),
    asset!("shared.js", JAVASCRIPT),
    asset!("charts.js", JAVASCRIPT),
    asset!("children.js", JAVASCRIPT),
    asset!("chart.js", JAVASCRIPT),
    asset!("task-types.js", JAVASCRIPT),
    asset!("nodes.js", JAVASCRIPT),
    asset!("waiting.js", JAVASCRIPT),
    asset!("signal.js", JAVASCRIPT),
    asset!("actions.js", JAVASCRIPT),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The browser client (`clients/js/` in the repository), served at `/offstage.js` and
/// `/offstage.d.ts` so a page imports the client of the server it talks to.
const CLIENT: &[Asset] = &[
    Asset {
        name: "offstage.js",
        content_type: JAVASCRIPT,
        bytes: include_bytes!("../client/offstage.js"),
    },
    Asset {
        name: "offstage.d.ts",
        content_type: "application/typescript; charset=utf-8",
        bytes: include_bytes!("../client/offstage.d.ts"),
    },
];

/// The page itself only loads files (its module scripts too) from this server, and talks only
/// to it. Nothing is inline: every script is a file under `/assets/`.
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
    let page = String::from_utf8_lossy(INDEX.bytes).replace("{{base}}", &base);
    serve_bytes(INDEX.content_type, Cow::Owned(page.into_bytes()), &headers)
}

/// `GET /assets/{file}`: its script modules, styles and icon.
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

/// `GET /offstage.js` and `GET /offstage.d.ts`: the browser client and its types. Anyone may
/// load them (no token: they are the same file for everyone), from any origin: a module script
/// is fetched with CORS, and an app's page on another origin imports it from here.
pub(crate) async fn client(OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let name = uri.path().rsplit('/').next().unwrap_or_default();
    let Some(asset) = CLIENT.iter().find(|asset| asset.name == name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_asset",
            format!("no client file `{name}`: the browser client is /offstage.js"),
        )
        .into_response();
    };
    let mut response = serve(asset, &headers);
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file under `assets/` is served, and every module a script imports is one of them:
    /// a module left out of `ASSETS` would stop the whole page from loading.
    #[test]
    fn every_asset_and_every_imported_module_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let served = |name: &str| ASSETS.iter().any(|asset| asset.name == name);
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                name == INDEX.name || served(&name),
                "assets/{name} is not in ASSETS"
            );
        }
        for asset in ASSETS
            .iter()
            .filter(|asset| asset.content_type == JAVASCRIPT)
        {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for import in text.split(" from \"./").skip(1) {
                let module = import.split('"').next().unwrap();
                assert!(
                    served(module),
                    "{} imports {module}, not served",
                    asset.name
                );
            }
        }
        let page = std::str::from_utf8(INDEX.bytes).unwrap();
        assert!(page.contains(r#"<script type="module" src="{{base}}assets/app.js">"#));
    }
}
