//! Sites: which host names the server answers to, and which other web origins may change
//! things through it. What stops a web page the user happens to open from using a server on
//! their machine.
//!
//! Two attacks, two checks, on every route of [`crate::app`], tokens or none:
//!
//! - **DNS rebinding.** A page on `evil.example` makes its own name resolve to 127.0.0.1; its
//!   requests are then same-origin to the page, so the browser lets it read the answers. They
//!   still say `Host: evil.example:7700`. The server answers only to the hosts it knows: IP
//!   addresses (a page whose origin is an IP address *is* that address; nothing to rebind),
//!   `localhost` and names under `.localhost`, and the names it is given
//!   ([`AppState::allow_host`](crate::AppState::allow_host), `--allowed-host`). Others get 403
//!   `host_not_allowed`. A request without a host (HTTP/1.0, a router driven in-process) is not
//!   from a browser and passes.
//! - **Cross-site requests.** Any page may send a "simple" `POST` (a form, `fetch` with
//!   `mode: 'no-cors'`) to any server; it cannot read the answer, but the kill is done. So a
//!   state-changing request (any method but `GET`, `HEAD` and `OPTIONS`, and a WebSocket
//!   upgrade, which the same-origin policy does not cover) whose `Origin` is another origin, or
//!   whose `Sec-Fetch-Site` says `cross-site` or `same-site`, is refused with 403 `cross_site`,
//!   unless that origin is allowed ([`AppState::allow_origin`](crate::AppState::allow_origin),
//!   `--allowed-origin`). The dashboard is same-origin and passes; so do the CLI, scripts and
//!   workers, which send no `Origin`. Reads from another origin pass: without CORS headers the
//!   page cannot read the answer, and a rebinding page never gets past the host check.
//!
//! ```
//! # async fn demo(runtime: offstage::Runtime) {
//! let state = offstage_server::AppState::new(runtime)
//!     .allow_host("offstage.internal.example")
//!     .allow_origin("https://admin.example");
//! let router = offstage_server::app(state);
//! # }
//! ```

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;

/// The hosts and origins a server trusts beyond its defaults.
#[derive(Clone, Default)]
pub struct Sites {
    hosts: Arc<Vec<HostRule>>,
    origins: Arc<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostRule {
    /// `*`: any host (the host check is off).
    Any,
    /// `*.example.com`: any name under `example.com` (not `example.com` itself).
    Under(String),
    /// `example.com`.
    Exact(String),
}

impl fmt::Debug for Sites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sites")
            .field("hosts", &self.hosts)
            .field("origins", &self.origins)
            .finish()
    }
}

impl Sites {
    /// Parses an `--allowed-host`: a name (`offstage.example.com`), a wildcard for the names
    /// under one (`*.example.com`), or `*` for any host. A port is ignored.
    pub fn parse_host(text: &str) -> Result<String, String> {
        let text = text.trim();
        let name = text.strip_prefix("*.").unwrap_or(text);
        if text == "*" {
            return Ok("*".into());
        }
        let (host, _) = split_host(name);
        if host.is_empty() || host.contains(['/', '*', ' ', '@']) {
            return Err(format!(
                "`{text}` is not a host: give a name such as offstage.example.com, *.example.com \
                 for every name under it, or * for any host"
            ));
        }
        Ok(text.to_ascii_lowercase())
    }

    /// Parses an `--allowed-origin`: `scheme://host[:port]` as a browser sends it in `Origin`
    /// (`https://admin.example`, no path), `null` (sandboxed frames, files), or `*` for any.
    pub fn parse_origin(text: &str) -> Result<String, String> {
        let text = text.trim().trim_end_matches('/');
        if text == "*" || text == "null" {
            return Ok(text.into());
        }
        let ok = match text.split_once("://") {
            Some((scheme, rest)) => {
                !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', '@', ' '])
            }
            None => false,
        };
        if !ok {
            return Err(format!(
                "`{text}` is not an origin: give scheme://host[:port] as the browser shows it, \
                 such as https://admin.example or http://localhost:3000 (no path)"
            ));
        }
        Ok(normal_origin(text))
    }

    /// The same, also answering to `host` (see [`Sites::parse_host`]).
    pub fn allow_host(mut self, host: &str) -> Result<Self, String> {
        let host = Self::parse_host(host)?;
        let rule = if host == "*" {
            HostRule::Any
        } else if let Some(parent) = host.strip_prefix("*.") {
            HostRule::Under(split_host(parent).0.to_owned())
        } else {
            HostRule::Exact(split_host(&host).0.to_owned())
        };
        Arc::make_mut(&mut self.hosts).push(rule);
        Ok(self)
    }

    /// The same, also taking state-changing requests from pages on `origin` (see
    /// [`Sites::parse_origin`]).
    pub fn allow_origin(mut self, origin: &str) -> Result<Self, String> {
        let origin = Self::parse_origin(origin)?;
        Arc::make_mut(&mut self.origins).push(origin);
        Ok(self)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let (name, _) = split_host(host);
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
        {
            return true;
        }
        self.hosts.iter().any(|rule| match rule {
            HostRule::Any => true,
            HostRule::Exact(allowed) => *allowed == name,
            HostRule::Under(parent) => name
                .strip_suffix(parent.as_str())
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        })
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = normal_origin(origin);
        self.origins
            .iter()
            .any(|allowed| allowed == "*" || *allowed == origin)
    }

    /// The check: `Ok` or the 403 that says why and which flag changes it.
    fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> Result<(), ApiError> {
        let host = authority.or_else(|| header_text(headers, header::HOST));
        if let Some(host) = host {
            if !self.host_allowed(host) {
                let (name, _) = split_host(host);
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "host_not_allowed",
                    format!(
                        "this server does not answer to the host `{name}` (it answers to IP \
                         addresses, localhost and the names it is given, so that no web page \
                         can reach it by DNS rebinding). If `{name}` is this server's name, \
                         start it with --allowed-host {name} (in an app: \
                         AppState::allow_host)"
                    ),
                ));
            }
        }
        let upgrade = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) && !upgrade;
        if safe {
            return Ok(());
        }
        let origin = header_text(headers, header::ORIGIN);
        let cross = match origin {
            Some(origin) => {
                let same = host.is_some_and(|host| same_authority(origin, host));
                !same && !self.origin_allowed(origin)
            }
            // No Origin: a browser says where the request comes from this way instead (and
            // not at all for a request the user made by hand: `none`).
            None => match header_text(headers, "sec-fetch-site") {
                Some(site) => {
                    matches!(site, "cross-site" | "same-site")
                        && !self.origins.iter().any(|o| o == "*")
                }
                // Neither: not a browser (the CLI, a script, a worker).
                None => false,
            },
        };
        if cross {
            let from = origin.unwrap_or("another site");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site",
                format!(
                    "a page on {from} may not change anything on this server (a cross-site \
                     {method}), so that no web page you open can kill or launch tasks here. If \
                     that page is yours, start the server with --allowed-origin {from} (in an \
                     app: AppState::allow_origin); the CLI and scripts send no Origin and are \
                     not affected"
                ),
            ));
        }
        Ok(())
    }
}

/// Middleware on every route: refuses requests for unknown hosts, and cross-site requests
/// that would change something.
pub async fn guard(
    State(state): State<crate::AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // HTTP/2 carries the host in the URI's authority; HTTP/1.1 in `Host`.
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    state
        .sites
        .check(request.method(), request.headers(), authority.as_deref())?;
    Ok(next.run(request).await)
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// `host[:port]` → (`host`, port). IPv6 literals keep their brackets.
fn split_host(text: &str) -> (&str, Option<&str>) {
    if text.starts_with('[') {
        return match text.find(']') {
            Some(end) => (&text[..=end], text[end + 1..].strip_prefix(':')),
            None => (text, None),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !host.contains(':') => {
            (host, Some(port))
        }
        _ => (text, None),
    }
}

/// An origin lowercased, without a default port.
fn normal_origin(origin: &str) -> String {
    let origin = origin.trim().to_ascii_lowercase();
    for (scheme, port) in [("http://", ":80"), ("https://", ":443")] {
        if origin.starts_with(scheme) {
            if let Some(bare) = origin.strip_suffix(port) {
                return bare.to_owned();
            }
        }
    }
    origin
}

/// True when `origin` (`scheme://host[:port]`) names the host and port the request was sent to.
fn same_authority(origin: &str, host: &str) -> bool {
    let origin = normal_origin(origin);
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let host = host.trim().to_ascii_lowercase();
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => "",
    };
    authority == host || (!default.is_empty() && format!("{authority}{default}") == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn hosts() {
        let sites = Sites::default().allow_host("offstage.example.com").unwrap();
        let sites = sites.allow_host("*.corp.example").unwrap();
        for ok in [
            "127.0.0.1:7700",
            "localhost:7700",
            "LOCALHOST",
            "app.localhost:3000",
            "[::1]:7700",
            "10.1.2.3",
            "offstage.example.com:443",
            "a.corp.example",
        ] {
            assert!(sites.host_allowed(ok), "{ok}");
        }
        for refused in [
            "evil.example:7700",
            "corp.example",
            "localhost.evil.example",
            "example.com",
        ] {
            assert!(!sites.host_allowed(refused), "{refused}");
        }
        assert!(Sites::default()
            .allow_host("*")
            .unwrap()
            .host_allowed("anything"));
        assert!(Sites::parse_host("a/b").is_err());
    }

    #[test]
    fn origins() {
        let sites = Sites::default();
        let post = Method::POST;
        let same = headers(&[
            ("host", "127.0.0.1:7700"),
            ("origin", "http://127.0.0.1:7700"),
        ]);
        assert!(sites.check(&post, &same, None).is_ok());
        let cross = headers(&[
            ("host", "127.0.0.1:7700"),
            ("origin", "http://127.0.0.1:8000"),
        ]);
        let error = sites.check(&post, &cross, None).unwrap_err();
        assert_eq!(error.code(), "cross_site");
        assert!(
            sites.check(&Method::GET, &cross, None).is_ok(),
            "reads pass"
        );
        let mut upgrade = cross.clone();
        upgrade.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(
            sites.check(&Method::GET, &upgrade, None).is_err(),
            "a WebSocket does not"
        );
        let fetch_site = headers(&[("host", "localhost:7700"), ("sec-fetch-site", "cross-site")]);
        assert!(sites.check(&post, &fetch_site, None).is_err());
        let typed = headers(&[("host", "localhost:7700"), ("sec-fetch-site", "none")]);
        assert!(sites.check(&post, &typed, None).is_ok());
        assert!(
            sites.check(&post, &headers(&[]), None).is_ok(),
            "no browser, no host"
        );
        let null = headers(&[("host", "localhost:7700"), ("origin", "null")]);
        assert!(sites.check(&post, &null, None).is_err());
        let allowed = Sites::default()
            .allow_origin("http://127.0.0.1:8000/")
            .unwrap();
        assert!(allowed.check(&post, &cross, None).is_ok());
        let any = Sites::default().allow_origin("*").unwrap();
        assert!(any.check(&post, &fetch_site, None).is_ok());
        assert!(Sites::parse_origin("127.0.0.1:8000").is_err());
        assert!(Sites::parse_origin("http://x/path").is_err());
        assert!(same_authority("https://x.example", "x.example:443"));
        let rebound = headers(&[
            ("host", "evil.example:7700"),
            ("origin", "http://evil.example:7700"),
        ]);
        assert_eq!(
            sites.check(&post, &rebound, None).unwrap_err().code(),
            "host_not_allowed"
        );
    }
}
